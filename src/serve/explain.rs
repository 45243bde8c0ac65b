//! `?explain=true`: why each listed item is there. A personal item carries the history items its
//! score came from (`model::explain`, an exact split); any other item carries the list it was
//! taken from. Computed only when asked, after ranking, so a plain request pays nothing.

use super::{
    rank::{Because, Reason, RecommendQuery, ScoredItem, Source},
    snapshot::Snapshot,
    user::UserState,
};
use crate::model::explain::Explainer;

/// How many history items an explanation lists: the largest parts. With a history no longer
/// than this, every part is listed and the shares sum to 1.
pub const BECAUSE_LEN: usize = 10;

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
