//! Per-row solvers of the ALS normal equations, shared by fitting and fold-in.
//!
//! For a row (a user, or an item) with observed entries `(j, w_j)` against fixed factors
//! `Y` whose Gram matrix is `G = YᵀY`, both solve
//! `(G + Σ_j (c_j − 1) y_j y_jᵀ + λ_u I) x = Σ_j c_j y_j`, with `c_j = 1 + alpha · w_j`.

use super::als_params::{row_regularization, AlsParams};
use super::linalg::{axpy, cholesky_solve, dot, syr4_lower, syr_lower};
use super::simd::Isa;

/// Per-thread work buffers of a row solve.
pub(super) struct Scratch {
    a: Vec<f32>,
    a64: Vec<f64>,
    b: Vec<f32>,
    b64: Vec<f64>,
    p: Vec<f32>,
    ap: Vec<f32>,
    isa: Isa,
}

impl Scratch {
    pub(super) fn new(k: usize) -> Self {
        Scratch {
            a: vec![0.0; k * k],
            a64: vec![0.0; k * k],
            b: vec![0.0; k],
            b64: vec![0.0; k],
            p: vec![0.0; k],
            ap: vec![0.0; k],
            isa: Isa::for_factors(k),
        }
    }
}

/// Exact row solve: x = (G + Σ (c−1) y yᵀ + λ_u I)⁻¹ Σ c y, over the row's observed
/// entries (`idx`, `w`), where G is the fixed side's Gram matrix.
pub(super) fn solve_exact(
    fixed: &[f32],
    g: &[f32],
    idx: &[u32],
    w: &[f32],
    params: &AlsParams,
    x: &mut [f32],
    s: &mut Scratch,
) {
    let k = x.len();
    s.a.fill(0.0);
    s.b.fill(0.0);
    let row = |j: u32| &fixed[j as usize * k..(j as usize + 1) * k];
    let (idx4, idx_rest) = idx.split_at(idx.len() - idx.len() % 4);
    for (j, wj) in idx4.chunks_exact(4).zip(w.chunks_exact(4)) {
        let excess = [0, 1, 2, 3].map(|r| params.alpha * wj[r]);
        let ys = [0, 1, 2, 3].map(|r| row(j[r]));
        syr4_lower(excess, ys, &mut s.a, k);
    }
    for (&j, &wj) in idx_rest.iter().zip(&w[idx4.len()..]) {
        syr_lower(params.alpha * wj, row(j), &mut s.a, k);
    }
    for (&j, &wj) in idx.iter().zip(w) {
        axpy(1.0 + params.alpha * wj, row(j), &mut s.b);
    }
    let lambda = f64::from(row_regularization(params, idx.len()));
    // Transposed into the upper triangle, the layout `cholesky_solve` factors fastest.
    for p in 0..k {
        for q in 0..=p {
            s.a64[q * k + p] = f64::from(g[p * k + q]) + f64::from(s.a[p * k + q]);
        }
        s.a64[p * k + p] += lambda;
    }
    for (d, &v) in s.b64.iter_mut().zip(&s.b) {
        *d = f64::from(v);
    }
    cholesky_solve(&mut s.a64, &mut s.b64, k);
    for (xi, &v) in x.iter_mut().zip(&s.b64) {
        *xi = v as f32;
    }
}

/// `cg_steps` conjugate-gradient steps on the same system, warm-started from `x`.
/// Only needs products `A v = G v + λ_u v + Σ (c−1)(y·v) y`: O(k² + nnz·k) per step
/// instead of the O(nnz·k² + k³) of forming and factoring `A`.
pub(super) fn solve_cg(
    fixed: &[f32],
    g: &[f32],
    idx: &[u32],
    w: &[f32],
    params: &AlsParams,
    x: &mut [f32],
    s: &mut Scratch,
) {
    let (isa, alpha) = (s.isa, params.alpha);
    let lambda = row_regularization(params, idx.len());
    // Residual r = b − A x = Σ (c − (c−1)(y·x)) y − G x − λ x: b and A x in one pass
    // over the observed rows.
    let r = &mut s.b;
    isa.symv(g, x, r);
    for (ri, &xi) in r.iter_mut().zip(x.iter()) {
        *ri = -*ri - lambda * xi;
    }
    isa.sparse_update(fixed, idx, w, [1.0, alpha, -alpha], x, r);
    s.p.copy_from_slice(r);
    let mut rs_old = dot(r, r);
    for _ in 0..params.cg_steps {
        if rs_old < 1e-20 {
            break;
        }
        // A p = G p + λ p + Σ (c−1)(y·p) y.
        isa.symv(g, &s.p, &mut s.ap);
        axpy(lambda, &s.p, &mut s.ap);
        isa.sparse_update(fixed, idx, w, [0.0, 0.0, alpha], &s.p, &mut s.ap);
        let p_ap = dot(&s.p, &s.ap);
        if p_ap <= 0.0 {
            break; // only on a degenerate (zero-regularisation) system
        }
        let step = rs_old / p_ap;
        axpy(step, &s.p, x);
        axpy(-step, &s.ap, r);
        let rs_new = dot(r, r);
        let beta = rs_new / rs_old;
        for (pi, ri) in s.p.iter_mut().zip(r.iter()) {
            *pi = ri + beta * *pi;
        }
        rs_old = rs_new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A random row problem: fixed factors, their Gram matrix, observed entries.
    fn problem(k: usize, rows: usize, nnz: usize) -> (Vec<f32>, Vec<f32>, Vec<u32>, Vec<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(k as u64);
        let fixed: Vec<f32> = (0..rows * k).map(|_| rng.gen_range(-0.3..0.3)).collect();
        let g = super::super::linalg::gram(&fixed, k);
        let mut idx: Vec<u32> = (0..nnz).map(|_| rng.gen_range(0..rows as u32)).collect();
        idx.sort_unstable();
        idx.dedup();
        let w = idx.iter().map(|_| rng.gen_range(1.0..5.0)).collect();
        (fixed, g, idx, w)
    }

    #[test]
    fn cg_agrees_across_instruction_sets_and_converges_to_the_exact_solve() {
        for k in [16, 24, 64, 128] {
            let (fixed, g, idx, w) = problem(k, 300, 40);
            let params = AlsParams {
                factors: k,
                cg_steps: 3,
                ..AlsParams::default()
            };
            let mut exact = vec![0.0; k];
            solve_exact(
                &fixed,
                &g,
                &idx,
                &w,
                &params,
                &mut exact,
                &mut Scratch::new(k),
            );

            let mut portable = Scratch::new(k);
            portable.isa = Isa::Portable;
            let mut xp = vec![0.0; k];
            for _ in 0..10 {
                solve_cg(&fixed, &g, &idx, &w, &params, &mut xp, &mut portable);
            }
            let norm = dot(&exact, &exact).sqrt();
            for (p, e) in xp.iter().zip(&exact) {
                assert!((p - e).abs() <= 1e-3 * norm, "k={k}: cg {p} vs exact {e}");
            }
            for isa in Isa::every(|isa| isa.fits(k)) {
                let mut wide = Scratch::new(k);
                wide.isa = isa;
                let mut xw = vec![0.0; k];
                for _ in 0..10 {
                    solve_cg(&fixed, &g, &idx, &w, &params, &mut xw, &mut wide);
                }
                for (p, d) in xp.iter().zip(&xw) {
                    assert!((p - d).abs() <= 1e-4 * norm, "k={k} {isa:?}: {p} vs {d}");
                }
            }
        }
    }
}
