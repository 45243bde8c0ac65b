//! Model versions: records, their fitted parameters, and which one is in service.

use recloop::store::{DynStore, ModelRecord, ModelStatus, NewModelRecord};
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

/// The model in service is the newest accepted one; rejected versions (stored without
/// parameters) never are.
pub async fn latest_accepted_skips_rejected(store: DynStore) {
    assert_eq!(store.latest_accepted_version().await.unwrap(), None);

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
    assert_eq!(
        store.latest_accepted_version().await.unwrap(),
        Some(v1.version)
    );
    assert_eq!(
        store.latest_accepted_model().await.unwrap(),
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
    assert_eq!(
        store.latest_accepted_version().await.unwrap(),
        Some(v3.version)
    );
    let (record, blob) = store.latest_accepted_model().await.unwrap().unwrap();
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
