//! Offline quality of the model module on the `evaluation.md` split.
//!
//! ```text
//! cargo run --release --example offline_eval [-- DIR]
//! ```
//! DIR defaults to `../shared/data/ml100k-split` (columns `user_id,item_id,type,timestamp`).
//! The data is read in place and never copied. Hyperparameters default to
//! `AlsParams::default()`; `ALS_FACTORS`, `ALS_REG`, `ALS_ALPHA`, `ALS_ITERS`, `ALS_CG`
//! and `ALS_SEED` override them for experiments.
//! If `DIR/../ml-100k/u.data` exists, also checks that `temporal_split` reproduces the split.
//! The service's whole pipeline (its choice of algorithm included) is `recloop evaluate`.

use recloop::model::holdout::{evaluate, temporal_split};
use recloop::model::metrics::Quality;
use recloop::model::popularity::popularity;
use recloop::model::similarity::similar_items;
use recloop::model::{als, AlsParams, Interactions, LogEvent};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One raw row: user id, item id, event type, unix seconds.
type Row = (String, String, String, i64);

fn read_rows(path: &Path) -> anyhow::Result<Vec<Row>> {
    let mut reader = csv::Reader::from_path(path)?;
    let mut rows = Vec::new();
    for record in reader.deserialize() {
        rows.push(record?);
    }
    Ok(rows)
}

/// The service's confidence weights per event type.
fn weight(event_type: &str) -> Option<f32> {
    match event_type {
        "view" => Some(0.5),
        "click" => Some(1.0),
        "add_to_cart" => Some(2.0),
        "purchase" => Some(4.0),
        _ => None,
    }
}

/// Maps string ids to dense indices in sorted id order, as the service does.
fn to_events(rows: &[Row], users: &[String], items: &[String]) -> Vec<LogEvent> {
    let index = |ids: &[String], id: &str| ids.binary_search_by(|x| x.as_str().cmp(id)).ok();
    rows.iter()
        .filter_map(|(u, i, t, ts)| {
            Some(LogEvent {
                user: index(users, u)? as u32,
                item: index(items, i)? as u32,
                weight: weight(t)?,
                ts: *ts,
                purchase: t == "purchase",
            })
        })
        .collect()
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn print(name: &str, q: &Quality, secs: f64) {
    println!(
        "{name:<28} NDCG@10 {:.4}  Recall@20 {:.4}  HR@10 {:.3}  users {}  fit {:.2}s",
        q.ndcg_at_10, q.recall_at_20, q.hr_at_10, q.users, secs
    );
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data/ml100k-split"));
    if !dir.join("train.csv").exists() {
        println!("no split at {}; nothing to evaluate", dir.display());
        return Ok(());
    }
    let train_rows = read_rows(&dir.join("train.csv"))?;
    let test_rows = read_rows(&dir.join("test.csv"))?;
    let all = train_rows.iter().chain(&test_rows);
    let users: Vec<String> = all
        .clone()
        .map(|r| r.0.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let items: Vec<String> = all
        .map(|r| r.1.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let train_events = to_events(&train_rows, &users, &items);
    let test_events = to_events(&test_rows, &users, &items);
    let train = Interactions::from_events(users.len(), items.len(), &train_events);
    println!(
        "{}: {} users, {} items, {} train events ({} distinct pairs), {} test events",
        dir.display(),
        users.len(),
        items.len(),
        train_events.len(),
        train.nnz(),
        test_events.len()
    );
    check_resplit(&dir, &train_rows, &test_rows);

    for (name, half_life) in [
        ("popularity", f64::INFINITY),
        ("popularity (30-day decay)", 30.0 * 86_400.0),
    ] {
        let start = Instant::now();
        let pop = popularity(items.len(), &train_events, half_life);
        let secs = start.elapsed().as_secs_f64();
        let q = evaluate(&train, &test_events, |_, out| {
            out.copy_from_slice(&pop.scores)
        });
        print(name, &q, secs);
    }

    let defaults = AlsParams::default();
    let params = AlsParams {
        factors: env("ALS_FACTORS", defaults.factors),
        regularization: env("ALS_REG", defaults.regularization),
        alpha: env("ALS_ALPHA", defaults.alpha),
        iterations: env("ALS_ITERS", defaults.iterations),
        cg_steps: env("ALS_CG", defaults.cg_steps),
        seed: env("ALS_SEED", defaults.seed),
    };
    println!("{params:?}");
    let start = Instant::now();
    let model = als::fit(&train, &params);
    let secs = start.elapsed().as_secs_f64();
    // Users are folded in from their train history, exactly as the serving path does.
    let q = evaluate(&train, &test_events, |u, out| {
        let x = model.fold_in(&train.user_history(u));
        model.score_into(&x, out);
    });
    print("ALS", &q, secs);

    let start = Instant::now();
    let neighbours = similar_items(&model, 20);
    println!(
        "similar_items(k=20) over {} items: {:.3}s",
        neighbours.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Re-splits the raw MovieLens ratings with `temporal_split` and compares with the files.
fn check_resplit(dir: &Path, train_rows: &[Row], test_rows: &[Row]) {
    let Some(raw) = dir.parent().map(|p| p.join("ml-100k/u.data")) else {
        return;
    };
    let Ok(text) = std::fs::read_to_string(&raw) else {
        return;
    };
    let rows: Vec<Row> = text
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let rating: u8 = f.get(2)?.parse().ok()?;
            let kind = if rating >= 4 { "purchase" } else { "click" };
            Some((
                format!("u{}", f.first()?),
                format!("m{}", f.get(1)?),
                kind.to_string(),
                f.get(3)?.parse().ok()?,
            ))
        })
        .collect();
    let users: Vec<String> = rows
        .iter()
        .map(|r| r.0.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let items: Vec<String> = rows
        .iter()
        .map(|r| r.1.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let (train, test) = temporal_split(&to_events(&rows, &users, &items), 0.2, 5);
    let key = |e: &LogEvent| (e.user, e.item, e.ts);
    let sorted = |mut v: Vec<(u32, u32, i64)>| {
        v.sort_unstable();
        v
    };
    let same_train = sorted(train.iter().map(key).collect())
        == sorted(
            to_events(train_rows, &users, &items)
                .iter()
                .map(key)
                .collect(),
        );
    let same_test = sorted(test.iter().map(key).collect())
        == sorted(
            to_events(test_rows, &users, &items)
                .iter()
                .map(key)
                .collect(),
        );
    println!(
        "temporal_split(u.data, 0.2, 5) reproduces the split: train {same_train}, test {same_test}"
    );
}
