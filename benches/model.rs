//! Hot paths of the model module: fitting, one recommendation, item neighbours.
//!
//! `cargo bench --bench model -- --warm-up-time 1 --measurement-time 5`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use recloop::model::similarity::similar_items;
use recloop::model::synthetic::{planted, random_factors};
use recloop::model::topk::top_k;
use recloop::model::{als, AlsModel, AlsParams, Interactions, Ranker};
use recloop::serving::FittedModel;

/// 5,000 users × 2,000 items, 40 events each (200k events), 64 factors, 5 rounds.
fn fit(c: &mut Criterion) {
    let (users, items) = (5_000, 2_000);
    let data = Interactions::from_events(users, items, &planted(users, items, 20, 40, 1));
    let mut group = c.benchmark_group("fit_5000u_2000i_200k_k64_5it");
    group.sample_size(10);
    for cg_steps in [3, 0] {
        let params = AlsParams {
            factors: 64,
            iterations: 5,
            cg_steps,
            ..AlsParams::default()
        };
        let name = if cg_steps == 0 { "cholesky" } else { "cg3" };
        group.bench_function(name, |b| b.iter(|| als::fit(black_box(&data), &params)));
    }
    group.finish();
}

/// A user's history: `len` distinct items spread over the catalogue, mixed weights.
fn history(len: usize, n_items: usize) -> Vec<(u32, f32)> {
    let stride = n_items / len;
    (0..len)
        .map(|j| ((j * stride) as u32, if j % 3 == 0 { 4.0 } else { 1.0 }))
        .collect()
}

fn model(n_items: usize, factors: usize) -> AlsModel {
    let params = AlsParams {
        factors,
        ..AlsParams::default()
    };
    AlsModel::from_item_factors(params, random_factors(n_items, factors, 9))
}

/// One request: fold in a 50-item history, score every item, keep the best 10 unseen.
fn recommend(c: &mut Criterion) {
    let mut group = c.benchmark_group("recommend_k128_hist50_top10");
    for n_items in [2_000, 20_000] {
        let model = model(n_items, 128);
        let hist = history(50, n_items);
        let seen: Vec<u32> = hist.iter().map(|&(i, _)| i).collect();
        let mut scores = vec![0.0f32; n_items];
        group.bench_with_input(BenchmarkId::from_parameter(n_items), &n_items, |b, _| {
            b.iter(|| {
                let x = model.fold_in(black_box(&hist));
                model.score_into(&x, &mut scores);
                top_k(&scores, 10, |i| seen.binary_search(&i).is_err())
            })
        });
    }
    group.finish();
}

/// What a cold request ranks: the 256-item shortlist of a 20,000-item model through the 8-bit
/// bound pass (`model::scoring`), for a user folded in from 10 events (the eigenbasis path).
///
/// Random factors bound each other's scores less tightly than trained ones do; with
/// `RECLOOP_BENCH_MODEL` naming a stored iALS model blob (e.g. `sqlite3 recloop.db "SELECT
/// writefile('model.bin', data) FROM model_blobs"` after `recloop synth`, `import`, `train`),
/// its item factors are ranked instead.
fn shortlist(c: &mut Criterion) {
    let mut group = c.benchmark_group("shortlist_k128_top256");
    let model = match std::env::var("RECLOOP_BENCH_MODEL") {
        Ok(path) => {
            let blob = std::fs::read(path).expect("model blob");
            match FittedModel::from_bytes(&blob).expect("a model").ranker {
                Ranker::Ials(m) => m,
                Ranker::Ease(_) => panic!("RECLOOP_BENCH_MODEL is not an iALS model"),
            }
        }
        Err(_) => model(20_000, 128),
    };
    let hist = history(10, model.n_items);
    let seen: Vec<u32> = hist.iter().map(|&(i, _)| i).collect();
    let x = model.fold_in(&hist);
    group.bench_function("fold_in_10", |b| b.iter(|| model.fold_in(black_box(&hist))));
    group.bench_function("bounds_20000", |b| {
        b.iter(|| drop(model.scores(black_box(&x))))
    });
    group.bench_function("rank_20000", |b| {
        b.iter(|| {
            model
                .scores(black_box(&x))
                .top_k(256, |i| seen.binary_search(&i).is_err())
        })
    });
    group.finish();
}

/// Fold-in alone, for short and long histories (it is cubic in k, linear in history).
fn fold_in(c: &mut Criterion) {
    let mut group = c.benchmark_group("fold_in_k128");
    let model = model(20_000, 128);
    for len in [50, 1_000] {
        let hist = history(len, 20_000);
        group.bench_with_input(BenchmarkId::from_parameter(len), &len, |b, _| {
            b.iter(|| model.fold_in(black_box(&hist)))
        });
    }
    group.finish();
}

/// Item neighbours of a 2,000-item, 128-factor model.
fn neighbours(c: &mut Criterion) {
    let model = model(2_000, 128);
    let mut group = c.benchmark_group("similar_items");
    group.sample_size(10);
    group.bench_function("2000i_k128_top20", |b| b.iter(|| similar_items(&model, 20)));
    group.finish();
}

criterion_group!(benches, fit, recommend, shortlist, fold_in, neighbours);
criterion_main!(benches);
