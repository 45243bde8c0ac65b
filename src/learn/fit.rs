//! The CPU-heavy, pure part of a training: the log indexed, the configuration chosen on a
//! validation split, the candidate gated against the champion's configuration on the same
//! holdout, and the accepted model fitted on the whole log. No I/O: it runs on a blocking thread.

use std::{collections::HashMap, time::Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    config::Config,
    domain::{EventType, EventWeights},
    model::{
        explain::co_users,
        holdout,
        popularity::popularity,
        selection::{self, Trial},
        AlsParams, FittedModel, Interactions, LogEvent, RankerConfig,
    },
    store::{Log, ModelStatus},
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

/// Wall seconds of each phase of one training (reading the log, indexing it, the choice, the
/// gate, the fit, popularity, similar items, encoding the artifact): recorded with the version
/// (`metrics.phase_seconds`) so that anyone can see where a training's time goes.
#[derive(Debug, Default)]
pub struct Phases(Vec<(&'static str, f64)>);

impl Phases {
    /// Runs `f`, adding its wall time to the phase `name`.
    pub fn time<T>(&mut self, name: &'static str, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        self.add(name, started.elapsed().as_secs_f64());
        out
    }

    /// Records a phase timed elsewhere (the trainer's log read and encoding).
    pub fn add(&mut self, name: &'static str, seconds: f64) {
        self.0.push((name, seconds));
    }

    pub fn to_json(&self) -> serde_json::Value {
        self.0
            .iter()
            .map(|&(n, s)| (n.to_owned(), json!(s)))
            .collect()
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
    /// Where the time went, from indexing the log to the similar items.
    pub phases: Phases,
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
    let mut phases = Phases::default();
    let (indexed, train, test) = phases.time("index", || {
        let indexed = IndexedLog::new(log, &params.weights);
        let (train, test) =
            holdout::temporal_split(&indexed.events, params.holdout_fraction, HOLDOUT_MIN_EVENTS);
        (indexed, train, test)
    });
    let n_items = indexed.item_ids.len();
    let n_users = indexed.n_users;
    let (chosen, trials) = phases.time("choose", || choose(params, n_users, n_items, &train));
    let (candidate, popular, champion_quality) = phases.time("gate", || {
        let candidate = selection::holdout_quality(n_users, n_items, &train, &test, &chosen);
        let popular = {
            let data = Interactions::from_events(n_users, n_items, &train);
            let pop = popularity(n_items, &train, params.popularity_half_life_days * 86_400.0);
            holdout::evaluate(&data, &test, |_, out| out.copy_from_slice(&pop.scores))
        };
        // The champion's configuration refitted on the same training part: neither model has
        // seen the held-out events, so the comparison is fair. Same configuration, same score.
        let champion_quality = champion.map(|(version, c)| {
            let q = if *c == chosen {
                candidate.clone()
            } else {
                selection::holdout_quality(n_users, n_items, &train, &test, c)
            };
            (version, q)
        });
        (candidate, popular, champion_quality)
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
        let (data, ranker) = phases.time("fit", || {
            let data = Interactions::from_events(n_users, n_items, &indexed.events);
            let ranker = chosen.fit(&data);
            (data, ranker)
        });
        let pop = phases.time("popularity", || {
            popularity(
                n_items,
                &indexed.events,
                params.popularity_half_life_days * 86_400.0,
            )
        });
        let similar = phases.time("similar", || ranker.similar(params.similar_k));
        let co_users = phases.time("co_users", || co_users(&data, &similar));
        FittedModel {
            item_ids: indexed.item_ids.clone(),
            ranker,
            recency: chosen.recency,
            popularity: pop.scores,
            similar,
            weights: params.weights,
            co_users,
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
        phases,
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
