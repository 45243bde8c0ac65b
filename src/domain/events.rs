//! The rules an event must meet before it is stored, wherever it comes from (`POST /v1/events`,
//! `recloop import`). A batch is checked whole: every event valid, or every broken rule listed.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    fields::{Fields, Violation},
    EventId, EventType, ItemId, NewEvent, UserId,
};

/// The most events one batch may carry.
pub const MAX_BATCH: usize = 10_000;
/// How far ahead of the server's clock a timestamp may be (clock skew of the shop's servers).
const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;

/// `Rejected::code` of a batch that is empty or holds more than `MAX_BATCH` events.
pub const INVALID_BATCH: &str = "invalid_batch";
/// `Rejected::code` of a batch in which at least one event breaks a rule.
pub const INVALID_EVENT: &str = "invalid_event";

const FIELDS: &[&str] = &[
    "user_id",
    "item_id",
    "type",
    "timestamp",
    "event_id",
    "recommendation_id",
];

/// Why a batch was refused; nothing of it may be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejected {
    /// `INVALID_BATCH` or `INVALID_EVENT`: stable, machine-readable.
    pub code: &'static str,
    /// For humans.
    pub message: String,
    /// Every broken rule, in the order of the batch and, within an event, of the checks;
    /// empty for `INVALID_BATCH`.
    pub violations: Vec<Violation>,
}

/// Checks one event against every rule, recording each broken one.
fn parse_event(
    value: &Value,
    index: Option<usize>,
    now: DateTime<Utc>,
    violations: &mut Vec<Violation>,
) -> Option<NewEvent> {
    let mut f = Fields::new(value, index, FIELDS, violations)?;
    let raw = f.req_str("user_id");
    let user_id = f.parsed("user_id", raw, |s| UserId::parse(s));
    let raw = f.req_str("item_id");
    let item_id = f.parsed("item_id", raw, |s| ItemId::parse(s));
    let raw = f.req_str("type");
    let event_type = f.parsed("type", raw, str::parse::<EventType>);
    let raw = f.opt_str("event_id");
    let event_id = f.parsed("event_id", raw, |s| EventId::parse(s));
    let raw = f.opt_str("recommendation_id");
    let recommendation_id = f.parsed("recommendation_id", raw, |s| {
        EventId::parse(s).map(EventId::into_inner)
    });
    let raw = f.opt_str("timestamp");
    let ts_ms = match f.parsed("timestamp", raw, |s| {
        DateTime::parse_from_rfc3339(s)
            .map_err(|e| format!("must be an RFC 3339 timestamp such as 2026-11-27T10:15:00Z: {e}"))
    }) {
        Some(t) if t.timestamp_millis() > now.timestamp_millis() + MAX_FUTURE_MS => {
            f.fail(
                "timestamp",
                "is more than 5 minutes ahead of the server's clock",
            );
            None
        }
        Some(t) => Some(t.timestamp_millis()),
        None => raw.is_none().then(|| now.timestamp_millis()),
    };
    let ok = f.finish(violations);
    Some(NewEvent {
        event_id,
        user_id: user_id?,
        item_id: item_id?,
        event_type: event_type?,
        ts_ms: ts_ms?,
        recommendation_id,
    })
    .filter(|_| ok)
}

/// Parses one event (an object) or a batch (an array of 1 to `MAX_BATCH`): every event valid,
/// or everything wrong. An event without a timestamp happened at `now`. A violation carries
/// its event's position only when the input is an array.
pub fn parse_events(body: &Value, now: DateTime<Utc>) -> Result<Vec<NewEvent>, Rejected> {
    let (values, batch) = match body {
        Value::Array(values) => (values.as_slice(), true),
        other => (std::slice::from_ref(other), false),
    };
    if values.is_empty() || values.len() > MAX_BATCH {
        return Err(Rejected {
            code: INVALID_BATCH,
            message: format!(
                "a batch holds 1 to {MAX_BATCH} events, not {}",
                values.len()
            ),
            violations: Vec::new(),
        });
    }
    let mut violations = Vec::new();
    let mut events = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        if let Some(e) = parse_event(v, batch.then_some(i), now, &mut violations) {
            events.push(e);
        }
    }
    if !violations.is_empty() {
        return Err(Rejected {
            code: INVALID_EVENT,
            message: format!("{} rule(s) broken; nothing was stored", violations.len()),
            violations,
        });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-28T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn accepts_one_event_and_defaults_the_time() {
        let e = parse_events(
            &json!({"user_id": "u1", "item_id": "i1", "type": "click"}),
            now(),
        )
        .unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].ts_ms, now().timestamp_millis());
        assert_eq!(e[0].event_type, EventType::Click);
    }

    #[test]
    fn reports_every_broken_rule_with_its_index() {
        let body = json!([
            {"user_id": "u1", "item_id": "i1", "type": "purchase"},
            {"user_id": "", "item_id": 5, "type": "like", "colour": "red"},
            {"user_id": "u1", "item_id": "i1", "type": "view", "timestamp": "2026-11-28T12:06:00Z"},
            "not an object",
        ]);
        let rejected = parse_events(&body, now()).unwrap_err();
        assert_eq!(rejected.code, INVALID_EVENT);
        assert_eq!(rejected.message, "6 rule(s) broken; nothing was stored");
        let d = rejected.violations;
        let at = |i: usize| -> Vec<&str> {
            d.iter()
                .filter(|x| x.index == Some(i))
                .map(|x| x.field.as_str())
                .collect()
        };
        assert!(at(0).is_empty());
        let mut one = at(1);
        one.sort();
        assert_eq!(one, ["colour", "item_id", "type", "user_id"]);
        assert_eq!(at(2), ["timestamp"]);
        assert_eq!(at(3), [""]);
    }

    #[test]
    fn a_single_event_has_no_index() {
        let rejected = parse_events(&json!({"user_id": "u1", "item_id": "i1"}), now()).unwrap_err();
        assert_eq!(
            rejected.violations,
            [Violation::new(None, "type", "is required")]
        );
    }

    #[test]
    fn batch_size_limits() {
        let empty = parse_events(&json!([]), now()).unwrap_err();
        assert_eq!(empty.code, INVALID_BATCH);
        assert_eq!(empty.message, "a batch holds 1 to 10000 events, not 0");
        assert!(empty.violations.is_empty());
        let one = json!({"user_id": "u", "item_id": "i", "type": "view"});
        let many = Value::Array(vec![one.clone(); MAX_BATCH + 1]);
        assert_eq!(parse_events(&many, now()).unwrap_err().code, INVALID_BATCH);
        let max = Value::Array(vec![one; MAX_BATCH]);
        assert_eq!(parse_events(&max, now()).unwrap().len(), MAX_BATCH);
    }

    #[test]
    fn every_violation_is_kept() {
        // Shortening the list for an answer is the caller's choice, not a rule of the batch.
        let bad = json!({"user_id": "", "item_id": "i", "type": "view"});
        let rejected = parse_events(&Value::Array(vec![bad; 150]), now()).unwrap_err();
        assert_eq!(rejected.violations.len(), 150);
        assert_eq!(rejected.message, "150 rule(s) broken; nothing was stored");
    }

    #[test]
    fn timestamps() {
        let ev =
            |ts: &str| json!({"user_id": "u", "item_id": "i", "type": "view", "timestamp": ts});
        assert!(parse_events(&ev("1998-01-01T00:00:00Z"), now()).is_ok());
        assert!(parse_events(&ev("2026-11-28T12:04:59Z"), now()).is_ok());
        assert!(parse_events(&ev("2026-11-28T13:00:00+01:00"), now()).is_ok());
        assert!(parse_events(&ev("2026-11-28T12:05:01Z"), now()).is_err());
        assert!(parse_events(&ev("yesterday"), now()).is_err());
        assert!(parse_events(&ev("881250949"), now()).is_err());
    }
}
