//! The online loop: impressions and credit, champion and challenger, learning from what was shown.

use std::collections::HashSet;

use recloop::store::{Arm, Impression};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

fn version_entry(versions: &Value, version: i64) -> Value {
    versions["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|v| v["version"] == version)
        .unwrap_or_else(|| panic!("no version {version}: {versions}"))
        .clone()
}

fn with_id(user: &str, item: &str, kind: &str, recommendation_id: &str) -> Value {
    json!({"user_id": user, "item_id": item, "type": kind, "recommendation_id": recommendation_id})
}

async fn post_admin(app: &TestApp, path: &str) -> reqwest::Response {
    app.request(Method::POST, path).send().await.expect("POST")
}

pub async fn events_naming_a_response_are_credited_to_its_version(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.exploration = 0.0).await;
    let version = app.seed_and_train().await;
    let shown = app.recommend("u1", "n=5").await;
    assert_eq!(shown["arm"], "champion", "{shown}");
    let id = shown["recommendation_id"].as_str().unwrap().to_owned();
    let items = ids(&shown);
    app.recommend("u2", "n=5").await;
    flush(&app).await;
    let not_shown = (0..ITEMS).map(item).find(|i| !items.contains(i)).unwrap();
    let events = json!([
        with_id("u1", &items[0], "click", &id),
        // Once per response and type: a second click on the same response adds nothing.
        with_id("u1", &items[1], "click", &id),
        with_id("u1", &items[2], "purchase", &id),
        // Not among the items shown: not credited.
        with_id("u1", &not_shown, "add_to_cart", &id),
        // Another user's response: not credited.
        with_id("u3", &items[0], "add_to_cart", &id),
        // An unknown id: stored, credited to nothing.
        with_id(
            "u1",
            &items[3],
            "add_to_cart",
            "01JUNKNOWN0000000000000000-v1"
        ),
        event("u1", &items[4], "add_to_cart"),
        // A view earns nothing.
        with_id("u1", &items[0], "view", &id),
    ]);
    assert_eq!(app.post_events_ok(&events).await.accepted, 8);
    assert_eq!(app.stored_events().await.len(), USERS * PER_USER + 8);
    tick(&app).await;
    // Reading the same events again (they are not settled yet) counts nothing twice.
    tick(&app).await;

    let versions = app.get_ok("/v1/model/versions").await;
    let online = &version_entry(&versions, version)["online"];
    assert_eq!(
        *online,
        json!({"impressions": 2, "clicks": 1, "add_to_carts": 0, "purchases": 1,
               "ctr": 0.5, "purchase_rate": 0.5}),
        "{versions}"
    );

    let text = app.get("/metrics").await.text().await.unwrap();
    for name in ["recloop_online_impressions", "recloop_online_purchase_rate"] {
        assert!(
            text.lines().any(|l| l.starts_with(name)
                && l.contains(&format!("version=\"{version}\""))
                && l.contains("arm=\"champion\"")),
            "{name} by version and arm:\n{text}"
        );
    }
}

pub async fn impressions_older_than_the_retention_are_purged_and_the_totals_stay(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.impression_retention_days = 1.0).await;
    let now = chrono::Utc::now().timestamp_millis();
    let shown = |id: &str, ms: i64, item: &str| Impression {
        recommendation_id: id.into(),
        user_id: "u1".into(),
        model_version: 1,
        arm: Arm::Champion,
        experiment: 0,
        source: "personalized".into(),
        items: vec![item.into(), "other".into()],
        shown_ms: ms,
    };
    let store = &app.state.store;
    store
        .insert_impressions(vec![
            shown("old-v1", now - 2 * 86_400_000, "i1"),
            shown("fresh-v1", now - 1_000, "i2"),
        ])
        .await
        .unwrap();
    app.post_events_ok(&json!([
        with_id("u1", "i1", "click", "old-v1"),
        with_id("u1", "i2", "click", "fresh-v1"),
    ]))
    .await;
    tick(&app).await;
    let user = recloop::domain::UserId::parse("u1").unwrap();
    let left: Vec<String> = store
        .user_impressions(&user, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.recommendation_id)
        .collect();
    assert_eq!(left, ["fresh-v1"], "the old impression is purged");
    // Credited before the purge; a later event naming the purged response earns nothing.
    app.post_events_ok(&json!([with_id("u1", "i1", "purchase", "old-v1")]))
        .await;
    tick(&app).await;
    let counts = store.online_counts().await.unwrap();
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!(
        (counts[0].impressions, counts[0].clicks, counts[0].purchases),
        (2, 2, 0),
        "totals outlive the impressions"
    );
}

pub async fn a_new_model_first_serves_its_share_as_challenger(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.challenger_share = 0.3;
        c.exploration = 0.0;
    })
    .await;
    let first = app.seed_and_train().await;
    app.post_events_ok(&json!([event("u0", "i1", "purchase")]))
        .await;
    let second = app.retrain_wait().await;
    assert_eq!(second["status"], "challenger", "{second}");
    let second = second["version"].as_i64().unwrap();
    let versions = app.get_ok("/v1/model/versions").await;
    for (version, status) in [(second, "challenger"), (first, "accepted")] {
        let entry = version_entry(&versions, version);
        assert_eq!(entry["status"], status, "{entry}");
        assert_eq!(entry["in_service"], true, "{entry}");
    }
    assert_eq!(app.get_ok("/v1/model").await["version"], first);

    let mut challengers = 0;
    for u in 0..USERS {
        let user = format!("u{u}");
        let body = app.recommend(&user, "n=3").await;
        let expected = recloop::model::arms::assign(&user, second, 0.3);
        let (arm, version) = match expected {
            Arm::Challenger => ("challenger", second),
            Arm::Champion => ("champion", first),
        };
        assert_eq!(body["arm"], arm, "{user}: {body}");
        assert_eq!(body["model_version"], version, "{user}: {body}");
        challengers += usize::from(expected == Arm::Challenger);
        let again = app.recommend(&user, "n=3").await;
        assert_eq!(again["arm"], arm, "stable for {user}");
    }
    assert!((30..=90).contains(&challengers), "{challengers} of {USERS}");
}

pub async fn the_challenger_is_promoted_or_retired_by_hand(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, |c| {
        c.challenger_share = 0.5;
        c.exploration = 0.0;
    })
    .await;
    for path in [
        "/v1/model/challenger/promote",
        "/v1/model/challenger/retire",
    ] {
        expect_error(
            post_admin(&app, path).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let first = app.seed_and_train().await;
    let second = app.retrain_wait().await["version"].as_i64().unwrap();

    let response = post_admin(&app, "/v1/model/challenger/promote").await;
    assert_eq!(response.status(), StatusCode::OK);
    let promoted: Value = response.json().await.unwrap();
    assert_eq!(
        (promoted["version"].as_i64(), promoted["status"].as_str()),
        (Some(second), Some("accepted")),
        "{promoted}"
    );
    assert!(promoted["reason"]
        .as_str()
        .unwrap()
        .contains("promoted by hand"));
    assert_eq!(app.get_ok("/v1/model").await["version"], second);
    let versions = app.get_ok("/v1/model/versions").await;
    assert_eq!(version_entry(&versions, first)["in_service"], false);
    for u in 0..20 {
        let body = app.recommend(&format!("u{u}"), "n=2").await;
        assert_eq!(
            (body["arm"].as_str(), body["model_version"].as_i64()),
            (Some("champion"), Some(second))
        );
    }
    expect_error(
        post_admin(&app, "/v1/model/challenger/promote").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let third = app.retrain_wait().await;
    assert_eq!(third["status"], "challenger");
    let third = third["version"].as_i64().unwrap();
    let response = post_admin(&app, "/v1/model/challenger/retire").await;
    assert_eq!(response.status(), StatusCode::OK);
    let retired: Value = response.json().await.unwrap();
    assert_eq!(
        (
            retired["version"].as_i64(),
            retired["status"].as_str(),
            retired["in_service"].as_bool()
        ),
        (Some(third), Some("retired"), Some(false)),
        "{retired}"
    );
    for u in 0..20 {
        let body = app.recommend(&format!("u{u}"), "n=2").await;
        assert_eq!(body["model_version"], second, "{body}");
    }
    // The decision is in the database: a restart serves the same.
    app.restart().await;
    assert_eq!(app.get_ok("/v1/model").await["version"], second);
    assert!(app.state.serving.challenger().is_none());
}

/// Shows every user one list; users in the rewarded arm buy its first item, the others
/// ignore it. Returns the number of responses per arm.
async fn one_round(app: &TestApp, rewarded: &str) -> (usize, usize) {
    let mut arms = (0, 0);
    let mut purchases = Vec::new();
    for u in 0..USERS {
        let user = format!("u{u}");
        let body = app.recommend(&user, "n=3").await;
        if body["arm"] == "challenger" {
            arms.1 += 1;
        } else {
            arms.0 += 1;
        }
        if body["arm"] == rewarded {
            let id = body["recommendation_id"].as_str().unwrap();
            purchases.push(with_id(&user, &ids(&body)[0], "purchase", id));
        }
    }
    app.post_events_ok(&Value::Array(purchases)).await;
    arms
}

pub async fn the_online_rule_promotes_a_better_challenger_and_retires_a_worse_one(
    backend: Backend,
) {
    let app = TestApp::spawn_with(backend, |c| {
        c.challenger_share = 0.5;
        c.challenger_min_impressions = 30;
        c.exploration = 0.0;
    })
    .await;
    let first = app.seed_and_train().await;
    let second = app.retrain_wait().await["version"].as_i64().unwrap();
    // Too few impressions: nothing is decided whatever the rates.
    for u in 0..10 {
        let user = format!("u{u}");
        let body = app.recommend(&user, "n=3").await;
        let id = body["recommendation_id"].as_str().unwrap();
        if body["arm"] == "challenger" {
            app.post_events_ok(&with_id(&user, &ids(&body)[0], "purchase", id))
                .await;
        }
    }
    tick(&app).await;
    assert_eq!(app.get_ok("/v1/model").await["version"], first);

    let (champion, challenger) = one_round(&app, "challenger").await;
    assert!(
        champion >= 30 && challenger >= 30,
        "{champion} / {challenger}"
    );
    tick(&app).await;
    let entry = version_entry(&app.get_ok("/v1/model/versions").await, second);
    assert_eq!(entry["status"], "accepted", "{entry}");
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .contains("online purchase rate"),
        "{entry}"
    );
    assert_eq!(app.get_ok("/v1/model").await["version"], second);

    let third = app.retrain_wait().await;
    assert_eq!(third["status"], "challenger", "{third}");
    let third = third["version"].as_i64().unwrap();
    one_round(&app, "champion").await;
    tick(&app).await;
    let entry = version_entry(&app.get_ok("/v1/model/versions").await, third);
    assert_eq!(entry["status"], "retired", "{entry}");
    assert_eq!(app.get_ok("/v1/model").await["version"], second);
    assert!(app.state.serving.challenger().is_none());
}

pub async fn an_item_shown_without_a_click_falls_in_that_users_ranking(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.impression_penalty = 0.3;
        c.exploration = 0.0;
    })
    .await;
    app.seed_and_train().await;
    let top = ids(&app.recommend("u1", "n=5").await)[0].clone();
    let mut requests = 1;
    while ids(&app.recommend("u1", "n=5").await).contains(&top) {
        requests += 1;
        assert!(
            requests < 15,
            "{top} is still shown after {requests} ignored showings"
        );
    }
    // The user's next event rebuilds their state. The showings still count: a replica that
    // never served this user (it knows them only from the database) answers the same.
    app.post_events_ok(&event("u1", "i0", "view")).await;
    flush(&app).await;
    let replica = replica_serving(&app).await;
    let user = recloop::domain::UserId::parse("u1").unwrap();
    let query = recloop::serve::RecommendQuery {
        n: 5,
        ..Default::default()
    };
    let there = replica.recommend(&user, &query).await.unwrap();
    let there: Vec<String> = there.items.into_iter().map(|i| i.item_id).collect();
    let here = ids(&app.recommend("u1", "n=5").await);
    assert_eq!(here, there, "the same showings count on both");
}

pub async fn without_penalty_or_exploration_repeated_requests_agree(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.impression_penalty = 0.0;
        c.exploration = 0.0;
    })
    .await;
    app.seed_and_train().await;
    let first = app.recommend("u1", "n=10").await;
    for _ in 0..5 {
        let again = app.recommend("u1", "n=10").await;
        assert_eq!(again["items"], first["items"]);
    }
    assert!(first["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i.get("explore").is_none()));
}

pub async fn a_bought_item_never_comes_back(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.exploration = 0.5;
        c.impression_penalty = 0.3;
    })
    .await;
    app.seed_and_train().await;
    let shown = app.recommend("u1", "n=10").await;
    let bought = ids(&shown)[0].clone();
    let id = shown["recommendation_id"].as_str().unwrap();
    app.post_events_ok(&with_id("u1", &bought, "purchase", id))
        .await;
    for query in ["n=100", "n=100&include_interacted=true", "n=10"] {
        for _ in 0..5 {
            let got = ids(&app.recommend("u1", query).await);
            assert!(
                !got.contains(&bought),
                "{bought} came back for {query}: {got:?}"
            );
        }
    }
}

pub async fn exploration_shows_little_known_and_new_items_in_its_share(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.exploration = 0.2;
        c.impression_penalty = 0.0;
    })
    .await;
    app.seed_and_train().await;
    app.put_item("brand-new", json!({"title": "just added"}))
        .await;
    tick(&app).await;
    let snap = app.state.serving.current().unwrap();
    let mut seen_new = false;
    let mut explored = HashSet::new();
    for r in 0..200 {
        let body = app.recommend(&format!("u{}", r % USERS), "n=10").await;
        let items = body["items"].as_array().unwrap();
        assert_eq!(items.len(), 10, "{body}");
        let flags: Vec<bool> = items.iter().map(|i| i["explore"] == true).collect();
        assert_eq!(
            flags,
            [[false; 8].as_slice(), &[true; 2]].concat(),
            "the last 2 of 10: {body}"
        );
        for i in &items[8..] {
            let id = i["item_id"].as_str().unwrap();
            explored.insert(id.to_owned());
            match snap.index.get(id) {
                Some(&k) => assert!(snap.uncertain[k as usize], "{id} is not little-known"),
                None => {
                    assert_eq!(id, "brand-new");
                    seen_new = true;
                }
            }
        }
    }
    assert!(seen_new, "the new item was never explored: {explored:?}");
    assert!(explored.len() > 5, "exploration varies: {explored:?}");
}

pub async fn another_replica_follows_the_challenger_from_the_database(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.challenger_share = 0.5;
        c.exploration = 0.0;
    })
    .await;
    let first = app.seed_and_train().await;
    let replica = replica_serving(&app).await;
    let store = recloop::store::connect(&app.config.database_url)
        .await
        .unwrap();
    let second = app.retrain_wait().await["version"].as_i64().unwrap();
    assert!(recloop::learn::adopt_challenger(&store, &replica)
        .await
        .unwrap());
    assert_eq!(replica.challenger().map(|c| c.version()), Some(second));
    // Same users in the same arms on both.
    for u in 0..40 {
        let user = format!("u{u}");
        let here = app.recommend(&user, "n=2").await;
        let id = recloop::domain::UserId::parse(user.as_str()).unwrap();
        let query = recloop::serve::RecommendQuery {
            n: 2,
            ..Default::default()
        };
        let there = replica.recommend(&id, &query).await.unwrap();
        assert_eq!(here["arm"], there.arm.as_str(), "{user}");
        assert_eq!(
            here["model_version"],
            there.model_version.unwrap(),
            "{user}"
        );
    }
    let promoted = post_admin(&app, "/v1/model/challenger/promote").await;
    assert_eq!(promoted.status(), StatusCode::OK);
    assert!(recloop::learn::adopt_challenger(&store, &replica)
        .await
        .unwrap());
    assert!(replica.challenger().is_none());
    assert_eq!(replica.current().map(|c| c.version()), Some(second));
    assert_ne!(first, second);
}
