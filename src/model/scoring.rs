//! Exact top-k of iALS scores without scoring every item in f32.
//!
//! A request ranks every item by `y_i · x`. With 20,000 items and 128 factors the f32 item
//! matrix is 10 MB: streaming it from L3 dominates a request. Here a pass over an 8-bit copy
//! (a quarter of the bytes, integer dot products) gives each item an approximate score and a
//! rigorous error bound; only the items whose upper bound reaches the k-th best lower bound can
//! be in the top k, and only those (a few hundred) are scored with the very f32 kernel of
//! [`AlsModel::score_into`]. The result is therefore identical to ranking the full f32 scores.
//!
//! The bound: with `ŷ_i = s_i q_i` (per-item scale, 8-bit codes) and `x̂ = t p` (the user, with
//! 15-bit codes), `|y_i·x − ŷ_i·x̂| ≤ ‖y_i − ŷ_i‖‖x‖ + ‖ŷ_i‖‖x − x̂‖` (Cauchy–Schwarz twice), plus a
//! margin for the rounding of the f32 reference dot product and of the bound itself.

use super::int8::{integer_dots, LANES};
use super::linalg::dot;
use super::simd::{cpu, prefetch};
use super::topk::{top_k, TopK};
use super::AlsModel;

/// An 8-bit copy of the item factors, with what the error bound needs per item.
#[derive(Clone, Debug, Default)]
pub struct Quantized {
    k: usize,
    /// `k` rounded up to [`LANES`]; the padding codes are 0.
    stride: usize,
    codes: Vec<i8>,
    /// `s_i`: `y_i ≈ s_i · codes_i`.
    scale: Vec<f32>,
    /// `‖y_i − s_i codes_i‖₂`, rounded up; infinite for a row with a non-finite factor, so
    /// that such an item is always scored exactly and never sets the threshold.
    residual: Vec<f32>,
    /// `‖s_i codes_i‖₂`, rounded up.
    norm: Vec<f32>,
    /// Up to [`LEADERS`] items, largest `norm` first: the items whose scores reach furthest
    /// from zero either way, so their best lower bounds seed the threshold near its final value.
    leaders: Vec<u32>,
}

/// How many large-norm items are kept to seed a top-k threshold (see [`Quantized::leaders`]).
const LEADERS: usize = 4_096;

/// Rounds a non-negative f64 up to an f32 that is not smaller.
fn up(v: f64) -> f32 {
    let f = v as f32;
    if f64::from(f) < v {
        f.next_up()
    } else {
        f
    }
}

/// Symmetric quantisation of one vector to integers in `[-levels, levels]`:
/// returns `scale` with `v ≈ scale · codes`.
fn quantize_into<T: TryFrom<i32>>(v: &[f32], levels: i32, codes: &mut [T]) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let level = |c: f32| T::try_from(c as i32).unwrap_or_else(|_| unreachable!("clamped"));
    if max == 0.0 || !max.is_finite() {
        codes.iter_mut().for_each(|c| *c = level(0.0));
        return 0.0;
    }
    let scale = max / levels as f32;
    let bound = levels as f32;
    for (c, &x) in codes.iter_mut().zip(v) {
        // NaN becomes 0 (`as` saturates); such rows get an infinite bound anyway.
        *c = level((x / scale).round().clamp(-bound, bound));
    }
    scale
}

impl Quantized {
    /// Quantises row-major `n × k` factors.
    pub fn new(factors: &[f32], k: usize) -> Self {
        let stride = k.div_ceil(LANES) * LANES;
        let n = factors.len().checked_div(k).unwrap_or(0);
        let mut q = Quantized {
            k,
            stride,
            codes: vec![0; n * stride],
            scale: Vec::with_capacity(n),
            residual: Vec::with_capacity(n),
            norm: Vec::with_capacity(n),
            leaders: Vec::new(),
        };
        for (row, codes) in factors
            .chunks_exact(k.max(1))
            .zip(q.codes.chunks_exact_mut(stride))
        {
            let s = quantize_into(row, 127, &mut codes[..k]);
            let (mut resid, mut norm) = (0.0f64, 0.0f64);
            for (&y, &c) in row.iter().zip(&codes[..k]) {
                let approx = f64::from(s) * f64::from(c);
                resid += (f64::from(y) - approx).powi(2);
                norm += approx * approx;
            }
            let finite = row.iter().all(|y| y.is_finite());
            q.scale.push(s);
            q.residual.push(if finite {
                up(resid.sqrt())
            } else {
                f32::INFINITY
            });
            q.norm.push(up(norm.sqrt()));
        }
        let mut by_norm: Vec<u32> = (0..n as u32).collect();
        let desc = |a: &u32, b: &u32| q.norm[*b as usize].total_cmp(&q.norm[*a as usize]);
        if n > LEADERS {
            by_norm.select_nth_unstable_by(LEADERS - 1, desc);
            by_norm.truncate(LEADERS);
        }
        by_norm.sort_unstable_by(desc);
        q.leaders = by_norm;
        q
    }

    pub fn n_items(&self) -> usize {
        self.scale.len()
    }

    /// Approximate scores of every item for `x`, and each one's error bound against the f32
    /// reference `dot(y_i, x)`.
    pub fn bounds(&self, x: &[f32], approx: &mut Vec<f32>, error: &mut Vec<f32>) {
        assert_eq!(x.len(), self.k, "user vector length != factors");
        let n = self.n_items();
        approx.clear();
        approx.resize(n, 0.0);
        error.clear();
        error.resize(n, 0.0);
        // The user gets as many levels as keep every integer sum within i32 (15 bits up to
        // k = 1032): its share of the error is then negligible next to the items' 8 bits.
        let levels = (i64::from(i32::MAX) / (127 * self.k.max(1) as i64)).clamp(1, 16_383) as i32;
        let mut p16 = vec![0i16; self.stride];
        let t = quantize_into(x, levels, &mut p16[..self.k]);
        let (norm_x, dist_x) = {
            let (mut nx, mut dx) = (0.0f64, 0.0f64);
            for (&xi, &c) in x.iter().zip(&p16) {
                nx += f64::from(xi).powi(2);
                dx += (f64::from(xi) - f64::from(t) * f64::from(c)).powi(2);
            }
            (up(nx.sqrt()), up(dx.sqrt()))
        };
        if !x.iter().all(|v| v.is_finite()) {
            // The reference scores are NaN or infinite: leave every item to it.
            approx.fill(0.0);
            error.fill(f32::INFINITY);
            return;
        }
        integer_dots(&self.codes, self.stride, &p16, approx);
        // Rounding of the f32 reference dot product: at most γ_k Σ|y_j x_j| ≤ γ_k ‖y‖‖x‖
        // with γ_k ≈ k·2⁻²⁴; `EPSILON` is 2⁻²³, so this doubles it. The 1.01 factor covers
        // the rounding of this bound's own arithmetic and of `a` (a few ulps each).
        let gamma = (self.k as f32 + 2.0) * f32::EPSILON;
        // Zipped rather than indexed: without bounds checks LLVM vectorises the loop.
        let per_item = self.scale.iter().zip(&self.residual).zip(&self.norm);
        for ((a, e), ((&s, &r), &m)) in approx.iter_mut().zip(error.iter_mut()).zip(per_item) {
            *a *= s * t;
            let bound = r * norm_x + m * dist_x + gamma * ((m + r) * norm_x + a.abs());
            *e = bound * 1.01 + f32::MIN_POSITIVE;
        }
    }
}

impl AlsModel {
    /// Every item's score for `user`, ready for [`Scores::top_k`].
    pub fn scores<'m>(&'m self, user: &'m [f32]) -> Scores<'m> {
        let k = self.params.factors;
        let q = self
            .quantized
            .get_or_init(|| Box::new(Quantized::new(&self.item_factors, k)));
        let (mut approx, mut error) = (Vec::new(), Vec::new());
        q.bounds(user, &mut approx, &mut error);
        Scores::Bounded {
            model: self,
            user,
            approx,
            error,
            leaders: &q.leaders,
        }
    }
}

/// `dot(y_i, x)` for the given items: the very kernel of [`AlsModel::score_into`], so the
/// scores are bit-identical to it.
///
/// The candidates' rows are scattered over a matrix far larger than L2, so each row is a
/// handful of cache misses; prefetching a few candidates ahead overlaps them.
fn exact_scores(model: &AlsModel, x: &[f32], items: &[u32]) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if cpu().avx2_fma {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        return unsafe { exact_scores_avx2(model, x, items) };
    }
    exact_scores_portable(model, x, items)
}

/// The same loop compiled for AVX2, so that `dot` runs 8 lanes wide. LLVM fuses no
/// multiply-add without being asked, so the bits are those of the portable build.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exact_scores_avx2(model: &AlsModel, x: &[f32], items: &[u32]) -> Vec<f32> {
    exact_scores_portable(model, x, items)
}

#[inline(always)]
fn exact_scores_portable(model: &AlsModel, x: &[f32], items: &[u32]) -> Vec<f32> {
    const AHEAD: usize = 4;
    items
        .iter()
        .take(AHEAD)
        .for_each(|&i| prefetch(model.item_vector(i)));
    items
        .iter()
        .enumerate()
        .map(|(c, &i)| {
            if let Some(&ahead) = items.get(c + AHEAD) {
                prefetch(model.item_vector(ahead));
            }
            dot(model.item_vector(i), x)
        })
        .collect()
}

/// Whether an item with approximate score `a` and error bound `e` may score `threshold` or
/// more. A NaN bound (never produced for finite factors) may, so that its item is scored exactly.
#[inline(always)]
fn may_reach(a: f32, e: f32, threshold: f32) -> bool {
    let upper = a + e;
    (upper >= threshold) | upper.is_nan()
}

/// One pass over every item's bounds. Returns a value at most the `k`-th largest lower bound
/// `approx − error` among the items `keep` allows (−∞ when fewer than `k` are allowed): the
/// `k`-th best exact score is at least this, so an item whose upper bound falls short of it
/// cannot be in the top `k`. Also returns every item whose upper bound reached the running
/// value of that threshold when the item was passed: the threshold only rises, so these
/// include every item that reaches the final one, and the caller need not pass over all items
/// again to find them.
///
/// Plain f32 comparisons and a buffer cut back to the best `k` whenever it holds `2k`
/// (linear time), instead of a heap: this loop runs over every item. Values equal to the
/// current cut are skipped, which can only lower the result, so it stays a valid threshold.
fn threshold_and_candidates(
    approx: &[f32],
    error: &[f32],
    k: usize,
    seed: f32,
    keep: impl Fn(u32) -> bool,
) -> (f32, Vec<u32>) {
    let desc = |a: &f32, b: &f32| b.total_cmp(a);
    let mut buf: Vec<f32> = Vec::with_capacity(2 * k);
    let mut candidates: Vec<u32> = Vec::with_capacity(4 * k);
    let mut cut = seed;
    // Once the cut has risen, nearly every block of items lies wholly below it: one branch-free
    // (vectorised) test per block skips those, instead of two branches per item. Errors are
    // never negative, so a lower bound above the cut implies an upper bound above it.
    const BLOCK: usize = 16;
    for (b, (a, e)) in approx.chunks(BLOCK).zip(error.chunks(BLOCK)).enumerate() {
        let reaches = a
            .iter()
            .zip(e)
            .fold(false, |r, (&a, &e)| r | may_reach(a, e, cut));
        if !reaches {
            continue;
        }
        for (j, (&a, &e)) in a.iter().zip(e).enumerate() {
            let i = (b * BLOCK + j) as u32;
            if may_reach(a, e, cut) {
                candidates.push(i);
            }
            let lower = a - e;
            // False for NaN: a NaN bound never raises the threshold.
            if lower > cut && keep(i) {
                buf.push(lower);
                if buf.len() == 2 * k {
                    buf.select_nth_unstable_by(k - 1, desc);
                    buf.truncate(k);
                    cut = buf[k - 1];
                }
            }
        }
    }
    if buf.len() < k {
        return (seed, candidates);
    }
    let kth = *buf.select_nth_unstable_by(k - 1, desc).1;
    (kth.max(seed), candidates)
}

/// Leaders examined per item asked for, to seed the threshold.
const SEED_PER_K: usize = 4;

/// The `k`-th largest lower bound among `leaders` that `keep` allows (−∞ when fewer than `k`
/// are allowed): the `k`-th best exact score over all items is at least this, so the full pass
/// can start its threshold here instead of at −∞, and skip most items from the first block on.
fn leaders_threshold(
    approx: &[f32],
    error: &[f32],
    leaders: &[u32],
    k: usize,
    keep: impl Fn(u32) -> bool,
) -> f32 {
    let mut lower: Vec<f32> = leaders
        .iter()
        .filter_map(|&i| {
            let l = approx[i as usize] - error[i as usize];
            // NaN never sets a threshold (as in the full pass).
            (!l.is_nan() && keep(i)).then_some(l)
        })
        .collect();
    if lower.len() < k {
        return f32::NEG_INFINITY;
    }
    *lower.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a)).1
}

/// Every item's score for one user, in the form that ranks fastest.
pub enum Scores<'m> {
    /// Every item's exact score.
    Exact(Vec<f32>),
    /// iALS: approximate scores with error bounds; exact scores are computed on demand.
    Bounded {
        model: &'m AlsModel,
        user: &'m [f32],
        approx: Vec<f32>,
        error: Vec<f32>,
        /// [`Quantized::leaders`].
        leaders: &'m [u32],
    },
}

impl Scores<'_> {
    /// The `k` best items that `keep` allows, best first, ties by lower index: the same list
    /// as [`top_k`] over the exact scores.
    pub fn top_k(&self, k: usize, keep: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        let (model, user, approx, error, leaders) = match self {
            Scores::Exact(all) => return top_k(all, k, keep),
            Scores::Bounded {
                model,
                user,
                approx,
                error,
                leaders,
            } => (*model, *user, approx, error, *leaders),
        };
        if k == 0 {
            return Vec::new();
        }
        let seed = leaders_threshold(
            approx,
            error,
            &leaders[..leaders.len().min(SEED_PER_K * k)],
            k,
            &keep,
        );
        let (threshold, mut candidates) = threshold_and_candidates(approx, error, k, seed, &keep);
        candidates.retain(|&i| may_reach(approx[i as usize], error[i as usize], threshold));
        let mut top = TopK::new(k);
        for (i, s) in candidates
            .iter()
            .zip(exact_scores(model, user, &candidates))
        {
            if top.would_keep(*i, s) && keep(*i) {
                top.push(*i, s);
            }
        }
        top.into_sorted_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{synthetic::random_factors, AlsParams};

    fn model(n: usize, k: usize, seed: u64) -> AlsModel {
        let params = AlsParams {
            factors: k,
            ..AlsParams::default()
        };
        AlsModel::from_item_factors(params, random_factors(n, k, seed))
    }

    fn reference(m: &AlsModel, x: &[f32], k: usize, keep: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        let mut all = vec![0.0; m.n_items];
        m.score_into(x, &mut all);
        top_k(&all, k, keep)
    }

    #[test]
    fn exact_scores_are_the_bits_of_score_into() {
        for (n, k, seed) in [(2_000, 128, 1), (300, 13, 2), (100, 1, 3)] {
            let m = model(n, k, seed);
            let x: Vec<f32> = random_factors(1, k, seed + 10);
            let mut all = vec![0.0; n];
            m.score_into(&x, &mut all);
            let items: Vec<u32> = (0..n as u32).rev().step_by(3).collect();
            let want: Vec<u32> = items.iter().map(|&i| all[i as usize].to_bits()).collect();
            let got: Vec<u32> = exact_scores(&m, &x, &items)
                .iter()
                .map(|s| s.to_bits())
                .collect();
            assert_eq!(got, want, "k {k}");
        }
    }

    #[test]
    fn error_bound_holds_for_every_item() {
        // 1100 factors: fewer user levels, so that the integer sums still fit i32.
        for (k, seed) in [(1, 1), (7, 2), (32, 3), (128, 4), (200, 5), (1100, 6)] {
            let m = model(500, k, seed);
            let q = Quantized::new(&m.item_factors, k);
            let x: Vec<f32> = random_factors(3, k, seed + 100)[..k].to_vec();
            let (mut approx, mut error) = (Vec::new(), Vec::new());
            q.bounds(&x, &mut approx, &mut error);
            let mut exact = vec![0.0; m.n_items];
            m.score_into(&x, &mut exact);
            for i in 0..m.n_items {
                let gap = (exact[i] - approx[i]).abs();
                assert!(
                    gap <= error[i],
                    "k {k} item {i}: |{} - {}| > {}",
                    exact[i],
                    approx[i],
                    error[i]
                );
                // Tight enough to prune: within a few percent of the score scale.
                let scale = dot(m.item_vector(i as u32), m.item_vector(i as u32)).sqrt()
                    * dot(&x, &x).sqrt();
                assert!(
                    error[i] <= 0.05 * scale,
                    "k {k} item {i}: bound {} vs scale {scale}",
                    error[i]
                );
            }
        }
    }

    #[test]
    fn bounded_top_k_equals_the_f32_reference() {
        for (n, k, seed) in [(2_000, 128, 1), (3_000, 16, 2), (50, 5, 3)] {
            let m = model(n, k, seed);
            let users = random_factors(20, k, seed + 50);
            for x in users.chunks_exact(k) {
                let scores = m.scores(x);
                for (len, modulus) in [(256, 3), (32, 7), (10, 1), (0, 1), (n + 5, 2)] {
                    let keep = |i: u32| i % modulus != 1;
                    assert_eq!(scores.top_k(len, keep), reference(&m, x, len, keep));
                }
            }
        }
    }

    #[test]
    fn ties_zero_users_and_non_finite_factors_follow_the_reference() {
        // Duplicate rows tie exactly: the lower index must win, as in `top_k`.
        let k = 8;
        let mut f = random_factors(300, k, 9);
        let copy = f[5 * k..6 * k].to_vec();
        f[200 * k..201 * k].copy_from_slice(&copy);
        f[7 * k] = f32::NAN;
        let m = AlsModel::from_item_factors(
            AlsParams {
                factors: k,
                ..AlsParams::default()
            },
            f,
        );
        let x = m.item_vector(5).to_vec();
        assert_eq!(
            m.scores(&x).top_k(40, |_| true),
            reference(&m, &x, 40, |_| true)
        );
        let zero = vec![0.0; k];
        assert_eq!(
            m.scores(&zero).top_k(12, |_| true),
            reference(&m, &zero, 12, |_| true)
        );
        let nan = vec![f32::NAN; k];
        assert_eq!(m.scores(&nan).top_k(12, |_| true), vec![]);
    }

    #[test]
    fn the_leaders_seed_is_a_valid_threshold_whatever_the_filter() {
        let (n, k) = (3_000, 32);
        let m = model(n, k, 7);
        let users = random_factors(10, k, 70);
        for x in users.chunks_exact(k) {
            let scores = m.scores(x);
            let Scores::Bounded {
                approx,
                error,
                leaders,
                ..
            } = &scores
            else {
                unreachable!("an iALS model ranks through the bounds")
            };
            let top = 20;
            let led: std::collections::HashSet<u32> =
                leaders[..SEED_PER_K * top].iter().copied().collect();
            // Everything, only the leaders, everything but the leaders.
            let filters: [&dyn Fn(u32) -> bool; 3] =
                [&|_| true, &|i| led.contains(&i), &|i| !led.contains(&i)];
            for keep in filters {
                let seed =
                    leaders_threshold(approx, error, &leaders[..SEED_PER_K * top], top, keep);
                let mut lower: Vec<f32> = (0..n as u32)
                    .filter(|&i| keep(i))
                    .map(|i| approx[i as usize] - error[i as usize])
                    .collect();
                lower.sort_by(|a, b| b.total_cmp(a));
                assert!(
                    seed <= lower[top - 1],
                    "seed {seed} above the k-th lower bound"
                );
                assert_eq!(scores.top_k(top, keep), reference(&m, x, top, keep));
            }
        }
    }
}
