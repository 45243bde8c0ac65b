//! PostgreSQL, for production and for several replicas on one database. Durability is
//! PostgreSQL's own (`synchronous_commit = on`). Small appends (single events) are grouped by
//! one writer task into one transaction per group, as on SQLite: a transaction costs a few
//! round trips and a WAL flush, which one event per request cannot pay 5,000 times a second.
//! Larger batches are worth a transaction each and go straight to the pool, in parallel.

use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures::TryStreamExt;
use sqlx::{
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
    ConnectOptions, FromRow, PgExecutor, PgPool, Postgres, QueryBuilder, Row,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    rows::{self, decode_all, CountsRow, ItemRow, ModelRow},
    users, *,
};

/// Rows per multi-row INSERT: 7 binds each stays below PostgreSQL's 65,535-parameter limit.
const INSERT_CHUNK: usize = 5_000;
/// Appends of fewer events than this wait for the group-commit writer; larger ones commit alone.
const GROUPED_BELOW: usize = 100;
/// A group stops collecting requests past this many events.
const GROUP_MAX_EVENTS: usize = 10_000;

/// The advisory-lock key that elects the one training replica ("recloop" in ASCII).
const TRAINING_LOCK: i64 = 0x0072_6563_6c6f_6f70;
/// The channel on which a replica announces a newly accepted model version.
const MODEL_CHANNEL: &str = "recloop_models";

pub struct PostgresStore {
    pool: PgPool,
    options: PgConnectOptions,
    /// Counts the model announcements heard (see [`Store::model_notifications`]).
    models: Arc<watch::Sender<u64>>,
    appends: mpsc::Sender<AppendJob>,
}

struct AppendJob {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<StoreResult<AppendOutcome>>,
}

async fn history_on(db: impl PgExecutor<'_>, user: &UserId) -> StoreResult<Vec<HistoryEvent>> {
    let rows: Vec<(String, i16, i64)> = sqlx::query_as(
        "SELECT item_id, type, ts_ms FROM \
         (SELECT seq, item_id, type, ts_ms FROM events WHERE user_id = $1 \
          ORDER BY seq DESC LIMIT $2) recent ORDER BY ts_ms, seq",
    )
    .bind(user.as_str())
    .bind(HISTORY_LIMIT)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|(item_id, code, ts_ms)| rows::history_event(item_id, code.into(), ts_ms))
        .collect()
}

async fn shown_on(db: impl PgExecutor<'_>, user: &UserId, limit: i64) -> StoreResult<Vec<Shown>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT recommendation_id, items, shown_ms FROM impressions WHERE user_id = $1 \
         ORDER BY shown_ms DESC LIMIT $2",
    )
    .bind(user.as_str())
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, items, shown_ms)| rows::shown(id, &items, shown_ms))
        .collect())
}

impl PostgresStore {
    /// Connects and applies the migrations. Several replicas may start at once: sqlx takes an
    /// advisory lock around migrating, so exactly one applies them.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options: PgConnectOptions = url.parse()?;
        let options = options.log_statements(tracing::log::LevelFilter::Trace);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // Fail fast while the database is down, so requests get 503 instead of hanging.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let models = Arc::new(watch::Sender::new(0));
        tokio::spawn(listen_for_models(pool.clone(), models.clone()));
        let (appends, jobs) = mpsc::channel(1024);
        tokio::spawn(group_commit(pool.clone(), jobs));
        Ok(Self {
            pool,
            options,
            models,
            appends,
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Bumps `models` on every NOTIFY of a new model, for as long as the process runs. The
/// listener reconnects by itself after an outage; a notification missed meanwhile is caught
/// by the trainer's polling, and every (re)connection bumps it once to be sure.
async fn listen_for_models(pool: PgPool, models: Arc<watch::Sender<u64>>) {
    let announce = || models.send_modify(|n| *n = n.wrapping_add(1));
    // Ends with the pool, so a closed store lets go of its connections.
    while !pool.is_closed() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "model listener cannot connect yet");
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(MODEL_CHANNEL).await {
            tracing::debug!(error = %e, "LISTEN failed");
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        announce();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => announce(),
                // The connection dropped: listen anew (and announce once more).
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "model listener lost its connection");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break;
                }
            }
        }
    }
}

/// Drains every small append waiting in the queue into one transaction, commits once, answers all.
async fn group_commit(pool: PgPool, mut jobs: mpsc::Receiver<AppendJob>) {
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        let mut events = group[0].events.len();
        while events < GROUP_MAX_EVENTS {
            match jobs.try_recv() {
                Ok(job) => {
                    events += job.events.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        metrics::histogram!("recloop_group_commit_requests").record(group.len() as f64);
        let batches: Vec<&[NewEvent]> = group.iter().map(|job| job.events.as_slice()).collect();
        match insert_events(&pool, &batches).await {
            Ok(outcomes) => {
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                // Every request of the group learns what happened, as it was classified; each
                // answer is logged where it is rendered.
                tracing::debug!(error = %e, requests = group.len(), "group commit failed");
                let failure = e.fan_out();
                for job in group {
                    let _ = job.reply.send(Err(failure()));
                }
            }
        }
    }
}

/// Inserts several requests' events in one transaction; one outcome per request.
async fn insert_events(pool: &PgPool, batches: &[&[NewEvent]]) -> StoreResult<Vec<AppendOutcome>> {
    let received_ms = Utc::now().timestamp_millis();
    // Concurrent transactions sharing event ids must take their unique-index locks in the same
    // order, or two of them deadlock: insert in event-id order (events without one last). The
    // sort is stable, so of two events with one id the earlier request's comes first.
    // A user's history is read in timestamp order, so nothing depends on the input order.
    let mut rows: Vec<(usize, &NewEvent)> = batches
        .iter()
        .enumerate()
        .flat_map(|(request, events)| events.iter().map(move |e| (request, e)))
        .collect();
    rows.sort_by(|(_, a), (_, b)| match (&a.event_id, &b.event_id) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    let mut tx = pool.begin().await?;
    let mut stored_ids = std::collections::HashSet::new();
    for chunk in rows.chunks(INSERT_CHUNK) {
        let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
            "INSERT INTO events \
             (event_id, user_id, item_id, type, ts_ms, recommendation_id, received_ms) ",
        );
        q.push_values(chunk, |mut b, (_, e)| {
            b.push_bind(e.event_id.as_ref().map(|id| id.as_str()))
                .push_bind(e.user_id.as_str())
                .push_bind(e.item_id.as_str())
                .push_bind(e.event_type.code())
                .push_bind(e.ts_ms)
                .push_bind(e.recommendation_id.as_deref())
                .push_bind(received_ms);
        });
        q.push(" ON CONFLICT (event_id) WHERE event_id IS NOT NULL DO NOTHING RETURNING event_id");
        let inserted: Vec<Option<String>> = q.build_query_scalar().fetch_all(&mut *tx).await?;
        stored_ids.extend(inserted.into_iter().flatten());
    }
    tx.commit().await?;
    // An id that was stored is credited to its first carrier; every other carrier (an earlier
    // commit's, or a second one in this transaction) was a duplicate.
    let mut outcomes = vec![AppendOutcome::default(); batches.len()];
    for (request, e) in rows {
        let stored = e
            .event_id
            .as_ref()
            .is_none_or(|id| stored_ids.remove(id.as_str()));
        if stored {
            outcomes[request].accepted += 1;
        } else {
            outcomes[request].duplicates += 1;
        }
    }
    Ok(outcomes)
}

/// A session advisory lock lives exactly as long as its connection: while the connection
/// answers, the lock is ours.
struct AdvisoryLease(sqlx::PgConnection);

#[async_trait]
impl LeaseHolder for AdvisoryLease {
    async fn still_held(&mut self) -> bool {
        let check = sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
             AND pid = pg_backend_pid() AND objid = ($1 & 4294967295)::oid AND granted)",
        )
        .bind(TRAINING_LOCK)
        .fetch_one(&mut self.0);
        matches!(
            tokio::time::timeout(Duration::from_secs(5), check).await,
            Ok(Ok(true))
        )
    }
}

const ITEM_COLUMNS: &str = "item_id, title, categories::text AS categories, available, \
                            attributes::text AS attributes, updated_ms";

const MODEL_COLUMNS: &str = "version, algorithm, status, reason, trained_ms, training_seconds, \
     events, users, items, log_seq, metrics::text AS metrics, params::text AS params";

/// Tells every listening replica, when `tx` commits, that the models changed (`version`).
async fn announce(tx: &mut sqlx::Transaction<'_, Postgres>, version: i64) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(MODEL_CHANNEL)
        .bind(version.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn service_of(db: impl PgExecutor<'_>) -> StoreResult<Service> {
    let (version, pinned, newest): (Option<i64>, Option<bool>, Option<i64>) =
        sqlx::query_as(CHOSEN_SQL).fetch_one(db).await?;
    Ok(Service::from_parts(version.zip(pinned), newest))
}

/// The model `filter` picks (a condition on one bound value; the newest when several
/// match) if it has fitted parameters, with them.
async fn model_with_blob<T>(
    db: impl PgExecutor<'_>,
    filter: &str,
    value: T,
) -> StoreResult<Option<(ModelRecord, Vec<u8>)>>
where
    T: 'static + Send + for<'q> sqlx::Encode<'q, Postgres> + sqlx::Type<Postgres>,
{
    let row: Option<(ModelRow, Vec<u8>)> = sqlx::query(&format!(
        "SELECT {MODEL_COLUMNS}, data FROM model_versions JOIN model_blobs USING (version) \
         WHERE {filter} ORDER BY version DESC LIMIT 1"
    ))
    .bind(value)
    .try_map(|row: sqlx::postgres::PgRow| Ok((ModelRow::from_row(&row)?, row.try_get("data")?)))
    .fetch_optional(db)
    .await?;
    row.map(|(record, data)| Ok((record.try_into()?, data)))
        .transpose()
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn is_shared(&self) -> bool {
        true
    }

    async fn try_training_lease(&self) -> StoreResult<Option<TrainingLease>> {
        // A connection of its own, outside the pool: the session-level advisory lock lives as
        // long as the connection, so a replica that dies mid-training releases it by dying.
        let mut conn = self.options.connect().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(TRAINING_LOCK)
            .fetch_one(&mut conn)
            .await?;
        Ok(got.then(|| TrainingLease::shared(Box::new(AdvisoryLease(conn)))))
    }

    fn model_notifications(&self) -> Option<watch::Receiver<u64>> {
        Some(self.models.subscribe())
    }

    async fn append_events(&self, events: Vec<NewEvent>) -> StoreResult<AppendOutcome> {
        if events.is_empty() {
            return Ok(AppendOutcome::default());
        }
        if events.len() >= GROUPED_BELOW {
            let outcomes = insert_events(&self.pool, &[&events]).await?;
            return Ok(outcomes[0]);
        }
        let (reply, answer) = oneshot::channel();
        // The writer lives as long as the store: without it, whether a group that held these
        // events was committed is unknown, so this is no "retry, nothing was written".
        let gone = || StoreError::internal("the group-commit writer is gone");
        self.appends
            .send(AppendJob { events, reply })
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    async fn user_stamp(&self, user: &UserId) -> StoreResult<UserStamp> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, COALESCE(MAX(seq), 0) AS latest FROM events WHERE user_id = $1",
        )
        .bind(user.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("latest")?))
    }

    async fn user_history(&self, user: &UserId) -> StoreResult<Vec<HistoryEvent>> {
        history_on(&self.pool, user).await
    }

    async fn max_event_seq(&self) -> StoreResult<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn load_log(&self) -> StoreResult<Log> {
        // REPEATABLE READ: the max and the rows come from one snapshot.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let max_seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(&mut *tx)
            .await?;
        let mut rows = Vec::new();
        {
            let mut stream =
                sqlx::query("SELECT user_id, item_id, type, ts_ms FROM events ORDER BY seq")
                    .fetch(&mut *tx);
            while let Some(r) = stream.try_next().await? {
                rows.push(rows::log_row(
                    r.try_get("user_id")?,
                    r.try_get("item_id")?,
                    r.try_get::<i16, _>("type")?.into(),
                    r.try_get("ts_ms")?,
                )?);
            }
        }
        tx.commit().await?;
        Ok(Log {
            rows,
            max_seq: max_seq.unwrap_or(0),
        })
    }

    async fn upsert_items(&self, items: Vec<ItemUpsert>) -> StoreResult<Vec<Item>> {
        let now = Utc::now().timestamp_millis();
        let mut tx = self.pool.begin().await?;
        let mut stored = Vec::with_capacity(items.len());
        for item in items {
            let categories = serde_json::to_string(&item.categories)
                .map_err(|e| StoreError::Internal(Box::new(e)))?;
            sqlx::query(
                "INSERT INTO items (item_id, title, categories, available, attributes, deleted, updated_ms) \
                 VALUES ($1, $2, $3::jsonb, $4, $5::jsonb, FALSE, $6) \
                 ON CONFLICT (item_id) DO UPDATE SET title = excluded.title, \
                 categories = excluded.categories, available = excluded.available, \
                 attributes = excluded.attributes, deleted = FALSE, updated_ms = excluded.updated_ms",
            )
            .bind(item.item_id.as_str())
            .bind(item.title.as_deref())
            .bind(categories)
            .bind(item.available)
            .bind(item.attributes.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            stored.push(Item {
                item_id: item.item_id.into_inner(),
                title: item.title,
                categories: item.categories,
                available: item.available,
                attributes: item.attributes,
                updated_at: rows::time(now)?,
            });
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn get_item(&self, item: &ItemId) -> StoreResult<Option<Item>> {
        let row: Option<ItemRow> = sqlx::query_as(&format!(
            "SELECT {ITEM_COLUMNS} FROM items WHERE item_id = $1 AND NOT deleted"
        ))
        .bind(item.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(Item::try_from).transpose()
    }

    async fn delete_item(&self, item: &ItemId) -> StoreResult<bool> {
        // One statement: a live entry is tombstoned, an item only seen in events gets a
        // tombstone, and an entry already deleted (or an unknown item) is left alone: false.
        let done = sqlx::query(
            "INSERT INTO items (item_id, available, deleted, updated_ms) \
             SELECT $1, FALSE, TRUE, $2 \
             WHERE EXISTS (SELECT 1 FROM items WHERE item_id = $1) \
                OR EXISTS (SELECT 1 FROM events WHERE item_id = $1) \
             ON CONFLICT (item_id) DO UPDATE SET deleted = TRUE, available = FALSE, \
             updated_ms = excluded.updated_ms WHERE NOT items.deleted",
        )
        .bind(item.as_str())
        .bind(Utc::now().timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_items(&self) -> StoreResult<Vec<Item>> {
        let rows: Vec<ItemRow> = sqlx::query_as(&format!("SELECT {ITEM_COLUMNS} FROM items"))
            .fetch_all(&self.pool)
            .await?;
        decode_all(rows)
    }

    async fn insert_model(
        &self,
        record: NewModelRecord,
        blob: Option<Vec<u8>>,
    ) -> StoreResult<ModelRecord> {
        let mut tx = self.pool.begin().await?;
        let row: ModelRow = sqlx::query_as(&format!(
            "INSERT INTO model_versions (algorithm, status, reason, trained_ms, training_seconds, \
             events, users, items, log_seq, metrics, params) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11::jsonb) \
             RETURNING {MODEL_COLUMNS}"
        ))
        .bind(&record.algorithm)
        .bind(record.status.as_str())
        .bind(&record.reason)
        .bind(record.trained_at.timestamp_millis())
        .bind(record.training_seconds)
        .bind(record.events)
        .bind(record.users)
        .bind(record.items)
        .bind(record.log_seq)
        .bind(record.metrics.to_string())
        .bind(record.params.to_string())
        .fetch_one(&mut *tx)
        .await?;
        let stored = ModelRecord::try_from(row)?;
        if let Some(data) = blob {
            sqlx::query("INSERT INTO model_blobs (version, data) VALUES ($1, $2)")
                .bind(stored.version)
                .bind(data)
                .execute(&mut *tx)
                .await?;
            // Delivered at commit, to every replica listening.
            announce(&mut tx, stored.version).await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn model_versions(&self) -> StoreResult<Vec<ModelRecord>> {
        let rows: Vec<ModelRow> = sqlx::query_as(&format!(
            "SELECT {MODEL_COLUMNS} FROM model_versions ORDER BY version DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        decode_all(rows)
    }

    async fn service(&self) -> StoreResult<Service> {
        service_of(&self.pool).await
    }

    async fn champion_model(&self) -> StoreResult<Option<(ModelRecord, Vec<u8>)>> {
        match service_of(&self.pool).await?.champion {
            Some(version) => model_with_blob(&self.pool, "version = $1", version).await,
            None => Ok(None),
        }
    }

    async fn activate_model(
        &self,
        version: i64,
        pin: bool,
        note: &str,
        retire_note: &str,
    ) -> StoreResult<Activation> {
        let mut tx = self.pool.begin().await?;
        let found: Option<(String, bool)> = sqlx::query_as(
            "SELECT status, EXISTS (SELECT 1 FROM model_blobs b WHERE b.version = v.version) \
             FROM model_versions v WHERE version = $1",
        )
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((status, has_blob)) = found else {
            return Ok(Activation::Unknown);
        };
        let status = rows::model_status(&status)?;
        if status != ModelStatus::Accepted || !has_blob {
            return Ok(Activation::NotAccepted(status));
        }
        sqlx::query(
            "INSERT INTO model_service (id, version, pinned, newer_than) \
             VALUES (1, $1, $2, (SELECT MAX(version) FROM model_versions)) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, \
             pinned = excluded.pinned, newer_than = excluded.newer_than",
        )
        .bind(version)
        .bind(pin)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE model_versions SET status = 'retired', reason = reason || $1 \
             WHERE status = 'challenger'",
        )
        .bind(retire_note)
        .execute(&mut *tx)
        .await?;
        let row: ModelRow = sqlx::query_as(&format!(
            "UPDATE model_versions SET reason = reason || $1 WHERE version = $2 \
             RETURNING {MODEL_COLUMNS}"
        ))
        .bind(note)
        .bind(version)
        .fetch_one(&mut *tx)
        .await?;
        // Every replica puts it in service at once, as it would a new model.
        announce(&mut tx, version).await?;
        tx.commit().await?;
        Ok(Activation::Activated(row.try_into()?))
    }

    async fn unpin_model(&self) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE model_service SET pinned = FALSE, \
             newer_than = (SELECT MAX(version) FROM model_versions) WHERE id = 1 AND pinned",
        )
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_impressions(&self, batch: Vec<Impression>) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        // SHARE mode: batches do not wait for each other, and an erasure (which writes to
        // `erasures` first) waits for this one to commit, then deletes what it wrote.
        sqlx::query("LOCK TABLE erasures IN SHARE MODE")
            .execute(&mut *tx)
            .await?;
        let erased: Option<i64> = sqlx::query_scalar("SELECT MAX(erased_ms) FROM erasures")
            .fetch_one(&mut *tx)
            .await?;
        let mut batch = batch;
        users::shown_after_erasure(&mut batch, erased);
        for chunk in batch.chunks(INSERT_CHUNK) {
            let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
                "INSERT INTO impressions (recommendation_id, user_id, model_version, \
                 arm, experiment, source, items, shown_ms) ",
            );
            q.push_values(chunk, |mut b, i| {
                b.push_bind(&i.recommendation_id)
                    .push_bind(&i.user_id)
                    .push_bind(i.model_version)
                    .push_bind(i.arm.as_str())
                    .push_bind(i.experiment)
                    .push_bind(&i.source)
                    .push_bind(rows::pack_items(&i.items))
                    .push_bind(i.shown_ms);
            });
            q.push(" ON CONFLICT (recommendation_id) DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        for ((version, arm, experiment), n) in impression_totals(&batch) {
            sqlx::query(
                "INSERT INTO online_counts (model_version, arm, experiment, impressions) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (model_version, arm, experiment) \
                 DO UPDATE SET impressions = online_counts.impressions + excluded.impressions",
            )
            .bind(version)
            .bind(arm.as_str())
            .bind(experiment)
            .bind(n)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn user_impressions(&self, user: &UserId, limit: i64) -> StoreResult<Vec<Shown>> {
        shown_on(&self.pool, user, limit).await
    }

    async fn user_activity(&self, user: &UserId, shown: i64) -> StoreResult<UserActivity> {
        // One connection for both: one pool acquisition (and its liveness test) per request.
        let mut conn = self.pool.acquire().await?;
        let history = history_on(&mut *conn, user).await?;
        let shown = recorded_responses(shown, shown_on(&mut *conn, user, shown)).await;
        Ok(UserActivity { history, shown })
    }

    async fn tally_credit(&self, settle_to: i64) -> StoreResult<Tally> {
        let mut tx = self.pool.begin().await?;
        // Row-locked: tallies of several replicas take turns instead of deadlocking on credits.
        let from: i64 =
            sqlx::query_scalar("SELECT seq FROM credit_progress WHERE id = 1 FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        let to: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(&mut *tx)
            .await?;
        let to = to.unwrap_or(0);
        let types = CREDITED_TYPES.map(|t| t.code().to_string()).join(", ");
        // The item must be among those shown: the packed list is bracketed by separators so
        // that one id never matches inside another.
        let rows: Vec<(i64, String, i64, i16)> = sqlx::query_as(&format!(
            "INSERT INTO credits (recommendation_id, type, model_version, arm, experiment, shown_ms) \
             SELECT DISTINCT i.recommendation_id, e.type, i.model_version, i.arm, i.experiment, \
             i.shown_ms FROM events e JOIN impressions i ON i.recommendation_id = e.recommendation_id \
             WHERE e.seq > $1 AND e.seq <= $2 AND e.type IN ({types}) AND e.user_id = i.user_id \
             AND strpos(chr(10) || i.items || chr(10), chr(10) || e.item_id || chr(10)) > 0 \
             ON CONFLICT DO NOTHING RETURNING model_version, arm, experiment, type"
        ))
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await?;
        let credited = rows
            .into_iter()
            .map(|(version, arm, experiment, code)| {
                rows::credit(version, &arm, experiment, code.into())
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let by_version = credit_totals(&credited);
        for &((version, arm, experiment), [clicks, carts, purchases]) in &by_version {
            sqlx::query(
                "INSERT INTO online_counts (model_version, arm, experiment, clicks, add_to_carts, \
                 purchases) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (model_version, arm, experiment) \
                 DO UPDATE SET clicks = online_counts.clicks + excluded.clicks, \
                 add_to_carts = online_counts.add_to_carts + excluded.add_to_carts, \
                 purchases = online_counts.purchases + excluded.purchases",
            )
            .bind(version)
            .bind(arm.as_str())
            .bind(experiment)
            .bind(clicks)
            .bind(carts)
            .bind(purchases)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE credit_progress SET seq = GREATEST(seq, LEAST($1, $2)) WHERE id = 1")
            .bind(settle_to)
            .bind(to)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Tally {
            credited: credited.len() as u64,
            read_to: to,
            by_version,
        })
    }

    async fn online_counts(&self) -> StoreResult<Vec<OnlineCounts>> {
        let rows: Vec<CountsRow> = sqlx::query_as(
            "SELECT model_version, arm, experiment, impressions, clicks, add_to_carts, purchases \
             FROM online_counts ORDER BY model_version, arm, experiment",
        )
        .fetch_all(&self.pool)
        .await?;
        decode_all(rows)
    }

    async fn add_stats(&self, deltas: &[StatDelta]) -> StoreResult<()> {
        stats::add_postgres(&self.pool, deltas).await
    }

    async fn stats(&self, step: StatStep, from_ms: i64, to_ms: i64) -> StoreResult<Vec<StatPoint>> {
        stats::read_postgres(&self.pool, step, from_ms, to_ms).await
    }

    async fn prune_stats(&self, now_ms: i64) -> StoreResult<u64> {
        stats::prune_postgres(&self.pool, now_ms).await
    }

    async fn purge_impressions(&self, before_ms: i64) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let purged = sqlx::query("DELETE FROM impressions WHERE shown_ms < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM credits WHERE shown_ms < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(purged)
    }

    async fn change_model_status(
        &self,
        version: i64,
        from: ModelStatus,
        to: ModelStatus,
        note: &str,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE model_versions SET status = $1, reason = reason || $2 \
             WHERE version = $3 AND status = $4",
        )
        .bind(to.as_str())
        .bind(note)
        .bind(version)
        .bind(from.as_str())
        .execute(&mut *tx)
        .await?;
        let changed = done.rows_affected() > 0;
        if changed {
            // Other replicas adopt a promoted model and drop a retired challenger at once.
            announce(&mut tx, version).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn challenger_model(&self) -> StoreResult<Option<(ModelRecord, Vec<u8>)>> {
        model_with_blob(
            &self.pool,
            "status = $1",
            ModelStatus::Challenger.as_str().to_owned(),
        )
        .await
    }

    async fn challenger_version(&self) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(version) FROM model_versions WHERE status = 'challenger'",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn erase_user(&self, user: &UserId) -> StoreResult<Erased> {
        users::postgres::erase(&self.pool, user).await
    }

    async fn export_user(&self, user: &UserId) -> StoreResult<UserExport> {
        users::postgres::export(&self.pool, user).await
    }

    async fn erasures(&self) -> StoreResult<i64> {
        users::postgres::erasures(&self.pool).await
    }

    async fn user_ids_after(&self, after: Option<&str>, limit: i64) -> StoreResult<Vec<String>> {
        users::postgres::user_ids_after(&self.pool, after, limit).await
    }
}
