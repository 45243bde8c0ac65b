//! `recloop simulate`: a synthetic shop run against a live recloop over HTTP.
//!
//! Users with hidden tastes (`world`) come in sessions, browse a little by themselves, ask for
//! ten recommendations, and click, add to cart and buy by their true affinity, which wears off
//! each time they see the same item again. Three arms run the same sessions (`arms`): recloop
//! (learning in the background, as in production), popularity (a recloop of its own, asked only
//! for its popular items) and an oracle that knows the truth. `report` writes what each got.

pub mod arms;
pub mod report;
pub mod world;

use std::{future::IntoFuture, path::PathBuf};

use anyhow::Context;
use chrono::Utc;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::{sync::watch, task::JoinHandle};

use arms::{Arm, ArmKind, Client, Shop};
use recloop::config::{Config, Secret};
use report::Report;
use world::{World, WorldParams};

/// The options of `recloop simulate`. The defaults take a few minutes on two cores.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Drive this live recloop (http://host:port) for the recloop arm instead of starting one
    /// in-process. Its ids are prefixed with the run's start time, so runs don't mix.
    #[arg(long)]
    pub url: Option<String>,
    /// API key of the live recloop.
    #[arg(long, env = "RECLOOP_API_KEY", hide_env_values = true)]
    pub api_key: Option<Secret>,
    /// Admin key of the live recloop (sent instead of the API key when given).
    #[arg(long, env = "RECLOOP_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<Secret>,
    /// Simulated users.
    #[arg(long, default_value_t = 1_000)]
    pub users: usize,
    /// Items in the shop.
    #[arg(long, default_value_t = 1_000)]
    pub items: usize,
    /// Simulated periods (days) that are measured.
    #[arg(long, default_value_t = 40)]
    pub periods: usize,
    /// Periods before those in which users only browse by themselves, so that the recloops
    /// have a history (and a first model) when the measured periods begin. The same in every
    /// arm, and not measured.
    #[arg(long, default_value_t = 2)]
    pub warmup_periods: usize,
    /// Sessions in each period.
    #[arg(long, default_value_t = 300)]
    pub sessions_per_period: usize,
    /// Seed of the world and of the schedule of sessions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where simulation.csv and simulation.svg are written.
    #[arg(long, default_value = "simulation")]
    pub out_dir: PathBuf,
    /// In-process recloops retrain in the background after this many new events (their
    /// RECLOOP_RETRAIN_AFTER_EVENTS; production's 10,000 scaled to the simulated shop).
    #[arg(long, default_value_t = 1_000)]
    pub retrain_after_events: u64,
    /// The in-process recloops' RECLOOP_IMPRESSION_PENALTY [default: the service's default].
    #[arg(long)]
    pub impression_penalty: Option<f64>,
    /// The in-process recloops' RECLOOP_EXPLORATION [default: the service's default].
    #[arg(long)]
    pub exploration: Option<f64>,
    /// The summary compares the arms over this many final periods.
    #[arg(long, default_value_t = 5)]
    pub summary_periods: usize,
}

impl Options {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.users > 0, "--users must be at least 1");
        anyhow::ensure!(
            self.items > arms::SHOWN,
            "--items must be more than {}",
            arms::SHOWN
        );
        anyhow::ensure!(self.periods > 0, "--periods must be at least 1");
        anyhow::ensure!(
            (1..=86_400).contains(&self.sessions_per_period),
            "--sessions-per-period must be from 1 to 86400"
        );
        anyhow::ensure!(
            self.summary_periods > 0,
            "--summary-periods must be at least 1"
        );
        Ok(())
    }
}

/// Runs the simulation; every in-process recloop is built from `service` (its database, keys
/// and retraining triggers replaced). Writes the CSV and the chart into `out_dir`.
pub async fn run(options: &Options, service: &Config) -> anyhow::Result<Report> {
    options.validate()?;
    let world = World::new(
        WorldParams {
            users: options.users,
            items: options.items,
            ..WorldParams::default()
        },
        options.seed,
    );
    let schedule = world.schedule(
        options.warmup_periods + options.periods,
        options.sessions_per_period,
    );
    let now = Utc::now();
    let shop = Shop {
        prefix: match options.url {
            Some(_) => format!("sim{}-", now.timestamp()),
            None => String::new(),
        },
        start: now - chrono::Duration::days((options.warmup_periods + options.periods) as i64),
        sessions_per_period: options.sessions_per_period,
    };

    let popularity = Local::start(service, options).await?;
    let (recloop_client, recloop_local) = match &options.url {
        Some(url) => {
            let key = options.admin_key.as_ref().or(options.api_key.as_ref());
            let client = Client::new(url, key.map(|k| k.expose().to_owned()))?;
            (client, None)
        }
        None => {
            let local = Local::start(service, options).await?;
            (local.client.clone(), Some(local))
        }
    };

    let bars = MultiProgress::new();
    let bar = |name: &str| {
        let bar = bars.add(ProgressBar::new(schedule.len() as u64));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} {bar:40} {pos}/{len} sessions {elapsed}")
                .expect("a valid template"),
        );
        bar.set_prefix(name.to_owned());
        bar
    };
    // The oracle needs no server: it runs first, then the two HTTP arms side by side.
    let oracle_bar = bar("oracle");
    let oracle = Arm::new(ArmKind::Oracle, None)
        .run(
            &world,
            &schedule,
            &shop,
            options.warmup_periods,
            &oracle_bar,
        )
        .await?;
    let (recloop_bar, popularity_bar) = (bar("recloop"), bar("popularity"));
    let recloop_arm = Arm::new(ArmKind::Recloop, Some(recloop_client));
    let popularity_arm = Arm::new(ArmKind::Popularity, Some(popularity.client.clone()));
    let (recloop, popular) = tokio::join!(
        recloop_arm.run(
            &world,
            &schedule,
            &shop,
            options.warmup_periods,
            &recloop_bar
        ),
        popularity_arm.run(
            &world,
            &schedule,
            &shop,
            options.warmup_periods,
            &popularity_bar
        ),
    );
    popularity.stop().await;
    if let Some(local) = recloop_local {
        local.stop().await;
    }
    let report = Report {
        arms: vec![
            (ArmKind::Recloop, recloop.context("the recloop arm")?),
            (ArmKind::Popularity, popular.context("the popularity arm")?),
            (ArmKind::Oracle, oracle),
        ],
    };

    std::fs::create_dir_all(&options.out_dir)
        .with_context(|| format!("creating {}", options.out_dir.display()))?;
    report.write_csv(&options.out_dir.join("simulation.csv"))?;
    let title = format!(
        "Simulated shop: {} users, {} items, {} sessions a day",
        options.users, options.items, options.sessions_per_period
    );
    report.write_chart(&options.out_dir.join("simulation.svg"), &title)?;
    Ok(report)
}

/// Logs to stderr at `warn` unless `RUST_LOG` says otherwise: the in-process recloops'
/// per-training lines would bury the progress bars.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// A fresh recloop in this process: its own SQLite database in a temporary directory, served
/// on a free port of 127.0.0.1, with the background trainer running as `recloop serve` runs it.
struct Local {
    client: Client,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    trainer: JoinHandle<()>,
    // Declared last: removed after everything that holds the database open.
    _dir: tempfile::TempDir,
}

impl Local {
    async fn start(service: &Config, options: &Options) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        let mut config = service.clone();
        config.database_url = format!("sqlite://{}", dir.path().join("recloop.db").display());
        config.api_key = None;
        config.admin_key = None;
        config.api_keys.clear();
        config.admin_keys.clear();
        config.retrain_after_events = options.retrain_after_events;
        if let Some(p) = options.impression_penalty {
            config.impression_penalty = p;
        }
        if let Some(e) = options.exploration {
            config.exploration = e;
        }
        // A period lasts seconds here, not a day: check for due trainings every second.
        config.trainer_tick_secs = 1;
        let app = recloop::build_app(config).await?;
        let (stop, stopped) = watch::channel(false);
        let trainer = tokio::spawn(app.state.trainer.clone().run_loop(stopped.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let mut until = stopped;
        let server = tokio::spawn(
            axum::serve(listener, app.router)
                .with_graceful_shutdown(async move {
                    let _ = until.wait_for(|s| *s).await;
                })
                .into_future(),
        );
        Ok(Self {
            client: Client::new(&base, None)?,
            stop,
            server,
            trainer,
            _dir: dir,
        })
    }

    /// Stops serving and lets a training in progress finish before the database goes.
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
        let _ = self.trainer.await;
    }
}
