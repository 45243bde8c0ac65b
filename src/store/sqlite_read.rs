//! The request path's reads on SQLite: a few threads, each owning a read-only connection, take
//! jobs from one queue in arrival order and answer each through a oneshot channel.
//!
//! Why not the sqlx pool: a cold recommendation reads one user's history, and through the pool
//! that read was an acquisition, a command sent to the connection's worker thread, a wake per
//! row streamed back, and a release that pings the worker again from a spawned task. On the
//! 20,000-item benchmark the read waited milliseconds for microseconds of SQLite work, and the
//! request's latency was mostly that wait. Here a read is one hand-off each way.

use std::{
    panic::{catch_unwind, AssertUnwindSafe},
    path::Path,
    time::Duration,
};

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::{StoreError, StoreResult};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

pub(super) struct Readers {
    jobs: flume::Sender<Job>,
}

/// A reader's own page cache (KiB): one user's history at a time.
const CACHE_KIB: i64 = 4_096;

impl Readers {
    /// Opens `threads` read-only connections to the database file at `path` (migrated
    /// already) and starts a thread for each. The threads end when the `Readers` is dropped.
    pub fn open(path: &Path, threads: usize) -> StoreResult<Self> {
        let (jobs, queue) = flume::unbounded::<Job>();
        for n in 0..threads {
            // Opened here, not on the thread, so that a bad path fails the store's opening.
            let mut conn = connect(path)?;
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("recloop-read-{n}"))
                .spawn(move || {
                    while let Ok(job) = queue.recv() {
                        // A panicking job loses its own answer (its sender is dropped and the
                        // caller gets an error), not the thread.
                        let _ = catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
                    }
                })
                .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        }
        Ok(Self { jobs })
    }

    /// Runs `read` on the next free connection.
    pub async fn run<T, F>(&self, read: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Box::new(move |conn| {
                let _ = reply.send(read(conn));
            }))
            .map_err(|_| StoreError::internal("the reader threads are gone"))?;
        // Only a panicking read drops its answer: a bug, not an outage.
        answer
            .await
            .map_err(|_| StoreError::internal("a read panicked"))?
    }
}

fn connect(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // The same wait as the pools': a reader only meets a lock while the WAL is recovered.
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    Ok(conn)
}
