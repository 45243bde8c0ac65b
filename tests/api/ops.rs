//! Operations: health, readiness, metrics, the OpenAPI description, and storage failures.

use reqwest::{header::CONTENT_TYPE, Method, StatusCode};
use serde_json::json;

use crate::{faults::Faults, helpers::*};

pub async fn health_and_readiness(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
}

pub async fn openapi_describes_every_contract_path(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let doc = app.get_ok("/openapi.json").await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')),
        "an OpenAPI 3 document"
    );
    let contract = [
        ("/v1/events", &["post"][..]),
        ("/v1/items", &["post"]),
        ("/v1/items/{item_id}", &["put", "get", "delete"]),
        ("/v1/users/{user_id}/recommendations", &["get"]),
        ("/v1/items/{item_id}/similar", &["get"]),
        ("/v1/popular", &["get"]),
        ("/v1/model", &["get"]),
        ("/v1/model/versions", &["get"]),
        ("/v1/model/retrain", &["post"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/openapi.json", &["get"]),
    ];
    for (path, methods) in contract {
        for method in methods {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} missing from /openapi.json"
            );
        }
    }
    // The documented statuses of a few routes agree with the contract.
    let statuses = |path: &str, method: &str| -> Vec<String> {
        let responses = doc["paths"][path][method]["responses"].as_object().unwrap();
        responses.keys().cloned().collect()
    };
    for code in ["200", "400", "401", "413", "415", "422", "503"] {
        assert!(
            statuses("/v1/events", "post").contains(&code.to_owned()),
            "{code}"
        );
    }
    for code in ["200", "202", "403", "409"] {
        assert!(
            statuses("/v1/model/retrain", "post").contains(&code.to_owned()),
            "{code}"
        );
    }
    assert!(statuses("/v1/model", "get").contains(&"404".to_owned()));
}

fn metric_lines<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .collect()
}

pub async fn metrics_are_prometheus_text_with_recloop_names(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let version = app.seed_and_train().await;
    app.get_ok("/v1/popular").await;
    let rec = app.recommend("u0", "").await;
    let credited = json!({"user_id": "u0", "item_id": ids(&rec)[0], "type": "purchase",
                          "recommendation_id": rec["recommendation_id"]});
    app.post_events_ok(&credited).await;
    let rejected = app
        .post_events(&json!({"user_id": "u", "item_id": "i", "type": "like"}))
        .await;
    assert_eq!(rejected.status(), StatusCode::UNPROCESSABLE_ENTITY);

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();

    let requests = metric_lines(&text, "recloop_http_requests_total");
    assert!(
        requests.iter().any(|l| l.contains(r#"route="/v1/popular""#)
            && l.contains(r#"method="GET""#)
            && l.contains(r#"status="200""#)),
        "requests per route and status:\n{}",
        requests.join("\n")
    );
    assert!(requests.iter().any(|l| l.contains(r#"status="422""#)));
    for histogram in [
        "recloop_http_request_duration_seconds",
        "recloop_training_duration_seconds",
    ] {
        let buckets = metric_lines(&text, &format!("{histogram}_bucket"));
        assert!(!buckets.is_empty(), "{histogram} is a histogram:\n{text}");
    }
    for name in [
        "recloop_events_accepted_total",
        "recloop_events_rejected_total",
        "recloop_model_version",
        "recloop_trainings_total",
        "recloop_model_ndcg_at_10",
        "recloop_model_recall_at_20",
    ] {
        assert!(
            !metric_lines(&text, name).is_empty(),
            "{name} missing:\n{text}"
        );
    }
    let outcome = metric_lines(&text, "recloop_trainings_total");
    assert!(outcome.iter().any(|l| l.contains(r#"outcome="accepted""#)));
    let credits = metric_lines(&text, "recloop_credited_events_total");
    assert!(
        credits
            .iter()
            .any(|l| l.contains(&format!(r#"model_version="{version}""#)) && l.contains("purchase")),
        "credited purchases per model version:\n{}",
        credits.join("\n")
    );
}

pub async fn storage_down_is_503_and_half_writes_nothing(backend: Backend) {
    let faults = Faults::new();
    let app = TestApp::spawn_on(backend, |_| {}, faults.wrapper()).await;
    app.seed_and_train().await;
    let stored = app.stored_events().await.len();

    faults.set_down(true);
    expect_error(
        app.get("/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
    )
    .await;
    assert_eq!(
        app.get("/healthz").await.status(),
        StatusCode::OK,
        "the process is up"
    );
    let batch = json!([event("u1", "i1", "purchase"), event("u2", "i2", "view")]);
    let response = app.post_events(&batch).await;
    expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
    )
    .await;
    let response = app.send_json(Method::PUT, "/v1/items/i1", &json!({})).await;
    expect_error(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
    )
    .await;
    // Reads of the model in memory go on; a user is never answered with an error.
    assert_eq!(ids(&app.get_ok("/v1/popular").await).len(), 10);
    assert_eq!(ids(&app.recommend("u0", "").await).len(), 10);
    assert!(app.get_ok("/v1/model").await["version"].is_number());

    faults.set_down(false);
    assert_eq!(
        app.stored_events().await.len(),
        stored,
        "nothing was written"
    );
    assert_eq!(app.get("/readyz").await.status(), StatusCode::OK);
    assert_eq!(
        app.post_events_ok(&batch).await.accepted,
        2,
        "the retry succeeds"
    );
}

/// Contract: a 503 means "retry; nothing was half-written". A POST /v1/events that times out
/// while the database is busy must therefore not store its events afterwards; and if it is
/// stored, it is acknowledged and shapes the user's next recommendations like any other.
pub async fn an_events_request_answered_503_stores_nothing(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.request_timeout_secs = 1).await;
    app.seed_and_train().await;
    let user = "u1";
    let top = ids(&app.recommend(user, "").await)[0].clone();

    // Another process (a backup, a migration) keeps every writer out for a while: until the
    // answer comes, or a little past the request timeout if it does not.
    let lock = app.db().lock_writes().await;
    let purchase = json!({"user_id": user, "item_id": top, "type": "purchase"});
    let request = app
        .request(Method::POST, "/v1/events")
        .json(&purchase)
        .send();
    let mut request = tokio::spawn(request);
    let lock_for = app.config.request_timeout() + std::time::Duration::from_millis(500);
    let early = tokio::select! {
        answered = &mut request => Some(answered),
        _ = tokio::time::sleep(lock_for) => None,
    };
    lock.release().await;
    let response = match early {
        Some(answered) => answered,
        None => within(request).await,
    };
    let response = response.unwrap().expect("an answer");
    let status = response.status();
    let body = response.text().await.unwrap();

    // The single writer works in order: once this later event is acknowledged, anything
    // queued before it has been written or dropped.
    app.post_events_ok(&event("someone-else", "i1", "view"))
        .await;
    let written = app
        .stored_events()
        .await
        .iter()
        .any(|r| r.user_id == user && r.item_id == top);
    let still_recommended = ids(&app.recommend(user, "n=100").await).contains(&top);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert!(
            !written,
            "answered 503 ({body}) yet the purchase was stored; the purchased item is {} \
             recommended to the user afterwards",
            if still_recommended {
                "still"
            } else {
                "no longer"
            }
        );
    } else {
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            written && !still_recommended,
            "acknowledged: stored and hidden"
        );
    }
}
