//! What a storage failure means to its caller, decided here and nowhere else: the drivers'
//! errors (sqlx for both pools, rusqlite for the SQLite reader threads) are classified once, by
//! their database codes, and callers only ever see the class and the cause it carries.

use std::{error::Error, fmt, future::Future, sync::Arc, time::Duration};

/// The driver's error (or a message) that a [`StoreError`] reports.
pub type Cause = Box<dyn Error + Send + Sync + 'static>;

/// Why storage failed. `Unavailable`, `Timeout` and `Conflict` leave nothing half-written: the
/// same call may succeed later. `Corrupt` and `Internal` will not go away by retrying.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or cannot serve right now: no connection, the pool
    /// exhausted or closed, the file busy or locked, the disk full, an I/O error.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// A deadline passed before the database answered.
    #[error("storage did not answer in time: {0}")]
    Timeout(#[source] Cause),
    /// A constraint or a concurrent transaction refused the change (serialization failure,
    /// deadlock, integrity violation); nothing of it was written.
    #[error("storage conflict: {0}")]
    Conflict(#[source] Cause),
    /// The database holds what this version cannot read: a malformed file, a file that is not
    /// a database, a stored value that does not decode (an unknown enum name, bad JSON).
    #[error("stored data is corrupt: {0}")]
    Corrupt(#[source] Cause),
    /// Anything else: a query or a driver call that should not fail (a bug).
    #[error("storage failed: {0}")]
    Internal(#[source] Cause),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A variant of [`StoreError`], as the function that builds it from its cause.
type Class = fn(Cause) -> StoreError;

impl StoreError {
    /// A stored value this version cannot decode.
    pub(crate) fn corrupt(message: impl Into<String>) -> Self {
        Self::Corrupt(message.into().into())
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into().into())
    }

    /// True when the same call may succeed if made again: nothing was half-written and the
    /// cause is the database's state right now, not its contents or this code.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Timeout(_) | Self::Conflict(_)
        )
    }

    /// True when the database could not be reached in time (down, overloaded, too slow), as
    /// opposed to having answered with a refusal or with data it cannot read.
    pub fn is_outage(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout(_))
    }

    fn into_parts(self) -> (Class, Cause) {
        match self {
            Self::Unavailable(c) => (Self::Unavailable, c),
            Self::Timeout(c) => (Self::Timeout, c),
            Self::Conflict(c) => (Self::Conflict, c),
            Self::Corrupt(c) => (Self::Corrupt, c),
            Self::Internal(c) => (Self::Internal, c),
        }
    }

    /// One failure to report to several callers (the requests of a failed group commit):
    /// each copy is of the same class and shares the one cause.
    pub(crate) fn fan_out(self) -> impl Fn() -> StoreError {
        let (class, cause) = self.into_parts();
        let cause: Arc<Cause> = Arc::new(cause);
        move || class(Box::new(Shared(cause.clone())))
    }
}

/// A cause several errors report (see [`StoreError::fan_out`]).
struct Shared(Arc<Cause>);

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self.0, f)
    }
}

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self.0, f)
    }
}

impl Error for Shared {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

/// Waits for a store call at most `deadline`; past it, the call is dropped (nothing it did
/// is committed: a dropped transaction rolls back) and the answer is `Timeout`.
pub async fn within<T>(
    deadline: Duration,
    call: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    match tokio::time::timeout(deadline, call).await {
        Ok(answer) => answer,
        Err(elapsed) => Err(StoreError::Timeout(Box::new(elapsed))),
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        sqlx_class(&e)(Box::new(e))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        migrate_class(&e).unwrap_or(Self::Internal)(Box::new(e))
    }
}

/// A migration that failed on the database's answer is classified by that answer; one that
/// the applied migrations refused (a version this build does not know, a changed checksum, a
/// dirty version) is a database this version cannot read.
fn migrate_class(e: &sqlx::migrate::MigrateError) -> Option<Class> {
    use sqlx::migrate::MigrateError as M;
    match e {
        M::Execute(inner) | M::ExecuteMigration(inner, _) => Some(sqlx_class(inner)),
        M::VersionMissing(_)
        | M::VersionMismatch(_)
        | M::VersionTooOld(..)
        | M::VersionTooNew(..)
        | M::Dirty(_) => Some(StoreError::Corrupt),
        _ => None,
    }
}

/// The class of a sqlx error, without taking it.
fn sqlx_class(e: &sqlx::Error) -> Class {
    match e {
        sqlx::Error::Database(db) => database_class(db.as_ref()),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable,
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt,
        sqlx::Error::Migrate(m) => migrate_class(m).unwrap_or(StoreError::Internal),
        _ => StoreError::Internal,
    }
}

/// An error the database itself answered, by its code: SQLite's result code, PostgreSQL's
/// SQLSTATE.
fn database_class(db: &dyn sqlx::error::DatabaseError) -> Class {
    let code = db.code();
    let code = code.as_deref().unwrap_or("");
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // sqlx reports SQLite's extended result code.
        return code.parse().map_or(StoreError::Internal, sqlite_class);
    }
    if db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        return sqlstate_class(code);
    }
    StoreError::Internal
}

/// SQLite's result codes (primary or extended: the primary code is the low byte), shared by
/// sqlx's and rusqlite's errors.
pub(super) fn sqlite_class(code: i32) -> Class {
    use rusqlite::ffi;
    match code & 0xff {
        ffi::SQLITE_CORRUPT | ffi::SQLITE_NOTADB | ffi::SQLITE_FORMAT => StoreError::Corrupt,
        ffi::SQLITE_BUSY
        | ffi::SQLITE_LOCKED
        | ffi::SQLITE_FULL
        | ffi::SQLITE_IOERR
        | ffi::SQLITE_CANTOPEN
        | ffi::SQLITE_NOMEM
        | ffi::SQLITE_READONLY
        | ffi::SQLITE_INTERRUPT
        | ffi::SQLITE_PROTOCOL
        | ffi::SQLITE_NOLFS
        | ffi::SQLITE_AUTH
        | ffi::SQLITE_PERM => StoreError::Unavailable,
        ffi::SQLITE_CONSTRAINT => StoreError::Conflict,
        _ => StoreError::Internal,
    }
}

/// PostgreSQL's SQLSTATE codes, by class (the first two characters) where the whole class
/// means one thing.
pub(super) fn sqlstate_class(code: &str) -> Class {
    match code {
        // Serialization failure, deadlock: the transaction was rolled back and may be retried.
        "40001" | "40P01" => StoreError::Conflict,
        // A statement timeout or a cancellation (the server's deadline).
        "57014" => StoreError::Timeout,
        // Data corrupted, index corrupted.
        "XX001" | "XX002" => StoreError::Corrupt,
        // A read-only transaction: connected to a standby (e.g. during a failover).
        "25006" => StoreError::Unavailable,
        // Lock not available (NOWAIT), object in use.
        "55P03" | "55006" => StoreError::Unavailable,
        _ => match code.get(..2) {
            // Connection exceptions; insufficient resources (disk full, too many
            // connections); operator intervention (shutdown, crash recovery); system errors
            // (I/O).
            Some("08" | "53" | "57" | "58") => StoreError::Unavailable,
            // Integrity constraint violations.
            Some("23") => StoreError::Conflict,
            _ => StoreError::Internal,
        },
    }
}

/// The reader threads' errors, by the same codes as the pools'; a value of the wrong type is
/// data this version does not expect.
impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let class: Class = match &e {
            rusqlite::Error::SqliteFailure(failure, _) => sqlite_class(failure.extended_code),
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::Utf8Error(_)
            | rusqlite::Error::InvalidColumnIndex(_)
            | rusqlite::Error::InvalidColumnName(_) => Self::Corrupt,
            _ => Self::Internal,
        };
        class(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class_name(e: &StoreError) -> &'static str {
        match e {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Timeout(_) => "timeout",
            StoreError::Conflict(_) => "conflict",
            StoreError::Corrupt(_) => "corrupt",
            StoreError::Internal(_) => "internal",
        }
    }

    fn sqlite(code: i32) -> &'static str {
        class_name(&StoreError::from(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            None,
        )))
    }

    #[test]
    fn sqlite_codes_are_classified_with_their_extended_forms() {
        use rusqlite::ffi;
        for (code, class) in [
            (ffi::SQLITE_CORRUPT, "corrupt"),
            // SQLITE_CORRUPT_INDEX, SQLITE_CORRUPT_SEQUENCE.
            (ffi::SQLITE_CORRUPT | (3 << 8), "corrupt"),
            (ffi::SQLITE_CORRUPT | (2 << 8), "corrupt"),
            (ffi::SQLITE_NOTADB, "corrupt"),
            (ffi::SQLITE_BUSY, "unavailable"),
            (ffi::SQLITE_BUSY_SNAPSHOT, "unavailable"),
            (ffi::SQLITE_LOCKED, "unavailable"),
            (ffi::SQLITE_FULL, "unavailable"),
            (ffi::SQLITE_IOERR, "unavailable"),
            (ffi::SQLITE_IOERR_FSYNC, "unavailable"),
            (ffi::SQLITE_CANTOPEN, "unavailable"),
            (ffi::SQLITE_CONSTRAINT, "conflict"),
            (ffi::SQLITE_CONSTRAINT_UNIQUE, "conflict"),
            (ffi::SQLITE_ERROR, "internal"),
            (ffi::SQLITE_MISUSE, "internal"),
        ] {
            assert_eq!(sqlite(code), class, "code {code}");
        }
    }

    #[test]
    fn sqlstates_are_classified() {
        for (code, class) in [
            ("08006", "unavailable"),
            ("08001", "unavailable"),
            ("53100", "unavailable"),
            ("53300", "unavailable"),
            ("57P01", "unavailable"),
            ("57P03", "unavailable"),
            ("57014", "timeout"),
            ("40001", "conflict"),
            ("40P01", "conflict"),
            ("23505", "conflict"),
            ("23503", "conflict"),
            ("XX001", "corrupt"),
            ("XX002", "corrupt"),
            ("XX000", "internal"),
            ("42P01", "internal"),
            ("22P02", "internal"),
            ("", "internal"),
        ] {
            assert_eq!(
                class_name(&sqlstate_class(code)("cause".into())),
                class,
                "SQLSTATE {code}"
            );
        }
    }

    #[test]
    fn driver_errors_without_a_code_are_classified() {
        for (e, class) in [
            (sqlx::Error::PoolTimedOut, "unavailable"),
            (sqlx::Error::PoolClosed, "unavailable"),
            (sqlx::Error::WorkerCrashed, "unavailable"),
            (
                sqlx::Error::Io(std::io::Error::other("reset")),
                "unavailable",
            ),
            (sqlx::Error::Decode("not a number".into()), "corrupt"),
            (sqlx::Error::ColumnNotFound("type".into()), "corrupt"),
            (sqlx::Error::RowNotFound, "internal"),
        ] {
            assert_eq!(class_name(&StoreError::from(e)), class);
        }
        for (e, class) in [
            (
                rusqlite::Error::InvalidColumnType(1, "type".into(), rusqlite::types::Type::Text),
                "corrupt",
            ),
            (
                rusqlite::Error::IntegralValueOutOfRange(1, 1 << 40),
                "corrupt",
            ),
            (rusqlite::Error::QueryReturnedNoRows, "internal"),
        ] {
            assert_eq!(class_name(&StoreError::from(e)), class);
        }
    }

    /// Real driver errors, not built by hand: a file that is not a database, a value of the
    /// wrong type, a unique index refusing a row, a write lock held by another connection.
    #[tokio::test]
    async fn real_sqlite_failures_are_classified() {
        use sqlx::{Connection, Row};
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
        let url = format!("sqlite://{}", garbage.display());
        let opened = async {
            let mut conn = sqlx::SqliteConnection::connect(&url).await?;
            sqlx::query("SELECT * FROM sqlite_master")
                .execute(&mut conn)
                .await?;
            Ok::<_, sqlx::Error>(())
        }
        .await
        .map_err(StoreError::from);
        assert!(matches!(opened, Err(StoreError::Corrupt(_))), "{opened:?}");
        let read = rusqlite::Connection::open(&garbage)
            .and_then(|c| {
                c.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .map_err(StoreError::from);
        assert!(matches!(read, Err(StoreError::Corrupt(_))), "{read:?}");

        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        let row = sqlx::query("SELECT 'click' AS type")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let decoded = row.try_get::<i64, _>("type").map_err(StoreError::from);
        assert!(
            matches!(decoded, Err(StoreError::Corrupt(_))),
            "{decoded:?}"
        );
        sqlx::raw_sql("CREATE TABLE t (id TEXT UNIQUE); INSERT INTO t VALUES ('a')")
            .execute(&mut conn)
            .await
            .unwrap();
        let repeated = sqlx::query("INSERT INTO t VALUES ('a')")
            .execute(&mut conn)
            .await
            .map_err(StoreError::from);
        assert!(
            matches!(repeated, Err(StoreError::Conflict(_))),
            "{repeated:?}"
        );

        let path = dir.path().join("locked.db");
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder
            .execute_batch("CREATE TABLE t (x); BEGIN IMMEDIATE")
            .unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        let write = other
            .execute("INSERT INTO t VALUES (1)", [])
            .map_err(StoreError::from);
        assert!(
            matches!(write, Err(StoreError::Unavailable(_))),
            "{write:?}"
        );
    }

    #[tokio::test]
    async fn a_passed_deadline_is_a_timeout_and_retryable() {
        let late = within(
            Duration::from_millis(10),
            std::future::pending::<StoreResult<()>>(),
        )
        .await
        .unwrap_err();
        assert!(matches!(late, StoreError::Timeout(_)), "{late:?}");
        assert!(late.is_retryable() && late.is_outage());
        let on_time = within(Duration::from_secs(5), async { Ok(7) }).await;
        assert_eq!(on_time.unwrap(), 7);
    }

    #[test]
    fn a_failure_fanned_out_keeps_its_class_and_cause() {
        let cause = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some("database disk image is malformed".into()),
        );
        let copy = StoreError::from(cause).fan_out();
        for e in [copy(), copy()] {
            assert!(matches!(e, StoreError::Corrupt(_)), "{e:?}");
            assert!(!e.is_retryable());
            assert!(e.to_string().contains("malformed"), "{e}");
        }
    }
}
