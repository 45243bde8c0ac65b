//! The fold-in of a short history without factoring a `k × k` matrix per request.
//!
//! A user's system is `A = G + λ_u I + Σ_j d_j y_j y_jᵀ` (`d_j = alpha · w_j`): the Gram
//! matrix plus a ridge plus one rank-one term per history item. With `G = Q Λ Qᵀ` computed
//! once per model, `M = G + λ_u I` is inverted for free in that basis (whatever `λ_u`), and
//! the Woodbury identity leaves an `n × n` system for the `n` history items:
//! `A⁻¹ = M⁻¹ − M⁻¹Wᵀ (I + W M⁻¹ Wᵀ)⁻¹ W M⁻¹` with `W = D^{1/2} Y_h`.
//! That costs `O(n k² + n² k + n³)` instead of `O(n k² + k³)`: for k = 128 and a typical
//! history of ten items, a few times fewer operations than the Cholesky solve, and no
//! `k × k` work buffers.

use super::als_params::{row_regularization, AlsParams};
use super::linalg::{cholesky_solve, dot64};
use faer::{linalg::matmul::matmul, Accum, Mat, MatMut, MatRef, Par, Side};

/// The eigendecomposition of a model's Gram matrix.
#[derive(Clone, Debug)]
pub struct Eigen {
    k: usize,
    /// Eigenvalues (non-decreasing).
    values: Vec<f64>,
    /// Row-major `k × k`: row `m` is the `m`-th eigenvector.
    vectors: Vec<f64>,
}

impl Eigen {
    /// `None` when the decomposition fails (then fold-in keeps the direct solve).
    pub fn new(gram: &[f32], k: usize) -> Option<Self> {
        let g = Mat::<f64>::from_fn(k, k, |p, q| f64::from(gram[p * k + q]));
        let evd = g.self_adjoint_eigen(Side::Lower).ok()?;
        let (u, s) = (evd.U(), evd.S().column_vector());
        let values: Vec<f64> = (0..k).map(|m| s[m]).collect();
        let vectors = (0..k * k).map(|mq| u[(mq % k, mq / k)]).collect();
        values
            .iter()
            .all(|v| v.is_finite())
            .then_some(Eigen { k, values, vectors })
    }

    /// Whether [`Eigen::solve`] is the cheaper way for a history of `n` items: the `n × k²`
    /// basis change against the direct solve's `k³/3` factorisation.
    pub fn pays_off(&self, n: usize) -> bool {
        3 * n <= self.k
    }

    /// Solves the ALS user system for the history `(idx, w)` against `fixed` into `x`;
    /// `false` (and `x` untouched) when the ridge cannot keep `G + λ_u I` safely positive
    /// definite (zero regularisation on a rank-deficient model): the caller solves directly.
    pub fn solve(
        &self,
        fixed: &[f32],
        idx: &[u32],
        w: &[f32],
        params: &AlsParams,
        x: &mut [f32],
    ) -> bool {
        let (k, n) = (self.k, idx.len());
        let lambda = f64::from(row_regularization(params, n));
        let max = self.values.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let shifted: Vec<f64> = self.values.iter().map(|v| v + lambda).collect();
        if shifted.iter().any(|&v| v <= 1e-9 * max.max(1.0)) {
            return false;
        }
        // Z_j = Qᵀ y_j: the history items in the eigenbasis, as one `n × k` by `k × k` product
        // (faer picks AVX2 / AVX-512 FMA kernels at run time; this was most of a fold-in).
        let mut y = vec![0.0f64; n * k];
        for (&j, yj) in idx.iter().zip(y.chunks_exact_mut(k)) {
            let row = &fixed[j as usize * k..(j as usize + 1) * k];
            for (d, &v) in yj.iter_mut().zip(row) {
                *d = f64::from(v);
            }
        }
        let mut z = vec![0.0f64; n * k];
        matmul(
            MatMut::from_row_major_slice_mut(&mut z, n, k),
            Accum::Replace,
            MatRef::from_row_major_slice(&y, n, k),
            MatRef::from_row_major_slice(&self.vectors, k, k).transpose(),
            1.0,
            Par::Seq,
        );
        // β = Λ'⁻¹ Qᵀ b with b = Σ c_j y_j: M⁻¹ b in the eigenbasis.
        let mut beta = vec![0.0f64; k];
        for (zj, &wj) in z.chunks_exact(k).zip(w) {
            let c = 1.0 + f64::from(params.alpha) * f64::from(wj);
            for (b, &zm) in beta.iter_mut().zip(zj) {
                *b += c * zm;
            }
        }
        for (b, &l) in beta.iter_mut().zip(&shifted) {
            *b /= l;
        }
        // V = D^{1/2} Z; the small system (I + V Λ'⁻¹ Vᵀ) γ = V β.
        for (zj, &wj) in z.chunks_exact_mut(k).zip(w) {
            let scale = (f64::from(params.alpha) * f64::from(wj)).max(0.0).sqrt();
            zj.iter_mut().for_each(|v| *v *= scale);
        }
        let v = &z;
        let scaled: Vec<f64> = v
            .chunks_exact(k)
            .flat_map(|va| va.iter().zip(&shifted).map(|(a, l)| a / l))
            .collect();
        let mut s = vec![0.0f64; n * n];
        for a in 0..n {
            for b in a..n {
                let sab = dot64(&scaled[a * k..(a + 1) * k], &v[b * k..(b + 1) * k]);
                s[a * n + b] = sab + if a == b { 1.0 } else { 0.0 };
                s[b * n + a] = s[a * n + b];
            }
        }
        let mut gamma: Vec<f64> = v.chunks_exact(k).map(|va| dot64(va, &beta)).collect();
        cholesky_solve(&mut s, &mut gamma, n);
        // x̃ = β − Λ'⁻¹ Vᵀ γ, then x = Q x̃.
        for (va, &g) in scaled.chunks_exact(k).zip(&gamma) {
            for (b, &a) in beta.iter_mut().zip(va) {
                *b -= a * g;
            }
        }
        let mut out = vec![0.0f64; k];
        matmul(
            MatMut::from_column_major_slice_mut(&mut out, k, 1),
            Accum::Replace,
            MatRef::from_row_major_slice(&self.vectors, k, k).transpose(),
            MatRef::from_column_major_slice(&beta, k, 1),
            1.0,
            Par::Seq,
        );
        for (xi, o) in x.iter_mut().zip(out) {
            *xi = o as f32;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{synthetic::random_factors, AlsModel};

    /// The direct solve (Cholesky of the full system) of the same history.
    fn direct(model: &AlsModel, history: &[(u32, f32)]) -> Vec<f32> {
        let k = model.params.factors;
        let (idx, w): (Vec<u32>, Vec<f32>) = history.iter().copied().unzip();
        let mut x = vec![0.0; k];
        super::super::solve::solve_exact(
            &model.item_factors,
            &model.gram,
            &idx,
            &w,
            &model.params,
            &mut x,
            &mut super::super::solve::Scratch::new(k),
        );
        x
    }

    #[test]
    fn woodbury_fold_equals_the_direct_solve() {
        for (k, n_hist, reg, alpha) in [
            (64, 1, 0.2, 1.0),
            (128, 10, 0.2, 1.0),
            (32, 10, 0.05, 4.0),
            (16, 5, 1.0, 0.0),
        ] {
            let params = AlsParams {
                factors: k,
                regularization: reg,
                alpha,
                ..AlsParams::default()
            };
            let model = AlsModel::from_item_factors(params.clone(), random_factors(900, k, 3));
            let eigen = Eigen::new(&model.gram, k).expect("decomposes");
            let history: Vec<(u32, f32)> = (0..n_hist as u32)
                .map(|j| (j * 83 + 5, if j % 3 == 0 { 4.0 } else { 1.0 }))
                .collect();
            let (idx, w): (Vec<u32>, Vec<f32>) = history.iter().copied().unzip();
            let mut x = vec![0.0; k];
            assert!(eigen.solve(&model.item_factors, &idx, &w, &params, &mut x));
            let want = direct(&model, &history);
            let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for (a, b) in x.iter().zip(&want) {
                assert!(
                    (a - b).abs() <= 1e-4 * scale,
                    "k {k} n {n_hist}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn zero_ridge_on_a_singular_gram_falls_back() {
        // Five items in 8 dimensions: G has rank 5, and no ridge.
        let params = AlsParams {
            factors: 8,
            regularization: 0.0,
            ..AlsParams::default()
        };
        let model = AlsModel::from_item_factors(params.clone(), random_factors(5, 8, 1));
        let eigen = Eigen::new(&model.gram, 8).expect("decomposes");
        let mut x = vec![7.0; 8];
        assert!(!eigen.solve(&model.item_factors, &[1], &[1.0], &params, &mut x));
        assert_eq!(x, vec![7.0; 8], "untouched");
    }
}
