//! `GET /v1/stats`: the counts match what was posted, served and credited; the hour and day
//! rollups match their minutes; they survive a restart; bad queries are 422.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// Each series of `name` as (labels → sum of its points).
fn sums(stats: &Value, name: &str) -> BTreeMap<String, f64> {
    stats["series"]
        .as_array()
        .expect("series")
        .iter()
        .filter(|s| s["name"] == name)
        .map(|s| {
            let labels = s["labels"].as_object().unwrap();
            let key = labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                .collect::<Vec<_>>()
                .join("&");
            let total = s["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["value"].as_f64().unwrap())
                .sum();
            (key, total)
        })
        .collect()
}

fn at(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|&(k, v)| (k.to_owned(), v)).collect()
}

/// Every step's answer over the whole day around now.
async fn every_step(app: &TestApp) -> Vec<Value> {
    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::hours(25)).to_rfc3339();
    let to = (now + chrono::Duration::hours(25)).to_rfc3339();
    let mut out = Vec::new();
    for step in ["minute", "hour", "day"] {
        let query = serde_urlencoded::to_string([
            ("from", &from),
            ("to", &to),
            ("step", &step.to_string()),
        ])
        .unwrap();
        out.push(app.get_ok(&format!("/v1/stats?{query}")).await);
    }
    out
}

pub async fn the_counts_match_what_was_posted_served_and_credited(backend: Backend) {
    let mut app = TestApp::spawn_with(backend, |c| c.exploration = 0.0).await;
    let version = app.seed_and_train().await;
    let shown = app.recommend("u1", "n=5").await;
    app.recommend("nobody", "n=5").await;
    let id = shown["recommendation_id"].as_str().unwrap();
    let items = ids(&shown);
    let events = json!([
        {"user_id": "u1", "item_id": items[0], "type": "click", "recommendation_id": id},
        {"user_id": "u1", "item_id": items[1], "type": "purchase", "recommendation_id": id},
        {"user_id": "u9", "item_id": "i1", "type": "view", "event_id": "e-1"},
    ]);
    app.post_events_ok(&events).await;
    // The same event id again: acknowledged as a duplicate.
    app.post_events_ok(
        &json!({"user_id": "u9", "item_id": "i1", "type": "view", "event_id": "e-1"}),
    )
    .await;
    tick(&app).await;

    let posted = (USERS * PER_USER) as f64;
    let views = planted_log().iter().filter(|e| e["type"] == "view").count() as f64;
    for stats in every_step(&app).await {
        let step = stats["step"].clone();
        let events = sums(&stats, "events");
        assert_eq!(
            events.values().sum::<f64>(),
            posted + 4.0,
            "{step}: {events:?}"
        );
        assert_eq!(events["type=view"], views + 2.0, "{step}: {events:?}");
        assert_eq!(sums(&stats, "events_duplicate"), at(&[("", 1.0)]), "{step}");
        assert_eq!(
            sums(&stats, "responses"),
            at(&[
                ("arm=champion&source=personalized", 1.0),
                ("arm=champion&source=popular", 1.0)
            ]),
            "{step}"
        );
        let credited = format!("arm=champion&type=click&version={version}");
        let bought = format!("arm=champion&type=purchase&version={version}");
        assert_eq!(
            sums(&stats, "credited"),
            at(&[(&credited, 1.0), (&bought, 1.0)]),
            "{step}"
        );
        // Both responses were recorded, under the version that answered.
        assert_eq!(
            sums(&stats, "impressions"),
            at(&[(&format!("arm=champion&version={version}"), 2.0)]),
            "{step}"
        );
        assert_eq!(
            sums(&stats, "trainings"),
            at(&[("outcome=accepted", 1.0)]),
            "{step}"
        );
        assert!(
            sums(&stats, "training_seconds")["outcome=accepted"] > 0.0,
            "{step}"
        );
        assert!(
            sums(&stats, "requests").values().sum::<f64>() >= 6.0,
            "{step}"
        );
    }
    let before: Vec<BTreeMap<String, f64>> = every_step(&app)
        .await
        .iter()
        .map(|s| sums(s, "events"))
        .collect();
    app.restart().await;
    let after: Vec<BTreeMap<String, f64>> = every_step(&app)
        .await
        .iter()
        .map(|s| sums(s, "events"))
        .collect();
    assert_eq!(before, after, "kept in the store");
}

pub async fn bad_stats_queries_are_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (query, field) in [
        ("step=week", "step"),
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("from=2026-12-08T10:00:00Z&to=2026-12-08T09:00:00Z", "from"),
        ("from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z", "from"),
    ] {
        let response = app.get(&format!("/v1/stats?{query}")).await;
        let body = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_parameter",
        )
        .await;
        assert_eq!(body["details"][0]["field"], field, "{query}: {body}");
    }
}
