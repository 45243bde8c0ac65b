//! The embedded default: SQLite in WAL mode with `synchronous=FULL`, so a commit survives a
//! machine crash. Concurrent appends are grouped into one transaction (group commit) by a single
//! writer task, so durability costs one fsync per group, not per request.

use std::{collections::HashMap, str::FromStr, time::Duration};

use async_trait::async_trait;
use chrono::Utc;
use futures::TryStreamExt;
use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    FromRow, QueryBuilder, Row, Sqlite, SqliteExecutor, SqlitePool,
};
use tokio::sync::{mpsc, oneshot};

use super::{
    rows::{self, decode_all, CountsRow, ItemRow, ModelRow},
    sqlite_read::Readers,
    users, *,
};

/// Rows per multi-row INSERT: 7 binds each stays far below SQLite's 32,766-variable limit.
/// Only statements of exactly this many rows are kept prepared: a group's remainder has any
/// length below it, and each length cached would keep a compiled statement of thousands of
/// parameters in the connection (up to 100 of them).
const INSERT_CHUNK: usize = 1_000;
/// Ids per statement that interns them (one bind each), and the shorter lengths used.
const INTERN_CHUNK: usize = 1_000;
const INTERN_SHAPES: [usize; 4] = [1, 10, 100, INTERN_CHUNK];
/// A group commit stops collecting requests past this many events, bounding one transaction.
const GROUP_MAX_EVENTS: usize = 50_000;
/// A user's newest events, oldest first. The item ids are joined with CROSS JOIN so that the
/// few history rows stay the outer loop: with a plain JOIN, SQLite 3.46 scans every item key
/// against a Bloom filter of the history instead, an order of magnitude slower per query on a
/// 20,000-item catalogue, and a cold recommendation request waited on that scan.
const USER_HISTORY: &str =
    "WITH RECURSIVE blocks(b) AS (SELECT (SELECT MAX(seq) FROM events) >> 16 \
     UNION ALL SELECT b - 1 FROM blocks WHERE b > 0) \
     SELECT i.item_id, r.type, r.ts_ms FROM \
     (SELECT e.seq, e.item_key, e.type, e.ts_ms \
      FROM blocks CROSS JOIN events e WHERE (e.seq >> 16) = blocks.b \
      AND e.user_key = (SELECT user_key FROM user_keys WHERE user_id = ?) \
      ORDER BY e.seq DESC LIMIT ?) r \
     CROSS JOIN item_keys i ON i.item_key = r.item_key ORDER BY r.ts_ms, r.seq";

/// A user's newest recorded responses, newest first.
const USER_SHOWN: &str = "SELECT recommendation_id, items, shown_ms FROM impressions \
     WHERE user_id = ? ORDER BY shown_ms DESC LIMIT ?";

/// Threads answering the request path's reads (`sqlite_read`): one per core, since a read of
/// cached pages is CPU work. On the 2-core cold-request benchmark (`bench-synth-serving.sh`)
/// two threads beat one on throughput and four on tail latency.
fn reader_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().max(2))
}

struct AppendJob {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<StoreResult<AppendOutcome>>,
}

pub struct SqliteStore {
    read: SqlitePool,
    /// The request path's reads (see `sqlite_read`); none for an in-memory database, which
    /// only the pools' shared cache can see.
    readers: Option<Readers>,
    write: SqlitePool,
    appends: mpsc::Sender<AppendJob>,
}

async fn history_on(db: impl SqliteExecutor<'_>, user: &UserId) -> StoreResult<Vec<HistoryEvent>> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(USER_HISTORY)
        .bind(user.as_str())
        .bind(HISTORY_LIMIT)
        .fetch_all(db)
        .await?;
    rows.into_iter()
        .map(|(item_id, code, ts_ms)| rows::history_event(item_id, code, ts_ms))
        .collect()
}

async fn shown_on(
    db: impl SqliteExecutor<'_>,
    user: &UserId,
    limit: i64,
) -> StoreResult<Vec<Shown>> {
    let rows: Vec<(String, String, i64)> = sqlx::query_as(USER_SHOWN)
        .bind(user.as_str())
        .bind(limit)
        .fetch_all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, items, shown_ms)| rows::shown(id, &items, shown_ms))
        .collect())
}

/// `history_on` and `shown_on` for a reader thread's connection; the shown read's failure is
/// kept apart, as `recorded_responses` treats it as none.
fn activity_on(
    conn: &rusqlite::Connection,
    user: &str,
    shown: i64,
) -> StoreResult<(Vec<HistoryEvent>, StoreResult<Vec<Shown>>)> {
    let mut statement = conn.prepare_cached(USER_HISTORY)?;
    let history = statement
        .query_map((user, HISTORY_LIMIT), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .map(|row| {
            let (item_id, code, ts_ms) = row?;
            rows::history_event(item_id, code, ts_ms)
        })
        .collect::<StoreResult<_>>()?;
    if shown <= 0 {
        return Ok((history, Ok(Vec::new())));
    }
    let recorded = conn
        .prepare_cached(USER_SHOWN)
        .and_then(|mut statement| {
            statement
                .query_map((user, shown), |r| {
                    Ok(rows::shown(r.get(0)?, &r.get::<_, String>(1)?, r.get(2)?))
                })?
                .collect()
        })
        .map_err(StoreError::from);
    Ok((history, recorded))
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and applies the migrations.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL fsyncs the WAL on every commit: an acknowledged event survives power loss.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            // Checkpoint less often (every ~160 MB of WAL instead of 4 MB): a checkpoint runs
            // inside a commit, and with random (UUIDv4) event ids nearly every leaf of the
            // unique index is dirty again by the next one, so its cost is per checkpoint, not
            // per event. The WAL is truncated back afterwards.
            .pragma("wal_autocheckpoint", "40000")
            .pragma("journal_size_limit", "67108864")
            // 64 MiB of pages for the writer: under steady ingest the index pages a commit
            // touches are scattered; the fewer must be read back, the fewer spill mid-commit.
            // (256 MiB gained ~5% on random-id ingest: not worth the resident memory.)
            .pragma("cache_size", "-65536")
            // A multi-row INSERT inside the group's transaction keeps a statement journal (a
            // copy of every page it changes, to undo just that statement on an error): in
            // memory that is a memcpy per page, in a temporary file a pwrite per page.
            .pragma("temp_store", "MEMORY")
            .foreign_keys(true);
        // One writing connection: SQLite has one writer anyway, and the group-commit task
        // is the one place that decides what goes into a transaction.
        // Switching a new file to WAL takes an exclusive lock that the busy timeout does not
        // wait for: when several processes open a new database at once, retry a little.
        let mut attempt = 0;
        let write = loop {
            let opened = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .test_before_acquire(false)
                .after_release(|conn, _| Box::pin(outside_any_transaction(conn)))
                .connect_with(options.clone())
                .await;
            match opened {
                Err(sqlx::Error::Database(e)) if is_busy(e.as_ref()) && attempt < 50 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * attempt.min(10))).await;
                }
                other => break other?,
            }
        };
        let migrator = sqlx::migrate!("./migrations/sqlite");
        let mut attempt = 0;
        while let Err(e) = migrator.run(&write).await {
            // SQLite has no migration lock: another opener may be applying them meanwhile, and
            // each migration it wins fails ours once; run again once it has committed.
            attempt += 1;
            if attempt > 2 * migrator.iter().count() {
                return Err(e.into());
            }
            tokio::time::sleep(Duration::from_millis(20 * attempt as u64)).await;
        }
        // The pool serves everything but the request path's reads (models, catalog, reports),
        // which take their own threads below; four keep such reads from queueing.
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            // A pool tests a connection before handing it out with a round trip to its worker
            // thread; a local file's connection does not go stale, and every request's reads
            // paid for that test.
            .test_before_acquire(false)
            // 4 MiB of pages each, as the reader threads': the soak's memory plateau was mostly
            // readers' page caches.
            .connect_with(
                options
                    .clone()
                    .read_only(true)
                    .pragma("cache_size", "-4096"),
            )
            .await?;
        // `sqlite::memory:` names a shared-cache URI (`file:sqlx-in-memory-N`) that only the
        // pools' connections can open.
        let file = options.get_filename();
        let in_memory = file
            .to_str()
            .is_some_and(|f| f == ":memory:" || f.starts_with("file:"));
        let readers = if in_memory {
            None
        } else {
            Some(Readers::open(file, reader_threads())?)
        };
        let (appends, jobs) = mpsc::channel(1024);
        tokio::spawn(group_commit(write.clone(), jobs));
        Ok(Self {
            read,
            readers,
            write,
            appends,
        })
    }
}

/// Whether the writing connection can go back to the pool: neither SQLite nor sqlx thinks a
/// transaction is open on it. A COMMIT that fails on a full disk or an I/O error may or may
/// not have rolled back, and sqlx, which counts the transactions it opened, then keeps
/// counting one; its next `begin` would be a SAVEPOINT inside it, and appends acknowledged
/// after that would never reach the file. Such a connection is closed, and the pool opens a
/// fresh one.
async fn outside_any_transaction(conn: &mut sqlx::SqliteConnection) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    let mut handle = conn.lock_handle().await?;
    // SAFETY: the handle is locked for this call, and `sqlite3_get_autocommit` only reads the
    // connection's state.
    let autocommit =
        unsafe { rusqlite::ffi::sqlite3_get_autocommit(handle.as_raw_handle().as_ptr()) };
    drop(handle);
    let clean = autocommit != 0 && !conn.is_in_transaction();
    if !clean {
        tracing::warn!(
            "closing the database's writing connection: a transaction did not end cleanly"
        );
    }
    Ok(clean)
}

/// SQLITE_BUSY, in any of its extended forms (the primary code is the low byte).
fn is_busy(e: &dyn sqlx::error::DatabaseError) -> bool {
    e.code()
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| c & 0xff == 5)
}

/// Drains every append waiting in the queue into one transaction, commits once, answers all.
async fn group_commit(pool: SqlitePool, mut jobs: mpsc::Receiver<AppendJob>) {
    let mut keys = KeyCache::default();
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
        match write_group(&pool, &group, &mut keys).await {
            Ok(outcomes) => {
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                // Every request of the group learns what happened, as it was classified (a
                // corrupt file is not an outage); each answer is logged where it is rendered.
                tracing::debug!(error = %e, requests = group.len(), "group commit failed");
                let failure = e.fan_out();
                for job in group {
                    let _ = job.reply.send(Err(failure()));
                }
            }
        }
    }
}

/// The keys of user and item ids this writer has committed. A key never changes once
/// committed (rows of user_keys/item_keys are never updated or deleted), so an entry stays true
/// even while other processes write; only keys of a committed group are added.
#[derive(Default)]
struct KeyCache {
    users: HashMap<String, i64>,
    items: HashMap<String, i64>,
}

/// Ids whose keys a writer keeps in memory, per kind; past it the cache starts over.
const KEY_CACHE_MAX: usize = 1_000_000;

async fn write_group(
    pool: &SqlitePool,
    group: &[AppendJob],
    cache: &mut KeyCache,
) -> StoreResult<Vec<AppendOutcome>> {
    let received_ms = Utc::now().timestamp_millis();
    let mut tx = pool.begin().await?;
    let events = || group.iter().flat_map(|job| job.events.iter());
    let new_users = intern(
        &mut tx,
        &cache.users,
        "user_keys",
        "user_id",
        "user_key",
        events().map(|e| e.user_id.as_str()),
    )
    .await?;
    let new_items = intern(
        &mut tx,
        &cache.items,
        "item_keys",
        "item_id",
        "item_key",
        events().map(|e| e.item_id.as_str()),
    )
    .await?;
    let key = |known: &HashMap<String, i64>, new: &HashMap<String, i64>, id: &str| {
        known
            .get(id)
            .or_else(|| new.get(id))
            .copied()
            .ok_or_else(|| StoreError::internal(format!("no key for {id:?} after interning it")))
    };
    let mut outcomes = Vec::with_capacity(group.len());
    for job in group {
        let mut accepted = 0;
        for chunk in job.events.chunks(INSERT_CHUNK) {
            let keyed = chunk
                .iter()
                .map(|e| {
                    Ok((
                        e,
                        key(&cache.users, &new_users, e.user_id.as_str())?,
                        key(&cache.items, &new_items, e.item_id.as_str())?,
                    ))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            // OR IGNORE, not ON CONFLICT (event_id) DO NOTHING: with any constraint left to
            // abort on, SQLite copies every page the statement changes into a statement journal
            // (to undo just this statement), a visible share of the writer's time. The only
            // constraint that can fail is the event_id index: every other column is bound from
            // a non-null Rust value and seq is the rowid, so IGNORE skips exactly the repeats.
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR IGNORE INTO events \
                 (event_id, user_key, item_key, type, ts_ms, recommendation_id, received_ms) ",
            );
            q.push_values(keyed, |mut b, (e, user_key, item_key)| {
                match e.event_id.as_ref().map(|id| id.as_str()) {
                    Some(id) => match packed_uuid(id) {
                        Some(bytes) => b.push_bind(bytes.to_vec()),
                        None => b.push_bind(id),
                    },
                    None => b.push_bind(None::<&str>),
                };
                b.push_bind(user_key)
                    .push_bind(item_key)
                    .push_bind(e.event_type.code())
                    .push_bind(e.ts_ms)
                    .push_bind(e.recommendation_id.as_deref())
                    .push_bind(received_ms);
            });
            accepted += q
                .build()
                .persistent(chunk.len() == INSERT_CHUNK)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        outcomes.push(AppendOutcome {
            accepted,
            duplicates: job.events.len() as u64 - accepted,
        });
    }
    tx.commit().await?;
    for (known, new) in [(&mut cache.users, new_users), (&mut cache.items, new_items)] {
        if known.len() + new.len() > KEY_CACHE_MAX {
            known.clear();
        }
        known.extend(new);
    }
    Ok(outcomes)
}

/// The 16 bytes of an event id written as a canonical UUID (lowercase hex, hyphenated), which the
/// unique index keeps in less than half the room of its text (migration 0004). Any other
/// spelling is stored as sent, so two ids that differ in any character stay two ids.
fn packed_uuid(id: &str) -> Option<[u8; 16]> {
    let text = id.as_bytes();
    if text.len() != 36 || [8, 13, 18, 23].iter().any(|&i| text[i] != b'-') {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut digits = text.iter().copied().filter(|&c| c != b'-');
    let mut bytes = [0; 16];
    for byte in &mut bytes {
        *byte = nibble(digits.next()?)? << 4 | nibble(digits.next()?)?;
    }
    Some(bytes)
}

/// Gives every id the cache does not know a key, in the group's transaction (a group that fails
/// leaves no key behind), and returns their keys. An id met only in an event refused as a
/// duplicate keeps its key: harmless, the catalog then treats the item as seen.
async fn intern<'a>(
    tx: &mut sqlx::SqliteConnection,
    known: &HashMap<String, i64>,
    table: &str,
    id_column: &str,
    key_column: &str,
    ids: impl Iterator<Item = &'a str>,
) -> StoreResult<HashMap<String, i64>> {
    let mut missing: Vec<&str> = ids.filter(|id| !known.contains_key(*id)).collect();
    missing.sort_unstable();
    missing.dedup();
    let mut keys = HashMap::with_capacity(missing.len());
    for chunk in missing.chunks(INTERN_CHUNK) {
        // Statements of a few fixed lengths, padded by repeating an id (harmless to both), so
        // the prepared-statement cache keeps them instead of one new statement per group.
        let len = INTERN_SHAPES
            .into_iter()
            .find(|&n| n >= chunk.len())
            .unwrap_or(INTERN_CHUNK);
        let padded = || chunk.iter().chain(std::iter::repeat(&chunk[0])).take(len);
        let mut q: QueryBuilder<Sqlite> =
            QueryBuilder::new(format!("INSERT OR IGNORE INTO {table} ({id_column}) "));
        q.push_values(padded(), |mut b, id| {
            b.push_bind(*id);
        });
        q.build().execute(&mut *tx).await?;
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {id_column}, {key_column} FROM {table} WHERE {id_column} IN ("
        ));
        let mut list = q.separated(", ");
        for id in padded() {
            list.push_bind(*id);
        }
        q.push(")");
        let rows: Vec<(String, i64)> = q.build_query_as().fetch_all(&mut *tx).await?;
        keys.extend(rows);
    }
    Ok(keys)
}

const MODEL_COLUMNS: &str = "version, algorithm, status, reason, trained_ms, training_seconds, \
                             events, users, items, log_seq, metrics, params";
const ITEM_COLUMNS: &str = "item_id, title, categories, available, attributes, updated_ms";

async fn service_of(db: impl SqliteExecutor<'_>) -> StoreResult<Service> {
    let (version, pinned, newest): (Option<i64>, Option<bool>, Option<i64>) =
        sqlx::query_as(CHOSEN_SQL).fetch_one(db).await?;
    Ok(Service::from_parts(version.zip(pinned), newest))
}

/// The model `filter` picks (a condition on one bound value; the newest when several
/// match) if it has fitted parameters, with them.
async fn model_with_blob<T>(
    db: impl SqliteExecutor<'_>,
    filter: &str,
    value: T,
) -> StoreResult<Option<(ModelRecord, Vec<u8>)>>
where
    T: 'static + Send + for<'q> sqlx::Encode<'q, Sqlite> + sqlx::Type<Sqlite>,
{
    let row: Option<(ModelRow, Vec<u8>)> = sqlx::query(&format!(
        "SELECT {MODEL_COLUMNS}, data FROM model_versions JOIN model_blobs USING (version) \
         WHERE {filter} ORDER BY version DESC LIMIT 1"
    ))
    .bind(value)
    .try_map(|row: sqlx::sqlite::SqliteRow| Ok((ModelRow::from_row(&row)?, row.try_get("data")?)))
    .fetch_optional(db)
    .await?;
    row.map(|(record, data)| Ok((record.try_into()?, data)))
        .transpose()
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn append_events(&self, events: Vec<NewEvent>) -> StoreResult<AppendOutcome> {
        if events.is_empty() {
            return Ok(AppendOutcome::default());
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

    /// A SQLite file has one writing process (replicas share PostgreSQL): what this process
    /// knows of its own writes is all there is to know.
    fn is_shared(&self) -> bool {
        false
    }

    async fn try_training_lease(&self) -> StoreResult<Option<TrainingLease>> {
        Ok(Some(TrainingLease::local()))
    }

    /// No other process announces models: the trainer of this one is the only one.
    fn model_notifications(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    // Both walk the per-user index block by block (see migration 0002): one index seek per
    // 65,536 events of the log, about 150 at ten million events.
    async fn user_stamp(&self, user: &UserId) -> StoreResult<UserStamp> {
        let row = sqlx::query(
            "WITH RECURSIVE blocks(b) AS (SELECT (SELECT MAX(seq) FROM events) >> 16 \
             UNION ALL SELECT b - 1 FROM blocks WHERE b > 0) \
             SELECT COUNT(*) AS n, COALESCE(MAX(e.seq), 0) AS latest \
             FROM blocks CROSS JOIN events e WHERE (e.seq >> 16) = blocks.b \
             AND e.user_key = (SELECT user_key FROM user_keys WHERE user_id = ?)",
        )
        .bind(user.as_str())
        .fetch_one(&self.read)
        .await?;
        Ok((row.try_get("n")?, row.try_get("latest")?))
    }

    async fn user_history(&self, user: &UserId) -> StoreResult<Vec<HistoryEvent>> {
        history_on(&self.read, user).await
    }

    async fn max_event_seq(&self) -> StoreResult<i64> {
        let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(&self.read)
            .await?;
        Ok(seq.unwrap_or(0))
    }

    async fn load_log(&self) -> StoreResult<Log> {
        // One read transaction: the max and the rows come from the same snapshot.
        let mut tx = self.read.begin().await?;
        let max_seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(&mut *tx)
            .await?;
        let max_seq = max_seq.unwrap_or(0);
        let mut rows = Vec::new();
        {
            let mut stream = sqlx::query(
                // CROSS JOIN keeps the log the outer loop: rows come in seq order, no sort.
                "SELECT u.user_id, i.item_id, e.type, e.ts_ms FROM events e \
                 CROSS JOIN user_keys u ON u.user_key = e.user_key \
                 CROSS JOIN item_keys i ON i.item_key = e.item_key \
                 WHERE e.seq <= ? ORDER BY e.seq",
            )
            .bind(max_seq)
            .fetch(&mut *tx);
            while let Some(r) = stream.try_next().await? {
                rows.push(rows::log_row(
                    r.try_get("user_id")?,
                    r.try_get("item_id")?,
                    r.try_get("type")?,
                    r.try_get("ts_ms")?,
                )?);
            }
        }
        tx.commit().await?;
        Ok(Log { rows, max_seq })
    }

    async fn upsert_items(&self, items: Vec<ItemUpsert>) -> StoreResult<Vec<Item>> {
        let now = Utc::now();
        let mut tx = self.write.begin().await?;
        let mut stored = Vec::with_capacity(items.len());
        for item in items {
            let categories = serde_json::to_string(&item.categories)
                .map_err(|e| StoreError::Internal(Box::new(e)))?;
            sqlx::query(
                "INSERT INTO items (item_id, title, categories, available, attributes, deleted, updated_ms) \
                 VALUES (?, ?, ?, ?, ?, 0, ?) \
                 ON CONFLICT (item_id) DO UPDATE SET title = excluded.title, \
                 categories = excluded.categories, available = excluded.available, \
                 attributes = excluded.attributes, deleted = 0, updated_ms = excluded.updated_ms",
            )
            .bind(item.item_id.as_str())
            .bind(item.title.as_deref())
            .bind(categories)
            .bind(item.available)
            .bind(item.attributes.to_string())
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await?;
            stored.push(Item {
                item_id: item.item_id.into_inner(),
                title: item.title,
                categories: item.categories,
                available: item.available,
                attributes: item.attributes,
                updated_at: rows::time(now.timestamp_millis())?,
            });
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn get_item(&self, item: &ItemId) -> StoreResult<Option<Item>> {
        let row: Option<ItemRow> = sqlx::query_as(&format!(
            "SELECT {ITEM_COLUMNS} FROM items WHERE item_id = ? AND deleted = 0"
        ))
        .bind(item.as_str())
        .fetch_optional(&self.read)
        .await?;
        row.map(Item::try_from).transpose()
    }

    async fn delete_item(&self, item: &ItemId) -> StoreResult<bool> {
        // A tombstone rather than a DELETE: the events stay, and so does the fact that the
        // item must never be recommended again. One statement: a live entry is tombstoned, an
        // item only seen in events gets a tombstone, an entry already deleted is left alone.
        let done = sqlx::query(
            "INSERT INTO items (item_id, categories, available, attributes, deleted, updated_ms) \
             SELECT ?1, '[]', 0, '{}', 1, ?2 \
             WHERE EXISTS (SELECT 1 FROM items WHERE item_id = ?1) \
                OR EXISTS (SELECT 1 FROM item_keys WHERE item_id = ?1) \
             ON CONFLICT (item_id) DO UPDATE SET deleted = 1, available = 0, \
             updated_ms = excluded.updated_ms WHERE items.deleted = 0",
        )
        .bind(item.as_str())
        .bind(Utc::now().timestamp_millis())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_items(&self) -> StoreResult<Vec<Item>> {
        // Deleted items come too (as unavailable): the catalog snapshot must know to hide them.
        let rows: Vec<ItemRow> = sqlx::query_as(&format!("SELECT {ITEM_COLUMNS} FROM items"))
            .fetch_all(&self.read)
            .await?;
        decode_all(rows)
    }

    async fn insert_model(
        &self,
        record: NewModelRecord,
        blob: Option<Vec<u8>>,
    ) -> StoreResult<ModelRecord> {
        let mut tx = self.write.begin().await?;
        let row: ModelRow = sqlx::query_as(&format!(
            "INSERT INTO model_versions (algorithm, status, reason, trained_ms, training_seconds, \
             events, users, items, log_seq, metrics, params) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
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
            sqlx::query("INSERT INTO model_blobs (version, data) VALUES (?, ?)")
                .bind(stored.version)
                .bind(data)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn model_versions(&self) -> StoreResult<Vec<ModelRecord>> {
        let rows: Vec<ModelRow> = sqlx::query_as(&format!(
            "SELECT {MODEL_COLUMNS} FROM model_versions ORDER BY version DESC"
        ))
        .fetch_all(&self.read)
        .await?;
        decode_all(rows)
    }

    async fn service(&self) -> StoreResult<Service> {
        service_of(&self.read).await
    }

    async fn champion_model(&self) -> StoreResult<Option<(ModelRecord, Vec<u8>)>> {
        match service_of(&self.read).await?.champion {
            Some(version) => model_with_blob(&self.read, "version = ?", version).await,
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
        let mut tx = self.write.begin().await?;
        let found: Option<(String, bool)> = sqlx::query_as(
            "SELECT status, EXISTS (SELECT 1 FROM model_blobs b WHERE b.version = v.version) \
             FROM model_versions v WHERE version = ?",
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
             VALUES (1, ?1, ?2, (SELECT MAX(version) FROM model_versions)) \
             ON CONFLICT (id) DO UPDATE SET version = excluded.version, \
             pinned = excluded.pinned, newer_than = excluded.newer_than",
        )
        .bind(version)
        .bind(pin)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE model_versions SET status = 'retired', reason = reason || ? \
             WHERE status = 'challenger'",
        )
        .bind(retire_note)
        .execute(&mut *tx)
        .await?;
        let row: ModelRow = sqlx::query_as(&format!(
            "UPDATE model_versions SET reason = reason || ? WHERE version = ? \
             RETURNING {MODEL_COLUMNS}"
        ))
        .bind(note)
        .bind(version)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Activation::Activated(row.try_into()?))
    }

    async fn unpin_model(&self) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE model_service SET pinned = 0, \
             newer_than = (SELECT MAX(version) FROM model_versions) WHERE id = 1 AND pinned = 1",
        )
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_impressions(&self, batch: Vec<Impression>) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        // Read in the transaction that writes: if an erasure commits in between, SQLite
        // refuses this transaction's writes (its snapshot is stale) rather than let it in.
        let erased: Option<i64> = sqlx::query_scalar("SELECT MAX(erased_ms) FROM erasures")
            .fetch_one(&mut *tx)
            .await?;
        let mut batch = batch;
        users::shown_after_erasure(&mut batch, erased);
        for chunk in batch.chunks(INSERT_CHUNK) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT OR IGNORE INTO impressions (recommendation_id, user_id, model_version, \
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
            q.build()
                .persistent(chunk.len() == INSERT_CHUNK)
                .execute(&mut *tx)
                .await?;
        }
        for ((version, arm, experiment), n) in impression_totals(&batch) {
            sqlx::query(
                "INSERT INTO online_counts (model_version, arm, experiment, impressions) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (model_version, arm, experiment) \
                 DO UPDATE SET impressions = impressions + excluded.impressions",
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
        shown_on(&self.read, user, limit).await
    }

    async fn user_activity(&self, user: &UserId, shown: i64) -> StoreResult<UserActivity> {
        if let Some(readers) = &self.readers {
            let id = user.as_str().to_owned();
            let (history, recorded) = readers
                .run(move |conn| activity_on(conn, &id, shown))
                .await?;
            let shown = recorded_responses(shown, async { recorded }).await;
            return Ok(UserActivity { history, shown });
        }
        // One connection for both: each acquisition and release is a round trip to the
        // connection's worker thread.
        let mut conn = self.read.acquire().await?;
        let history = history_on(&mut *conn, user).await?;
        let shown = recorded_responses(shown, shown_on(&mut *conn, user, shown)).await;
        Ok(UserActivity { history, shown })
    }

    async fn tally_credit(&self, settle_to: i64) -> StoreResult<Tally> {
        let mut tx = self.write.begin().await?;
        let from: i64 = sqlx::query_scalar("SELECT seq FROM credit_progress WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let to: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
            .fetch_one(&mut *tx)
            .await?;
        let to = to.unwrap_or(0);
        let types = CREDITED_TYPES.map(|t| t.code().to_string()).join(", ");
        // The item must be among those shown: the packed list is bracketed by separators so
        // that one id never matches inside another.
        let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(&format!(
            "INSERT INTO credits (recommendation_id, type, model_version, arm, experiment, shown_ms) \
             SELECT DISTINCT i.recommendation_id, e.type, i.model_version, i.arm, i.experiment, \
             i.shown_ms FROM events e JOIN impressions i ON i.recommendation_id = e.recommendation_id \
             JOIN user_keys u ON u.user_key = e.user_key JOIN item_keys k ON k.item_key = e.item_key \
             WHERE e.seq > ? AND e.seq <= ? AND e.type IN ({types}) AND u.user_id = i.user_id \
             AND instr(char(10) || i.items || char(10), char(10) || k.item_id || char(10)) > 0 \
             ON CONFLICT DO NOTHING RETURNING model_version, arm, experiment, type"
        ))
        .bind(from)
        .bind(to)
        .fetch_all(&mut *tx)
        .await?;
        let credited = rows
            .into_iter()
            .map(
                |(version, arm, experiment, code): (i64, String, i64, i64)| {
                    rows::credit(version, &arm, experiment, code)
                },
            )
            .collect::<StoreResult<Vec<_>>>()?;
        let by_version = credit_totals(&credited);
        for &((version, arm, experiment), [clicks, carts, purchases]) in &by_version {
            sqlx::query(
                "INSERT INTO online_counts (model_version, arm, experiment, clicks, add_to_carts, \
                 purchases) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (model_version, arm, experiment) \
                 DO UPDATE SET clicks = clicks + excluded.clicks, \
                 add_to_carts = add_to_carts + excluded.add_to_carts, \
                 purchases = purchases + excluded.purchases",
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
        sqlx::query("UPDATE credit_progress SET seq = MAX(seq, MIN(?, ?)) WHERE id = 1")
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
        .fetch_all(&self.read)
        .await?;
        decode_all(rows)
    }

    async fn add_stats(&self, deltas: &[StatDelta]) -> StoreResult<()> {
        stats::add_sqlite(&self.write, deltas).await
    }

    async fn stats(&self, step: StatStep, from_ms: i64, to_ms: i64) -> StoreResult<Vec<StatPoint>> {
        stats::read_sqlite(&self.read, step, from_ms, to_ms).await
    }

    async fn prune_stats(&self, now_ms: i64) -> StoreResult<u64> {
        stats::prune_sqlite(&self.write, now_ms).await
    }

    async fn purge_impressions(&self, before_ms: i64) -> StoreResult<u64> {
        let mut tx = self.write.begin().await?;
        let purged = sqlx::query("DELETE FROM impressions WHERE shown_ms < ?")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM credits WHERE shown_ms < ?")
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
        let done = sqlx::query(
            "UPDATE model_versions SET status = ?, reason = reason || ? \
             WHERE version = ? AND status = ?",
        )
        .bind(to.as_str())
        .bind(note)
        .bind(version)
        .bind(from.as_str())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn challenger_model(&self) -> StoreResult<Option<(ModelRecord, Vec<u8>)>> {
        model_with_blob(
            &self.read,
            "status = ?",
            ModelStatus::Challenger.as_str().to_owned(),
        )
        .await
    }

    async fn challenger_version(&self) -> StoreResult<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MAX(version) FROM model_versions WHERE status = 'challenger'",
        )
        .fetch_one(&self.read)
        .await?)
    }

    async fn erase_user(&self, user: &UserId) -> StoreResult<Erased> {
        users::sqlite::erase(&self.write, user).await
    }

    async fn export_user(&self, user: &UserId) -> StoreResult<UserExport> {
        users::sqlite::export(&self.read, user).await
    }

    async fn erasures(&self) -> StoreResult<i64> {
        users::sqlite::erasures(&self.read).await
    }

    async fn user_ids_after(&self, after: Option<&str>, limit: i64) -> StoreResult<Vec<String>> {
        users::sqlite::user_ids_after(&self.read, after, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventId;

    fn event(event_id: &str, user: &str, item: &str, ts_ms: i64) -> NewEvent {
        NewEvent {
            event_id: Some(EventId::parse(event_id).unwrap()),
            user_id: UserId::parse(user).unwrap(),
            item_id: ItemId::parse(item).unwrap(),
            event_type: EventType::Click,
            ts_ms,
            recommendation_id: None,
        }
    }

    #[test]
    fn only_canonical_uuids_are_packed() {
        let packed = packed_uuid("0190b6a4-7c3e-7def-8a01-0123456789ab").unwrap();
        assert_eq!(
            packed,
            [
                0x01, 0x90, 0xb6, 0xa4, 0x7c, 0x3e, 0x7d, 0xef, 0x8a, 0x01, 0x01, 0x23, 0x45, 0x67,
                0x89, 0xab
            ]
        );
        for other in [
            "0190B6A4-7C3E-7DEF-8A01-0123456789AB",
            "0190b6a4-7c3e-7def-8a01-0123456789aB",
            "0190b6a47c3e7def8a010123456789ab",
            "{0190b6a4-7c3e-7def-8a01-0123456789ab}",
            "0190b6a4-7c3e-7def-8a01-0123456789ag",
            "0190b6a4-7c3e-7def-8a0-10123456789ab",
            "e-1",
            "",
        ] {
            assert_eq!(packed_uuid(other), None, "{other}");
        }
    }

    /// A database in `dir` with only the named migrations applied (as an older release left
    /// it), its URL and a pool on it.
    async fn database_after(dir: &std::path::Path, migrations: &[&str]) -> (String, SqlitePool) {
        let url = format!("sqlite://{}", dir.join("old.db").display());
        let before = dir.join("migrations");
        std::fs::create_dir(&before).unwrap();
        for name in migrations {
            let from = format!("{}/migrations/sqlite/{name}", env!("CARGO_MANIFEST_DIR"));
            std::fs::copy(from, before.join(name)).unwrap();
        }
        let options = SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let pool = SqlitePool::connect_with(options).await.unwrap();
        sqlx::migrate::Migrator::new(before.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        (url, pool)
    }

    /// A log written before migration 0004 (every event id as text) keeps every id's meaning:
    /// canonical UUIDs are packed and still found as duplicates, other spellings stay text.
    #[tokio::test]
    async fn text_uuid_event_ids_migrate_to_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (url, old) = database_after(
            dir.path(),
            &["0001_init.sql", "0002_interned_ids.sql", "0003_online.sql"],
        )
        .await;
        sqlx::raw_sql(
            "INSERT INTO user_keys (user_key, user_id) VALUES (1, 'u1'); \
             INSERT INTO item_keys (item_key, item_id) VALUES (1, 'i1'); \
             INSERT INTO events (seq, event_id, user_key, item_key, type, ts_ms, \
             recommendation_id, received_ms) VALUES \
             (1, '0190b6a4-7c3e-7def-8a01-0123456789ab', 1, 1, 0, 100, NULL, 1), \
             (2, '0190B6A4-7C3E-7DEF-8A01-0123456789AB', 1, 1, 0, 101, NULL, 1), \
             (3, 'e-3', 1, 1, 0, 102, NULL, 1), \
             (4, NULL, 1, 1, 0, 103, NULL, 1)",
        )
        .execute(&old)
        .await
        .unwrap();
        old.close().await;

        let store = SqliteStore::open(&url).await.unwrap();
        let kinds: Vec<String> =
            sqlx::query_scalar("SELECT typeof(event_id) FROM events ORDER BY seq")
                .fetch_all(&store.read)
                .await
                .unwrap();
        assert_eq!(kinds, ["blob", "text", "text", "null"]);
        let outcome = store
            .append_events(vec![
                event("0190b6a4-7c3e-7def-8a01-0123456789ab", "u1", "i1", 200),
                event("0190B6A4-7C3E-7DEF-8A01-0123456789AB", "u1", "i1", 201),
                event("e-3", "u1", "i1", 202),
                // Another spelling of the first id: another id.
                event("0190b6a4-7c3e-7def-8a01-0123456789AB", "u1", "i1", 203),
            ])
            .await
            .unwrap();
        assert_eq!(
            outcome,
            AppendOutcome {
                accepted: 1,
                duplicates: 3
            }
        );
        assert_eq!(store.max_event_seq().await.unwrap(), 5);
    }

    /// A database the first schema wrote (text ids in every row) opens on the interned schema
    /// with every event, its sequence number, its idempotency and the items it names. The
    /// sequence numbers span three blocks of the per-user index, one of them empty.
    #[tokio::test]
    async fn a_log_of_the_first_schema_migrates() {
        let dir = tempfile::tempdir().unwrap();
        let (url, old) = database_after(dir.path(), &["0001_init.sql"]).await;
        sqlx::raw_sql(
            "INSERT INTO events (seq, event_id, user_id, item_id, type, ts_ms, recommendation_id, \
             received_ms) VALUES (1, 'e1', 'u1', 'i1', 0, 100, NULL, 1), \
             (2, NULL, 'u2', 'i1', 3, 200, 'r-v1', 1), (140000, 'e3', 'u1', 'i2', 1, 50, NULL, 1)",
        )
        .execute(&old)
        .await
        .unwrap();
        old.close().await;

        let store = SqliteStore::open(&url).await.unwrap();
        let log = store.load_log().await.unwrap();
        assert_eq!(log.max_seq, 140_000);
        let row = |u: &str, i: &str, t, ts| LogRow {
            user_id: u.into(),
            item_id: i.into(),
            event_type: t,
            ts_ms: ts,
        };
        assert_eq!(
            log.rows,
            [
                row("u1", "i1", EventType::View, 100),
                row("u2", "i1", EventType::Purchase, 200),
                row("u1", "i2", EventType::Click, 50),
            ]
        );
        let u1 = UserId::parse("u1").unwrap();
        let history = store.user_history(&u1).await.unwrap();
        let items: Vec<&str> = history.iter().map(|h| h.item_id.as_str()).collect();
        assert_eq!(items, ["i2", "i1"]);
        assert_eq!(store.user_stamp(&u1).await.unwrap(), (2, 140_000));

        // e1 was stored by the old schema: still a duplicate. New events follow the last seq.
        let outcome = store
            .append_events(vec![
                event("e1", "u1", "i9", 300),
                event("e4", "u3", "i2", 400),
            ])
            .await
            .unwrap();
        assert_eq!(
            outcome,
            AppendOutcome {
                accepted: 1,
                duplicates: 1
            }
        );
        assert_eq!(store.max_event_seq().await.unwrap(), 140_001);
        let u3 = UserId::parse("u3").unwrap();
        assert_eq!(store.user_stamp(&u3).await.unwrap(), (1, 140_001));
        // An item known only from the old log is still an item the catalog can delete.
        assert!(store
            .delete_item(&ItemId::parse("i2").unwrap())
            .await
            .unwrap());
        assert!(!store
            .delete_item(&ItemId::parse("never-seen").unwrap())
            .await
            .unwrap());
    }

    /// The history read looks its item ids up by key, row by row; a plan that scans the item
    /// keys made every cold recommendation request cost a pass over the catalogue.
    #[tokio::test]
    async fn user_history_looks_items_up_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("h.db").display()))
            .await
            .unwrap();
        let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {USER_HISTORY}"))
            .bind("u1")
            .bind(HISTORY_LIMIT)
            .fetch_all(&store.read)
            .await
            .unwrap();
        let plan = rows
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            plan.contains("SEARCH i USING INTEGER PRIMARY KEY"),
            "{plan}"
        );
        assert!(!plan.contains("SCAN i"), "{plan}");
    }

    async fn history_of(store: &SqliteStore, user: &crate::domain::UserId) -> Vec<HistoryEvent> {
        store.user_activity(user, 0).await.unwrap().history
    }

    /// The reader threads see every commit made after they opened, and report a stored value
    /// this version cannot read as corrupt data rather than failing the thread.
    #[tokio::test]
    async fn reader_threads_see_new_commits_and_report_bad_rows() {
        use crate::domain::{EventType, ItemId, NewEvent, UserId};
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}", dir.path().join("r.db").display()))
            .await
            .unwrap();
        assert!(store.readers.is_some());
        let user = UserId::parse("u1").unwrap();
        assert!(history_of(&store, &user).await.is_empty());
        let event = |item: &str, ts_ms| NewEvent {
            event_id: None,
            user_id: user.clone(),
            item_id: ItemId::parse(item).unwrap(),
            event_type: EventType::Purchase,
            ts_ms,
            recommendation_id: None,
        };
        store
            .append_events(vec![event("b", 2_000), event("a", 1_000)])
            .await
            .unwrap();
        let seen = history_of(&store, &user).await;
        let items: Vec<&str> = seen.iter().map(|e| e.item_id.as_str()).collect();
        assert_eq!(items, ["a", "b"]);
        assert_eq!(seen, store.user_history(&user).await.unwrap());
        sqlx::query("UPDATE events SET type = 99")
            .execute(&store.write)
            .await
            .unwrap();
        for _ in 0..2 * reader_threads() {
            let read = store.user_activity(&user, 0).await;
            assert!(matches!(read, Err(StoreError::Corrupt(_))), "{read:?}");
        }
    }

    /// An in-memory database has no file for the reader threads: its reads stay on the pool.
    #[tokio::test]
    async fn an_in_memory_database_reads_through_the_pool() {
        use crate::domain::UserId;
        let store = SqliteStore::open("sqlite::memory:").await.unwrap();
        assert!(store.readers.is_none());
        let user = UserId::parse("u1").unwrap();
        assert!(history_of(&store, &user).await.is_empty());
    }
}
