//! Storage: one trait, one implementation per database. Nothing outside this module knows SQL.

pub mod backup;
mod error;
pub mod postgres;
mod rows;
pub mod sqlite;
mod sqlite_read;
pub mod stats;
mod users;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use crate::domain::Arm;
use crate::domain::{EventType, ItemId, NewEvent, UserId};

pub use error::{within, Cause, StoreError, StoreResult};
pub use rows::HISTORY_LIMIT;
pub use stats::{StatDelta, StatPoint, StatStep};

/// The result of appending one request's events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    pub accepted: u64,
    /// Events whose `event_id` was already stored (or repeated within the batch).
    pub duplicates: u64,
}

/// One event of a user's history, as the request path needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    pub item_id: String,
    pub event_type: EventType,
    pub ts_ms: i64,
}

/// What [`Store::erase_user`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    pub events: u64,
    pub responses: u64,
}

/// Everything stored about one user ([`Store::export_user`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserExport {
    /// Every event, in the order stored.
    pub events: Vec<ExportedEvent>,
    /// Every recorded response, oldest first.
    pub responses: Vec<ExportedResponse>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportedEvent {
    pub event_id: Option<String>,
    pub item_id: String,
    pub event_type: EventType,
    pub ts_ms: i64,
    pub recommendation_id: Option<String>,
    pub received_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportedResponse {
    pub recommendation_id: String,
    pub model_version: i64,
    pub arm: Arm,
    pub source: String,
    pub items: Vec<String>,
    pub shown_ms: i64,
    /// The event types credited to this response.
    pub credited: Vec<EventType>,
}

/// One event of the log, as training needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub user_id: String,
    pub item_id: String,
    pub event_type: EventType,
    pub ts_ms: i64,
}

/// The interaction log up to a sequence number.
#[derive(Debug, Clone, Default)]
pub struct Log {
    pub rows: Vec<LogRow>,
    /// The sequence number of the newest event read: every event acknowledged before the read
    /// has a sequence number at or below it.
    pub max_seq: i64,
}

/// A catalog entry as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub item_id: String,
    pub title: Option<String>,
    pub categories: Vec<String>,
    pub available: bool,
    pub attributes: serde_json::Value,
    pub updated_at: DateTime<Utc>,
}

/// A validated catalog write.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemUpsert {
    pub item_id: ItemId,
    pub title: Option<String>,
    pub categories: Vec<String>,
    pub available: bool,
    pub attributes: serde_json::Value,
}

/// What became of a trained model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelStatus {
    /// Passed the gate and was put in service.
    Accepted,
    /// Scored worse than the model in service on the same holdout; never served.
    Rejected,
    /// Passed the gate and serves a share of users next to the champion until decided.
    Challenger,
    /// A challenger that lost (online, or by hand); no longer served.
    Retired,
}

impl ModelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Challenger => "challenger",
            Self::Retired => "retired",
        }
    }
}

/// Which version serves as champion. The newest accepted one, unless an operator activated
/// another: that one serves until a version recorded after the activation is accepted, or,
/// pinned, until it is unpinned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Service {
    pub champion: Option<i64>,
    pub pinned: bool,
}

impl Service {
    /// From what [`CHOSEN_SQL`] answers: the operator's choice (`version, pinned`), if one
    /// was made, and the newest accepted version that would replace it.
    pub(crate) fn from_parts(chosen: Option<(i64, bool)>, newest: Option<i64>) -> Service {
        match chosen {
            Some((version, true)) => Service {
                champion: Some(version),
                pinned: true,
            },
            _ => Service {
                champion: newest.or(chosen.map(|c| c.0)),
                pinned: false,
            },
        }
    }

    /// The champion's version when an operator pinned it.
    pub fn pinned_version(&self) -> Option<i64> {
        self.champion.filter(|_| self.pinned)
    }
}

/// The operator's choice of champion (NULLs when none was made) and the newest accepted
/// version that would replace it, in one read; the same text on both backends.
pub(crate) const CHOSEN_SQL: &str = "SELECT s.version, s.pinned, \
     (SELECT MAX(v.version) FROM model_versions v \
      WHERE v.status = 'accepted' AND v.version > COALESCE(s.newer_than, 0)) AS newest \
     FROM (SELECT 1 AS id) AS one LEFT JOIN model_service s ON s.id = one.id";

/// What [`Store::activate_model`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Activation {
    /// It is the champion now; its record as it stands.
    Activated(ModelRecord),
    /// No such version.
    Unknown,
    /// The version exists but is not accepted (rejected, challenger, retired), or has no
    /// stored parameters.
    NotAccepted(ModelStatus),
}

/// A model version's record, without its (large) fitted parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRecord {
    pub version: i64,
    pub algorithm: String,
    pub status: ModelStatus,
    pub reason: String,
    pub trained_at: DateTime<Utc>,
    pub training_seconds: f64,
    pub events: i64,
    pub users: i64,
    pub items: i64,
    /// The sequence number of the newest event the model was trained on.
    pub log_seq: i64,
    /// Holdout metrics of this model's configuration, and of the champion's on the same holdout.
    pub metrics: serde_json::Value,
    pub params: serde_json::Value,
}

/// A model record to insert; the store assigns the version.
#[derive(Debug, Clone, PartialEq)]
pub struct NewModelRecord {
    pub algorithm: String,
    pub status: ModelStatus,
    pub reason: String,
    pub trained_at: DateTime<Utc>,
    pub training_seconds: f64,
    pub events: i64,
    pub users: i64,
    pub items: i64,
    pub log_seq: i64,
    pub metrics: serde_json::Value,
    pub params: serde_json::Value,
}

/// Held while this process trains; dropping it lets another process train. On a database
/// shared by replicas it owns the connection that holds the lock, so a process that dies
/// releases it with its connection.
pub struct TrainingLease(Option<Box<dyn LeaseHolder>>);

/// What keeps a shared lease: it can tell whether the lease is still held.
#[async_trait]
pub trait LeaseHolder: Send {
    /// False once the lease was lost (e.g. its connection dropped and another process may
    /// have taken over): the training must then record nothing.
    async fn still_held(&mut self) -> bool;
}

impl TrainingLease {
    /// A lease that guards nothing beyond this process (a database no other process writes).
    pub fn local() -> Self {
        Self(None)
    }

    pub fn shared(holder: Box<dyn LeaseHolder>) -> Self {
        Self(Some(holder))
    }

    pub async fn still_held(&mut self) -> bool {
        match &mut self.0 {
            None => true,
            Some(holder) => holder.still_held().await,
        }
    }
}

/// What one recommendation response showed, as recorded for crediting and feedback.
#[derive(Debug, Clone, PartialEq)]
pub struct Impression {
    pub recommendation_id: String,
    pub user_id: String,
    /// 0 when no model answered.
    pub model_version: i64,
    pub arm: Arm,
    /// The challenger version while an experiment runs, else 0.
    pub experiment: i64,
    pub source: String,
    /// In the order shown.
    pub items: Vec<String>,
    pub shown_ms: i64,
}

/// A user's history and recorded responses, read together ([`Store::user_activity`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserActivity {
    pub history: Vec<HistoryEvent>,
    pub shown: Vec<Shown>,
}

/// The recorded responses [`Store::user_activity`] returns: `read` runs only when some are asked
/// for (`shown > 0`). They are telemetry, not truth: when they cannot be read, the request goes
/// on without them (its feedback then starts from this process's memory).
pub(crate) async fn recorded_responses(
    shown: i64,
    read: impl std::future::Future<Output = StoreResult<Vec<Shown>>>,
) -> Vec<Shown> {
    if shown <= 0 {
        return Vec::new();
    }
    read.await.unwrap_or_else(|e| {
        tracing::debug!(error = %e, "recorded responses unread");
        Vec::new()
    })
}

/// One response a user was shown, as the request path needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub recommendation_id: String,
    pub items: Vec<String>,
    pub shown_ms: i64,
}

/// Online totals of one model version in one arm of one experiment (0 = none). Clicks,
/// add-to-carts and purchases count responses that earned at least one, so each is a proportion
/// of `impressions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnlineCounts {
    pub model_version: i64,
    pub arm: Arm,
    pub experiment: i64,
    pub impressions: i64,
    pub clicks: i64,
    pub add_to_carts: i64,
    pub purchases: i64,
}

/// Sums impressions per (version, arm, experiment), for one upsert per group.
fn impression_totals(batch: &[Impression]) -> Vec<((i64, Arm, i64), i64)> {
    let mut totals: std::collections::HashMap<(i64, Arm, i64), i64> = Default::default();
    for i in batch {
        *totals
            .entry((i.model_version, i.arm, i.experiment))
            .or_default() += 1;
    }
    totals.into_iter().collect()
}

/// Sums newly credited responses per (version, arm, experiment) and event type.
fn credit_totals(rows: &[(i64, Arm, i64, EventType)]) -> Vec<((i64, Arm, i64), [i64; 3])> {
    let mut totals: std::collections::HashMap<(i64, Arm, i64), [i64; 3]> = Default::default();
    for &(version, arm, experiment, t) in rows {
        let slot = match t {
            EventType::Click => 0,
            EventType::AddToCart => 1,
            EventType::Purchase => 2,
            EventType::View => continue,
        };
        totals.entry((version, arm, experiment)).or_default()[slot] += 1;
    }
    totals.into_iter().collect()
}

/// The event types that earn a response credit (a view is only a view).
const CREDITED_TYPES: [EventType; 3] =
    [EventType::Click, EventType::AddToCart, EventType::Purchase];

/// What one credit tally did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Responses newly credited (per event type).
    pub credited: u64,
    /// The newest event sequence number read.
    pub read_to: i64,
    /// What was newly credited, per (model version, arm, experiment): clicks, add-to-carts and
    /// purchases. Each credit is returned by exactly one tally, whichever replica ran it.
    pub by_version: Vec<((i64, Arm, i64), [i64; 3])>,
}

/// A cheap fingerprint of a user's history: (number of events, newest sequence number).
/// Any event committed for the user changes it.
pub type UserStamp = (i64, i64);

/// Everything recloop keeps: the append-only event log, the catalog and the model versions.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Answers when the database does.
    async fn ping(&self) -> StoreResult<()>;

    /// Appends events; returns only once they are durably committed (fsync'd). Events whose
    /// `event_id` is already stored are skipped and counted as duplicates. All or nothing.
    async fn append_events(&self, events: Vec<NewEvent>) -> StoreResult<AppendOutcome>;

    /// True when other processes (replicas) may write to the same database, so in-process
    /// knowledge of who changed is not enough.
    fn is_shared(&self) -> bool;

    /// The user's history fingerprint, read before the history so a cache built from both is
    /// never newer than its stamp.
    async fn user_stamp(&self, user: &UserId) -> StoreResult<UserStamp>;

    /// Takes the one lease that lets a process train, if no other process holds it.
    async fn try_training_lease(&self) -> StoreResult<Option<TrainingLease>>;

    /// Changes when another process accepted a model (None: no such channel; poll instead).
    /// Each caller gets its own receiver, which remembers a change made while its owner was
    /// busy: a loop that is not waiting at the moment of the announcement still wakes for it.
    fn model_notifications(&self) -> Option<tokio::sync::watch::Receiver<u64>>;

    /// A user's history (the newest `HISTORY_LIMIT` events), oldest first by timestamp.
    async fn user_history(&self, user: &UserId) -> StoreResult<Vec<HistoryEvent>>;

    /// The sequence number of the newest stored event (0 when the log is empty).
    async fn max_event_seq(&self) -> StoreResult<i64>;

    /// The whole log, as of one consistent read.
    async fn load_log(&self) -> StoreResult<Log>;

    /// Inserts or replaces catalog entries (all or nothing), returning them as stored.
    async fn upsert_items(&self, items: Vec<ItemUpsert>) -> StoreResult<Vec<Item>>;

    /// A live (not deleted) catalog entry.
    async fn get_item(&self, item: &ItemId) -> StoreResult<Option<Item>>;

    /// Deletes a catalog entry; its events are kept. False when there was none.
    async fn delete_item(&self, item: &ItemId) -> StoreResult<bool>;

    /// Every live catalog entry.
    async fn list_items(&self) -> StoreResult<Vec<Item>>;

    /// Records a trained model, with its fitted parameters when it was accepted, in one
    /// transaction: a crash never leaves a version without its parameters.
    async fn insert_model(
        &self,
        record: NewModelRecord,
        blob: Option<Vec<u8>>,
    ) -> StoreResult<ModelRecord>;

    /// Every model version, newest first.
    async fn model_versions(&self) -> StoreResult<Vec<ModelRecord>>;

    /// Which version is the champion, and whether it is pinned, without parameters (cheap
    /// enough to poll): see [`Service`].
    async fn service(&self) -> StoreResult<Service>;

    /// The champion ([`Store::service`]) and its fitted parameters.
    async fn champion_model(&self) -> StoreResult<Option<(ModelRecord, Vec<u8>)>>;

    /// Makes an accepted version the champion (pinned or not), retiring any challenger with
    /// `retire_note` and appending `note` to the version's reason; one transaction, announced
    /// like a new model.
    async fn activate_model(
        &self,
        version: i64,
        pin: bool,
        note: &str,
        retire_note: &str,
    ) -> StoreResult<Activation>;

    /// Ends a pin: the pinned version serves on until a version trained after this call is
    /// accepted. False when nothing was pinned.
    async fn unpin_model(&self) -> StoreResult<bool>;

    /// Records what responses showed, and counts them in the online totals, in one transaction.
    async fn insert_impressions(&self, batch: Vec<Impression>) -> StoreResult<()>;

    /// The user's newest `limit` recorded responses, newest first.
    async fn user_impressions(&self, user: &UserId, limit: i64) -> StoreResult<Vec<Shown>>;

    /// What a request reads for a user it holds no current state of: their history (as
    /// [`Store::user_history`]) and their newest `shown` recorded responses (as
    /// [`Store::user_impressions`]; none asked when `shown` is 0). The stores answer both on
    /// one connection.
    async fn user_activity(&self, user: &UserId, shown: i64) -> StoreResult<UserActivity>;

    /// Credits every event after the settled point that names a recorded response of the same
    /// user and one of its shown items (click, add-to-cart or purchase; once per response and
    /// type), adding to the online totals; then moves the settled point up to `settle_to`
    /// (never down). Reading again what is not settled yet credits nothing twice.
    async fn tally_credit(&self, settle_to: i64) -> StoreResult<Tally>;

    /// Every online total.
    async fn online_counts(&self) -> StoreResult<Vec<OnlineCounts>>;

    /// Deletes impressions (and their credit marks) shown before `before_ms`; the totals stay.
    async fn purge_impressions(&self, before_ms: i64) -> StoreResult<u64>;

    /// Adds each increment to its minute, hour and day, in one transaction.
    async fn add_stats(&self, deltas: &[StatDelta]) -> StoreResult<()>;

    /// The buckets of one width that start in `[from_ms, to_ms)`, by series, labels and time.
    async fn stats(&self, step: StatStep, from_ms: i64, to_ms: i64) -> StoreResult<Vec<StatPoint>>;

    /// Deletes the buckets past their step's retention; how many.
    async fn prune_stats(&self, now_ms: i64) -> StoreResult<u64>;

    /// Moves a model from one status to another, appending `note` to its reason; false when it
    /// was not in status `from` (another replica decided first). Announced like a new model.
    async fn change_model_status(
        &self,
        version: i64,
        from: ModelStatus,
        to: ModelStatus,
        note: &str,
    ) -> StoreResult<bool>;

    /// The challenger and its fitted parameters, if one is running.
    async fn challenger_model(&self) -> StoreResult<Option<(ModelRecord, Vec<u8>)>>;

    /// The challenger's version, without its parameters (cheap enough to poll).
    async fn challenger_version(&self) -> StoreResult<Option<i64>>;

    /// Erases everything stored of a user in one transaction: their events, recorded
    /// responses and those responses' credit marks, their interned id. The online totals stay,
    /// as anonymous counts. Counted (without the id) in [`Store::erasures`], and from then on
    /// no response shown before the erasure is recorded (one still queued on some replica
    /// would otherwise bring the user back).
    async fn erase_user(&self, user: &UserId) -> StoreResult<Erased>;

    /// Every event and recorded response of a user.
    async fn export_user(&self, user: &UserId) -> StoreResult<UserExport>;

    /// How many erasures were ever made: a training that read the log before the latest one
    /// must not be recorded.
    async fn erasures(&self) -> StoreResult<i64>;

    /// Up to `limit` ids of users with events, in byte order, after `after` (from the start
    /// when None): pages through every user in bounded memory.
    async fn user_ids_after(&self, after: Option<&str>, limit: i64) -> StoreResult<Vec<String>>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store a URL names, applying its migrations.
pub async fn connect(url: &str) -> StoreResult<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(postgres::PostgresStore::open(url).await?));
    }
    Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
}
