//! Slowloris and endless bodies, with a raw TCP client: every connection that holds the server
//! without finishing its request is closed or answered within the configured limits.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{Server, ADMIN_KEY};

/// Far above every limit set below: a connection still open after this was never cut off.
const NEVER: Duration = Duration::from_secs(20);

/// Sends `head` and then, every 200 ms, `drip`, until the server answers; then reads until the
/// server closes the connection. Returns what it answered (empty if it just closed) and when
/// it closed.
async fn dribble(server: &Server, head: &str, drip: &[u8]) -> (String, Duration) {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < NEVER {
        match tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            // Once answered, only wait for the close.
            Err(_) if !answer.is_empty() || drip.is_empty() => {}
            Err(_) => {
                if tcp.write_all(drip).await.is_err() {
                    break;
                }
            }
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

pub fn assert_cut_off(what: &str, elapsed: Duration) {
    assert!(elapsed < NEVER, "{what}: still open after {elapsed:?}");
}

#[tokio::test]
async fn a_request_head_sent_too_slowly_is_cut_off() {
    let server = Server::start(|c| c.header_timeout_secs = 1).await;
    let (answer, elapsed) = dribble(
        &server,
        "GET /healthz HTTP/1.1\r\nHost: x\r\n",
        b"X-Slow: 1\r\n",
    )
    .await;
    assert_cut_off("dribbled headers", elapsed);
    assert!(!answer.contains("200 OK"), "{answer}");
    // The server itself is fine.
    let ok = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    let server = Server::start(|c| c.header_timeout_secs = 1).await;
    let (answer, elapsed) = dribble(&server, "", b"").await;
    assert_cut_off("silent connection", elapsed);
    assert_eq!(answer, "");
}

#[tokio::test]
async fn an_idle_connection_after_an_answer_is_closed() {
    let server = Server::start(|c| c.header_timeout_secs = 1).await;
    let (answer, elapsed) = dribble(&server, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_cut_off("kept-alive idle connection", elapsed);
}

/// A body that stops coming: on a plain route, on the events route (which bounds its own
/// body read), and chunked without end.
#[tokio::test]
async fn bodies_sent_too_slowly_get_the_timeout_envelope() {
    let server = Server::start(|c| {
        c.request_timeout_secs = 1;
        c.admin_key = Some(ADMIN_KEY.parse().unwrap());
    })
    .await;
    let auth = format!("Authorization: Bearer {ADMIN_KEY}\r\n");
    let cases = [
        (
            format!("PUT /v1/items/sku-1 HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"title\""),
            &b" "[..],
        ),
        (
            format!("POST /v1/events HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n["),
            &b" "[..],
        ),
        (
            format!("POST /v1/events HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n"),
            &b"1\r\n \r\n"[..],
        ),
    ];
    for (head, drip) in cases {
        let (answer, elapsed) = dribble(&server, &head, drip).await;
        assert_cut_off(&head, elapsed);
        assert!(answer.starts_with("HTTP/1.1 503"), "{head}: {answer}");
        assert!(answer.contains(r#""code":"timeout""#), "{answer}");
    }
    // Nothing half-written: no item, no event.
    let item = server
        .client
        .get(server.url("/v1/items/sku-1"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(item.status(), 404);
    let popular: serde_json::Value = server
        .client
        .get(server.url("/v1/popular"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(popular["items"], serde_json::json!([]));
}

/// A route that reads no body answers at once, and the connection does not wait for the rest.
#[tokio::test]
async fn an_endless_body_on_a_route_that_reads_none_is_answered() {
    let server = Server::start(|c| c.request_timeout_secs = 1).await;
    let (answer, elapsed) = dribble(
        &server,
        "GET /v1/popular HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n",
        b"1\r\n \r\n",
    )
    .await;
    assert_cut_off("endless body on GET", elapsed);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
