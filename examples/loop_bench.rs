//! The whole loop, measured over HTTP against a running `recloop serve`: ingest the train log,
//! retrain, ask for every evaluated user's recommendations and score them by `evaluation.md`.
//!
//! ```text
//! cargo run --release --example loop_bench -- --url http://127.0.0.1:8080 \
//!     --train ../shared/data/ml100k-split/train.csv --test ../shared/data/ml100k-split/test.csv \
//!     [--batch 1000] [--concurrency 4]
//! ```
//! With `--synthetic-seconds S` it instead posts made-up events (unique `event_id`s) from
//! `--concurrency` clients in batches of `--batch` (1 = a single event object per request) for
//! S seconds and reports events/s; `scripts/bench-loop.sh` uses that for the ingest figures.
//!
//! Output: a human table, then one JSON line with the headline figures (last line of stdout).
//! The data is read in place and never copied.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
struct Args {
    /// Base URL of a running server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, default_value = "../shared/data/ml100k-split/train.csv")]
    train: PathBuf,
    #[arg(long, default_value = "../shared/data/ml100k-split/test.csv")]
    test: PathBuf,
    /// Events per POST.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Requests in flight while ingesting.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Synthetic-ingest mode: post made-up events for this many seconds, nothing else.
    #[arg(long)]
    synthetic_seconds: Option<f64>,
}

/// One CSV row: user id, item id, event type, unix seconds.
type Row = (String, String, String, i64);

fn read_rows(path: &PathBuf) -> anyhow::Result<Vec<Row>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("{}", path.display()))?;
    reader.deserialize().map(|r| Ok(r?)).collect()
}

/// Nearest-rank percentile of an ascending-sorted list, in milliseconds.
fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1].as_secs_f64() * 1e3
}

/// Posts pre-built bodies with `concurrency` requests in flight; returns (accepted, duplicates).
/// Bodies are serialized before the clock starts so the figure is the server's, not serde's.
async fn post_all(
    client: &reqwest::Client,
    url: &str,
    bodies: Vec<String>,
    concurrency: usize,
) -> anyhow::Result<(u64, u64)> {
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, url, bodies, next) =
            (client.clone(), url.to_owned(), bodies.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let (mut accepted, mut duplicates) = (0u64, 0u64);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { break };
                let v = post_events(&client, &url, body.clone()).await?;
                accepted += v["accepted"].as_u64().unwrap_or(0);
                duplicates += v["duplicates"].as_u64().unwrap_or(0);
            }
            anyhow::Ok((accepted, duplicates))
        }));
    }
    let mut total = (0, 0);
    for w in workers {
        let (a, d) = w.await??;
        total.0 += a;
        total.1 += d;
    }
    Ok(total)
}

async fn post_events(client: &reqwest::Client, url: &str, body: String) -> anyhow::Result<Value> {
    let resp = client
        .post(format!("{url}/v1/events"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        bail!("POST /v1/events -> {status}: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

/// Synthetic ingest: unique users/items/event ids, timestamps "now" (the server rejects the
/// future, and recency is irrelevant here). Bodies are built inside the loop — formatting is a
/// few hundred ns per event, small next to the server's work.
async fn synthetic(client: &reqwest::Client, args: &Args, seconds: f64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let run = format!("{:x}", chrono::Utc::now().timestamp_micros());
    let accepted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..args.concurrency.max(1) {
        let (client, url, run, accepted) = (
            client.clone(),
            args.url.clone(),
            run.clone(),
            accepted.clone(),
        );
        let batch = args.batch.max(1);
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut seq = 0u64;
            while Instant::now() < deadline {
                let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                let mut body = String::with_capacity(batch * 130);
                body.push_str(if batch > 1 { "[" } else { "" });
                for k in 0..batch {
                    seq += 1;
                    let sep = if k > 0 { "," } else { "" };
                    let _ = write!(
                        body,
                        r#"{sep}{{"event_id":"syn-{run}-{w}-{seq}","user_id":"su{}","item_id":"si{}","type":"click","timestamp":"{ts}"}}"#,
                        seq % 5000,
                        (seq * 7919) % 2000
                    );
                }
                body.push_str(if batch > 1 { "]" } else { "" });
                let t = Instant::now();
                let v = post_events(&client, &url, body).await?;
                latencies.push(t.elapsed());
                accepted.fetch_add(v["accepted"].as_u64().unwrap_or(0), Ordering::Relaxed);
            }
            anyhow::Ok(latencies)
        }));
    }
    // Rate per 2-second window: SQLite's cost per event grows with the table (B-tree pages
    // dirtied per commit, WAL checkpoints), so a single average would hide the trend.
    let sampler = tokio::spawn({
        let accepted = accepted.clone();
        async move {
            let mut windows = Vec::new();
            let mut last = 0;
            while Instant::now() + Duration::from_secs(1) < deadline {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let now = accepted.load(Ordering::Relaxed);
                windows.push((now - last) as f64 / 2.0);
                last = now;
            }
            windows
        }
    });
    let mut latencies = Vec::new();
    for w in workers {
        latencies.extend(w.await??);
    }
    let windows = sampler.await?;
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    let accepted = accepted.load(Ordering::Relaxed);
    let rate = accepted as f64 / secs;
    println!(
        "synthetic ingest: {} clients x {}-event requests, {:.1} s",
        args.concurrency, args.batch, secs
    );
    println!("  events accepted    {accepted}");
    println!("  requests           {}", latencies.len());
    println!("  events/s           {rate:.0}");
    println!(
        "  request p50 / p99  {:.2} / {:.2} ms",
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 99.0)
    );
    let shown: Vec<String> = windows.iter().map(|r| format!("{r:.0}")).collect();
    println!("  events/s per 2 s   {}", shown.join(" "));
    println!(
        "{}",
        json!({"clients": args.concurrency, "batch": args.batch, "seconds": secs,
               "events": accepted, "events_per_s": rate,
               "first_window_events_per_s": windows.first(),
               "last_window_events_per_s": windows.last(),
               "request_p50_ms": percentile_ms(&latencies, 50.0),
               "request_p99_ms": percentile_ms(&latencies, 99.0)})
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = args.url.trim_end_matches('/').to_owned();
    let client = reqwest::Client::new();
    if let Some(seconds) = args.synthetic_seconds {
        return synthetic(&client, &args, seconds).await;
    }

    // (a) Ingest the train log. event_id = line number, so a rerun against the same database
    // stores nothing twice (and says so in `duplicates`).
    let train = read_rows(&args.train)?;
    let test = read_rows(&args.test)?;
    let bodies: Vec<String> = train
        .chunks(args.batch.max(1))
        .enumerate()
        .map(|(c, chunk)| {
            let events: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(k, (u, i, t, ts))| {
                    let ts = chrono::DateTime::from_timestamp(*ts, 0).expect("unix seconds");
                    json!({"event_id": format!("train-{}", c * args.batch + k),
                           "user_id": u, "item_id": i, "type": t,
                           "timestamp": ts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)})
                })
                .collect();
            Value::Array(events).to_string()
        })
        .collect();
    let started = Instant::now();
    let (accepted, duplicates) = post_all(&client, &url, bodies, args.concurrency).await?;
    let ingest_secs = started.elapsed().as_secs_f64();
    let ingest_rate = train.len() as f64 / ingest_secs;

    // (b) Retrain and wait for it.
    let started = Instant::now();
    let resp = client
        .post(format!("{url}/v1/model/retrain?wait=true"))
        .send()
        .await?;
    let status = resp.status();
    let version: Value = resp.json().await?;
    let retrain_wall = started.elapsed().as_secs_f64();
    if !status.is_success() {
        bail!("retrain -> {status}: {version}");
    }
    if version["in_service"] != json!(true) {
        // A rejected candidate leaves an older model serving: the quality below is not its.
        eprintln!(
            "warning: the new version is not in service: {}",
            version["reason"]
        );
    }

    // (c) Score every evaluated user's list, protocol-style. The server hides the user's
    // interacted items (= their train items here), as the protocol's ranking does.
    let mut relevant: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (u, i, t, _) in &test {
        if t == "purchase" {
            relevant.entry(u).or_default().insert(i);
        }
    }
    let mut users: Vec<&str> = relevant.keys().copied().collect();
    users.sort_unstable();
    let (mut ndcg, mut recall, mut hr) = (0.0, 0.0, 0.0);
    let mut latencies = Vec::with_capacity(users.len());
    let mut popular_answers = 0;
    for &user in &users {
        let t = Instant::now();
        let resp = client
            .get(format!("{url}/v1/users/{user}/recommendations?n=20"))
            .send()
            .await?;
        let status = resp.status();
        let body: Value = resp.json().await?;
        latencies.push(t.elapsed());
        if !status.is_success() {
            bail!("recommendations for {user} -> {status}: {body}");
        }
        if body["source"] != "personalized" {
            popular_answers += 1;
        }
        let ranked: Vec<&str> = body["items"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["item_id"].as_str()).collect())
            .unwrap_or_default();
        let rel = &relevant[user];
        let hit = |r: &str| rel.contains(r);
        let discount = |rank: usize| 1.0 / ((rank + 2) as f64).log2();
        let dcg: f64 = (ranked.iter().take(10).enumerate())
            .filter(|(_, r)| hit(r))
            .map(|(rank, _)| discount(rank))
            .sum();
        let idcg: f64 = (0..rel.len().min(10)).map(discount).sum();
        ndcg += dcg / idcg;
        recall +=
            ranked.iter().take(20).filter(|r| hit(r)).count() as f64 / rel.len().min(20) as f64;
        hr += f64::from(u8::from(ranked.iter().take(10).any(|r| hit(r))));
    }
    let n = users.len() as f64;
    let (ndcg, recall, hr) = (ndcg / n, recall / n, hr / n);
    // (d) Those queries were sequential and each user's first after the retrain, so each paid
    // the fold-in (history read + solve): the cold path. A second pass shows the cached path.
    latencies.sort();
    let mut warm = Vec::with_capacity(users.len());
    for &user in &users {
        let t = Instant::now();
        let resp = client
            .get(format!("{url}/v1/users/{user}/recommendations?n=20"))
            .send()
            .await?;
        resp.bytes().await?;
        warm.push(t.elapsed());
    }
    warm.sort();

    let training_seconds = version["training_seconds"].as_f64().unwrap_or(f64::NAN);
    let m = &version["metrics"];
    println!("== recloop loop bench against {url} ==");
    println!(
        "ingest     {} events in batches of {}, {} in flight",
        train.len(),
        args.batch,
        args.concurrency
    );
    println!("           accepted {accepted}, duplicates {duplicates}, {ingest_secs:.2} s");
    println!("           {ingest_rate:>10.0} events/s");
    println!(
        "retrain    version {} ({}, in service: {})",
        version["version"], version["status"], version["in_service"]
    );
    println!("           wall {retrain_wall:.2} s, training_seconds {training_seconds:.2} s");
    println!("           holdout metrics {m}");
    println!(
        "quality    {} evaluated users over HTTP (n=20), {popular_answers} answered by popularity",
        users.len()
    );
    println!("           NDCG@10   {ndcg:.4}");
    println!("           Recall@20 {recall:.4}");
    println!("           HR@10     {hr:.4}");
    println!("latency    sequential, one client, cold (first query after retrain: fold-in)");
    println!(
        "           p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 99.0),
        percentile_ms(&latencies, 100.0)
    );
    println!(
        "           warm (second pass, cached user): p50 {:.2} ms  p99 {:.2} ms",
        percentile_ms(&warm, 50.0),
        percentile_ms(&warm, 99.0)
    );
    println!(
        "{}",
        json!({
            "ingest_events_per_s": ingest_rate,
            "training_seconds": training_seconds,
            "retrain_wall_seconds": retrain_wall,
            "ndcg_at_10": ndcg,
            "recall_at_20": recall,
            "hr_at_10": hr,
            "query_p50_ms": percentile_ms(&latencies, 50.0),
            "query_p99_ms": percentile_ms(&latencies, 99.0),
            "warm_query_p50_ms": percentile_ms(&warm, 50.0),
            "warm_query_p99_ms": percentile_ms(&warm, 99.0),
            "holdout_metrics": m,
        })
    );
    Ok(())
}
