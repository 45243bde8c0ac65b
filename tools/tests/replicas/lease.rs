//! One training at a time across replicas: the PostgreSQL advisory-lock lease.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Connection;

use crate::{
    data::{self, Shop},
    harness::{count, run, say, PgDatabase, Replica, TRAINING_LOCK},
};

/// A version's training as an interval of wall-clock time, from `/v1/model/versions`.
fn training_interval(v: &Value) -> (i64, DateTime<Utc>, DateTime<Utc>) {
    let end: DateTime<Utc> = v["trained_at"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("trained_at of {v}"));
    let seconds = v["training_seconds"].as_f64().expect("training_seconds");
    let start = end - chrono::Duration::microseconds((seconds * 1e6) as i64);
    (v["version"].as_i64().expect("version"), start, end)
}

/// No two trainings overlap in time. `trained_at` is kept to the millisecond, hence the
/// tolerance; two trainings at once would overlap by a whole fit.
fn assert_no_overlap(versions: &[Value]) {
    let tolerance = chrono::Duration::milliseconds(5);
    let mut intervals: Vec<_> = versions.iter().map(training_interval).collect();
    intervals.sort_by_key(|&(_, start, _)| start);
    for pair in intervals.windows(2) {
        let ((v1, s1, e1), (v2, s2, e2)) = (pair[0], pair[1]);
        assert!(
            s2 + tolerance >= e1,
            "trainings overlap: version {v1} ran {s1} .. {e1}, version {v2} ran {s2} .. {e2}"
        );
    }
}

async fn retrain(replica: &Replica) -> StatusCode {
    let (status, body) = replica.post("/v1/model/retrain", None).await;
    if status == StatusCode::CONFLICT {
        assert_eq!(body["error"]["code"], "training_in_progress", "{body}");
    }
    status
}

#[test]
fn one_replica_trains_at_a_time() {
    run(async {
        let Some(db) = PgDatabase::shared().await else {
            return;
        };
        let pool = db.pool().await;
        // Background trainers on as well (retrain after every new event, checked every
        // second): they compete with the explicit retrains below.
        let env = [
            ("RECLOOP_RETRAIN_AFTER_EVENTS", "1"),
            // Slower fits (~0.1-1 s here) so that trainings asked for at once do meet.
            ("RECLOOP_FACTORS", "24"),
        ];
        let a = Replica::start("a", &db.url, &env).await;
        let b = Replica::start("b", &db.url, &env).await;

        // 1. Whoever holds the lease holds every replica's training off. The test takes it
        // itself: both refuse to start (409), and a `?wait=true` waits for it.
        let mut holder = sqlx::PgConnection::connect(&db.url)
            .await
            .expect("connecting");
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(TRAINING_LOCK)
            .fetch_one(&mut holder)
            .await
            .expect("taking the lease");
        assert!(got, "nobody trains yet: the lease is free");
        let shop = Shop {
            users: 300,
            items: 150,
            groups: 10,
            events_per_user: 10,
            seed: 11,
        };
        a.post_all(&shop.events()).await;
        let (on_a, on_b) = tokio::join!(retrain(&a), retrain(&b));
        assert_eq!((on_a, on_b), (StatusCode::CONFLICT, StatusCode::CONFLICT));
        let waiting = tokio::spawn({
            let url = a.base.clone();
            async move {
                reqwest::Client::new()
                    .post(format!("{url}/v1/model/retrain?wait=true"))
                    .send()
                    .await
                    .expect("retrain?wait=true")
            }
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            !waiting.is_finished(),
            "retrain?wait=true did not wait for the lease"
        );
        assert_eq!(count(&pool, "SELECT COUNT(*) FROM model_versions").await, 0);
        let released_at = Instant::now();
        holder.close().await.expect("releasing the lease");
        let answer = waiting.await.expect("the waiting request");
        assert_eq!(answer.status(), StatusCode::OK);
        say(&format!(
            "lease: retrain?wait=true answered {:?} after the lease was released",
            released_at.elapsed()
        ));

        // 2. Rounds of retrains asked of both at once, background trainings in between
        // (each round's new events make both trainers want to train).
        let (mut started, mut refused) = (0, 0);
        for round in 0..5 {
            let events: Vec<Value> = (0..20)
                .map(|i| data::event(&format!("u{}", (round * 20 + i) % 300), "i1", "click"))
                .collect();
            b.post_events_ok(&Value::Array(events)).await;
            let (on_a, on_b) = tokio::join!(retrain(&a), retrain(&b));
            for status in [on_a, on_b] {
                match status {
                    StatusCode::ACCEPTED => started += 1,
                    StatusCode::CONFLICT => refused += 1,
                    other => panic!("retrain answered {other}"),
                }
            }
            // Both ask to wait: each gets a training of its own, one after the other.
            let (wa, wb) = tokio::join!(a.retrain_wait(), b.retrain_wait());
            assert_ne!(wa["version"], wb["version"], "{wa} {wb}");
        }

        // Let the last trainings (background ones included) finish, then read the history.
        let quiet_since = Instant::now();
        loop {
            let before = count(&pool, "SELECT COUNT(*) FROM model_versions").await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let after = count(&pool, "SELECT COUNT(*) FROM model_versions").await;
            if before == after && crate::harness::lease_holder(&pool).await.is_none() {
                break;
            }
            assert!(
                quiet_since.elapsed() < Duration::from_secs(60),
                "trainings never stop"
            );
        }
        let versions = b.get_ok("/v1/model/versions").await["versions"]
            .as_array()
            .expect("versions")
            .clone();
        assert_no_overlap(&versions);
        say(&format!(
            "lease: {} trainings, none overlapping; simultaneous retrains: {started} started, \
             {refused} refused (409)",
            versions.len()
        ));
        assert!(
            refused > 0,
            "two retrains asked at once never met the lease"
        );
        // 1 (after the lease) + 2 waited for per round, + those started (202).
        let least = 1 + 5 * 2 + started;
        assert!(
            versions.len() >= least,
            "{} versions, {least} asked for",
            versions.len()
        );
    });
}

/// The overlap check itself, on made-up versions: it must catch two trainings at once.
#[test]
fn overlapping_trainings_are_caught() {
    let version = |v: i64, end: &str, seconds: f64| serde_json::json!({"version": v, "trained_at": end, "training_seconds": seconds});
    let apart = [
        version(1, "2026-11-28T10:00:01.000Z", 1.0),
        version(2, "2026-11-28T10:00:02.500Z", 1.0),
    ];
    assert_no_overlap(&apart);
    let overlapping = [
        version(1, "2026-11-28T10:00:01.000Z", 1.0),
        version(2, "2026-11-28T10:00:01.900Z", 1.0),
    ];
    assert!(std::panic::catch_unwind(|| assert_no_overlap(&overlapping)).is_err());
}

/// A replica whose lease connection is cut mid-training (a database restart, a network blip, an
/// operator's `pg_terminate_backend`) has lost the lease: another replica may train meanwhile,
/// so the first must not record its training afterwards.
#[test]
fn a_training_that_lost_its_lease_records_nothing() {
    run(async {
        let Some(db) = PgDatabase::shared().await else {
            return;
        };
        let pool = db.pool().await;
        // A fits a mid-sized model, long enough to cut its lease meanwhile: 200 sweeps, since
        // the SIMD kernels made the default 15 fast enough to risk finishing before the cut.
        let a = Replica::start(
            "a",
            &db.url,
            &[("RECLOOP_FACTORS", "96"), ("RECLOOP_ITERATIONS", "200")],
        )
        .await;
        let shop = Shop {
            users: 400,
            items: 200,
            groups: 10,
            events_per_user: 10,
            seed: 5,
        };
        a.post_all(&shop.events()).await;
        let _ = a.post("/v1/model/retrain", None).await;
        let asked = Instant::now();
        while crate::harness::lease_holder(&pool).await.as_deref() != Some("recloop-a") {
            assert!(
                asked.elapsed() < Duration::from_secs(10),
                "A never took the lease"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let b = Replica::start("b", &db.url, &[("RECLOOP_RETRAIN_AFTER_EVENTS", "1")]).await;
        // Cut A's lease connection; A's fit goes on.
        let cut: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'recloop-a' AND datname = current_database() \
             AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)",
        )
        .fetch_all(&pool)
        .await
        .expect("terminating A's lease connection");
        assert_eq!(cut, [true]);
        b.wait_for_version(1, Duration::from_secs(60)).await;
        // Wait for A's fit to end (its training_seconds would show in its log), then look.
        let waiting = Instant::now();
        while !a.log_tail(400).contains("training finished")
            && !a.log_tail(400).contains("training failed")
        {
            assert!(
                waiting.elapsed() < Duration::from_secs(150),
                "A's training never ended"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let versions = b.get_ok("/v1/model/versions").await["versions"]
            .as_array()
            .expect("versions")
            .clone();
        assert_no_overlap(&versions);
    });
}
