//! The store's Rust, written once for both backends: `sqlite.rs` and `postgres.rs` each
//! include this file as a module of their own, with `Db` (the `sqlx` database), `Store` (the
//! store type) and the few statements that differ between the two (`super::dialect`) in
//! scope. Everything else, SQL included, is the same on both.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::dialect::{
    BACKFILL_AT_MS, BACKFILL_QUEUED_MS, BEGIN_WRITE, BLOB_TYPE, GROUP_RECEIVE, ID_TYPE, LOCK,
    NOW_MS, QUEUE_AHEAD, SCHEMA_LOCK, SERIAL_WRITES, STORE_NAME, UNPACK_LOCK_TIMEOUT,
};
use super::{Db, Store};
use crate::conversation::{FileLine, LineBody, MediaState, TranscriptLine};
use crate::ids::{AgentId, ConversationId, PageId, QueueId, UserId};
use crate::store::sql::queries as q;
use crate::store::sql::{
    EFFECT_COLUMNS, EffectRow, INBOX_CHUNK, LineRow, MIGRATIONS, columns, from_json, from_sqlx,
    line_of, pending_effect, to_json,
};
use crate::store::{
    Commit, ConversationStore, InboxEvent, Lease, MediaStore, NewInboxEvent, OutboxStats,
    PendingEffect, QueuePlace, Queued, RecordedWebhook, Retry, StoreError, Stored,
};
use crate::time::{from_millis, millis};

/// How long an outbox effect this version cannot read waits before it is claimed again (by
/// any instance: one of a newer version delivers it).
const UNREADABLE_EFFECT_RETRY: Duration = Duration::from_secs(600);

/// Callers waiting to record their events in the receiver's next transaction (group commit,
/// when the backend's `GROUP_RECEIVE` is on).
#[derive(Default)]
pub(super) struct Grouping {
    state: std::sync::Mutex<Group>,
}

#[derive(Default)]
struct Group {
    queue: Vec<Received>,
    /// Whether a receiver task is running (it takes the queue until it is empty).
    running: bool,
}

/// One caller's events (or webhook body), and where its answer goes.
struct Received {
    events: Vec<NewInboxEvent>,
    /// A webhook body to record as it came ([`ConversationStore::record_webhook`]).
    webhook: Option<Vec<u8>>,
    now: SystemTime,
    keep: Duration,
    done: tokio::sync::oneshot::Sender<Result<Vec<bool>, StoreError>>,
}

impl Grouping {
    fn lock(&self) -> std::sync::MutexGuard<'_, Group> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(STORE_NAME).finish_non_exhaustive()
    }
}

impl Store {
    /// Wraps a pool and brings its schema up to [`SCHEMA_VERSION`](crate::store::SCHEMA_VERSION).
    ///
    /// # Errors
    /// [`StoreError::SchemaTooNew`] for a database of a newer, unknown schema;
    /// [`StoreError::Backend`] when the database fails.
    pub async fn from_pool(pool: sqlx::Pool<Db>) -> Result<Self, StoreError> {
        Self::from_pools(pool.clone(), pool).await
    }

    /// Like [`Self::from_pool`], with reads and writes on pools of their own.
    pub(in crate::store::sql) async fn from_pools(
        pool: sqlx::Pool<Db>,
        writer: sqlx::Pool<Db>,
    ) -> Result<Self, StoreError> {
        Self::migrate(&writer, MIGRATIONS.len()).await?;
        Ok(Self {
            pool,
            writer,
            group: std::sync::Arc::default(),
        })
    }

    /// The connection pool.
    pub fn pool(&self) -> &sqlx::Pool<Db> {
        &self.pool
    }

    /// The schema version of the database.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        Self::current_version(&self.pool).await
    }

    pub(in crate::store::sql) async fn current_version(
        pool: &sqlx::Pool<Db>,
    ) -> Result<i64, StoreError> {
        sqlx::query(q::CREATE_SCHEMA_VERSION)
            .execute(pool)
            .await
            .map_err(from_sqlx)?;
        let (version,): (Option<i64>,) = sqlx::query_as(q::SCHEMA_VERSION_FOUND)
            .fetch_one(pool)
            .await
            .map_err(from_sqlx)?;
        Ok(version.unwrap_or(0))
    }

    /// Begins a transaction that writes. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a transaction that reads and then writes never fails on a
    /// lock upgrade (the busy timeout applies to `BEGIN IMMEDIATE`, not to an upgrade).
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Db>, StoreError> {
        self.writer.begin_with(BEGIN_WRITE).await.map_err(from_sqlx)
    }

    /// Applies the migrations up to number `upto` (1-based count), all in one
    /// transaction that holds the schema lock: on PostgreSQL an advisory lock, on SQLite
    /// the write lock. Any number of instances opening one fresh or old database at once
    /// wait for each other; the first migrates, the others find the schema current.
    pub(in crate::store::sql) async fn migrate(
        pool: &sqlx::Pool<Db>,
        upto: usize,
    ) -> Result<(), StoreError> {
        let mut tx = pool.begin_with(BEGIN_WRITE).await.map_err(from_sqlx)?;
        sqlx::query(SCHEMA_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        sqlx::query(q::CREATE_SCHEMA_VERSION)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        let (found,): (Option<i64>,) = sqlx::query_as(q::SCHEMA_VERSION_FOUND)
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
                .replace("{id}", ID_TYPE)
                .replace("{blob}", BLOB_TYPE)
                .replace("{backfill_at_ms}", BACKFILL_AT_MS)
                .replace("{backfill_queued_ms}", BACKFILL_QUEUED_MS)
                .replace("{now_ms}", NOW_MS);
            for statement in script.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
            }
            sqlx::query(q::RECORD_SCHEMA_VERSION)
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

    /// Inserts a commit's effects into the outbox inside its transaction, under the keys
    /// `conversation:version:index`, claimed for the commit's lease if it has one; returns
    /// them as pending.
    async fn insert_effects(
        tx: &mut sqlx::Transaction<'_, Db>,
        commit: &Commit,
        version: i64,
    ) -> Result<Vec<PendingEffect>, StoreError> {
        let c = &commit.conversation;
        let (owner, until) = match &commit.claim {
            Some(lease) => (Some(lease.owner.as_str()), Some(millis(lease.until))),
            None => (None, None),
        };
        let at = millis(commit.at);
        let mut pending = Vec::with_capacity(commit.effects.len());
        for (i, effect) in commit.effects.iter().enumerate() {
            let key = format!("{}:{version}:{i}", c.id());
            sqlx::query(q::INSERT_EFFECT)
                .bind(&key)
                .bind(c.id().as_str())
                .bind(to_json(effect)?)
                .bind(owner)
                .bind(until)
                .bind(at)
                .execute(&mut **tx)
                .await
                .map_err(from_sqlx)?;
            pending.push(PendingEffect {
                key,
                conversation: c.id().clone(),
                effect: effect.clone(),
                created_at: from_millis(at),
                attempts: 0,
                interrupted: false,
                unconfirmed: false,
                last_error: None,
            });
        }
        Ok(pending)
    }

    /// Appends transcript lines inside a transaction; their ids keep their order. `keys`
    /// gives some lines the key of the effect that sends them (by index).
    async fn insert_lines(
        tx: &mut sqlx::Transaction<'_, Db>,
        id: &ConversationId,
        lines: &[TranscriptLine],
        keys: &[(usize, String)],
    ) -> Result<(), StoreError> {
        for (i, line) in lines.iter().enumerate() {
            let key = keys.iter().find(|(l, _)| *l == i).map(|(_, k)| k.as_str());
            sqlx::query(q::INSERT_LINE)
                .bind(id.as_str())
                .bind(to_json(line)?)
                .bind(millis(line.at))
                .bind(key)
                .execute(&mut **tx)
                .await
                .map_err(from_sqlx)?;
        }
        Ok(())
    }

    /// The one conversation of a page and customer that `sql` selects, if any.
    async fn find(
        &self,
        sql: &str,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<Stored>, StoreError> {
        sqlx::query_as::<_, (String, i64)>(sql)
            .bind(page.as_str())
            .bind(customer.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?
            .map(Self::stored)
            .transpose()
    }

    /// Rewrites the transcript lines `change` gives a new version of (the first one only
    /// with `first_only`): read outside the write lock, then each written only if nobody
    /// changed it since. Returns the lines rewritten.
    async fn rewrite_lines(
        &self,
        id: &ConversationId,
        first_only: bool,
        change: impl Fn(&TranscriptLine) -> Option<TranscriptLine>,
    ) -> Result<Vec<TranscriptLine>, StoreError> {
        let rows: Vec<(i64, String, Option<String>, Option<i64>)> =
            sqlx::query_as(q::TRANSCRIPT_WITH_IDS)
                .bind(id.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(from_sqlx)?;
        let mut targets = Vec::new();
        for (row, body, sent_mid, sent_ms) in rows {
            let line = line_of((body.clone(), sent_mid, sent_ms))?;
            if let Some(new) = change(&line) {
                targets.push((row, body, new));
                if first_only {
                    break;
                }
            }
        }
        let mut rewritten = Vec::with_capacity(targets.len());
        if targets.is_empty() {
            return Ok(rewritten);
        }
        let mut tx = self.write_tx().await?;
        for (row, old, line) in targets {
            let done = sqlx::query(q::REPLACE_LINE)
                .bind(to_json(&line)?)
                .bind(row)
                .bind(&old)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
            if done.rows_affected() > 0 {
                rewritten.push(line);
            }
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(rewritten)
    }

    /// Records one caller's events in a transaction of their own.
    async fn receive_alone(
        &self,
        events: &[NewInboxEvent],
        webhook: Option<&[u8]>,
        now: SystemTime,
        keep: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.write_tx().await?;
        if let Some(body) = webhook {
            Self::record_in(&mut tx, &[body], now).await?;
        }
        let fresh = Self::receive_in(&mut tx, events, now, keep).await?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(fresh)
    }

    /// Records webhook bodies inside a transaction, in their order.
    async fn record_in(
        tx: &mut sqlx::Transaction<'static, Db>,
        bodies: &[&[u8]],
        now: SystemTime,
    ) -> Result<(), StoreError> {
        let now_ms = millis(now);
        for chunk in bodies.chunks(INBOX_CHUNK) {
            let mut insert = sqlx::QueryBuilder::<Db>::new(q::WEBHOOK_INSERT_PREFIX);
            insert.push_values(chunk, |mut row, body| {
                row.push_bind(*body).push_bind(now_ms);
            });
            insert.build().execute(&mut **tx).await.map_err(from_sqlx)?;
        }
        Ok(())
    }

    /// Group commit: the caller's events join the next transaction of the store's receiver
    /// task, with every other caller's that arrives while it waits for the writer. Each
    /// caller gets its own answer (which of its events were new), once that transaction
    /// has committed; if the group fails, each caller's events are tried again in a
    /// transaction of their own, so that one caller's failure is nobody else's and no
    /// caller is answered before its events are committed.
    async fn receive_grouped(
        &self,
        events: &[NewInboxEvent],
        webhook: Option<&[u8]>,
        now: SystemTime,
        keep: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let start = {
            let mut group = self.group.lock();
            group.queue.push(Received {
                events: events.to_vec(),
                webhook: webhook.map(<[u8]>::to_vec),
                now,
                keep,
                done,
            });
            !std::mem::replace(&mut group.running, true)
        };
        if start {
            let store = self.clone();
            tokio::spawn(async move { store.receiver().await });
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Backend(
                "the store's receiver stopped before answering".into(),
            ))
        })
    }

    /// The receiver task: while callers wait, takes the writer, then every caller queued by
    /// then, and records them all in one transaction.
    async fn receiver(&self) {
        /// Lets the next caller start a receiver if this one ends in a panic.
        struct Stopped<'a>(&'a Grouping);
        impl Drop for Stopped<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    let mut group = self.0.lock();
                    group.running = false;
                    group.queue.clear();
                }
            }
        }
        let _stopped = Stopped(&self.group);
        loop {
            {
                let mut group = self.group.lock();
                if group.queue.is_empty() {
                    group.running = false;
                    return;
                }
            }
            // Waiting for the writer is when the group forms.
            let tx = self.write_tx().await;
            let jobs = std::mem::take(&mut self.group.lock().queue);
            let jobs = match tx {
                Ok(tx) => match Self::receive_all(tx, &jobs).await {
                    Ok(answers) => {
                        for (job, answer) in jobs.into_iter().zip(answers) {
                            // A caller that gave up (timed out) is told nothing; its events
                            // are committed, and Meta's redelivery is a duplicate.
                            let _ = job.done.send(Ok(answer));
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, callers = jobs.len(), "grouped receive failed; each caller on its own");
                        jobs
                    }
                },
                Err(e) => {
                    tracing::debug!(error = %e, callers = jobs.len(), "grouped receive not begun; each caller on its own");
                    jobs
                }
            };
            for job in jobs {
                let answer = self
                    .receive_alone(&job.events, job.webhook.as_deref(), job.now, job.keep)
                    .await;
                let _ = job.done.send(answer);
            }
        }
    }

    /// Records every job in `tx` and commits; the answers in the jobs' order. Jobs that keep
    /// events as long as each other go into the same multi-row statements, at the latest
    /// job's time: an event in two jobs is new to the first one only.
    async fn receive_all(
        mut tx: sqlx::Transaction<'static, Db>,
        jobs: &[Received],
    ) -> Result<Vec<Vec<bool>>, StoreError> {
        let mut answers = Vec::with_capacity(jobs.len());
        let bodies: Vec<&[u8]> = jobs.iter().filter_map(|j| j.webhook.as_deref()).collect();
        if !bodies.is_empty() {
            let latest = jobs
                .iter()
                .map(|j| j.now)
                .max()
                .unwrap_or(SystemTime::UNIX_EPOCH);
            Self::record_in(&mut tx, &bodies, latest).await?;
        }
        // Jobs that record only a body have no events (nor a meaningful `keep`).
        let receiving: Vec<&Received> = jobs.iter().filter(|j| !j.events.is_empty()).collect();
        if receiving.windows(2).all(|w| w[0].keep == w[1].keep) && !receiving.is_empty() {
            let now = jobs
                .iter()
                .map(|j| j.now)
                .max()
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let all: Vec<NewInboxEvent> =
                jobs.iter().flat_map(|j| j.events.iter().cloned()).collect();
            let mut fresh = Self::receive_in(&mut tx, &all, now, receiving[0].keep)
                .await?
                .into_iter();
            for job in jobs {
                answers.push(fresh.by_ref().take(job.events.len()).collect());
            }
        } else {
            for job in jobs {
                answers.push(Self::receive_in(&mut tx, &job.events, job.now, job.keep).await?);
            }
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(answers)
    }

    /// A multi-row insert of inbox events that skips those already there.
    fn inbox_insert<'a>(chunk: &[&'a NewInboxEvent], now_ms: i64) -> sqlx::QueryBuilder<'a, Db> {
        let mut insert = sqlx::QueryBuilder::<Db>::new(q::INBOX_INSERT_PREFIX);
        insert.push_values(chunk, |mut row, e| {
            row.push_bind(e.key.as_str())
                .push_bind(e.thread.as_str())
                .push_bind(e.body.as_str())
                .push_bind(now_ms)
                .push_bind(0_i64);
        });
        insert.push(" ON CONFLICT (key, thread) DO NOTHING");
        insert
    }

    /// Inserts the events that are not in the inbox yet: `None` when every one was new, else
    /// the keys of those that were.
    async fn insert_new(
        tx: &mut sqlx::Transaction<'static, Db>,
        unique: &[&NewInboxEvent],
        now_ms: i64,
    ) -> Result<Option<HashSet<(String, String)>>, StoreError> {
        let insert = |chunk| Self::inbox_insert(chunk, now_ms);
        let mut inserted: HashSet<(String, String)> = HashSet::new();
        if SERIAL_WRITES {
            // Nobody else writes during this transaction: the rows it inserted are those
            // after the last one before it, and they need reading back only if some of the
            // events were not new (returning every row costs a fifth of the insert).
            let (before,): (Option<i64>,) = sqlx::query_as(q::INBOX_LAST_SEQ)
                .fetch_one(&mut **tx)
                .await
                .map_err(from_sqlx)?;
            let mut added = 0;
            for chunk in unique.chunks(INBOX_CHUNK) {
                added += insert(chunk)
                    .build()
                    .execute(&mut **tx)
                    .await
                    .map_err(from_sqlx)?
                    .rows_affected();
            }
            if usize::try_from(added).is_ok_and(|n| n == unique.len()) {
                return Ok(None);
            }
            let rows: Vec<(String, String)> = sqlx::query_as(q::INBOX_SINCE)
                .bind(before.unwrap_or(0))
                .fetch_all(&mut **tx)
                .await
                .map_err(from_sqlx)?;
            inserted.extend(rows);
        } else {
            for chunk in unique.chunks(INBOX_CHUNK) {
                let mut insert = insert(chunk);
                insert.push(" RETURNING key, thread");
                let rows: Vec<(String, String)> = insert
                    .build_query_as()
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(from_sqlx)?;
                inserted.extend(rows);
            }
        }
        Ok(Some(inserted))
    }

    /// Records received events inside a transaction; for each, whether it is new.
    async fn receive_in(
        tx: &mut sqlx::Transaction<'static, Db>,
        events: &[NewInboxEvent],
        now: SystemTime,
        keep: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let now_ms = millis(now);
        let forget_before =
            now_ms.saturating_sub(i64::try_from(keep.as_millis()).unwrap_or(i64::MAX));
        // An event repeated in one call counts once, at its first place.
        let name = |e: &NewInboxEvent| (e.key.clone(), e.thread.clone());
        let mut first = HashSet::with_capacity(events.len());
        let unique: Vec<&NewInboxEvent> = events
            .iter()
            .filter(|e| first.insert((e.key.as_str(), e.thread.as_str())))
            .collect();
        let Some(mut inserted) = Self::insert_new(tx, &unique, now_ms).await? else {
            // Every one was new (the common case).
            let mut counted = HashSet::with_capacity(events.len());
            return Ok(events
                .iter()
                .map(|e| counted.insert((e.key.as_str(), e.thread.as_str())))
                .collect());
        };
        // Seen before: a duplicate, unless it was applied and received longer ago than
        // `keep` (then it is received again). One statement for all of them.
        let seen: Vec<&NewInboxEvent> = unique
            .iter()
            .copied()
            .filter(|e| !inserted.contains(&name(e)))
            .collect();
        for chunk in seen.chunks(INBOX_CHUNK) {
            let mut forget = sqlx::QueryBuilder::<Db>::new(q::INBOX_FORGET_PREFIX);
            forget
                .push_bind(forget_before)
                .push(" AND (key, thread) IN (");
            for (i, e) in chunk.iter().enumerate() {
                if i > 0 {
                    forget.push(", ");
                }
                forget
                    .push("(")
                    .push_bind(e.key.as_str())
                    .push(", ")
                    .push_bind(e.thread.as_str())
                    .push(")");
            }
            forget.push(") RETURNING key, thread");
            let forgotten: Vec<(String, String)> = forget
                .build_query_as()
                .fetch_all(&mut **tx)
                .await
                .map_err(from_sqlx)?;
            for again in forgotten {
                let Some(e) = chunk.iter().find(|e| name(e) == again) else {
                    continue;
                };
                sqlx::query(q::INBOX_INSERT_ONE)
                    .bind(e.key.as_str())
                    .bind(e.thread.as_str())
                    .bind(e.body.as_str())
                    .bind(now_ms)
                    .execute(&mut **tx)
                    .await
                    .map_err(from_sqlx)?;
                inserted.insert(again);
            }
        }
        let mut counted = HashSet::with_capacity(events.len());
        Ok(events
            .iter()
            .map(|e| {
                let n = name(e);
                inserted.contains(&n) && counted.insert(n)
            })
            .collect())
    }

    #[allow(
        clippy::needless_pass_by_value,
        reason = "rows come by value from `fetch_all`"
    )]
    fn stored((body, version): (String, i64)) -> Result<Stored, StoreError> {
        Ok(Stored {
            conversation: from_json(&body)?,
            version: u64::try_from(version).unwrap_or(0),
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
impl ConversationStore for Store {
    async fn find_open(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<Stored>, StoreError> {
        self.find(q::FIND_OPEN, page, customer).await
    }

    async fn find_latest(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<Stored>, StoreError> {
        self.find(q::FIND_LATEST, page, customer).await
    }

    async fn history(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(q::HISTORY)
            .bind(page.as_str())
            .bind(customer.as_str())
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        rows.into_iter().map(Self::stored).collect()
    }

    async fn load(&self, id: &ConversationId) -> Result<Option<Stored>, StoreError> {
        sqlx::query_as::<_, (String, i64)>(q::LOAD)
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
            let mut select = sqlx::QueryBuilder::<Db>::new(q::LOAD_MANY_PREFIX);
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
            let done = sqlx::query(q::MARK_APPLIED)
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
                sqlx::query(q::INSERT_CONVERSATION)
                    .bind(c.id().as_str())
                    .bind(c.page().as_str())
                    .bind(c.customer().as_str())
                    .bind(state)
                    .bind(agent)
                    .bind(closed)
                    .bind(deadline)
                    .bind(millis(c.created_at()))
                    .bind(&body)
                    .bind(c.queue().map(QueueId::as_str))
                    .bind(millis(c.queued_since()))
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                1
            }
            Some(expected) => {
                let expected = i64::try_from(expected).unwrap_or(i64::MAX);
                let done = sqlx::query(q::UPDATE_CONVERSATION)
                    .bind(c.id().as_str())
                    .bind(state)
                    .bind(agent)
                    .bind(closed)
                    .bind(deadline)
                    .bind(&body)
                    .bind(expected)
                    .bind(c.queue().map(QueueId::as_str))
                    .bind(millis(c.queued_since()))
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                if done.rows_affected() == 0 {
                    let exists = sqlx::query(q::CONVERSATION_EXISTS)
                        .bind(c.id().as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(from_sqlx)?;
                    return Err(if exists.is_some() {
                        StoreError::Conflict
                    } else {
                        StoreError::NotFound(c.id().clone())
                    });
                }
                expected + 1
            }
        };
        let keys: Vec<(usize, String)> = commit
            .sent_lines()
            .into_iter()
            .map(|(line, effect)| (line, format!("{}:{version}:{effect}", c.id())))
            .collect();
        Self::insert_lines(&mut tx, c.id(), &commit.transcript, &keys).await?;
        let pending = Self::insert_effects(&mut tx, commit, version).await?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok((u64::try_from(version).unwrap_or(0), pending))
    }

    async fn append(
        &self,
        id: &ConversationId,
        lines: Vec<TranscriptLine>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query(q::CONVERSATION_EXISTS)
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        if exists.is_none() {
            return Err(StoreError::NotFound(id.clone()));
        }
        Self::insert_lines(&mut tx, id, &lines, &[]).await?;
        tx.commit().await.map_err(from_sqlx)
    }

    async fn transcript(&self, id: &ConversationId) -> Result<Vec<TranscriptLine>, StoreError> {
        if self.load(id).await?.is_none() {
            return Err(StoreError::NotFound(id.clone()));
        }
        let rows: Vec<LineRow> = sqlx::query_as(q::TRANSCRIPT)
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        rows.into_iter().map(line_of).collect()
    }

    async fn update_file(
        &self,
        id: &ConversationId,
        url: &str,
        file: &FileLine,
    ) -> Result<Vec<TranscriptLine>, StoreError> {
        self.rewrite_lines(id, false, |line| {
            let pending = matches!(&line.body, LineBody::File(f) if f.url.as_deref() == Some(url) && f.media == MediaState::Pending);
            pending.then(|| TranscriptLine {
                body: LineBody::File(file.clone()),
                ..line.clone()
            })
        })
        .await
    }

    async fn forget_message(
        &self,
        id: &ConversationId,
        mid: &str,
    ) -> Result<Vec<TranscriptLine>, StoreError> {
        self.rewrite_lines(id, false, |line| line.forgotten_by(mid))
            .await
    }

    async fn complete_sent(&self, sent: &[crate::store::SentMessage]) -> Result<(), StoreError> {
        if sent.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for message in sent {
            sqlx::query(if message.echoed {
                q::SENT_LINE_ECHOED
            } else {
                q::SENT_LINE
            })
            .bind(&message.key)
            .bind(&message.mid)
            .bind(millis(message.at))
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
            sqlx::query(q::COMPLETE_EFFECT)
                .bind(&message.key)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        }
        tx.commit().await.map_err(from_sqlx)
    }

    async fn list_for_agent(&self, agent: &AgentId) -> Result<Vec<Stored>, StoreError> {
        self.list(q::OPEN_OF_AGENT, Some(agent.as_str())).await
    }

    async fn list_open(&self) -> Result<Vec<Stored>, StoreError> {
        self.list(q::ALL_OPEN, None).await
    }

    async fn list_queued(&self) -> Result<Vec<Stored>, StoreError> {
        self.list(q::QUEUED, None).await
    }

    async fn list_queue(
        &self,
        queue: Option<&QueueId>,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(String, i64)> = match queue {
            Some(queue) => {
                sqlx::query_as(q::QUEUE_WAITING)
                    .bind(queue.as_str())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query_as(q::NO_QUEUE_WAITING)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(from_sqlx)?;
        rows.into_iter().map(Self::stored).collect()
    }

    async fn list_queued_after(
        &self,
        after: Option<&QueuePlace>,
        limit: usize,
    ) -> Result<Vec<Queued>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<(String, i64, i64, String)> = match after {
            None => {
                sqlx::query_as(q::QUEUED_FIRST)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
            Some(after) => {
                sqlx::query_as(q::QUEUED_AFTER)
                    .bind(millis(after.since))
                    .bind(after.id.as_str())
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(from_sqlx)?;
        // Each at the row's own place, the order read: the next page follows it even where
        // the row's place and its body's disagree (a row an instance of an older version
        // wrote), so that no conversation is skipped or read twice.
        rows.into_iter()
            .map(|(body, version, queued_ms, id)| {
                let place = QueuePlace::new(from_millis(queued_ms), ConversationId::new(id));
                Ok(Queued::at(place, Self::stored((body, version))?))
            })
            .collect()
    }

    async fn queued_ahead(
        &self,
        queue: Option<&QueueId>,
        place: &QueuePlace,
    ) -> Result<usize, StoreError> {
        let since = millis(place.since);
        let id = place.id.as_str();
        let (ahead,): (i64,) = match queue {
            Some(queue) => {
                sqlx::query_as(QUEUE_AHEAD)
                    .bind(queue.as_str())
                    .bind(since)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
            }
            None => {
                sqlx::query_as(q::NO_QUEUE_AHEAD)
                    .bind(since)
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await
            }
        }
        .map_err(from_sqlx)?;
        Ok(usize::try_from(ahead).unwrap_or(0))
    }

    async fn due(&self, now: SystemTime) -> Result<Vec<ConversationId>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(q::DUE_CONVERSATIONS)
            .bind(millis(now))
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(rows
            .into_iter()
            .map(|(id,)| ConversationId::new(id))
            .collect())
    }

    async fn pending(&self, limit: usize) -> Result<Vec<PendingEffect>, StoreError> {
        let sql =
            format!("SELECT {EFFECT_COLUMNS} FROM outbox WHERE done = 0 ORDER BY seq LIMIT $1");
        let rows: Vec<EffectRow> = sqlx::query_as(&sql)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        rows.into_iter().map(pending_effect).collect()
    }

    async fn claim_effects(
        &self,
        lease: &Lease,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<PendingEffect>, StoreError> {
        // One statement: the due rows are chosen and claimed atomically. `interrupted`
        // is computed from the row as it was (a holder that never let go).
        let sql = format!(
            "WITH due AS MATERIALIZED (
                SELECT seq FROM outbox WHERE done = 0 AND next_ms <= $3
                AND (claimed_until_ms IS NULL OR claimed_until_ms <= $5)
                ORDER BY next_ms, seq LIMIT $4{LOCK}
             )
             UPDATE outbox SET interrupted = CASE WHEN claimed_by IS NULL THEN 0 ELSE 1 END,
                claimed_by = $1, claimed_until_ms = $2
             WHERE seq IN (SELECT seq FROM due)
             RETURNING seq, {EFFECT_COLUMNS}"
        );
        #[allow(clippy::type_complexity)]
        let rows: Vec<(
            i64,
            String,
            String,
            String,
            i64,
            i64,
            i64,
            i64,
            Option<String>,
        )> = sqlx::query_as(&sql)
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
        // Each row read on its own: one that cannot be read (written by a newer version, in a
        // fleet being upgraded) is released for later, with why, instead of failing every
        // claim after it (it would be claimed first again at each pass); an instance that
        // reads it delivers it, and it counts as pending meanwhile.
        let mut claimed = Vec::with_capacity(rows.len());
        for (_, row) in rows {
            let (key, unconfirmed) = (row.0.clone(), row.6);
            match pending_effect(row) {
                Ok(effect) => claimed.push(effect),
                Err(e) => {
                    tracing::error!(%key, error = %e, "an effect in the outbox cannot be read by this version; it is left for later");
                    sqlx::query(q::RESCHEDULE_EFFECT)
                        .bind(&key)
                        .bind(&lease.owner)
                        .bind(0_i64)
                        .bind(millis(crate::time::saturating_add(
                            now,
                            UNREADABLE_EFFECT_RETRY,
                        )))
                        .bind(format!("the effect cannot be read: {e}"))
                        .bind(unconfirmed)
                        .fetch_optional(&self.writer)
                        .await
                        .map_err(from_sqlx)?;
                }
            }
        }
        Ok(claimed)
    }

    async fn renew_claims(
        &self,
        lease: &Lease,
        keys: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.write_tx().await?;
        let mut held = Vec::with_capacity(keys.len());
        for key in keys {
            // Only a claim that has not lapsed: a lapsed one may be another's by now.
            let done = sqlx::query(q::RENEW_CLAIM)
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
        let done = sqlx::query(q::DROP_CLAIMS)
            .bind(owner)
            .execute(&self.writer)
            .await
            .map_err(from_sqlx)?;
        Ok(done.rows_affected())
    }

    async fn complete(&self, key: &str) -> Result<(), StoreError> {
        // A delivered effect is deleted: the outbox keeps what is pending and what
        // failed, and does not grow with every message sent.
        sqlx::query(q::COMPLETE_EFFECT)
            .bind(key)
            .execute(&self.writer)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn complete_all(&self, keys: &[String]) -> Result<(), StoreError> {
        let delete = |chunk: &[String]| {
            let mut delete = sqlx::QueryBuilder::<Db>::new(q::COMPLETE_EFFECTS_PREFIX);
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
                delete(keys)
                    .build()
                    .execute(&self.writer)
                    .await
                    .map_err(from_sqlx)?;
                Ok(())
            }
            _ => {
                let mut tx = self.write_tx().await?;
                for chunk in keys.chunks(INBOX_CHUNK) {
                    delete(chunk)
                        .build()
                        .execute(&mut *tx)
                        .await
                        .map_err(from_sqlx)?;
                }
                tx.commit().await.map_err(from_sqlx)
            }
        }
    }

    async fn reschedule(
        &self,
        key: &str,
        owner: &str,
        retry: &Retry,
    ) -> Result<Option<u32>, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(q::RESCHEDULE_EFFECT)
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

    async fn fail_effect(
        &self,
        key: &str,
        owner: &str,
        error: &str,
        lines: &[TranscriptLine],
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let row: Option<(String,)> = sqlx::query_as(q::FAIL_EFFECT)
            .bind(key)
            .bind(owner)
            .bind(error)
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        let Some((conversation,)) = row else {
            return Ok(false);
        };
        Self::insert_lines(&mut tx, &ConversationId::new(conversation), lines, &[]).await?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(true)
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let (pending, oldest): (i64, Option<i64>) = sqlx::query_as(q::OUTBOX_PENDING_STATS)
            .fetch_one(&self.pool)
            .await
            .map_err(from_sqlx)?;
        let (failed,): (i64,) = sqlx::query_as(q::OUTBOX_FAILED_COUNT)
            .fetch_one(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(OutboxStats {
            pending: u64::try_from(pending).unwrap_or(0),
            failed: u64::try_from(failed).unwrap_or(0),
            oldest_pending: oldest.map(from_millis),
        })
    }

    async fn receive(
        &self,
        events: &[NewInboxEvent],
        now: SystemTime,
        keep: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        if !GROUP_RECEIVE {
            return self.receive_alone(events, None, now, keep).await;
        }
        self.receive_grouped(events, None, now, keep).await
    }

    async fn record_webhook(&self, body: &[u8], now: SystemTime) -> Result<(), StoreError> {
        if GROUP_RECEIVE {
            // Joins the next group commit, with the receives and records waiting for it.
            self.receive_grouped(&[], Some(body), now, Duration::ZERO)
                .await
                .map(drop)
        } else {
            // One statement is a transaction of its own.
            let mut insert = sqlx::QueryBuilder::<Db>::new(q::WEBHOOK_INSERT_PREFIX);
            insert.push_values([body], |mut row, body| {
                row.push_bind(body).push_bind(millis(now));
            });
            insert
                .build()
                .execute(&self.writer)
                .await
                .map_err(from_sqlx)?;
            Ok(())
        }
    }

    async fn webhooks(&self, after: u64, limit: usize) -> Result<Vec<RecordedWebhook>, StoreError> {
        let rows: Vec<(i64, Vec<u8>, i64)> = sqlx::query_as(q::WEBHOOKS_AFTER)
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(rows
            .into_iter()
            .map(|(seq, body, received_ms)| {
                RecordedWebhook::new(
                    u64::try_from(seq).unwrap_or(0),
                    Bytes::from(body),
                    from_millis(received_ms),
                )
            })
            .collect())
    }

    async fn unpack_webhook(
        &self,
        seq: u64,
        events: &[NewInboxEvent],
        now: SystemTime,
        keep: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.write_tx().await?;
        if let Some(timeout) = UNPACK_LOCK_TIMEOUT {
            sqlx::query(timeout)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        }
        // The body first: of instances unpacking it at once, the one whose delete finds it
        // records the events (on PostgreSQL the others wait on its row, at most
        // `UNPACK_LOCK_TIMEOUT`, then find nothing).
        let forgotten = sqlx::query(q::WEBHOOK_DELETE)
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?
            .rows_affected();
        if forgotten == 0 {
            return Ok(vec![false; events.len()]);
        }
        let fresh = Self::receive_in(&mut tx, events, now, keep).await?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(fresh)
    }

    async fn inbox(&self, thread: &str, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        let rows: Vec<(i64, String, String, i64, i64)> = sqlx::query_as(q::INBOX_OF_THREAD)
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

    async fn inbox_pending(&self, from: u64, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        let rows: Vec<(i64, String, String, String, i64, i64)> = sqlx::query_as(q::INBOX_PENDING)
            .bind(i64::try_from(from).unwrap_or(i64::MAX))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(rows
            .into_iter()
            .map(|(seq, key, thread, body, attempts, retry_ms)| InboxEvent {
                seq: u64::try_from(seq).unwrap_or(0),
                key,
                thread,
                body,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                retry_at: (retry_ms > 0).then(|| crate::time::from_millis(retry_ms)),
            })
            .collect())
    }

    async fn inbox_threads(
        &self,
        received_by: SystemTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(q::INBOX_THREADS)
            .bind(millis(received_by))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(rows.into_iter().map(|(t,)| t).collect())
    }

    async fn inbox_done(&self, seq: u64) -> Result<bool, StoreError> {
        let done = sqlx::query(q::MARK_APPLIED)
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .execute(&self.writer)
            .await
            .map_err(from_sqlx)?;
        Ok(done.rows_affected() > 0)
    }

    async fn inbox_failed(
        &self,
        seq: u64,
        error: &str,
        retry_at: SystemTime,
    ) -> Result<u32, StoreError> {
        let row: Option<(i64,)> = sqlx::query_as(q::INBOX_FAILED)
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .bind(millis(retry_at))
            .bind(error)
            .fetch_optional(&self.writer)
            .await
            .map_err(from_sqlx)?;
        Ok(row.map_or(0, |(n,)| u32::try_from(n).unwrap_or(u32::MAX)))
    }

    async fn inbox_dead(&self, seq: u64, error: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(q::INBOX_DEAD)
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .bind(error)
            .execute(&self.writer)
            .await
            .map_err(from_sqlx)?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_inbox(&self, received_before: SystemTime) -> Result<u64, StoreError> {
        let done = sqlx::query(q::PURGE_INBOX)
            .bind(millis(received_before))
            .execute(&self.writer)
            .await
            .map_err(from_sqlx)?;
        Ok(done.rows_affected())
    }
}

#[async_trait::async_trait]
impl MediaStore for Store {
    async fn put(
        &self,
        conversation: &ConversationId,
        bytes: Bytes,
        content_type: Option<&str>,
    ) -> Result<String, StoreError> {
        let key = crate::store::media_key(conversation, &bytes);
        sqlx::query(q::PUT_MEDIA)
            .bind(&key)
            .bind(content_type)
            .bind(bytes.as_ref())
            .execute(&self.writer)
            .await
            .map_err(from_sqlx)?;
        Ok(key)
    }

    async fn get(&self, key: &str) -> Result<Option<(Bytes, Option<String>)>, StoreError> {
        let row: Option<(Vec<u8>, Option<String>)> = sqlx::query_as(q::GET_MEDIA)
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(row.map(|(b, t)| (Bytes::from(b), t)))
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(q::DELETE_MEDIA)
            .bind(key)
            .execute(&self.writer)
            .await
            .map_err(from_sqlx)?;
        Ok(done.rows_affected() > 0)
    }
}
