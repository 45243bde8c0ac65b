//! The training replica dies mid-training (SIGKILL): its lease goes with its connection, another
//! replica takes over within a bounded time, and nothing half-published is left behind.

use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::StatusCode;

use crate::{
    data::Shop,
    harness::{count, lease_holder, run, say, PgDatabase, Replica},
};

/// How long the surviving replica may take to train in the dead one's place.
const TAKEOVER_BOUND: Duration = Duration::from_secs(60);

#[test]
fn when_the_training_replica_dies_another_takes_over() {
    run(async {
        let Some(db) = PgDatabase::shared().await else {
            return;
        };
        let pool = db.pool().await;
        // A trains a big model: minutes in this (debug) build. It will not live that long.
        // Exact solves (no CG steps): the SIMD CG kernels made the CG fit fast enough to finish
        // before the kill even in a debug build.
        let a = Replica::start(
            "a",
            &db.url,
            &[
                ("RECLOOP_FACTORS", "192"),
                ("RECLOOP_ITERATIONS", "50"),
                ("RECLOOP_CG_STEPS", "0"),
            ],
        )
        .await;
        let shop = Shop {
            users: 2_000,
            items: 500,
            groups: 20,
            events_per_user: 10,
            seed: 3,
        };
        a.post_all(&shop.events()).await;
        // 202; or 409 when A's trainer got there first: with no model yet, a replica trains
        // the first one by itself (whatever RECLOOP_RETRAIN_AFTER_EVENTS says). Either way, A
        // trains and holds the lease.
        let (status, body) = a.post("/v1/model/retrain", None).await;
        assert!(
            status == StatusCode::ACCEPTED || status == StatusCode::CONFLICT,
            "{status} {body}"
        );
        let asked = Instant::now();
        while lease_holder(&pool).await.as_deref() != Some("recloop-a") {
            assert!(
                asked.elapsed() < Duration::from_secs(10),
                "A never took the lease"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // B: retrains as soon as there is anything new (here: no model at all), looks every
        // second, fits a small model. While A holds the lease, B waits.
        let b = Replica::start("b", &db.url, &[("RECLOOP_RETRAIN_AFTER_EVENTS", "1")]).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            b.model_version().await,
            None,
            "B trained while A held the lease"
        );
        assert_eq!(lease_holder(&pool).await.as_deref(), Some("recloop-a"));
        assert_eq!(
            count(&pool, "SELECT COUNT(*) FROM model_versions").await,
            0,
            "A's training finished before the kill: make it slower"
        );

        let killed_wall = Utc::now();
        a.kill();
        let killed = Instant::now();
        // The lease passes to B (or B has trained already: it trains a small model)...
        while lease_holder(&pool).await.as_deref() != Some("recloop-b")
            && b.model_version().await.is_none()
        {
            assert!(killed.elapsed() < TAKEOVER_BOUND, "B never took the lease");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let handed_over = killed.elapsed();
        // ...and B serves a model of its own.
        b.wait_for_version(1, TAKEOVER_BOUND).await;
        let taken_over = killed.elapsed();
        say(&format!(
            "figure: training replica killed mid-training -> the lease is the other's after \
             {:.3} s, which serves its own new model after {:.1} s (trainer tick 1 s)",
            handed_over.as_secs_f64(),
            taken_over.as_secs_f64()
        ));
        assert!(taken_over < TAKEOVER_BOUND);

        // The version is B's (its parameters, trained after the kill), and it is whole.
        let versions = b.get_ok("/v1/model/versions").await;
        let versions = versions["versions"].as_array().expect("versions");
        for v in versions {
            assert_eq!(v["params"]["als"]["factors"], 8, "not trained by B: {v}");
            let trained_at: chrono::DateTime<Utc> = v["trained_at"]
                .as_str()
                .expect("trained_at")
                .parse()
                .expect("a time");
            let seconds = v["training_seconds"].as_f64().expect("training_seconds");
            let started = trained_at - chrono::Duration::milliseconds((seconds * 1e3) as i64);
            assert!(
                started + chrono::Duration::milliseconds(5) >= killed_wall,
                "a training began before A was killed: {v}"
            );
        }
        assert_eq!(
            count(
                &pool,
                "SELECT COUNT(*) FROM model_versions v LEFT JOIN model_blobs b USING (version) \
                 WHERE v.status = 'accepted' AND b.version IS NULL"
            )
            .await,
            0,
            "an accepted version without its parameters"
        );

        // A fresh process, on the database alone, serves that version.
        let version = b.model_version().await.expect("B's version");
        drop(b);
        let c = Replica::start("c", &db.url, &[]).await;
        assert_eq!(c.model_version().await, Some(version));
        let answer = c.recommend("u5", "n=10").await;
        assert_eq!(answer["source"], "personalized", "{answer}");
        assert_eq!(answer["model_version"], version, "{answer}");
    });
}
