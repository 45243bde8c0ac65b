//! A small hyperparameter search the service can run on its own log.
//!
//! `AlsParams::default()` is a sound start for any shop, but the best confidence slope
//! and ridge depend on the shop's mix of event types and on how dense its log is.
//! `evaluation.md` allows the service to choose for itself at training time from a
//! validation split of its own training log; this is that choice, kept small (nine
//! fits) so it can run next to the regular trainer, e.g. once a day.

use super::holdout::{evaluate, temporal_split};
use super::metrics::Quality;
use super::{als, AlsParams, Interactions, LogEvent};

/// Share of each user's latest events held out for validation, as in `evaluation.md`.
const VALIDATION_FRACTION: f64 = 0.2;
/// Users with fewer events than this are never held out (nothing left to learn from).
const MIN_EVENTS: usize = 5;
/// Multipliers tried on `regularization` and on `alpha`: a factor-of-two grid either
/// side of the base, wide enough to move off a poor default, small enough to be cheap.
const STEPS: [f32; 3] = [1.0, 0.5, 2.0];

/// The outcome of [`tune`].
#[derive(Clone, Debug, PartialEq)]
pub struct Tuned {
    /// The chosen parameters (`base` with the best regularization and alpha).
    pub params: AlsParams,
    /// Every candidate with its validation quality, base first.
    pub trials: Vec<(AlsParams, Quality)>,
}

/// Picks `regularization` and `alpha` from a 3×3 grid around `base` (×½, ×1, ×2 each) by
/// NDCG@10 on a temporal validation split of `events` (the last 20% of every user with
/// at least 5 events), scoring users by fold-in as serving does. Other fields of `base`
/// are kept. Ties keep the earlier candidate, and `base` comes first, so the defaults
/// stand unless something is measurably better. If the log is too small to validate
/// on (no user has a held-out event), `base` is returned with no trials.
///
/// Deterministic for a given input; costs nine fits of ~80% of the log.
pub fn tune(n_users: usize, n_items: usize, events: &[LogEvent], base: &AlsParams) -> Tuned {
    let (train, valid) = temporal_split(events, VALIDATION_FRACTION, MIN_EVENTS);
    if valid.is_empty() {
        return Tuned {
            params: base.clone(),
            trials: Vec::new(),
        };
    }
    let data = Interactions::from_events(n_users, n_items, &train);
    let mut trials = Vec::with_capacity(STEPS.len() * STEPS.len());
    for reg_step in STEPS {
        for alpha_step in STEPS {
            let params = AlsParams {
                regularization: base.regularization * reg_step,
                alpha: base.alpha * alpha_step,
                ..base.clone()
            };
            let model = als::fit(&data, &params);
            let quality = evaluate(&data, &valid, |u, out| {
                model.score_into(&model.fold_in(&data.user_history(u)), out)
            });
            trials.push((params, quality));
        }
    }
    let mut best = 0;
    for (t, (_, q)) in trials.iter().enumerate() {
        if q.ndcg_at_10 > trials[best].1.ndcg_at_10 {
            best = t;
        }
    }
    Tuned {
        params: trials[best].0.clone(),
        trials,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::synthetic::planted;

    #[test]
    fn moves_off_a_poor_base_and_keeps_the_rest() {
        let events = planted(300, 150, 5, 25, 3);
        // A confidence slope far too steep (and a weak ridge): observed cells swamp
        // everything else, so the model overfits each user's few items.
        let base = AlsParams {
            factors: 8,
            iterations: 5,
            regularization: 0.002,
            alpha: 20.0,
            ..AlsParams::default()
        };
        let tuned = tune(300, 150, &events, &base);
        assert_eq!(tuned.trials.len(), 9);
        assert_eq!(tuned.trials[0].0, base);
        assert!(tuned.params.alpha < base.alpha);
        assert_eq!((tuned.params.factors, tuned.params.seed), (8, base.seed));
        let score = |p: &AlsParams| {
            tuned
                .trials
                .iter()
                .find(|(t, _)| t == p)
                .map(|(_, q)| q.ndcg_at_10)
        };
        let best = tuned
            .trials
            .iter()
            .map(|(_, q)| q.ndcg_at_10)
            .fold(0.0, f64::max);
        assert_eq!(score(&tuned.params), Some(best));
        assert!(best > tuned.trials[0].1.ndcg_at_10);
    }

    #[test]
    fn too_little_data_keeps_the_base() {
        let events = planted(10, 20, 2, 3, 1); // 3 events per user: nothing held out
        let tuned = tune(10, 20, &events, &AlsParams::default());
        assert_eq!(tuned.params, AlsParams::default());
        assert!(tuned.trials.is_empty());
    }
}
