//! A newly accepted model reaches every replica within seconds: woken by the NOTIFY that comes
//! with the commit, or, when a notification is missed, by the trainer's polling. The delay is
//! measured and printed: a figure for the release notes.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};

use crate::{
    data,
    harness::{run, say, PgDatabase, Replica},
};

const ROUNDS: usize = 5;

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summary(mut samples: Vec<f64>) -> String {
    samples.sort_by(f64::total_cmp);
    format!(
        "min {:.0} ms, median {:.0} ms, max {:.0} ms over {} models",
        samples[0],
        samples[samples.len() / 2],
        samples[samples.len() - 1],
        samples.len()
    )
}

#[test]
fn a_new_model_reaches_the_other_replica_within_seconds() {
    run(async {
        let Some(db) = PgDatabase::shared().await else {
            return;
        };
        let a = Replica::start("a", &db.url, &[]).await;
        // B polls only every 30 s: a model reaching it within a few seconds came by NOTIFY.
        let b =
            Arc::new(Replica::start("b", &db.url, &[("RECLOOP_TRAINER_TICK_SECS", "30")]).await);
        a.post_all(&data::small()).await;
        let first = a.retrain_wait().await["version"].as_i64().expect("version");
        b.wait_for_version(first, Duration::from_secs(10)).await;

        // Meanwhile a client reads B without pause: every answer is whole, and the model
        // version it was served by never goes back (an atomic swap).
        let stop = Arc::new(AtomicBool::new(false));
        let reader = tokio::spawn({
            let (b, stop) = (b.clone(), stop.clone());
            async move {
                let (mut answers, mut newest) = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let answer = b.recommend("u1", "n=10").await;
                    let version = answer["model_version"].as_i64().expect("model_version");
                    assert!(
                        version >= newest,
                        "B went back from version {newest} to {version}"
                    );
                    assert_eq!(
                        answer["items"].as_array().map(Vec::len),
                        Some(10),
                        "{answer}"
                    );
                    newest = version;
                    answers += 1;
                }
                answers
            }
        });

        let (mut since_answer, mut since_trained) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            // The same log and parameters: the candidate ties the champion, and is accepted.
            let entry = a.retrain_wait().await;
            let answered = Instant::now();
            assert_eq!(entry["status"], "accepted", "{entry}");
            let version = entry["version"].as_i64().expect("version");
            let trained_at: DateTime<Utc> = entry["trained_at"]
                .as_str()
                .expect("trained_at")
                .parse()
                .expect("a time");
            let waited = b.wait_for_version(version, Duration::from_secs(10)).await;
            let seen = Utc::now();
            since_answer.push(millis(waited));
            since_trained.push((seen - trained_at).num_microseconds().unwrap_or(0) as f64 / 1e3);
            assert!(
                answered.elapsed() < Duration::from_secs(5),
                "version {version} took {:?} to reach B",
                answered.elapsed()
            );
            // Once B has it, both report the same version.
            assert_eq!(a.model_version().await, Some(version));
            assert_eq!(b.model_version().await, Some(version));
        }
        stop.store(true, Ordering::Relaxed);
        let answers = reader.await.expect("the reader");
        say(&format!(
            "figure: new model on A -> served by B (NOTIFY; B polls every 30 s): \
             since A's trained_at {}; since A's answer {}",
            summary(since_trained),
            summary(since_answer)
        ));
        say(&format!(
            "propagation: B answered {answers} recommendations during the swaps"
        ));

        // The fallback: a model that arrives without a notification (written straight to the
        // database, as a restore or a hand-made fix would) is found by polling. C polls
        // every second.
        let c = Replica::start("c", &db.url, &[]).await;
        let pool = db.pool().await;
        let mut tx = pool.begin().await.expect("a transaction");
        let copied: i64 = sqlx::query_scalar(
            "INSERT INTO model_versions (algorithm, status, reason, trained_ms, training_seconds, \
             events, users, items, log_seq, metrics, params) \
             SELECT algorithm, status, 'copied by the test, without a notification', \
             (extract(epoch FROM now()) * 1000)::bigint, training_seconds, events, users, items, \
             log_seq, metrics, params FROM model_versions \
             WHERE status = 'accepted' ORDER BY version DESC LIMIT 1 RETURNING version",
        )
        .fetch_one(&mut *tx)
        .await
        .expect("copying the newest model");
        sqlx::query(
            "INSERT INTO model_blobs (version, data) SELECT $1, data FROM model_blobs \
             WHERE version = (SELECT MAX(version) FROM model_blobs)",
        )
        .bind(copied)
        .execute(&mut *tx)
        .await
        .expect("copying its parameters");
        tx.commit().await.expect("commit");
        let committed = Instant::now();
        let (on_a, on_c) = tokio::join!(
            a.wait_for_version(copied, Duration::from_secs(10)),
            c.wait_for_version(copied, Duration::from_secs(10)),
        );
        say(&format!(
            "figure: a model without a notification, found by polling every 1 s: \
             A after {:.0} ms, C after {:.0} ms (since the commit: {:.0} ms)",
            millis(on_a),
            millis(on_c),
            millis(committed.elapsed())
        ));
        assert_eq!(a.model_version().await, Some(copied));
        assert_eq!(c.model_version().await, Some(copied));
        let answer = c.recommend("u1", "n=10").await;
        assert_eq!(answer["model_version"], copied, "{answer}");
        assert_eq!(answer["source"], "personalized", "{answer}");
    });
}

#[test]
fn a_rollback_on_one_replica_reaches_the_other_within_seconds() {
    run(async {
        let Some(db) = PgDatabase::shared().await else {
            return;
        };
        let a = Replica::start("a", &db.url, &[]).await;
        // B polls only every 30 s: a rollback reaching it within a few seconds came by NOTIFY.
        let b = Replica::start("b", &db.url, &[("RECLOOP_TRAINER_TICK_SECS", "30")]).await;
        a.post_all(&data::small()).await;
        let first = a.retrain_wait().await["version"].as_i64().expect("version");
        let second = a.retrain_wait().await["version"].as_i64().expect("version");
        b.wait_for_version(second, Duration::from_secs(10)).await;

        let (status, entry) = a
            .post(
                &format!("/v1/model/versions/{first}/activate?pin=true"),
                None,
            )
            .await;
        assert_eq!(status.as_u16(), 200, "{entry}");
        let answered = Instant::now();
        while b.model_version().await != Some(first) {
            assert!(
                answered.elapsed() < Duration::from_secs(5),
                "B still serves {:?}:\n{}",
                b.model_version().await,
                b.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let waited = answered.elapsed();
        let model = b.get_ok("/v1/model").await;
        assert_eq!(model["pinned"], true, "{model}");
        assert_eq!(b.recommend("u1", "n=5").await["model_version"], first);
        say(&format!(
            "figure: rollback on A -> served by B (NOTIFY; B polls every 30 s) after {:.0} ms",
            millis(waited)
        ));
    });
}
