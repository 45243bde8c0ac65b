//! `POST /v1/events`: the interaction log. A batch is checked whole before anything is written.

use axum::{extract::State, routing::post, Json, Router};
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{
    error::{ApiError, ApiResult, ErrorEnvelope},
    json::JsonBody,
    AppState,
};
use crate::domain::{
    events::{parse_events, Rejected, INVALID_EVENT},
    EventType,
};
use axum::extract::FromRequest;

/// The most events one request may carry: the domain's batch rule.
pub use crate::domain::events::MAX_BATCH;

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

/// Counts the events of a batch refused for what they hold (not for its size), by type.
fn record_rejected(body: &Value, rejected: &Rejected) {
    if rejected.code != INVALID_EVENT {
        return;
    }
    for v in body
        .as_array()
        .map_or(std::slice::from_ref(body), Vec::as_slice)
    {
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<EventType>().ok())
            .map_or("unknown", EventType::as_str);
        metrics::counter!("recloop_events_rejected_total", "type" => kind).increment(1);
    }
}

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
    let events = parse_events(&body, Utc::now()).inspect_err(|e| record_rejected(&body, e))?;
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
    use crate::api::error::ErrorDetail;
    use chrono::DateTime;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-28T12:00:00Z".parse().unwrap()
    }

    fn unprocessable(err: ApiError) -> (&'static str, String, Vec<ErrorDetail>) {
        match err {
            ApiError::Unprocessable {
                code,
                message,
                details,
            } => (code, message, details),
            other => panic!("expected 422, got {other:?}"),
        }
    }

    #[test]
    fn a_refused_batch_is_a_422_naming_the_first_hundred_broken_rules() {
        let bad = json!({"user_id": "", "item_id": "i", "type": "view"});
        let rejected = parse_events(&Value::Array(vec![bad; 150]), now()).unwrap_err();
        let (code, message, details) = unprocessable(rejected.into());
        assert_eq!(code, "invalid_event");
        assert_eq!(message, "150 rule(s) broken; nothing was stored");
        assert_eq!(details.len(), 100);
        assert_eq!(
            details[99],
            ErrorDetail::new(Some(99), "user_id", "must not be empty")
        );
        let (code, message, details) =
            unprocessable(parse_events(&json!([]), now()).unwrap_err().into());
        assert_eq!(code, "invalid_batch");
        assert_eq!(message, "a batch holds 1 to 10000 events, not 0");
        assert!(details.is_empty());
    }
}
