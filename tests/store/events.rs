//! The event log: appends, histories, idempotency and concurrent writers.

use std::collections::{HashMap, HashSet};

use rand::{seq::SliceRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recloop::{
    domain::{EventType, NewEvent},
    store::{AppendOutcome, DynStore, HistoryEvent, Service, HISTORY_LIMIT},
};
use tokio::task::JoinSet;

use crate::support::*;

/// A new store answers, and is empty.
pub async fn ping_and_empty_store(store: DynStore) {
    store.ping().await.expect("ping");
    assert_eq!(store.max_event_seq().await.unwrap(), 0);
    let log = store.load_log().await.unwrap();
    assert!(log.rows.is_empty());
    assert_eq!(log.max_seq, 0);
    assert!(store.user_history(&user("u1")).await.unwrap().is_empty());
    assert!(store.list_items().await.unwrap().is_empty());
    assert!(store.model_versions().await.unwrap().is_empty());
    assert_eq!(store.service().await.unwrap(), Service::default());
    assert!(store.champion_model().await.unwrap().is_none());
    // An empty append is a no-op, not an error.
    assert_eq!(
        store.append_events(Vec::new()).await.unwrap(),
        AppendOutcome::default()
    );
    assert_eq!(store.max_event_seq().await.unwrap(), 0);
}

/// A user's history is their events in the order they were appended (not by timestamp), with
/// types and timestamps as sent, and nobody else's.
pub async fn append_then_history_oldest_first(store: DynStore) {
    let first = vec![
        event("alice", "sku-1", EventType::View, 1_764_238_500_000),
        event("bob", "sku-1", EventType::Purchase, 1_764_238_500_001),
        event("alice", "sku-2", EventType::Click, 1_764_238_400_123),
        event("alice", "sku-2", EventType::AddToCart, 0),
        event("alice", "sku-3", EventType::Purchase, -86_400_000),
        event("Alice", "sku-9", EventType::View, 1),
    ];
    let outcome = store.append_events(first.clone()).await.unwrap();
    assert_eq!(
        outcome,
        AppendOutcome {
            accepted: 6,
            duplicates: 0
        }
    );
    let second = vec![
        event("alice", "sku-1", EventType::View, i64::MAX),
        event("bob", "sku-4", EventType::View, 5),
    ];
    store.append_events(second.clone()).await.unwrap();

    let all: Vec<NewEvent> = first.iter().chain(&second).cloned().collect();
    for name in ["alice", "bob", "Alice"] {
        assert_eq!(
            store.user_history(&user(name)).await.unwrap(),
            history_of(&all, name),
            "history of {name}"
        );
    }
    assert!(store.user_history(&user("carol")).await.unwrap().is_empty());
}

/// Only the newest `HISTORY_LIMIT` events of a user come back, still oldest first.
pub async fn history_keeps_the_newest_events(store: DynStore) {
    let limit = HISTORY_LIMIT as usize;
    let extra = 5;
    let mine: Vec<NewEvent> = (0..limit + extra)
        .map(|i| event("heavy", &format!("i{i}"), nth_type(i), i as i64))
        .collect();
    // Split in two requests, with another user's events in between.
    let (older, newer) = mine.split_at(limit / 2);
    store.append_events(older.to_vec()).await.unwrap();
    store
        .append_events(vec![event("light", "i0", EventType::View, 7)])
        .await
        .unwrap();
    store.append_events(newer.to_vec()).await.unwrap();

    let history = store.user_history(&user("heavy")).await.unwrap();
    assert_eq!(history.len(), limit);
    let expected = |i: usize| HistoryEvent {
        item_id: format!("i{i}"),
        event_type: nth_type(i),
        ts_ms: i as i64,
    };
    assert_eq!(history[0], expected(extra), "the oldest kept");
    assert_eq!(
        history[limit - 1],
        expected(limit + extra - 1),
        "the newest"
    );
    assert!(
        history.windows(2).all(|w| w[0].ts_ms + 1 == w[1].ts_ms),
        "oldest first, none missing"
    );
    assert_eq!(store.user_history(&user("light")).await.unwrap().len(), 1);
}

/// The sequence number grows with every append that stores something, and only then.
pub async fn max_event_seq_grows(store: DynStore) {
    let mut last = store.max_event_seq().await.unwrap();
    assert_eq!(last, 0);
    for n in 1..=5 {
        let batch = (0..n)
            .map(|i| event_with_id(&format!("e{n}-{i}"), "u", "sku", EventType::View, i))
            .collect::<Vec<_>>();
        store.append_events(batch).await.unwrap();
        let seq = store.max_event_seq().await.unwrap();
        assert!(seq >= last + n, "{seq} after {last} and {n} events");
        last = seq;
    }
    // Only duplicates: nothing stored, the sequence stays.
    let again = vec![event_with_id("e1-0", "u", "sku", EventType::View, 0)];
    assert_eq!(store.append_events(again).await.unwrap().accepted, 0);
    assert_eq!(store.max_event_seq().await.unwrap(), last);
    assert_eq!(store.load_log().await.unwrap().max_seq, last);
}

/// The log has every stored row once, in the order appended, and the newest sequence number.
pub async fn load_log_returns_every_row(store: DynStore) {
    let mut all = Vec::new();
    for batch in 0..4_i64 {
        let events: Vec<NewEvent> = (0..25_i64)
            .map(|i| {
                let n = batch * 25 + i;
                event(
                    &format!("u{}", n % 7),
                    &format!("sku-{}", n % 11),
                    nth_type(n as usize),
                    1_700_000_000_000 - n,
                )
            })
            .collect();
        store.append_events(events.clone()).await.unwrap();
        all.extend(events);
    }
    let log = store.load_log().await.unwrap();
    let expected: Vec<_> = all.iter().map(log_row).collect();
    assert_eq!(log.rows, expected, "every row, in append order");
    assert_eq!(log.max_seq, store.max_event_seq().await.unwrap());
    assert!(log.max_seq >= all.len() as i64);
}

/// An `event_id` is stored once: repeats within a request and across requests are skipped,
/// counted as duplicates, and the first one stored is the one kept.
pub async fn duplicate_event_ids_are_stored_once(store: DynStore) {
    let first = vec![
        event_with_id("e-a", "u", "sku-a", EventType::View, 1),
        event_with_id("e-b", "u", "sku-b", EventType::Click, 2),
        event_with_id("e-a", "u", "sku-x", EventType::Purchase, 3),
        event_with_id("e-a", "u", "sku-y", EventType::Purchase, 4),
    ];
    assert_eq!(
        store.append_events(first).await.unwrap(),
        AppendOutcome {
            accepted: 2,
            duplicates: 2
        }
    );
    let second = vec![
        event_with_id("e-b", "u", "sku-z", EventType::AddToCart, 5),
        event_with_id("e-c", "u", "sku-c", EventType::AddToCart, 6),
        // Ids are compared exactly: another case is another id.
        event_with_id("E-A", "u", "sku-d", EventType::View, 7),
    ];
    assert_eq!(
        store.append_events(second).await.unwrap(),
        AppendOutcome {
            accepted: 2,
            duplicates: 1
        }
    );
    let all_again = vec![
        event_with_id("e-c", "u", "sku-c", EventType::AddToCart, 6),
        event_with_id("e-a", "u", "sku-a", EventType::View, 1),
    ];
    assert_eq!(
        store.append_events(all_again).await.unwrap(),
        AppendOutcome {
            accepted: 0,
            duplicates: 2
        }
    );
    let kept = [
        event("u", "sku-a", EventType::View, 1),
        event("u", "sku-b", EventType::Click, 2),
        event("u", "sku-c", EventType::AddToCart, 6),
        event("u", "sku-d", EventType::View, 7),
    ];
    assert_eq!(
        store.user_history(&user("u")).await.unwrap(),
        history_of(&kept, "u")
    );
    assert_eq!(store.load_log().await.unwrap().rows.len(), 4);
}

/// Events without an `event_id` are all stored, even when identical.
pub async fn events_without_id_never_deduplicate(store: DynStore) {
    let same = event("u", "sku", EventType::Purchase, 42);
    let outcome = store
        .append_events(vec![same.clone(), same.clone()])
        .await
        .unwrap();
    assert_eq!(
        outcome,
        AppendOutcome {
            accepted: 2,
            duplicates: 0
        }
    );
    // Nor against an event that has an id.
    let with_id = event_with_id("e-1", "u", "sku", EventType::Purchase, 42);
    store
        .append_events(vec![with_id, same.clone()])
        .await
        .unwrap();
    let outcome = store.append_events(vec![same]).await.unwrap();
    assert_eq!(outcome.accepted, 1);
    assert_eq!(store.user_history(&user("u")).await.unwrap().len(), 5);
}

/// UUID-shaped ids (which SQLite keeps as 16 bytes when canonical) deduplicate like any other:
/// the same spelling is the same id, within a request and across requests, and any other
/// spelling (uppercase, no hyphens, a non-hex digit) is another id.
pub async fn uuid_event_ids_are_compared_exactly(store: DynStore) {
    let v4 = "9b2f6c1e-3d4a-4f5b-8c6d-7e8f9a0b1c2d";
    let spellings = [
        v4,
        "9B2F6C1E-3D4A-4F5B-8C6D-7E8F9A0B1C2D",
        "9b2f6c1e3d4a4f5b8c6d7e8f9a0b1c2d",
        "9b2f6c1e-3d4a-4f5b-8c6d-7e8f9a0b1c2g",
    ];
    let mut first: Vec<NewEvent> = spellings
        .iter()
        .enumerate()
        .map(|(i, id)| event_with_id(id, "u", "sku", EventType::View, i as i64))
        .collect();
    first.push(event_with_id(v4, "u", "sku-x", EventType::Purchase, 9));
    assert_eq!(
        store.append_events(first).await.unwrap(),
        AppendOutcome {
            accepted: 4,
            duplicates: 1
        }
    );
    let again = spellings
        .iter()
        .map(|id| event_with_id(id, "u", "sku-y", EventType::Click, 10))
        .chain([event_with_id(
            "0190b6a4-7c3e-7def-8a01-0123456789ab",
            "u",
            "sku",
            EventType::View,
            11,
        )])
        .collect();
    assert_eq!(
        store.append_events(again).await.unwrap(),
        AppendOutcome {
            accepted: 1,
            duplicates: 4
        }
    );
    assert_eq!(store.load_log().await.unwrap().rows.len(), 5);
}

/// A request as large as the API allows spans several multi-row INSERTs on either backend;
/// repeats across those chunks are still found.
pub async fn large_batch_spans_insert_chunks(store: DynStore) {
    let unique = 7_000;
    let events: Vec<NewEvent> = (0..10_000)
        .map(|i| {
            let n = i % unique;
            event_with_id(
                &format!("e{n}"),
                &format!("u{}", n % 97),
                &format!("sku-{n}"),
                nth_type(n),
                n as i64,
            )
        })
        .collect();
    assert_eq!(
        store.append_events(events).await.unwrap(),
        AppendOutcome {
            accepted: unique as u64,
            duplicates: 3_000
        }
    );
    let log = store.load_log().await.unwrap();
    assert_eq!(log.rows.len(), unique);
    let items: HashSet<&str> = log.rows.iter().map(|r| r.item_id.as_str()).collect();
    assert_eq!(items.len(), unique);
}

/// 32 concurrent requests of 1 to 50 events with distinct ids: each succeeds and every event is
/// stored exactly once.
pub async fn concurrent_appends_store_each_event_once(store: DynStore) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut batches = Vec::new();
    let mut n = 0_usize;
    for _ in 0..32 {
        let len = rng.gen_range(1..=50);
        let batch: Vec<NewEvent> = (0..len)
            .map(|_| {
                n += 1;
                // A few shared users, so that every user's events come from many requests.
                event_with_id(
                    &format!("e{n}"),
                    &format!("u{}", n % 5),
                    &format!("sku-{}", n % 13),
                    nth_type(n),
                    n as i64,
                )
            })
            .collect();
        batches.push(batch);
    }
    let total = n;
    let all: Vec<NewEvent> = batches.iter().flatten().cloned().collect();

    let mut tasks = JoinSet::new();
    for batch in batches {
        let store = store.clone();
        let len = batch.len() as u64;
        tasks.spawn(async move { (len, store.append_events(batch).await) });
    }
    let mut accepted = 0;
    while let Some(joined) = tasks.join_next().await {
        let (len, outcome) = joined.expect("the append task");
        let outcome = outcome.expect("a concurrent append");
        assert_eq!(
            outcome,
            AppendOutcome {
                accepted: len,
                duplicates: 0
            }
        );
        accepted += outcome.accepted;
    }
    assert_eq!(accepted, total as u64);

    let log = store.load_log().await.unwrap();
    assert_eq!(
        sorted_rows(log.rows.clone()),
        sorted_rows(all.iter().map(log_row).collect()),
        "every event exactly once"
    );
    assert_eq!(log.max_seq, store.max_event_seq().await.unwrap());
    assert!(log.max_seq >= total as i64);
    // Each user's events are in the same order in the log (commit order) as in their history
    // (timestamp order, ties in commit order) once the log is sorted stably by timestamp:
    // training and serving see one history.
    for u in 0..5 {
        let name = format!("u{u}");
        let mut in_log: Vec<HistoryEvent> = log
            .rows
            .iter()
            .filter(|r| r.user_id == name)
            .map(|r| HistoryEvent {
                item_id: r.item_id.clone(),
                event_type: r.event_type,
                ts_ms: r.ts_ms,
            })
            .collect();
        in_log.sort_by_key(|e| e.ts_ms);
        let history = store.user_history(&user(&name)).await.unwrap();
        assert_same_order(&in_log, &history, &name);
    }
}

/// Like `assert_eq!`, with a message short enough to read: where the two orders part.
fn assert_same_order(in_log: &[HistoryEvent], history: &[HistoryEvent], name: &str) {
    if in_log == history {
        return;
    }
    let at = in_log
        .iter()
        .zip(history)
        .position(|(a, b)| a != b)
        .unwrap_or(in_log.len().min(history.len()));
    let around = |events: &[HistoryEvent]| -> Vec<i64> {
        events[at.saturating_sub(2)..(at + 3).min(events.len())]
            .iter()
            .map(|e| e.ts_ms)
            .collect()
    };
    panic!(
        "{name}'s events are in another order in the log than in the history: \
         {} and {} events, first difference at position {at}; \
         timestamps around it in the log {:?}, in the history {:?}",
        in_log.len(),
        history.len(),
        around(in_log),
        around(history)
    );
}

/// Clients retrying concurrently: 32 requests drawing from one pool of ids, in any order.
/// Every id is stored once, no request fails, and the counts add up.
pub async fn concurrent_overlapping_appends_are_idempotent(store: DynStore) {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let pool: Vec<NewEvent> = (0..200)
        .map(|n| {
            event_with_id(
                &format!("e{n}"),
                &format!("u{}", n % 9),
                &format!("sku-{n}"),
                nth_type(n),
                n as i64,
            )
        })
        .collect();
    let mut batches = Vec::new();
    for _ in 0..32 {
        let len = rng.gen_range(1..=50);
        let batch: Vec<NewEvent> = pool.choose_multiple(&mut rng, len).cloned().collect();
        batches.push(batch);
    }
    let sent: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let distinct: HashMap<String, NewEvent> = batches
        .iter()
        .flatten()
        .map(|e| (e.event_id.as_ref().unwrap().as_str().to_owned(), e.clone()))
        .collect();

    let mut tasks = JoinSet::new();
    for batch in batches {
        let store = store.clone();
        tasks.spawn(async move { store.append_events(batch).await });
    }
    let mut totals = AppendOutcome::default();
    let mut errors = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("the append task") {
            Ok(o) => {
                totals.accepted += o.accepted;
                totals.duplicates += o.duplicates;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        let mut kinds: HashMap<String, usize> = HashMap::new();
        for e in &errors {
            *kinds.entry(e.clone()).or_default() += 1;
        }
        panic!("{} of 32 appends failed: {kinds:#?}", errors.len());
    }
    assert_eq!(totals.accepted, distinct.len() as u64);
    assert_eq!(totals.accepted + totals.duplicates, sent);
    let log = store.load_log().await.unwrap();
    assert_eq!(
        sorted_rows(log.rows),
        sorted_rows(distinct.values().map(log_row).collect())
    );
}

/// A user's stamp (event count, newest sequence number) changes with every event stored for
/// them, and with nothing else.
pub async fn user_stamp_follows_the_users_events(store: DynStore) {
    let stamp = |name: &'static str| {
        let store = store.clone();
        async move { store.user_stamp(&user(name)).await.unwrap() }
    };
    assert_eq!(stamp("u").await, (0, 0));
    store
        .append_events(vec![
            event_with_id("e1", "u", "sku-1", EventType::View, 1),
            event("v", "sku-1", EventType::View, 2),
        ])
        .await
        .unwrap();
    let first = stamp("u").await;
    assert_eq!(first.0, 1);
    assert!(first.1 > 0);

    // Another user's event, and a duplicate of this user's: nothing changes for them.
    store
        .append_events(vec![
            event("v", "sku-2", EventType::Click, 3),
            event_with_id("e1", "u", "sku-1", EventType::View, 1),
        ])
        .await
        .unwrap();
    assert_eq!(stamp("u").await, first);

    store
        .append_events(vec![event("u", "sku-2", EventType::Purchase, 4)])
        .await
        .unwrap();
    let second = stamp("u").await;
    assert_eq!(second.0, 2);
    assert!(second.1 > first.1);
    assert_eq!(second.1, store.max_event_seq().await.unwrap());
    assert_eq!(stamp("v").await.0, 2);
}
