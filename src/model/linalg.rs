//! Small dense kernels shared by ALS, fold-in and similarity.
//!
//! Written so that LLVM vectorises them on the baseline target (no `unsafe`, no
//! target features): reductions keep eight independent accumulators, because a
//! single running sum forces strict left-to-right float order and stays scalar.
//! The two loops that dominate a CG fit have wide versions in `kernels`, which falls
//! back to these.

use faer::{linalg::matmul::matmul, Accum, Mat, MatRef, Par};
use rayon::prelude::*;

/// Rows per partial Gram matrix. A fixed block size (not one per thread) keeps the
/// floating-point summation order, and so the result, independent of the thread count.
const GRAM_BLOCK_ROWS: usize = 512;

/// Dot product of two equally long slices.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (x, y) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0;
    for (x, y) in a_rest.iter().zip(b_rest) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `y += alpha * x`.
#[inline]
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    debug_assert_eq!(x.len(), y.len());
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += alpha * xi;
    }
}

/// Adds `c * v vᵀ` to the lower triangle of the row-major `k×k` matrix `a`.
/// Only the lower triangle is maintained: it is all Cholesky reads, and it halves the
/// cost of the dominant term of a row solve.
#[inline]
pub fn syr_lower(c: f32, v: &[f32], a: &mut [f32], k: usize) {
    for p in 0..k {
        let s = c * v[p];
        axpy(s, &v[..=p], &mut a[p * k..p * k + p + 1]);
    }
}

/// Adds `Σ_r c[r] · v[r] v[r]ᵀ` for four vectors to the lower triangle of `a`.
/// Four at a time because the update is bound by loading and storing `a` (64 KiB at
/// k = 128, so L2): batching does four times the arithmetic per pass over it.
#[inline]
pub fn syr4_lower(c: [f32; 4], v: [&[f32]; 4], a: &mut [f32], k: usize) {
    let [v0, v1, v2, v3] = v;
    let (v0, v1, v2, v3) = (&v0[..k], &v1[..k], &v2[..k], &v3[..k]);
    for p in 0..k {
        let s = [c[0] * v0[p], c[1] * v1[p], c[2] * v2[p], c[3] * v3[p]];
        let row = &mut a[p * k..p * k + p + 1];
        let n = row.len();
        for ((((x, a0), a1), a2), a3) in row
            .iter_mut()
            .zip(&v0[..n])
            .zip(&v1[..n])
            .zip(&v2[..n])
            .zip(&v3[..n])
        {
            *x += (s[0] * a0 + s[1] * a1) + (s[2] * a2 + s[3] * a3);
        }
    }
}

/// `out = m · v` for a symmetric, fully stored row-major `k×k` matrix `m`.
#[inline]
pub fn symv(m: &[f32], v: &[f32], out: &mut [f32], k: usize) {
    for (p, o) in out.iter_mut().enumerate() {
        *o = dot(&m[p * k..(p + 1) * k], v);
    }
}

/// `FᵀF` of a row-major `n×k` matrix, fully stored (`k×k`, row-major).
///
/// Parallel over fixed blocks of rows whose partial sums are added in block order,
/// so the result is bit-identical for any number of threads.
pub fn gram(factors: &[f32], k: usize) -> Vec<f32> {
    let partials: Vec<Vec<f32>> = factors
        .par_chunks(GRAM_BLOCK_ROWS * k)
        .map(|block| {
            // faer's matrix product picks AVX2 / AVX-512 at run time; the portable
            // `syr_lower` loop ran 4-wide and cost a tenth of a fit.
            let f = MatRef::from_row_major_slice(block, block.len() / k, k);
            let mut g = Mat::<f32>::zeros(k, k);
            matmul(g.as_mut(), Accum::Replace, f.transpose(), f, 1.0, Par::Seq);
            let mut out = vec![0.0f32; k * k];
            for p in 0..k {
                for q in 0..=p {
                    out[p * k + q] = g[(p, q)];
                }
            }
            out
        })
        .collect();
    let mut g = vec![0.0f32; k * k];
    for part in &partials {
        axpy(1.0, part, &mut g);
    }
    mirror_lower(&mut g, k);
    g
}

/// Copies the lower triangle onto the upper one.
pub fn mirror_lower(a: &mut [f32], k: usize) {
    for p in 0..k {
        for q in 0..p {
            a[q * k + p] = a[p * k + q];
        }
    }
}

/// Solves `A x = b` in place (`b` becomes `x`) for a symmetric positive definite `A`
/// given by its upper triangle (row-major `k×k`, f64, overwritten by U with A = UᵀU).
///
/// Hand-written Cholesky (k ≤ a few hundred). Right-looking, so the inner loop is a
/// contiguous update of a row of the upper triangle (vectorises without horizontal
/// sums), and four pivots at a time, because that update is bound by loading and
/// storing the trailing matrix: batching does four times the arithmetic per pass.
/// f64 because `A` mixes the Gram matrix of all items with a small ridge term, and f32
/// loses the small-eigenvalue directions. A non-positive pivot (only possible with zero
/// regularisation on degenerate data) is clamped so the solve still returns a finite,
/// if regularised, answer instead of NaN.
pub fn cholesky_solve(a: &mut [f64], b: &mut [f64], k: usize) {
    cholesky_factor(a, k);
    cholesky_substitute(a, b, k);
}

/// The factorisation step of [`cholesky_solve`]: `a` (upper triangle, row-major) becomes `U`
/// with `UᵀU = A`, for solving several right-hand sides with [`cholesky_substitute`].
pub fn cholesky_factor(a: &mut [f64], k: usize) {
    const PANEL: usize = 4;
    for j in (0..k).step_by(PANEL) {
        let jb = PANEL.min(k - j);
        let (head, tail) = a.split_at_mut((j + jb) * k);
        // Factor the panel rows j..j+jb, updating only each other.
        for jj in j..j + jb {
            let (done, rest) = head.split_at_mut((jj + 1) * k);
            let u = &mut done[jj * k..];
            let d = u[jj].max(1e-12).sqrt();
            u[jj] = d;
            for v in &mut u[jj + 1..] {
                *v /= d;
            }
            for (r, dst) in rest.chunks_exact_mut(k).enumerate() {
                let i = jj + 1 + r;
                let uji = u[i];
                for (x, ujq) in dst[i..].iter_mut().zip(&u[i..]) {
                    *x -= uji * ujq;
                }
            }
        }
        // Trailing update of every later row with all panel rows at once (a short
        // last panel pads with zero coefficients).
        let panel = &head[j * k..];
        let row = |r: usize| &panel[r.min(jb - 1) * k..(r.min(jb - 1) + 1) * k];
        for (r, dst) in tail.chunks_exact_mut(k).enumerate() {
            let i = j + jb + r;
            let c = [0, 1, 2, 3].map(|p| if p < jb { row(p)[i] } else { 0.0 });
            let (u0, u1, u2, u3) = (&row(0)[i..], &row(1)[i..], &row(2)[i..], &row(3)[i..]);
            for ((((x, a0), a1), a2), a3) in dst[i..].iter_mut().zip(u0).zip(u1).zip(u2).zip(u3) {
                *x -= (c[0] * a0 + c[1] * a1) + (c[2] * a2 + c[3] * a3);
            }
        }
    }
}

/// Solves `UᵀU x = b` in place, `a` as [`cholesky_factor`] left it.
pub fn cholesky_substitute(a: &[f64], b: &mut [f64], k: usize) {
    // Forward substitution Uᵀ y = b, row by row of U.
    for j in 0..k {
        b[j] /= a[j * k + j];
        let yj = b[j];
        for (bi, uji) in b[j + 1..].iter_mut().zip(&a[j * k + j + 1..(j + 1) * k]) {
            *bi -= uji * yj;
        }
    }
    // Back substitution U x = y.
    for i in (0..k).rev() {
        let s = b[i] - dot64(&a[i * k + i + 1..(i + 1) * k], &b[i + 1..]);
        b[i] = s / a[i * k + i];
    }
}

/// A dot product in f64 with four independent sums (the solves' inner loop).
#[inline]
pub(super) fn dot64(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (a4, a_rest) = a.split_at(a.len() - a.len() % 4);
    let (b4, b_rest) = b.split_at(a4.len());
    for (x, y) in a4.chunks_exact(4).zip(b4.chunks_exact(4)) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0;
    for (x, y) in a_rest.iter().zip(b_rest) {
        tail += x * y;
    }
    (acc[0] + acc[2]) + (acc[1] + acc[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive_for_all_tail_lengths() {
        for n in 0..20 {
            let a: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| 1.0 + i as f32).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-4, "n={n}");
        }
    }

    #[test]
    fn gram_is_ftf_and_thread_independent() {
        let (n, k) = (1100, 3);
        let f: Vec<f32> = (0..n * k).map(|i| ((i * 7919) % 13) as f32 - 6.0).collect();
        let g = gram(&f, k);
        for p in 0..k {
            for q in 0..k {
                let naive: f32 = (0..n).map(|r| f[r * k + p] * f[r * k + q]).sum();
                assert!((g[p * k + q] - naive).abs() < 1e-2 * naive.abs().max(1.0));
            }
        }
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .map(|pool| pool.install(|| gram(&f, k)))
            .unwrap_or_else(|_| g.clone());
        assert_eq!(g, one_thread);
    }

    #[test]
    fn syr4_equals_four_rank_one_updates() {
        let k = 5;
        let v: Vec<Vec<f32>> = (0..4)
            .map(|r| (0..k).map(|i| (r * k + i) as f32 * 0.25 - 2.0).collect())
            .collect();
        let c = [1.0, -0.5, 2.0, 0.25];
        let mut one = vec![0.0; k * k];
        for r in 0..4 {
            syr_lower(c[r], &v[r], &mut one, k);
        }
        let mut four = vec![0.0; k * k];
        syr4_lower(c, [&v[0], &v[1], &v[2], &v[3]], &mut four, k);
        for (a, b) in one.iter().zip(&four) {
            assert!((a - b).abs() < 1e-4);
        }
    }

    #[test]
    fn cholesky_solves_larger_systems_across_panel_boundaries() {
        for k in [1, 4, 5, 13] {
            // A = MᵀM + I is SPD; check the residual of A x = b.
            let m: Vec<f64> = (0..k * k)
                .map(|i| ((i * 37 % 11) as f64 - 5.0) / 3.0)
                .collect();
            let full: Vec<f64> = (0..k * k)
                .map(|pq| {
                    let (p, q) = (pq / k, pq % k);
                    let mtm: f64 = (0..k).map(|r| m[r * k + p] * m[r * k + q]).sum();
                    mtm + if p == q { 1.0 } else { 0.0 }
                })
                .collect();
            let b: Vec<f64> = (0..k).map(|i| i as f64 - 2.5).collect();
            let (mut a, mut x) = (full.clone(), b.clone());
            cholesky_solve(&mut a, &mut x, k);
            for p in 0..k {
                let ax: f64 = (0..k).map(|q| full[p * k + q] * x[q]).sum();
                assert!((ax - b[p]).abs() < 1e-9, "k={k} row {p}: {ax} vs {}", b[p]);
            }
        }
    }

    #[test]
    fn cholesky_solves_spd_system() {
        // A = [[4,2,0],[2,5,1],[0,1,3]], x = [1,-2,3] -> b = A x.
        let full = [4.0, 2.0, 0.0, 2.0, 5.0, 1.0, 0.0, 1.0, 3.0];
        let x = [1.0, -2.0, 3.0];
        let mut b: Vec<f64> = (0..3)
            .map(|i| (0..3).map(|j| full[i * 3 + j] * x[j]).sum())
            .collect();
        let mut a = full.to_vec();
        cholesky_solve(&mut a, &mut b, 3);
        for (got, want) in b.iter().zip(x) {
            assert!((got - want).abs() < 1e-12);
        }
    }
}
