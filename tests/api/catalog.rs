//! The catalog: `PUT/GET/DELETE /v1/items/{item_id}`, `POST /v1/items`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

pub async fn items_are_put_read_upserted_and_deleted(backend: Backend) {
    let app = TestApp::spawn(backend).await;

    let stored = app
        .put_item(
            "sku-1",
            json!({"title": "Red shoe", "categories": ["shoes", "red", "shoes"],
                   "attributes": {"price": 59.9, "sizes": [41, 42]}}),
        )
        .await;
    assert_eq!(stored["item_id"], "sku-1");
    assert_eq!(stored["title"], "Red shoe");
    assert_eq!(stored["categories"], json!(["red", "shoes"]));
    assert_eq!(stored["available"], true, "available defaults to true");
    assert_eq!(
        stored["attributes"],
        json!({"price": 59.9, "sizes": [41, 42]})
    );
    assert!(chrono::DateTime::parse_from_rfc3339(stored["updated_at"].as_str().unwrap()).is_ok());
    assert_eq!(app.get_ok("/v1/items/sku-1").await, stored);

    // Every field is optional; a PUT replaces the entry.
    let replaced = app.put_item("sku-1", json!({"available": false})).await;
    assert_eq!(replaced["available"], false);
    assert_eq!(replaced["title"], Value::Null);
    assert_eq!(replaced["categories"], json!([]));
    assert_eq!(replaced["attributes"], json!({}));
    // The id in the body may repeat the path's.
    app.put_item("sku-1", json!({"item_id": "sku-1"})).await;

    let response = app
        .send_json(
            Method::POST,
            "/v1/items",
            &json!([
                {"item_id": "sku-2", "categories": ["hats"]},
                {"item_id": "sku-3", "title": "Scarf"},
                {"item_id": "a/b c", "available": false},
            ]),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"upserted": 3})
    );
    assert_eq!(
        app.get_ok("/v1/items/sku-2").await["categories"],
        json!(["hats"])
    );
    assert_eq!(app.get_ok("/v1/items/sku-3").await["title"], "Scarf");
    let odd = app.get_ok(&format!("/v1/items/{}", enc("a/b c"))).await;
    assert_eq!(
        (odd["item_id"].as_str(), odd["available"].as_bool()),
        (Some("a/b c"), Some(false))
    );

    let response = app
        .request(Method::DELETE, "/v1/items/sku-2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.unwrap().is_empty());
    let response = app.get("/v1/items/sku-2").await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    // The others are untouched.
    app.get_ok("/v1/items/sku-3").await;
}

pub async fn unknown_items_are_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    expect_error(
        app.get("/v1/items/nope").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let response = app
        .request(Method::DELETE, "/v1/items/nope")
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    let response = app.get("/v1/items/nope/similar").await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;

    // Also once a model exists.
    app.seed_and_train().await;
    let response = app.get("/v1/items/nope/similar").await;
    expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    // An item first seen in events needs no catalog entry to have neighbours...
    let similar = app.get_ok("/v1/items/i3/similar").await;
    assert_eq!(similar["item_id"], "i3");
    // ...but GET reads the catalog only.
    expect_error(
        app.get("/v1/items/i3").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}

/// `PUT /v1/items/{id}` with `body` must be a 422 blaming `field`, and store nothing.
async fn assert_put_rejected(app: &TestApp, id: &str, body: Value, field: &str) {
    let response = app
        .send_json(Method::PUT, &format!("/v1/items/{id}"), &body)
        .await;
    let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_item").await;
    assert!(
        error["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["field"] == field),
        "{field}: {error}"
    );
}

pub async fn invalid_items_are_422_and_store_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let cases = [
        (json!({"colour": "red"}), "colour"),
        (json!({"title": 5}), "title"),
        (json!({"title": "t".repeat(1001)}), "title"),
        (json!({"categories": "shoes"}), "categories"),
        (json!({"categories": [1]}), "categories"),
        (json!({"categories": [""]}), "categories"),
        (json!({"available": "yes"}), "available"),
        (json!({"attributes": [1, 2]}), "attributes"),
        (json!({"item_id": "another"}), "item_id"),
        (json!([]), ""),
    ];
    for (body, field) in cases {
        assert_put_rejected(&app, "sku-1", body, field).await;
    }
    expect_error(
        app.get("/v1/items/sku-1").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    // A bad id in the path.
    let response = app
        .send_json(
            Method::PUT,
            &format!("/v1/items/{}", "x".repeat(257)),
            &json!({}),
        )
        .await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parameter",
    )
    .await;
    let response = app
        .send_json(Method::PUT, "/v1/items/a%07b", &json!({}))
        .await;
    expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_parameter",
    )
    .await;

    // POST: an array of objects each with its id; one bad item rejects them all.
    for body in [json!({"item_id": "x"}), json!([])] {
        let response = app.send_json(Method::POST, "/v1/items", &body).await;
        expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_item").await;
    }
    let response = app
        .send_json(
            Method::POST,
            "/v1/items",
            &json!([{"item_id": "good"}, {"title": "no id"}, {"item_id": ""}]),
        )
        .await;
    let error = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_item").await;
    let blamed: Vec<(u64, &str)> = error["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["index"].as_u64().unwrap(), d["field"].as_str().unwrap()))
        .collect();
    assert_eq!(blamed, [(1, "item_id"), (2, "item_id")], "{error}");
    expect_error(
        app.get("/v1/items/good").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}
