//! `recloop evaluate --train FILE --test FILE`: scores the service's own training pipeline
//! offline with the protocol of `evaluation.md` (the split is given: two CSV logs with
//! `user_id,item_id,type,timestamp`), one row per algorithm.

use std::{collections::HashMap, path::Path, time::Instant};

use serde::Serialize;

use recloop::{
    domain::{EventType, EventWeights, NewEvent},
    learn::fit::{self, TrainingParams},
    model::{
        holdout, metrics::Quality, popularity::popularity, selection, Interactions, LogEvent,
        RankerConfig,
    },
};

use crate::import::read_csv;

/// One algorithm's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub algorithm: String,
    #[serde(flatten)]
    pub quality: Quality,
    pub fit_seconds: f64,
}

/// Both logs on dense indices, items numbered in sorted id order as training does. Test events
/// on items never seen in train are dropped (no model could rank them).
pub struct Split {
    pub n_users: usize,
    pub n_items: usize,
    pub train: Vec<LogEvent>,
    pub test: Vec<LogEvent>,
}

impl Split {
    pub fn new(train: &[NewEvent], test: &[NewEvent], weights: &EventWeights) -> Self {
        let mut items: Vec<&str> = train.iter().map(|e| e.item_id.as_str()).collect();
        items.sort_unstable();
        items.dedup();
        let item: HashMap<&str, u32> = items
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i as u32))
            .collect();
        // Users in sorted id order too: the same numbering, so the same model, as the service's.
        let mut user_ids: Vec<&str> = train
            .iter()
            .chain(test)
            .map(|e| e.user_id.as_str())
            .collect();
        user_ids.sort_unstable();
        user_ids.dedup();
        let users: HashMap<&str, u32> = user_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i as u32))
            .collect();
        let convert = |e: &NewEvent| -> Option<LogEvent> {
            let item = *item.get(e.item_id.as_str())?;
            let user = users[e.user_id.as_str()];
            Some(LogEvent {
                user,
                item,
                weight: weights.of(e.event_type),
                ts: e.ts_ms.div_euclid(1000),
                purchase: e.event_type == EventType::Purchase,
            })
        };
        let mut train: Vec<LogEvent> = train.iter().filter_map(convert).collect();
        let test: Vec<LogEvent> = test.iter().filter_map(convert).collect();
        // The order training fits in (see `IndexedLog`), so the figures match the service's.
        recloop::model::interactions::sort_for_fit(&mut train);
        Self {
            n_users: user_ids.len(),
            n_items: items.len(),
            train,
            test,
        }
    }
}

/// Scores popularity (no decay, as the peers' table does), popularity with the service's
/// recency decay, the configured iALS as it is, and the service's own pipeline: the
/// configuration training would choose on a validation split cut from `split.train`, fitted on
/// all of it (its fit seconds include the choice).
pub fn evaluate(split: &Split, params: &TrainingParams) -> Vec<Row> {
    let data = Interactions::from_events(split.n_users, split.n_items, &split.train);
    let mut rows = Vec::new();
    let half_life_days = params.popularity_half_life_days;
    for (name, half_life) in [
        ("popularity".to_owned(), f64::INFINITY),
        (
            format!("popularity (half-life {half_life_days} d)"),
            half_life_days * 86_400.0,
        ),
    ] {
        let started = Instant::now();
        let pop = popularity(split.n_items, &split.train, half_life);
        let fit_seconds = started.elapsed().as_secs_f64();
        let quality = holdout::evaluate(&data, &split.test, |_, out| {
            out.copy_from_slice(&pop.scores)
        });
        rows.push(Row {
            algorithm: name,
            quality,
            fit_seconds,
        });
    }
    let mut pipelines = vec![(RankerConfig::ials(params.als.clone()), 0.0)];
    if params.select {
        let started = Instant::now();
        let (chosen, _) = fit::choose(params, split.n_users, split.n_items, &split.train);
        pipelines.push((chosen, started.elapsed().as_secs_f64()));
    }
    for (i, (config, choosing_seconds)) in pipelines.into_iter().enumerate() {
        let started = Instant::now();
        let ranker = config.fit(&data);
        let fit_seconds = started.elapsed().as_secs_f64() + choosing_seconds;
        let quality =
            selection::quality_of(&ranker, &data, &split.train, &split.test, config.recency);
        let label = if i == 0 { "configured" } else { "chosen" };
        rows.push(Row {
            algorithm: format!("{label}: {}", config.name()),
            quality,
            fit_seconds,
        });
    }
    rows
}

/// Reads the two files and prints the table (or JSON lines).
pub fn run(train: &Path, test: &Path, params: &TrainingParams, json: bool) -> anyhow::Result<()> {
    let split = Split::new(&read_csv(train)?, &read_csv(test)?, &params.weights);
    let rows = evaluate(&split, params);
    if json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
        return Ok(());
    }
    println!(
        "{} train events, {} test events on known items, {} evaluated users",
        split.train.len(),
        split.test.len(),
        rows.first().map_or(0, |r| r.quality.users)
    );
    println!(
        "| {:<72} | {:>7} | {:>9} | {:>6} | {:>11} | {:>11} |",
        "algorithm", "NDCG@10", "Recall@20", "HR@10", "coverage@10", "fit seconds"
    );
    println!(
        "|{:-<74}|{:-<9}|{:-<11}|{:-<8}|{:-<13}|{:-<13}|",
        "", "", "", "", "", ""
    );
    for r in &rows {
        let q = &r.quality;
        println!(
            "| {:<72} | {:>7.4} | {:>9.4} | {:>6.3} | {:>11.3} | {:>11.2} |",
            r.algorithm, q.ndcg_at_10, q.recall_at_20, q.hr_at_10, q.coverage_at_10, r.fit_seconds
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use recloop::domain::{ItemId, UserId};

    fn e(user: &str, item: &str, t: EventType, ts: i64) -> NewEvent {
        NewEvent {
            event_id: None,
            user_id: UserId::parse(user).unwrap(),
            item_id: ItemId::parse(item).unwrap(),
            event_type: t,
            ts_ms: ts * 1000,
            recommendation_id: None,
        }
    }

    #[test]
    fn popularity_row_on_a_hand_computed_split() {
        use EventType::*;
        // Popularity by summed weight: b (purchase 4 + click 1) > a (click 1 + view 0.5) > c.
        let train = [
            e("u1", "a", Click, 1),
            e("u2", "b", Purchase, 2),
            e("u3", "b", Click, 3),
            e("u3", "a", View, 4),
            e("u4", "c", View, 5),
        ];
        // u1 buys b (ranked first among b, c: a is their own): hit at rank 1.
        // u4 buys a (b, a ranked; c is their own): hit at rank 2. "zz" was never seen: dropped.
        let test = [
            e("u1", "b", Purchase, 9),
            e("u4", "a", Purchase, 9),
            e("u4", "zz", Purchase, 9),
        ];
        let split = Split::new(&train, &test, &EventWeights::default());
        assert_eq!((split.n_users, split.n_items), (4, 3));
        assert_eq!(split.test.len(), 2);
        let params =
            TrainingParams::from_config(&recloop::config::Config::default_for("sqlite::memory:"));
        let rows = evaluate(&split, &params);
        let pop = &rows[0].quality;
        assert_eq!(pop.users, 2);
        let expected = (1.0 + 1.0 / 3f64.log2()) / 2.0;
        assert!((pop.ndcg_at_10 - expected).abs() < 1e-12, "{pop:?}");
        assert!((pop.hr_at_10 - 1.0).abs() < 1e-12);
        assert_eq!(rows.len(), 4);
        assert!(
            rows[3].algorithm.starts_with("chosen: "),
            "{}",
            rows[3].algorithm
        );
    }
}
