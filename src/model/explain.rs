//! Why an item was recommended: its score split exactly over the user's history, so that the
//! parts sum to the score the model ranked it by.
//!
//! - EASE scores item `i` as `Σ_j h_j B[j,i]` over the weighted history `h`: item `j`'s part is
//!   its own term.
//! - iALS folds the user in as `u = A⁻¹ Σ_j c_j y_j` with `A = G + λ_u I + Σ_j α w_j y_j y_jᵀ`
//!   and `c_j = 1 + α w_j` (see [`super::solve`]), so `y_iᵀ u = Σ_j c_j · y_iᵀ A⁻¹ y_j`: item
//!   `j`'s part is `c_j · y_iᵀ A⁻¹ y_j` (the decomposition the `implicit` library's `explain`
//!   makes). `A` is factored once per user and each explained item costs one substitution.
//!
//! Recency only changes the weights `w_j`, so both decompositions hold for it unchanged.

use fnv::FnvHashMap;
use rayon::prelude::*;

use super::{
    als_params::row_regularization,
    linalg::{cholesky_factor, cholesky_substitute, dot64},
    AlsModel, EaseModel, Interactions, Ranker,
};

/// Splits scores of one user's items over that user's history.
pub struct Explainer<'a> {
    history: Vec<(u32, f32)>,
    kind: Kind<'a>,
}

enum Kind<'a> {
    Ease(&'a EaseModel),
    Ials {
        model: &'a AlsModel,
        /// The Cholesky factor of the user's system `A` (upper triangle, row-major).
        factor: Vec<f64>,
        /// `c_j · y_j` of every history item in f64, row by row: shared by every explained item.
        scaled: Vec<f64>,
    },
}

impl<'a> Explainer<'a> {
    /// For the weighted history `(item, weight)` the user was folded in from (sorted by item,
    /// as [`weighted_history`](super::recency::weighted_history) gives it).
    pub fn new(ranker: &'a Ranker, history: &[(u32, f32)]) -> Self {
        let n_items = ranker.n_items();
        // The items the fold-in itself keeps.
        let history: Vec<(u32, f32)> = history
            .iter()
            .copied()
            .filter(|&(i, w)| (i as usize) < n_items && w > 0.0)
            .collect();
        let kind = match ranker {
            Ranker::Ease(m) => Kind::Ease(m),
            Ranker::Ials(m) => Kind::Ials {
                model: m,
                factor: user_system(m, &history),
                scaled: scaled_rows(m, &history),
            },
        };
        Self { history, kind }
    }

    /// The history items, in the order of [`Explainer::contributions`].
    pub fn history(&self) -> &[(u32, f32)] {
        &self.history
    }

    /// Each history item's part of `item`'s score; the parts sum to the model's score.
    pub fn contributions(&self, item: u32) -> Vec<f64> {
        match &self.kind {
            Kind::Ease(m) => self
                .history
                .iter()
                .map(|&(j, w)| f64::from(w) * f64::from(ease_weight(m, j, item)))
                .collect(),
            Kind::Ials {
                model,
                factor,
                scaled,
            } => {
                let k = model.params.factors;
                let y = &model.item_factors[item as usize * k..(item as usize + 1) * k];
                let mut z: Vec<f64> = y.iter().map(|&v| f64::from(v)).collect();
                cholesky_substitute(factor, &mut z, k);
                scaled.chunks_exact(k).map(|cy| dot64(cy, &z)).collect()
            }
        }
    }
}

/// `c_j · y_j` per history item, `c_j = 1 + α w_j`, in f64.
fn scaled_rows(m: &AlsModel, history: &[(u32, f32)]) -> Vec<f64> {
    let k = m.params.factors;
    let alpha = f64::from(m.params.alpha);
    history
        .iter()
        .flat_map(|&(j, w)| {
            let c = 1.0 + alpha * f64::from(w);
            m.item_factors[j as usize * k..(j as usize + 1) * k]
                .iter()
                .map(move |&v| c * f64::from(v))
        })
        .collect()
}

/// `B[j,i]`: how much item `j` predicts item `i` (zero where pruned).
fn ease_weight(m: &EaseModel, j: u32, i: u32) -> f32 {
    let row = &m.rows[j as usize];
    row.binary_search_by_key(&i, |&(item, _)| item)
        .map_or(0.0, |at| row[at].1)
}

/// The factored system of the fold-in: `A = G + λ_u I + Σ α w_j y_j y_jᵀ`, in f64.
fn user_system(m: &AlsModel, history: &[(u32, f32)]) -> Vec<f64> {
    let k = m.params.factors;
    let alpha = f64::from(m.params.alpha);
    let mut a: Vec<f64> = m.gram.iter().map(|&g| f64::from(g)).collect();
    for &(j, w) in history {
        let y = &m.item_factors[j as usize * k..(j as usize + 1) * k];
        let c = alpha * f64::from(w);
        for p in 0..k {
            let cp = c * f64::from(y[p]);
            for q in p..k {
                a[p * k + q] += cp * f64::from(y[q]);
            }
        }
    }
    let lambda = f64::from(row_regularization(&m.params, history.len()));
    for p in 0..k {
        a[p * k + p] += lambda;
    }
    cholesky_factor(&mut a, k);
    a
}

/// For every item's similar-items list, how many users interacted with both the item and each
/// neighbour: what `similar?explain=true` reports. Costs the sum over users of their row length
/// squared, at training time.
pub fn co_users(data: &Interactions, similar: &[Vec<(u32, f32)>]) -> Vec<Vec<u32>> {
    similar
        .par_iter()
        .enumerate()
        .map(|(i, neighbours)| {
            let slot: FnvHashMap<u32, usize> = neighbours
                .iter()
                .enumerate()
                .map(|(s, &(j, _))| (j, s))
                .collect();
            let mut counts = vec![0u32; neighbours.len()];
            if neighbours.is_empty() || i >= data.n_items() {
                return counts;
            }
            for &u in data.item_col(i as u32).0 {
                for j in data.user_row(u).0 {
                    if let Some(&s) = slot.get(j) {
                        counts[s] += 1;
                    }
                }
            }
            counts
        })
        .collect()
}

#[cfg(test)]
mod tests;
