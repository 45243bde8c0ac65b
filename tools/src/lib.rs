//! The `recloop` command line's tools, apart from the service: `import` (bulk-load a CSV log
//! through the domain's event rules), `export` (every user's recommendations as JSON lines),
//! `evaluate` (the training pipeline scored offline), `synth`
//! (synthetic shop logs) and `simulate` (a simulated shop driving recloop over HTTP). They are a
//! crate of their own so that the service's dependencies carry no HTTP client, plotting
//! library or progress bar; they reach the service only through the `recloop` library.

pub mod evaluate;
pub mod export;
pub mod import;
pub mod simulate;
pub mod synth;
