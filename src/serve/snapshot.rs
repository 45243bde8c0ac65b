//! A fitted model ready to answer requests: the artifact and what is derived from it once, at
//! publication, so that no request pays for it.

use std::collections::HashMap;

use crate::{
    model::{artifact::FittedModel, topk::top_k},
    store::ModelRecord,
};

/// How many items the popular shortlist keeps: the largest `n` plus room for per-request
/// filters (category, availability); a request they empty falls back to a full pass.
pub(super) const SHORTLIST_LEN: usize = 256;

/// A fitted model ready to answer requests.
pub struct Snapshot {
    pub record: ModelRecord,
    pub model: FittedModel,
    pub index: HashMap<String, u32>,
    /// Items the model knows least: below the median popularity. Exploration draws from them.
    pub uncertain: Vec<bool>,
    /// The most popular items, ranked once for `/v1/popular` and users without history.
    pub popular: Vec<(u32, f32)>,
}

impl Snapshot {
    pub fn new(record: ModelRecord, model: FittedModel) -> Self {
        let index = model
            .item_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u32))
            .collect();
        let uncertain = {
            let mut sorted = model.popularity.clone();
            sorted.sort_unstable_by(f32::total_cmp);
            let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
            model.popularity.iter().map(|&p| p < median).collect()
        };
        let popular = top_k(&model.popularity, SHORTLIST_LEN, |_| true);
        Self {
            record,
            model,
            index,
            uncertain,
            popular,
        }
    }

    pub fn version(&self) -> i64 {
        self.record.version
    }
}
