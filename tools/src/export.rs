//! `recloop export-recommendations`: every user's recommendations (or the listed users'), as
//! JSON lines, for mail and other batch channels. Each list comes from the request path's own
//! `Serving::recommend` over the champion in the database, so the same filters apply (bought
//! and interacted items hidden, unavailable and deleted items out, what was shown and ignored
//! lowered). Nothing is recorded as shown: a batch list is not a showing, and its lists carry
//! no `recommendation_id` to credit.
//!
//! Users stream in pages from the store or line by line from a file, and lists are written as
//! they come, a bounded number in flight: memory does not grow with the number of users.

use std::{
    io::{BufRead, Write},
    path::Path,
    sync::Arc,
    time::Instant,
};

use anyhow::Context;
use futures::{stream, StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use recloop::{
    config::Config,
    domain::UserId,
    serve::{Policy, RecommendQuery, Serving},
    store::DynStore,
};

/// Users read from the store per page.
const PAGE: i64 = 10_000;
/// Users whose cached state is kept: each user is asked once, so this only bounds memory.
const CACHE: u64 = 4_096;
/// Lists being made at once: each waits mostly on its history read, so a few per core keep
/// the cores busy, as concurrent requests do in serving.
const IN_FLIGHT: usize = 64;

/// What an export did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExportReport {
    pub users: u64,
    /// Users whose list came from their own history (the rest got the popular list).
    pub personalized: u64,
    pub seconds: f64,
}

/// Where the users come from.
pub enum Users<'a> {
    /// Every user with events.
    All,
    /// One id per line (blank lines skipped).
    File(&'a Path),
}

/// Writes one JSON line per user to `out`: `{"user_id", "model_version", "source", "items":
/// [{"item_id", "score"}]}`.
pub async fn run(
    config: &Config,
    store: DynStore,
    users: Users<'_>,
    n: usize,
    out: impl Write,
) -> anyhow::Result<ExportReport> {
    let started = Instant::now();
    let serving = Arc::new(
        Serving::new(store.clone(), CACHE, config.exclude_interacted)
            .with_policy(Policy::from_config(config), None),
    );
    serving.catalog.apply(&store.list_items().await?);
    if !recloop::learn::adopt_champion(&store, &serving).await? {
        anyhow::bail!("there is no model to recommend with yet: train one first");
    }
    let ids = ids(store, users);
    let progress = progress_bar();
    let lists = ids
        .map_ok(|id| {
            let serving = serving.clone();
            // A task each, so that the lists are ranked on every worker thread: polled in
            // this one stream, they would all run on one.
            let list = tokio::spawn(async move {
                let user = UserId::parse(id.as_str())
                    .map_err(|e| anyhow::anyhow!("user id {id:?}: {e}"))?;
                let query = RecommendQuery {
                    n,
                    ..Default::default()
                };
                let rec = serving.recommend(&user, &query).await?;
                anyhow::Ok((id, rec))
            });
            async move { list.await.context("a ranking task failed")? }
        })
        .try_buffered(IN_FLIGHT);
    let mut out = std::io::BufWriter::new(out);
    let mut report = ExportReport {
        users: 0,
        personalized: 0,
        seconds: 0.0,
    };
    futures::pin_mut!(lists);
    while let Some((id, rec)) = lists.try_next().await? {
        let line = json!({
            "user_id": id,
            "model_version": rec.model_version,
            "source": rec.source,
            "items": rec.items,
        });
        serde_json::to_writer(&mut out, &line)?;
        out.write_all(b"\n")?;
        report.users += 1;
        if rec.source == recloop::serve::Source::Personalized {
            report.personalized += 1;
        }
        progress.inc(1);
    }
    out.flush().context("writing the recommendations")?;
    progress.finish_and_clear();
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} {human_pos} users, {per_sec} [{elapsed}]")
    {
        bar.set_style(style);
    }
    bar
}

/// The user ids to export, as a stream: pages of the store's, or the file's lines.
fn ids(store: DynStore, users: Users<'_>) -> stream::BoxStream<'static, anyhow::Result<String>> {
    match users {
        Users::All => stream::try_unfold(
            (store, None::<String>, false),
            |(store, after, done)| async move {
                if done {
                    return anyhow::Ok(None);
                }
                let page = store.user_ids_after(after.as_deref(), PAGE).await?;
                let last = page.last().cloned();
                let done = (page.len() as i64) < PAGE;
                Ok(Some((
                    stream::iter(page.into_iter().map(Ok)),
                    (store, last, done),
                )))
            },
        )
        .try_flatten()
        .boxed(),
        Users::File(path) => match std::fs::File::open(path) {
            Ok(file) => stream::iter(std::io::BufReader::new(file).lines())
                .map(|line| line.context("reading the users file"))
                .try_filter(|line| std::future::ready(!line.trim().is_empty()))
                .map_ok(|line| line.trim().to_owned())
                .boxed(),
            Err(e) => {
                let e = anyhow::Error::from(e).context(format!("opening {}", path.display()));
                stream::once(async move { Err(e) }).boxed()
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use recloop::domain::ItemId;

    use super::*;
    use crate::synth::{write_csv, SynthParams};

    /// A small synthetic shop with a model, on its own SQLite file.
    async fn shop(dir: &Path) -> (Config, DynStore, HashMap<String, HashSet<String>>) {
        let csv = dir.join("log.csv");
        let params = SynthParams {
            users: 300,
            items: 120,
            events: 6_000,
            seed: 5,
            tastes: 6,
            days: 30,
            end: chrono::Utc::now().timestamp(),
        };
        write_csv(&params, std::fs::File::create(&csv).unwrap()).unwrap();
        let events = crate::import::read_csv(&csv).unwrap();
        let mut touched: HashMap<String, HashSet<String>> = HashMap::new();
        for e in &events {
            touched
                .entry(e.user_id.to_string())
                .or_default()
                .insert(e.item_id.to_string());
        }
        let mut config = Config::default_for(format!("sqlite://{}", dir.join("r.db").display()));
        config.retrain_interval_secs = 0;
        config.retrain_after_events = 0;
        config.factors = 8;
        config.iterations = 3;
        let app = recloop::build_app(config.clone()).await.unwrap();
        for chunk in events.chunks(1_000) {
            app.state.store.append_events(chunk.to_vec()).await.unwrap();
        }
        app.state.trainer.run_once().await.unwrap();
        (config, app.state.store.clone(), touched)
    }

    fn lines(out: &[u8]) -> Vec<serde_json::Value> {
        std::str::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn items(line: &serde_json::Value) -> Vec<String> {
        line["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["item_id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn every_user_gets_the_list_serving_would_give() {
        let dir = tempfile::tempdir().unwrap();
        let (config, store, touched) = shop(dir.path()).await;
        // The most popular item leaves the catalogue: no list may hold it.
        let popular = store.load_log().await.unwrap().rows.iter().fold(
            HashMap::<String, usize>::new(),
            |mut counts, r| {
                *counts.entry(r.item_id.clone()).or_default() += 1;
                counts
            },
        );
        let gone = popular.iter().max_by_key(|(_, n)| **n).unwrap().0.clone();
        store
            .delete_item(&ItemId::parse(gone.as_str()).unwrap())
            .await
            .unwrap();

        let mut out = Vec::new();
        let report = run(&config, store.clone(), Users::All, 7, &mut out)
            .await
            .unwrap();
        let lines = lines(&out);
        assert_eq!(report.users as usize, touched.len());
        assert_eq!(lines.len(), touched.len());
        let ids: Vec<&str> = lines
            .iter()
            .map(|l| l["user_id"].as_str().unwrap())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted, "each user once, in order");
        assert!(report.personalized as usize > lines.len() / 2, "{report:?}");
        for line in &lines {
            let user = line["user_id"].as_str().unwrap();
            let items = items(line);
            assert_eq!(items.len(), 7, "{line}");
            assert!(!items.contains(&gone), "a deleted item for {user}");
            for item in &items {
                assert!(!touched[user].contains(item), "{user} already had {item}");
            }
        }
        // The very lists the request path gives (asked once each, nothing shown before).
        let serving = Serving::new(store.clone(), 100, config.exclude_interacted)
            .with_policy(Policy::from_config(&config), None);
        serving.catalog.apply(&store.list_items().await.unwrap());
        recloop::learn::adopt_champion(&store, &serving)
            .await
            .unwrap();
        for line in lines.iter().step_by(37) {
            let user = UserId::parse(line["user_id"].as_str().unwrap()).unwrap();
            let query = RecommendQuery {
                n: 7,
                ..Default::default()
            };
            let rec = serving.recommend(&user, &query).await.unwrap();
            let served: Vec<String> = rec.items.into_iter().map(|i| i.item_id).collect();
            assert_eq!(served, items(line), "{user:?}");
        }
        // Nothing was recorded as shown.
        let someone = UserId::parse(ids[0]).unwrap();
        assert!(store
            .user_impressions(&someone, 10)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn the_listed_users_in_their_order_unknown_ones_popular() {
        let dir = tempfile::tempdir().unwrap();
        let (config, store, touched) = shop(dir.path()).await;
        let mut known: Vec<&String> = touched.keys().collect();
        known.sort_unstable();
        let list = dir.path().join("users.txt");
        std::fs::write(
            &list,
            format!("{}\n\nnever-seen\n {} \n", known[5], known[1]),
        )
        .unwrap();
        let mut out = Vec::new();
        run(&config, store, Users::File(&list), 3, &mut out)
            .await
            .unwrap();
        let lines = lines(&out);
        let users: Vec<&str> = lines
            .iter()
            .map(|l| l["user_id"].as_str().unwrap())
            .collect();
        assert_eq!(users, [known[5].as_str(), "never-seen", known[1].as_str()]);
        assert_eq!(lines[1]["source"], "popular");
        let missing = run(
            &config,
            recloop::store::connect(&config.database_url).await.unwrap(),
            Users::File(&dir.path().join("nope")),
            3,
            Vec::new(),
        )
        .await;
        assert!(missing.is_err());
    }
}
