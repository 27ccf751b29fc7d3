//! The SQLite backend: its types and statements that differ from PostgreSQL's, and the
//! store's code from `backend.rs`.

use std::time::Duration;

use super::from_sqlx;
use crate::store::StoreError;

type Db = sqlx::Sqlite;
type Store = SqliteStore;

/// What SQLite spells differently.
mod dialect {
    pub(super) const STORE_NAME: &str = "SqliteStore";
    pub(super) const ID_TYPE: &str = "INTEGER PRIMARY KEY AUTOINCREMENT";
    pub(super) const BLOB_TYPE: &str = "BLOB";
    /// Claims need no row locks: every write goes through one connection.
    pub(super) const LOCK: &str = "";
    /// Reservations need no row lock either: `BEGIN IMMEDIATE` already serialises them.
    pub(super) const ROW_LOCK: &str = "";
    /// Takes the write lock at once, so a transaction never fails upgrading its lock.
    /// Concurrent receives share one transaction: every write waits for the one writer anyway, so
    /// the callers queued behind it are recorded together (group commit).
    pub(super) const GROUP_RECEIVE: bool = true;
    /// A write transaction has the database to itself (SQLite has one writer at a time).
    pub(super) const SERIAL_WRITES: bool = true;
    pub(super) const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
    /// A write transaction holds the whole database: waiting on it is bounded by the
    /// connection's busy timeout.
    pub(super) const UNPACK_LOCK_TIMEOUT: Option<&str> = None;
    /// `BEGIN IMMEDIATE` already serialises migrations.
    pub(super) const SCHEMA_LOCK: &str = "SELECT 1";
    pub(super) const BACKFILL_AT_MS: &str = "UPDATE transcript SET at_ms = COALESCE(json_extract(body, '$.at.secs_since_epoch') * 1000 + json_extract(body, '$.at.nanos_since_epoch') / 1000000, 0)";
    /// Fills the new place column of open conversations from their bodies (schema 15):
    /// `queued_at` in milliseconds, as `time::millis` writes it; before the field existed,
    /// the creation time.
    pub(super) const BACKFILL_QUEUED_MS: &str = "UPDATE conversations SET queued_ms = COALESCE(json_extract(body, '$.queued_at.secs_since_epoch') * 1000 + json_extract(body, '$.queued_at.nanos_since_epoch') / 1000000, created_ms) WHERE closed = 0";
    /// How many conversations of a queue (`$1`) wait ahead of a place (`$2` ms, then the id
    /// `$3`): a range of the queue's index of places (SQLite searches it as `queue = ? AND
    /// (queued_ms, id) < (?, ?)`; with the queue in the row value it would scan the queue's).
    pub(super) const QUEUE_AHEAD: &str = "SELECT COUNT(*) FROM conversations WHERE queue = $1 AND closed = 0 AND agent IS NULL AND (queued_ms, id) < ($2, $3)";
    pub(super) const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";
}

// The same code for both backends, as a module of each (see `backend.rs`).
#[allow(
    clippy::duplicate_mod,
    reason = "one source for both backends, compiled with each backend's types"
)]
/// How long a writer waits for SQLite's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `e` is SQLite's "database is locked" (`SQLITE_BUSY`, with its extended codes).
fn is_busy(e: &StoreError) -> bool {
    let StoreError::Backend(inner) = e else {
        return false;
    };
    inner
        .downcast_ref::<sqlx::Error>()
        .and_then(sqlx::Error::as_database_error)
        .and_then(sqlx::error::DatabaseError::code)
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == 5)
}

#[path = "backend.rs"]
mod backend;

// The router's code, shared the same way.
#[allow(
    clippy::duplicate_mod,
    reason = "one source for both backends, compiled with each backend's types"
)]
#[path = "router.rs"]
mod router;

// Customers' profiles, shared the same way.
#[allow(
    clippy::duplicate_mod,
    reason = "one source for both backends, compiled with each backend's types"
)]
#[path = "profiles.rs"]
mod profiles;

/// The stores on SQLite: one file, created and migrated on first open, in WAL mode.
#[derive(Clone)]
pub struct SqliteStore {
    /// Reads.
    pool: sqlx::Pool<Db>,
    /// Writes: one connection, so that writers queue in the process instead of in SQLite's
    /// busy handler (which sleeps).
    writer: sqlx::Pool<Db>,
    /// Receives waiting for the next grouped transaction.
    group: std::sync::Arc<backend::Grouping>,
}

impl SqliteStore {
    /// Opens (creating it if needed) the database file at `path`, in WAL mode, and migrates it.
    ///
    /// # Errors
    /// As [`SqliteStore::from_pool`].
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<Self, StoreError> {
        // Several processes or pools opening one new file at once can meet SQLite's lock
        // while one of them switches the file to WAL (a step the busy timeout does not
        // always cover): try again for as long as the busy timeout would have waited.
        let path = path.as_ref();
        let started = std::time::Instant::now();
        loop {
            match Self::open_once(path).await {
                Err(e) if is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    async fn open_once(path: &std::path::Path) -> Result<Self, StoreError> {
        use sqlx::sqlite::{
            SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(from_sqlx)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(from_sqlx)?;
        Self::from_pools(pool, writer).await
    }
}
