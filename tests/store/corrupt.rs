//! Stored values this version cannot read: every read that meets one says `Corrupt` (a 500
//! for the client, never "retry later"), on every path that decodes them, and the store goes
//! on answering what it can read.

use recloop::{
    domain::EventType,
    store::{Arm, Impression, ModelStatus, StoreError, StoreResult},
};

use crate::{backend::TestDb, support::*};

fn assert_corrupt<T: std::fmt::Debug>(what: &str, read: StoreResult<T>) {
    assert!(
        matches!(read, Err(StoreError::Corrupt(_))),
        "{what}: {read:?}"
    );
}

pub async fn values_this_version_cannot_read_are_corrupt(db: TestDb) {
    let store = db.open().await;
    let u1 = user("u1");
    store
        .append_events(vec![event("u1", "sku-1", EventType::Click, 1_000)])
        .await
        .unwrap();
    store
        .insert_model(model_record(ModelStatus::Accepted, 1), Some(vec![1, 2, 3]))
        .await
        .unwrap();
    store
        .insert_impressions(vec![Impression {
            recommendation_id: "r1".to_owned(),
            user_id: "u1".to_owned(),
            model_version: 1,
            arm: Arm::Champion,
            experiment: 0,
            source: "personalized".to_owned(),
            items: vec!["sku-1".to_owned()],
            shown_ms: 900,
        }])
        .await
        .unwrap();
    assert_eq!(store.user_history(&u1).await.unwrap().len(), 1);

    // What a newer release, or a hand-made fix, might have written.
    db.execute("UPDATE events SET type = 99").await;
    db.execute("UPDATE model_versions SET status = 'promoted'")
        .await;
    db.execute("UPDATE online_counts SET arm = 'treatment'")
        .await;

    assert_corrupt("user_history", store.user_history(&u1).await);
    // On SQLite the request path's reader threads, not the pool.
    assert_corrupt("user_activity", store.user_activity(&u1, 10).await);
    assert_corrupt("load_log", store.load_log().await);
    assert_corrupt("model_versions", store.model_versions().await);
    assert_corrupt("online_counts", store.online_counts().await);
    store.ping().await.expect("the database still answers");
    assert_eq!(store.max_event_seq().await.unwrap(), 1);
    assert!(store.user_history(&user("u2")).await.unwrap().is_empty());
}
