//! Builders for the store's input types and the shapes the store answers with.

use chrono::{DateTime, TimeZone, Utc};
use recloop::{
    domain::{EventId, EventType, ItemId, NewEvent, UserId},
    store::{HistoryEvent, ItemUpsert, LogRow, ModelStatus, NewModelRecord},
};
use serde_json::json;

pub fn user(id: &str) -> UserId {
    UserId::parse(id).expect("a valid user id")
}

pub fn item_id(id: &str) -> ItemId {
    ItemId::parse(id).expect("a valid item id")
}

/// An event without an `event_id`.
pub fn event(user_id: &str, item: &str, event_type: EventType, ts_ms: i64) -> NewEvent {
    NewEvent {
        event_id: None,
        user_id: user(user_id),
        item_id: item_id(item),
        event_type,
        ts_ms,
        recommendation_id: None,
    }
}

/// An event with an `event_id`.
pub fn event_with_id(
    id: &str,
    user_id: &str,
    item: &str,
    event_type: EventType,
    ts_ms: i64,
) -> NewEvent {
    NewEvent {
        event_id: Some(EventId::parse(id).expect("a valid event id")),
        ..event(user_id, item, event_type, ts_ms)
    }
}

/// The type of the `i`th event of a generated sequence: every type comes up.
pub fn nth_type(i: usize) -> EventType {
    EventType::ALL[i % EventType::ALL.len()]
}

/// What `user_history` should answer for these events, in this (append) order.
trait TapSort {
    fn tap_sort(self) -> Self;
}

impl TapSort for Vec<HistoryEvent> {
    fn tap_sort(mut self) -> Self {
        self.sort_by_key(|e| e.ts_ms);
        self
    }
}

pub fn history_of<'a>(
    events: impl IntoIterator<Item = &'a NewEvent>,
    user_id: &str,
) -> Vec<HistoryEvent> {
    events
        .into_iter()
        .filter(|e| e.user_id.as_str() == user_id)
        .map(|e| HistoryEvent {
            item_id: e.item_id.as_str().to_owned(),
            event_type: e.event_type,
            ts_ms: e.ts_ms,
        })
        .collect::<Vec<_>>()
        // Oldest first by timestamp; ties in arrival order (the sort is stable).
        .tap_sort()
}

pub fn log_row(e: &NewEvent) -> LogRow {
    LogRow {
        user_id: e.user_id.as_str().to_owned(),
        item_id: e.item_id.as_str().to_owned(),
        event_type: e.event_type,
        ts_ms: e.ts_ms,
    }
}

/// Log rows in a canonical order, to compare as multisets.
pub fn sorted_rows(mut rows: Vec<LogRow>) -> Vec<LogRow> {
    rows.sort_by(|a, b| {
        (&a.user_id, &a.item_id, a.event_type.code(), a.ts_ms).cmp(&(
            &b.user_id,
            &b.item_id,
            b.event_type.code(),
            b.ts_ms,
        ))
    });
    rows
}

/// A catalog write with some of everything in it.
pub fn item_upsert(id: &str, title: &str) -> ItemUpsert {
    ItemUpsert {
        item_id: item_id(id),
        title: Some(title.to_owned()),
        categories: vec!["shoes".to_owned(), "sale".to_owned()],
        available: true,
        attributes: json!({"price": 19.99, "brand": "Acme"}),
    }
}

/// A model record as the trainer would write it; `trained_at` has sub-millisecond digits the
/// store is expected to drop.
pub fn model_record(status: ModelStatus, n: i64) -> NewModelRecord {
    NewModelRecord {
        algorithm: "ials".to_owned(),
        status,
        reason: match status {
            ModelStatus::Accepted => format!("NDCG@10 0.19{n} >= 0.18 of version {n}"),
            ModelStatus::Rejected => {
                format!("NDCG@10 0.17 < 0.19 of version {n}, which keeps serving")
            }
            other => format!("{} as version {n}", other.as_str()),
        },
        trained_at: Utc
            .timestamp_opt(1_764_238_500 + n, 123_456_789)
            .single()
            .expect("a valid time"),
        training_seconds: 1.25 + n as f64 / 3.0,
        events: 80_000 + n,
        users: 943,
        items: 1_650,
        log_seq: 1_000 * n,
        metrics: json!({
            "ndcg_at_10": 0.191_234_567_890_123_4,
            "recall_at_20": 0.27,
            "hr_at_10": 0.5,
            "evaluated_users": 943,
            "holdout_events": 16_000 + n,
            "popularity_ndcg_at_10": 0.1,
            "champion": if n == 0 { json!(null) } else { json!({"version": n, "ndcg_at_10": 0.18}) },
        }),
        params: json!({
            "factors": 64,
            "regularization": 0.05,
            "alpha": 40.0,
            "iterations": 15,
            "seed": 42,
            "weights": {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0},
        }),
    }
}

/// `t` as the store keeps it: to the millisecond.
pub fn to_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).expect("a representable time")
}
