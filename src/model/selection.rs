//! Training chooses its own model: every candidate algorithm × recency strength is fitted on a
//! validation split cut from the training log itself and scored with the evaluation protocol;
//! the best one is trained. Nothing here is tuned to a dataset: the grids are wide and the log
//! decides, so a shop whose data favours iALS gets iALS.

use super::{
    holdout, metrics::Quality, Algorithm, AlsParams, EaseParams, Interactions, LogEvent, Ranker,
    RankerConfig,
};

/// Recency strengths tried (see [`super::recency::weighted_history`]); 0 is "every past event counts alike".
pub const RECENCY: [f32; 6] = [0.0, 1.0, 2.0, 3.0, 4.0, 6.0];
/// EASE shrinkage, as multiples of the mean diagonal of XᵀX: a decade either side of the
/// usual optimum.
pub const EASE_LAMBDA_SCALES: [f64; 5] = [2.0, 4.0, 8.0, 16.0, 32.0];

/// One candidate and how it scored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Trial {
    pub config: RankerConfig,
    pub quality: Quality,
}

/// The algorithms worth trying: the configured iALS always; EASE when the catalogue is small
/// enough for its cubic fit (`ease_max_items`, 0 = never).
pub fn algorithms(als: &AlsParams, n_items: usize, ease_max_items: usize) -> Vec<Algorithm> {
    let mut out = vec![Algorithm::Ials(als.clone())];
    if n_items <= ease_max_items {
        out.extend(EASE_LAMBDA_SCALES.iter().map(|&lambda_scale| {
            Algorithm::Ease(EaseParams {
                lambda_scale,
                ..EaseParams::default()
            })
        }));
    }
    out
}

/// Each user's training events in time order, as `(item, weight)`; `events` must be in fit
/// order (grouped by user, by time within a user).
fn histories(n_users: usize, events: &[LogEvent]) -> Vec<Vec<(u32, f32)>> {
    let mut out = vec![Vec::new(); n_users];
    for e in events {
        if let Some(h) = out.get_mut(e.user as usize) {
            h.push((e.item, e.weight));
        }
    }
    out
}

/// A fitted ranker scored on `test`, each user folded in from their `train` events (fit
/// order) as serving would; `data` is `train` as a matrix.
pub fn quality_of(
    ranker: &Ranker,
    data: &Interactions,
    train: &[LogEvent],
    test: &[LogEvent],
    recency: f32,
) -> Quality {
    score(
        ranker,
        data,
        &histories(data.n_users(), train),
        test,
        recency,
    )
}

fn score(
    ranker: &Ranker,
    data: &Interactions,
    histories: &[Vec<(u32, f32)>],
    test: &[LogEvent],
    recency: f32,
) -> Quality {
    holdout::evaluate(data, test, |u, out| {
        let events = histories.get(u as usize).map_or(&[][..], Vec::as_slice);
        ranker.score_events(events, recency, out);
    })
}

/// Every algorithm × every recency strength, fitted on `train` and scored on `test`.
pub fn trials(
    n_users: usize,
    n_items: usize,
    train: &[LogEvent],
    test: &[LogEvent],
    algorithms: &[Algorithm],
    recencies: &[f32],
) -> Vec<Trial> {
    let data = Interactions::from_events(n_users, n_items, train);
    let histories = histories(n_users, train);
    let mut out = Vec::new();
    for algorithm in algorithms {
        let ranker = RankerConfig {
            algorithm: algorithm.clone(),
            recency: 0.0,
        }
        .fit(&data);
        for &recency in recencies {
            out.push(Trial {
                config: RankerConfig {
                    algorithm: algorithm.clone(),
                    recency,
                },
                quality: score(&ranker, &data, &histories, test, recency),
            });
        }
    }
    out
}

/// One configuration fitted on `train` and scored on `test`, exactly as it would serve.
pub fn holdout_quality(
    n_users: usize,
    n_items: usize,
    train: &[LogEvent],
    test: &[LogEvent],
    config: &RankerConfig,
) -> Quality {
    let data = Interactions::from_events(n_users, n_items, train);
    let ranker = config.fit(&data);
    score(
        &ranker,
        &data,
        &histories(n_users, train),
        test,
        config.recency,
    )
}

/// The best trial by NDCG@10; ties go to the earlier candidate (the simpler one: iALS, then
/// the least recency), so the choice is deterministic.
pub fn best(trials: &[Trial]) -> Option<&Trial> {
    trials
        .iter()
        .fold(None, |best: Option<&Trial>, t| match best {
            Some(b) if b.quality.ndcg_at_10 >= t.quality.ndcg_at_10 => Some(b),
            _ => Some(t),
        })
}

/// Chooses a configuration on a validation split of `events` (fit order): the last
/// `fraction` of each user's events with at least `min_events`. With no one to evaluate
/// (a young log), the first algorithm with no recency weighting.
pub fn select(
    n_users: usize,
    n_items: usize,
    events: &[LogEvent],
    fraction: f64,
    min_events: usize,
    algorithms: &[Algorithm],
) -> (RankerConfig, Vec<Trial>) {
    let (train, validation) = holdout::temporal_split(events, fraction, min_events);
    let trials = trials(n_users, n_items, &train, &validation, algorithms, &RECENCY);
    let chosen = best(&trials)
        .filter(|t| t.quality.users > 0)
        .map(|t| t.config.clone())
        .unwrap_or_else(|| RankerConfig {
            algorithm: algorithms[0].clone(),
            recency: 0.0,
        });
    (chosen, trials)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(user: u32, item: u32, ts: i64, purchase: bool) -> LogEvent {
        LogEvent {
            user,
            item,
            weight: if purchase { 4.0 } else { 1.0 },
            ts,
            purchase,
        }
    }

    #[test]
    fn ease_is_only_tried_on_small_catalogues() {
        let als = AlsParams::default();
        assert_eq!(algorithms(&als, 100, 50).len(), 1);
        assert_eq!(
            algorithms(&als, 100, 100).len(),
            1 + EASE_LAMBDA_SCALES.len()
        );
        assert_eq!(algorithms(&als, 1, 0).len(), 1);
    }

    #[test]
    fn ties_go_to_the_earlier_candidate() {
        let q = |ndcg| Quality {
            ndcg_at_10: ndcg,
            users: 1,
            ..Quality::default()
        };
        let config = |recency| RankerConfig {
            algorithm: Algorithm::Ease(EaseParams::default()),
            recency,
        };
        let trials = vec![
            Trial {
                config: config(0.0),
                quality: q(0.2),
            },
            Trial {
                config: config(1.0),
                quality: q(0.3),
            },
            Trial {
                config: config(2.0),
                quality: q(0.3),
            },
        ];
        assert_eq!(best(&trials).unwrap().config.recency, 1.0);
    }

    /// Users whose taste moves: early on they buy from one half of the catalogue, lately
    /// from the other. Recency weighting must win the validation, and be chosen.
    #[test]
    fn a_drifting_log_chooses_recency() {
        let mut events = Vec::new();
        for u in 0..60u32 {
            let (old, new) = if u % 2 == 0 { (0, 10) } else { (10, 0) };
            for t in 0..10i64 {
                let item = old + ((u as i64 + t) % 10) as u32;
                events.push(ev(u, item, t, false));
            }
            for t in 10..16i64 {
                let item = new + ((u as i64 * 3 + t) % 10) as u32;
                events.push(ev(u, item, t, true));
            }
        }
        crate::model::interactions::sort_for_fit(&mut events);
        let algs = algorithms(&AlsParams::default(), 20, 1000);
        let (chosen, trials) = select(60, 20, &events, 0.2, 5, &algs);
        assert_eq!(trials.len(), algs.len() * RECENCY.len());
        assert!(chosen.recency > 0.0, "chose {chosen:?}");
        let flat = trials
            .iter()
            .filter(|t| t.config.algorithm == chosen.algorithm && t.config.recency == 0.0)
            .map(|t| t.quality.ndcg_at_10)
            .next()
            .unwrap();
        let best = best(&trials).unwrap().quality.ndcg_at_10;
        assert!(best > flat, "{best} vs {flat}");
    }
}
