//! `recloop import FILE.csv`: bulk-loads an event log through the same validation as
//! `POST /v1/events`. The file is checked whole first; nothing is stored if any row is bad.

use std::path::Path;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};

use crate::{
    domain::{
        events::{parse_events, MAX_BATCH},
        NewEvent,
    },
    store::DynStore,
};

/// Rows per append: one contract-sized batch.
const BATCH: usize = MAX_BATCH;

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    pub rows: u64,
    pub accepted: u64,
    pub duplicates: u64,
}

/// A `timestamp` cell: unix seconds (as in the MovieLens-derived files) or RFC 3339.
fn timestamp(cell: &str) -> Value {
    match cell.parse::<i64>() {
        Ok(secs) => DateTime::<Utc>::from_timestamp(secs, 0)
            .map_or_else(|| json!(cell), |t| json!(t.to_rfc3339())),
        Err(_) if cell.is_empty() => Value::Null,
        Err(_) => json!(cell),
    }
}

/// Reads and validates every row. Columns: `user_id,item_id,type,timestamp`, optionally
/// `event_id` and `recommendation_id`.
pub fn read_csv(path: &Path) -> anyhow::Result<Vec<NewEvent>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let headers = reader.headers()?.clone();
    for required in ["user_id", "item_id", "type"] {
        if !headers.iter().any(|h| h == required) {
            bail!("{}: no {required} column", path.display());
        }
    }
    let now = Utc::now();
    let mut events = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut first_line = 2; // line 1 is the header
    let mut records = reader.records();
    loop {
        let record = records.next().transpose()?;
        if let Some(record) = &record {
            let mut object = Map::new();
            for (name, cell) in headers.iter().zip(record.iter()) {
                let value = if name == "timestamp" {
                    timestamp(cell)
                } else {
                    json!(cell)
                };
                object.insert(name.to_owned(), value);
            }
            batch.push(Value::Object(object));
        }
        if batch.len() == BATCH || (record.is_none() && !batch.is_empty()) {
            let parsed = parse_events(&Value::Array(std::mem::take(&mut batch)), now).map_err(
                |rejected| {
                    let lines: Vec<String> = rejected
                        .violations
                        .iter()
                        .take(20)
                        .map(|v| {
                            format!(
                                "line {}: {} {}",
                                first_line + v.index.unwrap_or(0),
                                v.field,
                                v.message
                            )
                        })
                        .collect();
                    anyhow::anyhow!("invalid rows, nothing imported:\n{}", lines.join("\n"))
                },
            )?;
            first_line += parsed.len();
            events.extend(parsed);
        }
        if record.is_none() {
            return Ok(events);
        }
    }
}

/// Appends validated events in contract-sized batches, with a progress bar on a terminal.
pub async fn import(
    store: &DynStore,
    events: Vec<NewEvent>,
    progress: bool,
) -> anyhow::Result<ImportReport> {
    let bar = if progress {
        ProgressBar::new(events.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut report = ImportReport {
        rows: events.len() as u64,
        ..Default::default()
    };
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let chunk: Vec<NewEvent> = events.by_ref().take(BATCH).collect();
        let n = chunk.len() as u64;
        let outcome = store.append_events(chunk).await?;
        report.accepted += outcome.accepted;
        report.duplicates += outcome.duplicates;
        bar.inc(n);
    }
    bar.finish();
    Ok(report)
}
