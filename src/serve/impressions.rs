//! Where the request path hands what each response showed: a queue that never makes a request
//! wait, drained by one writer task that groups impressions into few transactions.

use std::{sync::Arc, time::Duration};

use tokio::sync::{mpsc, oneshot, Notify};

use super::stats::StatsTally;
use crate::store::{DynStore, Impression};

/// Impressions waiting to be written; past this the newest are dropped (and counted).
const QUEUE: usize = 64_000;
/// Impressions per write transaction at most.
const BATCH: usize = 20_000;
/// How long the writer gathers impressions before a transaction: the commit and the WAL pages
/// are paid once per transaction, and rows of one user share an index page within it. At
/// 16,000 responses a second over the ML-100K users, writing them as they came took a quarter
/// of the machine's CPU. Well under `user::CARRY_OVER_MS`, which keeps the unwritten ones
/// in memory meanwhile.
const GATHER: Duration = Duration::from_secs(1);
enum Message {
    Shown(Impression),
    Flush(oneshot::Sender<()>),
}

/// Where the request path hands impressions: never waits, drops when the writer falls behind.
#[derive(Clone)]
pub struct ImpressionSink {
    queue: mpsc::Sender<Message>,
    /// Cuts the writer's gathering short for a flush.
    flushing: Arc<Notify>,
}

impl ImpressionSink {
    pub fn record(&self, impression: Impression) {
        match self.queue.try_send(Message::Shown(impression)) {
            Ok(()) => {}
            Err(_) => metrics::counter!("recloop_impressions_dropped_total").increment(1),
        }
    }

    /// Resolves once every impression recorded before the call has been written (or dropped).
    pub async fn flush(&self) {
        let (done, written) = oneshot::channel();
        if self.queue.send(Message::Flush(done)).await.is_ok() {
            self.flushing.notify_one();
            let _ = written.await;
        }
    }
}

/// The recorded responses of a batch per model version and arm: the `impressions` series,
/// against which the dashboard divides the credited clicks and purchases.
fn shown_per_version(batch: &[Impression]) -> Vec<(String, f64)> {
    let mut counts: std::collections::BTreeMap<(i64, &str), f64> = Default::default();
    for i in batch {
        *counts.entry((i.model_version, i.arm.as_str())).or_default() += 1.0;
    }
    counts
        .into_iter()
        .map(|((version, arm), n)| (format!("version={version}&arm={arm}"), n))
        .collect()
}

/// Starts the writer task: it takes whatever is queued (up to `BATCH`) into one transaction.
/// While it gathers it sleeps instead of waiting on the queue, so that the request path's
/// sends do not wake it (and another thread) once per response.
pub fn spawn_writer(store: DynStore, stats: Arc<StatsTally>) -> ImpressionSink {
    let (queue, mut messages) = mpsc::channel(QUEUE);
    let flushing = Arc::new(Notify::new());
    let flushed = flushing.clone();
    tokio::spawn(async move {
        let mut behind = false;
        while let Some(first) = messages.recv().await {
            let mut batch = Vec::new();
            let mut flushes = Vec::new();
            if !behind && matches!(first, Message::Shown(_)) {
                tokio::select! {
                    () = tokio::time::sleep(GATHER) => {}
                    () = flushed.notified() => {}
                }
            }
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Shown(i) => batch.push(i),
                    Message::Flush(done) => flushes.push(done),
                }
                if batch.len() < BATCH {
                    next = messages.try_recv().ok();
                }
            }
            // A full batch leaves more queued: write it without gathering first.
            behind = batch.len() >= BATCH;
            let n = batch.len() as u64;
            let shown = shown_per_version(&batch);
            match store.insert_impressions(batch).await {
                Ok(()) => {
                    metrics::counter!("recloop_impressions_recorded_total").increment(n);
                    for (labels, count) in shown {
                        stats.add("impressions", labels, count);
                    }
                }
                Err(e) => {
                    // Telemetry: lost, counted, never retried ahead of newer impressions.
                    tracing::warn!(error = %e, impressions = n, "could not record impressions");
                    metrics::counter!("recloop_impressions_dropped_total").increment(n);
                }
            }
            for done in flushes {
                let _ = done.send(());
            }
        }
    });
    ImpressionSink { queue, flushing }
}
