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
        (Method::POST, "/v1/model/versions/1/activate", None),
        (Method::POST, "/v1/model/unpin", None),
        (Method::DELETE, "/v1/users/someone", None),
        (Method::GET, "/v1/users/someone/export", None),
        (Method::GET, "/v1/stats", None),
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
        ["", "v1", "users", _] => "/v1/users/{user_id}".into(),
        ["", "v1", "users", _, "export"] => "/v1/users/{user_id}/export".into(),
        ["", "v1", "model", "versions", _, "activate"] => {
            "/v1/model/versions/{version}/activate".into()
        }
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

/// Keys no other test uses, so that the process-wide metrics count only this test's requests.
fn fresh_key(kind: &str) -> String {
    format!("{kind}-{}", ulid::Ulid::new())
}

fn secrets(keys: &[&String]) -> Vec<recloop::config::Secret> {
    keys.iter().map(|k| k.parse().unwrap()).collect()
}

/// A rotation as an operator does it: the new key is added beside the old (single-key and
/// list settings together), both work on every route of their kind, then the old one is
/// removed and refused while the new one goes on working.
pub async fn a_key_is_rotated_without_refusing_either(backend: Backend) {
    let (old_api, new_api) = (fresh_key("api"), fresh_key("api"));
    let (old_admin, new_admin) = (fresh_key("admin"), fresh_key("admin"));
    let mut app = TestApp::spawn_with(backend, |c| {
        c.api_key = Some(old_api.parse().unwrap());
        c.api_keys = secrets(&[&new_api]);
        c.admin_keys = secrets(&[&old_admin, &new_admin]);
    })
    .await;
    let opens =
        |status: StatusCode| ![StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&status);
    for key in [&old_api, &new_api, &old_admin, &new_admin] {
        for route in api_routes() {
            let status = call(&app, &route, Some(&format!("Bearer {key}")))
                .await
                .status();
            assert!(
                opens(status),
                "{} {} with {key}: {status}",
                route.0,
                route.1
            );
        }
    }
    for key in [&old_admin, &new_admin] {
        let route = &admin_routes()[0];
        let status = call(&app, route, Some(&format!("Bearer {key}")))
            .await
            .status();
        assert_eq!(status, StatusCode::OK, "{key}");
    }
    for key in [&old_api, &new_api] {
        for route in admin_routes() {
            let response = call(&app, &route, Some(&format!("Bearer {key}"))).await;
            expect_refused(response, StatusCode::FORBIDDEN, "forbidden").await;
        }
    }

    // The old keys removed, as the next start of each replica would have it.
    app.config.api_key = None;
    app.config.admin_keys = secrets(&[&new_admin]);
    app.restart().await;
    for (key, route) in [
        (&old_api, &api_routes()[2]),
        (&old_admin, &admin_routes()[0]),
    ] {
        let response = call(&app, route, Some(&format!("Bearer {key}"))).await;
        let error = expect_error(response, StatusCode::UNAUTHORIZED, "unauthorized").await;
        assert!(!error.to_string().contains(key.as_str()), "{error}");
    }
    let status = call(&app, &api_routes()[2], Some(&format!("Bearer {new_api}")))
        .await
        .status();
    assert!(opens(status), "{status}");
    let status = call(
        &app,
        &admin_routes()[0],
        Some(&format!("Bearer {new_admin}")),
    )
    .await
    .status();
    assert_eq!(status, StatusCode::OK);
}

/// `/metrics` counts each key's requests under its fingerprint, and shows no key.
pub async fn requests_are_counted_per_key_fingerprint(backend: Backend) {
    let (first, second, admin) = (fresh_key("api"), fresh_key("api"), fresh_key("admin"));
    let app = TestApp::spawn_with(backend, |c| {
        c.api_keys = secrets(&[&first, &second]);
        c.admin_key = Some(admin.parse().unwrap());
    })
    .await;
    let route = &api_routes()[4];
    for (key, times) in [(&first, 3), (&second, 2), (&admin, 1)] {
        for _ in 0..times {
            let status = call(&app, route, Some(&format!("Bearer {key}")))
                .await
                .status();
            assert_eq!(status, StatusCode::OK);
        }
    }
    // A wrong key is counted against nobody's key.
    call(&app, route, Some("Bearer not-a-key")).await;
    let text = app.get("/metrics").await.text().await.unwrap();
    let count = |key: &String, role: &str| {
        let fp = recloop::api::keys::fingerprint(&key.parse().unwrap());
        let name = format!("recloop_http_requests_by_key_total{{role=\"{role}\",key=\"{fp}\"}}");
        text.lines()
            .find_map(|l| l.strip_prefix(&name))
            .map(|v| v.trim().parse::<f64>().unwrap())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    assert_eq!(count(&first, "api"), 3.0);
    assert_eq!(count(&second, "api"), 2.0);
    assert_eq!(count(&admin, "admin"), 1.0);
    for key in [&first, &second, &admin] {
        assert!(!text.contains(key.as_str()), "/metrics shows a key");
    }
}
