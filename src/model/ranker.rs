//! The personal ranking model in service: one of the algorithms training may choose, behind
//! one interface (fold a user's history in, score every item, list similar items).

use serde::{Deserialize, Serialize};

use super::{
    als, ease, recency::weighted_history, scoring::Scores, similarity::similar_items, AlsModel,
    AlsParams, EaseModel, EaseParams, Interactions,
};

/// An algorithm and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "algorithm", rename_all = "snake_case")]
pub enum Algorithm {
    Ials(AlsParams),
    Ease(EaseParams),
}

/// Everything that decides a personal ranking: the algorithm, and how strongly a user's
/// recent events outweigh their older ones (see [`weighted_history`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankerConfig {
    #[serde(flatten)]
    pub algorithm: Algorithm,
    pub recency: f32,
}

impl RankerConfig {
    /// Plain iALS with equal weight for every past event: what the service did before it
    /// chose for itself.
    pub fn ials(params: AlsParams) -> Self {
        Self {
            algorithm: Algorithm::Ials(params),
            recency: 0.0,
        }
    }

    /// Short and stable, for the model version's `algorithm` field and logs.
    pub fn name(&self) -> String {
        match &self.algorithm {
            Algorithm::Ials(p) => format!(
                "ials(factors={}, reg={}, alpha={}, sweeps={}, recency={})",
                p.factors, p.regularization, p.alpha, p.iterations, self.recency
            ),
            Algorithm::Ease(p) => format!(
                "ease(lambda_scale={}, keep={}, recency={})",
                p.lambda_scale, p.keep, self.recency
            ),
        }
    }

    pub fn fit(&self, data: &Interactions) -> Ranker {
        match &self.algorithm {
            Algorithm::Ials(p) => Ranker::Ials(als::fit(data, p)),
            Algorithm::Ease(p) => Ranker::Ease(ease::fit(data, p)),
        }
    }
}

/// A fitted ranking model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Ranker {
    Ials(AlsModel),
    Ease(EaseModel),
}

/// A user as a model sees them, computed once per history and reused for every request.
#[derive(Debug, Clone, PartialEq)]
pub enum UserVector {
    /// iALS: the least-squares fold-in of the history.
    Factors(Vec<f32>),
    /// EASE: the weighted history itself (scoring sums item rows).
    History(Vec<(u32, f32)>),
}

impl Ranker {
    pub fn n_items(&self) -> usize {
        match self {
            Ranker::Ials(m) => m.n_items,
            Ranker::Ease(m) => m.n_items(),
        }
    }

    /// The user from their history, `(item, weight)` sorted by item (as
    /// [`weighted_history`] gives it).
    pub fn fold(&self, history: &[(u32, f32)]) -> UserVector {
        match self {
            Ranker::Ials(m) => UserVector::Factors(m.fold_in(history)),
            Ranker::Ease(_) => UserVector::History(history.to_vec()),
        }
    }

    /// Scores of every item for `user`; `out.len()` must be `n_items()`.
    pub fn score_into(&self, user: &UserVector, out: &mut [f32]) {
        match (self, user) {
            (Ranker::Ials(m), UserVector::Factors(v)) => m.score_into(v, out),
            (Ranker::Ease(m), UserVector::History(h)) => m.score_into(h, out),
            // A vector from another model kind never reaches here (state is per model
            // version); if it did, ranking nothing is safer than mixing spaces.
            _ => out.fill(0.0),
        }
    }

    /// Every item's score for `user`, in the form that ranks fastest: the same top lists as
    /// [`Ranker::score_into`] followed by [`top_k`](super::topk::top_k).
    pub fn scores<'a>(&'a self, user: &'a UserVector) -> Scores<'a> {
        match (self, user) {
            (Ranker::Ials(m), UserVector::Factors(v)) => m.scores(v),
            _ => {
                let mut all = vec![0.0; self.n_items()];
                self.score_into(user, &mut all);
                Scores::Exact(all)
            }
        }
    }

    /// Top-`k` similar items per item.
    pub fn similar(&self, k: usize) -> Vec<Vec<(u32, f32)>> {
        match self {
            Ranker::Ials(m) => similar_items(m, k),
            Ranker::Ease(m) => m.similar(k),
        }
    }

    /// Scores of one user from their time-ordered events, as serving computes them.
    pub fn score_events(&self, events: &[(u32, f32)], recency: f32, out: &mut [f32]) {
        let v = self.fold(&weighted_history(events, recency));
        self.score_into(&v, out);
    }
}
