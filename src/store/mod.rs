//! Storage: one trait, one implementation per database. Nothing outside this module knows SQL.

pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{EventType, ItemId, NewEvent, UserId};

/// Why storage failed. `Unavailable` means "retry later, nothing was half-written".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("stored data is not what this version expects: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::TypeNotFound { .. } => Self::Corrupt(e.to_string()),
            other => Self::Unavailable(other),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

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
}

impl ModelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
        }
    }
    fn parse(s: &str) -> StoreResult<Self> {
        match s {
            "accepted" => Ok(Self::Accepted),
            "rejected" => Ok(Self::Rejected),
            other => Err(StoreError::Corrupt(format!(
                "unknown model status {other:?}"
            ))),
        }
    }
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
    fn is_shared(&self) -> bool {
        false
    }

    /// The user's history fingerprint, read before the history so a cache built from both is
    /// never newer than its stamp.
    async fn user_stamp(&self, user: &UserId) -> StoreResult<UserStamp>;

    /// Takes the one lease that lets a process train, if no other process holds it.
    async fn try_training_lease(&self) -> StoreResult<Option<TrainingLease>> {
        Ok(Some(TrainingLease::local()))
    }

    /// Woken when another process accepted a model (None: no such channel; poll instead).
    fn model_notifications(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }

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

    /// The version of the newest accepted model, without its parameters (cheap enough to poll).
    async fn latest_accepted_version(&self) -> StoreResult<Option<i64>>;

    /// The newest accepted model and its fitted parameters.
    async fn latest_accepted_model(&self) -> StoreResult<Option<(ModelRecord, Vec<u8>)>>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the store a URL names, applying its migrations.
pub async fn connect(url: &str) -> StoreResult<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(postgres::PostgresStore::open(url).await?));
    }
    Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
}
