//! The PostgreSQL backend: its types and statements that differ from SQLite's, and the
//! store's code from `backend.rs`.

use super::from_sqlx;
use crate::store::StoreError;

type Db = sqlx::Postgres;
type Store = PostgresStore;

/// What PostgreSQL spells differently.
mod dialect {
    pub(super) const STORE_NAME: &str = "PostgresStore";
    pub(super) const ID_TYPE: &str = "BIGSERIAL PRIMARY KEY";
    pub(super) const BLOB_TYPE: &str = "BYTEA";
    /// Several workers claiming at once skip each other's rows instead of waiting.
    pub(super) const LOCK: &str = " FOR UPDATE SKIP LOCKED";
    /// Each receive is a transaction of its own: the pool writes on several connections at once,
    /// and the server groups the flushes of concurrent commits itself.
    pub(super) const GROUP_RECEIVE: bool = false;
    /// Write transactions run side by side.
    pub(super) const SERIAL_WRITES: bool = false;
    /// Reservations of one agent wait for each other on the agent's row.
    pub(super) const ROW_LOCK: &str = " FOR UPDATE";
    pub(super) const BEGIN_WRITE: &str = "BEGIN";
    /// An unpacker waits at most this long on a recorded body another transaction holds (one
    /// that stalls): it fails instead, and the body is unpacked later, while other customers'
    /// bodies go on.
    pub(super) const UNPACK_LOCK_TIMEOUT: Option<&str> = Some("SET LOCAL lock_timeout = '5s'");
    /// Instances migrating one database at once wait for each other on this lock.
    pub(super) const SCHEMA_LOCK: &str = "SELECT pg_advisory_xact_lock(7295318845091)";
    pub(super) const BACKFILL_AT_MS: &str = "UPDATE transcript SET at_ms = COALESCE((body::json->'at'->>'secs_since_epoch')::bigint * 1000 + (body::json->'at'->>'nanos_since_epoch')::bigint / 1000000, 0)";
    /// Fills the new place column of open conversations from their bodies (schema 15):
    /// `queued_at` in milliseconds, as `time::millis` writes it; before the field existed,
    /// the creation time.
    pub(super) const BACKFILL_QUEUED_MS: &str = "UPDATE conversations SET queued_ms = COALESCE((body::json->'queued_at'->>'secs_since_epoch')::bigint * 1000 + (body::json->'queued_at'->>'nanos_since_epoch')::bigint / 1000000, created_ms) WHERE closed = 0";
    /// How many conversations of a queue (`$1`) wait ahead of a place (`$2` ms, then the id
    /// `$3`). The queue leads the row value, so that the planner counts a range of the
    /// queue's index of places (index only, once vacuumed) rather than filter every waiting
    /// conversation's place by queue on the index of places, which it takes when it expects
    /// few places ahead (many conversations in one millisecond, statistics not gathered yet).
    pub(super) const QUEUE_AHEAD: &str = "SELECT COUNT(*) FROM conversations WHERE queue = $1 AND closed = 0 AND agent IS NULL AND (queue, queued_ms, id) < ($1, $2, $3)";
    pub(super) const NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint";
}

// The same code for both backends, as a module of each (see `backend.rs`).
#[allow(
    clippy::duplicate_mod,
    reason = "one source for both backends, compiled with each backend's types"
)]
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

/// The stores on PostgreSQL, for several instances sharing one database.
#[derive(Clone)]
pub struct PostgresStore {
    /// Reads.
    pool: sqlx::Pool<Db>,
    /// Writes: the same pool.
    writer: sqlx::Pool<Db>,
    /// Receives waiting for the next grouped transaction.
    group: std::sync::Arc<backend::Grouping>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host/database`) and migrates the schema.
    ///
    /// # Errors
    /// As [`PostgresStore::from_pool`].
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .connect(url)
            .await
            .map_err(from_sqlx)?;
        Self::from_pool(pool).await
    }
}
