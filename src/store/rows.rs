//! Stored values to domain values, once for every backend and every path (the pools of both
//! databases and SQLite's reader threads): each backend only fetches the columns, and what a
//! value means, or why it cannot be read, is decided here.

use chrono::{DateTime, Utc};

use super::{
    Arm, HistoryEvent, Item, LogRow, ModelRecord, ModelStatus, OnlineCounts, Shown, StoreError,
    StoreResult,
};
use crate::domain::EventType;

/// The most recent events of a user that the request path folds in; bounds the cost of a bot.
pub const HISTORY_LIMIT: i64 = 10_000;

/// Items are packed into one text column; ids never hold control characters.
pub(super) const ITEM_SEPARATOR: &str = "\n";

pub(super) fn pack_items(items: &[String]) -> String {
    items.join(ITEM_SEPARATOR)
}

pub(super) fn unpack_items(packed: &str) -> Vec<String> {
    if packed.is_empty() {
        return Vec::new();
    }
    packed.split(ITEM_SEPARATOR).map(str::to_owned).collect()
}

pub(super) fn event_type(code: i64) -> StoreResult<EventType> {
    EventType::from_code(code)
        .ok_or_else(|| StoreError::corrupt(format!("unknown event type {code}")))
}

pub(super) fn model_status(name: &str) -> StoreResult<ModelStatus> {
    match name {
        "accepted" => Ok(ModelStatus::Accepted),
        "rejected" => Ok(ModelStatus::Rejected),
        "challenger" => Ok(ModelStatus::Challenger),
        "retired" => Ok(ModelStatus::Retired),
        other => Err(StoreError::corrupt(format!(
            "unknown model status {other:?}"
        ))),
    }
}

pub(super) fn arm(name: &str) -> StoreResult<Arm> {
    Arm::from_name(name).ok_or_else(|| StoreError::corrupt(format!("unknown arm {name:?}")))
}

/// Timestamps are stored as milliseconds since the epoch.
pub(super) fn time(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::corrupt(format!("timestamp out of range: {ms} ms")))
}

/// JSON kept as text (SQLite), or cast to text in the query (PostgreSQL's jsonb).
pub(super) fn json<T: serde::de::DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(Box::new(e)))
}

/// One event of a user's history: (item_id, type, ts_ms).
pub(super) fn history_event(
    item_id: String,
    type_code: i64,
    ts_ms: i64,
) -> StoreResult<HistoryEvent> {
    Ok(HistoryEvent {
        item_id,
        event_type: event_type(type_code)?,
        ts_ms,
    })
}

/// One event of the log: (user_id, item_id, type, ts_ms).
pub(super) fn log_row(
    user_id: String,
    item_id: String,
    type_code: i64,
    ts_ms: i64,
) -> StoreResult<LogRow> {
    Ok(LogRow {
        user_id,
        item_id,
        event_type: event_type(type_code)?,
        ts_ms,
    })
}

/// One recorded response: (recommendation_id, items packed, shown_ms).
pub(super) fn shown(recommendation_id: String, packed_items: &str, shown_ms: i64) -> Shown {
    Shown {
        recommendation_id,
        items: unpack_items(packed_items),
        shown_ms,
    }
}

/// One credit a tally recorded: (model_version, arm, experiment, type).
pub(super) fn credit(
    model_version: i64,
    arm_name: &str,
    experiment: i64,
    type_code: i64,
) -> StoreResult<(i64, Arm, i64, EventType)> {
    Ok((
        model_version,
        arm(arm_name)?,
        experiment,
        event_type(type_code)?,
    ))
}

/// The columns of a model version, as both databases answer `MODEL_COLUMNS`.
#[derive(sqlx::FromRow)]
pub(super) struct ModelRow {
    version: i64,
    algorithm: String,
    status: String,
    reason: String,
    trained_ms: i64,
    training_seconds: f64,
    events: i64,
    users: i64,
    items: i64,
    log_seq: i64,
    metrics: String,
    params: String,
}

impl TryFrom<ModelRow> for ModelRecord {
    type Error = StoreError;

    fn try_from(r: ModelRow) -> StoreResult<Self> {
        Ok(ModelRecord {
            version: r.version,
            algorithm: r.algorithm,
            status: model_status(&r.status)?,
            reason: r.reason,
            trained_at: time(r.trained_ms)?,
            training_seconds: r.training_seconds,
            events: r.events,
            users: r.users,
            items: r.items,
            log_seq: r.log_seq,
            metrics: json(&r.metrics)?,
            params: json(&r.params)?,
        })
    }
}

/// The columns of a catalog entry (JSON as text; `available` an integer on SQLite, which
/// sqlx reads as a boolean).
#[derive(sqlx::FromRow)]
pub(super) struct ItemRow {
    item_id: String,
    title: Option<String>,
    categories: String,
    available: bool,
    attributes: String,
    updated_ms: i64,
}

impl TryFrom<ItemRow> for Item {
    type Error = StoreError;

    fn try_from(r: ItemRow) -> StoreResult<Self> {
        Ok(Item {
            item_id: r.item_id,
            title: r.title,
            categories: json(&r.categories)?,
            available: r.available,
            attributes: json(&r.attributes)?,
            updated_at: time(r.updated_ms)?,
        })
    }
}

/// The columns of an online total.
#[derive(sqlx::FromRow)]
pub(super) struct CountsRow {
    model_version: i64,
    arm: String,
    experiment: i64,
    impressions: i64,
    clicks: i64,
    add_to_carts: i64,
    purchases: i64,
}

impl TryFrom<CountsRow> for OnlineCounts {
    type Error = StoreError;

    fn try_from(r: CountsRow) -> StoreResult<Self> {
        Ok(OnlineCounts {
            model_version: r.model_version,
            arm: arm(&r.arm)?,
            experiment: r.experiment,
            impressions: r.impressions,
            clicks: r.clicks,
            add_to_carts: r.add_to_carts,
            purchases: r.purchases,
        })
    }
}

/// Decodes fetched rows of one of the shapes above.
pub(super) fn decode_all<R, T>(rows: Vec<R>) -> StoreResult<Vec<T>>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_items_round_trip() {
        for items in [
            vec![],
            vec!["a".to_owned()],
            vec!["a b".into(), "c/d".into(), "é".into()],
        ] {
            assert_eq!(unpack_items(&pack_items(&items)), items);
        }
    }

    #[test]
    fn values_this_version_does_not_know_are_corrupt() {
        for e in [
            event_type(99).unwrap_err(),
            model_status("promoted").unwrap_err(),
            arm("treatment").unwrap_err(),
            time(i64::MAX).unwrap_err(),
            json::<Vec<String>>("{not json").unwrap_err(),
            history_event("i".into(), -1, 0).unwrap_err(),
        ] {
            assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
        }
    }
}
