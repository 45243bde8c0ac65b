//! Request counts and latency per route, method and status, and the request timeout.
//!
//! The metric handles are looked up once per (route, method, status) and thread, then reused:
//! building the label strings and hashing them into the registry on every request cost more
//! than a cached recommendation itself.

use std::{cell::RefCell, collections::HashMap, time::Instant};

use axum::{
    extract::{MatchedPath, Request, State},
    http::Method,
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics::{Counter, Histogram};

use super::{error::ApiError, AppState};

/// One series' handles.
#[derive(Clone)]
struct Handles {
    requests: Counter,
    duration: Histogram,
}

/// A route's series seen on one thread, by method and status.
type RouteSeries = Vec<(Method, u16, Handles)>;

thread_local! {
    /// Routes and statuses are few (the router's patterns, not raw paths): this stays small.
    static HANDLES: RefCell<HashMap<Box<str>, RouteSeries>> = RefCell::new(HashMap::new());
}

fn handles(route: &str, method: &Method, status: u16) -> Handles {
    HANDLES.with(|cell| {
        let mut map = cell.borrow_mut();
        if let Some(found) = map
            .get(route)
            .and_then(|series| series.iter().find(|(m, s, _)| m == method && *s == status))
        {
            return found.2.clone();
        }
        let labels = [
            ("route", route.to_owned()),
            ("method", method.to_string()),
            ("status", status.to_string()),
        ];
        let made = Handles {
            requests: metrics::counter!("recloop_http_requests_total", &labels),
            duration: metrics::histogram!("recloop_http_request_duration_seconds", &labels),
        };
        map.entry(route.into())
            .or_default()
            .push((method.clone(), status, made.clone()));
        made
    })
}

pub async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = req.method().clone();
    // Waiting for a whole training is what `?wait=true` asks for; it is exempt. So is an
    // append once handed to the store (its handler bounds the body read itself).
    let exempt = route == "/v1/events"
        || (route == "/v1/model/retrain"
            && req.uri().query().is_some_and(|q| q.contains("wait=true")));
    let response = if exempt {
        next.run(req).await
    } else {
        match tokio::time::timeout(s.config.request_timeout(), next.run(req)).await {
            Ok(r) => r,
            Err(_) => ApiError::Timeout.into_response(),
        }
    };
    let series = handles(route, &method, response.status().as_u16());
    let seconds = started.elapsed().as_secs_f64();
    series.requests.increment(1);
    series.duration.record(seconds);
    if route != "unmatched" {
        let stats = &s.serving.stats;
        stats.add("requests", latency_bucket(seconds), 1.0);
        stats.add("request_seconds", "", seconds);
    }
    response
}

/// The latency histogram of the `requests` statistics: the upper bound of the request's bucket.
fn latency_bucket(seconds: f64) -> &'static str {
    const BOUNDS: [(f64, &str); 6] = [
        (0.001, "le=0.001"),
        (0.005, "le=0.005"),
        (0.025, "le=0.025"),
        (0.1, "le=0.1"),
        (0.5, "le=0.5"),
        (2.5, "le=2.5"),
    ];
    BOUNDS
        .iter()
        .find(|(bound, _)| seconds <= *bound)
        .map_or("le=inf", |&(_, label)| label)
}
