//! The trainer: read the log from the store, fit off the async runtime, score the candidate against
//! the model in service on the same temporal holdout, record the version, publish if better.

use std::{sync::Arc, time::Instant};

use anyhow::Context;
use chrono::Utc;
use tokio::sync::{watch, Mutex};

use super::{
    fit::{fit_and_gate, TrainingParams},
    lifecycle::{adopt_champion, recorded_ranker, retire_others},
    schedule::next_round,
};
use crate::{
    config::Config,
    model::{FittedModel, RankerConfig},
    serve::{Serving, Snapshot},
    store::{DynStore, ModelRecord, ModelStatus, NewModelRecord, TrainingLease},
};

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

/// What [`Trainer::start`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A training runs in the background.
    Started,
    /// Nothing to learn from yet.
    NoEvents,
    /// A training is running, here or in another replica.
    Busy,
}

/// A user was erased while a training ran: its log held them, so its result is discarded.
#[derive(Debug, thiserror::Error)]
#[error("a user was erased during training; the result is discarded")]
struct ErasedDuring;

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

    /// Starts a training in the background: `Started`, or `Busy` when one is running here or
    /// in another replica, or `NoEvents` when there is nothing to learn from.
    pub async fn start(self: &Arc<Self>) -> anyhow::Result<Start> {
        if self.store.max_event_seq().await? == 0 {
            return Ok(Start::NoEvents);
        }
        let Ok(guard) = self.lock.clone().try_lock_owned() else {
            return Ok(Start::Busy);
        };
        let Some(mut lease) = self.store.try_training_lease().await? else {
            return Ok(Start::Busy);
        };
        let me = self.clone();
        tokio::spawn(async move {
            let _guard = guard;
            if let Err(e) = me.train_locked(me.params.clone(), &mut lease).await {
                tracing::error!(error = ?e, "training failed");
            }
        });
        Ok(Start::Started)
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
        loop {
            match self.train_locked(self.params.clone(), &mut lease).await {
                Err(e) if e.is::<ErasedDuring>() => tracing::info!("{e}; training again"),
                outcome => return outcome,
            }
        }
    }

    /// One training, counted in the statistics by its outcome (a failure included).
    async fn train_locked(
        &self,
        params: TrainingParams,
        lease: &mut TrainingLease,
    ) -> anyhow::Result<Outcome> {
        let started = Instant::now();
        let outcome = self.train_counted(params, lease).await;
        let status = match &outcome {
            Ok(Outcome::Trained(record)) => record.status.as_str(),
            Err(e) if !e.is::<ErasedDuring>() => "failed",
            _ => return outcome,
        };
        let labels = format!("outcome={status}");
        let stats = &self.serving.stats;
        stats.add("trainings", labels.clone(), 1.0);
        stats.add("training_seconds", labels, started.elapsed().as_secs_f64());
        outcome
    }

    async fn train_counted(
        &self,
        params: TrainingParams,
        lease: &mut TrainingLease,
    ) -> anyhow::Result<Outcome> {
        let started = Instant::now();
        // Read before the log: an erasure after this point discards the result (below).
        let erasures = self.store.erasures().await?;
        // Every event acknowledged before `started` is in the log read below.
        let log = self.store.load_log().await?;
        let read_seconds = started.elapsed().as_secs_f64();
        if log.rows.is_empty() {
            return Ok(Outcome::NoEvents);
        }
        let champion = self
            .serving
            .current()
            .and_then(|snap| Some((snap.version(), recorded_ranker(&snap.record.params)?)));
        let span = tracing::info_span!("training", events = log.rows.len());
        let (mut fitted, log) = tokio::task::spawn_blocking({
            let params = params.clone();
            move || {
                let _enter = span.enter();
                let fitted = fit_and_gate(&log, &params, champion.as_ref().map(|(v, p)| (*v, p)));
                (fitted, log)
            }
        })
        .await
        .context("training thread panicked")?;
        let encode_started = Instant::now();
        let blob = fitted
            .model
            .as_ref()
            .map(FittedModel::to_bytes)
            .transpose()?;
        fitted.phases.add("read_log", read_seconds);
        fitted
            .phases
            .add("encode", encode_started.elapsed().as_secs_f64());
        let phase_seconds = fitted.phases.to_json();
        fitted.metrics["phase_seconds"] = phase_seconds.clone();
        // Another replica may have trained meanwhile if our lease was lost (its connection
        // dropped): then this result was not gated against theirs and must not be recorded.
        if !lease.still_held().await {
            anyhow::bail!("the training lease was lost during training; the result is discarded");
        }
        // A user erased meanwhile is in this log; the next tick trains without them.
        if self.store.erasures().await? != erasures {
            return Err(ErasedDuring.into());
        }
        let training_seconds = started.elapsed().as_secs_f64();
        // An operator's pin keeps the champion: the model is recorded, not put in service.
        let pinned = self.store.service().await?.pinned_version();
        // With challengers on, a model that passed the gate first serves a share of users.
        let challenger = fitted.status == ModelStatus::Accepted
            && pinned.is_none()
            && self.config.challenger_share > 0.0
            && self.serving.current().is_some();
        let (status, reason) = if challenger {
            let share = self.config.challenger_share * 100.0;
            let reason = format!("{}; challenger for {share:.0}% of users", fitted.reason);
            (ModelStatus::Challenger, reason)
        } else if let (ModelStatus::Accepted, Some(v)) = (fitted.status, pinned) {
            let reason = format!(
                "{}; not put in service: version {v} is pinned",
                fitted.reason
            );
            (ModelStatus::Accepted, reason)
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
                    params: {
                        let mut recorded = recorded_params(&params, &fitted.ranker)?;
                        recorded["erasures"] = erasures.into();
                        recorded
                    },
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
            phase_seconds = %phase_seconds,
            "training finished"
        );
        if let Some(model) = fitted.model {
            let snapshot = Snapshot::new(record.clone(), model);
            if challenger {
                self.serving.set_challenger(Some(snapshot));
            } else if (self.store.service().await)
                .map_or(true, |s| s.champion == Some(record.version))
            {
                // Asked of the database, not assumed: an operator may have pinned a version
                // while this one was being recorded. If it cannot be asked, published: the
                // next poll of the champion corrects it.
                self.serving.publish(snapshot);
            }
            // An earlier challenger is replaced (or overtaken); if this fails, the online loop's
            // next round still serves only the newest.
            if let Err(e) = retire_others(&self.store, record.version).await {
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
        // A user erased since the newest training (here or on another replica, which the
        // serving model tells): the next model is trained without them, whatever the triggers.
        let erased_in = |r: &ModelRecord| r.params["erasures"].as_i64().unwrap_or(0);
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let trained_with = last
            .map_or(0, |(r, _)| erased_in(&r))
            .max(erased_in(&snap.record));
        let by_erasure = self.store.erasures().await? > trained_with;
        Ok(by_volume || by_time || by_erasure)
    }

    /// Checks every tick whether a training is due, until `shutdown` turns true. Failures back
    /// off exponentially (up to five minutes) so a broken database is not hammered.
    pub async fn run_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let tick = std::time::Duration::from_secs(self.config.trainer_tick_secs.max(1));
        let mut backoff = tick;
        let mut models = self.store.model_notifications();
        while next_round(models.as_mut(), backoff, &mut shutdown).await {
            if let Err(e) = adopt_champion(&self.store, &self.serving).await {
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
