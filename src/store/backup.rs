//! Whole copies of a SQLite database: `recloop backup` while the service runs and takes
//! writes, `recloop restore` into a stopped one. Models live in the database, so they travel
//! with it. (PostgreSQL has `pg_dump`; see `deploy/README.md`.)
//!
//! Both go through SQLite's online backup API in one step: the copy is one consistent snapshot
//! (the source's readers and its one writer go on meanwhile, since the database is in WAL
//! mode), written to a temporary file that is checked and only then renamed into place.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use rusqlite::{
    backup::{Backup, StepResult},
    Connection, OpenFlags,
};
use sqlx::sqlite::SqliteConnectOptions;

/// What a copy holds.
#[derive(Debug, Clone, PartialEq)]
pub struct CopyReport {
    pub bytes: u64,
    /// The newest event's sequence number: every event acknowledged before the copy began has
    /// one at most this.
    pub max_event_seq: i64,
    pub model_versions: i64,
    pub seconds: f64,
}

/// The file a `sqlite://` URL names.
fn sqlite_path(database_url: &str) -> anyhow::Result<PathBuf> {
    if !database_url.starts_with("sqlite:") {
        bail!(
            "backup and restore copy a SQLite database; for PostgreSQL use pg_dump and \
             pg_restore (deploy/README.md)"
        );
    }
    let options = SqliteConnectOptions::from_str(database_url)
        .with_context(|| "reading the database URL".to_string())?;
    let path = options.get_filename().to_path_buf();
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
        bail!("an in-memory database has nothing to copy");
    }
    Ok(path)
}

/// Copies `from` into a new file at `to` (through `to` + `.partial`, renamed once whole and
/// checked), in one step of the online backup API.
fn copy(from: &Connection, to: &Path) -> anyhow::Result<()> {
    let partial = to.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    {
        let mut out = Connection::open(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let backup = Backup::new(from, &mut out)?;
        // Every page in one step (-1): a snapshot. In several, any write to the source by
        // another connection would restart the copy, and under steady ingest it would never
        // end.
        loop {
            match backup.step(-1).context("copying the database")? {
                StepResult::Done => break,
                StepResult::More | StepResult::Busy | StepResult::Locked => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                other => bail!("copying the database: {other:?}"),
            }
        }
        drop(backup);
        check(&out).context("checking the copy")?;
        // One self-contained file, without a write-ahead log beside it; the service puts the
        // database back in WAL mode when it opens a restored copy.
        let _: String = out.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    }
    std::fs::rename(&partial, to)
        .with_context(|| format!("moving the copy to {}", to.display()))?;
    Ok(())
}

/// A whole, readable recloop database.
fn check(db: &Connection) -> anyhow::Result<()> {
    let verdict: String = db.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if verdict != "ok" {
        bail!("the integrity check failed: {verdict}");
    }
    for table in [
        "events",
        "model_versions",
        "model_blobs",
        "_sqlx_migrations",
    ] {
        let n: i64 = db.query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )?;
        if n == 0 {
            bail!("not a recloop database: it has no {table} table");
        }
    }
    Ok(())
}

fn report(db: &Connection, file: &Path, started: Instant) -> anyhow::Result<CopyReport> {
    Ok(CopyReport {
        bytes: std::fs::metadata(file)?.len(),
        max_event_seq: db
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))?,
        model_versions: db.query_row("SELECT COUNT(*) FROM model_versions", [], |r| r.get(0))?,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Whether another connection has the database open: one in exclusive locking mode cannot
/// take its lock while any other holds the WAL index.
fn in_use(path: &Path) -> anyhow::Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let db = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    db.busy_timeout(Duration::ZERO)?;
    let _: String = db.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |r| r.get(0))?;
    match db.execute_batch("BEGIN EXCLUSIVE; COMMIT;") {
        Ok(()) => Ok(false),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            Ok(true)
        }
        Err(e) => Err(e).context("checking whether the database is in use"),
    }
}

fn open(path: &Path, flags: OpenFlags) -> anyhow::Result<Connection> {
    let db = Connection::open_with_flags(path, flags)
        .with_context(|| format!("opening {}", path.display()))?;
    db.busy_timeout(Duration::from_secs(30))?;
    Ok(db)
}

/// Writes a consistent copy of the database `database_url` names to `out`, while the service
/// may go on using it.
pub fn backup(database_url: &str, out: &Path) -> anyhow::Result<CopyReport> {
    let started = Instant::now();
    let path = sqlite_path(database_url)?;
    if !path.exists() {
        bail!("there is no database at {}", path.display());
    }
    let source = open(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    copy(&source, out)?;
    let copied = open(out, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    report(&copied, out, started)
}

/// Replaces the database `database_url` names with the backup `file`, after checking that it
/// is a whole recloop database. The service must be stopped: it would go on answering from
/// what it had loaded.
pub fn restore(file: &Path, database_url: &str) -> anyhow::Result<CopyReport> {
    let started = Instant::now();
    let backup = open(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    check(&backup).with_context(|| format!("{} cannot be restored", file.display()))?;
    let path = sqlite_path(database_url)?;
    if in_use(&path)? {
        bail!(
            "{} is in use (is recloop serving it?): stop every process using it, then restore",
            path.display()
        );
    }
    // The old database's WAL belongs to the old file: left behind, SQLite would apply it to
    // the restored one.
    for stale in ["-wal", "-shm"] {
        let mut name = path.clone().into_os_string();
        name.push(stale);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
    copy(&backup, &path)?;
    let restored = open(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    report(&restored, &path, started)
}
