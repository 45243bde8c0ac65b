//! The service's own statistics: counters per minute, hour and day. What is counted and when
//! lives above (`serve::stats`); here, the buckets, their retention, and the SQL of both backends.

use sqlx::{PgPool, SqlitePool};

use super::StoreResult;

/// The width of a statistics bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatStep {
    Minute,
    Hour,
    Day,
}

impl StatStep {
    pub const ALL: [StatStep; 3] = [Self::Minute, Self::Hour, Self::Day];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|step| step.as_str() == s)
    }

    pub fn millis(self) -> i64 {
        match self {
            Self::Minute => 60_000,
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }

    /// How long buckets of this width are kept: minutes for a week, hours for a quarter,
    /// days for five years (a few thousand rows per series and step).
    pub fn retention_ms(self) -> i64 {
        match self {
            Self::Minute => 7 * 86_400_000,
            Self::Hour => 92 * 86_400_000,
            Self::Day => 5 * 366 * 86_400_000,
        }
    }

    /// The start of the bucket holding `ms` (UTC).
    pub fn bucket(self, ms: i64) -> i64 {
        ms.div_euclid(self.millis()) * self.millis()
    }
}

/// An increment of one counter at one moment; stored into its minute, hour and day.
#[derive(Debug, Clone, PartialEq)]
pub struct StatDelta {
    pub at_ms: i64,
    /// What is counted: `events`, `responses`, `credited`, `trainings`, ...
    pub series: String,
    /// `key=value` pairs joined by `&`, in a fixed order (`type=view`).
    pub labels: String,
    pub value: f64,
}

/// One stored bucket of one counter.
#[derive(Debug, Clone, PartialEq)]
pub struct StatPoint {
    pub bucket_ms: i64,
    pub series: String,
    pub labels: String,
    pub value: f64,
}

/// The rows a batch of increments adds to: (step, bucket, series, labels) → sum, sorted so
/// that concurrent writers take row locks in the same order.
fn rows(deltas: &[StatDelta]) -> Vec<(&'static str, i64, &str, &str, f64)> {
    let mut sums: std::collections::BTreeMap<(&'static str, i64, &str, &str), f64> =
        Default::default();
    for d in deltas {
        for step in StatStep::ALL {
            *sums
                .entry((step.as_str(), step.bucket(d.at_ms), &d.series, &d.labels))
                .or_default() += d.value;
        }
    }
    sums.into_iter()
        .map(|((step, bucket, series, labels), v)| (step, bucket, series, labels, v))
        .collect()
}

const ADD_SQLITE: &str = "INSERT INTO stats (step, bucket_ms, series, labels, value) \
     VALUES (?, ?, ?, ?, ?) ON CONFLICT (step, bucket_ms, series, labels) \
     DO UPDATE SET value = value + excluded.value";
const ADD_POSTGRES: &str = "INSERT INTO stats (step, bucket_ms, series, labels, value) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (step, bucket_ms, series, labels) \
     DO UPDATE SET value = stats.value + excluded.value";

pub(super) async fn add_sqlite(pool: &SqlitePool, deltas: &[StatDelta]) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    for (step, bucket, series, labels, value) in rows(deltas) {
        sqlx::query(ADD_SQLITE)
            .bind(step)
            .bind(bucket)
            .bind(series)
            .bind(labels)
            .bind(value)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn read_sqlite(
    pool: &SqlitePool,
    step: StatStep,
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<Vec<StatPoint>> {
    let rows: Vec<(i64, String, String, f64)> = sqlx::query_as(
        "SELECT bucket_ms, series, labels, value FROM stats \
         WHERE step = ? AND bucket_ms >= ? AND bucket_ms < ? \
         ORDER BY series, labels, bucket_ms",
    )
    .bind(step.as_str())
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(pool)
    .await?;
    Ok(points(rows))
}

pub(super) async fn prune_sqlite(pool: &SqlitePool, now_ms: i64) -> StoreResult<u64> {
    let mut tx = pool.begin().await?;
    let mut pruned = 0;
    for step in StatStep::ALL {
        pruned += sqlx::query("DELETE FROM stats WHERE step = ? AND bucket_ms < ?")
            .bind(step.as_str())
            .bind(now_ms - step.retention_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(pruned)
}

pub(super) async fn add_postgres(pool: &PgPool, deltas: &[StatDelta]) -> StoreResult<()> {
    let mut tx = pool.begin().await?;
    for (step, bucket, series, labels, value) in rows(deltas) {
        sqlx::query(ADD_POSTGRES)
            .bind(step)
            .bind(bucket)
            .bind(series)
            .bind(labels)
            .bind(value)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn read_postgres(
    pool: &PgPool,
    step: StatStep,
    from_ms: i64,
    to_ms: i64,
) -> StoreResult<Vec<StatPoint>> {
    let rows: Vec<(i64, String, String, f64)> = sqlx::query_as(
        "SELECT bucket_ms, series, labels, value FROM stats \
         WHERE step = $1 AND bucket_ms >= $2 AND bucket_ms < $3 \
         ORDER BY series, labels, bucket_ms",
    )
    .bind(step.as_str())
    .bind(from_ms)
    .bind(to_ms)
    .fetch_all(pool)
    .await?;
    Ok(points(rows))
}

pub(super) async fn prune_postgres(pool: &PgPool, now_ms: i64) -> StoreResult<u64> {
    let mut tx = pool.begin().await?;
    let mut pruned = 0;
    for step in StatStep::ALL {
        pruned += sqlx::query("DELETE FROM stats WHERE step = $1 AND bucket_ms < $2")
            .bind(step.as_str())
            .bind(now_ms - step.retention_ms())
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    tx.commit().await?;
    Ok(pruned)
}

fn points(rows: Vec<(i64, String, String, f64)>) -> Vec<StatPoint> {
    rows.into_iter()
        .map(|(bucket_ms, series, labels, value)| StatPoint {
            bucket_ms,
            series,
            labels,
            value,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_increment_lands_in_its_minute_hour_and_day() {
        let at = 1_700_000_123_456; // 2023-11-14T22:15:23.456Z
        let d = |series: &str, v| StatDelta {
            at_ms: at,
            series: series.into(),
            labels: "type=view".into(),
            value: v,
        };
        let deltas = [d("events", 2.0), d("events", 3.0)];
        let rows = rows(&deltas);
        assert_eq!(
            rows,
            vec![
                ("day", 1_699_920_000_000, "events", "type=view", 5.0),
                ("hour", 1_699_999_200_000, "events", "type=view", 5.0),
                ("minute", 1_700_000_100_000, "events", "type=view", 5.0),
            ]
        );
        assert_eq!(StatStep::Minute.bucket(-1), -60_000, "before 1970 too");
    }
}
