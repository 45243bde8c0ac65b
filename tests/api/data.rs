//! Event data for the tests: single events, and a planted-taste log (from
//! `recloop::model::synthetic`) whose right answers are known, so a trained model's holdout
//! metrics and recommendations can be checked against the planted structure.

use serde_json::{json, Value};

/// One event, timestamped by the server.
pub fn event(user: &str, item: &str, kind: &str) -> Value {
    json!({"user_id": user, "item_id": item, "type": kind})
}

pub fn rfc3339(unix_secs: i64) -> String {
    chrono::DateTime::from_timestamp(unix_secs, 0)
        .expect("a valid time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

// The standard planted-taste log: item `i<n>` belongs to cluster `n % CLUSTERS`, user `u<n>`
// prefers cluster `n % CLUSTERS`. At most 100 items, so `n=100` lists every candidate.
pub const USERS: usize = 200;
pub const ITEMS: usize = 80;
pub const CLUSTERS: usize = 4;
pub const PER_USER: usize = 20;
pub const SEED: u64 = 7;

pub fn item(i: usize) -> String {
    format!("i{i}")
}

pub fn cluster_of(item: &str) -> usize {
    let n: usize = item[1..].parse().expect("a planted item id");
    recloop::model::synthetic::item_cluster(n as u32, CLUSTERS)
}

/// Items of one planted cluster.
pub fn cluster_items(cluster: usize) -> Vec<String> {
    (0..ITEMS)
        .filter(|&i| i % CLUSTERS == cluster)
        .map(item)
        .collect()
}

/// The standard planted log as contract events (purchases and clicks, past timestamps).
pub fn planted_log() -> Vec<Value> {
    planted(USERS, ITEMS, PER_USER, SEED)
}

pub fn planted(users: usize, items: usize, per_user: usize, seed: u64) -> Vec<Value> {
    recloop::model::synthetic::planted(users, items, CLUSTERS, per_user, seed)
        .into_iter()
        .map(|e| {
            json!({
                "user_id": format!("u{}", e.user),
                "item_id": item(e.item as usize),
                "type": if e.purchase { "purchase" } else { "click" },
                "timestamp": rfc3339(e.ts),
            })
        })
        .collect()
}
