//! `POST /v1/events`: the interaction log. A batch is checked whole before anything is written.

use axum::{extract::State, routing::post, Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{
    error::{ApiError, ApiResult, ErrorDetail, ErrorEnvelope},
    json::{Fields, JsonBody},
    AppState,
};
use crate::domain::{EventId, EventType, ItemId, NewEvent, UserId};
use axum::extract::FromRequest;

/// The most events one request may carry.
pub const MAX_BATCH: usize = 10_000;
/// How far ahead of the server's clock a timestamp may be (clock skew of the shop's servers).
const MAX_FUTURE_MS: i64 = 5 * 60 * 1000;

const FIELDS: &[&str] = &[
    "user_id",
    "item_id",
    "type",
    "timestamp",
    "event_id",
    "recommendation_id",
];

/// One event as a shop posts it.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents the body for OpenAPI; parsing is field by field below
pub struct EventIn {
    /// Who acted (1-256 characters, no control characters).
    #[schema(value_type = super::schema::Id)]
    user_id: String,
    /// On what.
    #[schema(value_type = super::schema::Id)]
    item_id: String,
    #[schema(value_type = super::schema::EventKind, example = "purchase")]
    r#type: EventType,
    /// RFC 3339; default now; at most 5 minutes ahead of the server's clock.
    #[schema(format = DateTime)]
    timestamp: Option<String>,
    /// Idempotency key: an event whose `event_id` was already stored is not stored again.
    #[schema(value_type = Option<super::schema::Id>)]
    event_id: Option<String>,
    /// The recommendation response that showed this item.
    #[schema(value_type = Option<super::schema::Id>)]
    recommendation_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventsAccepted {
    /// Events stored by this request.
    pub accepted: u64,
    /// Events whose `event_id` was already stored.
    pub duplicates: u64,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/events", post(post_events))
}

/// Checks one event against every rule, recording each broken one.
fn parse_event(
    value: &Value,
    index: Option<usize>,
    now: DateTime<Utc>,
    errors: &mut Vec<ErrorDetail>,
) -> Option<NewEvent> {
    let mut f = Fields::new(value, index, FIELDS, errors)?;
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
    let ok = f.finish(errors);
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

/// Parses a whole body: every event valid, or the list of everything wrong.
pub fn parse_events(body: &Value, now: DateTime<Utc>) -> Result<Vec<NewEvent>, ApiError> {
    let (values, batch) = match body {
        Value::Array(values) => (values.as_slice(), true),
        other => (std::slice::from_ref(other), false),
    };
    if values.is_empty() || values.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "invalid_batch",
            format!(
                "a batch holds 1 to {MAX_BATCH} events, not {}",
                values.len()
            ),
            Vec::new(),
        ));
    }
    let mut errors = Vec::new();
    let mut events = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        if let Some(e) = parse_event(v, batch.then_some(i), now, &mut errors) {
            events.push(e);
        }
    }
    if !errors.is_empty() {
        record_rejected(values);
        // A batch with many bad events would make a huge answer; the first hundred say enough.
        let total = errors.len();
        errors.truncate(100);
        return Err(ApiError::invalid(
            "invalid_event",
            format!("{total} rule(s) broken; nothing was stored"),
            errors,
        ));
    }
    Ok(events)
}

fn record_rejected(values: &[Value]) {
    for v in values {
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<EventType>().ok())
            .map_or("unknown", EventType::as_str);
        metrics::counter!("recloop_events_rejected_total", "type" => kind).increment(1);
    }
}

/// The model version a `recommendation_id` was served by: ids end in `-v<version>`.
#[utoipa::path(
    post, path = "/v1/events", tag = "events",
    request_body(content = super::schema::EventsIn, description = "one event or an array of 1 to 10,000"),
    responses(
        (status = 200, description = "every accepted event is durably committed", body = EventsAccepted),
        (status = 400, description = "malformed JSON", body = ErrorEnvelope),
        (status = 401, description = "missing or wrong key", body = ErrorEnvelope),
        (status = 413, description = "body too large", body = ErrorEnvelope),
        (status = 415, description = "not JSON", body = ErrorEnvelope),
        (status = 422, description = "an event breaks a rule; nothing was stored", body = ErrorEnvelope),
        (status = 503, description = "storage unavailable; nothing was stored", body = ErrorEnvelope),
    ),
    security((), ("api_key" = []))
)]
pub async fn post_events(
    State(state): State<AppState>,
    request: axum::extract::Request,
) -> ApiResult<Json<EventsAccepted>> {
    // This route is exempt from the router's timeout: once a batch is handed to the store it
    // may commit, and answering 503 then would be a lie. The timeout bounds the body instead.
    let body = tokio::time::timeout(
        state.config.request_timeout(),
        JsonBody::from_request(request, &state),
    )
    .await
    .map_err(|_| ApiError::Timeout)??
    .0;
    let events = parse_events(&body, Utc::now())?;
    // The append and the cache invalidation run to the end even if the client goes away:
    // a committed event must always be seen by the user's next request.
    let serving = state.serving.clone();
    let outcome = tokio::spawn(async move { serving.ingest(events).await })
        .await
        .map_err(|e| ApiError::Internal(e.into()))??;
    Ok(Json(EventsAccepted {
        accepted: outcome.accepted,
        duplicates: outcome.duplicates,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-28T12:00:00Z".parse().unwrap()
    }

    fn details(err: ApiError) -> Vec<ErrorDetail> {
        match err {
            ApiError::Unprocessable { details, .. } => details,
            other => panic!("expected 422, got {other:?}"),
        }
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
        let d = details(parse_events(&body, now()).unwrap_err());
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
    fn batch_size_limits() {
        assert!(matches!(
            parse_events(&json!([]), now()),
            Err(ApiError::Unprocessable {
                code: "invalid_batch",
                ..
            })
        ));
        let one = json!({"user_id": "u", "item_id": "i", "type": "view"});
        let many = Value::Array(vec![one.clone(); MAX_BATCH + 1]);
        assert!(parse_events(&many, now()).is_err());
        let max = Value::Array(vec![one; MAX_BATCH]);
        assert_eq!(parse_events(&max, now()).unwrap().len(), MAX_BATCH);
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
