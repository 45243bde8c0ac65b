//! Where a test's app keeps its data: a SQLite file in a temporary directory of its own, or a
//! PostgreSQL database of its own on the server `RECLOOP_TEST_POSTGRES_URL` names (see
//! `../common/pg.rs`). Either is removed when the `TestDb` is dropped, also when the test panics.

use std::{future::Future, sync::Arc};

use recloop::store::{postgres::PostgresStore, DynStore};
use sqlx::{Connection, PgConnection, PgPool, SqliteConnection};
use tempfile::TempDir;

use crate::pg::{self, PgDatabase};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// Runs a test on this backend. A PostgreSQL test is skipped (said once, on stderr) when no
    /// server is configured, or fails if one is required (`RECLOOP_REQUIRE_POSTGRES=1`).
    pub async fn run<F, Fut>(self, test: F)
    where
        F: FnOnce(Backend) -> Fut,
        Fut: Future<Output = ()>,
    {
        if self == Backend::Postgres && pg::admin_url().is_none() {
            return;
        }
        test(self).await;
    }
}

/// One test's own database, created empty (the app applies the migrations when it opens it).
pub struct TestDb {
    backend: Backend,
    url: String,
    // Held only for its `Drop`: removes the directory or drops the database.
    _cleanup: Cleanup,
}

enum Cleanup {
    Dir { _dir: TempDir },
    Database { _database: PgDatabase },
}

impl TestDb {
    pub async fn create(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("creating a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("test.db").display());
                Self {
                    backend,
                    url,
                    _cleanup: Cleanup::Dir { _dir: dir },
                }
            }
            Backend::Postgres => {
                let admin_url =
                    pg::admin_url().expect("a PostgreSQL server (`Backend::run` checked)");
                let database = PgDatabase::create(&admin_url).await;
                Self {
                    backend,
                    url: database.url().to_owned(),
                    _cleanup: Cleanup::Database {
                        _database: database,
                    },
                }
            }
        }
    }

    /// The URL `recloop::store::connect` takes.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens the store, applying the migrations, as the service does at start-up (what
    /// `recloop::store::connect` does: on PostgreSQL the same `PostgresStore::open`, called
    /// here directly to keep its pool for `Connections::close`).
    pub async fn open(&self) -> (DynStore, Connections) {
        match self.backend {
            Backend::Sqlite => {
                let store = recloop::store::connect(&self.url)
                    .await
                    .unwrap_or_else(|e| panic!("opening {}: {e:?}", self.url));
                (store, Connections(None))
            }
            Backend::Postgres => {
                let store = PostgresStore::open(&self.url)
                    .await
                    .unwrap_or_else(|e| panic!("opening {}: {e:?}", self.url));
                let pool = store.pool().clone();
                (Arc::new(store), Connections(Some(pool)))
            }
        }
    }

    /// Runs SQL on the database from a session of its own, as an operator or another release
    /// would, behind the app's back.
    pub async fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }

    /// The SQLite database's file.
    pub fn sqlite_file(&self) -> std::path::PathBuf {
        assert_eq!(self.backend, Backend::Sqlite, "only SQLite keeps a file");
        let path = self.url.strip_prefix("sqlite://").expect("a sqlite:// URL");
        std::path::PathBuf::from(path)
    }

    /// Another session takes the lock that keeps every writer out while readers go on, as a
    /// backup or a migration in another process would: SQLite's write lock (`BEGIN
    /// IMMEDIATE`), or an `EXCLUSIVE` lock on every table on PostgreSQL.
    pub async fn lock_writes(&self) -> WriteLock {
        match self.backend {
            Backend::Sqlite => {
                let mut conn = SqliteConnection::connect(&self.url)
                    .await
                    .expect("a second connection");
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut conn)
                    .await
                    .expect("taking the write lock");
                WriteLock::Sqlite(conn)
            }
            Backend::Postgres => {
                let mut conn = PgConnection::connect(&self.url)
                    .await
                    .expect("a second connection");
                sqlx::query("BEGIN")
                    .execute(&mut conn)
                    .await
                    .expect("BEGIN");
                sqlx::query(
                    "LOCK TABLE events, items, model_versions, model_blobs IN EXCLUSIVE MODE",
                )
                .execute(&mut conn)
                .await
                .expect("locking the tables");
                WriteLock::Postgres(conn)
            }
        }
    }
}

/// The connections of one opened store. SQLite's close when the store is dropped; a
/// `PostgresStore` keeps its pool open for its model listener, for as long as the process runs.
#[derive(Default)]
pub struct Connections(Option<PgPool>);

impl Connections {
    /// Ends them, as the exit of the process that opened the store would: nothing of the old
    /// instance is connected afterwards.
    pub async fn close(self) {
        let Some(pool) = self.0 else {
            return;
        };
        // Closes the idle connections, and no new one is opened (the listener's reconnects
        // fail from now on); but the listener's own connection lingers until its task lets
        // go of it, about a second later. A dying process would cut it at once: so do we,
        // waiting (up to 5 s; PostgreSQL 14 or later) until each session has ended.
        pool.close().await;
        let mut conn = PgConnection::connect_with(&pool.connect_options())
            .await
            .expect("a connection to end the old sessions");
        sqlx::query(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .execute(&mut conn)
        .await
        .expect("ending the old instance's sessions");
        let _ = conn.close().await;
    }
}

/// A writer lock held by a session of its own (see `TestDb::lock_writes`).
pub enum WriteLock {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

impl WriteLock {
    pub async fn release(self) {
        match self {
            WriteLock::Sqlite(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            WriteLock::Postgres(mut conn) => {
                sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}
