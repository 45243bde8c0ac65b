//! JSON documents (item attributes, model metrics and params) come back as the same numbers.
//! JSON has one number type: an integral float may come back as an integer, but never as
//! another number, and never as an error.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use recloop::store::{DynStore, ItemUpsert, ModelStatus};
use serde_json::{json, Map, Number, Value};

use crate::support::*;

/// Numbers at the edges of f64, i64 and u64, and seeded random doubles of every magnitude.
fn numbers() -> Vec<Value> {
    let mut values = vec![
        json!(0),
        json!(-0.0),
        json!(2.0),
        json!(0.1),
        json!(0.30000000000000004),
        json!(1e-7),
        json!(123_456_789.123_456_79),
        json!(1e16),
        json!(-1e17),
        json!(1.5e300),
        json!(f64::MAX),
        json!(f64::MIN),
        json!(f64::MIN_POSITIVE),
        json!(5e-324),
        json!(i64::MIN),
        json!(u64::MAX),
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    while values.len() < 300 {
        let v = f64::from_bits(rng.gen());
        if v.is_finite() {
            values.push(json!(v));
        }
    }
    values
}

fn same_number(a: &Number, b: &Number) -> bool {
    let integral = |n: &Number| n.is_i64() || n.is_u64();
    if integral(a) && integral(b) {
        a.as_i64() == b.as_i64() && a.as_u64() == b.as_u64()
    } else {
        a.as_f64() == b.as_f64()
    }
}

/// Equality of JSON values, numbers compared as numbers.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => same_number(a, b),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_json(v, w)))
        }
        (a, b) => a == b,
    }
}

/// The keys of `sent` whose values did not come back, with both values.
fn differences(sent: &Value, got: &Value) -> Vec<String> {
    let (Value::Object(sent), Value::Object(got)) = (sent, got) else {
        return vec![format!("sent {sent}, got {got}")];
    };
    sent.iter()
        .filter(|(k, v)| !got.get(*k).is_some_and(|w| same_json(v, w)))
        .map(|(k, v)| format!("{k}: sent {v}, got {}", got.get(k).unwrap_or(&Value::Null)))
        .collect()
}

fn document() -> Value {
    let map: Map<String, Value> = numbers()
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("n{i:03}"), v))
        .collect();
    Value::Object(map)
}

fn assert_same(what: &str, sent: &Value, got: &Value) {
    let diff = differences(sent, got);
    assert!(
        diff.is_empty(),
        "{what}: {} of {} numbers changed, e.g. {:#?}",
        diff.len(),
        sent.as_object().map_or(0, Map::len),
        &diff[..diff.len().min(8)]
    );
}

pub async fn json_numbers_round_trip(store: DynStore) {
    let doc = document();

    let upsert = ItemUpsert {
        attributes: doc.clone(),
        ..item_upsert("sku-numbers", "Numbers")
    };
    store.upsert_items(vec![upsert]).await.unwrap();
    let item = store
        .get_item(&item_id("sku-numbers"))
        .await
        .expect("reading the item back")
        .expect("the item");
    assert_same("attributes via get_item", &doc, &item.attributes);
    let listed = store.list_items().await.expect("listing the catalog");
    assert_same("attributes via list_items", &doc, &listed[0].attributes);

    let mut record = model_record(ModelStatus::Accepted, 1);
    record.metrics = doc.clone();
    record.params = json!({"nested": doc.clone()});
    store.insert_model(record, Some(vec![1])).await.unwrap();
    let versions = store.model_versions().await.expect("reading the versions");
    assert_same("metrics", &doc, &versions[0].metrics);
    assert_same("params", &doc, &versions[0].params["nested"]);
}
