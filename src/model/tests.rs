//! Cross-module checks on planted synthetic data: the model must find structure that
//! popularity cannot, whatever the solver.

use super::holdout::{evaluate, temporal_split};
use super::metrics::Quality;
use super::popularity::popularity;
use super::similarity::similar_items;
use super::synthetic::{item_cluster, planted};
use super::{als, AlsParams, Interactions};

const USERS: usize = 600;
const ITEMS: usize = 300;
const CLUSTERS: usize = 5;

fn split() -> (Interactions, Vec<super::LogEvent>, Vec<super::LogEvent>) {
    let events = planted(USERS, ITEMS, CLUSTERS, 30, 2024);
    let (train, test) = temporal_split(&events, 0.2, 5);
    (Interactions::from_events(USERS, ITEMS, &train), train, test)
}

fn params(cg_steps: usize) -> AlsParams {
    AlsParams {
        factors: 16,
        iterations: 10,
        cg_steps,
        ..AlsParams::default()
    }
}

fn als_quality(data: &Interactions, test: &[super::LogEvent], p: &AlsParams) -> Quality {
    let model = als::fit(data, p);
    evaluate(data, test, |u, out| {
        model.score_into(&model.fold_in(&data.user_history(u)), out)
    })
}

#[test]
fn als_recovers_planted_structure_far_better_than_popularity() {
    let (data, train, test) = split();
    let pop = popularity(ITEMS, &train, f64::INFINITY);
    let base = evaluate(&data, &test, |_, out| out.copy_from_slice(&pop.scores));
    let q = als_quality(&data, &test, &params(3));
    assert!(q.users > USERS / 2);
    assert!(
        q.ndcg_at_10 > 2.0 * base.ndcg_at_10,
        "ALS {q:?} vs popularity {base:?}"
    );
}

#[test]
fn conjugate_gradient_matches_cholesky_quality() {
    let (data, _, test) = split();
    let exact = als_quality(&data, &test, &params(0));
    let cg = als_quality(&data, &test, &params(3));
    let gap = (exact.ndcg_at_10 - cg.ndcg_at_10).abs();
    assert!(gap < 0.1 * exact.ndcg_at_10, "exact {exact:?} vs CG {cg:?}");
}

#[test]
fn similar_items_come_from_the_same_planted_cluster() {
    let (data, _, _) = split();
    let model = als::fit(&data, &params(3));
    let lists = similar_items(&model, 10);
    assert_eq!(lists.len(), ITEMS);
    let (mut same, mut total) = (0, 0);
    for (i, list) in lists.iter().enumerate() {
        assert!(list.windows(2).all(|w| w[0].1 >= w[1].1), "sorted");
        assert!(list.iter().all(|&(j, _)| j as usize != i), "self excluded");
        if data.item_col(i as u32).0.len() < 10 {
            continue; // too rare to have a meaningful vector
        }
        total += list.len();
        same += list
            .iter()
            .filter(|&&(j, _)| item_cluster(j, CLUSTERS) == item_cluster(i as u32, CLUSTERS))
            .count();
    }
    let share = same as f64 / total as f64;
    assert!(share > 0.9, "same-cluster share {share}");
}
