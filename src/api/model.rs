//! The loop made visible: the model in service, every version and its fate, retraining.

use axum::{
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::Serialize;
use utoipa::ToSchema;

use super::{
    error::{ApiError, ApiResult, ErrorDetail, ErrorEnvelope},
    AppState,
};
use crate::{
    learn::{
        self, decide_challenger,
        online::{self, OnlineSummary},
        ActivateError, ChallengerError, Outcome, Start,
    },
    serve::Serving,
    store::{ModelRecord, ModelStatus},
};

pub fn read_router() -> Router<AppState> {
    Router::new()
        .route("/v1/model", get(current))
        .route("/v1/model/versions", get(versions))
}

pub fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/v1/model/retrain", post(retrain))
        .route("/v1/model/challenger/promote", post(promote))
        .route("/v1/model/challenger/retire", post(retire))
        .route("/v1/model/versions/{version}/activate", post(activate))
        .route("/v1/model/unpin", post(unpin))
}

/// One model version.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelOut {
    pub version: i64,
    pub algorithm: String,
    /// `accepted` (put in service), `rejected` (scored worse than the model in service),
    /// `challenger` (serving a share of users until decided) or `retired` (a challenger that lost).
    #[schema(value_type = String, example = "accepted")]
    pub status: ModelStatus,
    /// Whether this version answers requests now (as champion or challenger).
    pub in_service: bool,
    /// Whether an operator pinned it in service (`activate?pin=true`): trainings go on and
    /// are recorded, but none replaces it until `POST /v1/model/unpin`.
    pub pinned: bool,
    /// Why it was accepted or rejected.
    pub reason: String,
    pub trained_at: String,
    pub training_seconds: f64,
    pub events: i64,
    pub users: i64,
    pub items: i64,
    /// Holdout quality: ndcg_at_10, recall_at_20, hr_at_10, and the champion's on the same holdout.
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    /// The configuration it was fitted with.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    /// What its responses earned online (in `/v1/model/versions`): responses shown, responses
    /// with a credited click, add-to-cart or purchase, and the rates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online: Option<OnlineSummary>,
}

impl ModelOut {
    fn new(r: ModelRecord, serving: &Serving) -> Self {
        Self {
            in_service: serving.versions_in_service().contains(&r.version),
            pinned: serving.pinned() == Some(r.version),
            online: None,
            version: r.version,
            algorithm: r.algorithm,
            status: r.status,
            reason: r.reason,
            trained_at: r
                .trained_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            training_seconds: r.training_seconds,
            events: r.events,
            users: r.users,
            items: r.items,
            metrics: r.metrics,
            params: r.params,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionsOut {
    /// Newest first.
    pub versions: Vec<ModelOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetrainStarted {
    pub status: String,
}

#[utoipa::path(
    get, path = "/v1/model", tag = "model",
    responses(
        (status = 200, body = ModelOut), (status = 401, body = ErrorEnvelope),
        (status = 404, description = "no model yet", body = ErrorEnvelope),
    ),
    security((), ("api_key" = []))
)]
pub async fn current(State(state): State<AppState>) -> ApiResult<Json<ModelOut>> {
    let snap = state
        .serving
        .current()
        .ok_or_else(|| ApiError::NotFound("no model has been trained yet".into()))?;
    Ok(Json(ModelOut::new(snap.record.clone(), &state.serving)))
}

#[utoipa::path(
    get, path = "/v1/model/versions", tag = "model",
    responses(
        (status = 200, body = VersionsOut), (status = 401, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ),
    security((), ("api_key" = []))
)]
pub async fn versions(State(state): State<AppState>) -> ApiResult<Json<VersionsOut>> {
    let versions = online::versions(&state.store)
        .await?
        .into_iter()
        .map(|(r, summary)| ModelOut {
            online: Some(summary),
            ..ModelOut::new(r, &state.serving)
        })
        .collect();
    Ok(Json(VersionsOut { versions }))
}

#[utoipa::path(
    post, path = "/v1/model/retrain", tag = "model",
    params(("wait" = Option<bool>, Query, description = "answer once a training that includes every event acknowledged before the call has finished")),
    responses(
        (status = 200, description = "with wait=true: the new version, accepted or rejected", body = ModelOut),
        (status = 202, description = "started", body = RetrainStarted),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 409, description = "a training is running", body = ErrorEnvelope),
        (status = 422, description = "no events to learn from", body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ),
    security((), ("admin_key" = []))
)]
pub async fn retrain(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let wait = bool_param(query.as_deref(), "wait")?;
    if !wait {
        return match state
            .trainer
            .start()
            .await
            .map_err(ApiError::from_training)?
        {
            Start::Started => {
                let body = RetrainStarted {
                    status: "started".into(),
                };
                Ok((StatusCode::ACCEPTED, Json(body)).into_response())
            }
            Start::NoEvents => Err(no_events()),
            Start::Busy => Err(ApiError::Conflict {
                code: "training_in_progress",
                message: "a training is already running; retry later or use ?wait=true".into(),
            }),
        };
    }
    let called_at = std::time::Instant::now();
    match state
        .trainer
        .run_covering(called_at)
        .await
        .map_err(ApiError::from_training)?
    {
        Outcome::Trained(record) => Ok(Json(ModelOut::new(record, &state.serving)).into_response()),
        Outcome::NoEvents => Err(no_events()),
        Outcome::Busy => Err(ApiError::Internal(anyhow::anyhow!(
            "run_covering waits for the lease; it cannot be busy"
        ))),
    }
}

/// A `true` / `false` query parameter, false when absent.
fn bool_param(query: Option<&str>, name: &'static str) -> ApiResult<bool> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or("")).unwrap_or_default();
    match pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
    {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(_) => Err(ApiError::parameter(name, "must be true or false")),
    }
}

fn no_events() -> ApiError {
    ApiError::invalid(
        "no_events",
        "there are no events to learn from yet",
        Vec::new(),
    )
}

#[utoipa::path(
    post, path = "/v1/model/challenger/promote", tag = "model",
    responses(
        (status = 200, description = "the promoted version, now the champion", body = ModelOut),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, description = "no challenger is running", body = ErrorEnvelope),
        (status = 409, description = "the challenger was decided meanwhile", body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ),
    security((), ("admin_key" = []))
)]
pub async fn promote(State(state): State<AppState>) -> ApiResult<Json<ModelOut>> {
    decide(state, true).await
}

#[utoipa::path(
    post, path = "/v1/model/challenger/retire", tag = "model",
    responses(
        (status = 200, description = "the retired version", body = ModelOut),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, description = "no challenger is running", body = ErrorEnvelope),
        (status = 409, description = "the challenger was decided meanwhile", body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ),
    security((), ("admin_key" = []))
)]
pub async fn retire(State(state): State<AppState>) -> ApiResult<Json<ModelOut>> {
    decide(state, false).await
}

async fn decide(state: AppState, promote: bool) -> ApiResult<Json<ModelOut>> {
    let note = if promote {
        "; promoted by hand"
    } else {
        "; retired by hand"
    };
    match decide_challenger(&state.store, &state.serving, promote, note).await {
        Ok(record) => Ok(Json(ModelOut::new(record, &state.serving))),
        Err(ChallengerError::None) => Err(ApiError::NotFound("no challenger is running".into())),
        Err(ChallengerError::Decided) => Err(ApiError::Conflict {
            code: "challenger_decided",
            message: "the challenger was promoted or retired meanwhile".into(),
        }),
        Err(ChallengerError::Other(e)) => Err(ApiError::from_training(e)),
    }
}

#[utoipa::path(
    post, path = "/v1/model/versions/{version}/activate", tag = "model",
    params(
        ("version" = i64, Path, description = "an accepted version (see /v1/model/versions)"),
        ("pin" = Option<bool>, Query, description = "keep it in service until POST /v1/model/unpin; trainings are still recorded"),
    ),
    responses(
        (status = 200, description = "the version, now in service on every replica", body = ModelOut),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, description = "no such version", body = ErrorEnvelope),
        (status = 409, description = "the version is not accepted (rejected, challenger or retired)", body = ErrorEnvelope),
        (status = 422, description = "the version or pin is malformed", body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ),
    security((), ("admin_key" = []))
)]
pub async fn activate(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<ModelOut>> {
    let version: i64 = raw.parse().map_err(|_| {
        ApiError::invalid(
            "invalid_parameter",
            "version must be a model version number",
            vec![ErrorDetail::new(None, "version", "must be an integer")],
        )
    })?;
    let pin = bool_param(query.as_deref(), "pin")?;
    match learn::activate(&state.store, &state.serving, version, pin).await {
        Ok(record) => Ok(Json(ModelOut::new(record, &state.serving))),
        Err(e @ ActivateError::Unknown(_)) => Err(ApiError::NotFound(e.to_string())),
        Err(e @ ActivateError::NotAccepted(..)) => Err(ApiError::Conflict {
            code: "not_activatable",
            message: e.to_string(),
        }),
        Err(ActivateError::Other(e)) => Err(ApiError::from_training(e)),
    }
}

#[utoipa::path(
    post, path = "/v1/model/unpin", tag = "model",
    responses(
        (status = 200, description = "the model in service, no longer pinned (unchanged if none was): it serves until the next accepted training", body = ModelOut),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, description = "no model yet", body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ),
    security((), ("admin_key" = []))
)]
pub async fn unpin(State(state): State<AppState>) -> ApiResult<Json<ModelOut>> {
    learn::unpin(&state.store, &state.serving)
        .await
        .map_err(ApiError::from_training)?;
    current(State(state)).await
}
