//! Implicit-feedback ALS (Hu, Koren & Volinsky 2008).
//!
//! Every cell of the user×item matrix is fitted: observed cells towards preference 1
//! with confidence `c_ui = 1 + alpha · w_ui`, all others towards 0 with confidence 1.
//! The trick that makes this tractable is that the unobserved part of every row solve
//! is the same Gram matrix `YᵀY`, computed once per half-step; each row then only pays
//! for its observed entries.

pub use super::als_params::{row_regularization, AlsParams};
use super::fold::Eigen;
use super::linalg::{dot, gram};
use super::solve::{solve_cg, solve_exact, Scratch};
use super::Interactions;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// A fitted model: the item side only. Users are folded in on demand from their
/// history ([`AlsModel::fold_in`]), so a user's newest events count without a refit.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct AlsModel {
    /// The parameters the model was fitted with (fold-in must use the same ones).
    pub params: AlsParams,
    /// Number of items (rows of `item_factors`).
    pub n_items: usize,
    /// `n_items × factors`, row-major.
    pub item_factors: Vec<f32>,
    /// `YᵀY`, `factors × factors`, fully stored, precomputed so fold-in is cheap.
    pub gram: Vec<f32>,
    /// An 8-bit copy of `item_factors` for ranking (see [`super::scoring`]), built on first use.
    #[serde(skip)]
    pub(super) quantized: std::sync::OnceLock<Box<super::scoring::Quantized>>,
    /// The eigendecomposition of `gram` for short fold-ins (see [`super::fold`]), built on first use.
    #[serde(skip)]
    eigen: std::sync::OnceLock<Option<Box<Eigen>>>,
}

/// The instruction set the fit's row solves run with for `factors` on this CPU
/// ("avx512", "avx2" or "portable"), for benchmark records.
pub fn fit_kernel(factors: usize) -> &'static str {
    super::simd::Isa::for_factors(factors).name()
}

/// Fits the model. Multi-threaded (rayon, parallel over rows) and deterministic for a
/// seed regardless of the thread count.
///
/// # Panics
/// If `params.factors == 0`.
pub fn fit(data: &Interactions, params: &AlsParams) -> AlsModel {
    fit_with_users(data, params).0
}

/// [`fit`], also returning the user factors (`n_users × factors`, row-major).
///
/// Each round solves the items, then the users, so the returned user factors are the
/// solves against the final item factors: in Cholesky mode they equal
/// [`AlsModel::fold_in`] of the user's row. Users and items without any event get
/// all-zero vectors (they score 0 everywhere and have no cosine neighbours).
pub fn fit_with_users(data: &Interactions, params: &AlsParams) -> (AlsModel, Vec<f32>) {
    let k = params.factors;
    assert!(k > 0, "AlsParams::factors must be > 0");
    let (n_users, n_items) = (data.n_users(), data.n_items());

    // Small random start: it only matters as the first CG warm start. Scaling by
    // 1/sqrt(k) keeps vector norms (~0.06) independent of k.
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let scale = 0.1 / (k as f32).sqrt();
    let mut init = |n: usize, has_events: &dyn Fn(u32) -> bool| -> Vec<f32> {
        let mut f: Vec<f32> = (0..n * k).map(|_| rng.gen_range(-scale..scale)).collect();
        for (r, row) in f.chunks_exact_mut(k).enumerate() {
            if !has_events(r as u32) {
                row.fill(0.0);
            }
        }
        f
    };
    let mut users = init(n_users, &|u| !data.user_row(u).0.is_empty());
    let mut items = init(n_items, &|i| !data.item_col(i).0.is_empty());

    for _ in 0..params.iterations {
        half_step(&mut items, &users, params, |i| data.item_col(i));
        half_step(&mut users, &items, params, |u| data.user_row(u));
    }
    let model = AlsModel::from_item_factors(params.clone(), items);
    (model, users)
}

/// Re-solves every row of `target` against the fixed factors of the other side.
fn half_step<'d>(
    target: &mut [f32],
    fixed: &[f32],
    params: &AlsParams,
    row: impl Fn(u32) -> (&'d [u32], &'d [f32]) + Sync,
) {
    let k = params.factors;
    let g = gram(fixed, k);
    target.par_chunks_mut(k).enumerate().for_each_init(
        || Scratch::new(k),
        |scratch, (r, x)| {
            let (idx, w) = row(r as u32);
            if idx.is_empty() {
                x.fill(0.0);
            } else if params.cg_steps == 0 {
                solve_exact(fixed, &g, idx, w, params, x, scratch);
            } else {
                solve_cg(fixed, &g, idx, w, params, x, scratch);
            }
        },
    );
}

impl AlsModel {
    /// A model from given item factors (`n_items × params.factors`, row-major),
    /// computing the Gram matrix. Useful for tests, benches and imported factors.
    ///
    /// # Panics
    /// If `params.factors == 0` or the length is not a multiple of it.
    pub fn from_item_factors(params: AlsParams, item_factors: Vec<f32>) -> Self {
        let k = params.factors;
        assert!(
            k > 0 && item_factors.len().is_multiple_of(k),
            "bad factor shape"
        );
        let gram = gram(&item_factors, k);
        AlsModel {
            n_items: item_factors.len() / k,
            params,
            item_factors,
            gram,
            quantized: Default::default(),
            eigen: Default::default(),
        }
    }

    /// Closed-form least-squares fold-in of one user from their full history
    /// `(item index, summed weight)` against the fixed item factors:
    /// `x_u = (YᵀY + Yᵀ(C_u − I)Y + λ_u I)⁻¹ Yᵀ C_u p_u`.
    ///
    /// This is exactly the ALS user step, so a training user folds in to their fitted
    /// vector (exactly in Cholesky mode, nearly after convergence in CG mode). Cost
    /// O(n·k² + k³) solved directly; a short history (n ≤ k/3, most requests) goes through
    /// the Gram matrix's eigenbasis instead, O(n·k² + n²·k) (see [`super::fold`]).
    /// Items out of range and non-positive weights are ignored; repeated items are
    /// summed; an empty history gives the zero vector.
    pub fn fold_in(&self, history: &[(u32, f32)]) -> Vec<f32> {
        let k = self.params.factors;
        let mut h: Vec<(u32, f32)> = history
            .iter()
            .copied()
            .filter(|&(i, w)| (i as usize) < self.n_items && w > 0.0)
            .collect();
        if !h.windows(2).all(|p| p[0].0 < p[1].0) {
            // Sorting also makes the summation order that of the fitted user step.
            h.sort_by_key(|&(i, _)| i);
            h.dedup_by(|next, kept| {
                let same = next.0 == kept.0;
                if same {
                    kept.1 += next.1;
                }
                same
            });
        }
        let mut x = vec![0.0f32; k];
        if h.is_empty() {
            return x;
        }
        let (idx, w): (Vec<u32>, Vec<f32>) = h.into_iter().unzip();
        let eigen = self
            .eigen
            .get_or_init(|| Eigen::new(&self.gram, k).map(Box::new))
            .as_ref()
            .filter(|e| e.pays_off(idx.len()));
        if eigen.is_some_and(|e| e.solve(&self.item_factors, &idx, &w, &self.params, &mut x)) {
            return x;
        }
        solve_exact(
            &self.item_factors,
            &self.gram,
            &idx,
            &w,
            &self.params,
            &mut x,
            &mut Scratch::new(k),
        );
        x
    }

    /// `out[i] = y_i · x_u` for every item.
    ///
    /// # Panics
    /// If `user_vec.len() != factors` or `out.len() != n_items`.
    pub fn score_into(&self, user_vec: &[f32], out: &mut [f32]) {
        let k = self.params.factors;
        assert_eq!(user_vec.len(), k, "user vector length != factors");
        assert_eq!(out.len(), self.n_items, "output length != n_items");
        for (o, y) in out.iter_mut().zip(self.item_factors.chunks_exact(k)) {
            *o = dot(y, user_vec);
        }
    }

    /// The factor vector of item `i`.
    ///
    /// # Panics
    /// If `i >= n_items`.
    pub fn item_vector(&self, i: u32) -> &[f32] {
        let k = self.params.factors;
        &self.item_factors[i as usize * k..(i as usize + 1) * k]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::synthetic::planted;

    fn data() -> Interactions {
        Interactions::from_events(300, 120, &planted(300, 120, 4, 25, 11))
    }

    fn small(cg_steps: usize) -> AlsParams {
        AlsParams {
            factors: 12,
            iterations: 12,
            cg_steps,
            ..AlsParams::default()
        }
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        dot(a, b) / (dot(a, a).sqrt() * dot(b, b).sqrt())
    }

    #[test]
    fn fit_is_deterministic_under_a_seed_and_any_thread_count() {
        let data = data();
        let params = small(3);
        let a = fit(&data, &params);
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .map(|pool| pool.install(|| fit(&data, &params)));
        let b = one_thread.unwrap_or_else(|_| fit(&data, &params));
        assert_eq!(a.item_factors, b.item_factors);
        assert_eq!(a.gram, b.gram);
        let c = fit(&data, &AlsParams { seed: 7, ..params });
        assert_ne!(a.item_factors, c.item_factors);
    }

    #[test]
    fn fold_in_of_a_training_user_matches_the_fitted_vector() {
        let data = data();
        for cg_steps in [0, 3] {
            let params = AlsParams {
                iterations: 30,
                ..small(cg_steps)
            };
            let (model, users) = fit_with_users(&data, &params);
            let k = params.factors;
            for u in (0..data.n_users() as u32).step_by(17) {
                let folded = model.fold_in(&data.user_history(u));
                let fitted = &users[u as usize * k..(u as usize + 1) * k];
                let cos = cosine(&folded, fitted);
                // Exact solves are the very same computation; CG is close after convergence.
                let min = if cg_steps == 0 { 0.9999 } else { 0.99 };
                assert!(cos > min, "user {u}, cg_steps {cg_steps}: cosine {cos}");
            }
        }
    }

    #[test]
    fn fold_in_sums_repeats_and_ignores_invalid_entries() {
        let model = fit(&data(), &small(0));
        let base = model.fold_in(&[(3, 1.0), (10, 5.0)]);
        let messy = model.fold_in(&[
            (10, 1.0),
            (3, 1.0),
            (10, 4.0),
            (999, 3.0),
            (7, 0.0),
            (8, -1.0),
        ]);
        for (a, b) in base.iter().zip(&messy) {
            assert!((a - b).abs() < 1e-5, "{base:?} vs {messy:?}");
        }
        assert_eq!(model.fold_in(&[]), vec![0.0; 12]);
        assert_eq!(model.fold_in(&[(500, 1.0)]), vec![0.0; 12]);
    }

    #[test]
    fn scores_are_dot_products_and_gram_is_yty() {
        let model = fit(&data(), &small(3));
        let x = model.fold_in(&[(1, 1.0), (2, 4.0)]);
        let mut out = vec![0.0; model.n_items];
        model.score_into(&x, &mut out);
        for i in [0u32, 5, 119] {
            assert!((out[i as usize] - dot(model.item_vector(i), &x)).abs() < 1e-6);
        }
        let k = model.params.factors;
        let naive: f32 = (0..model.n_items as u32)
            .map(|i| model.item_vector(i)[1] * model.item_vector(i)[2])
            .sum();
        assert!((model.gram[k + 2] - naive).abs() < 1e-3 * naive.abs().max(1.0));
    }

    #[test]
    fn model_round_trips_through_postcard() {
        let model = fit(&data(), &small(3));
        let bytes = postcard::to_allocvec(&model).expect("serialise");
        let back: AlsModel = postcard::from_bytes(&bytes).expect("deserialise");
        assert_eq!(back.params, model.params);
        assert_eq!(back.item_factors, model.item_factors);
        assert_eq!(back.gram, model.gram);
    }

    #[test]
    fn users_and_items_without_events_get_zero_vectors() {
        let events = planted(50, 40, 2, 10, 3);
        // Declare more users and items than the log has.
        let data = Interactions::from_events(60, 50, &events);
        let (model, users) = fit_with_users(&data, &small(3));
        assert!(model.item_vector(45).iter().all(|&v| v == 0.0));
        assert!(users[55 * 12..56 * 12].iter().all(|&v| v == 0.0));
        assert!(model.item_factors.iter().all(|v| v.is_finite()));
    }
}
