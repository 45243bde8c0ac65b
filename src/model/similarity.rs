//! Item-to-item neighbours, precomputed at training time ("customers who liked this...").

use super::linalg::dot;
use super::topk::TopK;
use super::AlsModel;
use rayon::prelude::*;

/// Queries per parallel task: enough to amortise a pass over the catalogue.
const QUERY_BLOCK: usize = 64;
/// Candidates per inner block, sized so a block (256 × 128 f32 = 128 KiB) stays in L2
/// while every query of the task is scored against it.
const CANDIDATE_BLOCK: usize = 256;

/// Top-k most similar items per item by cosine of the item factors (self excluded),
/// sorted by descending similarity, ties by lower index.
///
/// Items with an all-zero factor vector (never seen in training) have no cosine: they
/// get an empty list and appear in no other item's list. Brute force over all pairs,
/// blocked for cache reuse and parallel over blocks of query items (rayon); the result
/// does not depend on the thread count.
pub fn similar_items(model: &AlsModel, k: usize) -> Vec<Vec<(u32, f32)>> {
    let d = model.params.factors;
    let n = model.n_items;
    // Unit vectors of the live items, packed contiguously so blocks are dense.
    let mut live: Vec<u32> = Vec::with_capacity(n);
    let mut unit: Vec<f32> = Vec::with_capacity(n * d);
    for (i, y) in model.item_factors.chunks_exact(d).enumerate() {
        let norm = dot(y, y).sqrt();
        if norm > 0.0 && norm.is_finite() {
            live.push(i as u32);
            unit.extend(y.iter().map(|v| v / norm));
        }
    }

    let live_lists: Vec<Vec<Vec<(u32, f32)>>> = (0..live.len())
        .collect::<Vec<usize>>()
        .par_chunks(QUERY_BLOCK)
        .map(|queries| {
            let mut tops: Vec<TopK> = queries.iter().map(|_| TopK::new(k)).collect();
            for c0 in (0..live.len()).step_by(CANDIDATE_BLOCK) {
                let c1 = (c0 + CANDIDATE_BLOCK).min(live.len());
                for (&q, top) in queries.iter().zip(tops.iter_mut()) {
                    let qv = &unit[q * d..(q + 1) * d];
                    for c in c0..c1 {
                        if c == q {
                            continue;
                        }
                        let s = dot(qv, &unit[c * d..(c + 1) * d]);
                        top.push(live[c], s);
                    }
                }
            }
            tops.into_iter().map(TopK::into_sorted_vec).collect()
        })
        .collect();

    let mut out = vec![Vec::new(); n];
    for (&item, list) in live.iter().zip(live_lists.into_iter().flatten()) {
        out[item as usize] = list;
    }
    out
}
