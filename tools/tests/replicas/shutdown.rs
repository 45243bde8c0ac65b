//! Graceful shutdown: SIGTERM stops the listener, lets the requests in flight finish (here a
//! `retrain?wait=true` that is mid-training), stops the trainer, and the process exits 0.

use std::time::Duration;

use crate::{
    data::Shop,
    harness::{run, Replica},
};

#[test]
fn sigterm_drains_requests_in_flight_and_exits_cleanly() {
    run(async {
        let dir = tempfile::tempdir().expect("a directory for the database");
        let url = format!("sqlite://{}", dir.path().join("recloop.db").display());
        // A training that takes a while, so SIGTERM surely lands while it runs.
        let replica = Replica::start(
            "solo",
            &url,
            &[
                ("RECLOOP_SHUTDOWN_GRACE_SECS", "60"),
                ("RECLOOP_FACTORS", "64"),
                ("RECLOOP_ITERATIONS", "40"),
                ("RECLOOP_CG_STEPS", "0"),
            ],
        )
        .await;
        let events = Shop {
            users: 1_000,
            items: 400,
            groups: 8,
            events_per_user: 20,
            seed: 3,
        }
        .events();
        replica.post_all(&events).await;

        let in_flight = {
            let base = replica.base.clone();
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("{base}/v1/model/retrain?wait=true"))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !in_flight.is_finished(),
            "the training finished before the signal; make it slower"
        );
        replica.terminate();

        let answered = in_flight.await.expect("the request task");
        assert_eq!(
            answered
                .expect("the request in flight got an answer")
                .as_u16(),
            200,
            "the request in flight was drained, not cut"
        );
        let status = replica
            .wait_exit(Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("still running after SIGTERM:\n{}", replica.log_tail(20)));
        assert!(
            status.success(),
            "exit status {status}:\n{}",
            replica.log_tail(20)
        );
        let log = replica.log_tail(20);
        assert!(log.contains("shutting down"), "{log}");
        assert!(log.contains("stopped"), "{log}");
    });
}
