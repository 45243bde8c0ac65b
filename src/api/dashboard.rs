//! `GET /dashboard`: the operator's page, served from the binary itself (every asset embedded,
//! nothing fetched from elsewhere). The page needs no key to load; it asks for the admin key and
//! sends it as a bearer header on each API call, so no cookie could be forged across sites.

use axum::{
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

use super::AppState;

/// The page and its assets: path, content type, bytes. uPlot 1.6.31 (MIT, its licence beside
/// it) from npm, vendored unmodified.
const ASSETS: [(&str, &str, &str); 6] = [
    (
        "/dashboard",
        "text/html; charset=utf-8",
        include_str!("dashboard/index.html"),
    ),
    (
        "/dashboard/app.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/app.js"),
    ),
    (
        "/dashboard/app.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/app.css"),
    ),
    (
        "/dashboard/uplot.min.js",
        "text/javascript; charset=utf-8",
        include_str!("dashboard/vendor/uplot-1.6.31.min.js"),
    ),
    (
        "/dashboard/uplot.min.css",
        "text/css; charset=utf-8",
        include_str!("dashboard/vendor/uplot-1.6.31.min.css"),
    ),
    (
        "/dashboard/uplot-LICENSE",
        "text/plain; charset=utf-8",
        include_str!("dashboard/vendor/uplot-LICENSE"),
    ),
];

/// Scripts and styles from this origin only; no framing; the API answers JSON the page reads
/// as text.
const POLICY: &str = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; \
                      base-uri 'none'; form-action 'none'";

pub fn router() -> Router<AppState> {
    ASSETS[1..].iter().fold(
        Router::new().route(ASSETS[0].0, get(page)),
        |router, &(path, kind, body)| {
            router.route(path, get(move || async move { asset(kind, body) }))
        },
    )
}

#[utoipa::path(
    get, path = "/dashboard", tag = "operations",
    responses((status = 200, description = "the operator's dashboard (HTML); it asks for the admin key when one is set", content_type = "text/html")),
)]
pub async fn page() -> Response {
    asset(ASSETS[0].1, ASSETS[0].2)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
