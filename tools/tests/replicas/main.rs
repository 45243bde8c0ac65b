//! Replicas on one PostgreSQL, as real processes: the `recloop` binary started twice (or more)
//! with `serve`, each on its own loopback port, sharing a database of the test's own.
//!
//! - `realtime`: an event acknowledged by one replica shapes the other's next answer;
//! - `lease`: one training at a time across replicas;
//! - `propagation`: a newly accepted model reaches the other replica (NOTIFY, and the
//!   polling fallback), and so does a rollback, with the delays printed as figures;
//! - `takeover`: the training replica killed mid-training, another one takes over;
//! - `outage`: PostgreSQL stopped and started again under two running replicas;
//! - `shutdown`: SIGTERM drains the requests in flight and stops the process cleanly (SQLite:
//!   this one needs no PostgreSQL).
//!
//! The PostgreSQL tests need `RECLOOP_TEST_POSTGRES_URL` (a superuser URL): run them through
//! `scripts/with-postgres cargo test --test replicas`. Without it they say "skipped" and pass,
//! unless `RECLOOP_REQUIRE_POSTGRES=1`. The outage test also needs PostgreSQL's server binaries
//! (`initdb`, `pg_ctl`): it runs a private cluster that it can stop and start.
//!
//! The tests run one at a time (see `harness::run`): each starts processes that train on both
//! cores, and the timing bounds they assert would mean little with another test competing.
//!
//! They live in the executable's crate (`tools/`) because only a package's own tests are told
//! where its binaries are (`CARGO_BIN_EXE_recloop`).

mod cluster;
mod data;
mod harness;
mod lease;
mod outage;
#[path = "../../../tests/common/pg.rs"]
mod pg;
mod propagation;
mod realtime;
mod shutdown;
mod takeover;
