//! What the service counts for `GET /v1/stats` and the dashboard. Counting is an in-memory
//! addition; a writer task adds the sums to the store's minute, hour and day buckets every few
//! seconds, so no request waits for the database on its account. A crash loses at most the
//! last few seconds of counts (never an event: those are in the log).

use std::{borrow::Cow, sync::Mutex, time::Duration};

use fnv::FnvHashMap;

use crate::store::{DynStore, StatDelta};

/// How often the counts go to the store.
const FLUSH: Duration = Duration::from_secs(5);
/// How often buckets past their retention are deleted.
const PRUNE_EVERY: u32 = 720;

type Key = (&'static str, Cow<'static, str>);

/// Counts not yet written: series and labels → sum.
#[derive(Default)]
pub struct StatsTally {
    pending: Mutex<FnvHashMap<Key, f64>>,
    /// Counts whose write failed (the store was unavailable).
    retry: Mutex<Vec<StatDelta>>,
}

/// Failed counts kept for the next write at most: an outage of hours does not grow memory.
const MAX_RETRY: usize = 100_000;

impl StatsTally {
    /// Adds `value` to a counter. Labels are `key=value` pairs joined by `&`.
    pub fn add(&self, series: &'static str, labels: impl Into<Cow<'static, str>>, value: f64) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        *pending.entry((series, labels.into())).or_default() += value;
    }

    /// Takes every pending count, stamped `at_ms`.
    fn take(&self, at_ms: i64) -> Vec<StatDelta> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let retry = std::mem::take(&mut *self.retry.lock().unwrap_or_else(|e| e.into_inner()));
        let retried = retry.into_iter().map(|d| StatDelta { at_ms, ..d });
        pending
            .into_iter()
            .map(|((series, labels), value)| StatDelta {
                at_ms,
                series: series.to_owned(),
                labels: labels.into_owned(),
                value,
            })
            .chain(retried)
            .collect()
    }

    /// Keeps counts a failed write took, to go with the next write (into the minute they
    /// are written in: a few seconds late rather than lost).
    fn restore(&self, deltas: Vec<StatDelta>) {
        let mut retry = self.retry.lock().unwrap_or_else(|e| e.into_inner());
        if retry.len() < MAX_RETRY {
            retry.extend(deltas);
        }
    }

    /// Writes every pending count now (before a read of the statistics, and at shutdown).
    pub async fn flush(&self, store: &DynStore) -> crate::store::StoreResult<()> {
        let deltas = self.take(chrono::Utc::now().timestamp_millis());
        if deltas.is_empty() {
            return Ok(());
        }
        match store.add_stats(&deltas).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.restore(deltas);
                Err(e)
            }
        }
    }
}

/// Starts the task that writes the counts every few seconds and prunes old buckets hourly.
pub fn spawn_stats_writer(store: DynStore, tally: std::sync::Arc<StatsTally>) {
    tokio::spawn(async move {
        let mut ticks = 0u32;
        loop {
            tokio::time::sleep(FLUSH).await;
            if let Err(e) = tally.flush(&store).await {
                tracing::warn!(error = %e, "statistics not written; kept for the next try");
            }
            ticks = ticks.wrapping_add(1);
            if ticks % PRUNE_EVERY == 1 {
                let now = chrono::Utc::now().timestamp_millis();
                if let Err(e) = store.prune_stats(now).await {
                    tracing::warn!(error = %e, "old statistics not pruned");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_series_and_labels_and_are_taken_once() {
        let tally = StatsTally::default();
        tally.add("events", "type=view", 2.0);
        tally.add("events", "type=view", 1.0);
        tally.add("events", String::from("type=click"), 1.0);
        let mut taken = tally.take(5);
        taken.sort_by(|a, b| a.labels.cmp(&b.labels));
        let got: Vec<(&str, f64)> = taken.iter().map(|d| (d.labels.as_str(), d.value)).collect();
        assert_eq!(got, vec![("type=click", 1.0), ("type=view", 3.0)]);
        assert!(tally.take(6).is_empty());
        tally.restore(taken);
        assert_eq!(tally.take(7).len(), 2, "a failed write's counts come back");
    }
}
