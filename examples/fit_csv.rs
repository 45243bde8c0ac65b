//! Times recloop's ALS fit alone on a CSV log (or on a matrix exported from one), for
//! `benches/implicit_compare.sh`, and prints one JSON line.
//!
//! The CSV goes through the training pipeline's own indexing (`IndexedLog`, the service's
//! default event weights, `Interactions`), so the matrix is the one `recloop train` would fit.
//! `--export-matrix` writes that matrix (summed event weights per user×item) in a small binary
//! format that the Python side of the comparison reads, so both libraries fit the very same
//! numbers; `--matrix` reads it back, so both processes also start from the same footprint.
//!
//! ```text
//! cargo run --release --example fit_csv -- --csv log.csv --export-matrix m.bin --no-fit
//! cargo run --release --example fit_csv -- --matrix m.bin --factors 64 --iterations 15 --threads 2
//! ```
//!
//! Matrix format (little endian): `n_users: u64, n_items: u64, nnz: u64`, then `nnz` user
//! indices (u32), `nnz` item indices (u32), `nnz` summed weights (f32), rows in (user, item)
//! order.

use std::{
    io::{BufWriter, Read, Write},
    path::PathBuf,
    time::Instant,
};

use anyhow::{bail, Context};
use clap::Parser;
use recloop::{
    domain::{EventType, EventWeights},
    learn::fit::IndexedLog,
    model::{als, AlsParams, Interactions, LogEvent},
    store::{Log, LogRow},
};

#[derive(Parser)]
struct Args {
    /// A log in `recloop import`'s CSV format (user_id,item_id,type,timestamp).
    #[arg(long, conflicts_with = "matrix", required_unless_present = "matrix")]
    csv: Option<PathBuf>,
    /// A matrix written by `--export-matrix`.
    #[arg(long)]
    matrix: Option<PathBuf>,
    /// Write the matrix here (before fitting).
    #[arg(long)]
    export_matrix: Option<PathBuf>,
    /// Only load (and export); do not fit.
    #[arg(long)]
    no_fit: bool,
    #[arg(long, default_value_t = 64)]
    factors: usize,
    #[arg(long, default_value_t = 15)]
    iterations: usize,
    #[arg(long, default_value_t = AlsParams::default().cg_steps)]
    cg_steps: usize,
    #[arg(long, default_value_t = AlsParams::default().regularization)]
    regularization: f32,
    #[arg(long, default_value_t = AlsParams::default().alpha)]
    alpha: f32,
    /// Rayon threads of the fit.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let data = match (&args.csv, &args.matrix) {
        (Some(csv), _) => from_csv(csv)?,
        (None, Some(matrix)) => read_matrix(matrix)?,
        (None, None) => bail!("give --csv or --matrix"),
    };
    let load_seconds = started.elapsed().as_secs_f64();
    if let Some(path) = &args.export_matrix {
        write_matrix(&data, path)?;
    }
    let mut report = serde_json::json!({
        "users": data.n_users(),
        "items": data.n_items(),
        "nnz": data.nnz(),
        "load_seconds": load_seconds,
        "load_peak_rss_mb": status_mb("VmHWM"),
    });
    if !args.no_fit {
        let params = AlsParams {
            factors: args.factors,
            iterations: args.iterations,
            cg_steps: args.cg_steps,
            regularization: args.regularization,
            alpha: args.alpha,
            ..AlsParams::default()
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(args.threads)
            .build()?;
        let rss_before = status_mb("VmRSS");
        reset_peak_rss();
        let cpu = cpu_seconds();
        let t = Instant::now();
        let model = pool.install(|| als::fit(&data, &params));
        let fit_seconds = t.elapsed().as_secs_f64();
        let fit_cpu_seconds = cpu_seconds().zip(cpu).map(|(b, a)| b - a);
        let extra = serde_json::json!({
            "factors": params.factors,
            "iterations": params.iterations,
            "cg_steps": params.cg_steps,
            "threads": args.threads,
            "kernel": als::fit_kernel(params.factors),
            "fit_seconds": fit_seconds,
            "fit_cpu_seconds": fit_cpu_seconds,
            "rss_before_fit_mb": rss_before,
            "peak_rss_during_fit_mb": status_mb("VmHWM"),
            "checksum": model.item_factors.iter().map(|v| f64::from(v.abs())).sum::<f64>(),
        });
        if let (Some(r), Some(e)) = (report.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
    }
    println!("{report}");
    Ok(())
}

/// The CSV through the training pipeline: ids numbered as training does, default weights.
fn from_csv(path: &PathBuf) -> anyhow::Result<Interactions> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("no {name} column"))
    };
    let (u, i, t, ts) = (
        col("user_id")?,
        col("item_id")?,
        col("type")?,
        col("timestamp")?,
    );
    let mut log = Log::default();
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record)? {
        log.rows.push(LogRow {
            user_id: record[u].to_owned(),
            item_id: record[i].to_owned(),
            event_type: record[t].parse::<EventType>().map_err(anyhow::Error::msg)?,
            ts_ms: record[ts].parse::<i64>().context("timestamp")? * 1000,
        });
    }
    let indexed = IndexedLog::new(&log, &EventWeights::default());
    drop(log);
    Ok(Interactions::from_events(
        indexed.n_users,
        indexed.item_ids.len(),
        &indexed.events,
    ))
}

fn write_matrix(data: &Interactions, path: &PathBuf) -> anyhow::Result<()> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    for n in [data.n_users(), data.n_items(), data.nnz()] {
        out.write_all(&(n as u64).to_le_bytes())?;
    }
    let rows = || (0..data.n_users() as u32).map(|u| (u, data.user_row(u)));
    for (u, (items, _)) in rows() {
        for _ in items {
            out.write_all(&u.to_le_bytes())?;
        }
    }
    for (_, (items, _)) in rows() {
        for i in items {
            out.write_all(&i.to_le_bytes())?;
        }
    }
    for (_, (_, weights)) in rows() {
        for w in weights {
            out.write_all(&w.to_le_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

fn read_matrix(path: &PathBuf) -> anyhow::Result<Interactions> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .read_to_end(&mut bytes)?;
    let word = |at: usize| -> anyhow::Result<[u8; 8]> {
        Ok(bytes
            .get(at..at + 8)
            .context("truncated header")?
            .try_into()?)
    };
    let (n_users, n_items, nnz) = (
        u64::from_le_bytes(word(0)?) as usize,
        u64::from_le_bytes(word(8)?) as usize,
        u64::from_le_bytes(word(16)?) as usize,
    );
    if bytes.len() != 24 + 12 * nnz {
        bail!(
            "{}: {} bytes for {nnz} entries",
            path.display(),
            bytes.len()
        );
    }
    let column = |c: usize| {
        bytes[24 + 4 * nnz * c..24 + 4 * nnz * (c + 1)]
            .chunks_exact(4)
            .map(|b| [b[0], b[1], b[2], b[3]])
    };
    let events: Vec<LogEvent> = column(0)
        .zip(column(1))
        .zip(column(2))
        .map(|((u, i), w)| LogEvent {
            user: u32::from_le_bytes(u),
            item: u32::from_le_bytes(i),
            weight: f32::from_le_bytes(w),
            ts: 0,
            purchase: false,
        })
        .collect();
    drop(bytes);
    Ok(Interactions::from_events(n_users, n_items, &events))
}

/// A `kB` line of /proc/self/status, in MB (Linux only; `null` elsewhere).
fn status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// User + system CPU time of the process (Linux only): on a shared machine wall time
/// also counts the time other processes had the cores.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ, 100 on every Linux port
}

/// Resets VmHWM to the current RSS, so the peak read after the fit is the fit's own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
