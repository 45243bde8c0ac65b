//! HTTP only: one module per resource, each with its router; `router()` puts them together
//! with the cross-cutting layers (keys, metrics, timeout, body limit, tracing).

pub mod dashboard;
pub mod error;
pub mod events;
pub mod items;
pub mod json;
pub mod keys;
pub mod limit;
pub mod model;
pub mod observe;
pub mod ops;
pub mod recommendations;
pub mod schema;
pub mod stats;
pub mod users;

use std::sync::Arc;

use axum::{
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::Method,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    Router,
};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

use crate::{config::Config, learn::Trainer, serve::Serving, store::DynStore};
use error::ApiError;
use keys::Access;

/// Everything a handler may touch, passed with axum's `State`. One `Arc`: every middleware
/// layer clones the state for every request, and one shared counter is cheaper to bump than six.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What `AppState` shares.
pub struct Shared {
    pub store: DynStore,
    pub serving: Arc<Serving>,
    pub trainer: Arc<Trainer>,
    pub config: Arc<Config>,
    pub metrics: PrometheusHandle,
    /// `None` when rate limiting is off (the default).
    pub rate_limit: Option<Arc<limit::RateLimit>>,
    pub keys: keys::Keys,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "recloop", description = "Recommendations that learn from every event. The contract: api-v1.md."),
    paths(
        events::post_events,
        items::put_item, items::post_items, items::get_item, items::delete_item,
        recommendations::recommendations, recommendations::similar, recommendations::popular,
        model::current, model::versions, model::retrain, model::promote, model::retire,
        model::activate, model::unpin,
        users::erase, users::export,
        stats::stats,
        dashboard::page,
        ops::healthz, ops::readyz, ops::metrics_text, ops::openapi,
    ),
    modifiers(&KeySchemes, &Hostile)
)]
pub struct ApiDoc;

struct KeySchemes;

impl Modify for KeySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let bearer =
            || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("api_key", bearer());
        components.add_security_scheme("admin_key", bearer());
    }
}

/// Answers every `/v1` operation can give whatever it does: 429 when rate limiting is on, and
/// 503 when the request outlives the request timeout (bodies read too slowly included).
struct Hostile;

impl Modify for Hostile {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            header::HeaderBuilder, schema::Type, ContentBuilder, Ref, RefOr, ResponseBuilder,
        };
        let envelope = || {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .build()
        };
        let too_many = ResponseBuilder::new()
            .description(
                "rate limited (RECLOOP_RATE_LIMIT_PER_SECOND); retry after Retry-After seconds",
            )
            .content("application/json", envelope())
            .header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(utoipa::openapi::ObjectBuilder::new().schema_type(Type::Integer))
                    .description(Some("seconds to wait"))
                    .build(),
            )
            .build();
        let timeout = ResponseBuilder::new()
            .description(
                "storage unavailable, or the request took too long; nothing was half-written",
            )
            .content("application/json", envelope())
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                responses
                    .entry("429".into())
                    .or_insert_with(|| RefOr::T(too_many.clone()));
                responses
                    .entry("503".into())
                    .or_insert_with(|| RefOr::T(timeout.clone()));
            }
        }
    }
}

/// The gate of every `/v1` route: the rate limit first (so that a flood of wrong keys is
/// limited too), then the key the route needs. One layer, not two: each layer costs every
/// request a state clone and a boxed future.
async fn gate(State((s, access)): State<(AppState, Access)>, req: Request, next: Next) -> Response {
    // Which key the request holds is found once (a constant-time comparison per key) and
    // serves both checks.
    let presented = s.keys.presented(&req);
    if let Some(limited) = limit::refusal(&s, &req, presented) {
        return limited;
    }
    match s.keys.check(access, presented) {
        Ok(()) => next.run(req).await,
        Err(keys::Refusal::Unauthorized) => ApiError::Unauthorized.into_response(),
        Err(keys::Refusal::Forbidden) => ApiError::Forbidden.into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

async fn method_not_allowed(method: Method) -> Response {
    let mut r = ApiError::invalid(
        "method_not_allowed",
        format!("{method} is not allowed here"),
        vec![],
    )
    .into_response();
    *r.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    r
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(events::router())
        .merge(items::read_router())
        .merge(recommendations::router())
        .merge(model::read_router())
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), Access::Api),
            gate,
        ));
    let admin = Router::new()
        .merge(items::admin_router())
        .merge(model::admin_router())
        .merge(users::admin_router())
        .merge(stats::admin_router())
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), Access::Admin),
            gate,
        ));
    let v1 = Router::new().merge(api).merge(admin);
    Router::new()
        .merge(v1)
        .merge(ops::router())
        .merge(dashboard::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str)
                .unwrap_or("unmatched");
            // The route, not the URI: paths hold user ids, which stay out of logs. At debug
            // level: under the default filter the span is never built (no registry entry per
            // request); RUST_LOG=recloop=debug brings it back.
            tracing::debug_span!("request", method = %req.method(), route)
        }))
        .with_state(state)
}
