//! End-to-end tests over real HTTP: one binary, each test its own server on 127.0.0.1:0 and
//! its own database. Every test is written once, as `pub async fn <test>(backend: Backend)` in
//! its module, and runs on both backends (listed below): as `sqlite::<module>::<test>` (a
//! database file in a temporary directory) and `postgres::<module>::<test>` (a database of its
//! own on the server `RECLOOP_TEST_POSTGRES_URL` names; skipped without it, see `backend`).
//! Run both with
//!
//!     scripts/with-postgres cargo test --test api
//!
//! A test of one backend's own failure modes is a plain `#[tokio::test]` in its module (e.g.
//! `corruption::a_corrupt_sqlite_file_answers_500_not_503`).
//!
//! `helpers` holds the harness, `backend` the databases, `data` the synthetic event logs,
//! `faults` a store wrapper that injects storage failures and holds a training at a known point.

mod backend;
mod catalog;
mod corruption;
mod data;
mod errors;
mod events;
mod faults;
mod helpers;
mod keys;
mod model;
mod online;
mod ops;
#[path = "../common/pg.rs"]
mod pg;
mod recommendations;
mod rollback;
mod stats;
mod users;

/// Generates `mod sqlite` and `mod postgres`, each with a module per test module and in it one
/// `#[tokio::test]` per test. A test may name the runtime it needs in parentheses (the arguments
/// of `#[tokio::test]`); attributes before a test (e.g. `#[ignore = "..."]`) apply to both of its
/// instances. A test function not listed here is never used, which the build warns about.
macro_rules! on_both_backends {
    (@backend $backend:ident, $kind:ident,
        $($module:ident: [$($(#[$meta:meta])* $test:ident $(($($runtime:tt)*))?),* $(,)?]),* $(,)?
    ) => {
        mod $backend {
            $(
                mod $module {
                    $(
                        $(#[$meta])*
                        #[tokio::test$(($($runtime)*))?]
                        async fn $test() {
                            crate::backend::Backend::$kind.run(crate::$module::$test).await;
                        }
                    )*
                }
            )*
        }
    };
    ($($tests:tt)*) => {
        on_both_backends!(@backend sqlite, Sqlite, $($tests)*);
        on_both_backends!(@backend postgres, Postgres, $($tests)*);
    };
}

on_both_backends! {
    catalog: [
        items_are_put_read_upserted_and_deleted,
        unknown_items_are_404,
        invalid_items_are_422_and_store_nothing,
    ],
    corruption: [
        a_stored_value_this_version_cannot_read_answers_500,
    ],
    errors: [
        malformed_json_is_400,
        a_body_that_is_not_json_is_415,
        an_oversized_body_is_413_and_stores_nothing,
        unknown_routes_are_404_and_wrong_methods_405_in_the_envelope,
        query_parameters_are_checked,
    ],
    events: [
        one_event_and_a_batch_are_accepted_and_stored,
        ids_are_used_as_they_are,
        same_event_id_is_stored_once,
        a_batch_breaking_any_rule_is_rejected_whole,
        every_broken_rule_is_reported,
        batch_size_is_1_to_10000,
        timestamps_up_to_five_minutes_ahead_and_far_in_the_past_are_accepted,
        many_concurrent_writers_lose_nothing(flavor = "multi_thread", worker_threads = 2),
    ],
    keys: [
        the_api_key_guards_every_v1_route,
        the_key_tests_cover_every_v1_operation,
        operations_routes_need_no_key,
        admin_routes_need_the_admin_key,
        an_admin_key_alone_leaves_reads_open,
        a_key_is_rotated_without_refusing_either,
        requests_are_counted_per_key_fingerprint,
    ],
    users: [
        an_erased_user_leaves_nothing_in_any_table,
        a_replica_that_cached_the_user_forgets_them,
        a_retrain_after_erasure_is_the_model_of_a_log_that_never_had_them,
        an_erasure_during_a_training_does_not_bring_them_back,
    ],
    rollback: [
        an_earlier_version_goes_back_in_service_on_every_replica,
        a_pinned_version_survives_restarts_and_trainings,
        an_activation_ends_the_running_challenger,
        what_cannot_serve_is_refused,
    ],
    model: [
        there_is_no_model_before_the_first_training,
        a_training_is_reported_by_model_and_versions,
        a_worse_candidate_is_rejected_and_the_old_model_keeps_serving,
        retrain_is_409_while_a_training_runs_and_wait_waits_it_out,
        a_restart_keeps_events_catalog_and_model,
    ],
    online: [
        events_naming_a_response_are_credited_to_its_version,
        impressions_older_than_the_retention_are_purged_and_the_totals_stay,
        a_new_model_first_serves_its_share_as_challenger,
        the_challenger_is_promoted_or_retired_by_hand,
        the_online_rule_promotes_a_better_challenger_and_retires_a_worse_one,
        an_item_shown_without_a_click_falls_in_that_users_ranking,
        without_penalty_or_exploration_repeated_requests_agree,
        a_bought_item_never_comes_back,
        exploration_shows_little_known_and_new_items_in_its_share,
        another_replica_follows_the_challenger_from_the_database,
    ],
    ops: [
        health_and_readiness,
        openapi_describes_every_contract_path,
        metrics_are_prometheus_text_with_recloop_names,
        storage_down_is_503_and_half_writes_nothing,
        an_events_request_answered_503_stores_nothing,
    ],
    recommendations: [
        recommendations_have_the_contract_shape,
        a_user_without_history_gets_popular_items_never_an_error,
        one_acknowledged_purchase_makes_the_next_response_personal,
        the_latest_events_shape_the_very_next_recommendations,
        hidden_items_never_come_back,
        unavailable_and_deleted_items_are_never_recommended,
        a_category_filter_returns_only_that_category,
        a_narrow_category_ranks_past_the_cached_shortlist,
        similar_items_come_from_the_same_taste,
        popular_lists_recent_popularity,
        explanations_split_an_ease_score_over_the_history,
        explanations_split_an_ials_score_over_the_history,
        trending_in_category_and_co_users_explain_lists_that_are_not_personal,
    ],
    stats: [
        the_counts_match_what_was_posted_served_and_credited,
        bad_stats_queries_are_422,
    ],
}
