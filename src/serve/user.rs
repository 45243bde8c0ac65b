//! What the request path knows about one user: their vector folded in from their history
//! against the model's item factors, what they bought and touched, and what they were shown.
//! Built on their first request under a model and cached until their next event.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{atomic::Ordering, Arc, Mutex, OnceLock},
};

use fnv::{FnvHashMap, FnvHashSet};

use super::{demote::DemotedOrder, snapshot::Snapshot, Serving};
use crate::{
    domain::{EventType, UserId},
    model::{interactions::sort_for_fit, recency::weighted_history, LogEvent, UserVector},
    store::{self, StoreError, StoreResult, UserActivity, UserStamp},
};

/// What the request path knows about one user under one model version.
pub(super) struct UserState {
    model_version: i64,
    /// The shard generation when the history was read; stale once the shard moves on.
    generation: u64,
    /// The user's stamp in a shared database, read before the history.
    stamp: Option<UserStamp>,
    pub(super) vector: Option<UserVector>,
    /// The weighted history the vector was folded in from, sorted by item, and the strongest
    /// event type on each of its items: what an explanation splits a score over.
    pub(super) fold: Box<[(u32, f32)]>,
    kinds: Box<[EventType]>,
    pub(super) interacted: FnvHashSet<u32>,
    pub(super) purchased: FnvHashSet<u32>,
    /// Items of the history the model does not know (too new): never explored for this user.
    pub(super) touched_unknown: HashSet<String>,
    /// The user's best items under the default hiding rule, ranked once and reused by every
    /// request until the user's next event or the next model: most requests then skip scoring.
    pub(super) ranked: OnceLock<Ranked>,
    /// How often each item was shown since the user last touched it.
    pub(super) shown: Mutex<ShownCounts>,
}

impl UserState {
    /// The strongest event type the user has on history item `i` (a view when unknown).
    pub(super) fn strongest(&self, i: u32) -> EventType {
        self.fold
            .binary_search_by_key(&i, |&(j, _)| j)
            .map_or(EventType::View, |at| self.kinds[at])
    }
}

pub(super) struct Ranked {
    pub(super) shortlist: Vec<(u32, f32)>,
    /// The user's best little-known items: exploration's candidates among known items.
    pub(super) explore: Vec<(u32, f32)>,
}

/// Showings without an action, per item; and this process's newest responses, which a
/// rebuilt state carries over until the database has them (impressions are written behind).
#[derive(Default)]
pub(super) struct ShownCounts {
    pub(super) counts: FnvHashMap<u32, u32>,
    recent: VecDeque<(String, i64, Vec<u32>)>,
    /// The cached shortlist as the penalty orders it, built on first use and then moved
    /// along with every count.
    pub(super) order: Option<DemotedOrder>,
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

    pub(super) fn record(&mut self, recommendation_id: &str, shown_ms: i64, items: Vec<u32>) {
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

/// How long the request path waits for the database before answering from memory: an outage
/// must not make every recommendation wait for the pool's connect timeout.
const READ_DEADLINE: std::time::Duration = std::time::Duration::from_millis(500);

async fn deadline<T>(read: impl std::future::Future<Output = StoreResult<T>>) -> StoreResult<T> {
    store::within(READ_DEADLINE, read).await
}

/// While the database is down or too slow, recommendations go on from what is known: the
/// user's last cached state, or else none (popular items). Only events need the database to
/// answer. A database that answers with corrupt data is no outage: that fails the request.
fn degraded(cached: Option<Arc<UserState>>, e: StoreError) -> StoreResult<Arc<UserState>> {
    if !e.is_outage() {
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
            fold: Box::default(),
            kinds: Box::default(),
            interacted: FnvHashSet::default(),
            purchased: FnvHashSet::default(),
            touched_unknown: HashSet::new(),
            ranked: Default::default(),
            shown: Default::default(),
        })
    }))
}

impl Serving {
    /// The user's folded-in state, from the cache while it is current. Current means: same
    /// model, and no event for the user since it was built — known in-process from the shard
    /// generation, and, when replicas share the database, from the user's stamp in it.
    pub(super) async fn user_state(
        &self,
        user: &UserId,
        snap: &Snapshot,
    ) -> StoreResult<Arc<UserState>> {
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
        // The log only grows, except by an erasure (on another replica, when the stamp
        // shrank): then nothing of the old state carries over.
        let previous = cached.clone().filter(|p| match (p.stamp, stamp) {
            (Some((n0, latest0)), Some((n1, latest1))) => n1 >= n0 && latest1 >= latest0,
            _ => true,
        });
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
        let mut strongest: FnvHashMap<u32, EventType> = FnvHashMap::default();
        // The user's events in the order training reads them (time, then item), so recency
        // weighting gives the scores the holdout measured.
        let mut events: Vec<LogEvent> = Vec::with_capacity(history.len());
        for e in &history {
            if let Some(&i) = snap.index.get(&e.item_id) {
                let last = touched.entry(i).or_insert(i64::MIN);
                *last = (*last).max(e.ts_ms);
                let kind = strongest.entry(i).or_insert(e.event_type);
                if weights.of(e.event_type) > weights.of(*kind) {
                    *kind = e.event_type;
                }
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
            kinds: fold.iter().map(|(i, _)| strongest[i]).collect(),
            fold: fold.into(),
            purchased,
            touched_unknown,
            ranked: Default::default(),
            shown: Mutex::new(shown),
        });
        self.users.insert(user.as_str().to_owned(), state.clone());
        Ok(state)
    }
}
