//! What the database holds after the crashes, read with SQL straight from the test (not through
//! the service under test).

use std::collections::HashMap;

use sqlx::{Connection, Row};

/// The database's own account of the run.
pub struct Stored {
    /// How many rows each event id of the test's clients has.
    pub events: HashMap<String, i64>,
    /// The database's integrity check: "ok" when sound.
    pub integrity: String,
    /// Every model version: (version, status, its fitted parameters if stored).
    pub models: Vec<(i64, String, Option<Vec<u8>>)>,
}

const EVENTS: &str =
    "SELECT event_id, COUNT(*) AS n FROM events WHERE event_id LIKE 'crash-%' GROUP BY event_id";
const MODELS: &str = "SELECT v.version, v.status, b.data FROM model_versions v \
                      LEFT JOIN model_blobs b ON b.version = v.version ORDER BY v.version";

/// Reads a SQLite database (opening it recovers its write-ahead log, as a restart would).
pub async fn read_sqlite(url: &str) -> Stored {
    let mut db = sqlx::SqliteConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    let events = sqlx::query(EVENTS)
        .fetch_all(&mut db)
        .await
        .expect("events");
    let checks: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut db)
        .await
        .expect("PRAGMA integrity_check");
    let models = sqlx::query(MODELS)
        .fetch_all(&mut db)
        .await
        .expect("models");
    let stored = Stored {
        events: events
            .iter()
            .map(|r| (r.get("event_id"), r.get("n")))
            .collect(),
        integrity: checks.join("; "),
        models: models
            .iter()
            .map(|r| (r.get("version"), r.get("status"), r.get("data")))
            .collect(),
    };
    db.close().await.expect("closing");
    stored
}

/// Reads a PostgreSQL database. Its integrity check is amcheck's `bt_index_check` over every
/// index of the schema (the unique event-id index included), when the extension is there.
pub async fn read_postgres(url: &str) -> Stored {
    let mut db = sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("opening {url}: {e}"));
    let events = sqlx::query(EVENTS)
        .fetch_all(&mut db)
        .await
        .expect("events");
    let integrity = match sqlx::query("CREATE EXTENSION IF NOT EXISTS amcheck")
        .execute(&mut db)
        .await
    {
        Err(e) => format!("not checked (amcheck: {e})"),
        Ok(_) => {
            let checked: i64 = sqlx::query_scalar(
                "SELECT COUNT(bt_index_check(c.oid, true)) FROM pg_class c \
                 JOIN pg_am a ON a.oid = c.relam \
                 WHERE c.relkind = 'i' AND a.amname = 'btree' \
                 AND c.relnamespace = 'public'::regnamespace",
            )
            .fetch_one(&mut db)
            .await
            .unwrap_or_else(|e| panic!("amcheck found a damaged index: {e}"));
            assert!(checked > 0, "no index was checked");
            "ok".to_owned()
        }
    };
    let models = sqlx::query(MODELS)
        .fetch_all(&mut db)
        .await
        .expect("models");
    let stored = Stored {
        events: events
            .iter()
            .map(|r| (r.get("event_id"), r.get("n")))
            .collect(),
        integrity,
        models: models
            .iter()
            .map(|r| (r.get("version"), r.get("status"), r.get("data")))
            .collect(),
    };
    db.close().await.expect("closing");
    stored
}
