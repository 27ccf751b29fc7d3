//! Durable stores on SQLite (feature `sqlite`) and PostgreSQL (feature `postgres`), through
//! `sqlx`. Both backends run the same SQL; only the table definitions and the outbox's row
//! locking differ.
//!
//! One store value implements [`ConversationStore`] and [`MediaStore`] on one connection pool.
//!
//! - **At most one open conversation per (page, customer)** is enforced by the database: a
//!   unique partial index on `(page, customer) WHERE closed = 0`.
//! - **Commits are transactions**: the conversation row (with a version check), its transcript
//!   lines and its effects (the outbox) are written together or not at all.
//! - **The inbox**: [`ConversationStore::receive`] inserts a webhook's events in one
//!   transaction (`INSERT … ON CONFLICT (key) DO NOTHING RETURNING`), so the unique key is the
//!   record of what was seen; a commit that applies an event marks it applied in the same
//!   transaction, only if it was still pending.
//! - **The outbox**: effects are inserted already claimed by the committing instance (the
//!   commit's [`super::Lease`]), with their attempt history (attempts, next attempt time, last
//!   error). [`ConversationStore::claim_effects`] claims due rows that nobody holds in one
//!   statement (on PostgreSQL with `FOR UPDATE SKIP LOCKED`, so several workers never take the
//!   same effect; on SQLite every write goes through one connection). A claim is released
//!   by the holder (`complete`, `reschedule`, `fail_effect`) or lapses with its lease; a row
//!   claimed again without having been released comes back marked interrupted.
//! - **Migrations are versioned** (`schema_version`): opening an older database upgrades it; a
//!   database written by a newer version of this crate is refused with
//!   [`StoreError::SchemaTooNew`], never downgraded.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::{
    Commit, ConversationStore, InboxEvent, MediaStore, NewInboxEvent, PendingEffect, StoreError,
    Stored,
};
use crate::conversation::{Conversation, FileLine, LineBody, MediaState, State, TranscriptLine};
use crate::ids::{AgentId, ConversationId, PageId, UserId};

/// The schema version this crate writes.
pub const SCHEMA_VERSION: i64 = 6;

use super::{Lease, OutboxStats, Retry};

use crate::time::{from_millis, millis};

/// Rows per multi-row statement on the inbox (at most five parameters each, under SQLite's
/// limit).
const INBOX_CHUNK: usize = 500;

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn from_sqlx(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
        _ => backend(e),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(backend)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(backend)
}

/// The columns derived from a conversation, for the indexes.
fn columns(c: &Conversation) -> (&'static str, Option<&str>, i64) {
    let (state, agent) = match &c.state {
        State::Open { offer } => ("open", offer.as_ref().map(|o| o.agent.as_str())),
        State::Active { agent } => ("active", Some(agent.as_str())),
        State::Waiting { agent } => ("waiting", Some(agent.as_str())),
        State::WrapUp { agent } => ("wrap_up", Some(agent.as_str())),
        State::Closed { .. } => ("closed", None),
    };
    (state, agent, i64::from(c.is_closed()))
}

/// Schema migrations, in order. Statements are separated by `;`. `{id}` and `{blob}` are
/// replaced by each backend's types.
const MIGRATIONS: [&str; 6] = [
    // 1: conversations, transcripts, outbox, dedup.
    "CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        page TEXT NOT NULL,
        customer TEXT NOT NULL,
        state TEXT NOT NULL,
        agent TEXT,
        closed BIGINT NOT NULL,
        version BIGINT NOT NULL,
        deadline_ms BIGINT,
        created_ms BIGINT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE UNIQUE INDEX conversations_one_open ON conversations (page, customer) WHERE closed = 0;
    CREATE INDEX conversations_agent ON conversations (agent) WHERE closed = 0;
    CREATE INDEX conversations_deadline ON conversations (deadline_ms) WHERE closed = 0;
    CREATE TABLE transcript (
        id {id},
        conversation TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX transcript_conversation ON transcript (conversation, id);
    CREATE TABLE outbox (
        seq {id},
        key TEXT NOT NULL UNIQUE,
        conversation TEXT NOT NULL,
        body TEXT NOT NULL,
        done BIGINT NOT NULL,
        claimed_until_ms BIGINT
    );
    CREATE INDEX outbox_pending ON outbox (seq) WHERE done = 0;
    CREATE TABLE dedup (
        key TEXT PRIMARY KEY,
        expires_ms BIGINT NOT NULL
    )",
    // 2: media.
    "CREATE TABLE media (
        key TEXT PRIMARY KEY,
        content_type TEXT,
        bytes {blob} NOT NULL
    )",
    // 3: the queue of conversations waiting for an offer.
    "CREATE INDEX conversations_queued ON conversations (created_ms) WHERE closed = 0 AND agent IS NULL",
    // 4: the inbox of received events (its unique keys are also the record of events seen;
    // the old `dedup` table is left for instances of schema 3 still draining), and transcripts
    // read in the order of their lines' times. The engine's keys start with the event's time,
    // so the unique index grows at its end; the index of a thread's pending events holds only
    // pending ones, so it stays small.
    "CREATE TABLE inbox (
        seq {id},
        key TEXT NOT NULL,
        thread TEXT NOT NULL,
        body TEXT NOT NULL,
        received_ms BIGINT NOT NULL,
        applied BIGINT NOT NULL,
        attempts BIGINT NOT NULL DEFAULT 0,
        retry_ms BIGINT NOT NULL DEFAULT 0,
        last_error TEXT
    );
    CREATE UNIQUE INDEX inbox_key ON inbox (key, thread);
    CREATE INDEX inbox_pending ON inbox (thread, seq) WHERE applied = 0;
    CREATE INDEX inbox_applied ON inbox (received_ms) WHERE applied = 1;
    ALTER TABLE transcript ADD COLUMN at_ms BIGINT NOT NULL DEFAULT 0;
    {backfill_at_ms};
    CREATE INDEX transcript_time ON transcript (conversation, at_ms, id)",
    // 5: the outbox's attempt history and claims by holder. `done` is 0 pending, 2 failed
    // (given up on, kept with its error); delivered rows are deleted (1 marks those delivered
    // by schema 4, left as they were).
    "ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
    ALTER TABLE outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN next_ms BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN created_ms BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN last_error TEXT;
    ALTER TABLE outbox ADD COLUMN interrupted BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE outbox ADD COLUMN unconfirmed BIGINT NOT NULL DEFAULT 0;
    UPDATE outbox SET created_ms = {now_ms} WHERE done = 0;
    DROP INDEX outbox_pending;
    CREATE INDEX outbox_due ON outbox (next_ms, seq) WHERE done = 0;
    CREATE INDEX outbox_holder ON outbox (claimed_by) WHERE done = 0;
    CREATE INDEX outbox_failed ON outbox (seq) WHERE done = 2",
    // 6: pending effects of databases that reached schema 5 before it backfilled creation
    // times get the upgrade's time (not the epoch, which would spend their retry budget);
    // delivered rows of schema 4 are dropped.
    "UPDATE outbox SET created_ms = {now_ms} WHERE done = 0 AND created_ms = 0;
    DELETE FROM outbox WHERE done = 1",
];

/// An outbox row as read: key, conversation, effect, created, attempts, interrupted,
/// unconfirmed, last error.
type EffectRow = (String, String, String, i64, i64, i64, i64, Option<String>);

/// The columns of an [`EffectRow`].
const EFFECT_COLUMNS: &str =
    "key, conversation, body, created_ms, attempts, interrupted, unconfirmed, last_error";

fn pending_effect(row: EffectRow) -> Result<PendingEffect, StoreError> {
    let (key, conversation, body, created, attempts, interrupted, unconfirmed, last_error) = row;
    Ok(PendingEffect {
        key,
        conversation: ConversationId::new(conversation),
        effect: from_json(&body)?,
        created_at: from_millis(created),
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        interrupted: interrupted != 0,
        unconfirmed: unconfirmed != 0,
        last_error,
    })
}

macro_rules! sql_store {
    (
        $(#[$doc:meta])*
        $name:ident, $db:ty,
        id = $id_type:literal, blob = $blob_type:literal, lock = $lock:literal,
        begin_write = $begin_write:literal, schema_lock = $schema_lock:literal,
        backfill_at_ms = $backfill:literal, now_ms = $now_ms:literal
    ) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            /// Reads.
            pool: sqlx::Pool<$db>,
            /// Writes: on SQLite one connection, so that writers queue in the process instead
            /// of in SQLite's busy handler (which sleeps); elsewhere the same pool.
            writer: sqlx::Pool<$db>,
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }

        impl $name {
            /// Wraps a pool and brings its schema up to [`SCHEMA_VERSION`].
            ///
            /// # Errors
            /// [`StoreError::SchemaTooNew`] for a database of a newer, unknown schema;
            /// [`StoreError::Backend`] when the database fails.
            pub async fn from_pool(pool: sqlx::Pool<$db>) -> Result<Self, StoreError> {
                Self::from_pools(pool.clone(), pool).await
            }

            /// Like [`Self::from_pool`], with reads and writes on pools of their own.
            async fn from_pools(pool: sqlx::Pool<$db>, writer: sqlx::Pool<$db>) -> Result<Self, StoreError> {
                Self::migrate(&writer, MIGRATIONS.len()).await?;
                Ok(Self { pool, writer })
            }

            /// The connection pool.
            pub fn pool(&self) -> &sqlx::Pool<$db> {
                &self.pool
            }

            /// The schema version of the database.
            ///
            /// # Errors
            /// [`StoreError::Backend`].
            pub async fn schema_version(&self) -> Result<i64, StoreError> {
                Self::current_version(&self.pool).await
            }

            async fn current_version(pool: &sqlx::Pool<$db>) -> Result<i64, StoreError> {
                sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
                    .execute(pool)
                    .await
                    .map_err(from_sqlx)?;
                let (version,): (Option<i64>,) = sqlx::query_as("SELECT MAX(version) FROM schema_version")
                    .fetch_one(pool)
                    .await
                    .map_err(from_sqlx)?;
                Ok(version.unwrap_or(0))
            }

            /// Begins a transaction that writes. On SQLite it takes the write lock at once
            /// (`BEGIN IMMEDIATE`), so a transaction that reads and then writes never fails on a
            /// lock upgrade (the busy timeout applies to `BEGIN IMMEDIATE`, not to an upgrade).
            async fn write_tx(&self) -> Result<sqlx::Transaction<'static, $db>, StoreError> {
                self.writer.begin_with($begin_write).await.map_err(from_sqlx)
            }

            /// Applies the migrations up to number `upto` (1-based count), all in one
            /// transaction that holds the schema lock: on PostgreSQL an advisory lock, on SQLite
            /// the write lock. Any number of instances opening one fresh or old database at once
            /// wait for each other; the first migrates, the others find the schema current.
            async fn migrate(pool: &sqlx::Pool<$db>, upto: usize) -> Result<(), StoreError> {
                let mut tx = pool.begin_with($begin_write).await.map_err(from_sqlx)?;
                sqlx::query($schema_lock).execute(&mut *tx).await.map_err(from_sqlx)?;
                sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                let (found,): (Option<i64>,) = sqlx::query_as("SELECT MAX(version) FROM schema_version")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                let found = found.unwrap_or(0);
                let supported = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
                if found > supported {
                    return Err(StoreError::SchemaTooNew { found, supported });
                }
                let mut applied = Vec::new();
                for (i, script) in MIGRATIONS.iter().enumerate().take(upto) {
                    let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
                    if version <= found {
                        continue;
                    }
                    let script = script
                        .replace("{id}", $id_type)
                        .replace("{blob}", $blob_type)
                        .replace("{backfill_at_ms}", $backfill)
                        .replace("{now_ms}", $now_ms);
                    for statement in script.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                        sqlx::query(statement).execute(&mut *tx).await.map_err(from_sqlx)?;
                    }
                    sqlx::query("INSERT INTO schema_version (version) VALUES ($1)")
                        .bind(version)
                        .execute(&mut *tx)
                        .await
                        .map_err(from_sqlx)?;
                    applied.push(version);
                }
                tx.commit().await.map_err(from_sqlx)?;
                for version in applied {
                    tracing::info!(version, "store schema migrated");
                }
                Ok(())
            }

            /// Appends transcript lines inside a transaction; their ids keep their order.
            async fn insert_lines(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: &ConversationId,
                lines: &[TranscriptLine],
            ) -> Result<(), StoreError> {
                for line in lines {
                    sqlx::query("INSERT INTO transcript (conversation, body, at_ms) VALUES ($1, $2, $3)")
                        .bind(id.as_str())
                        .bind(to_json(line)?)
                        .bind(millis(line.at))
                        .execute(&mut **tx)
                        .await
                        .map_err(from_sqlx)?;
                }
                Ok(())
            }

            fn stored(row: (String, i64)) -> Result<Stored, StoreError> {
                Ok(Stored {
                    conversation: from_json(&row.0)?,
                    version: u64::try_from(row.1).unwrap_or(0),
                })
            }

            async fn list(&self, sql: &str, bind: Option<&str>) -> Result<Vec<Stored>, StoreError> {
                let mut query = sqlx::query_as::<_, (String, i64)>(sql);
                if let Some(b) = bind {
                    query = query.bind(b.to_owned());
                }
                query
                    .fetch_all(&self.pool)
                    .await
                    .map_err(from_sqlx)?
                    .into_iter()
                    .map(Self::stored)
                    .collect()
            }
        }

        #[async_trait::async_trait]
        impl ConversationStore for $name {
            async fn find_open(&self, page: &PageId<'_>, customer: &UserId<'_>) -> Result<Option<Stored>, StoreError> {
                sqlx::query_as::<_, (String, i64)>(
                    "SELECT body, version FROM conversations WHERE page = $1 AND customer = $2 AND closed = 0",
                )
                .bind(page.as_str())
                .bind(customer.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(from_sqlx)?
                .map(Self::stored)
                .transpose()
            }

            async fn load(&self, id: &ConversationId) -> Result<Option<Stored>, StoreError> {
                sqlx::query_as::<_, (String, i64)>("SELECT body, version FROM conversations WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(from_sqlx)?
                    .map(Self::stored)
                    .transpose()
            }

            async fn load_all(&self, ids: &[ConversationId]) -> Result<Vec<Stored>, StoreError> {
                let mut all = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(INBOX_CHUNK) {
                    let mut select = sqlx::QueryBuilder::<$db>::new("SELECT body, version FROM conversations WHERE id IN (");
                    let mut list = select.separated(", ");
                    for id in chunk {
                        list.push_bind(id.as_str());
                    }
                    select.push(")");
                    let rows: Vec<(String, i64)> = select
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(from_sqlx)?;
                    for row in rows {
                        all.push(Self::stored(row)?);
                    }
                }
                Ok(all)
            }

            async fn commit(&self, commit: &Commit) -> Result<(u64, Vec<PendingEffect>), StoreError> {
                let c = &commit.conversation;
                let body = to_json(c)?;
                let (state, agent, closed) = columns(c);
                let deadline = commit.deadline.map(millis);
                let mut tx = self.write_tx().await?;
                if let Some(seq) = commit.applies {
                    // First, so that two instances applying one event queue on its row.
                    let done = sqlx::query("UPDATE inbox SET applied = 1 WHERE seq = $1 AND applied = 0")
                        .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                        .execute(&mut *tx)
                        .await
                        .map_err(from_sqlx)?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::Conflict);
                    }
                }
                let version = match commit.expected_version {
                    None => {
                        sqlx::query(
                            "INSERT INTO conversations (id, page, customer, state, agent, closed, version, deadline_ms, created_ms, body)
                             VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9)",
                        )
                        .bind(c.id.as_str())
                        .bind(c.page.as_str())
                        .bind(c.customer.as_str())
                        .bind(state)
                        .bind(agent)
                        .bind(closed)
                        .bind(deadline)
                        .bind(millis(c.created_at))
                        .bind(&body)
                        .execute(&mut *tx)
                        .await
                        .map_err(from_sqlx)?;
                        1
                    }
                    Some(expected) => {
                        let expected = i64::try_from(expected).unwrap_or(i64::MAX);
                        let done = sqlx::query(
                            "UPDATE conversations SET state = $2, agent = $3, closed = $4, version = version + 1,
                             deadline_ms = $5, body = $6 WHERE id = $1 AND version = $7",
                        )
                        .bind(c.id.as_str())
                        .bind(state)
                        .bind(agent)
                        .bind(closed)
                        .bind(deadline)
                        .bind(&body)
                        .bind(expected)
                        .execute(&mut *tx)
                        .await
                        .map_err(from_sqlx)?;
                        if done.rows_affected() == 0 {
                            let exists = sqlx::query("SELECT 1 FROM conversations WHERE id = $1")
                                .bind(c.id.as_str())
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(from_sqlx)?;
                            return Err(if exists.is_some() { StoreError::Conflict } else { StoreError::NotFound(c.id.clone()) });
                        }
                        expected + 1
                    }
                };
                Self::insert_lines(&mut tx, &c.id, &commit.transcript).await?;
                let (owner, until) = match &commit.claim {
                    Some(lease) => (Some(lease.owner.as_str()), Some(millis(lease.until))),
                    None => (None, None),
                };
                let at = millis(commit.at);
                let mut pending = Vec::with_capacity(commit.effects.len());
                for (i, effect) in commit.effects.iter().enumerate() {
                    let key = format!("{}:{version}:{i}", c.id);
                    sqlx::query(
                        "INSERT INTO outbox (key, conversation, body, done, claimed_by, claimed_until_ms, next_ms, created_ms)
                         VALUES ($1, $2, $3, 0, $4, $5, $6, $6)",
                    )
                    .bind(&key)
                    .bind(c.id.as_str())
                    .bind(to_json(effect)?)
                    .bind(owner)
                    .bind(until)
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                    pending.push(PendingEffect {
                        key,
                        conversation: c.id.clone(),
                        effect: effect.clone(),
                        created_at: from_millis(at),
                        attempts: 0,
                        interrupted: false,
                        unconfirmed: false,
                        last_error: None,
                    });
                }
                tx.commit().await.map_err(from_sqlx)?;
                Ok((u64::try_from(version).unwrap_or(0), pending))
            }

            async fn append(&self, id: &ConversationId, lines: Vec<TranscriptLine>) -> Result<(), StoreError> {
                let mut tx = self.write_tx().await?;
                let exists = sqlx::query("SELECT 1 FROM conversations WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                if exists.is_none() {
                    return Err(StoreError::NotFound(id.clone()));
                }
                Self::insert_lines(&mut tx, id, &lines).await?;
                tx.commit().await.map_err(from_sqlx)
            }

            async fn transcript(&self, id: &ConversationId) -> Result<Vec<TranscriptLine>, StoreError> {
                if self.load(id).await?.is_none() {
                    return Err(StoreError::NotFound(id.clone()));
                }
                let rows: Vec<(String,)> = sqlx::query_as("SELECT body FROM transcript WHERE conversation = $1 ORDER BY at_ms, id")
                    .bind(id.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(from_sqlx)?;
                rows.iter().map(|(b,)| from_json(b)).collect()
            }

            async fn update_file(&self, id: &ConversationId, url: &str, file: &FileLine) -> Result<Vec<TranscriptLine>, StoreError> {
                // Read outside the write lock; then update only lines still pending.
                let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, body FROM transcript WHERE conversation = $1 ORDER BY id")
                    .bind(id.as_str())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(from_sqlx)?;
                let mut targets = Vec::new();
                for (row, body) in rows {
                    let line: TranscriptLine = from_json(&body)?;
                    if matches!(&line.body, LineBody::File(f) if f.url.as_deref() == Some(url) && f.media == MediaState::Pending) {
                        targets.push((row, body, line));
                    }
                }
                let mut updated = Vec::with_capacity(targets.len());
                if targets.is_empty() {
                    return Ok(updated);
                }
                let mut tx = self.write_tx().await?;
                for (row, old, mut line) in targets {
                    line.body = LineBody::File(file.clone());
                    // Only if nobody changed the line meanwhile.
                    let done = sqlx::query("UPDATE transcript SET body = $1 WHERE id = $2 AND body = $3")
                        .bind(to_json(&line)?)
                        .bind(row)
                        .bind(&old)
                        .execute(&mut *tx)
                        .await
                        .map_err(from_sqlx)?;
                    if done.rows_affected() > 0 {
                        updated.push(line);
                    }
                }
                tx.commit().await.map_err(from_sqlx)?;
                Ok(updated)
            }

            async fn list_for_agent(&self, agent: &AgentId) -> Result<Vec<Stored>, StoreError> {
                self.list(
                    "SELECT body, version FROM conversations WHERE agent = $1 AND closed = 0 ORDER BY created_ms, id",
                    Some(agent.as_str()),
                )
                .await
            }

            async fn list_open(&self) -> Result<Vec<Stored>, StoreError> {
                self.list("SELECT body, version FROM conversations WHERE closed = 0 ORDER BY created_ms, id", None).await
            }

            async fn list_queued(&self) -> Result<Vec<Stored>, StoreError> {
                self.list(
                    "SELECT body, version FROM conversations WHERE closed = 0 AND state = 'open' AND agent IS NULL ORDER BY created_ms, id",
                    None,
                )
                .await
            }

            async fn due(&self, now: SystemTime) -> Result<Vec<ConversationId>, StoreError> {
                let rows: Vec<(String,)> =
                    sqlx::query_as("SELECT id FROM conversations WHERE closed = 0 AND deadline_ms <= $1")
                        .bind(millis(now))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(from_sqlx)?;
                Ok(rows.into_iter().map(|(id,)| ConversationId::new(id)).collect())
            }

            async fn pending(&self, limit: usize) -> Result<Vec<PendingEffect>, StoreError> {
                let sql = format!("SELECT {EFFECT_COLUMNS} FROM outbox WHERE done = 0 ORDER BY seq LIMIT $1");
                let rows: Vec<EffectRow> = sqlx::query_as(&sql)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(from_sqlx)?;
                rows.into_iter().map(pending_effect).collect()
            }

            async fn claim_effects(&self, lease: &Lease, now: SystemTime, limit: usize) -> Result<Vec<PendingEffect>, StoreError> {
                // One statement: the due rows are chosen and claimed atomically. `interrupted`
                // is computed from the row as it was (a holder that never let go).
                let sql = format!(
                    "WITH due AS MATERIALIZED (
                        SELECT seq FROM outbox WHERE done = 0 AND next_ms <= $3
                        AND (claimed_until_ms IS NULL OR claimed_until_ms <= $5)
                        ORDER BY next_ms, seq LIMIT $4{}
                     )
                     UPDATE outbox SET interrupted = CASE WHEN claimed_by IS NULL THEN 0 ELSE 1 END,
                        claimed_by = $1, claimed_until_ms = $2
                     WHERE seq IN (SELECT seq FROM due)
                     RETURNING seq, {EFFECT_COLUMNS}",
                    $lock
                );
                #[allow(clippy::type_complexity)]
                let rows: Vec<(i64, String, String, String, i64, i64, i64, i64, Option<String>)> = sqlx::query_as(&sql)
                    .bind(&lease.owner)
                    .bind(millis(lease.until))
                    .bind(millis(now))
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .bind(millis(lease.at))
                    .fetch_all(&self.writer)
                    .await
                    .map_err(from_sqlx)?;
                let mut rows: Vec<(i64, EffectRow)> = rows
                    .into_iter()
                    .map(|(seq, a, b, c, d, e, f, g, h)| (seq, (a, b, c, d, e, f, g, h)))
                    .collect();
                rows.sort_by_key(|(seq, _)| *seq);
                rows.into_iter().map(|(_, row)| pending_effect(row)).collect()
            }

            async fn renew_claims(&self, lease: &Lease, keys: &[String]) -> Result<Vec<String>, StoreError> {
                let mut tx = self.write_tx().await?;
                let mut held = Vec::with_capacity(keys.len());
                for key in keys {
                    // Only a claim that has not lapsed: a lapsed one may be another's by now.
                    let done = sqlx::query(
                        "UPDATE outbox SET claimed_until_ms = $3 WHERE key = $1 AND claimed_by = $2 AND done = 0 AND claimed_until_ms > $4",
                    )
                    .bind(key)
                    .bind(&lease.owner)
                    .bind(millis(lease.until))
                    .bind(millis(lease.at))
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                    if done.rows_affected() > 0 {
                        held.push(key.clone());
                    }
                }
                tx.commit().await.map_err(from_sqlx)?;
                Ok(held)
            }

            async fn drop_claims(&self, owner: &str) -> Result<u64, StoreError> {
                let done = sqlx::query("UPDATE outbox SET claimed_until_ms = 0 WHERE claimed_by = $1 AND done = 0")
                    .bind(owner)
                    .execute(&self.writer)
                    .await
                    .map_err(from_sqlx)?;
                Ok(done.rows_affected())
            }

            async fn complete(&self, key: &str) -> Result<(), StoreError> {
                // A delivered effect is deleted: the outbox keeps what is pending and what
                // failed, and does not grow with every message sent.
                sqlx::query("DELETE FROM outbox WHERE key = $1 AND done = 0")
                    .bind(key)
                    .execute(&self.writer)
                    .await
                    .map_err(from_sqlx)?;
                Ok(())
            }

            async fn complete_all(&self, keys: &[String]) -> Result<(), StoreError> {
                let delete = |chunk: &[String]| {
                    let mut delete = sqlx::QueryBuilder::<$db>::new("DELETE FROM outbox WHERE done = 0 AND key IN (");
                    let mut list = delete.separated(", ");
                    for key in chunk {
                        list.push_bind(key.clone());
                    }
                    delete.push(")");
                    delete
                };
                match keys.len() {
                    0 => Ok(()),
                    // One statement (atomic on its own) for a batch; a transaction beyond.
                    n if n <= INBOX_CHUNK => {
                        delete(keys).build().execute(&self.writer).await.map_err(from_sqlx)?;
                        Ok(())
                    }
                    _ => {
                        let mut tx = self.write_tx().await?;
                        for chunk in keys.chunks(INBOX_CHUNK) {
                            delete(chunk).build().execute(&mut *tx).await.map_err(from_sqlx)?;
                        }
                        tx.commit().await.map_err(from_sqlx)
                    }
                }
            }

            async fn reschedule(&self, key: &str, owner: &str, retry: &Retry) -> Result<Option<u32>, StoreError> {
                let row: Option<(i64,)> = sqlx::query_as(
                    "UPDATE outbox SET attempts = attempts + $3, next_ms = $4, last_error = $5, unconfirmed = $6,
                     claimed_by = NULL, claimed_until_ms = NULL, interrupted = 0
                     WHERE key = $1 AND claimed_by = $2 AND done = 0 RETURNING attempts",
                )
                .bind(key)
                .bind(owner)
                .bind(i64::from(retry.counts))
                .bind(millis(retry.at))
                .bind(&retry.error)
                .bind(i64::from(retry.unconfirmed))
                .fetch_optional(&self.writer)
                .await
                .map_err(from_sqlx)?;
                Ok(row.map(|(n,)| u32::try_from(n).unwrap_or(u32::MAX)))
            }

            async fn fail_effect(&self, key: &str, owner: &str, error: &str, lines: &[TranscriptLine]) -> Result<bool, StoreError> {
                let mut tx = self.write_tx().await?;
                let row: Option<(String,)> = sqlx::query_as(
                    "UPDATE outbox SET done = 2, last_error = $3, claimed_by = NULL, claimed_until_ms = NULL
                     WHERE key = $1 AND claimed_by = $2 AND done = 0 RETURNING conversation",
                )
                .bind(key)
                .bind(owner)
                .bind(error)
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
                let Some((conversation,)) = row else {
                    return Ok(false);
                };
                Self::insert_lines(&mut tx, &ConversationId::new(conversation), lines).await?;
                tx.commit().await.map_err(from_sqlx)?;
                Ok(true)
            }

            async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
                let (pending, oldest): (i64, Option<i64>) =
                    sqlx::query_as("SELECT COUNT(*), MIN(created_ms) FROM outbox WHERE done = 0")
                        .fetch_one(&self.pool)
                        .await
                        .map_err(from_sqlx)?;
                let (failed,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM outbox WHERE done = 2")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(from_sqlx)?;
                Ok(OutboxStats {
                    pending: u64::try_from(pending).unwrap_or(0),
                    failed: u64::try_from(failed).unwrap_or(0),
                    oldest_pending: oldest.map(from_millis),
                })
            }

            async fn receive(&self, events: &[NewInboxEvent], now: SystemTime, keep: Duration) -> Result<Vec<bool>, StoreError> {
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                let now_ms = millis(now);
                let forget_before = now_ms.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
                // An event repeated in one call counts once, at its first place.
                let name = |e: &NewInboxEvent| (e.key.clone(), e.thread.clone());
                let mut first = HashSet::with_capacity(events.len());
                let unique: Vec<&NewInboxEvent> = events.iter().filter(|e| first.insert(name(e))).collect();
                let mut tx = self.write_tx().await?;
                let mut inserted: HashSet<(String, String)> = HashSet::with_capacity(unique.len());
                for chunk in unique.chunks(INBOX_CHUNK) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO inbox (key, thread, body, received_ms, applied) ",
                    );
                    insert.push_values(chunk, |mut row, e| {
                        row.push_bind(e.key.as_str())
                            .push_bind(e.thread.as_str())
                            .push_bind(e.body.as_str())
                            .push_bind(now_ms)
                            .push_bind(0_i64);
                    });
                    insert.push(" ON CONFLICT (key, thread) DO NOTHING RETURNING key, thread");
                    let rows: Vec<(String, String)> = insert
                        .build_query_as()
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(from_sqlx)?;
                    inserted.extend(rows);
                }
                // Seen before: a duplicate, unless it was applied and received longer ago than
                // `keep` (then it is received again). One statement for all of them.
                let seen: Vec<&NewInboxEvent> = unique.iter().copied().filter(|e| !inserted.contains(&name(e))).collect();
                for chunk in seen.chunks(INBOX_CHUNK) {
                    let mut forget = sqlx::QueryBuilder::<$db>::new("DELETE FROM inbox WHERE applied = 1 AND received_ms <= ");
                    forget.push_bind(forget_before).push(" AND (key, thread) IN (");
                    for (i, e) in chunk.iter().enumerate() {
                        if i > 0 {
                            forget.push(", ");
                        }
                        forget.push("(").push_bind(e.key.as_str()).push(", ").push_bind(e.thread.as_str()).push(")");
                    }
                    forget.push(") RETURNING key, thread");
                    let forgotten: Vec<(String, String)> = forget
                        .build_query_as()
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(from_sqlx)?;
                    for again in forgotten {
                        let Some(e) = chunk.iter().find(|e| name(e) == again) else { continue };
                        sqlx::query("INSERT INTO inbox (key, thread, body, received_ms, applied) VALUES ($1, $2, $3, $4, 0)")
                            .bind(e.key.as_str())
                            .bind(e.thread.as_str())
                            .bind(e.body.as_str())
                            .bind(now_ms)
                            .execute(&mut *tx)
                            .await
                            .map_err(from_sqlx)?;
                        inserted.insert(again);
                    }
                }
                tx.commit().await.map_err(from_sqlx)?;
                let mut counted = HashSet::with_capacity(events.len());
                Ok(events
                    .iter()
                    .map(|e| {
                        let n = name(e);
                        inserted.contains(&n) && counted.insert(n)
                    })
                    .collect())
            }

            async fn inbox(&self, thread: &str, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
                let rows: Vec<(i64, String, String, i64, i64)> = sqlx::query_as(
                    "SELECT seq, key, body, attempts, retry_ms FROM inbox WHERE thread = $1 AND applied = 0 ORDER BY seq LIMIT $2",
                )
                .bind(thread)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(from_sqlx)?;
                Ok(rows
                    .into_iter()
                    .map(|(seq, key, body, attempts, retry_ms)| InboxEvent {
                        seq: u64::try_from(seq).unwrap_or(0),
                        key,
                        thread: thread.to_owned(),
                        body,
                        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                        retry_at: (retry_ms > 0).then(|| crate::time::from_millis(retry_ms)),
                    })
                    .collect())
            }

            async fn inbox_threads(&self, received_by: SystemTime, limit: usize) -> Result<Vec<String>, StoreError> {
                let rows: Vec<(String,)> = sqlx::query_as(
                    "SELECT thread FROM inbox WHERE applied = 0 AND received_ms <= $1
                     GROUP BY thread HAVING MAX(retry_ms) <= $1 ORDER BY MIN(seq) LIMIT $2",
                )
                .bind(millis(received_by))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await
                .map_err(from_sqlx)?;
                Ok(rows.into_iter().map(|(t,)| t).collect())
            }

            async fn inbox_done(&self, seq: u64) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE inbox SET applied = 1 WHERE seq = $1 AND applied = 0")
                    .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                    .execute(&self.writer)
                    .await
                    .map_err(from_sqlx)?;
                Ok(done.rows_affected() > 0)
            }

            async fn inbox_failed(&self, seq: u64, error: &str, retry_at: SystemTime) -> Result<u32, StoreError> {
                let row: Option<(i64,)> = sqlx::query_as(
                    "UPDATE inbox SET attempts = attempts + 1, retry_ms = $2, last_error = $3
                     WHERE seq = $1 AND applied = 0 RETURNING attempts",
                )
                .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                .bind(millis(retry_at))
                .bind(error)
                .fetch_optional(&self.writer)
                .await
                .map_err(from_sqlx)?;
                Ok(row.map_or(0, |(n,)| u32::try_from(n).unwrap_or(u32::MAX)))
            }

            async fn inbox_dead(&self, seq: u64, error: &str) -> Result<bool, StoreError> {
                let done = sqlx::query("UPDATE inbox SET applied = 2, last_error = $2 WHERE seq = $1 AND applied = 0")
                    .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                    .bind(error)
                    .execute(&self.writer)
                    .await
                    .map_err(from_sqlx)?;
                Ok(done.rows_affected() > 0)
            }

            async fn purge_inbox(&self, received_before: SystemTime) -> Result<u64, StoreError> {
                let done = sqlx::query("DELETE FROM inbox WHERE applied = 1 AND received_ms < $1")
                    .bind(millis(received_before))
                    .execute(&self.writer)
                    .await
                    .map_err(from_sqlx)?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait::async_trait]
        impl MediaStore for $name {
            async fn put(&self, bytes: Bytes, content_type: Option<&str>) -> Result<String, StoreError> {
                let key = super::media_key(&bytes);
                sqlx::query("INSERT INTO media (key, content_type, bytes) VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING")
                    .bind(&key)
                    .bind(content_type)
                    .bind(bytes.as_ref())
                    .execute(&self.writer)
                    .await
                    .map_err(from_sqlx)?;
                Ok(key)
            }

            async fn get(&self, key: &str) -> Result<Option<(Bytes, Option<String>)>, StoreError> {
                let row: Option<(Vec<u8>, Option<String>)> =
                    sqlx::query_as("SELECT bytes, content_type FROM media WHERE key = $1")
                        .bind(key)
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(from_sqlx)?;
                Ok(row.map(|(b, t)| (Bytes::from(b), t)))
            }
        }
    };
}

#[cfg(feature = "sqlite")]
sql_store!(
    /// The stores on SQLite: one file, created and migrated on first open, in WAL mode.
    SqliteStore, sqlx::Sqlite,
    id = "INTEGER PRIMARY KEY AUTOINCREMENT", blob = "BLOB", lock = "",
    begin_write = "BEGIN IMMEDIATE", schema_lock = "SELECT 1",
    backfill_at_ms = "UPDATE transcript SET at_ms = COALESCE(json_extract(body, '$.at.secs_since_epoch') * 1000 + json_extract(body, '$.at.nanos_since_epoch') / 1000000, 0)",
    now_ms = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
);

#[cfg(feature = "sqlite")]
impl SqliteStore {
    /// Opens (creating it if needed) the database file at `path`, in WAL mode, and migrates it.
    ///
    /// # Errors
    /// As [`SqliteStore::from_pool`].
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<Self, StoreError> {
        use sqlx::sqlite::{
            SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
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

#[cfg(feature = "postgres")]
sql_store!(
    /// The stores on PostgreSQL, for several instances sharing one database.
    PostgresStore, sqlx::Postgres,
    id = "BIGSERIAL PRIMARY KEY", blob = "BYTEA", lock = " FOR UPDATE SKIP LOCKED",
    begin_write = "BEGIN", schema_lock = "SELECT pg_advisory_xact_lock(7295318845091)",
    backfill_at_ms = "UPDATE transcript SET at_ms = COALESCE((body::json->'at'->>'secs_since_epoch')::bigint * 1000 + (body::json->'at'->>'nanos_since_epoch')::bigint / 1000000, 0)",
    now_ms = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint"
);

#[cfg(feature = "postgres")]
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

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    async fn memory_pool() -> sqlx::Pool<sqlx::Sqlite> {
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn an_older_schema_is_upgraded() {
        let pool = memory_pool().await;
        SqliteStore::migrate(&pool, 1).await.unwrap();
        assert_eq!(SqliteStore::current_version(&pool).await.unwrap(), 1);
        let store = SqliteStore::from_pool(pool).await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
        let key = store
            .put(Bytes::from_static(b"abc"), Some("text/plain"))
            .await
            .unwrap();
        assert_eq!(
            store.get(&key).await.unwrap().unwrap().0,
            Bytes::from_static(b"abc")
        );
    }

    /// Effects a schema-4 instance left pending keep their place and get a creation time of
    /// the upgrade (not the epoch, which would spend their retry budget at once).
    #[tokio::test]
    async fn pending_effects_of_a_schema_4_database_survive_the_upgrade() {
        let pool = memory_pool().await;
        SqliteStore::migrate(&pool, 4).await.unwrap();
        let effect = to_json(&crate::conversation::Effect::SessionStarted {
            agent: AgentId::from("a"),
        })
        .unwrap();
        for (key, done) in [("c:1:0", 0_i64), ("c:1:1", 1)] {
            sqlx::query("INSERT INTO outbox (key, conversation, body, done, claimed_until_ms) VALUES ($1, 'c', $2, $3, NULL)")
                .bind(key)
                .bind(&effect)
                .bind(done)
                .execute(&pool)
                .await
                .unwrap();
        }
        let before = SystemTime::now() - Duration::from_secs(5);
        let store = SqliteStore::from_pool(pool).await.unwrap();
        let pending = store.pending(10).await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].key, "c:1:0");
        assert!(
            pending[0].created_at >= before,
            "{:?}",
            pending[0].created_at
        );
        assert_eq!(pending[0].attempts, 0);
        let lease = super::super::Lease {
            owner: "w".into(),
            at: SystemTime::now(),
            until: SystemTime::now() + Duration::from_secs(60),
        };
        let claimed = store
            .claim_effects(&lease, SystemTime::now(), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert!(!claimed[0].interrupted);
        let stats = store.outbox_stats().await.unwrap();
        assert_eq!((stats.pending, stats.failed), (1, 0));
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused() {
        let pool = memory_pool().await;
        SqliteStore::migrate(&pool, MIGRATIONS.len()).await.unwrap();
        sqlx::query("INSERT INTO schema_version (version) VALUES (99)")
            .execute(&pool)
            .await
            .unwrap();
        let err = SqliteStore::from_pool(pool).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::SchemaTooNew {
                    found: 99,
                    supported: SCHEMA_VERSION
                }
            ),
            "{err:?}"
        );
    }
}
