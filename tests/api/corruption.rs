//! A database that answers with damage is not an outage: retrying cannot cure it, so the client
//! gets 500 `internal` (the cause goes to the log, not into the answer), never the 503 that
//! means "retry, nothing was half-written".

use std::{
    io::{Seek, SeekFrom, Write},
    time::Duration,
};

use reqwest::StatusCode;
use sqlx::{Connection, SqliteConnection};

use crate::helpers::*;

async fn expect_internal(response: reqwest::Response) {
    let error = expect_error(response, StatusCode::INTERNAL_SERVER_ERROR, "internal").await;
    assert_eq!(
        error["message"], "internal error",
        "an opaque message: {error}"
    );
}

/// A stored value this version cannot decode (here, an event type it does not know): a cold
/// user's recommendations, which read that user's history, answer 500.
pub async fn a_stored_value_this_version_cannot_read_answers_500(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.seed_and_train().await;
    app.db().execute("UPDATE events SET type = 99").await;
    expect_internal(app.get("/v1/users/u0/recommendations").await).await;
    // Popularity comes from the model in memory: still served.
    assert_eq!(ids(&app.get_ok("/v1/popular").await).len(), 10);
}

/// Pages of the SQLite file turn to garbage under the running app (a failing disk, a tool that
/// wrote over it). Both the request path's history read (the reader threads) and the group
/// commit of an event (the writer) meet the damage, and each answers 500, not 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_sqlite_file_answers_500_not_503() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.seed_and_train().await;

    let mut conn = SqliteConnection::connect(app.db().url()).await.unwrap();
    // Everything into the file and the WAL emptied, so that the garbage below is what each of
    // the app's connections reads next: restarting the WAL also makes each of them drop its
    // page cache at its next transaction.
    let mut attempts = 0;
    loop {
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if busy == 0 {
            break;
        }
        attempts += 1;
        assert!(attempts < 50, "the app never let the checkpoint finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    // The root pages of the log and of the id tables, with their indexes: every read of a
    // history and every append starts at one of them.
    let roots: Vec<i64> = sqlx::query_scalar(
        "SELECT rootpage FROM sqlite_master \
         WHERE tbl_name IN ('events', 'user_keys', 'item_keys') AND rootpage > 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    assert!(roots.len() >= 3, "{roots:?}");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(app.db().sqlite_file())
        .unwrap();
    for page in &roots {
        file.seek(SeekFrom::Start((page - 1) as u64 * page_size as u64))
            .unwrap();
        file.write_all(&vec![0xa5; page_size as usize]).unwrap();
    }
    file.sync_all().unwrap();
    drop(file);

    // The read path: a user this process holds nothing of.
    expect_internal(app.get("/v1/users/someone-new/recommendations").await).await;
    // The write path, twice: the writer answers every request of a failed group, and goes on.
    for n in 0..2 {
        let response = app
            .post_events(&event(&format!("new-user-{n}"), "new-item", "view"))
            .await;
        expect_internal(response).await;
    }
}
