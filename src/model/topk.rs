//! Partial selection of the best-scoring indices.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A candidate ordered so that the *worst* one is the greatest: the max-heap's top is
/// then the entry to evict. Worse = lower score, or equal score and higher index.
#[derive(Clone, Copy, Debug)]
struct Worst(f32, u32);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        // NaN never enters (see `TopK::push`), so `Equal` only stands for real ties.
        other
            .0
            .partial_cmp(&self.0)
            .unwrap_or(Ordering::Equal)
            .then(self.1.cmp(&other.1))
    }
}

/// Streaming top-k: keeps the `k` best `(index, score)` pairs seen so far.
///
/// Best = highest score, ties broken by lower index; NaN scores are never kept.
/// Each push is O(log k), and O(1) for a candidate that cannot enter.
#[derive(Clone, Debug)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Worst>,
}

impl TopK {
    /// An empty selection of at most `k` entries.
    pub fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k.saturating_add(1).min(1 << 16)),
        }
    }

    /// Whether a candidate with this score and index would be kept right now.
    #[inline]
    pub fn would_keep(&self, index: u32, score: f32) -> bool {
        if score.is_nan() || self.k == 0 {
            return false;
        }
        if self.heap.len() < self.k {
            return true;
        }
        self.heap
            .peek()
            .is_some_and(|worst| Worst(score, index) < *worst)
    }

    /// Offers a candidate.
    #[inline]
    pub fn push(&mut self, index: u32, score: f32) {
        if !self.would_keep(index, score) {
            return;
        }
        if self.heap.len() == self.k {
            self.heap.pop();
        }
        self.heap.push(Worst(score, index));
    }

    /// The kept entries, best first.
    pub fn into_sorted_vec(self) -> Vec<(u32, f32)> {
        // Ascending by `Worst` order is best-first.
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|Worst(s, i)| (i, s))
            .collect()
    }
}

/// The k highest-scoring indices for which `keep(i)` is true, sorted by descending score
/// (ties by lower index first); NaN never ranks. O(n log k).
///
/// `keep` is only consulted for candidates that would enter the current top k, so an
/// expensive filter (a hash lookup of already-seen items) costs little on large catalogues.
pub fn top_k(scores: &[f32], k: usize, keep: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
    let mut top = TopK::new(k);
    for (i, &s) in scores.iter().enumerate() {
        let i = i as u32;
        if top.would_keep(i, s) && keep(i) {
            top.push(i, s);
        }
    }
    top.into_sorted_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn by_full_sort(scores: &[f32], k: usize, keep: impl Fn(u32) -> bool) -> Vec<(u32, f32)> {
        let mut all: Vec<(u32, f32)> = scores
            .iter()
            .enumerate()
            .map(|(i, &s)| (i as u32, s))
            .filter(|&(i, s)| !s.is_nan() && keep(i))
            .collect();
        all.sort_by(|a, b| {
            b.1.partial_cmp(&a.1)
                .unwrap_or(Ordering::Equal)
                .then(a.0.cmp(&b.0))
        });
        all.truncate(k);
        all
    }

    #[test]
    fn ties_break_by_lower_index_and_nan_never_ranks() {
        let scores = [1.0, f32::NAN, 3.0, 1.0, 3.0, -1.0];
        assert_eq!(
            top_k(&scores, 4, |_| true),
            vec![(2, 3.0), (4, 3.0), (0, 1.0), (3, 1.0)]
        );
        assert_eq!(top_k(&scores, 2, |i| i != 2), vec![(4, 3.0), (0, 1.0)]);
        assert_eq!(top_k(&scores, 0, |_| true), vec![]);
        assert_eq!(top_k(&[f32::NAN], 3, |_| true), vec![]);
        assert_eq!(top_k(&scores, 100, |_| true).len(), 5);
    }

    proptest! {
        #[test]
        fn matches_full_sort(
            // A small value range forces many ties; NaN is mixed in on purpose.
            raw in proptest::collection::vec(prop_oneof![9 => (-5i32..5).prop_map(|v| v as f32), 1 => Just(f32::NAN)], 0..300),
            k in 0usize..40,
            modulus in 1u32..5,
        ) {
            let keep = |i: u32| i % modulus != 1;
            prop_assert_eq!(top_k(&raw, k, keep), by_full_sort(&raw, k, keep));
        }
    }
}
