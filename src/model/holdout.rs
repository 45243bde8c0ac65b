//! The per-user temporal holdout and the offline scoring protocol of `evaluation.md`.

use super::metrics::{hit_at_k, ndcg_at_k, recall_at_k, Quality};
use super::topk::top_k;
use super::{Interactions, LogEvent};
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};

/// Per-user temporal holdout.
///
/// For every user with `>= min_events` events, the last `n_test = round(fraction · n)`
/// of their `n` events (ordered by ts, then item index, then log position) are test; the
/// rest, and all events of smaller users, are train. Test events on items never seen
/// in train are dropped. Rounding is half away from zero; `fraction · n` never lands
/// on .5 for the protocol's 0.2, and this rule reproduces `ml100k-split` exactly from
/// the raw MovieLens ratings (floor and ceil do not).
///
/// Both outputs keep the input's order.
///
/// # Panics
/// If `fraction` is not within `[0, 1]`.
pub fn temporal_split(
    events: &[LogEvent],
    fraction: f64,
    min_events: usize,
) -> (Vec<LogEvent>, Vec<LogEvent>) {
    assert!(
        (0.0..=1.0).contains(&fraction),
        "fraction must be in [0, 1]"
    );
    let mut order: Vec<usize> = (0..events.len()).collect();
    // Stable sort: log position is the last tie-break.
    order.sort_by_key(|&p| (events[p].user, events[p].ts, events[p].item));

    let mut is_test = vec![false; events.len()];
    for run in order.chunk_by(|&a, &b| events[a].user == events[b].user) {
        let n = run.len();
        if n >= min_events {
            let n_test = ((fraction * n as f64).round() as usize).min(n);
            for &p in &run[n - n_test..] {
                is_test[p] = true;
            }
        }
    }

    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (e, &t) in events.iter().zip(&is_test) {
        if t {
            test.push(*e);
        } else {
            train.push(*e);
        }
    }
    let seen: HashSet<u32> = train.iter().map(|e| e.item).collect();
    test.retain(|e| seen.contains(&e.item));
    (train, test)
}

/// Scores a recommender with the protocol of `evaluation.md`.
///
/// - Evaluated users: users with at least one test purchase; if the test set has no
///   purchases at all, every user with a test event, with all their test items relevant.
/// - Relevant: the user's test purchase items that were seen in train (no model could
///   rank the others; [`temporal_split`] already drops them).
/// - Ranked: every item seen in train except the user's own train items, by
///   `score(user, out)`, which fills `out` (length `train.n_items()`) with the user's
///   scores; full ranking, no sampled negatives.
///
/// Parallel over users; the result does not depend on the thread count.
pub fn evaluate(
    train: &Interactions,
    test: &[LogEvent],
    score: impl Fn(u32, &mut [f32]) + Sync,
) -> Quality {
    let n_items = train.n_items();
    let in_train: Vec<bool> = (0..n_items as u32)
        .map(|i| !train.item_col(i).0.is_empty())
        .collect();
    let seen = |i: u32| in_train.get(i as usize).copied().unwrap_or(false);

    let any_purchase = test.iter().any(|e| e.purchase);
    let mut relevant: HashMap<u32, HashSet<u32>> = HashMap::new();
    for e in test.iter().filter(|e| e.purchase || !any_purchase) {
        if seen(e.item) {
            relevant.entry(e.user).or_default().insert(e.item);
        }
    }
    let mut users: Vec<(u32, HashSet<u32>)> = relevant.into_iter().collect();
    users.sort_unstable_by_key(|(u, _)| *u);

    let per_user: Vec<([f64; 3], Vec<u32>)> = users
        .par_iter()
        .map_init(
            || vec![0.0f32; n_items],
            |out, (user, rel)| {
                out.fill(0.0);
                score(*user, out);
                let own: &[u32] = if (*user as usize) < train.n_users() {
                    train.user_row(*user).0
                } else {
                    &[]
                };
                let ranked: Vec<u32> =
                    top_k(out, 20, |i| seen(i) && own.binary_search(&i).is_err())
                        .into_iter()
                        .map(|(i, _)| i)
                        .collect();
                let metrics = [
                    ndcg_at_k(&ranked, rel, 10),
                    recall_at_k(&ranked, rel, 20),
                    hit_at_k(&ranked, rel, 10),
                ];
                (metrics, ranked.into_iter().take(10).collect())
            },
        )
        .collect();

    let n = per_user.len();
    if n == 0 {
        return Quality::default();
    }
    // Summed in user order, so the figures are reproducible to the last bit.
    let mut sums = [0.0f64; 3];
    let mut shown: HashSet<u32> = HashSet::new();
    for (m, top) in &per_user {
        for (s, v) in sums.iter_mut().zip(m) {
            *s += v;
        }
        shown.extend(top);
    }
    let catalog = in_train.iter().filter(|&&s| s).count().max(1);
    Quality {
        ndcg_at_10: sums[0] / n as f64,
        recall_at_20: sums[1] / n as f64,
        hr_at_10: sums[2] / n as f64,
        coverage_at_10: shown.len() as f64 / catalog as f64,
        users: n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(user: u32, item: u32, ts: i64, purchase: bool) -> LogEvent {
        LogEvent {
            user,
            item,
            weight: 1.0,
            ts,
            purchase,
        }
    }

    #[test]
    fn coverage_counts_distinct_items_in_the_top_10s() {
        // 12 items in train (user 2 touched them all); users 0 and 1 each own one item.
        let mut train: Vec<LogEvent> = (0..12).map(|i| ev(2, i, 0, false)).collect();
        train.push(ev(0, 0, 0, false));
        train.push(ev(1, 1, 0, false));
        let data = Interactions::from_events(3, 12, &train);
        let test = [ev(0, 11, 1, true), ev(1, 5, 1, true)];
        // Every user scores item i as i: user 0's top 10 is 11..=2, user 1's too (their own
        // items 0 and 1 rank below anyway), so 10 of the 12 items are shown.
        let q = evaluate(&data, &test, |_, out| {
            for (i, o) in out.iter_mut().enumerate() {
                *o = i as f32;
            }
        });
        assert_eq!(q.users, 2);
        assert!((q.coverage_at_10 - 10.0 / 12.0).abs() < 1e-12);
        // User 0's purchase (item 11) ranks first; user 1's (item 5) ranks 7th.
        assert!((q.hr_at_10 - 1.0).abs() < 1e-12);
        let ndcg1 = 1.0 / (8.0f64).log2();
        assert!((q.ndcg_at_10 - (1.0 + ndcg1) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn splits_last_fraction_per_user_with_item_tie_break() {
        let mut events: Vec<LogEvent> = (0..10).map(|t| ev(0, t as u32, t, false)).collect();
        // Same timestamp: the higher item index counts as later.
        events.push(ev(0, 11, 9, false));
        // User 1 has too few events: everything stays in train.
        events.extend([9, 11, 20].map(|i| ev(1, i, 0, false)));
        // User 2's last event is on an item nobody trained on: dropped.
        events.extend((0..4).map(|t| ev(2, t as u32, t, false)));
        events.push(ev(2, 99, 100, true));
        let (train, test) = temporal_split(&events, 0.2, 5);
        // User 0: 11 events, round(2.2) = 2 test events: (9, item 9) and (9, item 11).
        let test_items: Vec<(u32, u32)> = test.iter().map(|e| (e.user, e.item)).collect();
        assert_eq!(test_items, vec![(0, 9), (0, 11)]);
        assert_eq!(train.len(), 9 + 3 + 4);
        assert!(train.iter().all(|e| e.item != 99));
    }

    #[test]
    fn evaluates_purchases_and_excludes_train_items() {
        // Items 0..4 seen in train; user 0 trained on item 0.
        let train_events = [
            ev(0, 0, 0, true),
            ev(1, 1, 0, false),
            ev(1, 2, 0, false),
            ev(1, 3, 0, false),
        ];
        let train = Interactions::from_events(3, 5, &train_events);
        // Item 4 was never seen in train, so it is not relevant even when purchased.
        let test = [
            ev(0, 3, 1, true),
            ev(0, 1, 1, false),
            ev(1, 4, 1, true),
            ev(2, 2, 1, false),
        ];
        // Scores favour low indices: user 0's ranking is [1, 2, 3] (0 is their own).
        let q = evaluate(&train, &test, |_, out| {
            for (i, s) in out.iter_mut().enumerate() {
                *s = 10.0 - i as f32;
            }
        });
        assert_eq!(q.users, 1);
        assert!((q.ndcg_at_10 - 0.5).abs() < 1e-12); // hit at rank 3: 1/log2(4)
        assert_eq!((q.recall_at_20, q.hr_at_10), (1.0, 1.0));

        // No purchases in test at all: every user with a test event counts.
        let clicks: Vec<LogEvent> = test
            .iter()
            .map(|e| LogEvent {
                purchase: false,
                ..*e
            })
            .collect();
        let q = evaluate(&train, &clicks, |_, _| {});
        assert_eq!(q.users, 2);
    }
}
