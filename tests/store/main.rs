//! The conformance suite of `recloop::store::Store`: every case is written once, against the
//! trait, and runs on both backends, as `sqlite::<case>` (a database file in a temporary
//! directory) and `postgres::<case>` (a database of its own on the server named by
//! `RECLOOP_TEST_POSTGRES_URL`; see `backend` and `../common/pg.rs`). Run both with
//!
//!     scripts/with-postgres cargo test --test store

mod backend;
mod catalog;
mod corrupt;
mod events;
mod json;
mod lifecycle;
mod models;
mod online;
#[path = "../common/pg.rs"]
mod pg;
mod stats;
mod support;

/// Generates `mod sqlite` and `mod postgres`, each with one `#[tokio::test]` per case.
/// `store` cases take the opened `DynStore`; `database` cases take the `TestDb` and open it
/// themselves. Attributes before a case (e.g. `#[ignore = "..."]`) apply to both of its tests.
macro_rules! conformance {
    (
        store: [$($(#[$smeta:meta])* $smod:ident :: $scase:ident),* $(,)?],
        database: [$($(#[$dmeta:meta])* $dmod:ident :: $dcase:ident),* $(,)?] $(,)?
    ) => {
        conformance!(@backend sqlite, Sqlite,
            [$($(#[$smeta])* $smod::$scase),*], [$($(#[$dmeta])* $dmod::$dcase),*]);
        conformance!(@backend postgres, Postgres,
            [$($(#[$smeta])* $smod::$scase),*], [$($(#[$dmeta])* $dmod::$dcase),*]);
    };
    (@backend $backend:ident, $kind:ident,
        [$($(#[$smeta:meta])* $smod:ident :: $scase:ident),*],
        [$($(#[$dmeta:meta])* $dmod:ident :: $dcase:ident),*]
    ) => {
        mod $backend {
            $(
                $(#[$smeta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $scase() {
                    crate::backend::Kind::$kind.run(crate::$smod::$scase).await;
                }
            )*
            $(
                $(#[$dmeta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $dcase() {
                    crate::backend::Kind::$kind.run_db(crate::$dmod::$dcase).await;
                }
            )*
        }
    };
}

conformance! {
    store: [
        events::ping_and_empty_store,
        events::append_then_history_oldest_first,
        events::history_keeps_the_newest_events,
        events::max_event_seq_grows,
        events::load_log_returns_every_row,
        events::duplicate_event_ids_are_stored_once,
        events::events_without_id_never_deduplicate,
        events::uuid_event_ids_are_compared_exactly,
        events::large_batch_spans_insert_chunks,
        events::concurrent_appends_store_each_event_once,
        events::concurrent_overlapping_appends_are_idempotent,
        events::user_stamp_follows_the_users_events,
        catalog::upsert_inserts_then_updates,
        catalog::upsert_many_in_one_call,
        catalog::attributes_and_categories_round_trip,
        catalog::delete_item_then_it_is_gone,
        catalog::delete_item_seen_only_in_events,
        catalog::second_delete_of_item_with_events_is_false,
        catalog::upsert_after_delete_revives,
        catalog::unicode_ids_are_distinct,
        models::model_versions_round_trip_newest_first,
        models::the_champion_is_the_newest_accepted,
        models::an_activated_version_serves_until_replaced_or_unpinned,
        json::json_numbers_round_trip,
        online::impressions_round_trip_newest_first,
        online::user_activity_is_history_and_responses,
        online::credit_needs_the_same_user_and_a_shown_item,
        online::a_settled_range_is_not_read_again,
        online::purge_takes_old_impressions_and_keeps_totals,
        online::a_challenger_is_decided_once,
        online::an_erasure_takes_responses_and_holds_back_older_ones,
        online::user_ids_page_through_every_user_once,
        stats::increments_add_up_in_their_minute_hour_and_day,
        stats::each_step_is_pruned_after_its_retention,
    ],
    database: [
        lifecycle::reopen_keeps_everything,
        lifecycle::concurrent_first_opens,
        corrupt::values_this_version_cannot_read_are_corrupt,
    ],
}
