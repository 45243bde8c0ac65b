//! The import path of `recloop import FILE.csv`: read and validate the whole file, then store.

use std::path::Path;

use recloop::{domain::EventType, import};

use crate::helpers::*;

fn write_csv(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing the CSV");
    path
}

/// What `recloop import` does: nothing is stored unless every row is valid.
async fn run_import(app: &TestApp, path: &Path) -> anyhow::Result<import::ImportReport> {
    let events = import::read_csv(path)?;
    import::import(&app.state.store, events, false).await
}

pub async fn a_csv_log_is_imported(backend: Backend) {
    let app = TestApp::spawn(backend).await;
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

pub async fn a_bad_row_fails_with_its_line_number_and_stores_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
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
