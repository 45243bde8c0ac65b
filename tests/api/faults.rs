//! A store wrapper that injects faults and pauses, through the public `Store` trait and
//! `build_app_with_store`: storage that is down, and a training held right after it has read
//! the log (so "a training is running" is a fact the test controls, not a race it hopes to win).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use async_trait::async_trait;
use recloop::{
    domain::{ItemId, NewEvent, UserId},
    store::{
        Activation, AppendOutcome, DynStore, Erased, HistoryEvent, Impression, Item, ItemUpsert,
        Log, ModelRecord, ModelStatus, NewModelRecord, OnlineCounts, Service, Shown, StatDelta,
        StatPoint, StatStep, Store, StoreError, StoreResult, Tally, TrainingLease, UserActivity,
        UserExport, UserStamp,
    },
};
use tokio::sync::{watch, RwLock};

#[derive(Debug)]
pub struct Faults {
    /// While set, every call fails with `StoreError::Unavailable`.
    pub down: AtomicBool,
    /// While a test holds it for writing, `load_log` waits after reading the log.
    pub log_gate: Arc<RwLock<()>>,
    /// How many times `load_log` has read the log (and reached the gate).
    pub log_reads: watch::Sender<usize>,
}

impl Faults {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            down: AtomicBool::new(false),
            log_gate: Arc::new(RwLock::new(())),
            log_reads: watch::Sender::new(0),
        })
    }

    /// For `TestApp::spawn_on`: wraps the real store.
    pub fn wrapper(self: &Arc<Self>) -> impl FnOnce(DynStore) -> DynStore {
        let faults = self.clone();
        move |inner| Arc::new(FaultyStore { inner, faults })
    }

    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Waits until `counter` exceeds `seen`.
    pub async fn wait_past(counter: &watch::Sender<usize>, seen: usize) {
        let mut rx = counter.subscribe();
        crate::helpers::within(rx.wait_for(|&n| n > seen))
            .await
            .expect("the store is alive");
    }
}

struct FaultyStore {
    inner: DynStore,
    faults: Arc<Faults>,
}

impl FaultyStore {
    fn check(&self) -> StoreResult<()> {
        if self.faults.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("storage is down (injected)".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn ping(&self) -> StoreResult<()> {
        self.check()?;
        self.inner.ping().await
    }

    async fn append_events(&self, events: Vec<NewEvent>) -> StoreResult<AppendOutcome> {
        self.check()?;
        self.inner.append_events(events).await
    }

    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }

    async fn user_stamp(&self, user: &UserId) -> StoreResult<UserStamp> {
        self.check()?;
        self.inner.user_stamp(user).await
    }

    async fn try_training_lease(&self) -> StoreResult<Option<TrainingLease>> {
        self.check()?;
        self.inner.try_training_lease().await
    }

    fn model_notifications(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.inner.model_notifications()
    }

    async fn user_history(&self, user: &UserId) -> StoreResult<Vec<HistoryEvent>> {
        self.check()?;
        self.inner.user_history(user).await
    }

    async fn max_event_seq(&self) -> StoreResult<i64> {
        self.check()?;
        self.inner.max_event_seq().await
    }

    async fn load_log(&self) -> StoreResult<Log> {
        self.check()?;
        let log = self.inner.load_log().await;
        self.faults.log_reads.send_modify(|n| *n += 1);
        let _pass = self.faults.log_gate.read().await;
        log
    }

    async fn upsert_items(&self, items: Vec<ItemUpsert>) -> StoreResult<Vec<Item>> {
        self.check()?;
        self.inner.upsert_items(items).await
    }

    async fn get_item(&self, item: &ItemId) -> StoreResult<Option<Item>> {
        self.check()?;
        self.inner.get_item(item).await
    }

    async fn delete_item(&self, item: &ItemId) -> StoreResult<bool> {
        self.check()?;
        self.inner.delete_item(item).await
    }

    async fn list_items(&self) -> StoreResult<Vec<Item>> {
        self.check()?;
        self.inner.list_items().await
    }

    async fn insert_model(
        &self,
        record: NewModelRecord,
        blob: Option<Vec<u8>>,
    ) -> StoreResult<ModelRecord> {
        self.check()?;
        self.inner.insert_model(record, blob).await
    }

    async fn model_versions(&self) -> StoreResult<Vec<ModelRecord>> {
        self.check()?;
        self.inner.model_versions().await
    }

    async fn service(&self) -> StoreResult<Service> {
        self.check()?;
        self.inner.service().await
    }

    async fn champion_model(&self) -> StoreResult<Option<(ModelRecord, Vec<u8>)>> {
        self.check()?;
        self.inner.champion_model().await
    }

    async fn activate_model(
        &self,
        version: i64,
        pin: bool,
        note: &str,
        retire_note: &str,
    ) -> StoreResult<Activation> {
        self.check()?;
        self.inner
            .activate_model(version, pin, note, retire_note)
            .await
    }

    async fn unpin_model(&self) -> StoreResult<bool> {
        self.check()?;
        self.inner.unpin_model().await
    }

    async fn insert_impressions(&self, batch: Vec<Impression>) -> StoreResult<()> {
        self.check()?;
        self.inner.insert_impressions(batch).await
    }

    async fn user_impressions(&self, user: &UserId, limit: i64) -> StoreResult<Vec<Shown>> {
        self.check()?;
        self.inner.user_impressions(user, limit).await
    }

    async fn user_activity(&self, user: &UserId, shown: i64) -> StoreResult<UserActivity> {
        self.check()?;
        self.inner.user_activity(user, shown).await
    }

    async fn tally_credit(&self, settle_to: i64) -> StoreResult<Tally> {
        self.check()?;
        self.inner.tally_credit(settle_to).await
    }

    async fn online_counts(&self) -> StoreResult<Vec<OnlineCounts>> {
        self.check()?;
        self.inner.online_counts().await
    }

    async fn purge_impressions(&self, before_ms: i64) -> StoreResult<u64> {
        self.check()?;
        self.inner.purge_impressions(before_ms).await
    }

    async fn add_stats(&self, deltas: &[StatDelta]) -> StoreResult<()> {
        self.check()?;
        self.inner.add_stats(deltas).await
    }

    async fn stats(&self, step: StatStep, from_ms: i64, to_ms: i64) -> StoreResult<Vec<StatPoint>> {
        self.check()?;
        self.inner.stats(step, from_ms, to_ms).await
    }

    async fn prune_stats(&self, now_ms: i64) -> StoreResult<u64> {
        self.check()?;
        self.inner.prune_stats(now_ms).await
    }

    async fn change_model_status(
        &self,
        version: i64,
        from: ModelStatus,
        to: ModelStatus,
        note: &str,
    ) -> StoreResult<bool> {
        self.check()?;
        self.inner
            .change_model_status(version, from, to, note)
            .await
    }

    async fn challenger_model(&self) -> StoreResult<Option<(ModelRecord, Vec<u8>)>> {
        self.check()?;
        self.inner.challenger_model().await
    }

    async fn challenger_version(&self) -> StoreResult<Option<i64>> {
        self.check()?;
        self.inner.challenger_version().await
    }

    async fn erase_user(&self, user: &UserId) -> StoreResult<Erased> {
        self.check()?;
        self.inner.erase_user(user).await
    }

    async fn export_user(&self, user: &UserId) -> StoreResult<UserExport> {
        self.check()?;
        self.inner.export_user(user).await
    }

    async fn erasures(&self) -> StoreResult<i64> {
        self.check()?;
        self.inner.erasures().await
    }

    async fn user_ids_after(&self, after: Option<&str>, limit: i64) -> StoreResult<Vec<String>> {
        self.check()?;
        self.inner.user_ids_after(after, limit).await
    }
}
