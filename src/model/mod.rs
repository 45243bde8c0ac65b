//! Pure recommendation algorithms: the interaction matrix, implicit ALS, popularity,
//! item similarity, top-k selection, metrics and the offline evaluation protocol.
//!
//! No I/O, no async, no global state: every function is a deterministic function of its
//! inputs (and seed), so training can run anywhere (rayon, `spawn_blocking`) and tests
//! can pin results.

pub mod als;
mod als_params;
pub mod arms;
pub mod artifact;
pub mod ease;
pub mod explain;
mod fold;
pub mod holdout;
mod int8;
pub mod interactions;
mod kernels;
mod linalg;
pub mod metrics;
pub mod popularity;
pub mod ranker;
pub mod recency;
pub mod scoring;
pub mod selection;
mod simd;
pub mod similarity;
mod solve;
pub mod synthetic;
pub mod topk;

pub use als::{AlsModel, AlsParams};
pub use artifact::FittedModel;
pub use ease::{EaseModel, EaseParams};
pub use interactions::{Interactions, LogEvent};
pub use ranker::{Algorithm, Ranker, RankerConfig, UserVector};

#[cfg(test)]
mod tests;
