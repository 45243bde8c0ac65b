//! Crash safety, tested with the real binary: several clients post events (single and small
//! batches, each with a unique `event_id`) and a client keeps retraining, while the server is
//! killed with SIGKILL at random moments (a seeded RNG; `RECLOOP_CRASH_SEED` replays a run) and
//! restarted on the same database. Clients retry what was not acknowledged. At the end, read
//! straight from the database: every acknowledged event is stored exactly once (retries were
//! reported as duplicates), the database passes its integrity check, and no model is lost or
//! half-published (every accepted version's parameters decode, the newest accepted is served
//! after a restart, every version acknowledged by `retrain?wait=true` is there).
//!
//! SQLite always; PostgreSQL too when `RECLOOP_TEST_POSTGRES_URL` is set
//! (`scripts/with-postgres cargo test --test crash -- --nocapture`, from the repository's root
//! or here). In the executable's crate, like `replicas`: only a package's own tests are told
//! where its binaries are (`CARGO_BIN_EXE_recloop`).

mod backup;
#[allow(dead_code)]
#[path = "../replicas/data.rs"]
mod data;
mod full_disk;
#[allow(dead_code)]
#[path = "../replicas/harness.rs"]
mod harness;
mod load;
#[path = "../../../tests/common/pg.rs"]
mod pg;
mod stored;

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recloop::model::FittedModel;
use serde_json::Value;

use harness::{run, say, PgDatabase};
use load::{event_client, trainer_client, Server, ITEMS, USERS};
use stored::Stored;

/// Kills per run (the contract of the test: at least 10).
const KILLS: usize = 12;
const CLIENTS: usize = 4;

/// Trainings long enough (a second or so in the test build) for kills to land inside them.
pub(crate) const ENV: &[(&str, &str)] = &[
    ("RECLOOP_FACTORS", "32"),
    ("RECLOOP_ITERATIONS", "10"),
    ("RUST_LOG", "warn"),
];

fn seed() -> u64 {
    std::env::var("RECLOOP_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_128)
}

#[test]
fn acknowledged_events_and_models_survive_sigkill_on_sqlite() {
    run(async {
        let dir = tempfile::tempdir().expect("a directory for the database");
        let url = format!("sqlite://{}", dir.path().join("crash.db").display());
        let stored = crash_run("sqlite", &url, seed()).await;
        assert_eq!(stored.integrity, "ok", "PRAGMA integrity_check");
    });
}

#[test]
fn acknowledged_events_and_models_survive_sigkill_on_postgres() {
    run(async {
        let Some(db) = PgDatabase::shared().await else {
            return;
        };
        let stored = crash_run("postgres", &db.url, seed()).await;
        assert_eq!(stored.integrity, "ok", "amcheck");
    });
}

/// The whole scenario on one database; returns what the database held after the last crash.
async fn crash_run(backend: &str, url: &str, seed: u64) -> Stored {
    let started = Instant::now();
    let server = Server::start(url, ENV).await;
    // A shop with taste to learn from, before anything is killed.
    let shop = data::Shop {
        users: USERS,
        items: ITEMS,
        groups: 8,
        events_per_user: 25,
        seed,
    };
    server
        .replica()
        .expect("running")
        .post_all(&shop.events())
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let training = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(event_client(c, seed, server.clone(), stop.clone())))
        .collect();
    let trainer = tokio::spawn(trainer_client(
        server.clone(),
        stop.clone(),
        training.clone(),
    ));

    // The killer: every other kill aimed inside a training (50 ms to 1 s after a retrain went
    // out; one takes about half a second in the test build), the rest at any moment; every
    // third restart is itself killed while it opens the database.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut mid_training, mut while_starting) = (0, 0);
    for k in 0..KILLS {
        if k % 2 == 1 {
            let waiting = Instant::now();
            while !training.load(Ordering::SeqCst) && waiting.elapsed() < Duration::from_secs(10) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(rng.gen_range(50..1_000))).await;
        } else {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..1_500))).await;
        }
        if training.load(Ordering::SeqCst) {
            mid_training += 1;
        }
        server.kill();
        if k % 3 == 2 {
            let after = Duration::from_millis(rng.gen_range(0..400));
            server.crash_while_starting(after).await;
            while_starting += 1;
        }
        server.restart().await;
    }
    // Let the clients finish what they have in flight, and one last training complete.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut reports = Vec::new();
    for c in clients {
        reports.push(c.await.expect("an event client panicked"));
    }
    let trainer = trainer.await.expect("the trainer client panicked");

    // Acknowledged events posted again are duplicates, not new events.
    let replica = server.replica().expect("running");
    let again: Vec<Value> = reports
        .iter()
        .flat_map(|r| r.acked.iter().take(25).cloned())
        .collect();
    let (status, answer) = replica
        .post("/v1/events", Some(&Value::Array(again.clone())))
        .await;
    assert_eq!(status, 200, "{answer}");
    drop(replica);

    // One last crash, then the database as it was left.
    server.kill();
    let stored = if backend == "sqlite" {
        stored::read_sqlite(url).await
    } else {
        stored::read_postgres(url).await
    };

    let acked: HashSet<&String> = reports.iter().flat_map(|r| &r.acked_ids).collect();
    let lost = acked
        .iter()
        .filter(|id| !stored.events.contains_key(**id))
        .count();
    let twice = stored.events.values().filter(|n| **n > 1).count();
    let unasked = stored
        .events
        .keys()
        .filter(|id| !acked.contains(id))
        .count();
    let sum = |f: fn(&load::ClientReport) -> u64| reports.iter().map(f).sum::<u64>();
    say(&format!(
        "figure ({backend}, seed {seed}): {} SIGKILLs ({mid_training} while a retrain?wait=true was in flight, \
         {while_starting} while starting), \
         {} events acknowledged, {lost} lost, {twice} stored twice; {} requests retried after a \
         kill, which reported {} duplicate(s) (committed by the killed process before it could \
         answer); {} model versions acknowledged by retrain?wait=true, {} in the database; \
         integrity check: {}; {:.1} s",
        KILLS + while_starting,
        acked.len(),
        sum(|r| r.retried),
        sum(|r| r.duplicates),
        trainer.acked_versions.len(),
        stored.models.len(),
        stored.integrity,
        started.elapsed().as_secs_f64()
    ));
    assert_eq!(lost, 0, "acknowledged events lost");
    assert_eq!(
        answer["accepted"], 0,
        "acknowledged events stored again: {answer}"
    );
    assert_eq!(answer["duplicates"], again.len(), "{answer}");
    assert_eq!(twice, 0, "events stored more than once");
    assert_eq!(unasked, 0, "events stored that no client sent");
    assert_eq!(
        sum(|r| r.accepted) + sum(|r| r.duplicates),
        acked.len() as u64,
        "the acknowledgements do not add up to the events sent"
    );
    assert!(mid_training > 0, "no kill landed during a training");

    check_models(&stored, &trainer.acked_versions);
    // A fresh process on what was left serves the newest accepted version, and recommends with it.
    let newest = stored
        .models
        .iter()
        .filter(|(_, status, _)| status == "accepted")
        .map(|(v, _, _)| *v)
        .max()
        .expect("at least one accepted model");
    server.restart().await;
    let replica = server.replica().expect("running");
    assert_eq!(replica.model_version().await, Some(newest));
    let answer = replica.recommend("u1", "n=10").await;
    assert_eq!(answer["source"], "personalized", "{answer}");
    assert_eq!(answer["model_version"], newest, "{answer}");
    assert_eq!(
        answer["items"].as_array().map(Vec::len),
        Some(10),
        "{answer}"
    );
    server.kill();
    stored
}

/// No model lost, none half-published.
fn check_models(stored: &Stored, acknowledged: &[(i64, String)]) {
    for (version, status, blob) in &stored.models {
        match (status.as_str(), blob) {
            ("accepted", Some(bytes)) => {
                if let Err(e) = FittedModel::from_bytes(bytes) {
                    panic!("version {version}'s parameters do not decode: {e}");
                }
            }
            ("accepted", None) => panic!("version {version} is accepted without its parameters"),
            ("rejected", _) => {}
            (other, _) => panic!("version {version} has status {other:?}"),
        }
    }
    for (version, status) in acknowledged {
        let found = stored.models.iter().find(|(v, _, _)| v == version);
        assert_eq!(
            found.map(|(_, s, _)| s),
            Some(status),
            "version {version}, acknowledged as {status}, is not in the database as such"
        );
    }
}
