//! The persisted model: what training produces and the database keeps, and the decoder of the
//! blobs older versions wrote.

use serde::{Deserialize, Serialize};

use super::{AlsModel, Ranker};
use crate::domain::EventWeights;

/// What training produces and the database keeps: everything needed to serve, nothing per user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FittedModel {
    /// Item ids by model index (sorted).
    pub item_ids: Vec<String>,
    /// The personal ranking model training chose.
    pub ranker: Ranker,
    /// How strongly a user's recent events outweigh older ones when they are folded in.
    pub recency: f32,
    pub popularity: Vec<f32>,
    pub similar: Vec<Vec<(u32, f32)>>,
    pub weights: EventWeights,
    /// For each entry of `similar`, how many users interacted with both items (empty in
    /// blobs written before explanations: then none are reported).
    pub co_users: Vec<Vec<u32>>,
}

impl FittedModel {
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        Ok(postcard::to_allocvec(self)?)
    }
    /// Also reads the blobs of earlier versions: those from before similar items carried
    /// their co-users, and those from before training chose its algorithm (iALS only), so an
    /// upgrade keeps serving the stored model.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        let e = match postcard::from_bytes(bytes) {
            Ok(model) => return Ok(model),
            Err(e) => e,
        };
        if let Ok(old) = postcard::from_bytes::<WithoutCoUsers>(bytes) {
            return Ok(FittedModel {
                item_ids: old.item_ids,
                ranker: old.ranker,
                recency: old.recency,
                popularity: old.popularity,
                similar: old.similar,
                weights: old.weights,
                co_users: Vec::new(),
            });
        }
        match postcard::from_bytes::<IalsOnlyModel>(bytes) {
            Ok(old) => Ok(FittedModel {
                item_ids: old.item_ids,
                ranker: Ranker::Ials(old.als),
                recency: 0.0,
                popularity: old.popularity,
                similar: old.similar,
                weights: old.weights,
                co_users: Vec::new(),
            }),
            Err(_) => Err(e.into()),
        }
    }

    /// How many users interacted with both `item` and its `rank`-th similar item, when known.
    pub fn co_users(&self, item: u32, rank: usize) -> Option<u32> {
        self.co_users.get(item as usize)?.get(rank).copied()
    }
}

/// The blob layout from the choice of algorithm until explanations.
#[derive(Deserialize)]
struct WithoutCoUsers {
    item_ids: Vec<String>,
    ranker: Ranker,
    recency: f32,
    popularity: Vec<f32>,
    similar: Vec<Vec<(u32, f32)>>,
    weights: EventWeights,
}

/// The blob layout of the first versions.
#[derive(Deserialize)]
struct IalsOnlyModel {
    item_ids: Vec<String>,
    als: AlsModel,
    popularity: Vec<f32>,
    similar: Vec<Vec<(u32, f32)>>,
    weights: EventWeights,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EaseModel, EaseParams};

    #[test]
    fn a_blob_from_before_co_users_still_loads() {
        let model = FittedModel {
            item_ids: vec!["a".into(), "b".into()],
            ranker: Ranker::Ease(EaseModel {
                params: EaseParams::default(),
                lambda: 1.0,
                rows: vec![vec![(1, 0.5)], vec![(0, 0.5)]],
            }),
            recency: 0.5,
            popularity: vec![1.0, 2.0],
            similar: vec![vec![(1, 0.5)], vec![(0, 0.5)]],
            weights: EventWeights::default(),
            co_users: vec![vec![3], vec![3]],
        };
        let back = FittedModel::from_bytes(&model.to_bytes().unwrap()).unwrap();
        assert_eq!(back.co_users(0, 0), Some(3));
        // The earlier layout is the same fields in the same order, without the last one.
        let old = postcard::to_allocvec(&(
            &model.item_ids,
            &model.ranker,
            model.recency,
            &model.popularity,
            &model.similar,
            &model.weights,
        ))
        .unwrap();
        let back = FittedModel::from_bytes(&old).unwrap();
        assert_eq!((back.recency, &back.popularity), (0.5, &vec![1.0, 2.0]));
        assert_eq!(back.co_users(0, 0), None);
    }
}
