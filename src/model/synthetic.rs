//! Synthetic interaction logs with planted structure, for tests and benches.
//!
//! Real logs cannot ship with the project (MovieLens forbids redistribution), so the
//! tests need data whose right answer is known: items fall into clusters, each user
//! draws mostly from one cluster, and popularity follows a power law across all items
//! so that popularity is a real (but weaker) baseline.

use super::LogEvent;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Weight of a synthetic click (the service's confidence weight for a click).
pub const CLICK_WEIGHT: f32 = 1.0;
/// Weight of a synthetic purchase.
pub const PURCHASE_WEIGHT: f32 = 4.0;
/// Share of a user's events drawn from their own cluster; the rest follow global popularity.
const IN_CLUSTER: f64 = 0.8;
/// Zipf exponent of item popularity.
const ZIPF: f64 = 0.9;
/// Draws per event before a repeated item is accepted (users mostly see distinct items,
/// like ratings, but a tiny cluster must not loop forever).
const MAX_REDRAWS: usize = 16;
/// Start of the synthetic log (2024-01-01T00:00:00Z), so timestamps look real.
const T0: i64 = 1_704_067_200;

/// The planted cluster of an item.
pub fn item_cluster(item: u32, n_clusters: usize) -> usize {
    item as usize % n_clusters
}

/// The planted cluster (taste) of a user.
pub fn user_cluster(user: u32, n_clusters: usize) -> usize {
    user as usize % n_clusters
}

/// A log of `n_users × events_per_user` events with planted taste clusters.
///
/// Item `i` belongs to cluster `i % n_clusters` and user `u` prefers cluster
/// `u % n_clusters` (see [`item_cluster`], [`user_cluster`]). Each event is drawn from
/// the user's cluster with probability 0.8, else from the whole catalogue; within
/// either pool items are drawn by a Zipf(0.9) popularity over a random permutation of
/// the items, so popularity is uncorrelated with the index. In-cluster events are
/// purchases more often (40% vs 10%), as real purchases signal taste more than clicks.
/// Each user's events are in strictly increasing time, users interleaved over 30 days.
/// The output is sorted by timestamp, like a log, and is a pure function of the arguments.
///
/// # Panics
/// If `n_clusters == 0` or `n_items < n_clusters`.
pub fn planted(
    n_users: usize,
    n_items: usize,
    n_clusters: usize,
    events_per_user: usize,
    seed: u64,
) -> Vec<LogEvent> {
    assert!(
        n_clusters > 0 && n_items >= n_clusters,
        "need 1 <= n_clusters <= n_items"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rank: Vec<u32> = (0..n_items as u32).collect();
    rank.shuffle(&mut rng);
    let zipf = |item: u32| 1.0 / f64::from(rank[item as usize] + 1).powf(ZIPF);

    let global = Pool::new((0..n_items as u32).collect(), zipf);
    let clusters: Vec<Pool> = (0..n_clusters)
        .map(|c| {
            Pool::new(
                (c as u32..n_items as u32).step_by(n_clusters).collect(),
                zipf,
            )
        })
        .collect();

    let month = 30 * 86_400;
    let mut events = Vec::with_capacity(n_users * events_per_user);
    let mut seen: Vec<u32> = Vec::with_capacity(events_per_user);
    for u in 0..n_users as u32 {
        let own = &clusters[user_cluster(u, n_clusters)];
        let mut ts = T0 + rng.gen_range(0..month);
        seen.clear();
        for _ in 0..events_per_user {
            let in_cluster = rng.gen_bool(IN_CLUSTER);
            let mut item = 0;
            for _ in 0..MAX_REDRAWS {
                item = if in_cluster { own } else { &global }.sample(&mut rng);
                if !seen.contains(&item) {
                    break;
                }
            }
            seen.push(item);
            let purchase = rng.gen_bool(if in_cluster { 0.4 } else { 0.1 });
            events.push(LogEvent {
                user: u,
                item,
                weight: if purchase {
                    PURCHASE_WEIGHT
                } else {
                    CLICK_WEIGHT
                },
                ts,
                purchase,
            });
            ts += rng.gen_range(1..4 * 3600);
        }
    }
    // Stable: a user's events keep their order even on equal timestamps.
    events.sort_by_key(|e| e.ts);
    events
}

/// `n × k` factors drawn uniformly from `[-1, 1) / sqrt(k)`, row-major: a stand-in for a
/// fitted model where only shapes matter (serving benches, round-trip tests).
pub fn random_factors(n: usize, k: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let scale = 1.0 / (k.max(1) as f32).sqrt();
    (0..n * k).map(|_| rng.gen_range(-scale..scale)).collect()
}

/// Items with a sampler over their popularity weights (inverse CDF by binary search).
struct Pool {
    items: Vec<u32>,
    cumulative: Vec<f64>,
}

impl Pool {
    fn new(items: Vec<u32>, weight: impl Fn(u32) -> f64) -> Self {
        let mut total = 0.0;
        let cumulative = items
            .iter()
            .map(|&i| {
                total += weight(i);
                total
            })
            .collect();
        Pool { items, cumulative }
    }

    fn sample(&self, rng: &mut impl Rng) -> u32 {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let u = rng.gen::<f64>() * total;
        let at = self.cumulative.partition_point(|&c| c <= u);
        self.items[at.min(self.items.len() - 1)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_clustered() {
        let a = planted(200, 100, 5, 20, 7);
        assert_eq!(a, planted(200, 100, 5, 20, 7));
        assert_ne!(a, planted(200, 100, 5, 20, 8));
        assert_eq!(a.len(), 200 * 20);
        assert!(a.windows(2).all(|w| w[0].ts <= w[1].ts));
        let own = a
            .iter()
            .filter(|e| item_cluster(e.item, 5) == user_cluster(e.user, 5))
            .count();
        // 80% in-cluster plus a fifth of the 20% global draws.
        let share = own as f64 / a.len() as f64;
        assert!((0.78..0.90).contains(&share), "in-cluster share {share}");
    }
}
