//! Operations: liveness, readiness, Prometheus metrics, the OpenAPI description.

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Json, Router};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::{
    error::{ApiError, ApiResult, ErrorEnvelope},
    AppState,
};
use crate::store;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "the process is up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "storage answers", body = Health),
        (status = 503, description = "storage unavailable", body = ErrorEnvelope),
    ))]
pub async fn readyz(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    // A load balancer polls this: answer within a second either way. Whatever keeps storage
    // from answering (a corrupt file too) means "not ready", which is all a balancer acts on.
    let ping = store::within(std::time::Duration::from_secs(1), state.store.ping()).await;
    if let Err(e) = ping {
        return Err(ApiError::Unavailable(e));
    }
    Ok(Json(Health {
        status: "ready".into(),
    }))
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "this description", content_type = "application/json")))]
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(super::ApiDoc::openapi())
}
