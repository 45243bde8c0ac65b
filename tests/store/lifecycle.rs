//! Opening a database again: what was acknowledged is there, and the migrations run again
//! harmlessly.

use recloop::{
    domain::{EventType, NewEvent},
    store::{DynStore, Item, Log, ModelRecord, ModelStatus},
};

use crate::{backend::TestDb, support::*};

/// Everything a store holds, for comparing before and after reopening.
#[derive(Debug, PartialEq)]
struct Contents {
    max_seq: i64,
    log: Vec<recloop::store::LogRow>,
    history: Vec<recloop::store::HistoryEvent>,
    items: Vec<Item>,
    models: Vec<ModelRecord>,
    latest: Option<(ModelRecord, Vec<u8>)>,
}

async fn contents(store: &DynStore) -> Contents {
    let Log { rows, max_seq } = store.load_log().await.unwrap();
    let mut items = store.list_items().await.unwrap();
    items.sort_by(|a, b| a.item_id.cmp(&b.item_id));
    Contents {
        max_seq,
        log: sorted_rows(rows),
        history: store.user_history(&user("u1")).await.unwrap(),
        items,
        models: store.model_versions().await.unwrap(),
        latest: store.champion_model().await.unwrap(),
    }
}

fn some_events(from: usize, n: usize) -> Vec<NewEvent> {
    (from..from + n)
        .map(|i| {
            event_with_id(
                &format!("e{i}"),
                &format!("u{}", i % 3),
                &format!("sku-{}", i % 4),
                nth_type(i),
                i as i64,
            )
        })
        .collect()
}

/// Writes some of everything from a runtime of its own that then shuts down, as a process that
/// exits would; returns what it read back before exiting.
fn write_in_another_runtime(url: String) -> Contents {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let store = recloop::store::connect(&url).await.expect("opening");
            store.append_events(some_events(0, 40)).await.unwrap();
            store
                .upsert_items(vec![
                    item_upsert("sku-0", "Zero"),
                    item_upsert("sku-1", "One"),
                ])
                .await
                .unwrap();
            assert!(store.delete_item(&item_id("sku-1")).await.unwrap());
            assert!(store.delete_item(&item_id("sku-2")).await.unwrap());
            store
                .insert_model(model_record(ModelStatus::Accepted, 1), Some(vec![1, 2, 3]))
                .await
                .unwrap();
            store
                .insert_model(model_record(ModelStatus::Rejected, 2), None)
                .await
                .unwrap();
            contents(&store).await
        })
        // The runtime is dropped here: its tasks (the SQLite writer) and connections end.
    })
    .join()
    .expect("the writing thread")
}

/// Closing and opening again keeps events, items (and tombstones) and models; sequence numbers
/// and versions go on from where they were; opening again and again is harmless.
pub async fn reopen_keeps_everything(db: TestDb) {
    let before = write_in_another_runtime(db.url().to_owned());
    assert_eq!(before.log.len(), 40);
    assert_eq!(before.items.len(), 3);
    assert_eq!(before.models.len(), 2);

    let store = db.open().await;
    assert_eq!(contents(&store).await, before);
    // Idempotent duplicates survive too.
    let again = store.append_events(some_events(30, 20)).await.unwrap();
    assert_eq!((again.accepted, again.duplicates), (10, 10));
    assert!(store.max_event_seq().await.unwrap() > before.max_seq);
    let v3 = store
        .insert_model(model_record(ModelStatus::Accepted, 3), Some(vec![9]))
        .await
        .unwrap();
    assert!(v3.version > before.models[0].version);
    let after_writes = contents(&store).await;
    drop(store);

    // Twice more: the migrations are already applied and stay so.
    for _ in 0..2 {
        let store = db.open().await;
        store.ping().await.unwrap();
        assert_eq!(contents(&store).await, after_writes);
    }
}

/// Instances opening one new database at once (replicas, or the server and `recloop train`
/// started together) all succeed and share one set of tables. Eight openers, each on a task
/// of its own, on three fresh databases: enough for a race between migrations to show.
pub async fn concurrent_first_opens(db: TestDb) {
    let more = [db.another().await, db.another().await];
    for db in std::iter::once(&db).chain(&more) {
        let opens: Vec<_> = (0..8)
            .map(|_| {
                let url = db.url().to_owned();
                tokio::spawn(async move { recloop::store::connect(&url).await })
            })
            .collect();
        let mut stores: Vec<DynStore> = Vec::new();
        for (n, open) in opens.into_iter().enumerate() {
            let opened = open.await.expect("the opening task");
            stores.push(opened.unwrap_or_else(|e| panic!("opener {n}: {e:?}")));
        }
        stores[0]
            .append_events(vec![event("u", "sku", EventType::View, 1)])
            .await
            .unwrap();
        for store in &stores {
            assert_eq!(store.user_history(&user("u")).await.unwrap().len(), 1);
        }
    }
}
