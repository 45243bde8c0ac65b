//! A short run of `recloop simulate`: the loop, learning in the background from its own
//! events, must beat popularity on the same simulated shoppers.

use recloop::{
    config::Config,
    simulate::{arms::ArmKind, run, Options},
};

/// A shop small enough for an unoptimised build: 200 users, 300 items, 12 periods.
fn options(out_dir: std::path::PathBuf) -> Options {
    Options {
        url: None,
        api_key: None,
        admin_key: None,
        users: 200,
        items: 300,
        periods: 12,
        warmup_periods: 2,
        sessions_per_period: 150,
        seed: 1,
        out_dir,
        retrain_after_events: 300,
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
    assert_eq!(csv.lines().count(), 1 + 12 * 3);
    let svg = std::fs::read_to_string(dir.path().join("simulation.svg")).expect("the chart");
    assert!(svg.contains("<svg") && svg.contains("oracle"));
}
