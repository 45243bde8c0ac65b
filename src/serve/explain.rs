//! `?explain=true`: why each listed item is there. A personal item carries the history items its
//! score came from (`model::explain`, an exact split); any other item carries the list it was
//! taken from. Computed only when asked, after ranking, so a plain request pays nothing.

use serde::Serialize;

use super::{
    rank::{RecommendQuery, ScoredItem, Source},
    snapshot::Snapshot,
    user::UserState,
};
use crate::model::explain::Explainer;

/// How many history items an explanation lists: the largest parts. With a history no longer
/// than this, every part is listed and the shares sum to 1.
pub const BECAUSE_LEN: usize = 10;

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

impl super::Serving {
    /// Fills `reason` (and `because` for personal scores) on every item of a ranked list.
    pub(super) fn explain(
        &self,
        snap: &Snapshot,
        state: &UserState,
        q: &RecommendQuery,
        source: Source,
        items: &mut [ScoredItem],
    ) {
        let explainer = (source == Source::Personalized)
            .then(|| Explainer::new(&snap.model.ranker, &state.fold));
        for item in items.iter_mut() {
            let known = snap.index.get(&item.item_id).copied();
            item.reason = Some(match (source, item.explore, known) {
                (Source::Popular, _, _) if q.category.is_some() => Reason::TrendingInCategory,
                (Source::Popular, _, _) => Reason::Popular,
                (_, true, None) => Reason::NewItem,
                (_, true, Some(_)) => Reason::Explore,
                (_, false, _) => Reason::Personalized,
            });
            if let (Some(explainer), Some(i)) = (&explainer, known) {
                item.because = Some(because(explainer, state, snap, i, item.score));
            }
        }
    }
}

/// The largest parts of item `i`'s score, scaled to the score as listed (the impression
/// penalty multiplies the model's score, so it scales every part alike).
fn because(
    explainer: &Explainer<'_>,
    state: &UserState,
    snap: &Snapshot,
    i: u32,
    listed: f32,
) -> Vec<Because> {
    let parts = explainer.contributions(i);
    let total: f64 = parts.iter().sum();
    if total.abs() < 1e-12 {
        return Vec::new();
    }
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| parts[b].total_cmp(&parts[a]));
    order
        .into_iter()
        .take(BECAUSE_LEN)
        .map(|r| {
            let (j, _) = explainer.history()[r];
            let share = parts[r] / total;
            Because {
                item_id: snap.model.item_ids[j as usize].clone(),
                event_type: state.strongest(j).as_str(),
                share,
                contribution: share * f64::from(listed),
            }
        })
        .collect()
}
