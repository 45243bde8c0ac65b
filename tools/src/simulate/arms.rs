//! The three arms — recloop, popularity, oracle — each running the same sessions of the same
//! world: what differs is only what each shows.

use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use serde_json::{json, Value};

use super::{
    report::Tally,
    world::{Session, Shoppers, World},
};

/// Items shown per session.
pub const SHOWN: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmKind {
    /// `GET /v1/users/{id}/recommendations?n=10` of a recloop that learns from this arm's events.
    Recloop,
    /// `GET /v1/popular` of a recloop of its own, fed by this arm's events. The route knows no
    /// user, so the items this user bought are dropped here, on the client.
    Popularity,
    /// No HTTP: the true affinity worn down by fading, bought items left out. The best any
    /// recommender could do for this session.
    Oracle,
}

impl ArmKind {
    pub const ALL: [ArmKind; 3] = [ArmKind::Recloop, ArmKind::Popularity, ArmKind::Oracle];

    pub fn name(self) -> &'static str {
        match self {
            ArmKind::Recloop => "recloop",
            ArmKind::Popularity => "popularity",
            ArmKind::Oracle => "oracle",
        }
    }
}

/// A recloop over HTTP.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    bearer: Option<String>,
}

/// Attempts for a request that failed in a way worth retrying (overloaded, connection reset).
const ATTEMPTS: u32 = 6;
/// How long the measured periods wait for a recloop's first model after the warm-up.
const MODEL_WAIT: Duration = Duration::from_secs(120);

impl Client {
    pub fn new(base: &str, bearer: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            // The simulation talks to a recloop directly, never through a proxy from the
            // environment.
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            bearer,
        })
    }

    /// Sends the request built by `build`, retrying 429, 503 and connection failures with
    /// backoff (events carry event ids, so a retried batch is never stored twice).
    async fn send(
        &self,
        what: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> anyhow::Result<Value> {
        let mut wait = Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            let mut request = build(&self.http);
            if let Some(key) = &self.bearer {
                request = request.bearer_auth(key);
            }
            let retry = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    return response
                        .json()
                        .await
                        .with_context(|| format!("{what}: reading the answer"))
                }
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().await.unwrap_or_default();
                    if !matches!(status.as_u16(), 429 | 503) || attempt == ATTEMPTS {
                        bail!("{what}: {status}: {body}");
                    }
                    format!("{status}")
                }
                Err(e) if attempt == ATTEMPTS || !(e.is_connect() || e.is_timeout()) => {
                    return Err(e).with_context(|| format!("{what}: {}", self.base));
                }
                Err(e) => e.to_string(),
            };
            tracing::debug!(what, retry, attempt, "retrying");
            tokio::time::sleep(wait).await;
            wait *= 2;
        }
        unreachable!("the last attempt returns")
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        self.send(path, |c| c.get(&url)).await
    }

    /// Waits until the recloop has a model in service, polling `GET /v1/model`.
    async fn wait_for_model(&self) -> anyhow::Result<()> {
        let url = format!("{}/v1/model", self.base);
        let deadline = std::time::Instant::now() + MODEL_WAIT;
        loop {
            let mut request = self.http.get(&url);
            if let Some(key) = &self.bearer {
                request = request.bearer_auth(key);
            }
            let status = request.send().await.map(|r| r.status());
            match status {
                Ok(s) if s.is_success() => return Ok(()),
                Ok(s) if s.as_u16() != 404 => bail!("GET /v1/model: {s}"),
                _ if std::time::Instant::now() > deadline => bail!(
                    "{} has no model {} s after the warm-up: is its background training off?",
                    self.base,
                    MODEL_WAIT.as_secs()
                ),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    async fn post_events(&self, events: &[Value]) -> anyhow::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let url = format!("{}/v1/events", self.base);
        self.send("POST /v1/events", |c| c.post(&url).json(events))
            .await
            .map(drop)
    }
}

/// How the simulation names users and items in the service, and when its sessions happen.
pub struct Shop {
    /// Put in front of every id, so runs against a shared live recloop don't mix.
    pub prefix: String,
    /// Event time of the first period: one period is one day, the last one ending now, since
    /// the service refuses events from the future.
    pub start: DateTime<Utc>,
    pub sessions_per_period: usize,
}

impl Shop {
    pub fn user_id(&self, user: u32) -> String {
        format!("{}u{user}", self.prefix)
    }

    pub fn item_id(&self, item: u32) -> String {
        format!("{}i{item}", self.prefix)
    }

    /// The item index of an id this shop made, or `None` for someone else's.
    pub fn item_of(&self, id: &str) -> Option<u32> {
        id.strip_prefix(&self.prefix)?
            .strip_prefix('i')?
            .parse()
            .ok()
    }

    /// When `session` begins: sessions spread evenly over their period's day.
    fn session_time(&self, session: &Session) -> DateTime<Utc> {
        let within = session.index % self.sessions_per_period as u64;
        let day = 86_400 / self.sessions_per_period.max(1) as i64;
        self.start
            + chrono::Duration::days(session.period as i64)
            + chrono::Duration::seconds(within as i64 * day)
    }
}

/// One arm: how it picks what to show, and the recloop it feeds, if any.
pub struct Arm {
    pub kind: ArmKind,
    pub client: Option<Client>,
}

/// What an arm showed in one session.
struct Shown {
    items: Vec<u32>,
    recommendation_id: Option<String>,
    model_version: Option<i64>,
}

impl Arm {
    pub fn new(kind: ArmKind, client: Option<Client>) -> Self {
        Self { kind, client }
    }

    /// Runs every session of `schedule` through this arm; one tally per period after the
    /// first `warmup` periods, in which users only browse by themselves (so that a recloop
    /// has a history to learn from before it is asked; the arm's recloop must have trained
    /// a first model before the measured periods begin).
    pub async fn run(
        &self,
        world: &World,
        schedule: &[Session],
        shop: &Shop,
        warmup: usize,
        progress: &ProgressBar,
    ) -> anyhow::Result<Vec<Tally>> {
        let periods = schedule.last().map_or(0, |s| s.period + 1);
        let mut shoppers = Shoppers::default();
        let mut tallies = vec![Tally::default(); periods.saturating_sub(warmup)];
        let mut events = Vec::new();
        let mut waited = false;
        for session in schedule {
            let user = session.user;
            let mut clock = shop.session_time(session);
            let mut event = |item: u32, kind: &str, rec: Option<&str>| {
                // One second apart, so the log keeps the order things happened in.
                clock += chrono::Duration::seconds(1);
                let mut e = json!({
                    "user_id": shop.user_id(user),
                    "item_id": shop.item_id(item),
                    "type": kind,
                    "timestamp": clock.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "event_id": format!("{}{}-{}-{}", shop.prefix, self.kind.name(), session.index, clock.timestamp()),
                });
                if let Some(rec) = rec {
                    e["recommendation_id"] = json!(rec);
                }
                e
            };

            events.clear();
            for o in world.organic(session) {
                shoppers.see(user, o.item);
                events.push(event(o.item, "view", None));
                if o.cart {
                    events.push(event(o.item, "add_to_cart", None));
                }
                if o.buy && !shoppers.bought(user, o.item) {
                    shoppers.buy(user, o.item);
                    events.push(event(o.item, "purchase", None));
                }
            }
            self.post(&events).await?;
            if session.period < warmup {
                progress.inc(1);
                continue;
            }
            if !waited {
                waited = true;
                if let Some(client) = &self.client {
                    client.wait_for_model().await?;
                }
            }

            let shown = self.recommend(world, &shoppers, shop, session).await?;
            let tally = &mut tallies[session.period - warmup];
            tally.sessions += 1;
            tally.impressions += shown.items.len() as u64;
            if shown.model_version.is_some() {
                tally.model_version = shown.model_version;
            }
            let rec = shown.recommendation_id.as_deref();
            events.clear();
            for (position, &item) in shown.items.iter().enumerate() {
                let exposures = shoppers.exposures(user, item);
                if exposures > 0 {
                    tally.repeats += 1;
                }
                let reaction = world.react(
                    session,
                    item,
                    position,
                    exposures,
                    shoppers.bought(user, item),
                );
                shoppers.see(user, item);
                if reaction.click {
                    tally.clicks += 1;
                    events.push(event(item, "click", rec));
                }
                if reaction.cart {
                    tally.carts += 1;
                    events.push(event(item, "add_to_cart", rec));
                }
                if reaction.buy {
                    tally.purchases += 1;
                    shoppers.buy(user, item);
                    events.push(event(item, "purchase", rec));
                }
            }
            self.post(&events).await?;
            progress.inc(1);
        }
        Ok(tallies)
    }

    async fn post(&self, events: &[Value]) -> anyhow::Result<()> {
        match &self.client {
            Some(client) => client.post_events(events).await,
            None => Ok(()),
        }
    }

    async fn recommend(
        &self,
        world: &World,
        shoppers: &Shoppers,
        shop: &Shop,
        session: &Session,
    ) -> anyhow::Result<Shown> {
        let user = session.user;
        let client = || self.client.as_ref().context("this arm needs a recloop");
        match self.kind {
            ArmKind::Oracle => Ok(Shown {
                items: oracle(world, shoppers, user),
                recommendation_id: None,
                model_version: None,
            }),
            ArmKind::Recloop => {
                let path = format!("/v1/users/{}/recommendations?n={SHOWN}", shop.user_id(user));
                let body = client()?.get(&path).await?;
                Ok(Shown {
                    items: item_list(shop, &body, |_| true)?,
                    recommendation_id: body["recommendation_id"].as_str().map(str::to_owned),
                    model_version: body["model_version"].as_i64(),
                })
            }
            ArmKind::Popularity => {
                // Enough popular items that SHOWN remain once this user's purchases are dropped.
                let bought = shoppers.purchases(user).count();
                let n = (SHOWN + bought).min(100);
                let body = client()?.get(&format!("/v1/popular?n={n}")).await?;
                let mut items = item_list(shop, &body, |i| !shoppers.bought(user, i))?;
                items.truncate(SHOWN);
                Ok(Shown {
                    items,
                    recommendation_id: None,
                    model_version: body["model_version"].as_i64(),
                })
            }
        }
    }
}

/// The items of a `{"items": [{"item_id": ...}]}` answer that this shop knows and `keep` keeps.
fn item_list(shop: &Shop, body: &Value, keep: impl Fn(u32) -> bool) -> anyhow::Result<Vec<u32>> {
    let items = body["items"]
        .as_array()
        .with_context(|| format!("no items in {body}"))?;
    Ok(items
        .iter()
        .filter_map(|i| shop.item_of(i["item_id"].as_str()?))
        .filter(|&i| keep(i))
        .collect())
}

/// The SHOWN items with the highest chance of a click right now, best first: with the same
/// examination discount for every slot, that order maximises the expected clicks.
pub fn oracle(world: &World, shoppers: &Shoppers, user: u32) -> Vec<u32> {
    let mut scored: Vec<(f32, u32)> = (0..world.items() as u32)
        .filter(|&i| !shoppers.bought(user, i))
        .map(|i| {
            let exposures = shoppers.exposures(user, i);
            (world.faded_affinity(user, i, exposures, false), i)
        })
        .collect();
    let k = SHOWN.min(scored.len());
    if k == 0 {
        return Vec::new();
    }
    scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.truncate(k);
    scored.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::world::WorldParams;

    #[test]
    fn the_oracle_shows_the_best_unbought_items_and_rotates_what_wore_out() {
        let world = World::new(
            WorldParams {
                users: 5,
                items: 60,
                ..WorldParams::default()
            },
            3,
        );
        let mut shoppers = Shoppers::default();
        let first = oracle(&world, &shoppers, 2);
        assert_eq!(first.len(), SHOWN);
        let mut by_affinity: Vec<u32> = (0..60).collect();
        by_affinity.sort_by(|&a, &b| world.affinity(2, b).total_cmp(&world.affinity(2, a)));
        assert_eq!(first, by_affinity[..SHOWN]);

        shoppers.buy(2, first[0]);
        for _ in 0..5 {
            shoppers.see(2, first[1]);
        }
        let second = oracle(&world, &shoppers, 2);
        assert!(
            !second.contains(&first[0]),
            "a bought item never comes back"
        );
        assert!(
            !second[..SHOWN - 2].contains(&first[1]),
            "a worn-out item drops"
        );
    }

    /// Clicks per impression of a ranker over every session of a small world, shown the way
    /// `Arm::run` shows them (organic browsing first, then SHOWN items).
    fn offline_ctr(world: &World, rank: impl Fn(&Shoppers, u32) -> Vec<u32>) -> f64 {
        let (mut shown, mut clicks) = (0, 0);
        let mut shoppers = Shoppers::default();
        for s in world.schedule(20, 60) {
            for o in world.organic(&s) {
                shoppers.see(s.user, o.item);
            }
            for (position, item) in rank(&shoppers, s.user).into_iter().enumerate() {
                let r = world.react(
                    &s,
                    item,
                    position,
                    shoppers.exposures(s.user, item),
                    shoppers.bought(s.user, item),
                );
                shoppers.see(s.user, item);
                if r.buy {
                    shoppers.buy(s.user, item);
                }
                shown += 1;
                clicks += u64::from(r.click);
            }
        }
        clicks as f64 / shown as f64
    }

    #[test]
    fn the_world_rewards_learning_from_what_was_shown() {
        // Knowing the tastes perfectly but ignoring what was shown loses much of what the
        // oracle gets: a recommender that demotes items shown without a click has room to gain.
        let world = World::new(
            WorldParams {
                users: 60,
                items: 200,
                ..WorldParams::default()
            },
            5,
        );
        let oracle_ctr = offline_ctr(&world, |s, u| oracle(&world, s, u));
        let taste_only = offline_ctr(&world, |s, u| {
            let mut items: Vec<u32> = (0..200).filter(|&i| !s.bought(u, i)).collect();
            items.sort_by(|&a, &b| world.affinity(u, b).total_cmp(&world.affinity(u, a)));
            items.truncate(SHOWN);
            items
        });
        println!("CTR: taste only {taste_only:.4}, oracle {oracle_ctr:.4}");
        assert!(
            taste_only < 0.7 * oracle_ctr,
            "taste only {taste_only:.4} vs oracle {oracle_ctr:.4}"
        );
    }

    /// Reference figures for docs/simulation.md: what perfect knowledge of the tastes gets in
    /// the default world over the last 5 of 40 days, with and without avoiding what the user
    /// has already seen. Slow unoptimised, so run by hand:
    /// `cargo test --release --lib ceilings -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn ceilings_of_the_default_world() {
        let world = World::new(WorldParams::default(), 1);
        let run = |rank: &dyn Fn(&Shoppers, u32) -> Vec<u32>| {
            let (mut shown, mut clicks) = (0u64, 0u64);
            let mut shoppers = Shoppers::default();
            for s in world.schedule(42, 300) {
                for o in world.organic(&s) {
                    shoppers.see(s.user, o.item);
                    if o.buy {
                        shoppers.buy(s.user, o.item);
                    }
                }
                if s.period < 2 {
                    continue;
                }
                for (position, item) in rank(&shoppers, s.user).into_iter().enumerate() {
                    let (exposures, bought) = (
                        shoppers.exposures(s.user, item),
                        shoppers.bought(s.user, item),
                    );
                    let r = world.react(&s, item, position, exposures, bought);
                    shoppers.see(s.user, item);
                    if r.buy {
                        shoppers.buy(s.user, item);
                    }
                    if s.period >= 37 {
                        shown += 1;
                        clicks += u64::from(r.click);
                    }
                }
            }
            clicks as f64 / shown as f64
        };
        let by_taste = |keep: &dyn Fn(u32) -> bool, u: u32| {
            let mut items: Vec<u32> = (0..world.items() as u32).filter(|&i| keep(i)).collect();
            items.sort_by(|&a, &b| world.affinity(u, b).total_cmp(&world.affinity(u, a)));
            items.truncate(SHOWN);
            items
        };
        let best = run(&|s, u| oracle(&world, s, u));
        let taste = run(&|s, u| by_taste(&|i| !s.bought(u, i), u));
        let unseen = run(&|s, u| by_taste(&|i| !s.bought(u, i) && s.exposures(u, i) == 0, u));
        println!(
            "oracle {best:.4}; true tastes, bought hidden {taste:.4} ({:.0}%); \
             true tastes, everything seen hidden {unseen:.4} ({:.0}%)",
            100.0 * taste / best,
            100.0 * unseen / best
        );
        assert!(taste < unseen && unseen <= best);
    }

    #[test]
    fn shop_ids_round_trip_and_foreign_ids_are_ignored() {
        let shop = Shop {
            prefix: "sim7-".into(),
            start: Utc::now(),
            sessions_per_period: 10,
        };
        assert_eq!(shop.item_of(&shop.item_id(42)), Some(42));
        assert_eq!(shop.item_of("i42"), None);
        assert_eq!(shop.item_of("sim7-u42"), None);
        assert_eq!(shop.user_id(3), "sim7-u3");
    }
}
