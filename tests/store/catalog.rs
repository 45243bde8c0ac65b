//! The catalog: upserts, tombstones, and what comes back exactly as it went in.

use recloop::{
    domain::EventType,
    store::{DynStore, Item, ItemUpsert},
};
use serde_json::json;

use crate::support::*;

fn find<'a>(items: &'a [Item], id: &str) -> Option<&'a Item> {
    items.iter().find(|i| i.item_id == id)
}

/// An upsert inserts, a second one replaces every field; what `upsert_items` returns is what
/// `get_item` and `list_items` read back.
pub async fn upsert_inserts_then_updates(store: DynStore) {
    let stored = store
        .upsert_items(vec![item_upsert("sku-1", "Red shoes")])
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    let first = stored[0].clone();
    assert_eq!(first.item_id, "sku-1");
    assert_eq!(first.title.as_deref(), Some("Red shoes"));
    assert_eq!(first.categories, ["shoes", "sale"]);
    assert!(first.available);
    assert_eq!(first.attributes, json!({"price": 19.99, "brand": "Acme"}));
    assert_eq!(first.updated_at.timestamp_subsec_nanos() % 1_000_000, 0);
    assert_eq!(
        store.get_item(&item_id("sku-1")).await.unwrap(),
        Some(first.clone())
    );

    let update = ItemUpsert {
        item_id: item_id("sku-1"),
        title: None,
        categories: vec![],
        available: false,
        attributes: json!({}),
    };
    let second = store.upsert_items(vec![update]).await.unwrap().remove(0);
    assert_eq!(second.title, None);
    assert!(second.categories.is_empty());
    assert!(!second.available);
    assert_eq!(second.attributes, json!({}));
    assert!(second.updated_at >= first.updated_at);
    assert_eq!(
        store.get_item(&item_id("sku-1")).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(store.list_items().await.unwrap(), vec![second]);
    assert_eq!(store.get_item(&item_id("sku-2")).await.unwrap(), None);
}

/// Many items in one call, including the same id twice (the later one wins).
pub async fn upsert_many_in_one_call(store: DynStore) {
    let mut batch: Vec<ItemUpsert> = (0..300)
        .map(|i| item_upsert(&format!("sku-{i}"), &format!("Item {i}")))
        .collect();
    batch.push(item_upsert("sku-7", "Item 7, renamed"));
    let stored = store.upsert_items(batch).await.unwrap();
    assert_eq!(stored.len(), 301);
    let listed = store.list_items().await.unwrap();
    assert_eq!(listed.len(), 300);
    assert_eq!(
        find(&listed, "sku-7").and_then(|i| i.title.as_deref()),
        Some("Item 7, renamed")
    );
    assert_eq!(
        store.get_item(&item_id("sku-299")).await.unwrap().as_ref(),
        find(&listed, "sku-299")
    );
}

/// Attributes (any JSON object) and categories (in their order) come back as they went in.
pub async fn attributes_and_categories_round_trip(store: DynStore) {
    let attributes = json!({
        "brand": "Ñandú 🦀 \"quoted\" \\ back\\slash, new\nline, tab\t, bell\u{7}",
        "price": 19.99,
        "whole_float": 2.0,
        "third": 1.0 / 3.0,
        "tiny": 1e-7,
        "negative_float": -273.15,
        "stock": 0,
        "negative": -42,
        "max_u64": u64::MAX,
        "min_i64": i64::MIN,
        "flags": [true, false, null],
        "nested": {"a": {"b": [], "c": {}}, "": "empty key"},
        "数": "字",
        "z": 1, "a": 2,
        "long": "x".repeat(10_000),
    });
    let categories = vec![
        "z-last-first".to_owned(),
        "a".to_owned(),
        "Schuhe & Stiefel".to_owned(),
        "靴".to_owned(),
    ];
    let upsert = ItemUpsert {
        item_id: item_id("sku-json"),
        title: Some("Ünïcödé — \"title\" 'quoted' 🎉".to_owned()),
        categories: categories.clone(),
        available: true,
        attributes: attributes.clone(),
    };
    let returned = store.upsert_items(vec![upsert]).await.unwrap().remove(0);
    let read = store
        .get_item(&item_id("sku-json"))
        .await
        .unwrap()
        .expect("the item");
    assert_eq!(read, returned);
    assert_eq!(read.attributes, attributes);
    assert_eq!(read.categories, categories);
    assert_eq!(
        read.title.as_deref(),
        Some("Ünïcödé — \"title\" 'quoted' 🎉")
    );
    assert_eq!(store.list_items().await.unwrap(), vec![read]);
}

/// Deleting: true, then false; the tombstone lists as unavailable and `get_item` hides it.
pub async fn delete_item_then_it_is_gone(store: DynStore) {
    store
        .upsert_items(vec![
            item_upsert("sku-1", "Kept"),
            item_upsert("sku-2", "Deleted"),
        ])
        .await
        .unwrap();
    assert!(store.delete_item(&item_id("sku-2")).await.unwrap());
    assert_eq!(store.get_item(&item_id("sku-2")).await.unwrap(), None);
    assert!(
        !store.delete_item(&item_id("sku-2")).await.unwrap(),
        "a second delete finds nothing"
    );
    assert!(
        !store.delete_item(&item_id("never-seen")).await.unwrap(),
        "an unknown item"
    );

    let listed = store.list_items().await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(find(&listed, "sku-1").unwrap().available);
    assert!(!find(&listed, "sku-2").unwrap().available);
    assert!(find(&listed, "never-seen").is_none());
    assert!(store.get_item(&item_id("sku-1")).await.unwrap().is_some());
}

/// An item known only from events can be deleted: it then lists as unavailable, so it is never
/// recommended, and `get_item` still does not find it.
pub async fn delete_item_seen_only_in_events(store: DynStore) {
    store
        .append_events(vec![event("u", "from-events", EventType::Purchase, 1)])
        .await
        .unwrap();
    assert_eq!(store.get_item(&item_id("from-events")).await.unwrap(), None);
    assert!(store.list_items().await.unwrap().is_empty());

    assert!(store.delete_item(&item_id("from-events")).await.unwrap());
    assert_eq!(store.get_item(&item_id("from-events")).await.unwrap(), None);
    let listed = store.list_items().await.unwrap();
    assert_eq!(listed.len(), 1);
    let tombstone = &listed[0];
    assert_eq!(tombstone.item_id, "from-events");
    assert!(!tombstone.available);
    assert_eq!(tombstone.title, None);
    assert!(tombstone.categories.is_empty());
    assert_eq!(tombstone.attributes, json!({}));
    // Its events are kept.
    assert_eq!(store.user_history(&user("u")).await.unwrap().len(), 1);
}

/// A second delete of an item that has events finds nothing to delete, as for any other item.
pub async fn second_delete_of_item_with_events_is_false(store: DynStore) {
    store
        .upsert_items(vec![item_upsert("in-catalog", "Has events")])
        .await
        .unwrap();
    store
        .append_events(vec![
            event("u", "in-catalog", EventType::View, 1),
            event("u", "only-events", EventType::View, 2),
        ])
        .await
        .unwrap();
    for id in ["in-catalog", "only-events"] {
        assert!(
            store.delete_item(&item_id(id)).await.unwrap(),
            "first delete of {id}"
        );
        assert!(
            !store.delete_item(&item_id(id)).await.unwrap(),
            "second delete of {id}"
        );
    }
}

/// Upserting a deleted item brings it back, with the new fields.
pub async fn upsert_after_delete_revives(store: DynStore) {
    store
        .append_events(vec![event("u", "from-events", EventType::View, 1)])
        .await
        .unwrap();
    store
        .upsert_items(vec![item_upsert("sku-1", "Old")])
        .await
        .unwrap();
    assert!(store.delete_item(&item_id("sku-1")).await.unwrap());
    assert!(store.delete_item(&item_id("from-events")).await.unwrap());

    let revived = store
        .upsert_items(vec![
            item_upsert("sku-1", "New"),
            item_upsert("from-events", "Now in the catalog"),
        ])
        .await
        .unwrap();
    for item in &revived {
        assert_eq!(
            store
                .get_item(&item_id(&item.item_id))
                .await
                .unwrap()
                .as_ref(),
            Some(item)
        );
    }
    let mut listed = store.list_items().await.unwrap();
    listed.sort_by(|a, b| a.item_id.cmp(&b.item_id));
    let mut expected = revived.clone();
    expected.sort_by(|a, b| a.item_id.cmp(&b.item_id));
    assert_eq!(listed, expected);
    assert!(listed.iter().all(|i| i.available));
    assert!(
        store.delete_item(&item_id("sku-1")).await.unwrap(),
        "deletable again"
    );
}

/// Ids are used exactly as given: Unicode, look-alikes, case, spaces, SQL and LIKE characters.
pub async fn unicode_ids_are_distinct(store: DynStore) {
    let ids = [
        "é",        // precomposed
        "e\u{301}", // e + combining acute: looks the same, is another id
        "A",
        "a",
        "sku 1",
        "sku 1 ",
        "商品/42?x=1#frag",
        "🦀🦀",
        "'; DROP TABLE items; --",
        "100%_done\\",
        "ß",
        "SS",
    ];
    let long = "ж".repeat(256);
    let all: Vec<&str> = ids.iter().copied().chain([long.as_str()]).collect();
    let upserts = all
        .iter()
        .enumerate()
        .map(|(n, id)| item_upsert(id, &format!("title {n}")))
        .collect();
    store.upsert_items(upserts).await.unwrap();
    for (n, id) in all.iter().enumerate() {
        let item = store.get_item(&item_id(id)).await.unwrap();
        let item = item.unwrap_or_else(|| panic!("item {id:?}"));
        assert_eq!(item.item_id, *id);
        assert_eq!(item.title, Some(format!("title {n}")), "{id:?}");
    }
    assert_eq!(store.list_items().await.unwrap().len(), all.len());

    // Users and items in events too.
    let events = all
        .iter()
        .enumerate()
        .map(|(n, id)| event(id, id, EventType::Click, n as i64))
        .collect::<Vec<_>>();
    store.append_events(events).await.unwrap();
    for (n, id) in all.iter().enumerate() {
        let history = store.user_history(&user(id)).await.unwrap();
        assert_eq!(history.len(), 1, "{id:?}");
        assert_eq!(history[0].item_id, *id);
        assert_eq!(history[0].ts_ms, n as i64);
    }

    assert!(store.delete_item(&item_id("e\u{301}")).await.unwrap());
    assert!(store.get_item(&item_id("é")).await.unwrap().is_some());
    assert!(store
        .get_item(&item_id("e\u{301}"))
        .await
        .unwrap()
        .is_none());
}
