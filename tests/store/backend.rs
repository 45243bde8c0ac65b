//! Where a case runs: a fresh SQLite file in its own temporary directory, or a fresh PostgreSQL
//! database on the server `RECLOOP_TEST_POSTGRES_URL` names. Either is removed when the
//! `TestDb` is dropped, also when the case panics.

use std::{future::Future, io::Write, sync::Once};

use recloop::store::DynStore;
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

const POSTGRES_URL_VAR: &str = "RECLOOP_TEST_POSTGRES_URL";
const REQUIRE_POSTGRES_VAR: &str = "RECLOOP_REQUIRE_POSTGRES";

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
                let admin_url = postgres_admin_url()?;
                let database = PgDatabase::create(&admin_url).await;
                Some(Self {
                    kind,
                    url: with_database(&admin_url, &database.name),
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
}

/// The superuser URL, or None (after saying so) when the PostgreSQL tests are to be skipped.
fn postgres_admin_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var(REQUIRE_POSTGRES_VAR).as_deref() == Ok("1") => panic!(
            "{POSTGRES_URL_VAR} is not set and {REQUIRE_POSTGRES_VAR}=1: \
             run the tests through scripts/with-postgres"
        ),
        _ => {
            // Straight to the process's stderr, past the test harness's capture, and once:
            // a silent pass would look like the PostgreSQL backend had been tested.
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "skipped: {POSTGRES_URL_VAR} is not set (run the tests through scripts/with-postgres)"
                );
            });
            None
        }
    }
}

/// `url` with its database (the path) replaced by `database`, keeping any query string.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let mut out = format!("{}/{database}", &base[..path]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A database of its own on the shared server, dropped (`WITH (FORCE)`) on `Drop`.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    async fn create(admin_url: &str) -> Self {
        // A ULID is unique across concurrent tests and processes; lowercase so that the quoted
        // name is the name psql shows.
        let name = format!(
            "recloop_test_{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let mut admin = PgConnection::connect(admin_url)
            .await
            .unwrap_or_else(|e| panic!("connecting to {POSTGRES_URL_VAR}: {e}"));
        admin
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
        let _ = admin.close().await;
        Self {
            admin_url: admin_url.to_owned(),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // On a thread of its own with a runtime of its own: this runs inside the test's runtime
        // (possibly while it unwinds), where blocking on a future is not allowed. Never panics.
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                admin
                    .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = admin.close().await;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!(
                "could not drop test database {}: the thread panicked",
                self.name
            ),
        }
    }
}

#[test]
fn with_database_replaces_only_the_path() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
        "postgres://postgres@127.0.0.1:5432/t1"
    );
    assert_eq!(
        with_database("postgres://u:p@h:1?sslmode=disable", "t1"),
        "postgres://u:p@h:1/t1?sslmode=disable"
    );
    assert_eq!(
        with_database("postgresql://h/db?application_name=x", "t1"),
        "postgresql://h/t1?application_name=x"
    );
}
