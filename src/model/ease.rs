//! EASE (Steck 2019): a closed-form item×item linear model, `B = I − P·diag(1/diag(P))` with
//! `P = (XᵀX + λI)⁻¹` and a zero diagonal. On small catalogues it ranks better than matrix
//! factorisation (it keeps every item pair instead of a rank-k summary), at a cost cubic in the
//! number of items — so training only considers it up to a configured catalogue size.

use faer::{linalg::solvers::DenseSolveCore, Mat, Side};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{topk::top_k, Interactions};

/// How EASE is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EaseParams {
    /// λ as a multiple of the mean diagonal of XᵀX, so one setting means the same amount of
    /// shrinkage on a small log and on a large one.
    pub lambda_scale: f64,
    /// Weights kept per item row, by magnitude: the rest are near zero and would only make
    /// the model larger (pruning to 256 changes ml100k's NDCG@10 by < 0.001).
    pub keep: usize,
}

impl Default for EaseParams {
    fn default() -> Self {
        Self {
            lambda_scale: 8.0,
            keep: 256,
        }
    }
}

/// A fitted EASE model: for each item, the items it predicts and their weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EaseModel {
    pub params: EaseParams,
    pub lambda: f64,
    /// `rows[j]` = the pruned row j of B, `(item, weight)` sorted by item.
    pub rows: Vec<Vec<(u32, f32)>>,
}

/// Fits EASE. Deterministic: the Gram matrix is summed in a fixed order and faer's
/// factorisation does not depend on the thread count for a given size.
pub fn fit(data: &Interactions, params: &EaseParams) -> EaseModel {
    let n = data.n_items();
    let mut gram = gram(data);
    let mean_diag = (0..n).map(|i| gram[(i, i)]).sum::<f64>() / n.max(1) as f64;
    // A catalogue without events still needs a positive-definite system.
    let lambda = (params.lambda_scale * mean_diag).max(1e-6);
    for i in 0..n {
        gram[(i, i)] += lambda;
    }
    let p = match gram.llt(Side::Lower) {
        Ok(llt) => llt.inverse(),
        // λ > 0 makes G + λI positive definite; only rounding could fail it. Then no item
        // predicts any other, which ranks nothing rather than garbage.
        Err(_) => return empty(*params, lambda, n),
    };
    let rows = (0..n)
        .into_par_iter()
        .map(|j| {
            let pjj = p[(j, j)];
            let row: Vec<f32> = (0..n)
                .map(|i| {
                    if i == j {
                        0.0
                    } else {
                        (-p[(i, j)] / pjj) as f32
                    }
                })
                .collect();
            let abs: Vec<f32> = row.iter().map(|w| w.abs()).collect();
            let mut kept: Vec<(u32, f32)> = top_k(&abs, params.keep, |i| row[i as usize] != 0.0)
                .into_iter()
                .map(|(i, _)| (i, row[i as usize]))
                .collect();
            kept.sort_unstable_by_key(|&(i, _)| i);
            kept
        })
        .collect();
    EaseModel {
        params: *params,
        lambda,
        rows,
    }
}

fn empty(params: EaseParams, lambda: f64, n: usize) -> EaseModel {
    EaseModel {
        params,
        lambda,
        rows: vec![Vec::new(); n],
    }
}

/// XᵀX from the sparse rows: each user adds the outer product of their row.
fn gram(data: &Interactions) -> Mat<f64> {
    let n = data.n_items();
    let mut g = Mat::<f64>::zeros(n, n);
    for u in 0..data.n_users() as u32 {
        let (items, weights) = data.user_row(u);
        for (a, &i) in items.iter().enumerate() {
            let wi = weights[a] as f64;
            for (b, &j) in items.iter().enumerate().skip(a) {
                let v = wi * weights[b] as f64;
                g[(i as usize, j as usize)] += v;
            }
        }
    }
    // Only the upper triangle was summed (i <= j by sorted rows); mirror it.
    for i in 0..n {
        for j in 0..i {
            g[(i, j)] = g[(j, i)];
        }
    }
    g
}

impl EaseModel {
    pub fn n_items(&self) -> usize {
        self.rows.len()
    }

    /// `out[i] = Σ_j w_j · B[j, i]` over the user's weighted history.
    ///
    /// # Panics
    /// If `out.len() != n_items`.
    pub fn score_into(&self, history: &[(u32, f32)], out: &mut [f32]) {
        assert_eq!(out.len(), self.rows.len(), "output length != n_items");
        out.fill(0.0);
        for &(j, w) in history {
            if let Some(row) = self.rows.get(j as usize) {
                for &(i, b) in row {
                    out[i as usize] += w * b;
                }
            }
        }
    }

    /// Items most predicted by item `j` alone: its strongest positive weights.
    pub fn similar(&self, k: usize) -> Vec<Vec<(u32, f32)>> {
        self.rows
            .par_iter()
            .map(|row| {
                let mut best: Vec<(u32, f32)> =
                    row.iter().copied().filter(|&(_, w)| w > 0.0).collect();
                best.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                best.truncate(k);
                best
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LogEvent;

    fn ev(user: u32, item: u32) -> LogEvent {
        LogEvent {
            user,
            item,
            weight: 1.0,
            ts: 0,
            purchase: false,
        }
    }

    /// Hand-checked on a 3-item case: G = [[2,2,0],[2,3,1],[0,1,1]], λ = 0.5 × mean diagonal
    /// 2 = 1, so P = inv([[3,2,0],[2,4,1],[0,1,2]]) = 1/13·[[7,-4,2],[-4,6,-3],[2,-3,8]] and
    /// B[j,i] = −P[i,j]/P[j,j].
    #[test]
    fn matches_the_closed_form_on_a_small_case() {
        let events = [ev(0, 0), ev(0, 1), ev(1, 0), ev(1, 1), ev(2, 1), ev(2, 2)];
        let data = Interactions::from_events(3, 3, &events);
        let model = fit(
            &data,
            &EaseParams {
                lambda_scale: 0.5,
                keep: 10,
            },
        );
        assert!((model.lambda - 1.0).abs() < 1e-9);
        let p = [[7.0, -4.0, 2.0], [-4.0, 6.0, -3.0], [2.0, -3.0, 8.0]];
        for (j, kept) in model.rows.iter().enumerate() {
            let row: std::collections::HashMap<u32, f32> = kept.iter().copied().collect();
            for (i, p_i) in p.iter().enumerate() {
                let want = if i == j { 0.0 } else { -p_i[j] / p[j][j] };
                let got = row.get(&(i as u32)).copied().unwrap_or(0.0) as f64;
                assert!((got - want).abs() < 1e-5, "B[{j},{i}] = {got}, want {want}");
            }
        }
    }

    #[test]
    fn pruning_keeps_the_largest_weights() {
        let events: Vec<LogEvent> = (0..20)
            .flat_map(|u| (0..6).map(move |i| ev(u, (u + i) % 8)))
            .collect();
        let data = Interactions::from_events(20, 8, &events);
        let full = fit(
            &data,
            &EaseParams {
                lambda_scale: 1.0,
                keep: 8,
            },
        );
        let pruned = fit(
            &data,
            &EaseParams {
                lambda_scale: 1.0,
                keep: 3,
            },
        );
        for (f, p) in full.rows.iter().zip(&pruned.rows) {
            assert!(p.len() <= 3);
            let smallest_kept = p.iter().map(|w| w.1.abs()).fold(f32::INFINITY, f32::min);
            let dropped = f.iter().filter(|w| !p.contains(w)).map(|w| w.1.abs());
            assert!(dropped.into_iter().all(|d| d <= smallest_kept + 1e-6));
        }
    }

    #[test]
    fn scores_sum_the_rows_of_the_history() {
        let model = EaseModel {
            params: EaseParams::default(),
            lambda: 1.0,
            rows: vec![vec![(1, 0.5), (2, -1.0)], vec![(0, 2.0)], vec![]],
        };
        let mut out = vec![9.0; 3];
        model.score_into(&[(0, 2.0), (1, 1.0), (7, 1.0)], &mut out);
        assert_eq!(out, vec![2.0, 1.0, -2.0]);
        assert_eq!(
            model.similar(5),
            vec![vec![(1, 0.5)], vec![(0, 2.0)], vec![]]
        );
    }
}
