//! The harness: `recloop serve` as a child process on a free loopback port, a database of the
//! test's own on the shared PostgreSQL server, and a way to run tests one at a time.
//!
//! Everything started here is stopped on `Drop`, whether the test passed or not: processes
//! are killed (SIGKILL) and reaped, databases dropped `WITH (FORCE)`.

use std::{
    fs::File,
    future::Future,
    io::Write,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;
use tempfile::TempDir;

/// The advisory-lock key of the training lease (`TRAINING_LOCK` in `src/store/postgres.rs`):
/// "recloop" in ASCII. Tests take it themselves to hold every replica's training off.
pub const TRAINING_LOCK: i64 = 0x0072_6563_6c6f_6f70;

/// A whole test may take this long before it is failed rather than left hanging.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);

/// Runs one test on a runtime of its own, after any other test of this binary has finished.
/// The tests start processes that fit models on every core; one at a time, the timings they
/// measure and bound are those of the replicas, not of a neighbour's training.
pub fn run(test: impl Future<Output = ()>) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building a runtime");
    runtime.block_on(async {
        if tokio::time::timeout(TEST_TIMEOUT, test).await.is_err() {
            panic!("the test did not finish within {TEST_TIMEOUT:?}");
        }
    });
}

/// Writes a line straight to the process's stderr, past the test harness's capture: figures
/// and skips must show in a normal `cargo test` run.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The superuser URL, or None (after saying so) when the PostgreSQL tests are to be skipped.
pub fn postgres_admin_url() -> Option<String> {
    crate::pg::admin_url()
}

/// `url` with one more query parameter.
fn with_param(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// A database of the test's own on a PostgreSQL server, dropped (`WITH (FORCE)`) with it
/// (the shared `tests/common/pg.rs` does the creating and the dropping).
pub struct PgDatabase {
    _db: crate::pg::PgDatabase,
    /// The database's URL, for the replicas and for the test's own SQL.
    pub url: String,
}

impl PgDatabase {
    /// A new database on the shared test server, or None when PostgreSQL tests are skipped.
    pub async fn shared() -> Option<Self> {
        Some(Self::create(&postgres_admin_url()?).await)
    }

    pub async fn create(admin_url: &str) -> Self {
        let db = crate::pg::PgDatabase::create(admin_url).await;
        Self {
            url: db.url().to_owned(),
            _db: db,
        }
    }

    /// A small pool on the database, for the test's own checks.
    pub async fn pool(&self) -> PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.url))
    }
}

/// A free loopback port: bound, read, released. The replica binds it a moment later.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("finding a free port")
        .port()
}

/// What every replica of these tests runs with unless a test says otherwise: a trainer that
/// looks every second but trains only when asked, and a small fast model (the binary under
/// test is a debug build).
const DEFAULT_ENV: &[(&str, &str)] = &[
    ("RECLOOP_TRAINER_TICK_SECS", "1"),
    ("RECLOOP_RETRAIN_AFTER_EVENTS", "0"),
    ("RECLOOP_RETRAIN_INTERVAL_SECS", "0"),
    ("RECLOOP_FACTORS", "8"),
    ("RECLOOP_ITERATIONS", "5"),
    ("RECLOOP_SHUTDOWN_GRACE_SECS", "1"),
    // These tests compare answers across replicas; the impression penalty makes a replica's
    // answer depend on what it showed a moment ago, which is not what they are about.
    ("RECLOOP_IMPRESSION_PENALTY", "0"),
    ("RUST_LOG", "info"),
];

/// One `recloop serve` process.
pub struct Replica {
    pub name: String,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    client: reqwest::Client,
    child: Mutex<Option<Child>>,
    log: PathBuf,
    _dir: TempDir,
}

impl Replica {
    /// Starts `recloop serve` on `database_url` and waits until `/readyz` answers 200.
    /// `env` adds to or overrides `DEFAULT_ENV`. The process sees no other variable than
    /// `PATH`: the shell running the tests (a stray `RECLOOP_API_KEY`...) cannot leak in.
    pub async fn start(name: &str, database_url: &str, env: &[(&str, &str)]) -> Self {
        let replica = Self::spawn(name, database_url, env);
        replica.wait_ready(Duration::from_secs(60)).await;
        replica
    }

    /// Starts the process without waiting for it.
    pub fn spawn(name: &str, database_url: &str, env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("a directory for the replica's log");
        let log = dir.path().join(format!("{name}.log"));
        let out = File::create(&log).expect("creating the log file");
        let err = out.try_clone().expect("sharing the log file");
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_recloop"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RECLOOP_BIND", format!("127.0.0.1:{port}"))
            // Named in pg_stat_activity, so a test can tell whose connection holds the lease.
            .env(
                "DATABASE_URL",
                if database_url.starts_with("postgres") {
                    with_param(database_url, "application_name", &format!("recloop-{name}"))
                } else {
                    database_url.to_owned()
                },
            )
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (key, value) in DEFAULT_ENV.iter().chain(env) {
            command.env(key, value);
        }
        let child = command.spawn().expect("starting recloop serve");
        Self {
            name: name.to_owned(),
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("an HTTP client"),
            child: Mutex::new(Some(child)),
            log,
            _dir: dir,
        }
    }

    /// Waits until `/readyz` answers 200; fails if the process exits first.
    pub async fn wait_ready(&self, within: Duration) {
        let started = Instant::now();
        loop {
            if self.readyz().await == Some(StatusCode::OK) {
                return;
            }
            if !self.is_running() {
                panic!(
                    "replica {} exited while starting:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            if started.elapsed() > within {
                panic!(
                    "replica {} not ready within {within:?}:\n{}",
                    self.name,
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The status of `/readyz`, or None when nothing answers.
    pub async fn readyz(&self) -> Option<StatusCode> {
        let response = self
            .client
            .get(format!("{}/readyz", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        response.ok().map(|r| r.status())
    }

    /// False once the process has exited (or was killed).
    pub fn is_running(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, then reap: a crash, as the other replicas and the database see it.
    pub fn kill(&self) {
        let child = self
            .child
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM: a graceful stop, as an orchestrator asks for one.
    pub fn terminate(&self) {
        let child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(child) = child.as_ref() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("running kill");
            assert!(status.success(), "kill -TERM failed");
        }
    }

    /// Waits for the process to exit by itself; its exit status, or None if still running.
    pub async fn wait_exit(&self, within: Duration) -> Option<std::process::ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < within {
            let exited = {
                let mut child = self.child.lock().unwrap_or_else(PoisonError::into_inner);
                child.as_mut().and_then(|c| c.try_wait().ok().flatten())
            };
            if exited.is_some() {
                return exited;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// The last `lines` lines of the replica's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A request; the body parsed as JSON (Null when it is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} on replica {}: {e}", self.name));
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    /// GET that must answer 200.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "GET {path} on replica {}: {body}",
            self.name
        );
        body
    }

    pub async fn post(&self, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        self.call(Method::POST, path, body).await
    }

    /// `POST /v1/events` that must answer 200; returns `accepted`.
    pub async fn post_events_ok(&self, events: &Value) -> u64 {
        let (status, body) = self.post("/v1/events", Some(events)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "POST /v1/events on replica {}: {body}",
            self.name
        );
        body["accepted"].as_u64().expect("accepted")
    }

    /// Posts any number of events, in batches the contract allows.
    pub async fn post_all(&self, events: &[Value]) {
        for batch in events.chunks(10_000) {
            self.post_events_ok(&Value::Array(batch.to_vec())).await;
        }
    }

    /// `POST /v1/model/retrain?wait=true` that must answer 200: the new version's entry.
    pub async fn retrain_wait(&self) -> Value {
        let (status, body) = self.post("/v1/model/retrain?wait=true", None).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "retrain on replica {}: {body}",
            self.name
        );
        body
    }

    /// The version `/v1/model` reports, None before the first model.
    pub async fn model_version(&self) -> Option<i64> {
        let (status, body) = self.get("/v1/model").await;
        match status {
            StatusCode::OK => Some(body["version"].as_i64().expect("version")),
            StatusCode::NOT_FOUND => None,
            other => panic!("GET /v1/model on replica {}: {other} {body}", self.name),
        }
    }

    /// Polls `/v1/model` until it reports `version` or newer; how long that took.
    pub async fn wait_for_version(&self, version: i64, within: Duration) -> Duration {
        let started = Instant::now();
        loop {
            if self.model_version().await.is_some_and(|v| v >= version) {
                return started.elapsed();
            }
            if started.elapsed() > within {
                panic!(
                    "replica {} still not serving version {version} after {within:?}:\n{}",
                    self.name,
                    self.log_tail(30)
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// `GET /v1/users/{user}/recommendations?{query}` that must answer 200.
    pub async fn recommend(&self, user: &str, query: &str) -> Value {
        self.get_ok(&format!("/v1/users/{user}/recommendations?{query}"))
            .await
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            say(&format!(
                "--- log of replica {} (last lines) ---\n{}",
                self.name,
                self.log_tail(60)
            ));
        }
    }
}

/// The item ids of a recommendation (or similar/popular) answer, in order.
pub fn item_ids(answer: &Value) -> Vec<String> {
    answer["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["item_id"].as_str().expect("item_id").to_owned())
        .collect()
}

/// The application name of the connection holding the training lease in `pool`'s database,
/// if any connection holds it.
pub async fn lease_holder(pool: &PgPool) -> Option<String> {
    // An advisory lock on a bigint key shows as classid (high half), objid (low half), objsubid 1.
    sqlx::query_scalar(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
         AND l.classid::bigint = $1 AND l.objid::bigint = $2 \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind(TRAINING_LOCK >> 32)
    .bind(TRAINING_LOCK & 0xffff_ffff)
    .fetch_optional(pool)
    .await
    .expect("reading pg_locks")
}

/// Stored events and model versions, counted with SQL.
pub async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}
