//! A full disk under the SQLite database (a 24 MiB tmpfs, filled to the last byte by a file of
//! the test's): events answer 503 and nothing acknowledged is lost, recommendations go on, a
//! training that cannot store its model fails cleanly while the old model serves, and once the
//! file is removed everything works again without a restart. Linux, as root (CI is): without
//! the right to mount, the test says so and passes.

use std::{io::Write, path::Path, process::Command};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{
    data,
    harness::{run, say, Replica},
    load::{ITEMS, USERS},
    stored::read_sqlite,
    ENV,
};

/// A size-limited tmpfs at `dir`, unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes to `path` until the filesystem refuses a byte more.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("creating the filler");
    let block = vec![0xa5u8; 64 * 1024];
    let mut written = 0u64;
    let mut size = block.len();
    while size > 0 {
        match file.write(&block[..size]) {
            Ok(0) | Err(_) => size /= 2,
            Ok(n) => written += n as u64,
        }
    }
    let _ = file.sync_all();
    written
}

fn batch(from: usize, n: usize) -> Value {
    Value::Array(
        (from..from + n)
            .map(|k| {
                json!({"user_id": format!("u{}", k % USERS), "item_id": format!("i{}", k % ITEMS),
                       "type": "view", "event_id": format!("crash-disk-{k}")})
            })
            .collect(),
    )
}

#[test]
fn a_full_disk_refuses_writes_keeps_serving_and_recovers() {
    run(async {
        let dir = tempfile::tempdir().expect("a mount point");
        let Some(_tmpfs) = Tmpfs::mount(dir.path(), "24m") else {
            say("full disk: cannot mount a tmpfs here (not root?); skipped");
            return;
        };
        let url = format!("sqlite://{}", dir.path().join("full.db").display());
        let server = Replica::start("full", &url, ENV).await;
        let shop = data::Shop {
            users: USERS,
            items: ITEMS,
            groups: 8,
            events_per_user: 10,
            seed: 3,
        };
        server.post_all(&shop.events()).await;
        let first = server.retrain_wait().await["version"].clone();

        let filler = dir.path().join("filler");
        let filled = fill(&filler);
        // Writes go on only as long as SQLite has room inside its files; then 503, each one.
        let (mut next, mut acked, mut refused) = (0, Vec::new(), 0);
        while refused < 5 {
            assert!(next < 400_000, "the full disk never refused an event");
            let (status, body) = server.post("/v1/events", Some(&batch(next, 50))).await;
            match status {
                StatusCode::OK => acked.extend(next..next + 50),
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert_eq!(body["error"]["code"], "storage_unavailable", "{body}");
                    refused += 1;
                }
                other => panic!("POST /v1/events on a full disk answered {other}: {body}"),
            }
            next += 50;
        }
        let (status, recs) = server.get("/v1/users/u1/recommendations?n=5").await;
        assert_eq!(status, StatusCode::OK, "{recs}");
        assert_eq!(recs["model_version"], first);
        let (status, body) = server.post("/v1/model/retrain?wait=true", None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(server.get_ok("/v1/model").await["version"], first);
        let (status, _) = server.get("/healthz").await;
        assert_eq!(status, StatusCode::OK);

        // Space returns: writes and training work again, in the same process.
        std::fs::remove_file(&filler).expect("removing the filler");
        let (status, body) = server.post("/v1/events", Some(&batch(next, 50))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        acked.extend(next..next + 50);
        let second = server.retrain_wait().await;
        assert_ne!(second["version"], first, "{second}");
        server.terminate();
        server.wait_exit(std::time::Duration::from_secs(30)).await;

        let stored = read_sqlite(&url).await;
        assert_eq!(stored.integrity, "ok");
        let lost: Vec<_> = acked
            .iter()
            .filter(|k| stored.events.get(&format!("crash-disk-{k}")) != Some(&1))
            .collect();
        assert!(lost.is_empty(), "{} acknowledged events lost", lost.len());
        say(&format!(
            "figure: full disk (24 MiB tmpfs, {filled} filler bytes): {} events acknowledged, \
             {refused} batches refused with 503, 0 lost; training refused with 503 while full, \
             recommendations served by version {first}; recovered without a restart",
            acked.len()
        ));
    });
}
