//! The loop: read the log from the store, fit off the async runtime, score the candidate against
//! the model in service on the same temporal holdout, record the version, publish if better.

use std::{collections::HashMap, sync::Arc, time::Instant};

use anyhow::Context;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{watch, Mutex};

use crate::{
    config::Config,
    domain::{EventType, EventWeights},
    model::{
        holdout,
        popularity::popularity,
        selection::{self, Trial},
        AlsParams, Interactions, LogEvent, RankerConfig,
    },
    serving::{FittedModel, Serving, Snapshot},
    store::{DynStore, Log, ModelRecord, ModelStatus, NewModelRecord, TrainingLease},
};

/// Users need this many events before some of them are held out.
const HOLDOUT_MIN_EVENTS: usize = 5;

/// Everything that decides a fit, recorded with the version so a later run can refit the
/// champion's configuration on the same holdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingParams {
    pub als: AlsParams,
    pub weights: EventWeights,
    pub holdout_fraction: f64,
    pub popularity_half_life_days: f64,
    pub similar_k: usize,
    /// Largest catalogue EASE is tried on (0 = never): its fit is cubic in the items.
    #[serde(default)]
    pub ease_max_items: usize,
    /// Whether training chooses among algorithms and recency strengths on a validation
    /// split; off = the configured iALS as is.
    #[serde(default)]
    pub select: bool,
}

impl TrainingParams {
    pub fn from_config(config: &Config) -> Self {
        Self {
            als: config.als_params(),
            weights: config.weights(),
            holdout_fraction: config.holdout_fraction,
            popularity_half_life_days: config.popularity_half_life_days,
            similar_k: config.similar_k,
            ease_max_items: config.ease_max_items,
            select: config.model_selection,
        }
    }
}

/// The log mapped to dense indices; items in sorted id order (the holdout tie-break needs it).
pub struct IndexedLog {
    pub item_ids: Vec<String>,
    pub n_users: usize,
    pub events: Vec<LogEvent>,
}

impl IndexedLog {
    /// Users and items are numbered in sorted id order and events sorted, so the same log gives
    /// the same model however its events arrived (concurrent ingest stores them in any order).
    pub fn new(log: &Log, weights: &EventWeights) -> Self {
        fn numbering<'a>(
            ids: impl Iterator<Item = &'a str>,
        ) -> (Vec<&'a str>, HashMap<&'a str, u32>) {
            let mut sorted: Vec<&str> = ids.collect();
            sorted.sort_unstable();
            sorted.dedup();
            let index = sorted
                .iter()
                .enumerate()
                .map(|(i, id)| (*id, i as u32))
                .collect();
            (sorted, index)
        }
        let (item_ids, items) = numbering(log.rows.iter().map(|r| r.item_id.as_str()));
        let (user_ids, users) = numbering(log.rows.iter().map(|r| r.user_id.as_str()));
        let mut events: Vec<LogEvent> = log
            .rows
            .iter()
            .map(|r| LogEvent {
                user: users[r.user_id.as_str()],
                item: items[r.item_id.as_str()],
                weight: weights.of(r.event_type),
                ts: r.ts_ms.div_euclid(1000),
                purchase: r.event_type == EventType::Purchase,
            })
            .collect();
        crate::model::interactions::sort_for_fit(&mut events);
        Self {
            item_ids: item_ids.into_iter().map(str::to_owned).collect(),
            n_users: user_ids.len(),
            events,
        }
    }
}

/// What one training decided, before it is stored.
pub struct Fitted {
    pub status: ModelStatus,
    pub reason: String,
    /// The configuration chosen (and, if accepted, trained on the whole log).
    pub ranker: RankerConfig,
    pub metrics: serde_json::Value,
    pub model: Option<FittedModel>,
    pub users: usize,
    pub items: usize,
}

/// The configuration a training fits: chosen on a validation split of the gate's training
/// part (so the gate's holdout stays unseen by the choice), or the configured iALS as is.
pub fn choose(
    params: &TrainingParams,
    n_users: usize,
    n_items: usize,
    train: &[LogEvent],
) -> (RankerConfig, Vec<Trial>) {
    if !params.select {
        return (RankerConfig::ials(params.als.clone()), Vec::new());
    }
    let algorithms = selection::algorithms(&params.als, n_items, params.ease_max_items);
    selection::select(
        n_users,
        n_items,
        train,
        params.holdout_fraction,
        HOLDOUT_MIN_EVENTS,
        &algorithms,
    )
}

/// The CPU-heavy part of a training run: pure, deterministic, run on a blocking thread.
pub fn fit_and_gate(
    log: &Log,
    params: &TrainingParams,
    champion: Option<(i64, &RankerConfig)>,
) -> Fitted {
    let indexed = IndexedLog::new(log, &params.weights);
    let n_items = indexed.item_ids.len();
    let n_users = indexed.n_users;
    let (train, test) =
        holdout::temporal_split(&indexed.events, params.holdout_fraction, HOLDOUT_MIN_EVENTS);
    let (chosen, trials) = choose(params, n_users, n_items, &train);
    let candidate = selection::holdout_quality(n_users, n_items, &train, &test, &chosen);
    let popular = {
        let data = Interactions::from_events(n_users, n_items, &train);
        let pop = popularity(n_items, &train, params.popularity_half_life_days * 86_400.0);
        holdout::evaluate(&data, &test, |_, out| out.copy_from_slice(&pop.scores))
    };
    // The champion's configuration refitted on the same training part: neither model has seen
    // the held-out events, so the comparison is fair. Same configuration, same score.
    let champion_quality = champion.map(|(version, c)| {
        let q = if *c == chosen {
            candidate.clone()
        } else {
            selection::holdout_quality(n_users, n_items, &train, &test, c)
        };
        (version, q)
    });
    let (status, reason) = match &champion_quality {
        _ if candidate.users == 0 => (
            ModelStatus::Accepted,
            "too little history for a holdout yet: accepted unscored".to_owned(),
        ),
        None => (ModelStatus::Accepted, "first model".to_owned()),
        Some((v, c)) if candidate.ndcg_at_10 >= c.ndcg_at_10 => (
            ModelStatus::Accepted,
            format!(
                "NDCG@10 {:.4} >= {:.4} of version {v}",
                candidate.ndcg_at_10, c.ndcg_at_10
            ),
        ),
        Some((v, c)) => (
            ModelStatus::Rejected,
            format!(
                "NDCG@10 {:.4} < {:.4} of version {v}, which keeps serving",
                candidate.ndcg_at_10, c.ndcg_at_10
            ),
        ),
    };
    let metrics = json!({
        "ndcg_at_10": candidate.ndcg_at_10,
        "recall_at_20": candidate.recall_at_20,
        "hr_at_10": candidate.hr_at_10,
        "coverage_at_10": candidate.coverage_at_10,
        "evaluated_users": candidate.users,
        "holdout_events": test.len(),
        "popularity_ndcg_at_10": popular.ndcg_at_10,
        "champion": champion_quality.map(|(v, q)| json!({
            "version": v, "ndcg_at_10": q.ndcg_at_10, "recall_at_20": q.recall_at_20,
        })),
        // What the choice saw: validation NDCG@10 of every candidate, best first.
        "selection": selection_summary(&trials),
    });
    let model = (status == ModelStatus::Accepted).then(|| {
        let data = Interactions::from_events(n_users, n_items, &indexed.events);
        let ranker = chosen.fit(&data);
        let pop = popularity(
            n_items,
            &indexed.events,
            params.popularity_half_life_days * 86_400.0,
        );
        let similar = ranker.similar(params.similar_k);
        FittedModel {
            item_ids: indexed.item_ids.clone(),
            ranker,
            recency: chosen.recency,
            popularity: pop.scores,
            similar,
            weights: params.weights,
        }
    });
    Fitted {
        status,
        reason,
        ranker: chosen,
        metrics,
        model,
        users: n_users,
        items: n_items,
    }
}

fn selection_summary(trials: &[Trial]) -> serde_json::Value {
    let mut sorted: Vec<&Trial> = trials.iter().collect();
    sorted.sort_by(|a, b| b.quality.ndcg_at_10.total_cmp(&a.quality.ndcg_at_10));
    sorted
        .iter()
        .map(|t| json!({"config": t.config.name(), "ndcg_at_10": t.quality.ndcg_at_10}))
        .collect()
}

/// The configuration a recorded version was trained with; versions from before training
/// chose for itself recorded only their iALS settings.
pub fn recorded_ranker(params: &serde_json::Value) -> Option<RankerConfig> {
    serde_json::from_value(params["ranker"].clone())
        .ok()
        .or_else(|| {
            Some(RankerConfig::ials(
                serde_json::from_value(params["als"].clone()).ok()?,
            ))
        })
}

/// Puts the newest accepted model in the database in service if it is newer than the one
/// serving: at start-up, and on every trainer tick, so a model trained by `recloop train` or
/// by another process is picked up without a restart. True when a model was adopted.
pub async fn adopt_newest(store: &DynStore, serving: &Serving) -> anyhow::Result<bool> {
    let serving_version = serving.current().map(|s| s.version());
    let newest = store.latest_accepted_version().await?;
    if newest.is_none() || newest <= serving_version {
        return Ok(false);
    }
    let Some((record, blob)) = store.latest_accepted_model().await? else {
        return Ok(false);
    };
    let version = record.version;
    let model = tokio::task::spawn_blocking(move || FittedModel::from_bytes(&blob))
        .await
        .context("decoding thread panicked")?
        .with_context(|| format!("decoding model version {version}"))?;
    tracing::info!(version, "serving the stored model");
    serving.publish(Snapshot::new(record, model));
    Ok(true)
}

/// The settings recorded with a version, with the configuration it chose under `ranker`
/// (what the next training refits to compare against it).
fn recorded_params(
    params: &TrainingParams,
    ranker: &RankerConfig,
) -> anyhow::Result<serde_json::Value> {
    let mut value = serde_json::to_value(params)?;
    value["ranker"] = serde_json::to_value(ranker)?;
    Ok(value)
}

/// Waits for the next round of a background loop: `wait` elapsed, or another replica announced
/// a new model (`models`, on a shared database) since the last round began, even while this
/// loop was busy with it. False once `shutdown` turns true.
pub async fn next_round(
    models: Option<&mut watch::Receiver<u64>>,
    wait: std::time::Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let notified = async {
        let changed = match models {
            Some(rx) => rx.changed().await.is_ok(),
            None => false,
        };
        // No channel, or the store is gone: only the timer is left.
        if !changed {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = notified => {}
        _ = shutdown.changed() => {}
    }
    !*shutdown.borrow()
}

/// How a training run ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A version was recorded (accepted and published, or rejected).
    Trained(ModelRecord),
    /// Nothing to learn from yet.
    NoEvents,
    /// Another replica holds the training lease.
    Busy,
}

/// The background trainer. Never two trainings at once: every run holds `lock` (this process)
/// and the store's training lease (every replica).
pub struct Trainer {
    store: DynStore,
    serving: Arc<Serving>,
    params: TrainingParams,
    config: Arc<Config>,
    lock: Arc<Mutex<()>>,
    /// The newest version this process recorded and when its log was read, for `?wait=true`.
    last: std::sync::Mutex<Option<(ModelRecord, Instant)>>,
}

impl Trainer {
    pub fn new(store: DynStore, serving: Arc<Serving>, config: Arc<Config>) -> Self {
        Self {
            store,
            serving,
            params: TrainingParams::from_config(&config),
            config,
            lock: Arc::new(Mutex::new(())),
            last: Default::default(),
        }
    }

    /// One training with the configured parameters, waiting for any training in progress in
    /// this process; `Busy` when another replica holds the training lease.
    pub async fn run_once(&self) -> anyhow::Result<Outcome> {
        self.run_with(self.params.clone()).await
    }

    /// One training with other parameters (an experiment; also how tests make a worse candidate).
    pub async fn run_with(&self, params: TrainingParams) -> anyhow::Result<Outcome> {
        let _guard = self.lock.lock().await;
        let Some(mut lease) = self.store.try_training_lease().await? else {
            return Ok(Outcome::Busy);
        };
        self.train_locked(params, &mut lease).await
    }

    /// Starts a training in the background unless one is running here or in another replica
    /// (then `false`).
    pub async fn try_start(self: &Arc<Self>) -> anyhow::Result<bool> {
        let Ok(guard) = self.lock.clone().try_lock_owned() else {
            return Ok(false);
        };
        let Some(mut lease) = self.store.try_training_lease().await? else {
            return Ok(false);
        };
        let me = self.clone();
        tokio::spawn(async move {
            let _guard = guard;
            if let Err(e) = me.train_locked(me.params.clone(), &mut lease).await {
                tracing::error!(error = ?e, "training failed");
            }
        });
        Ok(true)
    }

    /// Returns a version trained on every event acknowledged before `called_at`, waiting out a
    /// training in progress and reusing its result when it read the log after `called_at`.
    /// (Time, not sequence numbers: on PostgreSQL a lower sequence number can commit later.)
    pub async fn run_covering(&self, called_at: Instant) -> anyhow::Result<Outcome> {
        let _guard = self.lock.lock().await;
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((record, _)) = last.filter(|(_, read_at)| *read_at > called_at) {
            return Ok(Outcome::Trained(record));
        }
        // Another replica may be training: wait for the lease, then train ourselves (its
        // log read may have begun before the call).
        let mut lease = loop {
            if let Some(lease) = self.store.try_training_lease().await? {
                break lease;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        };
        self.train_locked(self.params.clone(), &mut lease).await
    }

    async fn train_locked(
        &self,
        params: TrainingParams,
        lease: &mut TrainingLease,
    ) -> anyhow::Result<Outcome> {
        let started = Instant::now();
        // Every event acknowledged before `started` is in the log read below.
        let log = self.store.load_log().await?;
        if log.rows.is_empty() {
            return Ok(Outcome::NoEvents);
        }
        let champion = self
            .serving
            .current()
            .and_then(|snap| Some((snap.version(), recorded_ranker(&snap.record.params)?)));
        let span = tracing::info_span!("training", events = log.rows.len());
        let (fitted, log) = tokio::task::spawn_blocking({
            let params = params.clone();
            move || {
                let _enter = span.enter();
                let fitted = fit_and_gate(&log, &params, champion.as_ref().map(|(v, p)| (*v, p)));
                (fitted, log)
            }
        })
        .await
        .context("training thread panicked")?;
        let blob = fitted
            .model
            .as_ref()
            .map(FittedModel::to_bytes)
            .transpose()?;
        // Another replica may have trained meanwhile if our lease was lost (its connection
        // dropped): then this result was not gated against theirs and must not be recorded.
        if !lease.still_held().await {
            anyhow::bail!("the training lease was lost during training; the result is discarded");
        }
        let training_seconds = started.elapsed().as_secs_f64();
        // With challengers on, a model that passed the gate first serves a share of users.
        let challenger = fitted.status == ModelStatus::Accepted
            && self.config.challenger_share > 0.0
            && self.serving.current().is_some();
        let (status, reason) = if challenger {
            let share = self.config.challenger_share * 100.0;
            let reason = format!("{}; challenger for {share:.0}% of users", fitted.reason);
            (ModelStatus::Challenger, reason)
        } else {
            (fitted.status, fitted.reason)
        };
        let record = self
            .store
            .insert_model(
                NewModelRecord {
                    algorithm: fitted.ranker.name(),
                    status,
                    reason,
                    trained_at: Utc::now(),
                    training_seconds,
                    events: log.rows.len() as i64,
                    users: fitted.users as i64,
                    items: fitted.items as i64,
                    log_seq: log.max_seq,
                    metrics: fitted.metrics,
                    params: recorded_params(&params, &fitted.ranker)?,
                },
                blob,
            )
            .await?;
        metrics::histogram!("recloop_training_duration_seconds").record(training_seconds);
        metrics::counter!("recloop_trainings_total", "outcome" => record.status.as_str())
            .increment(1);
        for key in ["ndcg_at_10", "recall_at_20"] {
            if let Some(v) = record.metrics[key].as_f64() {
                metrics::gauge!(format!("recloop_model_{key}"), "version" => record.version.to_string())
                    .set(v);
            }
        }
        tracing::info!(
            version = record.version,
            status = record.status.as_str(),
            training_seconds,
            reason = %record.reason,
            "training finished"
        );
        if let Some(model) = fitted.model {
            let snapshot = Snapshot::new(record.clone(), model);
            if challenger {
                self.serving.set_challenger(Some(snapshot));
            } else {
                self.serving.publish(snapshot);
            }
            // An earlier challenger is replaced (or overtaken); if this fails, the online loop's
            // next round still serves only the newest.
            if let Err(e) = crate::online::retire_others(&self.store, record.version).await {
                tracing::warn!(error = ?e, "could not retire an earlier challenger");
            }
        }
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((record.clone(), started));
        Ok(Outcome::Trained(record))
    }

    /// Is a training due: no model yet, enough new events, or the interval passed with news?
    async fn due(&self) -> anyhow::Result<bool> {
        let seq = self.store.max_event_seq().await?;
        let automatic =
            self.config.retrain_after_events > 0 || self.config.retrain_interval_secs > 0;
        let Some(snap) = self.serving.current() else {
            // The first model is due as soon as there are events, unless both triggers are off.
            return Ok(automatic && seq > 0);
        };
        // A challenger's training counts too: its events are not new.
        let trained_to = self.serving.challenger().map_or(snap.record.log_seq, |c| {
            c.record.log_seq.max(snap.record.log_seq)
        });
        let new_events = seq - trained_to;
        let by_volume = self.config.retrain_after_events > 0
            && new_events >= self.config.retrain_after_events as i64;
        let age = Utc::now() - snap.record.trained_at;
        let by_time = self.config.retrain_interval_secs > 0
            && new_events > 0
            && age.num_seconds() >= self.config.retrain_interval_secs as i64;
        Ok(by_volume || by_time)
    }

    /// Checks every tick whether a training is due, until `shutdown` turns true. Failures back
    /// off exponentially (up to five minutes) so a broken database is not hammered.
    pub async fn run_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let tick = std::time::Duration::from_secs(self.config.trainer_tick_secs.max(1));
        let mut backoff = tick;
        let mut models = self.store.model_notifications();
        while next_round(models.as_mut(), backoff, &mut shutdown).await {
            if let Err(e) = adopt_newest(&self.store, &self.serving).await {
                tracing::warn!(error = ?e, "could not check for a newer model");
            }
            let result = match self.due().await {
                Ok(true) => self.run_once().await.map(|_| ()),
                Ok(false) => Ok(()),
                Err(e) => Err(e),
            };
            backoff = match result {
                Ok(()) => tick,
                Err(e) => {
                    tracing::warn!(error = ?e, "trainer step failed; backing off");
                    (backoff * 2).min(std::time::Duration::from_secs(300))
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A model announced while a background loop was busy with its round (not waiting) still
    /// starts the next round at once, instead of waiting out the poll interval.
    #[tokio::test]
    async fn an_announcement_made_while_busy_is_not_lost() {
        let (announce, mut models) = watch::channel(0u64);
        let (_stop, mut shutdown) = watch::channel(false);
        let hour = Duration::from_secs(3_600);
        announce.send_modify(|n| *n += 1);
        let round = tokio::time::timeout(
            Duration::from_secs(10),
            next_round(Some(&mut models), hour, &mut shutdown),
        )
        .await;
        assert!(matches!(round, Ok(true)), "the announcement was lost");
        // Seen once: without a new announcement the next round waits for its timer.
        let again = tokio::time::timeout(
            Duration::from_millis(200),
            next_round(Some(&mut models), hour, &mut shutdown),
        )
        .await;
        assert!(again.is_err(), "a round without a new announcement");
    }
}
