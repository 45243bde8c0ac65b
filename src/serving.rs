//! The model in service — an atomically swapped snapshot — and how a request is answered from it.
//!
//! A user's vector is never stored: it is folded in from their full history against the fixed
//! item factors when they ask, so an event acknowledged a moment ago already counts, and cached
//! until their next event.

use std::{
    collections::{HashMap, HashSet},
    hash::BuildHasher,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use arc_swap::ArcSwapOption;
use serde::{Deserialize, Serialize};

use crate::{
    catalog::Catalog,
    domain::{EventType, EventWeights, UserId},
    model::{
        interactions::sort_for_fit, recency::weighted_history, topk::top_k, AlsModel, LogEvent,
        Ranker, UserVector,
    },
    store::{DynStore, ModelRecord, StoreError, StoreResult, UserStamp},
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
}

impl Snapshot {
    pub fn new(record: ModelRecord, model: FittedModel) -> Self {
        let index = model
            .item_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i as u32))
            .collect();
        Self {
            record,
            model,
            index,
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
    interacted: HashSet<u32>,
    purchased: HashSet<u32>,
    /// The user's best items under the default hiding rule, ranked once and reused by every
    /// request until the user's next event or the next model: most requests then skip scoring.
    shortlist: std::sync::OnceLock<Vec<(u32, f32)>>,
}

/// How many ranked items a user's cached shortlist keeps: the largest `n` plus room for
/// per-request filters (exclude, availability); a request they empty falls back to a full pass.
const SHORTLIST_LEN: usize = 256;

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
            interacted: HashSet::new(),
            purchased: HashSet::new(),
            shortlist: Default::default(),
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

/// One ranked item.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScoredItem {
    pub item_id: String,
    pub score: f32,
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
    pub model_version: Option<i64>,
    pub source: Source,
    pub items: Vec<ScoredItem>,
}

pub struct Serving {
    store: DynStore,
    model: ArcSwapOption<Snapshot>,
    pub catalog: Catalog,
    users: moka::sync::Cache<String, Arc<UserState>>,
    generations: Box<[AtomicU64]>,
    hasher: std::collections::hash_map::RandomState,
    exclude_interacted_default: bool,
}

impl Serving {
    pub fn new(store: DynStore, user_cache_capacity: u64, exclude_interacted: bool) -> Self {
        Self {
            store,
            model: ArcSwapOption::empty(),
            catalog: Catalog::default(),
            users: moka::sync::Cache::new(user_cache_capacity),
            generations: (0..GENERATION_SHARDS).map(|_| AtomicU64::new(0)).collect(),
            hasher: Default::default(),
            exclude_interacted_default: exclude_interacted,
        }
    }

    pub fn current(&self) -> Option<Arc<Snapshot>> {
        self.model.load_full()
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
        // Cached users carry the old version and would be refolded anyway; free them now.
        self.users.invalidate_all();
    }

    fn shard(&self, user: &str) -> &AtomicU64 {
        &self.generations[(self.hasher.hash_one(user) as usize) % GENERATION_SHARDS]
    }

    /// Called after events of `user` were durably committed and before they are acknowledged:
    /// the user's next request re-reads their history.
    pub fn user_changed(&self, user: &str) {
        self.shard(user).fetch_add(1, Ordering::AcqRel);
        self.users.invalidate(user);
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
        let history = match deadline(self.store.user_history(user)).await {
            Ok(h) => h,
            Err(e) => return degraded(cached, e),
        };
        let weights = &snap.model.weights;
        let mut purchased = HashSet::new();
        // The user's events in the order training reads them (time, then item), so recency
        // weighting gives the scores the holdout measured.
        let mut events: Vec<LogEvent> = history
            .iter()
            .filter_map(|e| {
                let item = *snap.index.get(&e.item_id)?;
                let purchase = e.event_type == EventType::Purchase;
                if purchase {
                    purchased.insert(item);
                }
                Some(LogEvent {
                    user: 0,
                    item,
                    weight: weights.of(e.event_type),
                    ts: e.ts_ms.div_euclid(1000),
                    purchase,
                })
            })
            .collect();
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
            shortlist: Default::default(),
        });
        self.users.insert(user.as_str().to_owned(), state.clone());
        Ok(state)
    }

    /// A user's recommendations: personal when they have history the model knows, popular otherwise.
    pub async fn recommend(
        &self,
        user: &UserId,
        q: &RecommendQuery,
    ) -> StoreResult<Recommendation> {
        let Some(snap) = self.current() else {
            return Ok(Recommendation {
                model_version: None,
                source: Source::Popular,
                items: Vec::new(),
            });
        };
        let state = self.user_state(user, &snap).await?;
        let include_interacted = q.include_interacted || !self.exclude_interacted_default;
        let hidden = |i: u32| {
            state.purchased.contains(&i)
                || (!include_interacted && state.interacted.contains(&i))
                || q.exclude.contains(&snap.model.item_ids[i as usize])
        };
        let scores = |out: &mut Vec<f32>| match &state.vector {
            Some(v) => {
                out.resize(snap.model.item_ids.len(), 0.0);
                snap.model.ranker.score_into(v, out);
            }
            None => out.extend_from_slice(&snap.model.popularity),
        };
        let source = match state.vector {
            Some(_) => Source::Personalized,
            None => Source::Popular,
        };
        let mut items = None;
        if !include_interacted {
            // The usual request: filter the cached ranking instead of scoring every item.
            let shortlist = state.shortlist.get_or_init(|| {
                let mut all = Vec::new();
                scores(&mut all);
                top_k(&all, SHORTLIST_LEN, |i| {
                    !state.purchased.contains(&i) && !state.interacted.contains(&i)
                })
            });
            items = self.pick(&snap, shortlist, SHORTLIST_LEN, q, hidden);
        }
        let items = match items {
            Some(items) => items,
            None => {
                let mut all = Vec::new();
                scores(&mut all);
                self.best(&snap, &all, q, hidden)
            }
        };
        Ok(Recommendation {
            model_version: Some(snap.version()),
            source,
            items,
        })
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
        let items = self.best(&snap, &snap.model.popularity, &q, |_| false);
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
            .map(|&(j, score)| ScoredItem {
                item_id: snap.model.item_ids[j as usize].clone(),
                score,
            })
            .collect();
        Some((snap.version(), items))
    }

    /// The first `q.n` items of a ranked list that pass every filter; `None` when the list
    /// ran out first although it held `full` items (items further down might pass).
    fn pick(
        &self,
        snap: &Snapshot,
        ranked: &[(u32, f32)],
        full: usize,
        q: &RecommendQuery,
        hidden: impl Fn(u32) -> bool,
    ) -> Option<Vec<ScoredItem>> {
        let view = self.catalog.view();
        let ids = &snap.model.item_ids;
        let picked: Vec<ScoredItem> = ranked
            .iter()
            .filter(|&&(i, _)| !hidden(i) && view.allows(&ids[i as usize], q.category.as_deref()))
            .take(q.n)
            .map(|&(i, score)| ScoredItem {
                item_id: ids[i as usize].clone(),
                score,
            })
            .collect();
        let exhausted = picked.len() < q.n && ranked.len() >= full;
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
        if let Some(items) = self.pick(snap, &shortlist, full, q, &hidden) {
            return items;
        }
        let ranked = {
            let view = self.catalog.view();
            let ids = &snap.model.item_ids;
            top_k(scores, q.n, |i| {
                !hidden(i) && view.allows(&ids[i as usize], q.category.as_deref())
            })
        };
        self.pick(snap, &ranked, usize::MAX, q, |_| false)
            .unwrap_or_default()
    }
}
