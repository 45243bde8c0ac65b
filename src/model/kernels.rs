//! The two hot loops of a conjugate-gradient row solve, with explicit AVX-512 / AVX2+FMA
//! versions picked at run time.
//!
//! Without `-C target-cpu`, rustc targets baseline x86-64, so the portable loops of
//! `linalg` only ever use 4-wide SSE2, and a dot product's single vector accumulator makes
//! them latency-bound. Profiles put most of an ALS fit in these two loops, so they get
//! hand-written wide versions (the way BLAS-backed implementations get them for free);
//! the portable loops stay as the fallback and as the reference the tests compare with.

use super::linalg::{axpy, dot, symv};
use super::simd::{cpu, Isa};

impl Isa {
    /// The widest version of the CG kernels this CPU runs for `k` factors.
    pub(super) fn for_factors(k: usize) -> Isa {
        Isa::widest(|isa| isa.fits(k))
    }

    /// Whether this CPU has `self`'s features and `k` is a multiple of its lane count (the
    /// wide loops have no tail).
    pub(super) fn fits(self, k: usize) -> bool {
        match self {
            Isa::Avx512 => k.is_multiple_of(16) && cpu().avx512f,
            Isa::Avx2 => k.is_multiple_of(8) && cpu().avx2_fma,
            Isa::Portable => true,
        }
    }

    /// `out = G v` for the symmetric, fully stored row-major `k×k` matrix `g`.
    pub(super) fn symv(self, g: &[f32], v: &[f32], out: &mut [f32]) {
        let k = out.len();
        assert!(g.len() == k * k && v.len() == k, "symv shapes");
        match self {
            // SAFETY: `fits` checked that the CPU has the features and that `k` is a multiple
            // of the lane count; the slices were checked to be k×k and k long.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if self.fits(k) => unsafe { x86::symv_avx512(g, v, out) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 if self.fits(k) => unsafe { x86::symv_avx2(g, v, out) },
            _ => symv(g, v, out, k),
        }
    }

    /// `out += Σ_j (a0 + a1·w_j + b·w_j·(y_j · v)) · y_j` over the rows `y_j` of `fixed`
    /// named by `idx`: the observed-entries part of `A v` (a0 = a1 = 0, b = α) and of
    /// the residual `b − A x` (a0 = 1, a1 = α, b = −α), in one pass over those rows.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn sparse_update(
        self,
        fixed: &[f32],
        idx: &[u32],
        w: &[f32],
        [a0, a1, b]: [f32; 3],
        v: &[f32],
        out: &mut [f32],
    ) {
        let k = out.len();
        assert!(v.len() == k && idx.len() == w.len(), "sparse_update shapes");
        let rows = fixed.len() / k.max(1);
        assert!(idx.iter().all(|&j| (j as usize) < rows), "row out of range");
        match self {
            // SAFETY: as in `symv`; every row index was checked against `fixed`.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if self.fits(k) => unsafe {
                x86::sparse_update_avx512(fixed, idx, w, [a0, a1, b], v, out)
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 if self.fits(k) => unsafe {
                x86::sparse_update_avx2(fixed, idx, w, [a0, a1, b], v, out)
            },
            _ => {
                for (&j, &wj) in idx.iter().zip(w) {
                    let y = &fixed[j as usize * k..(j as usize + 1) * k];
                    axpy(a0 + a1 * wj + b * wj * dot(y, v), y, out);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::super::simd::prefetch;
    use std::arch::x86_64::*;

    /// Columns per block of [`symv_avx512`]: four registers, each updated by two
    /// alternating accumulator sets, so eight independent FMA chains hide the latency.
    const BLOCK512: usize = 64;
    const BLOCK256: usize = 32;

    /// Since `g` is symmetric, `G v = Σ_q v_q · G[q, :]`: a sum of rows, so the
    /// accumulators are output lanes and no horizontal sum is needed.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn symv_avx512(g: &[f32], v: &[f32], out: &mut [f32]) {
        let k = out.len();
        let mut c = 0;
        while c + BLOCK512 <= k {
            symv_cols_avx512::<4>(g, v, out, c);
            c += BLOCK512;
        }
        while c < k {
            symv_cols_avx512::<1>(g, v, out, c);
            c += 16;
        }
    }

    /// Columns `c..c + 16·N` of `G v`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn symv_cols_avx512<const N: usize>(g: &[f32], v: &[f32], out: &mut [f32], c: usize) {
        let k = out.len();
        let gp = g.as_ptr();
        let mut even = [_mm512_setzero_ps(); N];
        let mut odd = [_mm512_setzero_ps(); N];
        let mut q = 0;
        while q + 2 <= k {
            let (ve, vo) = (_mm512_set1_ps(v[q]), _mm512_set1_ps(v[q + 1]));
            let (re, ro) = (gp.add(q * k + c), gp.add((q + 1) * k + c));
            for n in 0..N {
                even[n] = _mm512_fmadd_ps(ve, _mm512_loadu_ps(re.add(16 * n)), even[n]);
                odd[n] = _mm512_fmadd_ps(vo, _mm512_loadu_ps(ro.add(16 * n)), odd[n]);
            }
            q += 2;
        }
        if q < k {
            let ve = _mm512_set1_ps(v[q]);
            let re = gp.add(q * k + c);
            for (n, e) in even.iter_mut().enumerate() {
                *e = _mm512_fmadd_ps(ve, _mm512_loadu_ps(re.add(16 * n)), *e);
            }
        }
        for n in 0..N {
            _mm512_storeu_ps(
                out.as_mut_ptr().add(c + 16 * n),
                _mm512_add_ps(even[n], odd[n]),
            );
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn symv_avx2(g: &[f32], v: &[f32], out: &mut [f32]) {
        let k = out.len();
        let mut c = 0;
        while c + BLOCK256 <= k {
            symv_cols_avx2::<4>(g, v, out, c);
            c += BLOCK256;
        }
        while c < k {
            symv_cols_avx2::<1>(g, v, out, c);
            c += 8;
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn symv_cols_avx2<const N: usize>(g: &[f32], v: &[f32], out: &mut [f32], c: usize) {
        let k = out.len();
        let gp = g.as_ptr();
        let mut even = [_mm256_setzero_ps(); N];
        let mut odd = [_mm256_setzero_ps(); N];
        let mut q = 0;
        while q + 2 <= k {
            let (ve, vo) = (_mm256_set1_ps(v[q]), _mm256_set1_ps(v[q + 1]));
            let (re, ro) = (gp.add(q * k + c), gp.add((q + 1) * k + c));
            for n in 0..N {
                even[n] = _mm256_fmadd_ps(ve, _mm256_loadu_ps(re.add(8 * n)), even[n]);
                odd[n] = _mm256_fmadd_ps(vo, _mm256_loadu_ps(ro.add(8 * n)), odd[n]);
            }
            q += 2;
        }
        if q < k {
            let ve = _mm256_set1_ps(v[q]);
            let re = gp.add(q * k + c);
            for (n, e) in even.iter_mut().enumerate() {
                *e = _mm256_fmadd_ps(ve, _mm256_loadu_ps(re.add(8 * n)), *e);
            }
        }
        for n in 0..N {
            _mm256_storeu_ps(
                out.as_mut_ptr().add(c + 8 * n),
                _mm256_add_ps(even[n], odd[n]),
            );
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sparse_update_avx512(
        fixed: &[f32],
        idx: &[u32],
        w: &[f32],
        [a0, a1, b]: [f32; 3],
        v: &[f32],
        out: &mut [f32],
    ) {
        let k = out.len();
        let (vp, op) = (v.as_ptr(), out.as_mut_ptr());
        for (t, (&j, &wj)) in idx.iter().zip(w).enumerate() {
            prefetch_row(fixed, idx, t + PREFETCH_ROWS, k);
            let y = fixed.as_ptr().add(j as usize * k);
            let (mut s0, mut s1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
            let mut c = 0;
            while c + 32 <= k {
                s0 = _mm512_fmadd_ps(_mm512_loadu_ps(y.add(c)), _mm512_loadu_ps(vp.add(c)), s0);
                s1 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(y.add(c + 16)),
                    _mm512_loadu_ps(vp.add(c + 16)),
                    s1,
                );
                c += 32;
            }
            if c < k {
                s0 = _mm512_fmadd_ps(_mm512_loadu_ps(y.add(c)), _mm512_loadu_ps(vp.add(c)), s0);
            }
            let d = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
            let coef = _mm512_set1_ps(a0 + a1 * wj + b * wj * d);
            let mut c = 0;
            while c < k {
                let o = op.add(c);
                _mm512_storeu_ps(
                    o,
                    _mm512_fmadd_ps(coef, _mm512_loadu_ps(y.add(c)), _mm512_loadu_ps(o)),
                );
                c += 16;
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sparse_update_avx2(
        fixed: &[f32],
        idx: &[u32],
        w: &[f32],
        [a0, a1, b]: [f32; 3],
        v: &[f32],
        out: &mut [f32],
    ) {
        let k = out.len();
        let (vp, op) = (v.as_ptr(), out.as_mut_ptr());
        for (t, (&j, &wj)) in idx.iter().zip(w).enumerate() {
            prefetch_row(fixed, idx, t + PREFETCH_ROWS, k);
            let y = fixed.as_ptr().add(j as usize * k);
            let mut s = [_mm256_setzero_ps(); 4];
            let mut c = 0;
            while c + 32 <= k {
                for (n, sn) in s.iter_mut().enumerate() {
                    let at = c + 8 * n;
                    *sn = _mm256_fmadd_ps(
                        _mm256_loadu_ps(y.add(at)),
                        _mm256_loadu_ps(vp.add(at)),
                        *sn,
                    );
                }
                c += 32;
            }
            while c < k {
                s[0] = _mm256_fmadd_ps(_mm256_loadu_ps(y.add(c)), _mm256_loadu_ps(vp.add(c)), s[0]);
                c += 8;
            }
            let d = hsum256(_mm256_add_ps(
                _mm256_add_ps(s[0], s[1]),
                _mm256_add_ps(s[2], s[3]),
            ));
            let coef = _mm256_set1_ps(a0 + a1 * wj + b * wj * d);
            let mut c = 0;
            while c < k {
                let o = op.add(c);
                _mm256_storeu_ps(
                    o,
                    _mm256_fmadd_ps(coef, _mm256_loadu_ps(y.add(c)), _mm256_loadu_ps(o)),
                );
                c += 8;
            }
        }
    }

    /// How far ahead the observed rows are requested: they are scattered over the fixed
    /// factors (megabytes), so without a hint every row starts with a cache miss. Of 0, 2, 4
    /// and 8 rows ahead, four gave the fastest fit at k = 128.
    const PREFETCH_ROWS: usize = 4;

    /// Asks for row `idx[t]` of `fixed`, if there is one.
    #[inline(always)]
    fn prefetch_row(fixed: &[f32], idx: &[u32], t: usize, k: usize) {
        if let Some(&j) = idx.get(t) {
            prefetch(&fixed[j as usize * k..(j as usize + 1) * k]);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn hsum256(x: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Every version this CPU can run for `k`, the portable one included.
    fn available(k: usize) -> Vec<Isa> {
        Isa::every(|isa| isa.fits(k))
    }

    fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect()
    }

    fn close(got: &[f32], want: &[f64], what: &str) {
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= 1e-4 * (1.0 + w.abs()),
                "{what}[{i}]: {g} vs {w}"
            );
        }
    }

    #[test]
    fn the_choice_respects_lane_counts_and_the_cpu() {
        assert_eq!(Isa::for_factors(13), Isa::Portable);
        assert_ne!(Isa::for_factors(24), Isa::Avx512);
        assert_eq!(Isa::for_factors(64) == Isa::Avx512, cpu().avx512f);
        assert_eq!(Isa::for_factors(24) == Isa::Avx2, cpu().avx2_fma);
    }

    #[test]
    fn symv_matches_reference_on_every_isa() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for k in [1, 8, 13, 16, 24, 48, 64, 80, 96, 128, 136, 200, 256] {
            let m = random(&mut rng, k * k);
            let mut g = vec![0.0; k * k];
            for p in 0..k {
                for q in 0..k {
                    g[p * k + q] = m[p * k + q] + m[q * k + p];
                }
            }
            let v = random(&mut rng, k);
            let want: Vec<f64> = (0..k)
                .map(|p| {
                    (0..k)
                        .map(|q| f64::from(g[p * k + q]) * f64::from(v[q]))
                        .sum()
                })
                .collect();
            for isa in available(k) {
                let mut out = vec![f32::NAN; k];
                isa.symv(&g, &v, &mut out);
                close(&out, &want, &format!("{isa:?} k={k}"));
            }
        }
    }

    #[test]
    fn sparse_update_matches_reference_on_every_isa() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for k in [1, 8, 13, 16, 24, 64, 80, 128, 136] {
            let n_rows = 50;
            let fixed = random(&mut rng, n_rows * k);
            for nnz in [0, 1, 7, 33] {
                let idx: Vec<u32> = (0..nnz).map(|_| rng.gen_range(0..n_rows as u32)).collect();
                let w: Vec<f32> = (0..nnz).map(|_| rng.gen_range(0.5..5.0)).collect();
                let v = random(&mut rng, k);
                let start = random(&mut rng, k);
                for coefs in [[0.0, 0.0, 1.5], [1.0, 1.5, -1.5]] {
                    let mut want: Vec<f64> = start.iter().map(|&s| f64::from(s)).collect();
                    for (&j, &wj) in idx.iter().zip(&w) {
                        let y = &fixed[j as usize * k..(j as usize + 1) * k];
                        let d: f64 = y
                            .iter()
                            .zip(&v)
                            .map(|(&a, &b)| f64::from(a) * f64::from(b))
                            .sum();
                        let [a0, a1, b] = coefs.map(f64::from);
                        let c = a0 + a1 * f64::from(wj) + b * f64::from(wj) * d;
                        for (o, &yi) in want.iter_mut().zip(y) {
                            *o += c * f64::from(yi);
                        }
                    }
                    for isa in available(k) {
                        let mut out = start.clone();
                        isa.sparse_update(&fixed, &idx, &w, coefs, &v, &mut out);
                        close(&out, &want, &format!("{isa:?} k={k} nnz={nnz}"));
                    }
                }
            }
        }
    }
}
