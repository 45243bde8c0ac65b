//! PostgreSQL for the test binaries: the server `RECLOOP_TEST_POSTGRES_URL` names, and on it one
//! database per test, created empty and dropped `WITH (FORCE)` when its `PgDatabase` is dropped,
//! also when the test panics. Included by each binary that needs it:
//!
//!     #[path = "../common/pg.rs"]
//!     mod pg;
//!
//! Without the variable the PostgreSQL tests are skipped, said once on stderr; with
//! `RECLOOP_REQUIRE_POSTGRES=1` (as `scripts/with-postgres` sets) they fail instead.

use std::{io::Write, sync::Once};

use sqlx::{Connection, Executor, PgConnection};

pub const POSTGRES_URL_VAR: &str = "RECLOOP_TEST_POSTGRES_URL";
pub const REQUIRE_POSTGRES_VAR: &str = "RECLOOP_REQUIRE_POSTGRES";

/// The superuser URL, or None (after saying so) when the PostgreSQL tests are to be skipped.
pub fn admin_url() -> Option<String> {
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
pub fn with_database(url: &str, database: &str) -> String {
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
pub struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// Creates an empty database (no migrations applied) on the server `admin_url` names.
    pub async fn create(admin_url: &str) -> Self {
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
            url: with_database(admin_url, &name),
            name,
        }
    }

    /// The URL of this database, as `recloop::store::connect` takes it.
    pub fn url(&self) -> &str {
        &self.url
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
