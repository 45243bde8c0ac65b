//! Where a case runs: a fresh SQLite file in its own temporary directory, or a fresh PostgreSQL
//! database on the server `RECLOOP_TEST_POSTGRES_URL` names. Either is removed when the
//! `TestDb` is dropped, also when the case panics.

use std::future::Future;

use recloop::store::DynStore;
use sqlx::Connection;
use tempfile::TempDir;

use crate::pg::{self, PgDatabase};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    /// Runs a case on a freshly opened store of this kind.
    pub async fn run<F, Fut>(self, case: F)
    where
        F: FnOnce(DynStore) -> Fut,
        Fut: Future<Output = ()>,
    {
        let Some(db) = TestDb::create(self).await else {
            return;
        };
        let store = db.open().await;
        case(store).await;
    }

    /// Runs a case that opens (and reopens) the store itself.
    pub async fn run_db<F, Fut>(self, case: F)
    where
        F: FnOnce(TestDb) -> Fut,
        Fut: Future<Output = ()>,
    {
        if let Some(db) = TestDb::create(self).await {
            case(db).await;
        }
    }
}

/// One test's own database, created empty and not yet opened (no migrations applied).
pub struct TestDb {
    kind: Kind,
    url: String,
    // Held only for its `Drop`: removes the directory or drops the database.
    _cleanup: Cleanup,
}

enum Cleanup {
    Dir { _dir: TempDir },
    Database { _database: PgDatabase },
}

impl TestDb {
    /// None when the backend is not available and the test is to be skipped.
    async fn create(kind: Kind) -> Option<Self> {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("creating a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("store.db").display());
                Some(Self {
                    kind,
                    url,
                    _cleanup: Cleanup::Dir { _dir: dir },
                })
            }
            Kind::Postgres => {
                let admin_url = pg::admin_url()?;
                let database = PgDatabase::create(&admin_url).await;
                Some(Self {
                    kind,
                    url: database.url().to_owned(),
                    _cleanup: Cleanup::Database {
                        _database: database,
                    },
                })
            }
        }
    }

    /// One more fresh database of the same kind, cleaned up the same way.
    pub async fn another(&self) -> Self {
        Self::create(self.kind)
            .await
            .expect("the backend of an existing database")
    }

    /// The URL `recloop::store::connect` takes.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Opens the store, applying the migrations, as the service does at start-up.
    pub async fn open(&self) -> DynStore {
        recloop::store::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e:?}", self.url))
    }

    /// Runs SQL on the database from a session of its own, as an operator or another release
    /// would, behind the store's back.
    pub async fn execute(&self, sql: &str) {
        match self.kind {
            Kind::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Kind::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}
