//! The traffic of the crash test: event clients, a retraining client, and the server they share,
//! which the killer replaces under them.

use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError,
    },
    time::{Duration, Instant},
};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::Replica;

/// Users and items the clients' events are about (the seed shop's, so the model knows them).
pub const USERS: usize = 400;
pub const ITEMS: usize = 120;

/// The server under test: whichever process is current. Clients read its address per request,
/// so after a restart they reach the new process.
pub struct Server {
    database_url: String,
    env: Vec<(&'static str, &'static str)>,
    current: Mutex<Option<Arc<Replica>>>,
    starts: Mutex<usize>,
}

impl Server {
    pub async fn start(database_url: &str, env: &[(&'static str, &'static str)]) -> Arc<Self> {
        let server = Arc::new(Self {
            database_url: database_url.to_owned(),
            env: env.to_vec(),
            current: Mutex::new(None),
            starts: Mutex::new(0),
        });
        server.restart().await;
        server
    }

    /// The current process (None between a kill and the restart).
    pub fn replica(&self) -> Option<Arc<Replica>> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// SIGKILL: no drain, no shutdown hook; the database sees a crash.
    pub fn kill(&self) {
        let old = self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(old) = old {
            old.kill();
        }
    }

    /// A new process on the same database, once it answers `/readyz`.
    pub async fn restart(&self) {
        let replica = Replica::start(&self.next_name(), &self.database_url, &self.env).await;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(replica));
    }

    /// A process killed `after` its start, before it answers anything: a crash while it opens
    /// the database (migrations, the write-ahead log's recovery) and loads the model.
    pub async fn crash_while_starting(&self, after: Duration) {
        let replica = Replica::spawn(&self.next_name(), &self.database_url, &self.env);
        tokio::time::sleep(after).await;
        replica.kill();
    }

    fn next_name(&self) -> String {
        let mut starts = self.starts.lock().unwrap_or_else(PoisonError::into_inner);
        *starts += 1;
        format!("run{}", *starts)
    }
}

/// What one event client saw.
#[derive(Default)]
pub struct ClientReport {
    /// Every event acknowledged (200), as posted.
    pub acked: Vec<Value>,
    /// When each of `acked` was acknowledged.
    pub acked_at: Vec<Instant>,
    pub acked_ids: HashSet<String>,
    /// Requests that failed (connection refused or reset by a kill, 503) and were retried.
    pub failed_attempts: u64,
    /// Acknowledged requests that were retries of a failed one.
    pub retried: u64,
    /// `duplicates` the server reported on those retries: events the killed process had
    /// committed before it could answer.
    pub duplicates: u64,
    pub accepted: u64,
}

/// How one POST went.
enum Posted {
    Ok { accepted: u64, duplicates: u64 },
    Failed,
}

async fn post(
    http: &reqwest::Client,
    server: &Server,
    path: &str,
    body: Option<&Value>,
) -> Result<(StatusCode, Value), ()> {
    let Some(replica) = server.replica() else {
        return Err(());
    };
    let mut request = http.post(format!("{}{path}", replica.base));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.map_err(|_| ())?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|_| ())?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

async fn post_events(http: &reqwest::Client, server: &Server, body: &Value) -> Posted {
    match post(http, server, "/v1/events", Some(body)).await {
        Err(()) => Posted::Failed,
        Ok((StatusCode::OK, answer)) => Posted::Ok {
            accepted: answer["accepted"].as_u64().expect("accepted"),
            duplicates: answer["duplicates"].as_u64().expect("duplicates"),
        },
        // Storage unavailable, nothing stored: the contract's "retry later".
        Ok((StatusCode::SERVICE_UNAVAILABLE, _)) => Posted::Failed,
        Ok((status, answer)) => panic!("POST /v1/events answered {status}: {answer}"),
    }
}

/// Posts single events and small batches, each event with a unique `event_id`, until `stop`;
/// a request that fails is retried with the same events until acknowledged, so when it
/// returns, everything it ever sent has been acknowledged.
pub async fn event_client(
    client: usize,
    seed: u64,
    server: Arc<Server>,
    stop: Arc<AtomicBool>,
) -> ClientReport {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(client as u64));
    let mut report = ClientReport::default();
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let size = if rng.gen_bool(0.5) {
            1
        } else {
            rng.gen_range(2..=8)
        };
        let events: Vec<Value> = (0..size)
            .map(|_| {
                seq += 1;
                let kind = ["view", "click", "add_to_cart", "purchase"][rng.gen_range(0..4)];
                json!({
                    "user_id": format!("u{}", rng.gen_range(0..USERS)),
                    "item_id": format!("i{}", rng.gen_range(0..ITEMS)),
                    "type": kind,
                    "event_id": format!("crash-{client}-{seq}"),
                })
            })
            .collect();
        let body = if size == 1 {
            events[0].clone()
        } else {
            Value::Array(events.clone())
        };
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match post_events(&http, &server, &body).await {
                Posted::Ok {
                    accepted,
                    duplicates,
                } => {
                    assert_eq!(accepted + duplicates, size as u64, "{body}");
                    assert!(
                        attempt > 1 || duplicates == 0,
                        "first attempt of fresh event ids reported {duplicates} duplicate(s): {body}"
                    );
                    if attempt > 1 {
                        report.retried += 1;
                        report.duplicates += duplicates;
                    }
                    report.accepted += accepted;
                    let now = Instant::now();
                    for e in events {
                        report.acked_at.push(now);
                        let id = e["event_id"].as_str().expect("event_id").to_owned();
                        assert!(report.acked_ids.insert(id), "an event id sent twice");
                        report.acked.push(e);
                    }
                    break;
                }
                Posted::Failed => {
                    report.failed_attempts += 1;
                    assert!(
                        attempt < 3_000,
                        "never acknowledged after {attempt} attempts: {body}"
                    );
                    tokio::time::sleep(Duration::from_millis(rng.gen_range(5..40))).await;
                }
            }
        }
    }
    report
}

/// What the retraining client saw.
#[derive(Default)]
pub struct TrainerReport {
    /// (version, status) of every `retrain?wait=true` that answered 200.
    pub acked_versions: Vec<(i64, String)>,
}

/// Asks for a training and waits for it (`POST /v1/model/retrain?wait=true`), again and again,
/// until `stop`. `in_flight` is true while a request is out, for the killer.
pub async fn trainer_client(
    server: Arc<Server>,
    stop: Arc<AtomicBool>,
    in_flight: Arc<AtomicBool>,
) -> TrainerReport {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("an HTTP client");
    let mut report = TrainerReport::default();
    while !stop.load(Ordering::Relaxed) {
        in_flight.store(true, Ordering::SeqCst);
        let answer = post(&http, &server, "/v1/model/retrain?wait=true", None).await;
        in_flight.store(false, Ordering::SeqCst);
        match answer {
            Ok((StatusCode::OK, body)) => {
                let version = body["version"].as_i64().expect("version");
                let status = body["status"].as_str().expect("status").to_owned();
                report.acked_versions.push((version, status));
            }
            // Cut off by a kill (or no process yet): ask the next one.
            Ok((StatusCode::SERVICE_UNAVAILABLE, _)) | Err(()) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok((status, body)) => {
                panic!("POST /v1/model/retrain?wait=true answered {status}: {body}")
            }
        }
    }
    report
}
