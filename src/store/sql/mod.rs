//! Durable stores on SQLite (feature `sqlite`) and PostgreSQL (feature `postgres`), through
//! `sqlx`. Both backends run the same SQL; only the table definitions and the outbox's row
//! locking differ.
//!
//! Where things are: the schema ([`MIGRATIONS`]) and helpers shared by both backends here;
//! the statements as named constants in `queries.rs`; the store's code, written once, in
//! `backend.rs`, which `sqlite.rs` and `postgres.rs` each include with their own database
//! type and `dialect` (the few statements that differ).
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
//!   transaction, only if it was still pending. Pending events are indexed in order of
//!   receipt (the index grows at its end, whatever the thread), and read in that order
//!   ([`ConversationStore::inbox_pending`]). On SQLite, concurrent receives share the
//!   writer's next transaction (group commit), each answered only about its own events and
//!   only once it has committed.
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
//!
//! [`ConversationStore`]: super::ConversationStore
//! [`ConversationStore::receive`]: super::ConversationStore::receive
//! [`ConversationStore::inbox_pending`]: super::ConversationStore::inbox_pending
//! [`ConversationStore::claim_effects`]: super::ConversationStore::claim_effects
//! [`MediaStore`]: super::MediaStore

use super::{PendingEffect, StoreError};
use crate::conversation::{Conversation, State, TranscriptLine};
use crate::ids::ConversationId;

/// The schema version this crate writes.
pub const SCHEMA_VERSION: i64 = 15;

use crate::time::from_millis;

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

/// The columns derived from a conversation, for the indexes: its state, its agent (the
/// holder, or the agent offered it: none exactly when it waits in the queue with no offer,
/// or is closed) and whether it is closed.
fn columns(c: &Conversation) -> (&'static str, Option<&str>, i64) {
    let (state, agent) = match c.state() {
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
const MIGRATIONS: [&str; 15] = [
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
    // 7: a customer's latest conversation, open or closed, where reactions, edits, removals
    // and outside replies go when none is open (`find_latest`), without a scan. The version
    // also makes older binaries refuse the database, since they cannot read the inbox,
    // outbox and transcript kinds this one writes.
    "CREATE INDEX conversations_latest ON conversations (page, customer, created_ms, id)",
    // 8: an agent's line carries the key of the effect that sends it, and gets the platform's
    // id and send time in columns of its own (`complete_sent`, in the step that completes the
    // effect, found by that key without reading the transcript); read over the line's body.
    "ALTER TABLE transcript ADD COLUMN effect_key TEXT;
    ALTER TABLE transcript ADD COLUMN sent_mid TEXT;
    ALTER TABLE transcript ADD COLUMN sent_ms BIGINT;
    CREATE INDEX transcript_effect ON transcript (effect_key) WHERE effect_key IS NOT NULL",
    // 9: pending events indexed in order of receipt, not by thread. An index led by the
    // thread takes a page of its own for each thread a body touches (a 100-event body wrote
    // four times the WAL of its rows); this one grows at its end, and the engine drains the
    // inbox in order of receipt, grouping events by thread as it reads them. Older binaries
    // refuse the database: they read a thread's pending events by the index dropped here.
    "DROP INDEX IF EXISTS inbox_pending;
    CREATE INDEX IF NOT EXISTS inbox_due ON inbox (seq) WHERE applied = 0",
    // 10: work distribution. Each conversation's queue (older rows: none, the fallback), and
    // a Pick queue's open work by queue. Agents' presence, skills and capacity, and what of
    // their capacity is reserved, one row per conversation and agent: `kind` 0 an offer and
    // 2 a pick (until `until_ms`), 1 a session; an agent's units in use are one sum. At most
    // one pick per conversation (a unique partial index): of agents picking one at once,
    // exactly one holds it.
    "ALTER TABLE conversations ADD COLUMN queue TEXT;
    CREATE INDEX conversations_queue ON conversations (queue, created_ms, id) WHERE closed = 0 AND agent IS NULL;
    CREATE TABLE routing_agents (
        agent TEXT PRIMARY KEY,
        presence TEXT NOT NULL,
        capacity BIGINT NOT NULL,
        skills TEXT NOT NULL,
        last_assigned_ms BIGINT
    );
    CREATE TABLE routing_work (
        conversation TEXT NOT NULL,
        agent TEXT NOT NULL,
        units BIGINT NOT NULL,
        kind BIGINT NOT NULL,
        until_ms BIGINT,
        PRIMARY KEY (conversation, agent)
    );
    CREATE UNIQUE INDEX routing_work_one_pick ON routing_work (conversation) WHERE kind = 2;
    CREATE INDEX routing_work_agent ON routing_work (agent)",
    // 11: customers' profiles (`ProfileStore`): name and picture by page and customer, and
    // when they were fetched (a refusal is kept too, with neither).
    "CREATE TABLE customer_profiles (
        page TEXT NOT NULL,
        customer TEXT NOT NULL,
        name TEXT,
        picture_url TEXT,
        fetched_ms BIGINT NOT NULL,
        PRIMARY KEY (page, customer)
    )",
    // 12: webhook bodies recorded as they came, one row per POST (what the webhook route
    // answers 200 for), until their events are unpacked into the inbox and the row deleted.
    // Older binaries refuse the database: they would not unpack these.
    "CREATE TABLE webhooks (
        seq {id},
        body {blob} NOT NULL,
        received_ms BIGINT NOT NULL
    )",
    // 13: the offer after which an agent's presence was last set (a missed or rejected offer,
    // Omnichannel's option), so that the effect, delivered again, sets it once. Replaced by 14.
    "ALTER TABLE routing_agents ADD COLUMN presence_set_after TEXT",
    // 14: when that offer ended (missed or rejected) instead, so that an older miss's effect
    // delivered late does not set it again either.
    "ALTER TABLE routing_agents DROP COLUMN presence_set_after;
    ALTER TABLE routing_agents ADD COLUMN presence_set_after_ms BIGINT",
    // 15: a waiting conversation's place in the queue (`QueuePlace`): when it last went to
    // the queue (`Conversation::queued_since`) in a column of its own, which every write of
    // the row sets, indexed after the queue for the count of those ahead of a place
    // (`queued_ahead`, the "position in queue" message) without reading their bodies, and
    // alone for the tick's pages of every waiting conversation (`list_queued_after`: a page
    // after a place is a range of the index, however far into the queue). Open
    // rows take it from their bodies (one saved before `queued_at` existed: its creation
    // time); closed rows, never waiting again, keep 0, as would a row an instance of schema
    // 14 still running writes (an old instance's new conversation then counts as the first
    // waiting: a place told too late, never a conversation left out).
    "ALTER TABLE conversations ADD COLUMN queued_ms BIGINT NOT NULL DEFAULT 0;
    {backfill_queued_ms};
    CREATE INDEX conversations_queue_place ON conversations (queue, queued_ms, id) WHERE closed = 0 AND agent IS NULL;
    CREATE INDEX conversations_place ON conversations (queued_ms, id) WHERE closed = 0 AND agent IS NULL",
];

/// A transcript row as read: its body, and the id and send time recorded since.
type LineRow = (String, Option<String>, Option<i64>);

/// A transcript line from its row: the body, with the id and send time recorded by
/// `complete_sent` (lines written before schema 8 carry them in the body).
fn line_of((body, sent_mid, sent_ms): LineRow) -> Result<TranscriptLine, StoreError> {
    let mut line: TranscriptLine = from_json(&body)?;
    if let Some(mid) = sent_mid {
        line.mid = Some(mid);
        line.sent_at = sent_ms.map(from_millis);
    }
    Ok(line)
}

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

#[cfg(feature = "postgres")]
mod postgres;
mod queries;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;

    use super::*;
    use crate::ids::AgentId;
    use crate::store::{ConversationStore, MediaStore};

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
            .put(
                &crate::ids::ConversationId::from("c"),
                Bytes::from_static(b"abc"),
                Some("text/plain"),
            )
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

    /// An effect the store cannot read (written by a newer version) is left for later, with
    /// why, and the others are claimed: one unreadable row must not stop every delivery, nor
    /// be given up on by an older instance when a newer one could deliver it.
    #[tokio::test]
    async fn an_unreadable_effect_is_set_aside_and_the_others_are_claimed() {
        let pool = memory_pool().await;
        SqliteStore::migrate(&pool, MIGRATIONS.len()).await.unwrap();
        let good = to_json(&crate::conversation::Effect::SessionStarted {
            agent: AgentId::from("a"),
        })
        .unwrap();
        for (key, body) in [
            ("c:1:0", r#"{"NoSuchEffect":{}}"#),
            ("c:1:1", good.as_str()),
        ] {
            sqlx::query("INSERT INTO outbox (key, conversation, body, done, next_ms, created_ms) VALUES ($1, 'c', $2, 0, 0, 0)")
                .bind(key)
                .bind(body)
                .execute(&pool)
                .await
                .unwrap();
        }
        let store = SqliteStore::from_pool(pool.clone()).await.unwrap();
        let lease = super::super::Lease {
            owner: "w".into(),
            at: SystemTime::now(),
            until: SystemTime::now() + Duration::from_secs(60),
        };
        let claimed = store
            .claim_effects(&lease, SystemTime::now(), 10)
            .await
            .unwrap();
        assert_eq!(
            claimed.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(),
            ["c:1:1"]
        );
        let stats = store.outbox_stats().await.unwrap();
        assert_eq!((stats.pending, stats.failed), (2, 0), "pending, not failed");
        let again = store
            .claim_effects(&lease, SystemTime::now(), 10)
            .await
            .unwrap();
        assert!(again.is_empty(), "not claimed again at once: {again:?}");
        let (why,): (Option<String>,) =
            sqlx::query_as("SELECT last_error FROM outbox WHERE key = 'c:1:0'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(
            why.is_some_and(|w| w.starts_with("the effect cannot be read")),
            "why is kept"
        );
    }

    /// Concurrent receives share transactions (group commit), yet each caller is told about
    /// its own events only: an event sent by several callers at once is new to exactly one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grouped_receives_answer_each_caller_for_its_own_events() {
        use crate::store::NewInboxEvent;
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SqliteStore::open(dir.path().join("g.db")).await.unwrap());
        let event = |k: usize| NewInboxEvent {
            key: format!("k{k}"),
            thread: format!("t{}", k % 3),
            body: "{}".into(),
        };
        let callers: Vec<_> = (0..16)
            .map(|c| {
                let store = store.clone();
                // Each caller: two events of its own, and one shared with its neighbour.
                let events = vec![event(100 + c), event(200 + c), event(c / 2)];
                tokio::spawn(async move {
                    let fresh = store
                        .receive(&events, SystemTime::now(), Duration::from_secs(3600))
                        .await
                        .unwrap();
                    (events, fresh)
                })
            })
            .collect();
        let mut new_by_key = std::collections::HashMap::new();
        for caller in callers {
            let (events, fresh) = caller.await.unwrap();
            assert_eq!(fresh.len(), 3);
            assert!(fresh[0] && fresh[1], "a caller's own events are new to it");
            for (e, new) in events.iter().zip(fresh) {
                *new_by_key.entry(e.key.clone()).or_insert(0) += usize::from(new);
            }
        }
        assert_eq!(new_by_key.len(), 40);
        assert!(new_by_key.values().all(|n| *n == 1), "{new_by_key:?}");
        let pending = store.inbox_pending(0, 100).await.unwrap();
        assert_eq!(pending.len(), 40);
        assert!(pending.windows(2).all(|w| w[0].seq < w[1].seq));
        // Received again: duplicates for everyone.
        let again = store
            .receive(
                &[event(100), event(0)],
                SystemTime::now(),
                Duration::from_secs(3600),
            )
            .await
            .unwrap();
        assert_eq!(again, [false, false]);
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
