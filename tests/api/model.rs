//! The loop: `/v1/model`, `/v1/model/versions`, `POST /v1/model/retrain`, gating, restarts.

use recloop::learn::{Outcome, TrainingParams};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{faults::Faults, helpers::*};

async fn retrain(app: &TestApp, query: &str) -> reqwest::Response {
    app.request(Method::POST, &format!("/v1/model/retrain{query}"))
        .send()
        .await
        .expect("retrain")
}

fn versions_of(body: &Value) -> Vec<(i64, String, bool)> {
    body["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| {
            let status = v["status"].as_str().expect("status").to_owned();
            (
                v["version"].as_i64().unwrap(),
                status,
                v["in_service"] == true,
            )
        })
        .collect()
}

pub async fn there_is_no_model_before_the_first_training(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    expect_error(
        app.get("/v1/model").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(
        app.get_ok("/v1/model/versions").await,
        json!({"versions": []})
    );
    for query in ["", "?wait=true"] {
        let response = retrain(&app, query).await;
        expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "no_events").await;
    }
    let response = retrain(&app, "?wait=soon").await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parameter",
    )
    .await;
}

pub async fn a_training_is_reported_by_model_and_versions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.seed_and_train().await;

    let model = app.get_ok("/v1/model").await;
    assert_eq!(model["version"], first);
    assert!(model["algorithm"].as_str().is_some_and(|a| !a.is_empty()));
    let trained_at = model["trained_at"].as_str().expect("trained_at");
    assert!(
        chrono::DateTime::parse_from_rfc3339(trained_at).is_ok(),
        "{trained_at}"
    );
    let total = model["training_seconds"]
        .as_f64()
        .expect("training_seconds");
    assert!(total > 0.0);
    // Where the time went: every phase of an accepted training, none longer than the whole.
    let phases = model["metrics"]["phase_seconds"]
        .as_object()
        .expect("phase_seconds");
    let names: Vec<&str> = phases.keys().map(String::as_str).collect();
    for want in [
        "read_log",
        "index",
        "choose",
        "gate",
        "fit",
        "popularity",
        "similar",
        "encode",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let sum: f64 = phases.values().map(|s| s.as_f64().expect("seconds")).sum();
    assert!(
        phases.values().all(|s| s.as_f64() >= Some(0.0)) && sum <= total,
        "phases {phases:?} against {total} s"
    );
    assert_eq!(model["events"], (USERS * PER_USER) as u64);
    assert_eq!(model["users"], USERS as u64);
    assert_eq!(model["items"], ITEMS as u64);
    // Planted tastes: the holdout metrics are far from trivial, and beat popularity.
    let ndcg = model["metrics"]["ndcg_at_10"].as_f64().expect("ndcg_at_10");
    let recall = model["metrics"]["recall_at_20"]
        .as_f64()
        .expect("recall_at_20");
    assert!(ndcg > 0.2 && ndcg <= 1.0, "{model}");
    assert!(recall > 0.3 && recall <= 1.0, "{model}");
    if let Some(popular) = model["metrics"]["popularity_ndcg_at_10"].as_f64() {
        assert!(ndcg > 2.0 * popular, "{model}");
    }

    // New events, a new version: newest first, the old one out of service.
    app.post_events_ok(&json!([
        event("u0", "i1", "purchase"),
        event("u9", "i2", "view")
    ]))
    .await;
    let second = app.retrain_wait().await;
    assert_eq!(second["version"], first + 1);
    assert_eq!(second["status"], "accepted");
    assert_eq!(second["events"], (USERS * PER_USER + 2) as u64);
    let versions = app.get_ok("/v1/model/versions").await;
    assert_eq!(
        versions_of(&versions),
        [
            (first + 1, "accepted".into(), true),
            (first, "accepted".into(), false)
        ]
    );
    for v in versions["versions"].as_array().unwrap() {
        assert!(v["metrics"]["ndcg_at_10"].is_number(), "{v}");
        assert!(
            v["trained_at"].is_string() && v["algorithm"].is_string(),
            "{v}"
        );
    }
    assert_eq!(app.get_ok("/v1/model").await["version"], first + 1);
    assert_eq!(app.recommend("u3", "").await["model_version"], first + 1);
}

pub async fn a_worse_candidate_is_rejected_and_the_old_model_keeps_serving(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, default_model).await;
    // A smaller planted log than the standard one: default parameters fit slowly unoptimised.
    let log = planted(80, 32, 12, SEED);
    app.post_events_ok(&Value::Array(log)).await;
    let good = app.retrain_wait().await;
    assert_eq!(good["status"], "accepted");
    let good = good["version"].as_i64().unwrap();

    let defaults = TrainingParams::from_config(&app.config);
    let worse = TrainingParams {
        als: recloop::model::AlsParams {
            factors: 1,
            iterations: 1,
            ..defaults.als.clone()
        },
        // Exactly this iALS, not whatever the validation split would choose.
        select: false,
        ..defaults
    };
    let outcome = app.state.trainer.run_with(worse).await.expect("training");
    let Outcome::Trained(record) = outcome else {
        panic!("expected a recorded version, got {outcome:?}");
    };
    assert_eq!(record.status.as_str(), "rejected", "{record:?}");
    assert_eq!(record.version, good + 1);

    only_serves(&app, good).await;
    // And after a restart, the rejected candidate is still not served.
    app.restart().await;
    only_serves(&app, good).await;
}

/// `good` serves; `good + 1` was rejected.
async fn only_serves(app: &TestApp, good: i64) {
    let versions = app.get_ok("/v1/model/versions").await;
    assert_eq!(
        versions_of(&versions),
        [
            (good + 1, "rejected".into(), false),
            (good, "accepted".into(), true)
        ]
    );
    assert_eq!(app.get_ok("/v1/model").await["version"], good);
    assert_eq!(app.recommend("u0", "").await["model_version"], good);
    assert_eq!(app.recommend("nobody", "").await["model_version"], good);
}

pub async fn retrain_is_409_while_a_training_runs_and_wait_waits_it_out(backend: Backend) {
    let faults = Faults::new();
    let app = TestApp::spawn_on(backend, |_| {}, faults.wrapper()).await;
    let log = planted_log();
    app.post_events_ok(&Value::Array(log.clone())).await;

    // The next training is held right after it has read the log.
    let gate = faults.log_gate.clone().write_owned().await;
    let reads = *faults.log_reads.borrow();
    let response = retrain(&app, "").await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "started");
    Faults::wait_past(&faults.log_reads, reads).await;

    let response = retrain(&app, "").await;
    expect_error(response, StatusCode::CONFLICT, "training_in_progress").await;

    // Acknowledged after the running training read the log: `wait` must cover it anyway.
    app.post_events_ok(&event("late", "i1", "purchase")).await;
    let arrived = *app.arrivals.borrow();
    let waiting = tokio::spawn(
        app.request(Method::POST, "/v1/model/retrain?wait=true")
            .send(),
    );
    // The waiting request is in (queued behind the running training); then that one is let go.
    app.arrived_past(arrived).await;
    drop(gate);

    let response = within(waiting).await.unwrap().expect("the waiting request");
    assert_eq!(response.status(), StatusCode::OK, "waits, never refuses");
    let entry: Value = response.json().await.unwrap();
    assert_eq!(entry["events"], (log.len() + 1) as u64, "{entry}");
    assert_eq!(entry["version"], 2, "{entry}");
    let versions = app.get_ok("/v1/model/versions").await;
    let events: Vec<&Value> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| &v["events"])
        .collect();
    assert_eq!(events, [&json!(log.len() + 1), &json!(log.len())]);
    // The late event counts at once for its user, too.
    assert_eq!(app.recommend("late", "").await["source"], "personalized");
}

pub async fn a_restart_keeps_events_catalog_and_model(backend: Backend) {
    let mut app = TestApp::spawn(backend).await;
    let version = app.seed_and_train().await;
    app.put_item("i3", json!({"title": "Kept", "categories": ["kept"]}))
        .await;
    app.put_item("i4", json!({"available": false})).await;
    let response = app
        .request(Method::DELETE, "/v1/items/i5")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.post_events_ok(&json!([
        event("buyer", "i0", "purchase"),
        event("buyer", "i1", "view"),
    ]))
    .await;
    let events_before = app.stored_events().await.len();
    let model_before = app.get_ok("/v1/model").await;
    let base_before = app.base.clone();

    app.restart().await;
    assert_ne!(app.base, base_before, "a new server");

    // The same model at once, without retraining.
    assert_eq!(app.get_ok("/v1/model").await, model_before);
    let versions = app.get_ok("/v1/model/versions").await;
    assert_eq!(versions_of(&versions), [(version, "accepted".into(), true)]);
    assert_eq!(app.stored_events().await.len(), events_before);
    // The catalog.
    let kept = app.get_ok("/v1/items/i3").await;
    assert_eq!(
        (kept["title"].clone(), kept["categories"].clone()),
        (json!("Kept"), json!(["kept"]))
    );
    assert_eq!(app.get_ok("/v1/items/i4").await["available"], false);
    expect_error(
        app.get("/v1/items/i5").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // The history: purchased and interacted items stay hidden, and so do i4 and i5.
    let body = app.recommend("buyer", "n=100").await;
    assert_eq!(body["source"], "personalized");
    assert_eq!(body["model_version"], version);
    let shown = ids(&body);
    for hidden in ["i0", "i1", "i4", "i5"] {
        assert!(!shown.contains(&hidden.to_owned()), "{hidden}: {body}");
    }
    assert_eq!(shown.len(), ITEMS - 4);
    let popular = ids(&app.get_ok("/v1/popular?n=100").await);
    assert!(!popular.contains(&"i4".to_owned()) && !popular.contains(&"i5".to_owned()));
    let category = ids(&app.get_ok("/v1/popular?category=kept").await);
    assert_eq!(category, ["i3"]);
}
