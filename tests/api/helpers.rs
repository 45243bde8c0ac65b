//! The harness: a real recloop on a real port (127.0.0.1:0), each test with its own database
//! on the backend it runs on (see `backend`), removed when the `TestApp` is dropped.

use std::{sync::Arc, time::Duration};

use recloop::{
    api::AppState,
    config::Config,
    store::{DynStore, LogRow},
};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
    task::JoinHandle,
};

use crate::backend::{Connections, TestDb};
pub use crate::{backend::Backend, data::*};

/// A running server and the way to stop it.
struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

pub struct TestApp {
    /// `http://127.0.0.1:<port>`, changes on `restart`.
    pub base: String,
    pub client: reqwest::Client,
    /// The built application's state: store, serving, trainer, config.
    pub state: AppState,
    /// The configuration the app was built with (for `TrainingParams::from_config`).
    pub config: Config,
    /// Sent by every helper request: an admin key if one is set, else an API key.
    pub bearer: Option<String>,
    /// How many requests have entered the router (counted before any handler runs).
    pub arrivals: Arc<watch::Sender<usize>>,
    server: Option<Server>,
    /// The running instance's database connections, ended on `restart`.
    connections: Connections,
    // Declared last so it is removed after everything that holds the database open.
    db: TestDb,
}

/// `accepted` and `duplicates` of a `POST /v1/events` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub accepted: u64,
    pub duplicates: u64,
}

impl TestApp {
    /// The defaults, without background training and with a small model (see `small_model`).
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Self {
        Self::spawn_on(backend, configure, |store| store).await
    }

    /// Like `spawn_with`, with the opened store wrapped (e.g. to inject faults).
    pub async fn spawn_on(
        backend: Backend,
        configure: impl FnOnce(&mut Config),
        wrap: impl FnOnce(DynStore) -> DynStore,
    ) -> Self {
        let db = TestDb::create(backend).await;
        let mut config = Config::default_for(db.url());
        // Background training never surprises a test (and the loop is not started anyway).
        config.retrain_interval_secs = 0;
        config.retrain_after_events = 0;
        small_model(&mut config);
        configure(&mut config);
        config.validate().expect("a valid test configuration");
        assert_eq!(config.database_url, db.url(), "the test's own database");
        let (store, connections) = db.open().await;
        let app = recloop::build_app_with_store(Arc::new(config.clone()), wrap(store))
            .await
            .expect("building the app");
        let bearer = (config.admin_key.iter().chain(&config.admin_keys))
            .chain(config.api_key.iter().chain(&config.api_keys))
            .next()
            .map(|k| k.expose().to_owned());
        let arrivals = Arc::new(watch::Sender::new(0));
        let (base, server) = serve(app.router, arrivals.clone()).await;
        TestApp {
            base,
            client: client(),
            state: app.state,
            config,
            bearer,
            arrivals,
            server: Some(server),
            connections,
            db,
        }
    }

    /// The test's database, to act on it from outside the app.
    pub fn db(&self) -> &TestDb {
        &self.db
    }

    /// Stops the server (graceful: connections closed, serve task ended), ends the instance's
    /// database connections, and builds a new app on the same database (the same file, or the
    /// same PostgreSQL database reconnected to), as a process restart would. Any store wrapper
    /// of `spawn_on` is not applied again.
    pub async fn restart(&mut self) {
        self.stop().await;
        std::mem::take(&mut self.connections).close().await;
        let (store, connections) = self.db.open().await;
        self.connections = connections;
        let app = recloop::build_app_with_store(Arc::new(self.config.clone()), store)
            .await
            .expect("rebuilding the app on the same database");
        let (base, server) = serve(app.router, self.arrivals.clone()).await;
        self.state = app.state;
        self.base = base;
        self.client = client();
        self.server = Some(server);
    }

    async fn stop(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        let _ = server.stop.send(());
        let mut task = server.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }

    /// Waits until more than `seen` requests have entered the router. A request's handler
    /// runs on from there until it first waits (e.g. for the trainer), before the test resumes.
    pub async fn arrived_past(&self, seen: usize) {
        let mut rx = self.arrivals.subscribe();
        within(rx.wait_for(|&n| n > seen))
            .await
            .expect("the server is alive");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request with the harness's key, if any.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match &self.bearer {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.expect("GET")
    }

    /// GET, with the body parsed as JSON.
    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let response = self.get(path).await;
        let status = response.status();
        (status, response.json().await.expect("a JSON body"))
    }

    /// GET that must answer 200.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get_json(path).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        self.request(method, path)
            .json(body)
            .send()
            .await
            .expect("sending JSON")
    }

    pub async fn post_events(&self, body: &Value) -> Response {
        self.send_json(Method::POST, "/v1/events", body).await
    }

    /// `POST /v1/events` that must answer 200.
    pub async fn post_events_ok(&self, body: &Value) -> Counts {
        let response = self.post_events(body).await;
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(status, StatusCode::OK, "POST /v1/events: {body}");
        assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
        Counts {
            accepted: body["accepted"].as_u64().expect("accepted"),
            duplicates: body["duplicates"].as_u64().expect("duplicates"),
        }
    }

    /// `GET /v1/users/{user}/recommendations?{query}` that must answer 200.
    pub async fn recommend(&self, user: &str, query: &str) -> Value {
        self.get_ok(&format!("/v1/users/{user}/recommendations?{query}"))
            .await
    }

    /// `PUT /v1/items/{id}` that must answer 200.
    pub async fn put_item(&self, id: &str, body: Value) -> Value {
        let response = self
            .send_json(Method::PUT, &format!("/v1/items/{id}"), &body)
            .await;
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(status, StatusCode::OK, "PUT /v1/items/{id}: {body}");
        body
    }

    /// `POST /v1/model/retrain?wait=true` that must answer 200: the new version's entry.
    pub async fn retrain_wait(&self) -> Value {
        let response = self
            .request(Method::POST, "/v1/model/retrain?wait=true")
            .send()
            .await
            .expect("retrain");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(status, StatusCode::OK, "retrain?wait=true: {body}");
        body
    }

    /// Posts the standard planted log and trains on it; returns the accepted version.
    pub async fn seed_and_train(&self) -> i64 {
        let counts = self.post_events_ok(&Value::Array(planted_log())).await;
        assert_eq!(counts.accepted as usize, USERS * PER_USER);
        let model = self.retrain_wait().await;
        assert_eq!(model["status"], "accepted", "{model}");
        model["version"].as_i64().expect("version")
    }

    /// Every stored event, read straight from the store.
    pub async fn stored_events(&self) -> Vec<LogRow> {
        self.state.store.load_log().await.expect("load_log").rows
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.stop.send(());
            server.task.abort();
        }
    }
}

/// 16 factors and 5 sweeps instead of 64 and 15: unoptimised test builds fit the default
/// model about 50 times slower than release, and most tests need a model, not a good one.
/// A test about the defaults restores them with `default_model`.
pub fn small_model(config: &mut Config) {
    config.factors = 16;
    config.iterations = 5;
}

pub fn default_model(config: &mut Config) {
    let defaults = recloop::model::AlsParams::default();
    config.factors = defaults.factors;
    config.iterations = defaults.iterations;
}

/// Percent-encodes a path segment (ids are used as they are, so they may hold `/`, spaces...).
pub fn enc(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        // Only 127.0.0.1 is ever contacted; a proxy from the environment must not interfere.
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("building the HTTP client")
}

/// Bounds a wait that must end, so that a broken promise fails the test instead of hanging it.
pub async fn within<F: std::future::Future>(wait: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("waited 60 s for something that should have happened")
}

async fn count_arrival(
    axum::extract::State(arrivals): axum::extract::State<Arc<watch::Sender<usize>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    arrivals.send_modify(|n| *n += 1);
    next.run(request).await
}

async fn serve(router: axum::Router, arrivals: Arc<watch::Sender<usize>>) -> (String, Server) {
    let router = router.layer(axum::middleware::from_fn_with_state(
        arrivals,
        count_arrival,
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let addr = listener.local_addr().expect("local address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .expect("serving");
    });
    (format!("http://{addr}"), Server { stop, task })
}

/// Checks the contract's error envelope and returns its `error` object.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> Value {
    let got = response.status();
    let text = response.text().await.expect("a body");
    assert_eq!(got, status, "body: {text}");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    let object = body.as_object().expect("an object");
    assert_eq!(object.len(), 1, "only `error` at the top: {body}");
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message: {body}"
    );
    assert!(error["details"].is_array(), "details: {body}");
    error.clone()
}

/// The item ids of a list answer (`{"items": [{"item_id", "score"}]}`), in order.
pub fn ids(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {body}"))
        .iter()
        .map(|i| i["item_id"].as_str().expect("item_id").to_owned())
        .collect()
}

/// Another replica's serving on the same database, writing no impressions of its own.
pub async fn replica_serving(app: &TestApp) -> recloop::serve::Serving {
    let config = &app.config;
    let store = recloop::store::connect(&config.database_url).await.unwrap();
    let serving = recloop::serve::Serving::new(
        store.clone(),
        config.user_cache_capacity,
        config.exclude_interacted,
    )
    .with_policy(recloop::serve::Policy::from_config(config), None);
    serving.catalog.apply(&store.list_items().await.unwrap());
    recloop::learn::adopt_champion(&store, &serving)
        .await
        .unwrap();
    serving
}

/// One round of the online loop, as the background task runs it.
pub async fn tick(app: &TestApp) {
    flush(app).await;
    recloop::learn::Online::new(
        app.state.store.clone(),
        app.state.serving.clone(),
        app.state.config.clone(),
    )
    .tick()
    .await
    .expect("online round");
}

/// Waits until every impression recorded so far is written.
pub async fn flush(app: &TestApp) {
    within(app.state.serving.impressions().expect("a sink").flush()).await;
}
