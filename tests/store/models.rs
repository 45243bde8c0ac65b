//! Model versions: records, their fitted parameters, and which one is in service.

use recloop::store::{Activation, DynStore, ModelRecord, ModelStatus, NewModelRecord, Service};
use serde_json::json;

use crate::support::*;

/// What the store should return for `record` once it has assigned `version`.
fn stored(record: &NewModelRecord, version: i64) -> ModelRecord {
    let r = record.clone();
    ModelRecord {
        version,
        algorithm: r.algorithm,
        status: r.status,
        reason: r.reason,
        trained_at: to_millis(r.trained_at),
        training_seconds: r.training_seconds,
        events: r.events,
        users: r.users,
        items: r.items,
        log_seq: r.log_seq,
        metrics: r.metrics,
        params: r.params,
    }
}

/// Every field of every version comes back, newest first; versions only grow.
pub async fn model_versions_round_trip_newest_first(store: DynStore) {
    let mut records = [
        model_record(ModelStatus::Accepted, 0),
        model_record(ModelStatus::Rejected, 1),
        model_record(ModelStatus::Accepted, 2),
    ];
    // Fields at their edges.
    records[1].reason = "NDCG@10 0.1 < 0.2 — «rejected» 🙅".to_owned();
    records[1].training_seconds = 0.000_123_456_789_012_345_6;
    records[1].events = i64::MAX;
    records[1].log_seq = 0;
    records[1].metrics =
        json!({"ndcg_at_10": 0.0, "champion": {"version": 1, "recall_at_20": 1.0 / 7.0}});
    records[1].params = json!({});
    records[2].trained_at = chrono::DateTime::from_timestamp(-1, 999_999_999).unwrap();

    let mut inserted = Vec::new();
    for (n, record) in records.iter().enumerate() {
        let blob = (record.status == ModelStatus::Accepted).then(|| vec![n as u8; 16]);
        let row = store.insert_model(record.clone(), blob).await.unwrap();
        assert_eq!(row, stored(record, row.version), "insert_model's answer");
        if let Some(previous) = inserted.last() {
            let previous: &ModelRecord = previous;
            assert!(row.version > previous.version);
        }
        inserted.push(row);
    }
    inserted.reverse();
    assert_eq!(store.model_versions().await.unwrap(), inserted);
    assert_eq!(
        inserted[0].trained_at.timestamp_millis(),
        -1,
        "to the millisecond, before 1970 too"
    );
    assert_eq!(
        inserted[2].trained_at.timestamp_subsec_millis(),
        123,
        "sub-millisecond digits dropped"
    );
}

fn champion(version: i64) -> Service {
    Service {
        champion: Some(version),
        pinned: false,
    }
}

/// Without an operator's choice the champion is the newest accepted version; rejected
/// versions (stored without parameters) never are.
pub async fn the_champion_is_the_newest_accepted(store: DynStore) {
    assert_eq!(store.service().await.unwrap(), Service::default());

    let blob1: Vec<u8> = (0..=255).collect();
    let v1 = store
        .insert_model(model_record(ModelStatus::Accepted, 1), Some(blob1.clone()))
        .await
        .unwrap();
    let v2 = store
        .insert_model(model_record(ModelStatus::Rejected, 2), None)
        .await
        .unwrap();
    assert!(v2.version > v1.version);
    assert_eq!(store.service().await.unwrap(), champion(v1.version));
    assert_eq!(
        store.champion_model().await.unwrap(),
        Some((v1.clone(), blob1))
    );

    // A few megabytes, as a fitted model is.
    let blob3: Vec<u8> = (0..4_000_000_u32).map(|i| (i * 7 % 251) as u8).collect();
    let v3 = store
        .insert_model(model_record(ModelStatus::Accepted, 3), Some(blob3.clone()))
        .await
        .unwrap();
    store
        .insert_model(model_record(ModelStatus::Rejected, 4), None)
        .await
        .unwrap();
    assert_eq!(store.service().await.unwrap(), champion(v3.version));
    let (record, blob) = store.champion_model().await.unwrap().unwrap();
    assert_eq!(record, v3);
    assert!(blob == blob3, "the parameters come back byte for byte");

    let statuses: Vec<ModelStatus> = store
        .model_versions()
        .await
        .unwrap()
        .iter()
        .map(|m| m.status)
        .collect();
    use ModelStatus::*;
    assert_eq!(statuses, [Rejected, Accepted, Rejected, Accepted]);
}

/// An operator's choice: an activated earlier version serves until a version recorded after
/// the activation is accepted; a pinned one until it is unpinned, and after that until the
/// next accepted version. Only accepted versions with parameters can be chosen; a running
/// challenger is retired by an activation.
pub async fn an_activated_version_serves_until_replaced_or_unpinned(store: DynStore) {
    let blob = |n: u8| Some(vec![n; 8]);
    let insert = |status, n: u8| {
        let store = store.clone();
        async move {
            let blob = (status != ModelStatus::Rejected).then(|| blob(n)).flatten();
            store
                .insert_model(model_record(status, n.into()), blob)
                .await
                .unwrap()
                .version
        }
    };
    let v1 = insert(ModelStatus::Accepted, 1).await;
    let v2 = insert(ModelStatus::Accepted, 2).await;
    let rejected = insert(ModelStatus::Rejected, 3).await;
    let challenger = insert(ModelStatus::Challenger, 4).await;
    assert_eq!(store.service().await.unwrap(), champion(v2));

    assert_eq!(
        store.activate_model(rejected, false, "", "").await.unwrap(),
        Activation::NotAccepted(ModelStatus::Rejected)
    );
    assert_eq!(
        store
            .activate_model(challenger, false, "", "")
            .await
            .unwrap(),
        Activation::NotAccepted(ModelStatus::Challenger)
    );
    assert_eq!(
        store
            .activate_model(challenger + 100, false, "", "")
            .await
            .unwrap(),
        Activation::Unknown
    );
    assert_eq!(
        store.service().await.unwrap(),
        champion(v2),
        "refusals change nothing"
    );
    assert_eq!(store.challenger_version().await.unwrap(), Some(challenger));

    // Back to v1: recorded in its reason, the challenger retired, and v1 serves.
    let Activation::Activated(record) = store
        .activate_model(v1, false, "; back", "; gone")
        .await
        .unwrap()
    else {
        panic!("v1 is accepted");
    };
    assert_eq!(record.version, v1);
    assert!(record.reason.ends_with("; back"), "{}", record.reason);
    assert_eq!(store.service().await.unwrap(), champion(v1));
    assert_eq!(store.champion_model().await.unwrap().unwrap().0, record);
    assert_eq!(store.challenger_version().await.unwrap(), None);
    let versions = store.model_versions().await.unwrap();
    let retired = versions.iter().find(|r| r.version == challenger).unwrap();
    assert_eq!(retired.status, ModelStatus::Retired);
    assert!(retired.reason.ends_with("; gone"));
    assert!(!store.unpin_model().await.unwrap(), "nothing was pinned");

    // A version recorded after the activation replaces it once accepted; a rejected one not.
    insert(ModelStatus::Rejected, 5).await;
    assert_eq!(store.service().await.unwrap(), champion(v1));
    let v6 = insert(ModelStatus::Accepted, 6).await;
    assert_eq!(store.service().await.unwrap(), champion(v6));

    // Pinned, v2 stays whatever is accepted after it, until unpinned; then the next accepted
    // version takes over, not one recorded during the pin.
    assert!(matches!(
        store.activate_model(v2, true, "", "").await.unwrap(),
        Activation::Activated(_)
    ));
    let pinned = Service {
        champion: Some(v2),
        pinned: true,
    };
    assert_eq!(store.service().await.unwrap(), pinned);
    let v7 = insert(ModelStatus::Accepted, 7).await;
    assert_eq!(store.service().await.unwrap(), pinned);
    assert_eq!(store.champion_model().await.unwrap().unwrap().1, vec![2; 8]);
    assert!(store.unpin_model().await.unwrap());
    assert_eq!(store.service().await.unwrap(), champion(v2));
    assert!(!store.unpin_model().await.unwrap());
    let v8 = insert(ModelStatus::Accepted, 8).await;
    assert_eq!(store.service().await.unwrap(), champion(v8));
    assert!(v7 < v8);
}
