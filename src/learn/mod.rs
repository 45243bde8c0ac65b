//! The loop's other half: the trainer (read the log, fit, gate, record, publish), the online
//! tally (credit, champion against challenger), the model lifecycle both of them go through, and
//! the schedule of their background loops. It publishes into the request path (`serve`); the
//! request path never calls back into it.

pub mod fit;
pub mod lifecycle;
pub mod online;
mod schedule;
pub mod trainer;

pub use fit::{fit_and_gate, TrainingParams};
pub use lifecycle::{
    activate, adopt_challenger, adopt_champion, decide_challenger, unpin, ActivateError,
    ChallengerError,
};
pub use online::Online;
pub use trainer::{Outcome, Start, Trainer};
