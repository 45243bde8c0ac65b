//! Thin: parse the command line, build the app, run it.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use recloop::{config::Config, training::Outcome};

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
    Simulate(#[command(flatten)] Box<recloop::simulate::Options>),
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
        } => recloop::evaluate::run(
            &train,
            &test,
            &recloop::training::TrainingParams::from_config(&config),
            json,
        ),
        Command::Simulate(options) => {
            recloop::simulate::init_tracing();
            let report = recloop::simulate::run(&options, &Config::default_for("")).await?;
            print!("{}", report.summary(options.summary_periods));
            println!(
                "wrote {} and {}",
                options.out_dir.join("simulation.csv").display(),
                options.out_dir.join("simulation.svg").display()
            );
            Ok(())
        }
        Command::Import { file, config } => {
            recloop::telemetry::init_tracing(config.log_json);
            let app = recloop::build_app(*config).await?;
            let events = recloop::import::read_csv(&file)?;
            let report = recloop::import::import(&app.state.store, events, true)
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
