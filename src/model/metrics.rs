//! Ranking metrics, exactly as `evaluation.md` defines them: binary gain, and both the
//! ideal DCG and the recall denominator capped at `min(k, |relevant|)` so that a user
//! with more relevant items than slots can still score 1.
//!
//! All three return 0 for an empty `relevant` set or `k == 0` (such users are not
//! evaluated by the protocol; returning 0 rather than NaN keeps averages finite).

use std::collections::HashSet;

/// Normalised discounted cumulative gain of the first `k` entries of `ranked`.
pub fn ndcg_at_k(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> f64 {
    let ideal_len = k.min(relevant.len());
    if ideal_len == 0 {
        return 0.0;
    }
    let discount = |rank: usize| 1.0 / ((rank + 2) as f64).log2();
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, item)| relevant.contains(item))
        .map(|(rank, _)| discount(rank))
        .sum();
    let idcg: f64 = (0..ideal_len).map(discount).sum();
    dcg / idcg
}

/// Share of the relevant items found in the first `k` entries, over `min(k, |relevant|)`.
pub fn recall_at_k(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> f64 {
    let denominator = k.min(relevant.len());
    if denominator == 0 {
        return 0.0;
    }
    hits(ranked, relevant, k) as f64 / denominator as f64
}

/// 1 if any relevant item is in the first `k` entries, else 0.
pub fn hit_at_k(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> f64 {
    if hits(ranked, relevant, k) > 0 {
        1.0
    } else {
        0.0
    }
}

fn hits(ranked: &[u32], relevant: &HashSet<u32>, k: usize) -> usize {
    ranked
        .iter()
        .take(k)
        .filter(|item| relevant.contains(item))
        .count()
}

/// The protocol's summary figures, each averaged over the evaluated users.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quality {
    /// Mean NDCG@10.
    pub ndcg_at_10: f64,
    /// Mean Recall@20.
    pub recall_at_20: f64,
    /// Mean HR@10 (share of users with at least one hit in the top 10).
    pub hr_at_10: f64,
    /// Catalog coverage@10: distinct items in the evaluated users' top 10s, over the items
    /// seen in train.
    #[serde(default)]
    pub coverage_at_10: f64,
    /// Number of evaluated users.
    pub users: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[u32]) -> HashSet<u32> {
        items.iter().copied().collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn ndcg_hand_computed() {
        // Hits at ranks 1 and 3 of 3 relevant items, k = 5:
        // DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) + 1/2.
        let ranked = [7, 1, 8, 2, 3];
        let idcg = 1.0 + 1.0 / 3f64.log2() + 0.5;
        assert!(close(ndcg_at_k(&ranked, &set(&[7, 8, 9]), 5), 1.5 / idcg));
        // Ideal DCG is capped at k: 3 relevant, k = 2, hit only at rank 2.
        let idcg2 = 1.0 + 1.0 / 3f64.log2();
        assert!(close(
            ndcg_at_k(&ranked, &set(&[1, 50, 60]), 2),
            (1.0 / 3f64.log2()) / idcg2
        ));
        // Perfect ranking scores 1; hits beyond k do not count.
        assert!(close(ndcg_at_k(&ranked, &set(&[7, 1]), 2), 1.0));
        assert!(close(ndcg_at_k(&ranked, &set(&[3]), 4), 0.0));
        assert!(close(ndcg_at_k(&ranked, &set(&[]), 4), 0.0));
        assert!(close(ndcg_at_k(&ranked, &set(&[7]), 0), 0.0));
    }

    #[test]
    fn recall_uses_capped_denominator() {
        let ranked = [4, 5, 6, 7];
        // 2 hits in top 3, 5 relevant: denominator min(3, 5) = 3.
        assert!(close(
            recall_at_k(&ranked, &set(&[4, 6, 10, 11, 12]), 3),
            2.0 / 3.0
        ));
        // 1 hit, 2 relevant, k = 4: denominator 2.
        assert!(close(recall_at_k(&ranked, &set(&[7, 99]), 4), 0.5));
        assert!(close(recall_at_k(&ranked, &set(&[7]), 3), 0.0));
    }

    #[test]
    fn hit_rate() {
        let ranked = [4, 5, 6];
        assert!(close(hit_at_k(&ranked, &set(&[6, 9]), 3), 1.0));
        assert!(close(hit_at_k(&ranked, &set(&[6, 9]), 2), 0.0));
        assert!(close(hit_at_k(&[], &set(&[6]), 10), 0.0));
    }
}
