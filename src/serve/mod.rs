//! The request path: the model in service — an atomically swapped snapshot — and how a request
//! is answered from it. It reads the store and the models; nothing here trains or decides.
//!
//! A user's vector is never stored: it is folded in from their full history against the fixed
//! item factors when they ask, so an event acknowledged a moment ago already counts, and cached
//! until their next event.
//!
//! What a response shows is feedback too: each item loses a share of its score per showing the
//! user did not act on (counted from the user's last recorded responses, and in-process from
//! every response since), and a share of a personal list's slots goes to little-known or new
//! items, chosen from the `recommendation_id` so that a response can be reproduced. With a
//! challenger running, a stable share of users is answered by it instead of the champion.

mod catalog;
mod demote;
mod explain;
mod impressions;
mod rank;
mod snapshot;
pub mod stats;
mod user;
mod writes;

use std::{
    hash::BuildHasher,
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc,
    },
};

use arc_swap::{ArcSwap, ArcSwapOption};

pub use catalog::Catalog;
pub use demote::penalized;
pub use explain::BECAUSE_LEN;
pub use impressions::{spawn_writer, ImpressionSink};
pub use rank::{exploration_slots, Because, Reason, RecommendQuery, ScoredItem, Source};
pub use snapshot::Snapshot;
use user::UserState;
pub use writes::credited_version;

use crate::{
    config::Config,
    domain::{Arm, UserId},
    model::arms,
    store::{DynStore, Impression, StoreResult},
};

/// New catalog items (unknown to the model) kept as exploration candidates.
const NEW_ITEMS_MAX: usize = 1_000;

/// Generations are sharded by user: an event bumps its user's shard, so only the (few) users of
/// that shard re-read their history. Enough shards that a busy shop rarely bumps a given one.
const GENERATION_SHARDS: usize = 1 << 16;

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
    /// The version an operator pinned (0: none), as the database said when last asked.
    pinned: AtomicI64,
    /// Counts for `GET /v1/stats`, written behind the requests.
    pub stats: Arc<stats::StatsTally>,
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
            pinned: AtomicI64::new(0),
            stats: Default::default(),
        }
    }

    /// The version an operator pinned in service, as the database said when last asked.
    pub fn pinned(&self) -> Option<i64> {
        Some(self.pinned.load(Ordering::Relaxed)).filter(|&v| v > 0)
    }

    pub fn set_pinned(&self, version: Option<i64>) {
        self.pinned.store(version.unwrap_or(0), Ordering::Relaxed);
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

    /// The versions answering requests: the champion and the challenger, if any.
    pub fn versions_in_service(&self) -> Vec<i64> {
        [self.current(), self.challenger()]
            .into_iter()
            .flatten()
            .map(|s| s.version())
            .collect()
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
        self.swap_in(snapshot, true);
    }

    /// Puts an older model back in service: the database says an operator activated it.
    pub fn roll_back(&self, snapshot: Snapshot) {
        self.swap_in(snapshot, false);
    }

    fn swap_in(&self, snapshot: Snapshot, newer_only: bool) {
        let version = snapshot.version();
        let new = Arc::new(snapshot);
        let kept = |c: &Arc<Snapshot>| {
            if newer_only {
                c.version() >= version
            } else {
                c.version() == version
            }
        };
        let previous = self.model.rcu(|current| match current {
            Some(c) if kept(c) => Some(c.clone()),
            _ => Some(new.clone()),
        });
        if previous.as_ref().is_some_and(kept) {
            return;
        }
        metrics::gauge!("recloop_model_version").set(version as f64);
        // A challenger that is not newer than the champion has been promoted or overtaken;
        // beside a rolled-back champion, none is left in the database either.
        let stale = self
            .challenger()
            .is_some_and(|c| !newer_only || c.version() <= version);
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

    /// After the user's erasure: their cached state goes whole (nothing of it carries over
    /// into the next one), and any request already reading their history reads it again.
    pub fn forget_user(&self, user: &str) {
        self.users.invalidate(user);
        self.user_changed(user);
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
            self.stats.add(
                "responses",
                response_labels(Source::Popular, Arm::Champion),
                1.0,
            );
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
        let (source, mut items) = self.rank(&snap, &state, q, &recommendation_id);
        if q.explain {
            self.explain(&snap, &state, q, source, &mut items);
        }
        self.stats
            .add("responses", response_labels(source, arm), 1.0);
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
}

/// The labels of the `responses` series, without an allocation per request.
fn response_labels(source: Source, arm: Arm) -> &'static str {
    match (source, arm) {
        (Source::Personalized, Arm::Champion) => "source=personalized&arm=champion",
        (Source::Personalized, Arm::Challenger) => "source=personalized&arm=challenger",
        (Source::Popular, Arm::Champion) => "source=popular&arm=champion",
        (Source::Popular, Arm::Challenger) => "source=popular&arm=challenger",
    }
}
