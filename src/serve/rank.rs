//! How one request's list is cut from the model's scores: the cached shortlist or a full pass,
//! the impression penalty, one admission test for every list, then the exploration slots.

use std::{borrow::Cow, collections::HashSet, hash::Hasher};

use serde::Serialize;

use super::{
    catalog::CatalogView,
    demote::{penalized_top, DemotedOrder},
    snapshot::{Snapshot, SHORTLIST_LEN},
    user::{Ranked, ShownCounts, UserState},
    Serving,
};
use crate::model::{scoring::Scores, topk::top_k};

/// How many ranked items a user's cached shortlist keeps. Fewer than the popular list's: it is
/// ranked for every new or changed user, and its cost grows with its length (`model::scoring`).
/// A request that empties it (a narrow category, `n` above it, many exclusions) ranks again with
/// every filter applied, which costs about as much again.
const USER_SHORTLIST_LEN: usize = 64;
/// Exploration candidates kept per user among the model's little-known items.
const EXPLORE_CANDIDATES: usize = 32;

/// Which list answered a recommendation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Ranked by the user's own taste.
    Personalized,
    /// Recent popularity: the user has no usable history yet.
    Popular,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Personalized => "personalized",
            Self::Popular => "popular",
        }
    }
}

/// One ranked item.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScoredItem {
    pub item_id: String,
    pub score: f32,
    /// True for an exploration slot: a little-known or new item, placed at the end of the list
    /// whatever its score. Absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub explore: bool,
    /// With `explain=true`: the history items this score came from, largest part first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub because: Option<Vec<Because>>,
    /// With `explain=true`: why the item is listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// With `explain=true` on similar items: how many users interacted with both items.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub co_users: Option<u32>,
}

impl ScoredItem {
    pub(super) fn new(item_id: String, score: f32) -> Self {
        Self {
            item_id,
            score,
            explore: false,
            because: None,
            reason: None,
            co_users: None,
        }
    }
}

/// Why an item is in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Scored by the model from the user's own history (see `because`).
    Personalized,
    /// Recent popularity: the user has no usable history.
    Popular,
    /// Recent popularity within the category the request asked for.
    TrendingInCategory,
    /// An exploration slot given to an item the model does not know yet.
    NewItem,
    /// An exploration slot given to a little-known item the model scored for this user.
    Explore,
}

/// One history item's part of a recommended item's score.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Because {
    pub item_id: String,
    /// The strongest event type the user has on that item.
    #[serde(rename = "type")]
    #[schema(example = "purchase")]
    pub event_type: &'static str,
    /// Its share of the score: the shares of all history items sum to 1 (a part that pulled
    /// the score down is negative).
    pub share: f64,
    /// Its part of `score` itself: `share × score`.
    pub contribution: f64,
}

/// What a recommendation request asks for, parsed.
#[derive(Debug, Clone, Default)]
pub struct RecommendQuery {
    pub n: usize,
    pub category: Option<String>,
    pub exclude: HashSet<String>,
    pub include_interacted: bool,
    /// Say why each item is listed (`reason`, `because`).
    pub explain: bool,
}

/// The one test an item passes to be listed in a response: not hidden from the user (bought;
/// interacted with, unless asked for; excluded by the request) and allowed by the catalog
/// (available, in the category asked for). It holds the catalog's read view for the whole
/// request, so no pass takes a second one.
pub(super) struct Admission<'a> {
    user: Option<(&'a UserState, bool)>,
    exclude: &'a HashSet<String>,
    category: Option<&'a str>,
    ids: &'a [String],
    view: CatalogView<'a>,
}

impl<'a> Admission<'a> {
    /// For `q` by the user of `state` (None: nobody's items are hidden, as for popular items).
    pub(super) fn new(
        serving: &'a Serving,
        snap: &'a Snapshot,
        state: Option<&'a UserState>,
        q: &'a RecommendQuery,
    ) -> Self {
        Self {
            user: state.map(|s| (s, serving.includes_interacted(q))),
            exclude: &q.exclude,
            category: q.category.as_deref(),
            ids: &snap.model.item_ids,
            view: serving.catalog.view(),
        }
    }

    /// Hidden by the user's own history: the part that needs no string lookup.
    fn hidden_by_user(&self, i: u32) -> bool {
        self.user.is_some_and(|(state, include_interacted)| {
            state.purchased.contains(&i) || (!include_interacted && state.interacted.contains(&i))
        })
    }

    /// Hidden from this request whatever the catalog says: by the user's history or the
    /// request's exclusions.
    fn hidden(&self, i: u32) -> bool {
        self.hidden_by_user(i) || self.excluded(&self.ids[i as usize])
    }

    fn excluded(&self, id: &str) -> bool {
        !self.exclude.is_empty() && self.exclude.contains(id)
    }

    /// A model item.
    pub(super) fn admits(&self, i: u32) -> bool {
        !self.hidden_by_user(i) && self.admits_id(&self.ids[i as usize])
    }

    /// Any item by id, including one the model does not know: the request's exclusions and
    /// the catalog.
    fn admits_id(&self, id: &str) -> bool {
        !self.excluded(id) && self.view.allows(id, self.category)
    }

    /// The first `n` items of a ranked list that pass; `None` when the list ran out first
    /// although it was `truncated` (items beyond it might pass).
    pub(super) fn pick(
        &self,
        ranked: impl IntoIterator<Item = (u32, f32)>,
        truncated: bool,
        n: usize,
    ) -> Option<Vec<ScoredItem>> {
        let picked: Vec<ScoredItem> = ranked
            .into_iter()
            .filter(|&(i, _)| self.admits(i))
            .take(n)
            .map(|(i, score)| ScoredItem::new(self.ids[i as usize].clone(), score))
            .collect();
        let exhausted = picked.len() < n && truncated;
        (!exhausted).then_some(picked)
    }

    /// The top `n` items by score that pass. The catalog check costs a string lookup, so it
    /// runs on a short list first and on every item only when that list was not enough (e.g. a
    /// narrow category).
    pub(super) fn best(&self, scores: &[f32], n: usize) -> Vec<ScoredItem> {
        let full = n * 2 + 32;
        let shortlist = top_k(scores, full, |i| !self.hidden_by_user(i));
        let truncated = shortlist.len() >= full;
        self.pick(shortlist, truncated, n).unwrap_or_else(|| {
            let ranked = top_k(scores, n, |i| self.admits(i));
            self.pick(ranked, false, n).unwrap_or_default()
        })
    }
}

/// A number in [0, 1) drawn from a recommendation id: the same id always draws the same.
fn draw(recommendation_id: &str, salt: u64) -> u64 {
    let mut h = fnv::FnvHasher::default();
    h.write_u64(salt);
    h.write(recommendation_id.as_bytes());
    let x = h.finish();
    x ^ (x >> 29)
}

/// How many of `n` slots explore: `n · share`, the fraction rounded up or down by a draw, so
/// that on average exactly `share` of the slots explore.
pub fn exploration_slots(n: usize, share: f64, recommendation_id: &str) -> usize {
    let exact = n as f64 * share;
    let whole = exact.floor();
    let unit = (draw(recommendation_id, 0) % 1_000_000) as f64 / 1_000_000.0;
    let slots = whole as usize + usize::from(unit < exact - whole);
    slots.min(n / 2)
}

impl Serving {
    /// Whether `q` may list items the user interacted with: asked for, or the service's default.
    fn includes_interacted(&self, q: &RecommendQuery) -> bool {
        q.include_interacted || !self.exclude_interacted_default
    }

    /// Ranks for one request: the model's scores less the impression penalty, the admission
    /// test, then the exploration slots.
    pub(super) fn rank(
        &self,
        snap: &Snapshot,
        state: &UserState,
        q: &RecommendQuery,
        recommendation_id: &str,
    ) -> (Source, Vec<ScoredItem>) {
        let exploring = self.policy.exploration > 0.0;
        // The usual request filters the cached ranking instead of scoring every item. It is
        // ranked before the admission takes the catalog's view, so that a catalog write never
        // waits for a scoring pass.
        let cached = (!self.includes_interacted(q)).then(|| {
            state
                .ranked
                .get_or_init(|| shortlist(snap, state, exploring))
        });
        let admission = Admission::new(self, snap, Some(state), q);
        let source = match state.vector {
            Some(_) => Source::Personalized,
            None => Source::Popular,
        };
        let penalty = self.policy.impression_penalty;
        let mut shown = state.shown.lock().unwrap_or_else(|e| e.into_inner());
        let mut items = None;
        let mut explore: Cow<[(u32, f32)]> = Cow::Borrowed(&[]);
        if let Some(ranked) = cached {
            let truncated = ranked.shortlist.len() >= USER_SHORTLIST_LEN;
            items = if penalty > 0.0 {
                let ShownCounts { counts, order, .. } = &mut *shown;
                let order = order
                    .get_or_insert_with(|| DemotedOrder::new(&ranked.shortlist, counts, penalty));
                admission.pick(order.iter(), truncated, q.n)
            } else {
                admission.pick(ranked.shortlist.iter().copied(), truncated, q.n)
            };
            explore = Cow::Borrowed(&ranked.explore);
        }
        let mut items = items.unwrap_or_else(|| {
            // Filters the shortlist could not satisfy, or interacted items asked for: rank
            // again with every filter applied (still without scoring every item in full).
            let all = state.scores(snap);
            if exploring {
                explore = Cow::Owned(all.top_k(EXPLORE_CANDIDATES, |i| {
                    !admission.hidden(i) && snap.uncertain[i as usize]
                }));
            }
            let n_items = snap.model.item_ids.len();
            let ranked = penalized_top(&all, q.n, &shown.counts, penalty, n_items, |i| {
                admission.admits(i)
            });
            admission.pick(ranked, false, q.n).unwrap_or_default()
        });
        drop(shown);
        // A user without history gets the popular list, as the contract says: only personal
        // lists explore.
        if source == Source::Personalized {
            self.explore(
                snap,
                state,
                &admission,
                q.n,
                recommendation_id,
                &explore,
                &mut items,
            );
        }
        (source, items)
    }

    /// Gives the last of `n` slots to exploration: each drawn from the id among the user's best
    /// little-known items and the catalog's new ones, skipping what does not pass or is
    /// already listed.
    #[allow(clippy::too_many_arguments)]
    fn explore(
        &self,
        snap: &Snapshot,
        state: &UserState,
        admission: &Admission<'_>,
        n: usize,
        recommendation_id: &str,
        known: &[(u32, f32)],
        items: &mut Vec<ScoredItem>,
    ) {
        let slots = exploration_slots(n, self.policy.exploration, recommendation_id);
        if slots == 0 {
            return;
        }
        let new_items = self.new_items.load();
        let candidates = known.len() + new_items.len();
        if candidates == 0 {
            return;
        }
        let mut chosen: Vec<ScoredItem> = Vec::with_capacity(slots);
        for slot in 0..slots as u64 {
            let start = draw(recommendation_id, slot + 1) as usize % candidates;
            let pick = (0..candidates).find_map(|k| {
                let c = (start + k) % candidates;
                let (id, score, usable) = match known.get(c) {
                    Some(&(i, score)) => {
                        (&snap.model.item_ids[i as usize], score, admission.admits(i))
                    }
                    None => {
                        let id = &new_items[c - known.len()];
                        let usable = !state.touched_unknown.contains(id) && admission.admits_id(id);
                        (id, 0.0, usable)
                    }
                };
                let usable = usable && !items.iter().chain(&chosen).any(|it| &it.item_id == id);
                usable.then(|| ScoredItem {
                    explore: true,
                    ..ScoredItem::new(id.clone(), score)
                })
            });
            match pick {
                Some(item) => chosen.push(item),
                None => break,
            }
        }
        let keep = n.saturating_sub(chosen.len()).min(items.len());
        items.truncate(keep);
        items.extend(chosen);
    }
}

/// The user's best items under the default hiding rule, and (when exploring) their best
/// little-known ones: ranked once per user state, without scoring every item in full.
fn shortlist(snap: &Snapshot, state: &UserState, exploring: bool) -> Ranked {
    let all = state.scores(snap);
    let fresh = |i: u32| !state.purchased.contains(&i) && !state.interacted.contains(&i);
    // Without exploration the candidates are never drawn from: not ranked.
    let explore = if exploring {
        all.top_k(EXPLORE_CANDIDATES, |i| {
            fresh(i) && snap.uncertain[i as usize]
        })
    } else {
        Vec::new()
    };
    Ranked {
        shortlist: all.top_k(USER_SHORTLIST_LEN, fresh),
        explore,
    }
}

impl UserState {
    /// The model's scores for this user, or popularity for a user it cannot place.
    fn scores<'a>(&'a self, snap: &'a Snapshot) -> Scores<'a> {
        match &self.vector {
            Some(v) => snap.model.ranker.scores(v),
            None => Scores::Exact(snap.model.popularity.clone()),
        }
    }
}

impl Serving {
    /// Recently popular items, optionally in one category.
    pub fn popular(&self, n: usize, category: Option<&str>) -> (Option<i64>, Vec<ScoredItem>) {
        let Some(snap) = self.current() else {
            return (None, Vec::new());
        };
        let q = RecommendQuery {
            n,
            category: category.map(str::to_owned),
            ..Default::default()
        };
        let admission = Admission::new(self, &snap, None, &q);
        let truncated = snap.popular.len() >= SHORTLIST_LEN;
        let items = admission
            .pick(snap.popular.iter().copied(), truncated, n)
            .unwrap_or_else(|| admission.best(&snap.model.popularity, n));
        (Some(snap.version()), items)
    }

    /// Items like `item_id`, with the version that found them; `None` when neither the model
    /// nor the catalog knows the item. A catalog item nobody has touched yet is known, just
    /// without neighbours so far.
    /// With `explain`, each listed item carries how many users interacted with both.
    pub fn similar(
        &self,
        item_id: &str,
        n: usize,
        explain: bool,
    ) -> Option<(Option<i64>, Vec<ScoredItem>)> {
        let snap = self.current();
        let Some((snap, &i)) = snap.as_ref().and_then(|s| Some((s, s.index.get(item_id)?))) else {
            let known = self.catalog.contains(item_id);
            return known.then(|| (snap.map(|s| s.version()), Vec::new()));
        };
        let q = RecommendQuery::default();
        let admission = Admission::new(self, snap, None, &q);
        let similar = snap.model.similar[i as usize].iter().copied();
        let mut items = admission.pick(similar, false, n).unwrap_or_default();
        if explain {
            let neighbours = &snap.model.similar[i as usize];
            for item in &mut items {
                let j = snap.index.get(&item.item_id).copied();
                let rank = neighbours.iter().position(|&(n, _)| Some(n) == j);
                item.co_users = rank.and_then(|r| snap.model.co_users(i, r));
            }
        }
        Some((Some(snap.version()), items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exploration_slots_are_drawn_from_the_id_and_average_the_share() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("01J{i:023}-v1")).collect();
        for id in &ids[..50] {
            assert_eq!(
                exploration_slots(5, 0.1, id),
                exploration_slots(5, 0.1, id),
                "the same id draws the same"
            );
        }
        assert!(ids.iter().all(|id| exploration_slots(10, 0.1, id) == 1));
        assert!(ids.iter().all(|id| exploration_slots(10, 0.0, id) == 0));
        // 5 slots at 10% is half a slot: every other response, on average.
        let slots: usize = ids.iter().map(|id| exploration_slots(5, 0.1, id)).sum();
        let share = slots as f64 / (5 * ids.len()) as f64;
        assert!((share - 0.1).abs() < 0.01, "{share}");
        assert_eq!(
            exploration_slots(1, 0.5, &ids[0]),
            0,
            "never more than half"
        );
    }
}
