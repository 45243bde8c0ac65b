//! End-to-end tests over real HTTP: one binary, each test its own server on 127.0.0.1:0 and
//! its own SQLite database in a temporary directory. `helpers` holds the harness, `data` the
//! synthetic event logs, `faults` a store wrapper that injects storage failures and holds a
//! training at a known point.

mod catalog;
mod data;
mod errors;
mod events;
mod faults;
mod helpers;
mod import;
mod keys;
mod model;
mod ops;
mod recommendations;
