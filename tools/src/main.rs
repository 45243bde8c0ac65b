//! Thin: parse the command line, build the app, run it. `serve` and `train` are the `recloop`
//! library's; `evaluate`, `simulate`, `synth` and `import` are this crate's tools.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use recloop::{config::Config, learn::Outcome};

/// mimalloc rather than glibc's allocator: the request path allocates small, short-lived
/// buffers on two threads, and training frees large ones that glibc's arenas kept resident
/// (RSS rose at every retraining in the soak). Measured in the README's serving and soak figures.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "recloop",
    version,
    about = "Recommendations that learn from every event"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service with its background trainer.
    Serve(#[command(flatten)] Box<Config>),
    /// Train once against the configured database and print the version and its metrics.
    Train(#[command(flatten)] Box<Config>),
    /// Score the training pipeline offline on a given split (evaluation.md's protocol).
    Evaluate {
        #[arg(long)]
        train: PathBuf,
        #[arg(long)]
        test: PathBuf,
        /// One JSON line per algorithm instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Run a simulated shop against recloop, popularity and an oracle; write a CSV and a chart.
    Simulate(#[command(flatten)] Box<recloop_tools::simulate::Options>),
    /// Write a synthetic shop log (CSV for `import`): power-law popularity, planted tastes, a
    /// view → click → add_to_cart → purchase funnel. Same arguments, same bytes.
    Synth {
        #[arg(long, default_value_t = 100_000)]
        users: usize,
        #[arg(long, default_value_t = 20_000)]
        items: usize,
        #[arg(long, default_value_t = 5_000_000)]
        events: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Latent topics items belong to and users have tastes for.
        #[arg(long, default_value_t = 32)]
        tastes: usize,
        /// Days the sessions spread over.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Unix seconds every timestamp is before [default: today's 00:00 UTC, so the output
        /// changes at most once a day and never lies in the future].
        #[arg(long)]
        end: Option<i64>,
        /// Output file; `-` is standard output.
        #[arg(long, default_value = "-")]
        out: PathBuf,
    },
    /// Write a consistent copy of the SQLite database to FILE, while the service runs.
    Backup {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://recloop.db")]
        database_url: String,
    },
    /// Replace the (stopped) SQLite database with a backup made by `recloop backup`.
    Restore {
        file: PathBuf,
        #[arg(long, env = "DATABASE_URL", default_value = "sqlite://recloop.db")]
        database_url: String,
    },
    /// Write every user's recommendations (or the listed users') as JSON lines, with the model
    /// and filters of serving; nothing is recorded as shown.
    ExportRecommendations {
        /// Output file; `-` is standard output.
        #[arg(long)]
        out: PathBuf,
        /// A file of user ids, one per line [default: every user with events].
        #[arg(long)]
        users: Option<PathBuf>,
        /// Items per user.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=100))]
        n: u16,
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Bulk-load an event log (CSV: user_id,item_id,type,timestamp).
    Import {
        file: PathBuf,
        #[command(flatten)]
        config: Box<Config>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => {
            recloop::telemetry::init_tracing(config.log_json);
            recloop::serve(*config).await
        }
        Command::Train(config) => {
            recloop::telemetry::init_tracing(config.log_json);
            let app = recloop::build_app(*config).await?;
            match app.state.trainer.run_once().await? {
                Outcome::NoEvents => anyhow::bail!("no events to train on"),
                Outcome::Busy => anyhow::bail!("another process is training; try again later"),
                Outcome::Trained(r) => {
                    println!(
                        "version {} {} in {:.2}s: {}",
                        r.version,
                        r.status.as_str(),
                        r.training_seconds,
                        r.reason
                    );
                    println!("{}", serde_json::to_string_pretty(&r.metrics)?);
                }
            }
            Ok(())
        }
        Command::Evaluate {
            train,
            test,
            json,
            config,
        } => recloop_tools::evaluate::run(
            &train,
            &test,
            &recloop::learn::TrainingParams::from_config(&config),
            json,
        ),
        Command::Backup { out, database_url } => {
            let r = recloop::store::backup::backup(&database_url, &out)?;
            println!(
                "backed up to {} in {:.2}s: {} bytes, events up to seq {}, {} model versions",
                out.display(),
                r.seconds,
                r.bytes,
                r.max_event_seq,
                r.model_versions
            );
            Ok(())
        }
        Command::Restore { file, database_url } => {
            let r = recloop::store::backup::restore(&file, &database_url)?;
            println!(
                "restored {} in {:.2}s: {} bytes, events up to seq {}, {} model versions",
                file.display(),
                r.seconds,
                r.bytes,
                r.max_event_seq,
                r.model_versions
            );
            Ok(())
        }
        Command::ExportRecommendations {
            out,
            users,
            n,
            config,
        } => {
            let store = recloop::store::connect(&config.database_url)
                .await
                .context("opening the database")?;
            let users = match &users {
                Some(file) => recloop_tools::export::Users::File(file),
                None => recloop_tools::export::Users::All,
            };
            let n = usize::from(n);
            let report = if out.as_os_str() == "-" {
                recloop_tools::export::run(&config, store, users, n, std::io::stdout().lock())
                    .await?
            } else {
                // Renamed into place once whole: a failed export leaves no file that looks done.
                let partial = out.with_extension("partial");
                let file = std::fs::File::create(&partial)
                    .with_context(|| format!("creating {}", partial.display()))?;
                let report = recloop_tools::export::run(&config, store, users, n, file).await?;
                std::fs::rename(&partial, &out)
                    .with_context(|| format!("moving the export to {}", out.display()))?;
                report
            };
            eprintln!(
                "exported {} users ({} personalized) in {:.1}s: {:.0} users/s",
                report.users,
                report.personalized,
                report.seconds,
                report.users as f64 / report.seconds.max(1e-9)
            );
            Ok(())
        }
        Command::Simulate(options) => {
            recloop_tools::simulate::init_tracing();
            let report = recloop_tools::simulate::run(&options, &Config::default_for("")).await?;
            print!("{}", report.summary(options.summary_periods));
            println!(
                "wrote {} and {}",
                options.out_dir.join("simulation.csv").display(),
                options.out_dir.join("simulation.svg").display()
            );
            Ok(())
        }
        Command::Synth {
            users,
            items,
            events,
            seed,
            tastes,
            days,
            end,
            out,
        } => {
            let now = chrono::Utc::now().timestamp();
            let params = recloop_tools::synth::SynthParams {
                users,
                items,
                events,
                seed,
                tastes,
                days,
                end: end.unwrap_or(now - now.rem_euclid(86_400)),
            };
            let summary = if out.as_os_str() == "-" {
                recloop_tools::synth::write_csv(&params, std::io::stdout().lock())
            } else {
                let file = std::fs::File::create(&out)
                    .with_context(|| format!("creating {}", out.display()))?;
                recloop_tools::synth::write_csv(&params, file)
            }
            .context("writing the log")?;
            eprintln!(
                "{} events ({} view, {} click, {} add_to_cart, {} purchase) by {} users",
                summary.events,
                summary.by_type[0],
                summary.by_type[1],
                summary.by_type[2],
                summary.by_type[3],
                summary.active_users
            );
            Ok(())
        }
        Command::Import { file, config } => {
            recloop::telemetry::init_tracing(config.log_json);
            let app = recloop::build_app(*config).await?;
            let events = recloop_tools::import::read_csv(&file)?;
            let report = recloop_tools::import::import(&app.state.store, events, true)
                .await
                .context("importing")?;
            println!(
                "{} rows: {} accepted, {} duplicates",
                report.rows, report.accepted, report.duplicates
            );
            Ok(())
        }
    }
}
