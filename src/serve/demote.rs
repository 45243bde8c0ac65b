//! A user's shortlist in the order the impression penalty gives it, kept up to date as each
//! response's showings are counted, instead of re-scored and re-sorted on every request: a
//! response moves its ten items down, the other few hundred keep their places.

use std::cmp::Ordering;

use fnv::FnvHashMap;

use crate::model::scoring::Scores;

/// The score an item keeps after `shown` showings without an action: each takes `penalty` of
/// it away (towards lower scores, whatever the sign).
pub fn penalized(score: f32, shown: u32, penalty: f32) -> f32 {
    let keep = (1.0 - penalty).powi(shown.min(1_000) as i32);
    if score >= 0.0 {
        score * keep
    } else {
        score / keep.max(f32::MIN_POSITIVE)
    }
}

/// The order of a ranked list of (item, model score, lowered score): higher lowered score
/// first, ties to the lower index.
fn ranked(a: &(u32, f32, f32), b: &(u32, f32, f32)) -> Ordering {
    b.2.total_cmp(&a.2).then(a.0.cmp(&b.0))
}

#[derive(Debug)]
pub struct DemotedOrder {
    penalty: f32,
    /// (item, model score, score after the penalty), sorted by the latter.
    list: Vec<(u32, f32, f32)>,
}

impl DemotedOrder {
    /// `shortlist` (any order) with each item's score lowered for its showings in `counts`.
    pub fn new(shortlist: &[(u32, f32)], counts: &FnvHashMap<u32, u32>, penalty: f32) -> Self {
        let mut list: Vec<(u32, f32, f32)> = shortlist
            .iter()
            .map(|&(i, score)| {
                let shown = counts.get(&i).copied().unwrap_or(0);
                (i, score, penalized(score, shown, penalty))
            })
            .collect();
        list.sort_by(ranked);
        Self { penalty, list }
    }

    /// `item` has now been shown `shown` times without an action: it takes its new place.
    pub fn shown(&mut self, item: u32, shown: u32) {
        let Some(at) = self.list.iter().position(|e| e.0 == item) else {
            return;
        };
        let (i, score, _) = self.list[at];
        let moved = (i, score, penalized(score, shown, self.penalty));
        // It only moves down: shift the entries it falls below up by one.
        let below = &self.list[at + 1..];
        let to = at + below.partition_point(|e| ranked(e, &moved).is_lt());
        self.list[at..=to].rotate_left(1);
        self.list[to] = moved;
    }

    /// The items, best first, with their lowered scores.
    pub fn iter(&self) -> impl Iterator<Item = (u32, f32)> + '_ {
        self.list.iter().map(|&(i, _, lowered)| (i, lowered))
    }
}

/// The `n` best items `keep` allows, best first, by score after the penalty for the showings
/// in `counts`: the same list as penalising every score and taking the top `n`, without
/// scoring every item. The penalty only lowers scores, so those `n` are among the `n + s`
/// best before it, where `s` counts the shown items `keep` allows: at least `n` of the latter
/// are unshown and keep their scores, and no item further down can pass them.
pub fn penalized_top(
    all: &Scores,
    n: usize,
    counts: &FnvHashMap<u32, u32>,
    penalty: f32,
    n_items: usize,
    keep: impl Fn(u32) -> bool,
) -> Vec<(u32, f32)> {
    let shown = if penalty > 0.0 {
        counts
            .keys()
            .filter(|&&i| (i as usize) < n_items && keep(i))
            .count()
    } else {
        0
    };
    let mut top = all.top_k(n + shown, &keep);
    if shown > 0 {
        for (i, score) in &mut top {
            if let Some(&c) = counts.get(i) {
                *score = penalized(*score, c, penalty);
            }
        }
        top.sort_by(|a, b| ranked(&(a.0, a.1, a.1), &(b.0, b.1, b.1)));
        top.truncate(n);
    }
    top
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ignored_showing_takes_its_share_of_the_score() {
        assert_eq!(penalized(2.0, 0, 0.25), 2.0);
        assert!((penalized(2.0, 2, 0.25) - 2.0 * 0.75 * 0.75).abs() < 1e-6);
        // A negative score moves down too, never up towards zero.
        assert!(penalized(-1.0, 1, 0.5) < -1.0);
        assert_eq!(penalized(1.0, 3, 0.0), 1.0, "0 turns it off");
    }

    use proptest::prelude::*;

    #[test]
    fn a_shown_item_drops_below_the_items_it_now_scores_under() {
        let list = [(7, 0.9), (3, 0.8), (5, 0.5), (1, 0.4)];
        let mut order = DemotedOrder::new(&list, &FnvHashMap::default(), 0.5);
        order.shown(7, 1);
        let got: Vec<_> = order.iter().collect();
        assert_eq!(got, vec![(3, 0.8), (5, 0.5), (7, 0.45), (1, 0.4)]);
    }

    proptest! {
        /// The list ranked on demand equals penalising every score and taking the best.
        #[test]
        fn penalized_top_equals_penalising_everything(
            scores in prop::collection::vec(-5.0f32..5.0, 1..200),
            shown in prop::collection::vec((0u32..220, 1u32..6), 0..60),
            n in 1usize..20,
            modulus in 1u32..5,
        ) {
            let counts: FnvHashMap<u32, u32> = shown.into_iter().collect();
            let keep = |i: u32| i % modulus != 1 || modulus == 1;
            let mut lowered = scores.clone();
            for (&i, &c) in &counts {
                if let Some(s) = lowered.get_mut(i as usize) {
                    *s = penalized(*s, c, 0.3);
                }
            }
            let want = crate::model::topk::top_k(&lowered, n, keep);
            let all = Scores::Exact(scores.clone());
            prop_assert_eq!(penalized_top(&all, n, &counts, 0.3, scores.len(), keep), want);
        }

        /// Counting showings one response at a time ends in the order a full re-sort of the
        /// final counts gives.
        #[test]
        fn incremental_equals_a_full_sort(
            scores in prop::collection::vec(-5.0f32..5.0, 1..120),
            responses in prop::collection::vec(prop::collection::vec(0usize..150, 1..10), 0..40),
        ) {
            let shortlist: Vec<(u32, f32)> =
                scores.iter().enumerate().map(|(i, &s)| (i as u32, s)).collect();
            let mut counts = FnvHashMap::default();
            let mut order = DemotedOrder::new(&shortlist, &counts, 0.3);
            for items in &responses {
                for &i in items {
                    let n = counts.entry(i as u32).or_insert(0);
                    *n += 1;
                    order.shown(i as u32, *n);
                }
            }
            let rebuilt = DemotedOrder::new(&shortlist, &counts, 0.3);
            prop_assert_eq!(order.iter().collect::<Vec<_>>(), rebuilt.iter().collect::<Vec<_>>());
        }
    }
}
