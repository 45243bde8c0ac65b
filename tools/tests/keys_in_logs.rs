//! Keys never appear in logs or answers: a real `recloop serve` process logging JSON at debug
//! level takes right, wrong and malformed keys on every route, with good and bad input, and
//! neither its output nor any answer (headers included) holds a key, right or wrong. SQLite
//! only: none of this depends on the backend. Here, with the executable's crate, because only a
//! package's own tests are told where its binaries are (`CARGO_BIN_EXE_recloop`).

use std::{
    io::Read,
    process::{Child, Command, Stdio},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use reqwest::Method;
use serde_json::json;

const API_KEY: &str = "hostile-api-key-3Wd8";
const ADMIN_KEY: &str = "hostile-admin-key-5Kq1";
/// The lists of a rotation in progress, beside the single keys.
const API_KEYS: [&str; 2] = ["rotated-api-key-8Hn3", "rotated-api-key-2Vx6"];
const ADMIN_KEYS: [&str; 1] = ["rotated-admin-key-4Lt9"];

const WRONG_KEY: &str = "wrong-key-Jp7Qz2Vb";

fn capture(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = pipe.read_to_string(&mut out);
        out
    })
}

struct Process {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

impl Process {
    /// Stops it as an operator would (SIGTERM) and returns everything it printed.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none()
            && started.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let out = self.stdout.take().unwrap().join().unwrap();
        let err = self.stderr.take().unwrap().join().unwrap();
        out + &err
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn keys_never_appear_in_logs_or_answers() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_recloop"))
        .arg("serve")
        .env("RECLOOP_BIND", format!("127.0.0.1:{port}"))
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("recloop.db").display()),
        )
        .env("RECLOOP_API_KEY", API_KEY)
        .env("RECLOOP_ADMIN_KEY", ADMIN_KEY)
        .env(
            "RECLOOP_API_KEYS",
            format!("{}, {}", API_KEYS[0], API_KEYS[1]),
        )
        .env("RECLOOP_ADMIN_KEYS", ADMIN_KEYS[0])
        .env("RECLOOP_LOG_JSON", "true")
        .env("RUST_LOG", "debug")
        .env("RECLOOP_REQUEST_TIMEOUT_SECS", "2")
        .env("RECLOOP_RETRAIN_INTERVAL_SECS", "0")
        .env("RECLOOP_RETRAIN_AFTER_EVENTS", "0")
        .env("RECLOOP_FACTORS", "4")
        .env("RECLOOP_ITERATIONS", "2")
        .env("RECLOOP_RATE_LIMIT_PER_SECOND", "1000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting recloop serve");
    let stdout = capture(child.stdout.take().unwrap());
    let stderr = capture(child.stderr.take().unwrap());
    let process = Process {
        child,
        stdout: Some(stdout),
        stderr: Some(stderr),
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "recloop did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let event = json!({"user_id": "u1", "item_id": "i1", "type": "purchase"});
    let routes: Vec<(Method, &str, Option<serde_json::Value>)> = vec![
        (
            Method::POST,
            "/v1/events",
            Some(
                json!([event, {"user_id": "u2", "item_id": "i1", "type": "view"}, {"user_id": "u2", "item_id": "i2", "type": "click"}]),
            ),
        ),
        (
            Method::POST,
            "/v1/events",
            Some(json!({"user_id": "", "type": "like", "extra": 1})),
        ),
        (
            Method::PUT,
            "/v1/items/i1",
            Some(json!({"title": "t", "categories": ["c"]})),
        ),
        (
            Method::PUT,
            "/v1/items/i1",
            Some(json!({"title": 5, "attributes": []})),
        ),
        (Method::POST, "/v1/items", Some(json!([{"item_id": "i2"}]))),
        (Method::POST, "/v1/items", Some(json!({"not": "an array"}))),
        (Method::GET, "/v1/items/i1", None),
        (Method::GET, "/v1/items/nope", None),
        (Method::POST, "/v1/model/retrain?wait=true", None),
        (Method::POST, "/v1/model/retrain?wait=maybe", None),
        (Method::GET, "/v1/users/u1/recommendations?n=5", None),
        (
            Method::GET,
            "/v1/users/u1/recommendations?n=0&exclude=%01",
            None,
        ),
        (Method::GET, "/v1/items/i1/similar", None),
        (Method::GET, "/v1/popular?n=abc", None),
        (Method::GET, "/v1/model", None),
        (Method::GET, "/v1/model/versions", None),
        (Method::DELETE, "/v1/items/i2", None),
        (Method::PATCH, "/v1/model", None),
        (Method::GET, "/v1/nowhere", None),
        (Method::GET, "/healthz", None),
        (Method::GET, "/metrics", None),
    ];
    let authorizations = [
        None,
        Some(format!("Bearer {API_KEY}")),
        Some(format!("Bearer {ADMIN_KEY}")),
        Some(format!("Bearer {}", API_KEYS[0])),
        Some(format!("Bearer {}", API_KEYS[1])),
        Some(format!("Bearer {}", ADMIN_KEYS[0])),
        Some(format!("Bearer {WRONG_KEY}")),
        Some(format!("Bearer {API_KEY}{WRONG_KEY}")),
        Some(format!("Basic {WRONG_KEY}")),
        Some(WRONG_KEY.to_owned()),
    ];
    let mut answers = String::new();
    let mut statuses = Vec::new();
    for authorization in &authorizations {
        for (method, path, body) in &routes {
            let mut request = client.request(method.clone(), format!("{base}{path}"));
            if let Some(value) = authorization {
                request = request.header("authorization", value);
            }
            request = match body {
                Some(body) => request.json(body),
                None => request,
            };
            let response = request.send().await.expect("request");
            statuses.push(response.status().as_u16());
            for (name, value) in response.headers() {
                answers.push_str(&format!(
                    "{name}: {}\n",
                    String::from_utf8_lossy(value.as_bytes())
                ));
            }
            answers.push_str(&response.text().await.unwrap());
            answers.push('\n');
        }
    }
    // Malformed JSON and a body too slow for the request timeout, with the right key.
    let malformed = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body("{\"user_id\": ")
        .send()
        .await
        .unwrap();
    statuses.push(malformed.status().as_u16());
    answers.push_str(&malformed.text().await.unwrap());

    let logs = process.stop();
    // The run did what it should for the check to mean something: every kind of answer, and
    // logs at debug level.
    for status in [200, 204, 401, 403, 404, 405, 422] {
        assert!(statuses.contains(&status), "no {status} in {statuses:?}");
    }
    assert!(logs.contains("recloop listening"), "{logs}");
    assert!(
        logs.contains(r#""level":"DEBUG""#),
        "no debug lines: {logs}"
    );
    // Every configured key, by fingerprint only, in the start-up log and in `/metrics`.
    assert!(logs.contains("keys configured"), "{logs}");
    for key in [API_KEY, ADMIN_KEY]
        .iter()
        .chain(&API_KEYS)
        .chain(&ADMIN_KEYS)
    {
        let fp = recloop::api::keys::fingerprint(&key.parse().unwrap());
        assert!(logs.contains(&fp), "no fingerprint of a key in the logs");
        assert!(
            answers.contains(&format!("key=\"{fp}\"")),
            "no count of a key in /metrics"
        );
    }
    let secrets = [API_KEY, ADMIN_KEY, WRONG_KEY];
    for secret in secrets.iter().chain(&API_KEYS).chain(&ADMIN_KEYS) {
        assert!(!logs.contains(secret), "the logs show {secret}:\n{logs}");
        assert!(
            !answers.contains(secret),
            "an answer shows {secret}:\n{answers}"
        );
    }
}
