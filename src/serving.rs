//! The model in service — an atomically swapped snapshot — and how a request is answered from it.
//!
//! A user's vector is never stored: it is folded in from their full history against the fixed
//! item factors when they ask, so an event acknowledged a moment ago already counts, and cached
//! until their next event.
//!
//! What a response shows is feedback too: each item loses a share of its score per showing the
//! user did not act on (counted from the user's last recorded responses, and in-process from
//! every response since), and a share of a personal list's slots goes to little-known or new
//! items, chosen from the `recommendation_id` so that a response can be reproduced. With a challenger running, a
//! stable share of users is answered by it instead of the champion.

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet, VecDeque},
    hash::{BuildHasher, Hasher},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, OnceLock,
    },
};

use arc_swap::{ArcSwap, ArcSwapOption};
use fnv::{FnvHashMap, FnvHashSet};
use serde::{Deserialize, Serialize};

use crate::{
    arms,
    catalog::Catalog,
    config::Config,
    demote::{penalized_top, DemotedOrder},
    domain::{EventType, EventWeights, UserId},
    model::{
        interactions::sort_for_fit, recency::weighted_history, scoring::Scores, topk::top_k,
        AlsModel, LogEvent, Ranker, UserVector,
    },
    online::ImpressionSink,
    store::{
        Arm, DynStore, Impression, ModelRecord, StoreError, StoreResult, UserActivity, UserStamp,
    },
};

/// What training produces and the database keeps: everything needed to serve, nothing per user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FittedModel {
    /// Item ids by model index (sorted).
    pub item_ids: Vec<String>,
    /// The personal ranking model training chose.
    pub ranker: Ranker,
    /// How strongly a user's recent events outweigh older ones when they are folded in.
    pub recency: f32,
    pub popularity: Vec<f32>,
    pub similar: Vec<Vec<(u32, f32)>>,
    pub weights: EventWeights,
}

impl FittedModel {
    pub fn to_bytes(&self) -> anyhow::Result<Vec<u8>> {
        Ok(postcard::to_allocvec(self)?)
    }
    /// Also reads the blobs of versions from before training chose its algorithm (iALS
    /// only), so an upgrade keeps serving the stored model.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        match postcard::from_bytes(bytes) {
            Ok(model) => Ok(model),
            Err(e) => match postcard::from_bytes::<IalsOnlyModel>(bytes) {
                Ok(old) => Ok(FittedModel {
                    item_ids: old.item_ids,
                    ranker: Ranker::Ials(old.als),
                    recency: 0.0,
                    popularity: old.popularity,
                    similar: old.similar,
                    weights: old.weights,
                }),
                Err(_) => Err(e.into()),
            },
        }
    }
}

/// The blob layout of the first versions.
#[derive(Deserialize)]
struct IalsOnlyModel {
    item_ids: Vec<String>,
    als: AlsModel,
    popularity: Vec<f32>,
    similar: Vec<Vec<(u32, f32)>>,
    weights: EventWeights,
}

/// A fitted model ready to answer requests.
pub struct Snapshot {
    pub record: ModelRecord,
    pub model: FittedModel,
    pub index: HashMap<String, u32>,
    /// Items the model knows least: below the median popularity. Exploration draws from them.
    pub uncertain: Vec<bool>,
    /// The most popular items, ranked once for `/v1/popular` and users without history.
    pub popular: Vec<(u32, f32)>,
}

impl Snapshot {
    pub fn new(record: ModelRecord, model: FittedModel) -> Self {
        let index = model
            .item_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u32))
            .collect();
        let uncertain = {
            let mut sorted = model.popularity.clone();
            sorted.sort_unstable_by(f32::total_cmp);
            let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
            model.popularity.iter().map(|&p| p < median).collect()
        };
        let popular = top_k(&model.popularity, SHORTLIST_LEN, |_| true);
        Self {
            record,
            model,
            index,
            uncertain,
            popular,
        }
    }

    pub fn version(&self) -> i64 {
        self.record.version
    }
}

/// What the request path knows about one user under one model version.
struct UserState {
    model_version: i64,
    /// The shard generation when the history was read; stale once the shard moves on.
    generation: u64,
    /// The user's stamp in a shared database, read before the history.
    stamp: Option<UserStamp>,
    vector: Option<UserVector>,
    interacted: FnvHashSet<u32>,
    purchased: FnvHashSet<u32>,
    /// Items of the history the model does not know (too new): never explored for this user.
    touched_unknown: HashSet<String>,
    /// The user's best items under the default hiding rule, ranked once and reused by every
    /// request until the user's next event or the next model: most requests then skip scoring.
    ranked: OnceLock<Ranked>,
    /// How often each item was shown since the user last touched it.
    shown: Mutex<ShownCounts>,
}

struct Ranked {
    shortlist: Vec<(u32, f32)>,
    /// The user's best little-known items: exploration's candidates among known items.
    explore: Vec<(u32, f32)>,
}

/// Showings without an action, per item; and this process's newest responses, which a
/// rebuilt state carries over until the database has them (impressions are written behind).
#[derive(Default)]
struct ShownCounts {
    counts: FnvHashMap<u32, u32>,
    recent: VecDeque<(String, i64, Vec<u32>)>,
    /// The cached shortlist as the penalty orders it, built on first use and then moved
    /// along with every count.
    order: Option<DemotedOrder>,
}

impl ShownCounts {
    fn add(&mut self, items: &[u32]) {
        for &i in items {
            let n = self.counts.entry(i).or_default();
            *n += 1;
            if let Some(order) = &mut self.order {
                order.shown(i, *n);
            }
        }
    }

    fn record(&mut self, recommendation_id: &str, shown_ms: i64, items: Vec<u32>) {
        self.add(&items);
        // A rebuild reads a user's newest `SHOWN_MEMORY` responses back: carrying more over
        // would be memory spent on nothing.
        while self.recent.len() >= SHOWN_MEMORY as usize
            || self
                .recent
                .front()
                .is_some_and(|(_, ms, _)| *ms < shown_ms - CARRY_OVER_MS)
        {
            self.recent.pop_front();
        }
        self.recent
            .push_back((recommendation_id.to_owned(), shown_ms, items));
    }
}

/// How many of a user's newest recorded responses feed the impression feedback.
const SHOWN_MEMORY: i64 = 50;
/// How long a response stays in memory to be carried over into a rebuilt user state: well past
/// the impression writer's flush delay.
const CARRY_OVER_MS: i64 = 30_000;
/// Exploration candidates kept per user among the model's little-known items.
const EXPLORE_CANDIDATES: usize = 32;
/// New catalog items (unknown to the model) kept as exploration candidates.
const NEW_ITEMS_MAX: usize = 1_000;

/// The score an item keeps after `shown` showings without an action: each takes `penalty` of
/// it away (towards lower scores, whatever the sign).
pub fn penalized(score: f32, shown: u32, penalty: f32) -> f32 {
    let keep = (1.0 - penalty).powi(shown.min(1_000) as i32);
    if score >= 0.0 {
        score * keep
    } else {
        score / keep.max(f32::MIN_POSITIVE)
    }
}

/// A number in [0, 1) drawn from a recommendation id: the same id always draws the same.
fn draw(recommendation_id: &str, salt: u64) -> u64 {
    let mut h = fnv::FnvHasher::default();
    h.write_u64(salt);
    h.write(recommendation_id.as_bytes());
    let x = h.finish();
    x ^ (x >> 29)
}

/// How many of `n` slots explore: `n · share`, the fraction rounded up or down by a draw, so
/// that on average exactly `share` of the slots explore.
pub fn exploration_slots(n: usize, share: f64, recommendation_id: &str) -> usize {
    let exact = n as f64 * share;
    let whole = exact.floor();
    let unit = (draw(recommendation_id, 0) % 1_000_000) as f64 / 1_000_000.0;
    let slots = whole as usize + usize::from(unit < exact - whole);
    slots.min(n / 2)
}

/// How many items the popular shortlist keeps: the largest `n` plus room for per-request
/// filters (category, availability); a request they empty falls back to a full pass.
const SHORTLIST_LEN: usize = 256;
/// How many ranked items a user's cached shortlist keeps. Fewer than the popular list's: it is
/// ranked for every new or changed user, and its cost grows with its length (on a 20,000-item,
/// 128-factor model ~95 µs for 64 against ~160-190 µs for 256, `model::scoring`). A request
/// that empties it (a narrow category, `n` above it, many exclusions) ranks again with every
/// filter applied, which costs about as much again.
const USER_SHORTLIST_LEN: usize = 64;

/// How long the request path waits for the database before answering from memory: an outage
/// must not make every recommendation wait for the pool's connect timeout.
const READ_DEADLINE: std::time::Duration = std::time::Duration::from_millis(500);

async fn deadline<T>(read: impl std::future::Future<Output = StoreResult<T>>) -> StoreResult<T> {
    tokio::time::timeout(READ_DEADLINE, read)
        .await
        .unwrap_or(Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut)))
}

/// While the database is down, recommendations go on from what is known: the user's last
/// cached state, or else none (popular items). Only events need the database to answer.
fn degraded(cached: Option<Arc<UserState>>, e: StoreError) -> StoreResult<Arc<UserState>> {
    if !matches!(e, StoreError::Unavailable(_)) {
        return Err(e);
    }
    metrics::counter!("recloop_degraded_responses_total").increment(1);
    tracing::debug!(error = %e, "serving without the database");
    Ok(cached.unwrap_or_else(|| {
        Arc::new(UserState {
            model_version: 0,
            generation: 0,
            stamp: None,
            vector: None,
            interacted: FnvHashSet::default(),
            purchased: FnvHashSet::default(),
            touched_unknown: HashSet::new(),
            ranked: Default::default(),
            shown: Default::default(),
        })
    }))
}

/// Generations are sharded by user: an event bumps its user's shard, so only the (few) users of
/// that shard re-read their history. Enough shards that a busy shop rarely bumps a given one.
const GENERATION_SHARDS: usize = 1 << 16;

/// Which list answered a recommendation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Ranked by the user's own taste.
    Personalized,
    /// Recent popularity: the user has no usable history yet.
    Popular,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Personalized => "personalized",
            Self::Popular => "popular",
        }
    }
}

/// One ranked item.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScoredItem {
    pub item_id: String,
    pub score: f32,
    /// True for an exploration slot: a little-known or new item, placed at the end of the list
    /// whatever its score. Absent otherwise.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub explore: bool,
}

impl ScoredItem {
    fn new(item_id: String, score: f32) -> Self {
        Self {
            item_id,
            score,
            explore: false,
        }
    }
}

/// What a recommendation request asks for, parsed.
#[derive(Debug, Clone, Default)]
pub struct RecommendQuery {
    pub n: usize,
    pub category: Option<String>,
    pub exclude: HashSet<String>,
    pub include_interacted: bool,
}

pub struct Recommendation {
    /// `<ULID>-v<version>`: the version rides in the id (0 before the first model).
    pub recommendation_id: String,
    pub arm: Arm,
    pub model_version: Option<i64>,
    pub source: Source,
    pub items: Vec<ScoredItem>,
}

/// How serving uses what it showed: the settings of `RECLOOP_CHALLENGER_SHARE`,
/// `RECLOOP_IMPRESSION_PENALTY` and `RECLOOP_EXPLORATION`. The default changes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Policy {
    pub challenger_share: f64,
    pub impression_penalty: f32,
    pub exploration: f64,
}

impl Policy {
    pub fn from_config(config: &Config) -> Self {
        Self {
            challenger_share: config.challenger_share,
            impression_penalty: config.impression_penalty as f32,
            exploration: config.exploration,
        }
    }
}

pub struct Serving {
    store: DynStore,
    model: ArcSwapOption<Snapshot>,
    challenger: ArcSwapOption<Snapshot>,
    pub catalog: Catalog,
    users: moka::sync::Cache<String, Arc<UserState>>,
    generations: Box<[AtomicU64]>,
    hasher: std::collections::hash_map::RandomState,
    exclude_interacted_default: bool,
    policy: Policy,
    impressions: Option<ImpressionSink>,
    /// Available catalog items the champion does not know yet, refreshed by the online loop.
    new_items: ArcSwap<Vec<String>>,
}

impl Serving {
    pub fn new(store: DynStore, user_cache_capacity: u64, exclude_interacted: bool) -> Self {
        Self {
            store,
            model: ArcSwapOption::empty(),
            challenger: ArcSwapOption::empty(),
            catalog: Catalog::default(),
            users: moka::sync::Cache::new(user_cache_capacity),
            generations: (0..GENERATION_SHARDS).map(|_| AtomicU64::new(0)).collect(),
            hasher: Default::default(),
            exclude_interacted_default: exclude_interacted,
            policy: Policy::default(),
            impressions: None,
            new_items: Default::default(),
        }
    }

    /// Turns on what learning from the shown needs: the policy, and where impressions go.
    pub fn with_policy(mut self, policy: Policy, impressions: Option<ImpressionSink>) -> Self {
        self.policy = policy;
        self.impressions = impressions;
        self
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    pub fn impressions(&self) -> Option<&ImpressionSink> {
        self.impressions.as_ref()
    }

    /// The champion: the model in service for everyone not in the challenger's share.
    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.model.load_full()
    }

    pub fn challenger(&self) -> Option<Arc<Snapshot>> {
        self.challenger.load_full()
    }

    /// Puts a challenger next to the champion (None: stops it). Users keep their cached state:
    /// each state carries the version it was built for.
    pub fn set_challenger(&self, snapshot: Option<Snapshot>) {
        let version = snapshot.as_ref().map(Snapshot::version);
        self.challenger.store(snapshot.map(Arc::new));
        metrics::gauge!("recloop_challenger_version").set(version.unwrap_or(0) as f64);
    }

    /// Recomputes which available catalog items the champion does not know (new ones).
    pub fn refresh_new_items(&self) {
        let Some(snap) = self.current() else {
            return;
        };
        let mut new = self
            .catalog
            .available_ids(NEW_ITEMS_MAX, |id| !snap.index.contains_key(id));
        new.sort_unstable();
        self.new_items.store(Arc::new(new));
    }

    /// Puts a model in service unless a newer one already is (two paths publish: the trainer
    /// and the poll for models trained elsewhere). Requests in flight keep the snapshot they
    /// loaded; the next ones see the new model whole.
    pub fn publish(&self, snapshot: Snapshot) {
        let version = snapshot.version();
        let new = Arc::new(snapshot);
        let previous = self.model.rcu(|current| match current {
            Some(c) if c.version() >= version => Some(c.clone()),
            _ => Some(new.clone()),
        });
        if previous.as_ref().is_some_and(|p| p.version() >= version) {
            return;
        }
        metrics::gauge!("recloop_model_version").set(version as f64);
        // A challenger that is not newer than the champion has been promoted or overtaken.
        let stale = self.challenger().is_some_and(|c| c.version() <= version);
        if stale {
            self.set_challenger(None);
        }
        // Cached users carry the old version and would be refolded anyway; free them now.
        self.users.invalidate_all();
        self.refresh_new_items();
    }

    fn shard(&self, user: &str) -> &AtomicU64 {
        &self.generations[(self.hasher.hash_one(user) as usize) % GENERATION_SHARDS]
    }

    /// Called after events of `user` were durably committed and before they are acknowledged:
    /// the user's next request re-reads their history.
    pub fn user_changed(&self, user: &str) {
        // The generation alone makes the cached state stale; the state stays in the cache so
        // that its rebuild can carry over what was shown and not yet written.
        self.shard(user).fetch_add(1, Ordering::AcqRel);
    }

    /// The user's folded-in state, from the cache while it is current. Current means: same
    /// model, and no event for the user since it was built — known in-process from the shard
    /// generation, and, when replicas share the database, from the user's stamp in it.
    async fn user_state(&self, user: &UserId, snap: &Snapshot) -> StoreResult<Arc<UserState>> {
        let generation = self.shard(user.as_str()).load(Ordering::Acquire);
        let cached = self
            .users
            .get(user.as_str())
            .filter(|s| s.model_version == snap.version());
        let previous = cached.clone();
        let stamp = if self.store.is_shared() {
            match deadline(self.store.user_stamp(user)).await {
                Ok(stamp) => Some(stamp),
                Err(e) => return degraded(cached, e),
            }
        } else {
            None
        };
        if let Some(state) = &cached {
            if state.generation == generation && state.stamp == stamp {
                return Ok(state.clone());
            }
        }
        // What was shown only matters to the penalty.
        let shown_memory = if self.policy.impression_penalty > 0.0 {
            SHOWN_MEMORY
        } else {
            0
        };
        let UserActivity {
            history,
            shown: shown_before,
        } = match deadline(self.store.user_activity(user, shown_memory)).await {
            Ok(activity) => activity,
            Err(e) => return degraded(cached, e),
        };
        let weights = &snap.model.weights;
        let mut purchased = FnvHashSet::default();
        let mut touched: HashMap<u32, i64> = HashMap::new();
        let mut touched_unknown = HashSet::new();
        // The user's events in the order training reads them (time, then item), so recency
        // weighting gives the scores the holdout measured.
        let mut events: Vec<LogEvent> = Vec::with_capacity(history.len());
        for e in &history {
            if let Some(&i) = snap.index.get(&e.item_id) {
                let last = touched.entry(i).or_insert(i64::MIN);
                *last = (*last).max(e.ts_ms);
                let purchase = e.event_type == EventType::Purchase;
                if purchase {
                    purchased.insert(i);
                }
                events.push(LogEvent {
                    user: 0,
                    item: i,
                    weight: weights.of(e.event_type),
                    ts: e.ts_ms.div_euclid(1000),
                    purchase,
                });
            } else {
                touched_unknown.insert(e.item_id.clone());
            }
        }
        let mut shown = ShownCounts::default();
        let mut count_after_touch = |shown_ms: i64, items: &mut dyn Iterator<Item = u32>| {
            let fresh: Vec<u32> = items
                .filter(|i| touched.get(i).is_none_or(|&t| t < shown_ms))
                .collect();
            shown.add(&fresh);
        };
        let recorded: HashSet<&str> = shown_before
            .iter()
            .map(|s| s.recommendation_id.as_str())
            .collect();
        for s in &shown_before {
            let mut items = s.items.iter().filter_map(|id| snap.index.get(id).copied());
            count_after_touch(s.shown_ms, &mut items);
        }
        let carried: Vec<(String, i64, Vec<u32>)> = previous
            .map(|p| {
                let old = p.shown.lock().unwrap_or_else(|e| e.into_inner());
                old.recent
                    .iter()
                    .filter(|(id, _, _)| !recorded.contains(id.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for (_, ms, items) in &carried {
            count_after_touch(*ms, &mut items.iter().copied());
        }
        shown.recent = carried.into();
        sort_for_fit(&mut events);
        let ordered: Vec<(u32, f32)> = events.iter().map(|e| (e.item, e.weight)).collect();
        let fold = weighted_history(&ordered, snap.model.recency);
        let vector = (!fold.is_empty()).then(|| snap.model.ranker.fold(&fold));
        let state = Arc::new(UserState {
            model_version: snap.version(),
            generation,
            stamp,
            vector,
            interacted: fold.iter().map(|&(i, _)| i).collect(),
            purchased,
            touched_unknown,
            ranked: Default::default(),
            shown: Mutex::new(shown),
        });
        self.users.insert(user.as_str().to_owned(), state.clone());
        Ok(state)
    }

    /// Which model answers `user`, in which arm, under which experiment (0 = none).
    fn model_for(&self, user: &UserId) -> Option<(Arc<Snapshot>, Arm, i64)> {
        let champion = self.current()?;
        let share = self.policy.challenger_share;
        let challenger = (share > 0.0).then(|| self.challenger()).flatten();
        Some(match challenger {
            Some(c) => {
                let experiment = c.version();
                match arms::assign(user.as_str(), experiment, share) {
                    Arm::Challenger => (c, Arm::Challenger, experiment),
                    Arm::Champion => (champion, Arm::Champion, experiment),
                }
            }
            None => (champion, Arm::Champion, 0),
        })
    }

    /// A user's recommendations: personal when they have history the model knows, popular
    /// otherwise; what was shown is recorded (behind the response) as an impression.
    pub async fn recommend(
        &self,
        user: &UserId,
        q: &RecommendQuery,
    ) -> StoreResult<Recommendation> {
        let Some((snap, arm, experiment)) = self.model_for(user) else {
            return Ok(Recommendation {
                recommendation_id: format!("{}-v0", ulid::Ulid::new()),
                arm: Arm::Champion,
                model_version: None,
                source: Source::Popular,
                items: Vec::new(),
            });
        };
        let recommendation_id = format!("{}-v{}", ulid::Ulid::new(), snap.version());
        let state = self.user_state(user, &snap).await?;
        let (source, items) = self.rank(&snap, &state, q, &recommendation_id);
        let shown_ms = chrono::Utc::now().timestamp_millis();
        let known: Vec<u32> = items
            .iter()
            .filter_map(|it| snap.index.get(&it.item_id).copied())
            .collect();
        state
            .shown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(&recommendation_id, shown_ms, known);
        if let (Some(sink), false) = (&self.impressions, items.is_empty()) {
            sink.record(Impression {
                recommendation_id: recommendation_id.clone(),
                user_id: user.as_str().to_owned(),
                model_version: snap.version(),
                arm,
                experiment,
                source: source.as_str().to_owned(),
                items: items.iter().map(|it| it.item_id.clone()).collect(),
                shown_ms,
            });
        }
        Ok(Recommendation {
            recommendation_id,
            arm,
            model_version: Some(snap.version()),
            source,
            items,
        })
    }

    /// Ranks for one request: the model's scores less the impression penalty, the filters,
    /// then the exploration slots.
    fn rank(
        &self,
        snap: &Snapshot,
        state: &UserState,
        q: &RecommendQuery,
        recommendation_id: &str,
    ) -> (Source, Vec<ScoredItem>) {
        let include_interacted = q.include_interacted || !self.exclude_interacted_default;
        let hidden = |i: u32| {
            state.purchased.contains(&i)
                || (!include_interacted && state.interacted.contains(&i))
                || (!q.exclude.is_empty() && q.exclude.contains(&snap.model.item_ids[i as usize]))
        };
        let source = match state.vector {
            Some(_) => Source::Personalized,
            None => Source::Popular,
        };
        let penalty = self.policy.impression_penalty;
        let mut shown = state.shown.lock().unwrap_or_else(|e| e.into_inner());
        let mut items = None;
        let mut explore: Cow<[(u32, f32)]> = Cow::Borrowed(&[]);
        if !include_interacted {
            // The usual request: filter the cached ranking instead of scoring every item.
            let ranked = state.ranked.get_or_init(|| {
                // The model ranks without scoring every item in full (model::scoring).
                let all = match &state.vector {
                    Some(v) => snap.model.ranker.scores(v),
                    None => Scores::Exact(snap.model.popularity.clone()),
                };
                let fresh =
                    |i: u32| !state.purchased.contains(&i) && !state.interacted.contains(&i);
                // Without exploration the candidates are never drawn from: not ranked.
                let explore = if self.policy.exploration > 0.0 {
                    all.top_k(EXPLORE_CANDIDATES, |i| {
                        fresh(i) && snap.uncertain[i as usize]
                    })
                } else {
                    Vec::new()
                };
                Ranked {
                    shortlist: all.top_k(USER_SHORTLIST_LEN, fresh),
                    explore,
                }
            });
            let truncated = ranked.shortlist.len() >= USER_SHORTLIST_LEN;
            items = if penalty > 0.0 {
                let ShownCounts { counts, order, .. } = &mut *shown;
                let order = order
                    .get_or_insert_with(|| DemotedOrder::new(&ranked.shortlist, counts, penalty));
                self.pick(snap, order.iter(), truncated, q, hidden)
            } else {
                self.pick(snap, ranked.shortlist.iter().copied(), truncated, q, hidden)
            };
            explore = Cow::Borrowed(&ranked.explore);
        }
        let mut items = match items {
            Some(items) => items,
            // Filters the shortlist could not satisfy, or interacted items asked for: rank
            // again with every filter applied (still without scoring every item in full).
            None => {
                let all = match &state.vector {
                    Some(v) => snap.model.ranker.scores(v),
                    None => Scores::Exact(snap.model.popularity.clone()),
                };
                if self.policy.exploration > 0.0 {
                    explore = Cow::Owned(all.top_k(EXPLORE_CANDIDATES, |i| {
                        !hidden(i) && snap.uncertain[i as usize]
                    }));
                }
                // As in `best`: the view is let go before `pick` takes its own.
                let ranked = {
                    let view = self.catalog.view();
                    let ids = &snap.model.item_ids;
                    penalized_top(&all, q.n, &shown.counts, penalty, ids.len(), |i| {
                        !hidden(i) && view.allows(&ids[i as usize], q.category.as_deref())
                    })
                };
                self.pick(snap, ranked, false, q, |_| false)
                    .unwrap_or_default()
            }
        };
        drop(shown);
        // A user without history gets the popular list, as the contract says: only personal
        // lists explore.
        if source == Source::Personalized {
            self.explore(snap, state, q, recommendation_id, &explore, &mut items);
        }
        (source, items)
    }

    /// Gives the last slots to exploration: each drawn from the id among the user's best
    /// little-known items and the catalog's new ones, skipping what is hidden, filtered out or
    /// already listed.
    fn explore(
        &self,
        snap: &Snapshot,
        state: &UserState,
        q: &RecommendQuery,
        recommendation_id: &str,
        known: &[(u32, f32)],
        items: &mut Vec<ScoredItem>,
    ) {
        let slots = exploration_slots(q.n, self.policy.exploration, recommendation_id);
        if slots == 0 {
            return;
        }
        let new_items = self.new_items.load();
        let candidates = known.len() + new_items.len();
        if candidates == 0 {
            return;
        }
        let view = self.catalog.view();
        let mut chosen: Vec<ScoredItem> = Vec::with_capacity(slots);
        for slot in 0..slots as u64 {
            let start = draw(recommendation_id, slot + 1) as usize % candidates;
            let pick = (0..candidates).find_map(|k| {
                let c = (start + k) % candidates;
                let (id, score) = match known.get(c) {
                    Some(&(i, score)) => (&snap.model.item_ids[i as usize], score),
                    None => (&new_items[c - known.len()], 0.0),
                };
                let usable = !q.exclude.contains(id)
                    && !state.touched_unknown.contains(id)
                    && view.allows(id, q.category.as_deref())
                    && !items.iter().chain(&chosen).any(|it| &it.item_id == id);
                usable.then(|| ScoredItem {
                    item_id: id.clone(),
                    score,
                    explore: true,
                })
            });
            match pick {
                Some(item) => chosen.push(item),
                None => break,
            }
        }
        let keep = q.n.saturating_sub(chosen.len()).min(items.len());
        items.truncate(keep);
        items.extend(chosen);
    }

    /// Recently popular items, optionally in one category.
    pub fn popular(&self, n: usize, category: Option<&str>) -> (Option<i64>, Vec<ScoredItem>) {
        let Some(snap) = self.current() else {
            return (None, Vec::new());
        };
        let q = RecommendQuery {
            n,
            category: category.map(str::to_owned),
            ..Default::default()
        };
        let truncated = snap.popular.len() >= SHORTLIST_LEN;
        let items = self
            .pick(&snap, snap.popular.iter().copied(), truncated, &q, |_| {
                false
            })
            .unwrap_or_else(|| self.best(&snap, &snap.model.popularity, &q, |_| false));
        (Some(snap.version()), items)
    }

    /// Items like `item_id`; `None` when the model does not know the item.
    pub fn similar(&self, item_id: &str, n: usize) -> Option<(i64, Vec<ScoredItem>)> {
        let snap = self.current()?;
        let &i = snap.index.get(item_id)?;
        let view = self.catalog.view();
        let items = snap.model.similar[i as usize]
            .iter()
            .filter(|&&(j, _)| view.allows(&snap.model.item_ids[j as usize], None))
            .take(n)
            .map(|&(j, score)| ScoredItem::new(snap.model.item_ids[j as usize].clone(), score))
            .collect();
        Some((snap.version(), items))
    }

    /// The first `q.n` items of a ranked list that pass every filter; `None` when the list
    /// ran out first although it was `truncated` (items beyond it might pass).
    fn pick(
        &self,
        snap: &Snapshot,
        ranked: impl IntoIterator<Item = (u32, f32)>,
        truncated: bool,
        q: &RecommendQuery,
        hidden: impl Fn(u32) -> bool,
    ) -> Option<Vec<ScoredItem>> {
        let view = self.catalog.view();
        let ids = &snap.model.item_ids;
        let picked: Vec<ScoredItem> = ranked
            .into_iter()
            .filter(|&(i, _)| !hidden(i) && view.allows(&ids[i as usize], q.category.as_deref()))
            .take(q.n)
            .map(|(i, score)| ScoredItem::new(ids[i as usize].clone(), score))
            .collect();
        let exhausted = picked.len() < q.n && truncated;
        (!exhausted).then_some(picked)
    }

    /// The top `q.n` items by score that are neither hidden nor filtered out by the catalog.
    /// The catalog check costs a string lookup, so it runs on a short list first and on every
    /// item only when that list was not enough (e.g. a narrow category).
    fn best(
        &self,
        snap: &Snapshot,
        scores: &[f32],
        q: &RecommendQuery,
        hidden: impl Fn(u32) -> bool,
    ) -> Vec<ScoredItem> {
        let full = q.n * 2 + 32;
        let shortlist = top_k(scores, full, |i| !hidden(i));
        let truncated = shortlist.len() >= full;
        if let Some(items) = self.pick(snap, shortlist, truncated, q, &hidden) {
            return items;
        }
        let ranked = {
            let view = self.catalog.view();
            let ids = &snap.model.item_ids;
            top_k(scores, q.n, |i| {
                !hidden(i) && view.allows(&ids[i as usize], q.category.as_deref())
            })
        };
        self.pick(snap, ranked, false, q, |_| false)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ignored_showing_takes_its_share_of_the_score() {
        assert_eq!(penalized(2.0, 0, 0.25), 2.0);
        assert!((penalized(2.0, 2, 0.25) - 2.0 * 0.75 * 0.75).abs() < 1e-6);
        // A negative score moves down too, never up towards zero.
        assert!(penalized(-1.0, 1, 0.5) < -1.0);
        assert_eq!(penalized(1.0, 3, 0.0), 1.0, "0 turns it off");
    }

    #[test]
    fn exploration_slots_are_drawn_from_the_id_and_average_the_share() {
        let ids: Vec<String> = (0..10_000).map(|i| format!("01J{i:023}-v1")).collect();
        for id in &ids[..50] {
            assert_eq!(
                exploration_slots(5, 0.1, id),
                exploration_slots(5, 0.1, id),
                "the same id draws the same"
            );
        }
        assert!(ids.iter().all(|id| exploration_slots(10, 0.1, id) == 1));
        assert!(ids.iter().all(|id| exploration_slots(10, 0.0, id) == 0));
        // 5 slots at 10% is half a slot: every other response, on average.
        let slots: usize = ids.iter().map(|id| exploration_slots(5, 0.1, id)).sum();
        let share = slots as f64 / (5 * ids.len()) as f64;
        assert!((share - 0.1).abs() < 0.01, "{share}");
        assert_eq!(
            exploration_slots(1, 0.5, &ids[0]),
            0,
            "never more than half"
        );
    }
}
