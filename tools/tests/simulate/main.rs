//! A short run of `recloop simulate`: the loop, learning in the background from its own
//! events, must beat popularity on the same simulated shoppers.

use std::future::IntoFuture;

use recloop::{config::Config, domain::EventType};
use recloop_tools::simulate::{arms::ArmKind, run, Options};

/// A shop small enough for an unoptimised build: 200 users, 300 items, 16 periods. The first
/// retraining must land before the last 6 (the ones scored), and a period lasts well under a
/// second here: the 10 periods before them leave a debug-build training on a loaded CI machine
/// time to finish (with 12, one CI run of 2026-12-03 scored the last 6 on the first model).
fn options(out_dir: std::path::PathBuf) -> Options {
    Options {
        url: None,
        api_key: None,
        admin_key: None,
        users: 200,
        items: 300,
        periods: 16,
        warmup_periods: 2,
        sessions_per_period: 150,
        seed: 1,
        out_dir,
        retrain_after_events: 300,
        impression_penalty: None,
        exploration: None,
        summary_periods: 6,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_beats_popularity_on_the_same_shoppers() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = options(dir.path().to_owned());
    let mut service = Config::default_for("");
    // 16 factors and 5 sweeps: the test build fits the default model far too slowly.
    service.factors = 16;
    service.iterations = 5;

    let report = run(&options, &service).await.expect("the simulation runs");
    println!("{}", report.summary(options.summary_periods));

    let last = |arm| report.last(arm, options.summary_periods);
    let (recloop, popularity, oracle) = (
        last(ArmKind::Recloop),
        last(ArmKind::Popularity),
        last(ArmKind::Oracle),
    );
    for t in [&recloop, &popularity, &oracle] {
        assert_eq!(t.sessions, 6 * 150);
        assert!(t.impressions > 0, "every arm showed something: {t:?}");
    }
    assert!(
        recloop.model_version.is_some_and(|v| v >= 2),
        "recloop retrained in the background: {recloop:?}"
    );
    assert!(
        recloop.ctr() > 1.5 * popularity.ctr(),
        "recloop CTR {:.4} vs popularity {:.4}",
        recloop.ctr(),
        popularity.ctr()
    );
    assert!(
        oracle.ctr() > recloop.ctr(),
        "nobody beats the oracle: {:.4} vs {:.4}",
        oracle.ctr(),
        recloop.ctr()
    );

    let csv = std::fs::read_to_string(dir.path().join("simulation.csv")).expect("the CSV");
    assert_eq!(csv.lines().count(), 1 + options.periods * 3);
    let svg = std::fs::read_to_string(dir.path().join("simulation.svg")).expect("the chart");
    assert!(svg.contains("<svg") && svg.contains("oracle"));
}

/// `--url`: the recloop arm drives a recloop running elsewhere, with its key, under ids of its
/// own; the popularity arm still gets an in-process one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_recloop_is_driven_over_http_with_its_key() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config =
        Config::default_for(format!("sqlite://{}", dir.path().join("live.db").display()));
    config.factors = 8;
    config.iterations = 3;
    config.trainer_tick_secs = 1;
    config.retrain_after_events = 200;
    config.api_key = Some("sim-key".parse().expect("a key"));
    let app = recloop::build_app(config.clone())
        .await
        .expect("the live app");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let trainer = tokio::spawn(app.state.trainer.clone().run_loop(stopped));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(axum::serve(listener, app.router).into_future());

    let mut options = options(dir.path().join("out"));
    options.url = Some(url);
    options.api_key = config.api_key.clone();
    options.periods = 2;
    options.summary_periods = 2;
    let mut service = Config::default_for("");
    service.factors = 8;
    service.iterations = 3;
    let report = run(&options, &service).await.expect("the simulation runs");

    let recloop = report.last(ArmKind::Recloop, 2);
    assert_eq!(recloop.sessions, 2 * 150);
    assert!(recloop.impressions > 0 && recloop.model_version.is_some());
    let log = app.state.store.load_log().await.expect("the live log").rows;
    assert!(log.iter().any(|r| r.event_type == EventType::Click));
    assert!(
        log.iter()
            .all(|r| r.user_id.starts_with("sim") && r.item_id.starts_with("sim")),
        "every id carries the run's prefix"
    );
    let _ = stop.send(true);
    server.abort();
    let _ = trainer.await;
}
