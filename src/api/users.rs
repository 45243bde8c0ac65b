//! A person's data: erasure (`DELETE /v1/users/{user_id}`) and export
//! (`GET /v1/users/{user_id}/export`), both with the admin key.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{delete, get},
    Json, Router,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    error::{ApiError, ApiResult, ErrorEnvelope},
    AppState,
};
use crate::{domain::UserId, store::UserExport};

pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/v1/users/{user_id}", delete(erase))
        .route("/v1/users/{user_id}/export", get(export))
}

/// A `user_id` from a path: this module's routes' and the recommendations'.
pub(super) fn user_id(raw: String) -> ApiResult<UserId> {
    UserId::parse(raw).map_err(|e| ApiError::parameter("user_id", e.to_string()))
}

fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[utoipa::path(
    delete, path = "/v1/users/{user_id}", tag = "users",
    params(("user_id" = super::schema::Id, Path)),
    responses(
        (status = 204, description = "erased, on every replica (also when nothing was stored): events, recorded responses and cached state; the online totals stay as anonymous counts, and the next model is trained without the user"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ),
    security((), ("admin_key" = []))
)]
pub async fn erase(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let user = user_id(raw)?;
    let erased = state.serving.erase_user(&user).await?;
    // Counts only: the id itself stays out of the logs.
    tracing::info!(
        events = erased.events,
        responses = erased.responses,
        "user erased"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// One stored event of the user.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedEventOut {
    pub event_id: Option<String>,
    pub item_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub timestamp: String,
    pub recommendation_id: Option<String>,
    /// When the service stored it.
    pub received_at: String,
}

/// One recorded response shown to the user, and what it was credited with.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedResponseOut {
    pub recommendation_id: String,
    pub model_version: i64,
    pub arm: String,
    pub source: String,
    pub items: Vec<String>,
    pub shown_at: String,
    /// The event types (click, add_to_cart, purchase) credited to it.
    pub credited: Vec<String>,
}

/// Everything the service stores about a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserExportOut {
    pub user_id: String,
    /// Every event, in the order stored.
    pub events: Vec<ExportedEventOut>,
    /// Every recorded response, oldest first.
    pub responses: Vec<ExportedResponseOut>,
}

impl UserExportOut {
    fn new(user: UserId, export: UserExport) -> Self {
        let events = export
            .events
            .into_iter()
            .map(|e| ExportedEventOut {
                event_id: e.event_id,
                item_id: e.item_id,
                event_type: e.event_type.as_str().to_owned(),
                timestamp: time(e.ts_ms),
                recommendation_id: e.recommendation_id,
                received_at: time(e.received_ms),
            })
            .collect();
        let responses = export
            .responses
            .into_iter()
            .map(|r| ExportedResponseOut {
                recommendation_id: r.recommendation_id,
                model_version: r.model_version,
                arm: r.arm.as_str().to_owned(),
                source: r.source,
                items: r.items,
                shown_at: time(r.shown_ms),
                credited: r.credited.iter().map(|t| t.as_str().to_owned()).collect(),
            })
            .collect();
        Self {
            user_id: user.into_inner(),
            events,
            responses,
        }
    }
}

#[utoipa::path(
    get, path = "/v1/users/{user_id}/export", tag = "users",
    params(("user_id" = super::schema::Id, Path)),
    responses(
        (status = 200, body = UserExportOut),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, description = "nothing is stored about the user", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ),
    security((), ("admin_key" = []))
)]
pub async fn export(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Json<UserExportOut>> {
    let user = user_id(raw)?;
    let export = state.serving.export_user(&user).await?;
    if export.events.is_empty() && export.responses.is_empty() {
        return Err(ApiError::NotFound(
            "nothing is stored about this user".into(),
        ));
    }
    Ok(Json(UserExportOut::new(user, export)))
}
