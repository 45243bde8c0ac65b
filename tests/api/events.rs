//! `POST /v1/events`: acceptance, idempotency, whole-batch validation, concurrency.

use recloop::domain::EventType;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

pub async fn one_event_and_a_batch_are_accepted_and_stored(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    let one = app.post_events_ok(&event("u1", "sku-1", "view")).await;
    assert_eq!(
        one,
        Counts {
            accepted: 1,
            duplicates: 0
        }
    );

    let batch = json!([
        {"user_id": "u1", "item_id": "sku-2", "type": "click", "timestamp": "2020-05-01T10:00:00Z"},
        {"user_id": "u2", "item_id": "sku-2", "type": "add_to_cart", "timestamp": "2020-05-01T12:00:00+02:00"},
        {"user_id": "u2", "item_id": "sku-3", "type": "purchase", "event_id": "e-1",
         "recommendation_id": "01JABCDEF-v3"},
    ]);
    let counts = app.post_events_ok(&batch).await;
    assert_eq!((counts.accepted, counts.duplicates), (3, 0));

    // Requests are stored in the order they were acknowledged; the events of one batch in any
    // order (PostgreSQL inserts them in event-id order, so concurrent batches cannot deadlock).
    let rows = app.stored_events().await;
    assert_eq!(rows.len(), 4);
    let stored = |user: &str, item: &str| -> (EventType, i64) {
        let row = rows
            .iter()
            .find(|r| r.user_id == user && r.item_id == item)
            .unwrap_or_else(|| panic!("{user} on {item} not stored: {rows:?}"));
        (row.event_type, row.ts_ms)
    };
    assert_eq!(
        (&rows[0].user_id[..], &rows[0].item_id[..]),
        ("u1", "sku-1")
    );
    // Explicit timestamps are kept (offsets honoured); omitted ones are the server's clock.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let (kind, ts_ms) = stored("u1", "sku-1");
    assert_eq!(kind, EventType::View);
    assert!((now_ms - ts_ms).abs() < 60_000, "{ts_ms}");
    assert_eq!(stored("u1", "sku-2"), (EventType::Click, 1_588_327_200_000));
    assert_eq!(
        stored("u2", "sku-2"),
        (EventType::AddToCart, 1_588_327_200_000)
    );
    let (kind, ts_ms) = stored("u2", "sku-3");
    assert_eq!(kind, EventType::Purchase);
    assert!((now_ms - ts_ms).abs() < 60_000, "{ts_ms}");
}

pub async fn ids_are_used_as_they_are(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let longest = "é".repeat(256); // 256 characters, 512 bytes: the limit counts characters
    for id in ["42", "a/b c?d#e", "ünï-çødé", "SKU 00-7%", longest.as_str()] {
        app.post_events_ok(&event(id, id, "purchase")).await;
    }
    let rows = app.stored_events().await;
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[1].user_id, "a/b c?d#e");
    assert_eq!(rows[4].item_id, longest);
}

pub async fn same_event_id_is_stored_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let e = |id: &str, item: &str| json!({"user_id": "u1", "item_id": item, "type": "purchase", "event_id": id});

    // Twice in one batch.
    let counts = app
        .post_events_ok(&json!([e("e1", "a"), e("e1", "a"), e("e2", "b")]))
        .await;
    assert_eq!((counts.accepted, counts.duplicates), (2, 1));
    // Again across requests, alone and mixed with a new one.
    let counts = app.post_events_ok(&e("e1", "a")).await;
    assert_eq!((counts.accepted, counts.duplicates), (0, 1));
    let counts = app
        .post_events_ok(&json!([e("e2", "b"), e("e3", "c")]))
        .await;
    assert_eq!((counts.accepted, counts.duplicates), (1, 1));
    // Events without an id are never duplicates of each other.
    let counts = app
        .post_events_ok(&json!([event("u1", "a", "view"), event("u1", "a", "view")]))
        .await;
    assert_eq!((counts.accepted, counts.duplicates), (2, 0));

    assert_eq!(app.stored_events().await.len(), 5);
}

/// A valid event, then `bad`: the 422 must point at index 1 and `field`, and store nothing.
async fn assert_rejected(app: &TestApp, bad: Value, field: &str) {
    let body = json!([event("ok-user", "ok-item", "view"), bad]);
    let response = app.post_events(&body).await;
    let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_event").await;
    let details = error["details"].as_array().expect("details");
    assert!(
        details
            .iter()
            .any(|d| d["index"] == 1 && d["field"] == field && d["message"].is_string()),
        "expected a detail at index 1 on {field:?}: {error}"
    );
    assert!(
        details.iter().all(|d| d["index"] == 1),
        "only the culprit is blamed: {error}"
    );
}

pub async fn a_batch_breaking_any_rule_is_rejected_whole(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let future = rfc3339(chrono::Utc::now().timestamp() + 6 * 60);
    let cases: Vec<(Value, &str)> = vec![
        // Wrong types.
        (
            json!({"user_id": 7, "item_id": "i", "type": "view"}),
            "user_id",
        ),
        (
            json!({"user_id": "u", "item_id": ["i"], "type": "view"}),
            "item_id",
        ),
        (json!({"user_id": "u", "item_id": "i", "type": 3}), "type"),
        (
            json!({"user_id": "u", "item_id": "i", "type": "view", "timestamp": 881250949}),
            "timestamp",
        ),
        (
            json!({"user_id": "u", "item_id": "i", "type": "view", "event_id": 12}),
            "event_id",
        ),
        (json!("not an object"), ""),
        // Missing fields.
        (json!({"item_id": "i", "type": "view"}), "user_id"),
        (json!({"user_id": "u", "type": "view"}), "item_id"),
        (json!({"user_id": "u", "item_id": "i"}), "type"),
        // Unknown field, unknown event type.
        (
            json!({"user_id": "u", "item_id": "i", "type": "view", "colour": "red"}),
            "colour",
        ),
        (
            json!({"user_id": "u", "item_id": "i", "type": "like"}),
            "type",
        ),
        (
            json!({"user_id": "u", "item_id": "i", "type": "Purchase"}),
            "type",
        ),
        // IDs: empty, 257 characters, control characters.
        (
            json!({"user_id": "", "item_id": "i", "type": "view"}),
            "user_id",
        ),
        (
            json!({"user_id": "u", "item_id": "x".repeat(257), "type": "view"}),
            "item_id",
        ),
        (
            json!({"user_id": "u\u{7}", "item_id": "i", "type": "view"}),
            "user_id",
        ),
        (
            json!({"user_id": "u", "item_id": "i\nj", "type": "view"}),
            "item_id",
        ),
        (
            json!({"user_id": "u", "item_id": "i", "type": "view", "event_id": ""}),
            "event_id",
        ),
        // Time: more than 5 minutes ahead, not RFC 3339.
        (
            json!({"user_id": "u", "item_id": "i", "type": "view", "timestamp": future}),
            "timestamp",
        ),
        (
            json!({"user_id": "u", "item_id": "i", "type": "view", "timestamp": "yesterday"}),
            "timestamp",
        ),
        (
            json!({"user_id": "u", "item_id": "i", "type": "view", "timestamp": "881250949"}),
            "timestamp",
        ),
        (
            json!({"user_id": "u", "item_id": "i", "type": "view", "timestamp": "2026-13-01T00:00:00Z"}),
            "timestamp",
        ),
    ];
    for (bad, field) in cases {
        assert_rejected(&app, bad, field).await;
    }

    // A single object: the detail has no index.
    let response = app
        .post_events(&json!({"user_id": "", "item_id": "i", "type": "view"}))
        .await;
    let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_event").await;
    assert_eq!(error["details"][0]["field"], "user_id");
    assert!(error["details"][0].get("index").is_none(), "{error}");

    assert!(
        app.stored_events().await.is_empty(),
        "nothing of a rejected batch is stored"
    );
}

pub async fn every_broken_rule_is_reported(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = json!([
        event("u", "i", "view"),
        {"user_id": "", "item_id": 5, "type": "like", "colour": "red"},
        event("u", "i", "view"),
        {"user_id": "u", "item_id": "i", "type": "view", "timestamp": "soon"},
    ]);
    let error = expect_error(
        app.post_events(&body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_event",
    )
    .await;
    let mut blamed: Vec<(u64, String)> = error["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["index"].as_u64().unwrap(),
                d["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    blamed.sort();
    let expected = [
        (1, "colour"),
        (1, "item_id"),
        (1, "type"),
        (1, "user_id"),
        (3, "timestamp"),
    ];
    let expected: Vec<(u64, String)> = expected.iter().map(|(i, f)| (*i, f.to_string())).collect();
    assert_eq!(blamed, expected);
    assert!(app.stored_events().await.is_empty());
}

pub async fn batch_size_is_1_to_10000(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app.post_events(&json!([])).await;
    expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch").await;

    let batch = |n: usize| -> Value {
        Value::Array(
            (0..n)
                .map(|i| event(&format!("u{}", i % 97), &format!("i{}", i % 89), "view"))
                .collect(),
        )
    };
    let response = app.post_events(&batch(10_001)).await;
    expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_batch").await;
    assert!(app.stored_events().await.is_empty());

    let counts = app.post_events_ok(&batch(10_000)).await;
    assert_eq!(counts.accepted, 10_000);
    assert_eq!(app.stored_events().await.len(), 10_000);
}

pub async fn timestamps_up_to_five_minutes_ahead_and_far_in_the_past_are_accepted(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let soon = rfc3339(chrono::Utc::now().timestamp() + 4 * 60);
    let body = json!([
        {"user_id": "u", "item_id": "i", "type": "view", "timestamp": soon},
        {"user_id": "u", "item_id": "i", "type": "view", "timestamp": "1998-01-01T00:00:00Z"},
        {"user_id": "u", "item_id": "i", "type": "view", "timestamp": null},
    ]);
    assert_eq!(app.post_events_ok(&body).await.accepted, 3);
}

pub async fn many_concurrent_writers_lose_nothing(backend: Backend) {
    const WRITERS: usize = 32;
    const EACH: usize = 50;
    let app = std::sync::Arc::new(TestApp::spawn(backend).await);
    let event_of = |w: usize, k: usize| {
        json!({"user_id": format!("w{w}"), "item_id": format!("i{}", k % 7),
               "type": "click", "event_id": format!("w{w}-e{k}")})
    };

    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let app = app.clone();
        writers.spawn(async move {
            let mut accepted = 0;
            for k in 0..EACH {
                accepted += app.post_events_ok(&event_of(w, k)).await.accepted;
            }
            accepted
        });
    }
    let accepted: u64 = writers.join_all().await.into_iter().sum();
    let total = (WRITERS * EACH) as u64;
    assert_eq!(accepted, total);
    assert_eq!(app.stored_events().await.len() as u64, total);

    // Every one of them is known: posting them all again stores nothing.
    let again: Vec<Value> = (0..WRITERS)
        .flat_map(|w| (0..EACH).map(move |k| (w, k)))
        .map(|(w, k)| event_of(w, k))
        .collect();
    let counts = app.post_events_ok(&Value::Array(again)).await;
    assert_eq!((counts.accepted, counts.duplicates), (0, total));
    assert_eq!(app.stored_events().await.len() as u64, total);
}
