//! `recloop backup` under write load, then `recloop restore`: every event acknowledged before
//! the backup began is in the restored database, exactly once, and the restored service serves
//! the model. SQLite only: PostgreSQL is backed up with `pg_dump` (`deploy/README.md`).

use std::{
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use crate::{
    data,
    harness::{run, say, Replica},
    load::{event_client, Server, ITEMS, USERS},
    stored::read_sqlite,
    ENV,
};

fn recloop(args: &[&str], database_url: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_recloop"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .output()
        .expect("running recloop");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn a_backup_under_write_load_restores_every_event_acknowledged_before_it() {
    run(async {
        let dir = tempfile::tempdir().expect("a directory for the databases");
        let live = format!("sqlite://{}", dir.path().join("live.db").display());
        let restored = format!("sqlite://{}", dir.path().join("restored.db").display());
        let file = dir.path().join("backup.db");
        let file = file.to_str().expect("a UTF-8 path");

        let server = Server::start(&live, ENV).await;
        let shop = data::Shop {
            users: USERS,
            items: ITEMS,
            groups: 8,
            events_per_user: 10,
            seed: 7,
        };
        let replica = server.replica().expect("running");
        replica.post_all(&shop.events()).await;
        let (status, model) = replica.post("/v1/model/retrain?wait=true", None).await;
        assert_eq!(status.as_u16(), 200, "{model}");

        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..2)
            .map(|c| tokio::spawn(event_client(c, 11, server.clone(), stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let began = Instant::now();
        let (ok, said) = recloop(&["backup", "--out", file], &live);
        assert!(ok, "backup failed: {said}");
        say(&format!("figure: backup under write load: {}", said.trim()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        // The service is still using the live database: a restore into it is refused.
        let (ok, said) = recloop(&["restore", file], &live);
        assert!(!ok && said.contains("in use"), "{said}");
        stop.store(true, Ordering::SeqCst);
        let mut before = Vec::new();
        let mut after = 0;
        for client in clients {
            let report = client.await.expect("a client");
            for (event, at) in report.acked.iter().zip(&report.acked_at) {
                if *at < began {
                    before.push(event["event_id"].as_str().expect("an id").to_owned());
                } else {
                    after += 1;
                }
            }
        }
        assert!(
            before.len() > 50 && after > 10,
            "{} before, {after} after",
            before.len()
        );
        server.kill();

        let (ok, said) = recloop(&["restore", file], &restored);
        assert!(ok, "restore failed: {said}");
        let stored = read_sqlite(&restored).await;
        assert_eq!(stored.integrity, "ok");
        let missing: Vec<&String> = before
            .iter()
            .filter(|id| stored.events.get(*id) != Some(&1))
            .collect();
        assert!(
            missing.is_empty(),
            "{} of {} missing: {missing:?}",
            missing.len(),
            before.len()
        );
        say(&format!(
            "backup: {} events acknowledged before it began, all restored; {after} after it, {} of them in the backup",
            before.len(),
            stored.events.len() - before.len()
        ));

        let service = Replica::start("restored", &restored, ENV).await;
        let model = service.get_ok("/v1/model").await;
        let recommended = service.get_ok("/v1/users/u1/recommendations?n=5").await;
        assert_eq!(
            recommended["model_version"], model["version"],
            "{recommended}"
        );
        assert_eq!(recommended["items"].as_array().map(Vec::len), Some(5));
        service.kill();
    });
}
