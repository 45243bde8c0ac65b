//! The error envelope for what is wrong with a request before any rule of the domain:
//! 400, 404, 405, 413, 415, and 422 for query parameters.

use reqwest::{header::CONTENT_TYPE, Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

pub async fn malformed_json_is_400(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (path, method) in [
        ("/v1/events", Method::POST),
        ("/v1/items", Method::POST),
        ("/v1/items/sku-1", Method::PUT),
    ] {
        for body in [r#"{"user_id": "u1", "#, "", "nul", r#"[{"user_id": "u"}"#] {
            let response = app
                .request(method.clone(), path)
                .header(CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            expect_error(response, StatusCode::BAD_REQUEST, "malformed_json").await;
        }
    }
    assert!(app.stored_events().await.is_empty());
}

pub async fn a_body_that_is_not_json_is_415(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let valid = json!({"user_id": "u", "item_id": "i", "type": "view"}).to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        for (method, path) in [
            (Method::POST, "/v1/events"),
            (Method::POST, "/v1/items"),
            (Method::PUT, "/v1/items/i"),
        ] {
            let mut request = app.request(method, path).body(valid.clone());
            if let Some(content_type) = content_type {
                request = request.header(CONTENT_TYPE, content_type);
            }
            let response = request.send().await.unwrap();
            expect_error(
                response,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            )
            .await;
        }
    }
    // A JSON media type with parameters is JSON.
    let response = app
        .request(Method::POST, "/v1/events")
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(valid)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.stored_events().await.len(), 1);
}

pub async fn an_oversized_body_is_413_and_stores_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.max_body_bytes = 1024).await;
    let big: Vec<_> = (0..40)
        .map(|i| event(&format!("user-{i}"), &format!("item-{i}"), "view"))
        .collect();
    let body = serde_json::Value::Array(big);
    assert!(body.to_string().len() > 1024);
    let response = app.post_events(&body).await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let response = app
        .send_json(
            Method::PUT,
            "/v1/items/i1",
            &json!({"title": "x".repeat(2000)}),
        )
        .await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    assert!(app.stored_events().await.is_empty());
    // Just under the limit is fine.
    let counts = app.post_events_ok(&event("u", "i", "view")).await;
    assert_eq!(counts.accepted, 1);
}

pub async fn unknown_routes_are_404_and_wrong_methods_405_in_the_envelope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/v1/nope", "/v2/events", "/v1/users/u1/nope", "/"] {
        expect_error(app.get(path).await, StatusCode::NOT_FOUND, "not_found").await;
    }
    let response = app.get("/v1/events").await;
    expect_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    let response = app
        .request(Method::DELETE, "/v1/popular")
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}

pub async fn query_parameters_are_checked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.put_item("known", json!({})).await;
    let bases = [
        "/v1/users/u1/recommendations",
        "/v1/items/known/similar",
        "/v1/popular",
    ];
    for base in bases {
        for n in ["0", "101", "abc", "-1", "1.5", ""] {
            let response = app.get(&format!("{base}?n={n}")).await;
            let error = expect_error(
                response,
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_parameter",
            )
            .await;
            assert_eq!(error["details"][0]["field"], "n", "{base}?n={n}: {error}");
        }
        for n in ["1", "100"] {
            let (status, _) = app.get_json(&format!("{base}?n={n}")).await;
            assert_eq!(status, StatusCode::OK, "{base}?n={n}");
        }
    }
    let bad = [
        ("include_interacted=yes", "include_interacted"),
        ("category=", "category"),
        ("exclude=a,%07", "exclude"),
    ];
    for (query, field) in bad {
        let path = format!("/v1/users/u1/recommendations?{query}");
        let error = expect_error(
            app.get(&path).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parameter",
        )
        .await;
        assert_eq!(error["details"][0]["field"], field, "{query}: {error}");
    }
    let long = "x".repeat(257);
    let path = format!("/v1/users/{long}/recommendations");
    let error = expect_error(
        app.get(&path).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parameter",
    )
    .await;
    assert_eq!(error["details"][0]["field"], "user_id");
}
