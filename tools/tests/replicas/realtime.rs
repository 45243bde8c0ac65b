//! Real time across replicas: an event acknowledged by one replica shapes that user's very
//! next recommendations from the other, although the other had that user cached.

use std::time::Duration;

use serde_json::Value;

use crate::{
    data,
    harness::{item_ids, run, PgDatabase, Replica},
};

#[test]
fn an_event_acknowledged_by_one_replica_shapes_the_next_answer_of_the_other() {
    run(async {
        let Some(db) = PgDatabase::shared().await else {
            return;
        };
        let a = Replica::start("a", &db.url, &[]).await;
        let b = Replica::start("b", &db.url, &[]).await;
        let events = data::small();
        a.post_all(&events).await;
        let version = a.retrain_wait().await["version"].as_i64().expect("version");
        b.wait_for_version(version, Duration::from_secs(10)).await;

        // Both directions: written on one, read from the other.
        for (writer, reader) in [(&a, &b), (&b, &a)] {
            let user = format!("newcomer-via-{}", writer.name);
            let query = "n=20";

            // No history yet: popular items; the reader now has this user cached.
            let first = reader.recommend(&user, query).await;
            assert_eq!(first["source"], "popular", "{first}");

            // The user's first purchase, acknowledged by the writer...
            let bought = "i3";
            writer
                .post_events_ok(&data::event(&user, bought, "purchase"))
                .await;
            // ...is what the reader answers from at once: no sleep, no retry.
            let next = reader.recommend(&user, query).await;
            assert_eq!(next["source"], "personalized", "{next}");
            assert_eq!(next["model_version"], version, "{next}");
            let items = item_ids(&next);
            assert_eq!(items.len(), 20, "{next}");
            assert!(
                !items.contains(&bought.to_owned()),
                "the purchase is shown again: {next}"
            );
            // Same model and same history: the writer ranks exactly as the reader does.
            let on_writer = writer.recommend(&user, query).await;
            assert_eq!(items, item_ids(&on_writer), "the replicas disagree");

            // A click on the reader's top pick, via the writer: the reader hides it at once
            // (interacted items are hidden by default) and still agrees with the writer.
            let clicked = items[0].clone();
            writer
                .post_events_ok(&data::event(&user, &clicked, "click"))
                .await;
            let after = reader.recommend(&user, query).await;
            let after_items = item_ids(&after);
            assert!(
                !after_items.contains(&clicked),
                "clicked item still shown: {after}"
            );
            assert!(!after_items.contains(&bought.to_owned()), "{after}");
            assert_eq!(
                after_items,
                item_ids(&writer.recommend(&user, query).await),
                "the replicas disagree after the click"
            );
        }

        // A known user, cached on B, changes taste on A: B follows at once.
        let user = "u0";
        let before = b.recommend(user, "n=10").await;
        assert_eq!(before["source"], "personalized", "{before}");
        let novel: Vec<Value> = item_ids(&before)
            .iter()
            .take(3)
            .map(|item| data::event(user, item, "purchase"))
            .collect();
        a.post_events_ok(&Value::Array(novel)).await;
        let after = item_ids(&b.recommend(user, "n=10").await);
        for bought in item_ids(&before).iter().take(3) {
            assert!(
                !after.contains(bought),
                "{bought} bought on A, still recommended by B"
            );
        }
    });
}
