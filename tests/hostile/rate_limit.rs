//! Per-client rate limiting: off by default; when on, a client over its budget gets 429 in the
//! envelope with `Retry-After`, other clients keep theirs, and operations routes are never
//! limited.

use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::Value;

use crate::{Server, ADMIN_KEY, API_KEY};

async fn send(request: RequestBuilder) -> Response {
    request.send().await.expect("request")
}

/// How many of `n` requests made by `make` got 429.
async fn limited(n: usize, make: impl Fn() -> RequestBuilder) -> usize {
    let mut count = 0;
    for _ in 0..n {
        if send(make()).await.status() == StatusCode::TOO_MANY_REQUESTS {
            count += 1;
        }
    }
    count
}

#[tokio::test]
async fn off_by_default() {
    let server = Server::start(|_| {}).await;
    let n = limited(300, || server.client.get(server.url("/v1/popular"))).await;
    assert_eq!(n, 0);
}

#[tokio::test]
async fn over_the_budget_is_429_in_the_envelope_with_retry_after() {
    // A budget that refills far slower than the test runs: one request per 100 s.
    let server = Server::start(|c| {
        c.rate_limit_per_second = 0.01;
        c.rate_limit_burst = 3;
    })
    .await;
    for _ in 0..3 {
        let r = send(server.client.get(server.url("/v1/popular"))).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = send(server.client.get(server.url("/v1/model"))).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=100).contains(&retry), "Retry-After: {retry}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["message"].is_string());
    assert_eq!(body["error"]["details"], serde_json::json!([]));
    // Writes too, and nothing is stored.
    let r = send(
        server
            .client
            .post(server.url("/v1/events"))
            .json(&serde_json::json!({"user_id": "u", "item_id": "i", "type": "view"})),
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Operations are never limited.
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        for _ in 0..5 {
            let r = send(server.client.get(server.url(path))).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
        }
    }
    let metrics = send(server.client.get(server.url("/metrics")))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("recloop_http_rate_limited_total"),
        "{metrics}"
    );
}

#[tokio::test]
async fn each_key_and_each_address_has_its_own_budget() {
    let server = Server::start(|c| {
        c.rate_limit_per_second = 0.01;
        c.rate_limit_burst = 2;
        c.api_key = Some(API_KEY.parse().unwrap());
        c.admin_key = Some(ADMIN_KEY.parse().unwrap());
    })
    .await;
    let get = |key: &str| {
        server
            .client
            .get(server.url("/v1/popular"))
            .bearer_auth(key)
    };
    assert_eq!(limited(2, || get(API_KEY)).await, 0);
    assert_eq!(limited(3, || get(API_KEY)).await, 3);
    // The admin key has its own budget.
    assert_eq!(limited(2, || get(ADMIN_KEY)).await, 0);
    assert_eq!(limited(1, || get(ADMIN_KEY)).await, 1);
    // Wrong keys count against the address, which is not the API key's budget: 401 first, then
    // 429, however many different wrong keys are invented.
    let statuses: Vec<StatusCode> = invented_key_statuses(&server, 4).await;
    assert_eq!(
        statuses,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
        ]
    );
}

async fn invented_key_statuses(server: &Server, n: usize) -> Vec<StatusCode> {
    let mut out = Vec::new();
    for i in 0..n {
        let r = send(
            server
                .client
                .get(server.url("/v1/popular"))
                .bearer_auth(format!("invented-{i}")),
        )
        .await;
        out.push(r.status());
    }
    out
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let from = |server: &Server, client: &'static str| {
        server
            .client
            .get(server.url("/v1/popular"))
            .header("x-forwarded-for", client)
    };
    let trusted = Server::start(|c| {
        c.rate_limit_per_second = 0.01;
        c.rate_limit_burst = 2;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    assert_eq!(limited(3, || from(&trusted, "203.0.113.7")).await, 1);
    assert_eq!(limited(2, || from(&trusted, "203.0.113.8")).await, 0);

    // Not trusted: the header is the client's own claim, and changing it buys nothing.
    let untrusted = Server::start(|c| {
        c.rate_limit_per_second = 0.01;
        c.rate_limit_burst = 2;
    })
    .await;
    assert_eq!(limited(2, || from(&untrusted, "203.0.113.7")).await, 0);
    assert_eq!(limited(1, || from(&untrusted, "203.0.113.8")).await, 1);
}

/// Wherever a 429 can come from, the description says so, with its header.
#[tokio::test]
async fn the_description_documents_429_on_every_v1_operation() {
    let server = Server::start(|_| {}).await;
    let doc: Value = send(server.client.get(server.url("/openapi.json")))
        .await
        .json()
        .await
        .unwrap();
    let mut seen = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let limited = &operation["responses"]["429"];
            if path.starts_with("/v1/") {
                seen += 1;
                assert!(
                    limited["headers"]["Retry-After"].is_object(),
                    "{method} {path}"
                );
                assert_eq!(
                    limited["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorEnvelope"
                );
            } else {
                assert!(limited.is_null(), "{method} {path} is never limited");
            }
        }
    }
    assert_eq!(
        seen, 18,
        "every /v1 operation: challenger promote/retire, activate/unpin, the user erasure and export and the statistics included"
    );
}
