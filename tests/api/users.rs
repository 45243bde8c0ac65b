//! A person's data: `DELETE /v1/users/{user_id}` erases it everywhere (every table, every
//! replica's cache, the next model), `GET /v1/users/{user_id}/export` shows all of it.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::{faults::Faults, helpers::*};

/// An id no other row can contain by accident, so that finding it anywhere means it was kept.
const PERSON: &str = "erase-me-Zq81";
const UUID_EVENT: &str = "0190b6a4-7c3e-7def-8a01-0123456789ab";

/// The planted log and a model, then the person's own events, a response shown to them and a
/// click credited to it, all written through (impressions flushed, credit tallied).
async fn seed_person(app: &TestApp) {
    app.seed_and_train().await;
    let mut events = vec![
        json!({"user_id": PERSON, "item_id": "i1", "type": "view", "event_id": UUID_EVENT,
               "timestamp": "2026-11-27T10:15:00Z"}),
        json!({"user_id": PERSON, "item_id": "i2", "type": "purchase", "event_id": "order-77"}),
    ];
    events.extend(
        (3..6).map(|i| json!({"user_id": PERSON, "item_id": format!("i{i}"), "type": "click"})),
    );
    app.post_events_ok(&Value::Array(events)).await;
    let shown = app.recommend(PERSON, "n=5").await;
    let rec = shown["recommendation_id"].as_str().unwrap();
    let item = ids(&shown)[0].clone();
    app.post_events_ok(&json!({"user_id": PERSON, "item_id": item, "type": "click",
                                "recommendation_id": rec}))
        .await;
    written_through(app).await;
}

async fn written_through(app: &TestApp) {
    if let Some(sink) = app.state.serving.impressions() {
        sink.flush().await;
    }
    let seq = app.state.store.max_event_seq().await.unwrap();
    app.state.store.tally_credit(seq).await.unwrap();
}

/// Every table of the test's database whose rows contain `needle` anywhere (any column, as
/// text or bytes).
async fn tables_holding(app: &TestApp, needle: &str) -> Vec<String> {
    let url = app.config.database_url.clone();
    let mut found = Vec::new();
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert!(tables.len() > 8, "{tables:?}");
        for table in tables {
            let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?1)")
                .bind(&table)
                .fetch_all(&pool)
                .await
                .unwrap();
            let any = columns
                .iter()
                .map(|c| format!("instr(CAST(\"{c}\" AS BLOB), CAST(?1 AS BLOB)) > 0"))
                .collect::<Vec<_>>()
                .join(" OR ");
            let n: i64 =
                sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{table}\" WHERE {any}"))
                    .bind(needle)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            if n > 0 {
                found.push(table);
            }
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(tables.len() > 8, "{tables:?}");
        for table in tables {
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM \"{table}\" t WHERE strpos(t::text, $1) > 0"
            ))
            .bind(needle)
            .fetch_one(&pool)
            .await
            .unwrap();
            if n > 0 {
                found.push(table);
            }
        }
        pool.close().await;
    }
    found
}

async fn erase(app: &TestApp, user: &str) {
    let path = format!("/v1/users/{}", enc(user));
    let response = app.request(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

pub async fn an_erased_user_leaves_nothing_in_any_table(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.exploration = 0.0).await;
    seed_person(&app).await;
    let (status, export) = app.get_json(&format!("/v1/users/{PERSON}/export")).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    assert_eq!(export["user_id"], PERSON);
    let events = export["events"].as_array().unwrap();
    assert_eq!(events.len(), 6, "{export}");
    assert_eq!(
        events[0]["event_id"], UUID_EVENT,
        "a packed UUID reads back as posted"
    );
    assert_eq!(events[0]["timestamp"], "2026-11-27T10:15:00.000Z");
    assert_eq!(events[1]["event_id"], "order-77");
    assert_eq!(events[1]["type"], "purchase");
    let responses = export["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 1, "{export}");
    assert_eq!(responses[0]["credited"], json!(["click"]));
    assert_eq!(
        events[5]["recommendation_id"],
        responses[0]["recommendation_id"]
    );
    let holding = tables_holding(&app, PERSON).await;
    assert!(
        holding.len() >= 2,
        "the scan finds the person before: {holding:?}"
    );
    let totals = app.state.store.online_counts().await.unwrap();

    erase(&app, PERSON).await;
    assert_eq!(tables_holding(&app, PERSON).await, Vec::<String>::new());
    assert_eq!(
        app.state.store.online_counts().await.unwrap(),
        totals,
        "totals stay"
    );
    let (status, _) = app.get_json(&format!("/v1/users/{PERSON}/export")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    erase(&app, PERSON).await;
    erase(&app, "never-seen").await;
    // The person may come back, as anyone new.
    assert_eq!(app.recommend(PERSON, "n=3").await["user_id"], PERSON);
}

/// What `user` gets from `serving`, as item ids.
async fn served(serving: &recloop::serve::Serving, user: &str) -> Vec<String> {
    let id = recloop::domain::UserId::parse(user).unwrap();
    let query = recloop::serve::RecommendQuery {
        n: 10,
        ..Default::default()
    };
    let rec = serving.recommend(&id, &query).await.unwrap();
    rec.items.into_iter().map(|i| i.item_id).collect()
}

pub async fn a_replica_that_cached_the_user_forgets_them(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.exploration = 0.0).await;
    seed_person(&app).await;
    let replica = replica_serving(&app).await;
    // Someone with no history and nothing shown yet: what a forgotten person gets.
    let stranger = served(&replica, "stranger-1").await;
    assert_eq!(served(&app.state.serving, "stranger-2").await, stranger);
    assert_ne!(
        served(&replica, PERSON).await,
        stranger,
        "the person's history shapes their list"
    );
    assert_ne!(served(&app.state.serving, PERSON).await, stranger);
    // Shown again: their state is cached on both, what they were shown included.
    served(&replica, PERSON).await;
    written_through(&app).await;

    erase(&app, PERSON).await;
    // Replicas share PostgreSQL; a SQLite file has one serving process. The other replica is
    // asked first: what this one shows the person from now on is recorded, and would rightly
    // change the other's answer.
    if app.state.store.is_shared() {
        assert_eq!(
            served(&replica, PERSON).await,
            stranger,
            "the other replica forgot"
        );
    }
    assert_eq!(
        served(&app.state.serving, PERSON).await,
        stranger,
        "this replica forgot"
    );
}

pub async fn a_retrain_after_erasure_is_the_model_of_a_log_that_never_had_them(backend: Backend) {
    let with = TestApp::spawn(backend).await;
    seed_person(&with).await;
    erase(&with, PERSON).await;
    let retrained = with.retrain_wait().await;
    assert_eq!(retrained["status"], "accepted", "{retrained}");
    assert_eq!(retrained["params"]["erasures"], 1);
    let without = TestApp::spawn(backend).await;
    without.seed_and_train().await;
    let (a, blob_a) = with.state.store.champion_model().await.unwrap().unwrap();
    let (b, blob_b) = without.state.store.champion_model().await.unwrap().unwrap();
    assert_eq!((a.events, a.users, a.items), (b.events, b.users, b.items));
    assert!(blob_a == blob_b, "the fitted models differ");
}

pub async fn an_erasure_during_a_training_does_not_bring_them_back(backend: Backend) {
    let faults = Faults::new();
    let app = TestApp::spawn_on(backend, |c| c.exploration = 0.0, faults.wrapper()).await;
    seed_person(&app).await;
    let versions = app.get_ok("/v1/model/versions").await["versions"]
        .as_array()
        .unwrap()
        .len();

    // A training waiting for its result, held right after reading a log that has the person.
    let gate = faults.log_gate.clone().write_owned().await;
    let reads = *faults.log_reads.borrow();
    let waiting = {
        let request = app.request(Method::POST, "/v1/model/retrain?wait=true");
        tokio::spawn(async move { request.send().await.unwrap() })
    };
    Faults::wait_past(&faults.log_reads, reads).await;
    erase(&app, PERSON).await;
    drop(gate);

    let response = within(waiting).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let model: Value = response.json().await.unwrap();
    assert_eq!(
        model["params"]["erasures"], 1,
        "trained again, without them: {model}"
    );
    assert_eq!(model["events"], (USERS * PER_USER) as i64, "{model}");
    let after = app.get_ok("/v1/model/versions").await["versions"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        after,
        versions + 1,
        "the training that read them was not recorded"
    );
    written_through(&app).await;
    assert_eq!(tables_holding(&app, PERSON).await, Vec::<String>::new());
}
