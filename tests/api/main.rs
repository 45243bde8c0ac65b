//! End-to-end tests over real HTTP. See `helpers` for the harness.

mod helpers;
mod probe;
