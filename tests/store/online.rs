//! The online tables: impressions, credit, totals, and model statuses for challengers.

use recloop::{
    domain::EventType,
    store::{Arm, DynStore, Impression, ModelStatus, OnlineCounts},
};

use crate::support::*;

fn shown(id: &str, user: &str, version: i64, arm: Arm, items: &[&str], ms: i64) -> Impression {
    Impression {
        recommendation_id: id.to_owned(),
        user_id: user.to_owned(),
        model_version: version,
        arm,
        experiment: if arm == Arm::Challenger { version } else { 0 },
        source: "personalized".to_owned(),
        items: items.iter().map(|s| s.to_string()).collect(),
        shown_ms: ms,
    }
}

fn naming(
    user: &str,
    item: &str,
    t: EventType,
    recommendation_id: &str,
) -> recloop::domain::NewEvent {
    let mut e = event(user, item, t, 1_700_000_000_000);
    e.recommendation_id = Some(recommendation_id.to_owned());
    e
}

fn totals(counts: &[OnlineCounts], version: i64, arm: Arm) -> (i64, i64, i64, i64) {
    counts
        .iter()
        .filter(|c| c.model_version == version && c.arm == arm)
        .fold((0, 0, 0, 0), |t, c| {
            (
                t.0 + c.impressions,
                t.1 + c.clicks,
                t.2 + c.add_to_carts,
                t.3 + c.purchases,
            )
        })
}

/// A user's responses come back newest first, items in the order shown, ids intact.
pub async fn impressions_round_trip_newest_first(store: DynStore) {
    let odd = "sku 1/ü,\"x\"";
    store
        .insert_impressions(vec![
            shown("r1", "u1", 1, Arm::Champion, &["a", odd], 1_000),
            shown("r2", "u1", 1, Arm::Champion, &["b"], 3_000),
            shown("r3", "u1", 1, Arm::Champion, &["c"], 2_000),
            shown("r4", "u2", 1, Arm::Champion, &["a"], 4_000),
        ])
        .await
        .unwrap();
    let got = store.user_impressions(&user("u1"), 2).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|s| s.recommendation_id.as_str()).collect();
    assert_eq!(ids, ["r2", "r3"]);
    let all = store.user_impressions(&user("u1"), 10).await.unwrap();
    assert_eq!(all[2].items, ["a", odd]);
    assert_eq!(all[2].shown_ms, 1_000);
    let counts = store.online_counts().await.unwrap();
    assert_eq!(totals(&counts, 1, Arm::Champion), (4, 0, 0, 0));
}

/// A cold request's one read: the user's history and their newest responses, exactly as the
/// two separate reads give them; no responses when none are asked for.
pub async fn user_activity_is_history_and_responses(store: DynStore) {
    store
        .insert_impressions(vec![
            shown("r1", "u1", 1, Arm::Champion, &["a", "b"], 1_000),
            shown("r2", "u1", 1, Arm::Champion, &["c"], 2_000),
            shown("r3", "u2", 1, Arm::Champion, &["a"], 3_000),
        ])
        .await
        .unwrap();
    store
        .append_events(vec![
            event("u1", "a", EventType::Click, 1_700_000_000_000),
            event("u1", "d", EventType::Purchase, 1_600_000_000_000),
            event("u2", "a", EventType::View, 1_700_000_000_000),
        ])
        .await
        .unwrap();
    let u1 = user("u1");
    let activity = store.user_activity(&u1, 1).await.unwrap();
    assert_eq!(activity.history, store.user_history(&u1).await.unwrap());
    let items: Vec<&str> = activity
        .history
        .iter()
        .map(|h| h.item_id.as_str())
        .collect();
    assert_eq!(items, ["d", "a"]);
    assert_eq!(
        activity.shown,
        store.user_impressions(&u1, 1).await.unwrap()
    );
    assert_eq!(activity.shown.len(), 1);
    assert_eq!(activity.shown[0].recommendation_id, "r2");
    let without = store.user_activity(&u1, 0).await.unwrap();
    assert_eq!(without.history, activity.history);
    assert!(without.shown.is_empty());
    let nobody = store.user_activity(&user("nobody"), 50).await.unwrap();
    assert_eq!(nobody, Default::default());
}

/// Credit goes to the response's version and arm only for its user and a shown item, once per
/// response and event type; views earn nothing; unknown ids nothing.
pub async fn credit_needs_the_same_user_and_a_shown_item(store: DynStore) {
    store
        .insert_impressions(vec![
            shown("r1", "u1", 3, Arm::Champion, &["a", "b"], 1_000),
            shown("r2", "u2", 4, Arm::Challenger, &["ab"], 1_000),
        ])
        .await
        .unwrap();
    store
        .append_events(vec![
            naming("u1", "a", EventType::Click, "r1"),
            naming("u1", "b", EventType::Click, "r1"),
            naming("u1", "b", EventType::Purchase, "r1"),
            naming("u1", "a", EventType::View, "r1"),
            // Not shown ("a" is inside "ab", which must not match).
            naming("u2", "a", EventType::AddToCart, "r2"),
            // Another user's response.
            naming("u9", "a", EventType::AddToCart, "r1"),
            naming("u1", "a", EventType::AddToCart, "nobody-knows-v3"),
            naming("u2", "ab", EventType::AddToCart, "r2"),
        ])
        .await
        .unwrap();
    let tally = store.tally_credit(0).await.unwrap();
    assert_eq!(
        tally.credited, 3,
        "click + purchase of r1, add-to-cart of r2"
    );
    assert_eq!(tally.read_to, store.max_event_seq().await.unwrap());
    // The same range read again credits nothing twice.
    assert_eq!(store.tally_credit(0).await.unwrap().credited, 0);
    let counts = store.online_counts().await.unwrap();
    assert_eq!(totals(&counts, 3, Arm::Champion), (1, 1, 0, 1));
    assert_eq!(totals(&counts, 4, Arm::Challenger), (1, 0, 1, 0));
}

/// Until a range is settled an event is credited even if its impression is written after it;
/// once settled, the range is not read again.
pub async fn a_settled_range_is_not_read_again(store: DynStore) {
    store
        .append_events(vec![naming("u1", "a", EventType::Click, "late")])
        .await
        .unwrap();
    let first = store.tally_credit(0).await.unwrap();
    assert_eq!(first.credited, 0, "the impression is not written yet");
    store
        .insert_impressions(vec![shown("late", "u1", 1, Arm::Champion, &["a"], 1)])
        .await
        .unwrap();
    let second = store.tally_credit(first.read_to).await.unwrap();
    assert_eq!(second.credited, 1, "read again while unsettled");

    store
        .append_events(vec![naming("u1", "a", EventType::Click, "later")])
        .await
        .unwrap();
    let read = store.tally_credit(0).await.unwrap().read_to;
    store.tally_credit(read).await.unwrap();
    store
        .insert_impressions(vec![shown("later", "u1", 1, Arm::Champion, &["a"], 1)])
        .await
        .unwrap();
    assert_eq!(store.tally_credit(0).await.unwrap().credited, 0, "settled");
}

/// Purging takes impressions (and their credit marks) shown before the cutoff; totals stay.
pub async fn purge_takes_old_impressions_and_keeps_totals(store: DynStore) {
    store
        .insert_impressions(vec![
            shown("old", "u1", 1, Arm::Champion, &["a"], 1_000),
            shown("new", "u1", 1, Arm::Champion, &["a"], 5_000),
        ])
        .await
        .unwrap();
    assert_eq!(store.purge_impressions(5_000).await.unwrap(), 1);
    assert_eq!(store.purge_impressions(5_000).await.unwrap(), 0);
    let left = store.user_impressions(&user("u1"), 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].recommendation_id, "new");
    let counts = store.online_counts().await.unwrap();
    assert_eq!(totals(&counts, 1, Arm::Champion).0, 2);
}

/// A challenger is found as such; a status moves only from the status expected, once.
pub async fn a_challenger_is_decided_once(store: DynStore) {
    assert_eq!(store.challenger_version().await.unwrap(), None);
    let champion = store
        .insert_model(model_record(ModelStatus::Accepted, 0), Some(vec![1; 8]))
        .await
        .unwrap();
    let challenger = store
        .insert_model(model_record(ModelStatus::Challenger, 1), Some(vec![2; 8]))
        .await
        .unwrap();
    assert_eq!(
        store.challenger_version().await.unwrap(),
        Some(challenger.version)
    );
    let (record, blob) = store.challenger_model().await.unwrap().unwrap();
    assert_eq!((record.version, blob), (challenger.version, vec![2; 8]));
    assert_eq!(
        store.service().await.unwrap().champion,
        Some(champion.version),
        "a challenger is not the champion"
    );

    let promote = |note| {
        store.change_model_status(
            challenger.version,
            ModelStatus::Challenger,
            ModelStatus::Accepted,
            note,
        )
    };
    assert!(promote("; promoted").await.unwrap());
    assert!(!promote("; twice").await.unwrap(), "decided once");
    let versions = store.model_versions().await.unwrap();
    assert_eq!(versions[0].status, ModelStatus::Accepted);
    assert!(
        versions[0].reason.ends_with("; promoted"),
        "{}",
        versions[0].reason
    );
    assert_eq!(store.challenger_version().await.unwrap(), None);
    assert_eq!(
        store.service().await.unwrap().champion,
        Some(challenger.version)
    );
}

/// An erasure takes the user's responses and their credit marks, keeps the totals, is counted,
/// and from then on a response shown before it is not recorded (it may be the erased user's,
/// queued on some replica before the erasure).
pub async fn an_erasure_takes_responses_and_holds_back_older_ones(store: DynStore) {
    let now = chrono::Utc::now().timestamp_millis();
    store
        .insert_impressions(vec![
            shown("r1-v1", "gone", 1, Arm::Champion, &["a", "b"], now - 5_000),
            shown("r2-v1", "kept", 1, Arm::Champion, &["a"], now - 5_000),
        ])
        .await
        .unwrap();
    store
        .append_events(vec![naming("gone", "a", EventType::Click, "r1-v1")])
        .await
        .unwrap();
    store
        .tally_credit(store.max_event_seq().await.unwrap())
        .await
        .unwrap();
    let totals = store.online_counts().await.unwrap();
    assert_eq!(store.erasures().await.unwrap(), 0);

    let erased = store.erase_user(&user("gone")).await.unwrap();
    assert_eq!((erased.events, erased.responses), (1, 1));
    assert_eq!(store.erasures().await.unwrap(), 1);
    assert_eq!(
        store.export_user(&user("gone")).await.unwrap(),
        Default::default()
    );
    assert_eq!(
        store
            .user_impressions(&user("kept"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.online_counts().await.unwrap(), totals);

    store
        .insert_impressions(vec![
            shown("r3-v1", "gone", 1, Arm::Champion, &["a"], now - 1_000),
            shown("r4-v1", "kept", 1, Arm::Champion, &["a"], now + 60_000),
        ])
        .await
        .unwrap();
    assert!(store
        .user_impressions(&user("gone"), 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .user_impressions(&user("kept"), 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store.erase_user(&user("nobody")).await.unwrap(),
        Default::default()
    );
}

/// Paging through the users with events: each once, in byte order, erased ones gone.
pub async fn user_ids_page_through_every_user_once(store: DynStore) {
    assert!(store.user_ids_after(None, 10).await.unwrap().is_empty());
    let mut ids: Vec<String> = (0..25).map(|i| format!("u{i}")).collect();
    ids.extend(["Ü".to_owned(), "a b".to_owned(), "Z".to_owned()]);
    let events = ids.iter().flat_map(|u| {
        [
            event(u, "i1", EventType::View, 1),
            event(u, "i2", EventType::Click, 2),
        ]
    });
    store.append_events(events.collect()).await.unwrap();
    store.erase_user(&user("u7")).await.unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.user_ids_after(after.as_deref(), 4).await.unwrap();
        assert!(page.len() <= 4);
        let Some(last) = page.last().cloned() else {
            break;
        };
        seen.extend(page);
        after = Some(last);
    }
    ids.retain(|u| u != "u7");
    ids.sort_unstable();
    assert_eq!(seen, ids);
}
