//! Keys: 401 without the API key, 403 for an API key on admin routes, open operations routes,
//! and no key ever echoed in an answer.

use reqwest::{header::AUTHORIZATION, Method, Response, StatusCode};
use serde_json::json;

use crate::helpers::*;

const API_KEY: &str = "api-key-7Qf2xL";
const ADMIN_KEY: &str = "admin-key-9Zr4pM";

/// `(method, path, body)` of every admin route.
fn admin_routes() -> Vec<(Method, &'static str, Option<serde_json::Value>)> {
    vec![
        (Method::PUT, "/v1/items/sku-1", Some(json!({"title": "t"}))),
        (
            Method::POST,
            "/v1/items",
            Some(json!([{"item_id": "sku-2"}])),
        ),
        (Method::DELETE, "/v1/items/sku-1", None),
        (Method::POST, "/v1/model/retrain", None),
        (Method::POST, "/v1/model/challenger/promote", None),
        (Method::POST, "/v1/model/challenger/retire", None),
    ]
}

fn api_routes() -> Vec<(Method, &'static str, Option<serde_json::Value>)> {
    vec![
        (
            Method::POST,
            "/v1/events",
            Some(json!({"user_id": "u", "item_id": "i", "type": "view"})),
        ),
        (Method::GET, "/v1/items/sku-1", None),
        (Method::GET, "/v1/users/u/recommendations", None),
        (Method::GET, "/v1/items/i/similar", None),
        (Method::GET, "/v1/popular", None),
        (Method::GET, "/v1/model", None),
        (Method::GET, "/v1/model/versions", None),
    ]
}

/// The OpenAPI path template a concrete path of the lists above belongs to.
fn template(path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "v1", "items", _] => "/v1/items/{item_id}".into(),
        ["", "v1", "items", _, "similar"] => "/v1/items/{item_id}/similar".into(),
        ["", "v1", "users", _, "recommendations"] => "/v1/users/{user_id}/recommendations".into(),
        _ => path.into(),
    }
}

async fn call(
    app: &TestApp,
    (method, path, body): &(Method, &str, Option<serde_json::Value>),
    authorization: Option<&str>,
) -> Response {
    let mut request = app.client.request(method.clone(), app.url(path));
    if let Some(value) = authorization {
        request = request.header(AUTHORIZATION, value);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request")
}

/// The error envelope, and no key anywhere in it.
async fn expect_refused(response: Response, status: StatusCode, code: &str) {
    let error = expect_error(response, status, code).await;
    let text = error.to_string();
    assert!(
        !text.contains(API_KEY) && !text.contains(ADMIN_KEY),
        "{text}"
    );
}

pub async fn the_api_key_guards_every_v1_route(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.api_key = Some(API_KEY.parse().unwrap())).await;
    let wrong = [
        None,
        Some("Bearer wrong".to_owned()),
        Some(format!("Bearer {API_KEY}x")),
        Some(format!("Bearer {}", &API_KEY[..API_KEY.len() - 1])),
        Some(format!("Basic {API_KEY}")),
        Some(API_KEY.to_owned()),
        Some("Bearer ".to_owned()),
    ];
    for route in api_routes().iter().chain(admin_routes().iter()) {
        for authorization in &wrong {
            let response = call(&app, route, authorization.as_deref()).await;
            expect_refused(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
    }
    assert!(app.stored_events().await.is_empty());

    // With the key (and no admin key configured) everything is allowed.
    let bearer = format!("Bearer {API_KEY}");
    for route in api_routes().iter().chain(admin_routes().iter()) {
        let status = call(&app, route, Some(&bearer)).await.status();
        assert!(
            ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&status),
            "{} {}: {status}",
            route.0,
            route.1
        );
    }
    assert_eq!(app.stored_events().await.len(), 1);
}

/// The lists above are every `/v1` operation the service describes: a new route cannot be
/// added without its key checks.
pub async fn the_key_tests_cover_every_v1_operation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let doc: serde_json::Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut described: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| path.starts_with("/v1/"))
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "put", "post", "delete", "patch"].contains(&m.as_str()))
                .map(|m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut tested: Vec<(String, String)> = api_routes()
        .iter()
        .chain(admin_routes().iter())
        .map(|(method, path, _)| (method.to_string(), template(path)))
        .collect();
    described.sort();
    tested.sort();
    assert_eq!(tested, described);
}

pub async fn operations_routes_need_no_key(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.api_key = Some(API_KEY.parse().unwrap());
        c.admin_key = Some(ADMIN_KEY.parse().unwrap());
    })
    .await;
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let text = response.text().await.unwrap();
        assert!(
            !text.contains(API_KEY) && !text.contains(ADMIN_KEY),
            "{path} shows a key"
        );
    }
}

pub async fn admin_routes_need_the_admin_key(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.api_key = Some(API_KEY.parse().unwrap());
        c.admin_key = Some(ADMIN_KEY.parse().unwrap());
    })
    .await;
    let api = format!("Bearer {API_KEY}");
    let admin = format!("Bearer {ADMIN_KEY}");
    for route in admin_routes() {
        let response = call(&app, &route, Some(&api)).await;
        expect_refused(response, StatusCode::FORBIDDEN, "forbidden").await;
        for authorization in [None, Some("Bearer nope")] {
            let response = call(&app, &route, authorization).await;
            expect_refused(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
    }
    // With both keys set, the API routes still refuse a missing or wrong key.
    for route in api_routes() {
        for authorization in [None, Some("Bearer nope"), Some("nope")] {
            let response = call(&app, &route, authorization).await;
            expect_refused(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        }
    }
    // Nothing happened: no item, no training.
    let response = call(&app, &api_routes()[1], Some(&api)).await;
    expect_refused(response, StatusCode::NOT_FOUND, "not_found").await;

    // The API key reads and posts events; the admin key does everything.
    for route in api_routes() {
        for key in [&api, &admin] {
            let status = call(&app, &route, Some(key)).await.status();
            assert!(
                ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&status),
                "{} {}: {status}",
                route.0,
                route.1
            );
        }
    }
    let expected = [
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::NO_CONTENT,
        StatusCode::ACCEPTED,
    ];
    for (route, want) in admin_routes().iter().zip(expected) {
        assert_eq!(
            call(&app, route, Some(&admin)).await.status(),
            want,
            "{}",
            route.1
        );
    }
}

pub async fn an_admin_key_alone_leaves_reads_open(backend: Backend) {
    let app =
        TestApp::spawn_with(backend, |c| c.admin_key = Some(ADMIN_KEY.parse().unwrap())).await;
    for route in api_routes() {
        let status = call(&app, &route, None).await.status();
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{} {}", route.0, route.1);
    }
    for route in admin_routes() {
        let response = call(&app, &route, None).await;
        expect_refused(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        let response = call(&app, &route, Some("Bearer not-the-key")).await;
        expect_refused(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
    }
}
