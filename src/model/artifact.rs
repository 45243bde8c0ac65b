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
}

impl FittedModel {
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        Ok(postcard::to_allocvec(self)?)
    }
    /// Also reads the blobs of versions from before training chose its algorithm (iALS
    /// only), so an upgrade keeps serving the stored model.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        match postcard::from_bytes(bytes) {
            Ok(model) => Ok(model),
            Err(e) => match postcard::from_bytes::<IalsOnlyModel>(bytes) {
                Ok(old) => Ok(FittedModel {
                    item_ids: old.item_ids,
                    ranker: Ranker::Ials(old.als),
                    recency: 0.0,
                    popularity: old.popularity,
                    similar: old.similar,
                    weights: old.weights,
                }),
                Err(_) => Err(e.into()),
            },
        }
    }
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
