//! Hot paths of the model module: fitting, one recommendation, item neighbours.
//!
//! `cargo bench --bench model -- --warm-up-time 1 --measurement-time 5`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use recloop::model::similarity::similar_items;
use recloop::model::synthetic::{planted, random_factors};
use recloop::model::topk::top_k;
use recloop::model::FittedModel;
use recloop::model::{als, AlsModel, AlsParams, Interactions, Ranker};

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

/// What a cold request ranks: the user's shortlist of a 20,000-item model through the 8-bit
/// bound pass (`model::scoring`), 64 items (a user's cached shortlist) and 256 (the popular one),
/// for users folded in from their histories.
///
/// Random factors bound each other's scores less tightly than trained ones do; with
/// `RECLOOP_BENCH_MODEL` naming a stored iALS model blob (e.g. `sqlite3 recloop.db "SELECT
/// writefile('model.bin', data) FROM model_blobs"` after `recloop synth`, `import`, `train`),
/// its item factors are ranked instead. With `RECLOOP_BENCH_LOG` also naming the log it was
/// trained on (`user_id,item_id,...` CSV), the first 500 users' own histories are folded in;
/// otherwise one evenly spread 10-item history, which ranks faster than real ones.
fn shortlist(c: &mut Criterion) {
    let mut group = c.benchmark_group("shortlist_k128");
    let (model, item_ids) = match std::env::var("RECLOOP_BENCH_MODEL") {
        Ok(path) => {
            let blob = std::fs::read(path).expect("model blob");
            let fitted = FittedModel::from_bytes(&blob).expect("a model");
            match fitted.ranker {
                Ranker::Ials(m) => (m, fitted.item_ids),
                Ranker::Ease(_) => panic!("RECLOOP_BENCH_MODEL is not an iALS model"),
            }
        }
        Err(_) => (model(20_000, 128), Vec::new()),
    };
    let histories = match std::env::var("RECLOOP_BENCH_LOG") {
        Ok(path) => log_histories(&path, &item_ids, 500),
        Err(_) => vec![history(10, model.n_items)],
    };
    let users: Vec<(Vec<f32>, Vec<u32>)> = histories
        .iter()
        .map(|h| {
            let mut seen: Vec<u32> = h.iter().map(|&(i, _)| i).collect();
            seen.sort_unstable();
            (model.fold_in(h), seen)
        })
        .collect();
    group.bench_function("fold_in", |b| {
        let mut next = histories.iter().cycle();
        b.iter(|| model.fold_in(black_box(next.next().expect("a history"))))
    });
    group.bench_function("bounds", |b| {
        let mut next = users.iter().cycle();
        b.iter(|| drop(model.scores(black_box(&next.next().expect("a user").0))))
    });
    for len in [64, 256] {
        group.bench_with_input(BenchmarkId::new("rank_top", len), &len, |b, &len| {
            let mut next = users.iter().cycle();
            b.iter(|| {
                let (x, seen) = next.next().expect("a user");
                model
                    .scores(black_box(x))
                    .top_k(len, |i| seen.binary_search(&i).is_err())
            })
        });
    }
    group.finish();
}

/// The first `users` users' histories in a `user_id,item_id,...` CSV log (a header line
/// first), each event with weight 1, items numbered as the model numbers them.
fn log_histories(path: &str, item_ids: &[String], users: usize) -> Vec<Vec<(u32, f32)>> {
    let index: std::collections::HashMap<&str, u32> = item_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i as u32))
        .collect();
    let log = std::fs::read_to_string(path).expect("the log");
    let mut order: Vec<&str> = Vec::new();
    let mut by_user: std::collections::HashMap<&str, Vec<(u32, f32)>> = Default::default();
    for line in log.lines().skip(1) {
        let mut fields = line.split(',');
        let (Some(user), Some(item)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some(&i) = index.get(item) else { continue };
        if !by_user.contains_key(user) {
            if order.len() == users {
                continue;
            }
            order.push(user);
        }
        by_user.entry(user).or_default().push((i, 1.0));
    }
    order
        .iter()
        .map(|u| by_user.remove(u).unwrap_or_default())
        .collect()
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
