//! The import path of `recloop import FILE.csv`: read and validate the whole file, then store.
//! Each test runs on SQLite (a file in a temporary directory) and on PostgreSQL (a database of
//! its own on the server `RECLOOP_TEST_POSTGRES_URL` names; skipped without it).

#[path = "../../tests/common/pg.rs"]
mod pg;

use std::path::Path;

use recloop::{
    domain::EventType,
    store::{DynStore, LogRow},
};
use recloop_tools::import;

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// An empty store of the test's own, migrated as `recloop import` opens it; the directory or
/// database it lives in goes when this is dropped.
struct TestStore {
    store: DynStore,
    _dir: tempfile::TempDir,
    _database: Option<pg::PgDatabase>,
}

impl TestStore {
    /// None when the backend is PostgreSQL and no server is configured.
    async fn open(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (url, database) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("test.db").display()),
                None,
            ),
            Backend::Postgres => {
                let database = pg::PgDatabase::create(&pg::admin_url()?).await;
                (database.url().to_owned(), Some(database))
            }
        };
        let store = recloop::store::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("opening {url}: {e:?}"));
        Some(Self {
            store,
            _dir: dir,
            _database: database,
        })
    }

    async fn stored_events(&self) -> Vec<LogRow> {
        self.store.load_log().await.expect("load_log").rows
    }
}

fn write_csv(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing the CSV");
    path
}

/// What `recloop import` does: nothing is stored unless every row is valid.
async fn run_import(app: &TestStore, path: &Path) -> anyhow::Result<import::ImportReport> {
    let events = import::read_csv(path)?;
    import::import(&app.store, events, false).await
}

macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Backend::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::Backend::Postgres).await;
            })*
        }
    };
}

on_both_backends!(
    a_csv_log_is_imported,
    a_bad_row_fails_with_its_line_number_and_stores_nothing,
);

async fn a_csv_log_is_imported(backend: Backend) {
    let Some(app) = TestStore::open(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = write_csv(
        dir.path(),
        "log.csv",
        "user_id,item_id,type,timestamp\n\
         u196,m242,purchase,881250949\n\
         u186,m302,click,891717742\n\
         \"u 22\",\"m,377\",view,\n",
    );

    let events = import::read_csv(&path).expect("a valid file");
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].user_id.as_str(), "u196");
    assert_eq!(events[0].event_type, EventType::Purchase);
    assert_eq!(events[0].ts_ms, 881_250_949_000, "unix seconds");
    assert_eq!(events[2].item_id.as_str(), "m,377");

    let report = run_import(&app, &path).await.expect("importing");
    assert_eq!((report.rows, report.accepted, report.duplicates), (3, 3, 0));
    let rows = app.stored_events().await;
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1].ts_ms, 891_717_742_000);

    // With event ids, importing the same file twice stores it once.
    let path = write_csv(
        dir.path(),
        "ids.csv",
        "user_id,item_id,type,timestamp,event_id\n\
         u1,m1,click,881250949,e1\n\
         u1,m2,purchase,881250950,e2\n",
    );
    let first = run_import(&app, &path).await.unwrap();
    let again = run_import(&app, &path).await.unwrap();
    assert_eq!((first.accepted, first.duplicates), (2, 0));
    assert_eq!((again.accepted, again.duplicates), (0, 2));
    assert_eq!(app.stored_events().await.len(), 5);
}

async fn a_bad_row_fails_with_its_line_number_and_stores_nothing(backend: Backend) {
    let Some(app) = TestStore::open(backend).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        // Line 4 (the header is line 1) has an unknown type.
        ("user_id,item_id,type,timestamp\nu1,m1,click,881250949\nu2,m2,purchase,881250950\nu3,m3,like,881250951\n", "line 4"),
        // Line 2: an empty user id.
        ("user_id,item_id,type,timestamp\n,m1,click,881250949\nu2,m2,purchase,881250950\n", "line 2"),
        // Line 3: a timestamp that is neither unix seconds nor RFC 3339.
        ("user_id,item_id,type,timestamp\nu1,m1,click,881250949\nu2,m2,view,yesterday\n", "line 3"),
    ];
    for (i, (text, line)) in cases.into_iter().enumerate() {
        let path = write_csv(dir.path(), &format!("bad{i}.csv"), text);
        let error = run_import(&app, &path).await.expect_err("a bad row");
        let message = format!("{error:#}");
        assert!(message.contains(line), "expected {line:?} in: {message}");
    }
    let path = write_csv(dir.path(), "no-type.csv", "user_id,item_id\nu1,m1\n");
    let message = format!(
        "{:#}",
        run_import(&app, &path).await.expect_err("no type column")
    );
    assert!(message.contains("type"), "{message}");

    assert!(app.stored_events().await.is_empty(), "nothing was imported");
}
