//! The service's statistics over time: `GET /v1/stats` (admin key).

use std::collections::BTreeMap;

use axum::{
    extract::{RawQuery, State},
    routing::get,
    Json, Router,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::{
    error::{ApiError, ApiResult, ErrorEnvelope},
    recommendations::Params,
    AppState,
};
use crate::store::{StatPoint, StatStep};

/// Buckets one answer may span at most.
const MAX_BUCKETS: i64 = 10_000;

pub fn admin_router() -> Router<AppState> {
    Router::new().route("/v1/stats", get(stats))
}

/// The query of `GET /v1/stats`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the query for OpenAPI; parsed by hand
pub struct StatsParams {
    /// The first bucket's time (RFC 3339); default: 60 minutes, 48 hours or 30 days before `to`.
    from: Option<String>,
    /// The end of the range, exclusive (RFC 3339); default now.
    to: Option<String>,
    /// The bucket width: `minute` (default; kept 7 days), `hour` (kept 92 days) or `day`
    /// (kept 5 years).
    step: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsOut {
    pub step: StatStep,
    pub from: String,
    pub to: String,
    /// Every counter with a bucket in the range. Series: `events` (acknowledged events by
    /// `type`, a retried duplicate included), `events_duplicate`, `responses` (recommendation
    /// responses by `source` and `arm`), `impressions` (responses recorded, by model `version`
    /// and `arm`), `credited` (responses credited with a click,
    /// add-to-cart or purchase, by model `version`, `arm` and `type`), `trainings` and
    /// `training_seconds` (by `outcome`: accepted, rejected, challenger or failed), `requests`
    /// (HTTP requests by latency bucket `le`, in seconds) and `request_seconds` (their total time).
    pub series: Vec<SeriesOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesOut {
    pub name: String,
    #[schema(value_type = Object)]
    pub labels: BTreeMap<String, String>,
    /// Only buckets with counts, oldest first.
    pub points: Vec<PointOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PointOut {
    /// The bucket's start (UTC).
    pub at: String,
    pub value: f64,
}

fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn instant(params: &Params, key: &str) -> ApiResult<Option<i64>> {
    let Some(raw) = params.get(key) else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(raw)
        .map(|t| Some(t.timestamp_millis()))
        .map_err(|_| ApiError::parameter(key, "must be an RFC 3339 time (2026-12-08T10:15:00Z)"))
}

fn step(params: &Params) -> ApiResult<StatStep> {
    match params.get("step") {
        None => Ok(StatStep::Minute),
        Some(raw) => StatStep::parse(raw)
            .ok_or_else(|| ApiError::parameter("step", "must be minute, hour or day")),
    }
}

#[utoipa::path(
    get, path = "/v1/stats", tag = "stats",
    params(StatsParams),
    responses(
        (status = 200, body = StatsOut), (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ),
    security((), ("admin_key" = []))
)]
pub async fn stats(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<StatsOut>> {
    let params = Params::new(query)?;
    let step = step(&params)?;
    let to = instant(&params, "to")?.unwrap_or_else(|| Utc::now().timestamp_millis());
    let default_span = match step {
        StatStep::Minute => 60,
        StatStep::Hour => 48,
        StatStep::Day => 30,
    };
    let from = instant(&params, "from")?.unwrap_or(to - default_span * step.millis());
    if from >= to {
        return Err(ApiError::parameter("from", "must be before to"));
    }
    if (to - from) / step.millis() > MAX_BUCKETS {
        return Err(ApiError::parameter(
            "from",
            format!(
                "spans more than {MAX_BUCKETS} buckets of a {}",
                step.as_str()
            ),
        ));
    }
    // This replica's latest counts first, so an answer includes everything it has counted.
    state.serving.stats.flush(&state.store).await?;
    let points = state.store.stats(step, step.bucket(from), to).await?;
    Ok(Json(StatsOut {
        step,
        from: time(from),
        to: time(to),
        series: series(points),
    }))
}

/// Groups the rows (sorted by series, labels, time) into series.
fn series(points: Vec<StatPoint>) -> Vec<SeriesOut> {
    let mut out: Vec<(String, String, SeriesOut)> = Vec::new();
    for p in points {
        let point = PointOut {
            at: time(p.bucket_ms),
            value: p.value,
        };
        match out.last_mut() {
            Some((name, labels, s)) if *name == p.series && *labels == p.labels => {
                s.points.push(point)
            }
            _ => {
                let parsed = p
                    .labels
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                out.push((
                    p.series.clone(),
                    p.labels,
                    SeriesOut {
                        name: p.series,
                        labels: parsed,
                        points: vec![point],
                    },
                ));
            }
        }
    }
    out.into_iter().map(|(_, _, s)| s).collect()
}
