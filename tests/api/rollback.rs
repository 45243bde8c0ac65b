//! Rollback and pinning: `POST /v1/model/versions/{version}/activate[?pin=true]` and
//! `POST /v1/model/unpin`, on this replica and on another one reading the same database.

use recloop::store::{ModelStatus, NewModelRecord};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

async fn activate(app: &TestApp, version: i64, query: &str) -> reqwest::Response {
    let path = format!("/v1/model/versions/{version}/activate{query}");
    app.request(Method::POST, &path).send().await.expect("POST")
}

async fn activate_ok(app: &TestApp, version: i64, query: &str) -> Value {
    let response = activate(app, version, query).await;
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn entry(versions: &Value, version: i64) -> &Value {
    versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version)
        .unwrap_or_else(|| panic!("no version {version} in {versions}"))
}

/// What a recommendation for `user` is served by.
async fn served_by(app: &TestApp, user: &str) -> i64 {
    app.recommend(user, "n=3").await["model_version"]
        .as_i64()
        .expect("a model version")
}

pub async fn an_earlier_version_goes_back_in_service_on_every_replica(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.exploration = 0.0).await;
    let first = app.seed_and_train().await;
    let second = app.retrain_wait().await;
    assert_eq!(second["status"], "accepted", "{second}");
    let second = second["version"].as_i64().unwrap();
    let replica = replica_serving(&app).await;
    assert_eq!(replica.current().map(|s| s.version()), Some(second));

    let body = activate_ok(&app, first, "").await;
    assert_eq!(body["version"], first);
    assert_eq!(
        (body["in_service"].clone(), body["pinned"].clone()),
        (json!(true), json!(false))
    );
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("activated by hand at"), "{reason}");
    assert!(
        reason.contains(&format!("in place of version {second}")),
        "{reason}"
    );
    assert_eq!(app.get_ok("/v1/model").await["version"], first);
    assert_eq!(served_by(&app, "u1").await, first);
    let versions = app.get_ok("/v1/model/versions").await;
    assert_eq!(entry(&versions, first)["in_service"], true);
    assert_eq!(entry(&versions, second)["in_service"], false);
    assert_eq!(entry(&versions, second)["status"], "accepted");

    // The other replica follows the database, back to the older version.
    let store = recloop::store::connect(&app.config.database_url)
        .await
        .unwrap();
    assert!(recloop::learn::adopt_champion(&store, &replica)
        .await
        .unwrap());
    assert_eq!(replica.current().map(|s| s.version()), Some(first));

    // Not pinned: the next accepted training replaces it.
    let third = app.retrain_wait().await;
    assert_eq!(third["status"], "accepted", "{third}");
    assert_eq!(third["in_service"], true, "{third}");
    let third = third["version"].as_i64().unwrap();
    assert_eq!(app.get_ok("/v1/model").await["version"], third);
    assert!(recloop::learn::adopt_champion(&store, &replica)
        .await
        .unwrap());
    assert_eq!(replica.current().map(|s| s.version()), Some(third));
}

pub async fn a_pinned_version_survives_restarts_and_trainings(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, |c| c.exploration = 0.0).await;
    let first = app.seed_and_train().await;
    let second = app.retrain_wait().await["version"].as_i64().unwrap();
    let body = activate_ok(&app, first, "?pin=true").await;
    assert_eq!(body["pinned"], true, "{body}");

    // Trainings go on and are recorded, accepted, but not put in service.
    let third = app.retrain_wait().await;
    assert_eq!(third["status"], "accepted", "{third}");
    assert_eq!(third["in_service"], false, "{third}");
    let reason = third["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("version {first} is pinned")),
        "{reason}"
    );
    let third = third["version"].as_i64().unwrap();
    assert_eq!(served_by(&app, "u2").await, first);

    app.restart().await;
    let model = app.get_ok("/v1/model").await;
    assert_eq!(
        (model["version"].clone(), model["pinned"].clone()),
        (json!(first), json!(true))
    );
    assert_eq!(served_by(&app, "u2").await, first);
    let versions = app.get_ok("/v1/model/versions").await;
    for (version, in_service) in [(first, true), (second, false), (third, false)] {
        assert_eq!(
            entry(&versions, version)["in_service"],
            in_service,
            "{version}"
        );
    }

    // Unpinned, it keeps serving until the next accepted training, which replaces it.
    let unpinned = app
        .request(Method::POST, "/v1/model/unpin")
        .send()
        .await
        .unwrap();
    assert_eq!(unpinned.status(), StatusCode::OK);
    let unpinned: Value = unpinned.json().await.unwrap();
    assert_eq!(
        (unpinned["version"].clone(), unpinned["pinned"].clone()),
        (json!(first), json!(false))
    );
    let again = app
        .request(Method::POST, "/v1/model/unpin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "unpinning twice is harmless"
    );
    assert_eq!(app.get_ok("/v1/model").await["version"], first);
    let fourth = app.retrain_wait().await;
    assert_eq!(fourth["in_service"], true, "{fourth}");
    assert_eq!(app.get_ok("/v1/model").await["version"], fourth["version"]);
}

pub async fn an_activation_ends_the_running_challenger(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.challenger_share = 0.5;
        c.exploration = 0.0;
    })
    .await;
    let first = app.seed_and_train().await;
    let challenger = app.retrain_wait().await;
    assert_eq!(challenger["status"], "challenger", "{challenger}");
    activate_ok(&app, first, "").await;
    assert!(app.state.serving.challenger().is_none());
    let versions = app.get_ok("/v1/model/versions").await;
    let retired = entry(&versions, challenger["version"].as_i64().unwrap());
    assert_eq!(retired["status"], "retired", "{retired}");
    assert_eq!(retired["in_service"], false);
    for user in ["u1", "u2", "u3", "u4"] {
        assert_eq!(app.recommend(user, "n=2").await["arm"], "champion");
    }
}

/// Only an accepted version can be activated, and a malformed request changes nothing.
pub async fn what_cannot_serve_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = activate(&app, 1, "").await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let first = app.seed_and_train().await;
    let rejected = app
        .state
        .store
        .insert_model(
            NewModelRecord {
                algorithm: "ials".into(),
                status: ModelStatus::Rejected,
                reason: "worse".into(),
                trained_at: chrono::Utc::now(),
                training_seconds: 0.1,
                events: 1,
                users: 1,
                items: 1,
                log_seq: 1,
                metrics: json!({}),
                params: json!({}),
            },
            None,
        )
        .await
        .unwrap()
        .version;
    let response = activate(&app, rejected, "").await;
    expect_error(response, StatusCode::CONFLICT, "not_activatable").await;
    let response = activate(&app, first + 1000, "").await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    for path in [
        "/v1/model/versions/abc/activate",
        "/v1/model/versions/1.5/activate",
        "/v1/model/versions/99999999999999999999/activate",
    ] {
        let response = app.request(Method::POST, path).send().await.unwrap();
        expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parameter",
        )
        .await;
    }
    let response = activate(&app, first, "?pin=maybe").await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parameter",
    )
    .await;
    let model = app.get_ok("/v1/model").await;
    assert_eq!(
        (model["version"].clone(), model["pinned"].clone()),
        (json!(first), json!(false))
    );
}
