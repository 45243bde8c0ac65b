//! The statistics buckets: increments add up per minute, hour and day, and each step is pruned
//! after its own retention.

use recloop::store::{DynStore, StatDelta, StatStep};

const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;

fn delta(at_ms: i64, labels: &str, value: f64) -> StatDelta {
    StatDelta {
        at_ms,
        series: "events".into(),
        labels: labels.into(),
        value,
    }
}

/// (bucket, labels, value) of one step over all time.
async fn buckets(store: &DynStore, step: StatStep) -> Vec<(i64, String, f64)> {
    let points = store.stats(step, i64::MIN / 2, i64::MAX / 2).await.unwrap();
    points
        .into_iter()
        .map(|p| (p.bucket_ms, p.labels, p.value))
        .collect()
}

pub async fn increments_add_up_in_their_minute_hour_and_day(store: DynStore) {
    let day = 20_000 * DAY; // 2024-10-04T00:00:00Z
    store
        .add_stats(&[
            delta(day + 5 * MINUTE + 1, "type=view", 2.0),
            delta(day + 5 * MINUTE + 59_999, "type=view", 1.0),
            delta(day + 61 * MINUTE, "type=view", 4.0),
            delta(day + 61 * MINUTE, "type=click", 0.5),
        ])
        .await
        .unwrap();
    // A second writer (another replica) adds to the same rows.
    store
        .add_stats(&[delta(day + 5 * MINUTE, "type=view", 10.0)])
        .await
        .unwrap();
    let click = |b| (b, "type=click".to_owned(), 0.5);
    let view = |b, v| (b, "type=view".to_owned(), v);
    assert_eq!(
        buckets(&store, StatStep::Minute).await,
        vec![
            click(day + 61 * MINUTE),
            view(day + 5 * MINUTE, 13.0),
            view(day + 61 * MINUTE, 4.0)
        ]
    );
    assert_eq!(
        buckets(&store, StatStep::Hour).await,
        vec![
            click(day + 60 * MINUTE),
            view(day, 13.0),
            view(day + 60 * MINUTE, 4.0)
        ]
    );
    assert_eq!(
        buckets(&store, StatStep::Day).await,
        vec![click(day), view(day, 17.0)]
    );
    // A range takes the buckets that start in it.
    let hour = store
        .stats(StatStep::Minute, day + 60 * MINUTE, day + 120 * MINUTE)
        .await
        .unwrap();
    assert_eq!(hour.len(), 2);
}

pub async fn each_step_is_pruned_after_its_retention(store: DynStore) {
    let now = 20_000 * DAY;
    store
        .add_stats(&[
            delta(now - 8 * DAY, "old=week", 1.0),
            delta(now - 100 * DAY, "old=quarter", 1.0),
            delta(now - MINUTE, "old=none", 1.0),
        ])
        .await
        .unwrap();
    let pruned = store.prune_stats(now).await.unwrap();
    // Minutes: both old ones; hours: the 100-day one; days: none.
    assert_eq!(pruned, 3);
    let labels = |b: Vec<(i64, String, f64)>| b.into_iter().map(|(_, l, _)| l).collect::<Vec<_>>();
    assert_eq!(
        labels(buckets(&store, StatStep::Minute).await),
        vec!["old=none"]
    );
    assert_eq!(
        labels(buckets(&store, StatStep::Hour).await),
        vec!["old=none", "old=week"]
    );
    assert_eq!(
        labels(buckets(&store, StatStep::Day).await),
        vec!["old=none", "old=quarter", "old=week"]
    );
    assert_eq!(store.prune_stats(now).await.unwrap(), 0);
}
