//! One user's data as a whole, on both backends: erasure (a person asks to be forgotten) and
//! export (a person asks what is kept about them). Each backend's SQL is here side by side;
//! the rows are decoded once, below.

use sqlx::{PgPool, SqlitePool};

use super::{rows, Erased, ExportedEvent, ExportedResponse, StoreResult, UserExport};
use crate::domain::UserId;

/// The rows of a user's events: event id (text, or a packed UUID on SQLite), item, type,
/// times, the response it answered.
type EventRow = (
    Option<String>,
    Option<Vec<u8>>,
    String,
    i64,
    i64,
    Option<String>,
    i64,
);
/// The rows of a user's responses, with the credited event types comma-separated.
type ResponseRow = (String, i64, String, String, String, i64, Option<String>);

/// Drops from a batch of impressions those shown before the newest erasure (`erased_ms`):
/// they may be of the erased user, queued before the erasure on some replica.
pub(super) fn shown_after_erasure(batch: &mut Vec<super::Impression>, erased_ms: Option<i64>) {
    if let Some(erased) = erased_ms {
        batch.retain(|i| i.shown_ms > erased);
    }
}

pub(super) mod sqlite {
    use super::*;

    /// The user's event sequence numbers, found block by block through the per-user index
    /// (see migration 0002), as the history read finds them.
    const USER_SEQS: &str =
        "WITH RECURSIVE blocks(b) AS (SELECT (SELECT MAX(seq) FROM events) >> 16 \
         UNION ALL SELECT b - 1 FROM blocks WHERE b > 0) \
         SELECT e.seq FROM blocks CROSS JOIN events e WHERE (e.seq >> 16) = blocks.b \
         AND e.user_key = (SELECT user_key FROM user_keys WHERE user_id = ?1)";

    pub(in crate::store) async fn erase(pool: &SqlitePool, user: &UserId) -> StoreResult<Erased> {
        let id = user.as_str();
        let mut tx = pool.begin().await?;
        sqlx::query(
            "DELETE FROM credits WHERE recommendation_id IN \
             (SELECT recommendation_id FROM impressions WHERE user_id = ?1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let responses = sqlx::query("DELETE FROM impressions WHERE user_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let events = sqlx::query(&format!("DELETE FROM events WHERE seq IN ({USER_SEQS})"))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM user_keys WHERE user_id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO erasures (erased_ms) VALUES (?1)")
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Erased { events, responses })
    }

    pub(in crate::store) async fn export(
        pool: &SqlitePool,
        user: &UserId,
    ) -> StoreResult<UserExport> {
        let mut tx = pool.begin().await?;
        let events: Vec<EventRow> = sqlx::query_as(&format!(
            "SELECT CASE WHEN typeof(e.event_id) = 'text' THEN e.event_id END, \
             CASE WHEN typeof(e.event_id) = 'blob' THEN e.event_id END, \
             i.item_id, e.type, e.ts_ms, e.recommendation_id, e.received_ms \
             FROM events e CROSS JOIN item_keys i ON i.item_key = e.item_key \
             WHERE e.seq IN ({USER_SEQS}) ORDER BY e.seq"
        ))
        .bind(user.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let responses: Vec<ResponseRow> = sqlx::query_as(
            "SELECT m.recommendation_id, m.model_version, m.arm, m.source, m.items, m.shown_ms, \
             (SELECT group_concat(c.type, ',') FROM credits c \
              WHERE c.recommendation_id = m.recommendation_id) \
             FROM impressions m WHERE m.user_id = ?1 ORDER BY m.shown_ms, m.recommendation_id",
        )
        .bind(user.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        decode(events, responses)
    }

    /// `user_keys` holds exactly the users with events (an erasure removes its row), with a
    /// unique index on the id to page along.
    pub(in crate::store) async fn user_ids_after(
        pool: &SqlitePool,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM user_keys WHERE user_id > ?1 ORDER BY user_id LIMIT ?2",
        )
        // Every id is at least one character: after "" comes the first.
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(pool)
        .await?)
    }

    pub(in crate::store) async fn erasures(pool: &SqlitePool) -> StoreResult<i64> {
        let n: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM erasures")
            .fetch_one(pool)
            .await?;
        Ok(n.unwrap_or(0))
    }
}

pub(super) mod postgres {
    use super::*;

    pub(in crate::store) async fn erase(pool: &PgPool, user: &UserId) -> StoreResult<Erased> {
        let id = user.as_str();
        let mut tx = pool.begin().await?;
        // First, so that its lock waits for the impression batches being written (they hold
        // `erasures` in SHARE mode, see `insert_impressions`): those are then deleted below,
        // and the batches after it see this erasure's time.
        sqlx::query("INSERT INTO erasures (erased_ms) VALUES ($1)")
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM credits WHERE recommendation_id IN \
             (SELECT recommendation_id FROM impressions WHERE user_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let responses = sqlx::query("DELETE FROM impressions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let events = sqlx::query("DELETE FROM events WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(Erased { events, responses })
    }

    pub(in crate::store) async fn export(pool: &PgPool, user: &UserId) -> StoreResult<UserExport> {
        // One snapshot for both reads.
        let mut tx = pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let events: Vec<EventRow> = sqlx::query_as(
            "SELECT event_id, NULL::bytea, item_id, type::bigint, ts_ms, recommendation_id, \
             received_ms FROM events WHERE user_id = $1 ORDER BY seq",
        )
        .bind(user.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let responses: Vec<ResponseRow> = sqlx::query_as(
            "SELECT m.recommendation_id, m.model_version, m.arm, m.source, m.items, m.shown_ms, \
             (SELECT string_agg(c.type::text, ',') FROM credits c \
              WHERE c.recommendation_id = m.recommendation_id) \
             FROM impressions m WHERE m.user_id = $1 ORDER BY m.shown_ms, m.recommendation_id",
        )
        .bind(user.as_str())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        decode(events, responses)
    }

    /// Along the per-user index; `COLLATE "C"` orders by bytes, as SQLite does, whatever the
    /// database's collation.
    pub(in crate::store) async fn user_ids_after(
        pool: &PgPool,
        after: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT user_id COLLATE \"C\" AS u FROM events \
             WHERE user_id COLLATE \"C\" > $1 ORDER BY u LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(pool)
        .await?)
    }

    pub(in crate::store) async fn erasures(pool: &PgPool) -> StoreResult<i64> {
        let n: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM erasures")
            .fetch_one(pool)
            .await?;
        Ok(n.unwrap_or(0))
    }
}

fn decode(events: Vec<EventRow>, responses: Vec<ResponseRow>) -> StoreResult<UserExport> {
    let events = events
        .into_iter()
        .map(
            |(text, packed, item_id, code, ts_ms, recommendation_id, received_ms)| {
                let event_id = match (text, packed) {
                    (Some(text), _) => Some(text),
                    (None, Some(packed)) => Some(uuid_text(&packed)?),
                    (None, None) => None,
                };
                Ok(ExportedEvent {
                    event_id,
                    item_id,
                    event_type: rows::event_type(code)?,
                    ts_ms,
                    recommendation_id,
                    received_ms,
                })
            },
        )
        .collect::<StoreResult<_>>()?;
    let responses = responses
        .into_iter()
        .map(
            |(recommendation_id, model_version, arm, source, items, shown_ms, credited)| {
                let mut credited = credited
                    .iter()
                    .flat_map(|c| c.split(','))
                    .map(|code| {
                        let code = code.parse().map_err(|_| {
                            super::StoreError::corrupt(format!("credit type {code:?}"))
                        })?;
                        rows::event_type(code)
                    })
                    .collect::<StoreResult<Vec<_>>>()?;
                credited.sort_by_key(|t| t.code());
                Ok(ExportedResponse {
                    recommendation_id,
                    model_version,
                    arm: rows::arm(&arm)?,
                    source,
                    items: rows::unpack_items(&items),
                    shown_ms,
                    credited,
                })
            },
        )
        .collect::<StoreResult<_>>()?;
    Ok(UserExport { events, responses })
}

/// A UUID event id SQLite keeps packed in 16 bytes, written out as it was posted (the
/// packing accepts only the canonical lowercase form).
fn uuid_text(packed: &[u8]) -> StoreResult<String> {
    if packed.len() != 16 {
        return Err(super::StoreError::corrupt(format!(
            "a packed event id of {} bytes",
            packed.len()
        )));
    }
    let hex: String = packed.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_uuid_reads_back_as_posted() {
        let id = "0190b6a4-7c3e-7def-8a01-0123456789ab";
        let packed: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&id.replace('-', "")[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_eq!(uuid_text(&packed).unwrap(), id);
        assert!(uuid_text(&packed[..15]).is_err());
    }
}
