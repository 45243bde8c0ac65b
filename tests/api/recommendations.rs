//! Reading the model: recommendations (and the real-time rule), similar items, popular items.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

fn scores_descend(body: &Value) {
    let scores: Vec<f64> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["score"].as_f64().expect("a numeric score"))
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{body}");
}

pub async fn recommendations_have_the_contract_shape(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let version = app.seed_and_train().await;

    let body = app.recommend("u0", "").await;
    let fields: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for field in [
        "user_id",
        "recommendation_id",
        "model_version",
        "source",
        "items",
    ] {
        assert!(fields.contains(&field), "{field} missing: {body}");
    }
    assert_eq!(body["user_id"], "u0");
    assert_eq!(body["model_version"], version);
    assert_eq!(body["source"], "personalized");
    assert_eq!(ids(&body).len(), 10, "n defaults to 10");
    scores_descend(&body);
    let first = body["recommendation_id"].as_str().unwrap().to_owned();
    assert!(!first.is_empty());

    let body = app.recommend("u0", "n=3").await;
    assert_eq!(ids(&body).len(), 3);
    assert_ne!(
        body["recommendation_id"], first,
        "each response has its own id"
    );

    // An event carrying a recommendation_id is accepted (and credited, see ops).
    let click = json!({"user_id": "u0", "item_id": ids(&body)[0], "type": "click",
                       "recommendation_id": body["recommendation_id"]});
    assert_eq!(app.post_events_ok(&click).await.accepted, 1);
}

pub async fn a_user_without_history_gets_popular_items_never_an_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Before any model: still 200.
    let body = app.recommend("nobody", "").await;
    assert_eq!(body["source"], "popular");
    assert_eq!(body["model_version"], Value::Null);
    assert!(body["items"].is_array());

    let version = app.seed_and_train().await;
    let body = app.recommend("nobody", "n=10").await;
    assert_eq!(body["source"], "popular");
    assert_eq!(body["model_version"], version);
    let popular = app.get_ok("/v1/popular?n=10").await;
    assert_eq!(ids(&body), ids(&popular));
    assert_eq!(ids(&body).len(), 10);
}

pub async fn one_acknowledged_purchase_makes_the_next_response_personal(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let version = app.seed_and_train().await;

    let before = app.recommend("newcomer", "").await;
    assert_eq!(before["source"], "popular");

    app.post_events_ok(&event("newcomer", "i1", "purchase"))
        .await;
    let after = app.recommend("newcomer", "").await;
    assert_eq!(after["source"], "personalized", "{after}");
    assert_eq!(after["model_version"], version, "no retraining happened");
    assert!(!ids(&after).contains(&"i1".to_owned()));
    let versions = app.get_ok("/v1/model/versions").await;
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1);
}

fn share_of_cluster(body: &Value, cluster: usize) -> usize {
    ids(body)
        .iter()
        .filter(|i| cluster_of(i) == cluster)
        .count()
}

pub async fn the_latest_events_shape_the_very_next_recommendations(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_and_train().await;

    // A newcomer buys four items of cluster 2: the next ten are mostly cluster 2.
    let taste = cluster_items(2);
    let bought: Vec<Value> = taste[..4]
        .iter()
        .map(|i| event("taster", i, "purchase"))
        .collect();
    app.post_events_ok(&Value::Array(bought)).await;
    let body = app.recommend("taster", "n=10").await;
    assert!(share_of_cluster(&body, 2) >= 8, "mostly cluster 2: {body}");

    // A planted user of cluster 1 turns to cluster 3: the very next answer follows.
    let before = app.recommend("u1", "n=10").await;
    let turned: Vec<Value> = cluster_items(3)[..12]
        .iter()
        .map(|i| event("u1", i, "purchase"))
        .collect();
    app.post_events_ok(&Value::Array(turned)).await;
    let after = app.recommend("u1", "n=10").await;
    let (was, now) = (share_of_cluster(&before, 3), share_of_cluster(&after, 3));
    assert!(now > was && now >= 5, "before: {before}\nafter: {after}");
}

pub async fn hidden_items_never_come_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_and_train().await;
    let user = "a/b c"; // an id that needs encoding in the path
    let path = |query: &str| format!("/v1/users/{}/recommendations?{query}", enc(user));
    let every = |body: &Value| -> Vec<String> { ids(body) };
    app.post_events_ok(&json!([
        event(user, "i0", "purchase"),
        event(user, "i1", "view"),
        event(user, "i2", "add_to_cart"),
        event(user, "i3", "click"),
        event(user, "i3", "purchase"),
    ]))
    .await;

    // n=100 lists every candidate (80 items), so absence and presence are both exact.
    let body = app.get_ok(&path("n=100")).await;
    let shown = every(&body);
    assert_eq!(body["user_id"], user);
    for hidden in ["i0", "i1", "i2", "i3"] {
        assert!(
            !shown.contains(&hidden.to_owned()),
            "{hidden} shown: {body}"
        );
    }
    assert_eq!(shown.len(), ITEMS - 4);

    let body = app.get_ok(&path("n=100&include_interacted=true")).await;
    let shown = every(&body);
    assert!(shown.contains(&"i1".to_owned()) && shown.contains(&"i2".to_owned()));
    assert!(!shown.contains(&"i0".to_owned()), "purchased: never");
    assert!(
        !shown.contains(&"i3".to_owned()),
        "purchased after a click: never"
    );

    let body = app
        .get_ok(&path("n=100&include_interacted=true&exclude=i4,i5,,i1"))
        .await;
    let shown = every(&body);
    for hidden in ["i0", "i1", "i3", "i4", "i5"] {
        assert!(
            !shown.contains(&hidden.to_owned()),
            "{hidden} shown: {body}"
        );
    }
    assert!(shown.contains(&"i2".to_owned()));
}

pub async fn unavailable_and_deleted_items_are_never_recommended(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_and_train().await;
    // Asked once before the catalog changes, so whatever is cached for u2 predates them.
    let before = app.recommend("u2", "n=100").await;
    assert!(["i10", "i11", "i12"]
        .iter()
        .any(|i| ids(&before).contains(&i.to_string())));
    app.put_item("i10", json!({"available": false})).await;
    // i11 is known from events only; deleting it still hides it for good.
    let response = app
        .request(Method::DELETE, "/v1/items/i11")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    app.put_item("i12", json!({})).await;
    let response = app
        .request(Method::DELETE, "/v1/items/i12")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    let gone = ["i10", "i11", "i12"];

    let mut lists = vec![
        app.recommend("u2", "n=100").await,
        app.recommend("u2", "n=100&include_interacted=true").await,
        app.recommend("nobody", "n=100").await,
        app.get_ok("/v1/popular?n=100").await,
    ];
    for item in ["i2", "i6", "i14", "i0", "i1"] {
        lists.push(app.get_ok(&format!("/v1/items/{item}/similar?n=100")).await);
    }
    for list in &lists {
        let shown = ids(list);
        assert!(!shown.is_empty(), "{list}");
        for item in gone {
            assert!(!shown.contains(&item.to_owned()), "{item} shown: {list}");
        }
    }
    // The popular list still holds every other item: nothing else was lost.
    assert_eq!(ids(&lists[3]).len(), ITEMS - gone.len());

    // Available again: back in the lists.
    app.put_item("i10", json!({"available": true})).await;
    assert!(ids(&app.get_ok("/v1/popular?n=100").await).contains(&"i10".to_owned()));
}

pub async fn a_category_filter_returns_only_that_category(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_and_train().await;
    let items: Vec<Value> = (0..12)
        .map(|i| {
            let category = if i % 3 == 0 { "shoes" } else { "hats" };
            json!({"item_id": item(i), "categories": [category, "all"]})
        })
        .collect();
    let response = app
        .send_json(Method::POST, "/v1/items", &Value::Array(items))
        .await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let shoes: Vec<String> = [0, 3, 6, 9].map(item).to_vec();

    let popular = app.get_ok("/v1/popular?n=100&category=shoes").await;
    let mut got = ids(&popular);
    got.sort();
    let mut want = shoes.clone();
    want.sort();
    assert_eq!(got, want, "every shoe and nothing else");
    scores_descend(&popular);

    for user in ["u0", "u5", "nobody"] {
        let body = app.recommend(user, "n=100&category=shoes").await;
        let got = ids(&body);
        assert!(!got.is_empty(), "{body}");
        assert!(got.iter().all(|i| shoes.contains(i)), "{body}");
    }
    let none = app.recommend("u0", "category=socks").await;
    assert_eq!(ids(&none), Vec::<String>::new());
    assert_eq!(
        ids(&app.get_ok("/v1/popular?n=5&category=all").await).len(),
        5
    );
}

/// A category too narrow for the user's cached shortlist: the request ranks again with the
/// filter applied, and must give the same items, in the same order, as filtering a list long
/// enough to hold them.
pub async fn a_narrow_category_ranks_past_the_cached_shortlist(backend: Backend) {
    const ITEMS: usize = 150;
    let app = TestApp::spawn_with(backend, |c| {
        small_model(c);
        // Responses must not demote what the next one lists: the lists are compared.
        c.impression_penalty = 0.0;
    })
    .await;
    app.post_events_ok(&Value::Array(planted(USERS, ITEMS, PER_USER, SEED)))
        .await;
    assert_eq!(app.retrain_wait().await["status"], "accepted");
    let rare = |id: &str| id[1..].parse::<usize>().unwrap() % 10 == 0;
    let items: Vec<Value> = (0..ITEMS)
        .map(|i| {
            let category = if i % 10 == 0 { "rare" } else { "common" };
            json!({"item_id": item(i), "categories": [category]})
        })
        .collect();
    let response = app
        .send_json(Method::POST, "/v1/items", &Value::Array(items))
        .await;
    assert_eq!(response.status(), reqwest::StatusCode::OK);

    for user in ["u0", "u7", "u42"] {
        // 100 is more than the cached shortlist holds: this list is ranked past it too.
        let all = ids(&app.recommend(user, "n=100").await);
        assert_eq!(all.len(), 100);
        assert_eq!(ids(&app.recommend(user, "n=10").await), all[..10]);
        let rare_in_all: Vec<String> = all.iter().filter(|i| rare(i)).cloned().collect();
        // The shortlist holds the best 64: ask for one more rare item than it has.
        let n = all[..64].iter().filter(|i| rare(i)).count() + 1;
        assert!(
            rare_in_all.len() >= n,
            "{user}: too few rare items to compare"
        );
        let body = app.recommend(user, &format!("n={n}&category=rare")).await;
        assert_eq!(ids(&body), rare_in_all[..n], "{user}: {body}");
        scores_descend(&body);
    }
}

pub async fn similar_items_come_from_the_same_taste(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let version = app.seed_and_train().await;
    let body = app.get_ok("/v1/items/i4/similar?n=5").await;
    assert_eq!(body["item_id"], "i4");
    assert_eq!(body["model_version"], version);
    let similar = ids(&body);
    assert_eq!(similar.len(), 5);
    assert!(!similar.contains(&"i4".to_owned()), "not itself");
    scores_descend(&body);
    let same = similar
        .iter()
        .filter(|i| cluster_of(i) == cluster_of("i4"))
        .count();
    assert!(same >= 4, "{body}");
    assert_eq!(ids(&app.get_ok("/v1/items/i4/similar").await).len(), 10);

    // A catalog item nobody has touched yet is known, without neighbours so far.
    app.put_item("brand-new", json!({"title": "New"})).await;
    let body = app.get_ok("/v1/items/brand-new/similar").await;
    assert_eq!(body["items"], json!([]));
}

pub async fn popular_lists_recent_popularity(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let before = app.get_ok("/v1/popular").await;
    assert!(before["items"].is_array());
    let version = app.seed_and_train().await;
    let body = app.get_ok("/v1/popular?n=7").await;
    assert_eq!(ids(&body).len(), 7);
    assert_eq!(body["model_version"], version);
    scores_descend(&body);
    assert_eq!(ids(&app.get_ok("/v1/popular").await).len(), 10);
}

/// `explain=true` on a user with a short history, under the algorithm the choice takes
/// (`ease_max_items` 0 keeps EASE out, so both kinds are checked over HTTP).
async fn explained_user(backend: Backend, ease: bool) {
    let app = TestApp::spawn_with(backend, |c| {
        // Without the penalty, asking again gives the same list (the test of `explain`
        // under the penalty is below).
        c.exploration = 0.0;
        c.impression_penalty = 0.0;
        if !ease {
            c.ease_max_items = 0;
        }
    })
    .await;
    app.seed_and_train().await;
    let algorithm = app.get_ok("/v1/model").await["algorithm"].clone();
    assert_eq!(
        algorithm.as_str().unwrap().starts_with("ease"),
        ease,
        "{algorithm}"
    );
    let history = [
        ("i1", "view"),
        ("i2", "view"),
        ("i2", "purchase"),
        ("i7", "click"),
    ];
    let events: Vec<Value> = history
        .iter()
        .map(|(item, kind)| json!({"user_id": "explained", "item_id": item, "type": kind}))
        .collect();
    app.post_events_ok(&Value::Array(events)).await;

    let plain = app.recommend("explained", "n=5").await;
    assert!(
        plain["items"][0].get("because").is_none() && plain["items"][0].get("reason").is_none(),
        "only when asked: {plain}"
    );
    let body = app.recommend("explained", "n=5&explain=true").await;
    assert_eq!(ids(&body), ids(&plain), "explaining changes no list");
    for item in body["items"].as_array().unwrap() {
        assert_eq!(item["reason"], "personalized", "{item}");
        let because = item["because"].as_array().expect("because");
        // Three history items, all listed: their shares sum to 1, their parts to the score.
        assert_eq!(because.len(), 3, "{item}");
        let shares: Vec<f64> = because
            .iter()
            .map(|b| b["share"].as_f64().unwrap())
            .collect();
        assert!(
            shares.windows(2).all(|w| w[0] >= w[1]),
            "largest first: {item}"
        );
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{item}");
        let parts: f64 = because
            .iter()
            .map(|b| b["contribution"].as_f64().unwrap())
            .sum();
        let score = item["score"].as_f64().unwrap();
        assert!(
            (parts - score).abs() <= 1e-4 * score.abs().max(1e-3),
            "{item}"
        );
        for b in because {
            let want = match b["item_id"].as_str().unwrap() {
                "i1" => "view",
                "i2" => "purchase",
                "i7" => "click",
                other => panic!("{other} is not in the history: {item}"),
            };
            assert_eq!(b["type"], want, "the strongest event on it: {item}");
        }
    }
    // Not personal: the list it came from.
    let popular = app.recommend("nobody", "n=3&explain=true").await;
    assert_eq!(popular["items"][0]["reason"], "popular", "{popular}");
    assert!(popular["items"][0].get("because").is_none(), "{popular}");
    let response = app
        .get("/v1/users/explained/recommendations?explain=yes")
        .await;
    expect_error(
        response,
        reqwest::StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parameter",
    )
    .await;
}

pub async fn explanations_split_an_ease_score_over_the_history(backend: Backend) {
    explained_user(backend, true).await;
}

pub async fn explanations_split_an_ials_score_over_the_history(backend: Backend) {
    explained_user(backend, false).await;
}

pub async fn trending_in_category_and_co_users_explain_lists_that_are_not_personal(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    app.seed_and_train().await;
    app.put_item("i3", json!({"categories": ["shoes"]})).await;
    let body = app
        .recommend("nobody", "n=3&category=shoes&explain=true")
        .await;
    assert_eq!(ids(&body), vec!["i3"], "{body}");
    assert_eq!(body["items"][0]["reason"], "trending_in_category", "{body}");

    // co_users against the log itself: the users who have events on both items.
    let log = app.stored_events().await;
    let users_of = |item: &str| -> std::collections::HashSet<String> {
        log.iter()
            .filter(|r| r.item_id == item)
            .map(|r| r.user_id.clone())
            .collect()
    };
    let similar = app.get_ok("/v1/items/i0/similar?n=5&explain=true").await;
    let items = similar["items"].as_array().unwrap();
    assert!(!items.is_empty(), "{similar}");
    for item in items {
        let both = users_of("i0")
            .intersection(&users_of(item["item_id"].as_str().unwrap()))
            .count();
        assert_eq!(item["co_users"], both, "{similar}");
    }
    // Under the impression penalty (the default) the parts still sum to the listed score:
    // the second list is demoted by what the first one showed.
    app.recommend("u0", "n=5").await;
    let demoted = app.recommend("u0", "n=5&explain=true").await;
    for item in demoted["items"].as_array().unwrap() {
        let because = item["because"].as_array().expect("because");
        let parts: f64 = because
            .iter()
            .map(|b| b["contribution"].as_f64().unwrap())
            .sum();
        let shares: f64 = because.iter().map(|b| b["share"].as_f64().unwrap()).sum();
        let score = item["score"].as_f64().unwrap();
        if because.len() < recloop::serve::BECAUSE_LEN {
            assert!((shares - 1.0).abs() < 1e-4, "{item}");
            assert!(
                (parts - score).abs() <= 1e-4 * score.abs().max(1e-3),
                "{item}"
            );
        }
    }
    let plain = app.get_ok("/v1/items/i0/similar?n=5").await;
    assert!(plain["items"][0].get("co_users").is_none(), "{plain}");
}
