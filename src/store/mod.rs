//! What the channel keeps: traits the host implements, with in-memory and durable
//! implementations. (How agents are found and told is in [`crate::agents`].)
//!
//! Each trait is small, object-safe (`async-trait`) and has a written contract; durable
//! implementations must keep it.
//!
//! - [`ConversationStore`]: conversations, transcripts, the inbox of received events (which is
//!   also the record of what was seen, for redeliveries) and the outbox of effects.
//! - [`MediaStore`]: inbound files' bytes, kept after Messenger's links expire.

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod fs;
mod memory;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;

use std::time::{Duration, SystemTime};

use bytes::Bytes;

pub use memory::{InMemoryMediaStore, InMemoryStore};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use fs::FsMediaStore;
#[cfg(feature = "postgres")]
pub use sql::PostgresStore;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::SCHEMA_VERSION;
#[cfg(feature = "sqlite")]
pub use sql::SqliteStore;

use crate::conversation::{Author, Conversation, Effect, FileLine, TranscriptLine};
use crate::ids::{AgentId, ConversationId, PageId, QueueId, UserId};

/// How long an instance holds the effects it committed or claimed before
/// [`ConversationStore::claim_effects`] hands them to another instance (the engine renews its
/// claims while it works on them).
pub const DEFAULT_OUTBOX_LEASE: Duration = Duration::from_secs(60);

/// A storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The conversation changed since it was read (a stale version), or an open conversation
    /// already exists for the page and customer. Reload and try again.
    #[error("conflict: the conversation changed concurrently")]
    Conflict,
    /// No such conversation.
    #[error("no conversation {0}")]
    NotFound(ConversationId),
    /// The database was written by a newer version of this crate; it is not downgraded.
    #[error(
        "the database schema is version {found}; this version of the crate knows up to {supported}"
    )]
    SchemaTooNew {
        /// The database's version.
        found: i64,
        /// The newest this crate knows.
        supported: i64,
    },
    /// The backend failed.
    #[error("storage backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The key of a file kept for a conversation: the lowercase hex SHA-256 of the conversation's
/// id (length-prefixed) and the file's bytes. The same bytes kept for two conversations get two
/// keys, so forgetting one conversation's file never takes another's.
pub(crate) fn media_key(conversation: &ConversationId, bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let id = conversation.as_str().as_bytes();
    let mut hash = sha2::Sha256::new();
    hash.update((id.len() as u64).to_le_bytes());
    hash.update(id);
    hash.update(bytes);
    crate::webhook::signature::to_hex(&hash.finalize())
}

/// The key built-in stores gave files before keys were per conversation (the bytes' digest
/// alone); such a file may be shared by several conversations, so it is never deleted.
pub(crate) fn legacy_media_key(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    crate::webhook::signature::to_hex(&sha2::Sha256::digest(bytes))
}

/// Where a waiting conversation stands in the order of the queue: when it last went to the
/// queue ([`Conversation::queued_since`]), then its id. Places compare in that order (the
/// earlier first; of two at one time, the smaller id first).
///
/// The SQL stores keep times to the millisecond: two places within one millisecond compare
/// there by id alone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub struct QueuePlace {
    /// When the conversation last went to the queue.
    pub since: SystemTime,
    /// The conversation.
    pub id: ConversationId,
}

impl QueuePlace {
    /// The place of conversation `id`, in the queue since `since`.
    pub fn new(since: SystemTime, id: ConversationId) -> Self {
        Self { since, id }
    }

    /// A conversation's place.
    pub fn of(conversation: &Conversation) -> Self {
        Self::new(conversation.queued_since(), conversation.id().clone())
    }
}

/// A waiting conversation as [`ConversationStore::list_queued_after`] lists it: with the place
/// the store ordered it by, which the next page is read after (a store that keeps places
/// apart from the conversation, as the SQL stores do, gives its own, so that pages follow its
/// order even where a row's place and its conversation's disagree, as when an instance of an
/// older version wrote it). Derefs to the [`Stored`] conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Queued {
    /// Its place in the store's order.
    pub place: QueuePlace,
    /// The conversation.
    pub stored: Stored,
}

impl Queued {
    /// A conversation at its own place ([`QueuePlace::of`]).
    pub fn new(stored: Stored) -> Self {
        Self {
            place: QueuePlace::of(&stored.conversation),
            stored,
        }
    }

    /// A conversation at the place given.
    pub fn at(place: QueuePlace, stored: Stored) -> Self {
        Self { place, stored }
    }
}

impl std::ops::Deref for Queued {
    type Target = Stored;

    fn deref(&self) -> &Stored {
        &self.stored
    }
}

/// A conversation with its stored version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The conversation.
    pub conversation: Conversation,
    /// Its version: 1 when created, one more at each save.
    pub version: u64,
}

/// One state change to save atomically: the conversation, the transcript lines and the
/// effects it produced.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The conversation after the change.
    pub conversation: Conversation,
    /// The version read (`None` to create it).
    pub expected_version: Option<u64>,
    /// Lines to append to its transcript.
    pub transcript: Vec<TranscriptLine>,
    /// Effects to deliver after the commit (the outbox).
    pub effects: Vec<Effect>,
    /// When the conversation next needs a [`crate::conversation::Input::Tick`] (its
    /// [`Conversation::next_deadline`]), for [`ConversationStore::due`].
    pub deadline: Option<SystemTime>,
    /// The inbox event this change applies (its [`InboxEvent::seq`]): marked applied in the
    /// same transaction, and the commit fails with [`StoreError::Conflict`] if it already was.
    pub applies: Option<u64>,
    /// When the change was made: the effects' creation time, and the earliest time they are
    /// due.
    pub at: SystemTime,
    /// Who holds the fresh effects, and until when (the committing instance delivers them at
    /// once); `None` leaves them to any worker.
    pub claim: Option<Lease>,
}

/// A claim on outbox effects: the instance that holds them, and until when. Until then no
/// other instance is handed them.
///
/// Leases are wall-clock times shared by every instance (the engine takes them from
/// [`SystemTime::now`], whatever `now` its callers pass for the conversation's own clock):
/// whether a claim has lapsed is judged at [`Lease::at`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The holder's name ([`crate::engine::EngineBuilder::instance`]).
    pub owner: String,
    /// When the claim is made (or renewed): claims by others that lapsed by then are free.
    pub at: SystemTime,
    /// When the claim lapses unless renewed.
    pub until: SystemTime,
}

/// A failed delivery to try again later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// What went wrong, for the record (never a secret).
    pub error: String,
    /// Not before this time.
    pub at: SystemTime,
    /// Whether this counts as an attempt (a page waiting for the host to fix its token does
    /// not burn the retry budget).
    pub counts: bool,
    /// Whether the last attempt may have reached the platform (it timed out after the request
    /// was written, or was interrupted): the next one must first check for its echo.
    pub unconfirmed: bool,
}

/// The outbox at a glance, for metrics and dashboards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboxStats {
    /// Effects neither delivered nor failed.
    pub pending: u64,
    /// Effects given up on.
    pub failed: u64,
    /// When the oldest pending effect was committed.
    pub oldest_pending: Option<SystemTime>,
}

/// A verified webhook event to keep until it is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInboxEvent {
    /// What makes a redelivery the same event (the webhook's dedup key).
    pub key: String,
    /// The thread (page and customer): a thread's events are applied one after another, in
    /// the order they were received.
    pub thread: String,
    /// The event, as the engine serialises it.
    pub body: String,
}

/// A verified webhook body, kept as it came until its events are recorded in the inbox
/// ([`ConversationStore::record_webhook`], [`ConversationStore::unpack_webhook`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedWebhook {
    /// Its place in the order of receipt (increasing).
    pub seq: u64,
    /// The body's bytes, exactly as they were signed.
    pub body: Bytes,
    /// When it was recorded.
    pub received_at: SystemTime,
}

impl RecordedWebhook {
    /// A recorded body (for stores outside this crate).
    pub fn new(seq: u64, body: Bytes, received_at: SystemTime) -> Self {
        Self {
            seq,
            body,
            received_at,
        }
    }
}

/// A received event waiting in the inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEvent {
    /// Its place in the order of receipt (increasing).
    pub seq: u64,
    /// Its dedup key.
    pub key: String,
    /// Its thread.
    pub thread: String,
    /// The event, as the engine serialised it.
    pub body: String,
    /// Failed attempts to apply it so far.
    pub attempts: u32,
    /// After a failed attempt: not to be tried again before this time.
    pub retry_at: Option<SystemTime>,
}

/// An effect saved with its state change and not yet delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEffect {
    /// A stable key: the conversation, the version the commit produced, and the effect's
    /// index. A consumer that sees the same key twice can drop the repeat.
    pub key: String,
    /// The conversation.
    pub conversation: ConversationId,
    /// The effect.
    pub effect: Effect,
    /// When it was committed.
    pub created_at: SystemTime,
    /// Attempts that failed so far.
    pub attempts: u32,
    /// It was claimed before and the claim was never released (the holder crashed, or hung
    /// past its lease): a delivery may have been under way.
    pub interrupted: bool,
    /// The last attempt may have reached the platform ([`Retry::unconfirmed`]).
    pub unconfirmed: bool,
    /// Why the last attempt failed, if one did.
    pub last_error: Option<String>,
}

/// Conversations, transcripts and the outbox.
///
/// Contract:
/// - `commit` is atomic: the conversation, its transcript lines and its effects are all saved,
///   or none is. With `expected_version: Some(v)` it fails with [`StoreError::Conflict`] unless
///   the stored version is `v` (a stale save never overwrites). With `None` it creates the
///   conversation, and fails with `Conflict` if an open (not closed) conversation exists for
///   the same page and customer: at most one open conversation per (page, customer).
/// - The transcript is append-only, but for one thing: a file line's copy
///   ([`crate::conversation::FileLine`]'s media state, key, size, refusal) is updated in place
///   by `update_file` once the file is fetched. It is read in the order of the lines' times
///   (`at`), lines of equal time in the order of appends.
/// - **The outbox.** Effects of a commit stay pending until `complete` (delivered) or
///   `fail_effect` (given up on) is called with their key. `claim_effects` hands each pending
///   effect that is due and not held to one caller at a time, even across processes sharing
///   the database: a claim lasts until its lease lapses, is renewed by its owner, or is
///   released by `reschedule`, `complete` or `fail_effect`. `reschedule` and `fail_effect` act
///   only for the effect's current holder.
/// - **The inbox.** `receive` is atomic and durable when it returns `Ok`: every event of the
///   call is recorded, or none is. An event is named by its thread and key. One received
///   before (pending, given up on, or received less than `keep` ago) is a duplicate (`false`)
///   and changes nothing. Of concurrent
///   calls with one key, exactly one records it; the others return only once that record is
///   durable (or fail). A pending event is never dropped, however old; once applied (by a
///   commit whose [`Commit::applies`] names it, or by `inbox_done`) it is not returned by
///   `inbox` again, and its key is remembered for `keep`.
#[async_trait::async_trait]
pub trait ConversationStore: Send + Sync {
    /// The open conversation for a page and customer, if any.
    async fn find_open(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<Stored>, StoreError>;

    /// The customer's most recent conversation on the page (the last created), open or
    /// closed, if any. A reaction, edit, removal or outside reply that comes when none is
    /// open is recorded there. The default looks only at the open one
    /// ([`ConversationStore::find_open`]); the built-in stores look at closed ones too.
    async fn find_latest(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<Stored>, StoreError> {
        self.find_open(page, customer).await
    }

    /// The customer's conversations on the page, the most recent first (as
    /// [`ConversationStore::find_latest`] orders them), at most `limit`: the customer's
    /// history, and where a removal of a message from an earlier conversation finds it. The
    /// default has the most recent one only; the built-in stores have them all.
    async fn history(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        Ok(self
            .find_latest(page, customer)
            .await?
            .into_iter()
            .take(limit)
            .collect())
    }

    /// A conversation by id.
    async fn load(&self, id: &ConversationId) -> Result<Option<Stored>, StoreError>;

    /// The conversations of `ids` that exist, in any order. The delivery pass reads a batch's
    /// conversations with it; the default calls [`ConversationStore::load`] for each, and
    /// stores that can read them in one query do better.
    async fn load_all(&self, ids: &[ConversationId]) -> Result<Vec<Stored>, StoreError> {
        let mut all = Vec::with_capacity(ids.len());
        for id in ids {
            all.extend(self.load(id).await?);
        }
        Ok(all)
    }

    /// Saves a state change with its transcript lines and effects; returns the new version
    /// and the pending effects (with their keys), in order.
    async fn commit(&self, commit: &Commit) -> Result<(u64, Vec<PendingEffect>), StoreError>;

    /// Appends lines to a transcript outside a state change (a delivery's outcome).
    async fn append(
        &self,
        id: &ConversationId,
        lines: Vec<TranscriptLine>,
    ) -> Result<(), StoreError>;

    /// The whole transcript, in order.
    async fn transcript(&self, id: &ConversationId) -> Result<Vec<TranscriptLine>, StoreError>;

    /// Replaces the file of every file line of the conversation whose URL is `url` and whose
    /// copy is still [`crate::conversation::MediaState::Pending`] (a fetched inbound file;
    /// the same file sent twice makes two lines); returns those lines as updated.
    async fn update_file(
        &self,
        id: &ConversationId,
        url: &str,
        file: &FileLine,
    ) -> Result<Vec<TranscriptLine>, StoreError>;

    /// Forgets what the customer wrote in the message `mid`, which they removed: each line
    /// that [`TranscriptLine::forgotten_by`] changes becomes what it returns
    /// ([`crate::conversation::LineBody::Unsent`]; the time, author and ids stay): the
    /// conversation's lines of the customer's message and of its edits, never an agent's,
    /// the Page's or another app's. Returns the lines as updated; none when there were none (or already forgotten:
    /// forgetting twice is once).
    async fn forget_message(
        &self,
        id: &ConversationId,
        mid: &str,
    ) -> Result<Vec<TranscriptLine>, StoreError>;

    /// Marks sent messages delivered and records on each one's transcript line its platform id
    /// and when the platform took it, all in one step (a transaction, in a database).
    ///
    /// For each [`SentMessage`]: its effect, if pending, is delivered (as
    /// [`ConversationStore::complete`] does; one already failed stays failed); and the line
    /// committed with that effect ([`Commit::sent_lines`]) gets [`TranscriptLine::mid`] and
    /// [`TranscriptLine::sent_at`], unless it has an id already (the first record wins: the
    /// delivery that got the id and the echo that carries it record the same message), except
    /// that an [echoed](SentMessage::echoed) record of the same id replaces the time. The
    /// line is found by the effect's key, without reading the transcript, and gets its id
    /// even when the effect was completed before (an echo that comes after the delivery, or
    /// the other way round). A key with no line (an automated message, a reaction, an unknown
    /// key) only completes its effect.
    async fn complete_sent(&self, sent: &[SentMessage]) -> Result<(), StoreError>;

    /// The conversations an agent holds (Active or Wrap-up), or was offered, or left Waiting.
    async fn list_for_agent(&self, agent: &AgentId) -> Result<Vec<Stored>, StoreError>;

    /// Every conversation not closed.
    async fn list_open(&self) -> Result<Vec<Stored>, StoreError>;

    /// Open conversations waiting in the queue with no outstanding offer, oldest first. The
    /// default filters [`ConversationStore::list_open`]; stores with an index do better.
    async fn list_queued(&self) -> Result<Vec<Stored>, StoreError> {
        let mut open = self.list_open().await?;
        open.retain(|s| {
            matches!(
                s.conversation.state(),
                crate::conversation::State::Open { offer: None }
            )
        });
        Ok(open)
    }

    /// Open conversations waiting with no outstanding offer, as
    /// [`ConversationStore::list_queued`] lists them (paused ones too), in the order of their
    /// places in the queue ([`QueuePlace`]: when each last went to the queue, then its id),
    /// only those whose place is after `after` (`None`: from the first), at most `limit`.
    /// [`crate::engine::Engine::tick`] reads them so, a page at a time, each page after the
    /// last place of the one before ([`Queued::place`], the place the store ordered it by):
    /// a page of conversations nobody can be offered (paused,
    /// declined by every agent with room, in a closed queue) never hides those behind it.
    ///
    /// The default sorts [`ConversationStore::list_queued`]'s list (every waiting
    /// conversation, with its body, read again for each page); the SQL stores read one page
    /// of an index.
    async fn list_queued_after(
        &self,
        after: Option<&QueuePlace>,
        limit: usize,
    ) -> Result<Vec<Queued>, StoreError> {
        let mut queued: Vec<Queued> = self
            .list_queued()
            .await?
            .into_iter()
            .map(Queued::new)
            .filter(|q| after.is_none_or(|after| q.place > *after))
            .collect();
        queued.sort_by(|a, b| a.place.cmp(&b.place));
        queued.truncate(limit);
        Ok(queued)
    }

    /// Open conversations of `queue` waiting with no outstanding offer (`None`: those
    /// stored with no queue), oldest first, at most `limit`: a Pick queue's open work. The
    /// default filters [`ConversationStore::list_queued`]; stores with an index do better.
    async fn list_queue(
        &self,
        queue: Option<&QueueId>,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        let mut queued = self.list_queued().await?;
        queued.retain(|s| s.conversation.queue() == queue);
        queued.truncate(limit);
        Ok(queued)
    }

    /// How many conversations of `queue` (`None`: those stored with no queue) wait ahead of
    /// `place`: those [`ConversationStore::list_queue`] lists (open, with no outstanding
    /// offer, paused ones too) whose [`QueuePlace`] is before it. The conversation at `place`
    /// itself is not counted, so a conversation's place in its queue is
    /// `queued_ahead(its queue, QueuePlace::of(it)) + 1` (the "position in queue"
    /// automated message).
    ///
    /// The default counts [`ConversationStore::list_queue`]'s whole list (every waiting
    /// conversation of the queue, with its body); the SQL stores count an index.
    async fn queued_ahead(
        &self,
        queue: Option<&QueueId>,
        place: &QueuePlace,
    ) -> Result<usize, StoreError> {
        Ok(self
            .list_queue(queue, usize::MAX)
            .await?
            .iter()
            .filter(|s| QueuePlace::of(&s.conversation) < *place)
            .count())
    }

    /// Conversations with something due at or before `now` (offer deadline, auto-close).
    async fn due(&self, now: SystemTime) -> Result<Vec<ConversationId>, StoreError>;

    /// Effects neither delivered nor failed, oldest first, claimed or not (a read: it claims
    /// nothing).
    async fn pending(&self, limit: usize) -> Result<Vec<PendingEffect>, StoreError>;

    /// Claims up to `limit` effects that are due (next attempt at or before `now`) and not
    /// held (never claimed, released, or their claim lapsed by [`Lease::at`]), the longest due
    /// first, for `lease`. Each is returned with [`PendingEffect::interrupted`] set if it was
    /// held and never released.
    async fn claim_effects(
        &self,
        lease: &Lease,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<PendingEffect>, StoreError>;

    /// Extends `lease.owner`'s claims on these effects to `lease.until`; returns the keys it
    /// still held (the others were completed, released, or taken over after a lapse).
    async fn renew_claims(&self, lease: &Lease, keys: &[String])
    -> Result<Vec<String>, StoreError>;

    /// Lets go at once of every pending effect `owner` holds (an instance starting again takes
    /// back what it held before a crash); returns how many. They are then handed out as
    /// interrupted.
    async fn drop_claims(&self, owner: &str) -> Result<u64, StoreError>;

    /// Marks a pending effect delivered (whoever holds it: an echo can confirm a delivery).
    /// An effect already failed stays failed.
    async fn complete(&self, key: &str) -> Result<(), StoreError>;

    /// Marks effects delivered, as [`ConversationStore::complete`] does each. The delivery
    /// pass marks a batch's effects with it; the default calls `complete` for each (a failure
    /// part-way leaves the rest pending and claimed, which delivery tolerates).
    async fn complete_all(&self, keys: &[String]) -> Result<(), StoreError> {
        for key in keys {
            self.complete(key).await?;
        }
        Ok(())
    }

    /// Releases `owner`'s claim on a pending effect and schedules it again; returns the
    /// attempts so far, or `None` if `owner` did not hold it (nothing changed).
    async fn reschedule(
        &self,
        key: &str,
        owner: &str,
        retry: &Retry,
    ) -> Result<Option<u32>, StoreError>;

    /// Gives up on a pending effect `owner` holds: it is kept, failed, with the error; `lines`
    /// are appended to its conversation's transcript in the same transaction. `false` if
    /// `owner` did not hold it (nothing changed).
    async fn fail_effect(
        &self,
        key: &str,
        owner: &str,
        error: &str,
        lines: &[TranscriptLine],
    ) -> Result<bool, StoreError>;

    /// Counts of pending and failed effects, and the oldest pending one's time.
    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError>;

    /// Records received events, all or none, in one transaction; for each, in order, whether
    /// it is new (`false`: a duplicate). An event repeated within one call counts once.
    async fn receive(
        &self,
        events: &[NewInboxEvent],
        now: SystemTime,
        keep: Duration,
    ) -> Result<Vec<bool>, StoreError>;

    /// Records a verified webhook body as it came, in one insert, to be unpacked into the
    /// inbox later (by [`ConversationStore::unpack_webhook`]): what the webhook route answers
    /// 200 for. Durable when it returns `Ok`. Each body gets a place in the order of receipt
    /// ([`RecordedWebhook::seq`]) greater than every place given before, never given again
    /// (not even after the body is unpacked and forgotten).
    async fn record_webhook(&self, body: &[u8], now: SystemTime) -> Result<(), StoreError>;

    /// Recorded webhook bodies not unpacked yet whose place is after `after` (`0`: from the
    /// first), in order of receipt, at most `limit`.
    async fn webhooks(&self, after: u64, limit: usize) -> Result<Vec<RecordedWebhook>, StoreError>;

    /// Unpacks the recorded body `seq`: forgets it and records its events as
    /// [`ConversationStore::receive`] does, all or nothing, in one transaction; for each
    /// event, whether it is new. A body no longer there (another instance unpacked it, or is
    /// unpacking it and commits first) records nothing: every event is reported not new.
    async fn unpack_webhook(
        &self,
        seq: u64,
        events: &[NewInboxEvent],
        now: SystemTime,
        keep: Duration,
    ) -> Result<Vec<bool>, StoreError>;

    /// A thread's pending events, in order of receipt, at most `limit`.
    async fn inbox(&self, thread: &str, limit: usize) -> Result<Vec<InboxEvent>, StoreError>;

    /// Pending events of every thread from the place `from` in the order of receipt on
    /// ([`InboxEvent::seq`] at least `from`; `0`: from the first), in that order, at most
    /// `limit`: how the engine drains the inbox, a page at a time, grouping events by thread
    /// as it goes. The default merges
    /// [`ConversationStore::inbox_threads`] and [`ConversationStore::inbox`]; stores with an
    /// index of pending events in order of receipt do better.
    async fn inbox_pending(&self, from: u64, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        let everything = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX) * 64);
        let mut all = Vec::new();
        for thread in self.inbox_threads(everything, usize::MAX).await? {
            all.extend(
                self.inbox(&thread, usize::MAX)
                    .await?
                    .into_iter()
                    .filter(|e| e.seq >= from),
            );
        }
        all.sort_by_key(|e| e.seq);
        all.truncate(limit);
        Ok(all)
    }

    /// Threads with events received at or before `received_by` and still pending, the oldest
    /// first, at most `limit` (for the sweep that applies what a crash or a failure left).
    /// A thread with an event waiting to be tried again after `received_by` is left out.
    async fn inbox_threads(
        &self,
        received_by: SystemTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;

    /// Marks an event applied without a state change (it changed nothing); `false` if it was
    /// not pending.
    async fn inbox_done(&self, seq: u64) -> Result<bool, StoreError>;

    /// Records that applying a pending event failed: one more attempt, the error, and when to
    /// try again (until then `inbox_threads` leaves its thread out). Returns the attempts so
    /// far (0 if it was not pending).
    async fn inbox_failed(
        &self,
        seq: u64,
        error: &str,
        retry_at: SystemTime,
    ) -> Result<u32, StoreError>;

    /// Gives up on a pending event that cannot be applied: it is kept, with the error, for
    /// the administrator, and no longer blocks its thread. `false` if it was not pending.
    async fn inbox_dead(&self, seq: u64, error: &str) -> Result<bool, StoreError>;

    /// Forgets applied events received before `received_before` (their keys then no longer
    /// mark redeliveries); returns how many.
    async fn purge_inbox(&self, received_before: SystemTime) -> Result<u64, StoreError>;
}

/// Inbound files' bytes, under stable keys.
///
/// Contract: `put` returns a key that `get` resolves to the same bytes and type, for as long as
/// the host keeps the store or until `delete`; storing the same bytes twice for one
/// conversation may return the same key, but a key is never shared by two conversations
/// (deleting one conversation's file must leave every other conversation's files).
#[async_trait::async_trait]
pub trait MediaStore: Send + Sync {
    /// Stores a file kept for `conversation` (a customer's download or an agent's upload);
    /// returns its key.
    async fn put(
        &self,
        conversation: &ConversationId,
        bytes: Bytes,
        content_type: Option<&str>,
    ) -> Result<String, StoreError>;

    /// A stored file and its type.
    async fn get(&self, key: &str) -> Result<Option<(Bytes, Option<String>)>, StoreError>;

    /// Deletes a file's bytes: the engine calls it when the customer removes a message whose
    /// file it kept and removals are forgotten
    /// ([`crate::conversation::ConversationConfig::keep_unsent`] off), once no line of the
    /// conversation refers to the key any more. Returns whether there was a file. Keys are per
    /// conversation, so the same bytes kept for another conversation stay (files kept
    /// before keys were per conversation, under the bytes' digest alone, may be shared, and
    /// the engine never deletes them).
    /// The default keeps the bytes and returns `false` (a store that cannot delete);
    /// the built-in stores delete.
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let _ = key;
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_obj_safe!(ConversationStore, MediaStore);
}

/// A sent message: its effect's key, the platform's id for it, and when the platform took it
/// ([`ConversationStore::complete_sent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SentMessage {
    /// The effect's key ([`PendingEffect::key`]; an echo carries it in its metadata).
    pub key: String,
    /// The platform's id for the message.
    pub mid: String,
    /// When the platform took it: the time the delivery that got `mid` had its answer, or
    /// the echo's timestamp. Its line's [`TranscriptLine::sent_at`], which receipts are
    /// compared with.
    pub at: SystemTime,
    /// Whether `at` is the platform's own time (an echo's timestamp). It then replaces the
    /// time a delivery recorded for the same `mid`: read receipts carry the platform's
    /// clock.
    pub echoed: bool,
}

impl SentMessage {
    /// The message of effect `key`, sent as `mid` at `at` by this instance's clock (the
    /// delivery that got the id).
    pub fn new(key: impl Into<String>, mid: impl Into<String>, at: SystemTime) -> Self {
        Self {
            key: key.into(),
            mid: mid.into(),
            at,
            echoed: false,
        }
    }

    /// The message of effect `key`, sent as `mid` at `at` by the platform's clock (its echo).
    pub fn echoed(key: impl Into<String>, mid: impl Into<String>, at: SystemTime) -> Self {
        Self {
            echoed: true,
            ..Self::new(key, mid, at)
        }
    }
}

impl Commit {
    /// Which of the commit's transcript lines each agent message among its effects is written
    /// as: `(line index, effect index)` pairs, in effect order. An agent's message
    /// ([`Effect::Send`] with an agent) is the first line not yet paired that is written by
    /// that agent, has no id, and reads as the message ([`Outgoing::line_body`]); a message
    /// with no such line (a reaction, written once it is sent) is left out.
    ///
    /// A store keeps each pair (the line with its effect's key) for
    /// [`ConversationStore::complete_sent`].
    ///
    /// [`Outgoing::line_body`]: crate::conversation::Outgoing::line_body
    #[must_use]
    pub fn sent_lines(&self) -> Vec<(usize, usize)> {
        let mut paired = vec![false; self.transcript.len()];
        let mut pairs = Vec::new();
        for (e, effect) in self.effects.iter().enumerate() {
            let Effect::Send {
                agent: Some(agent),
                message,
            } = effect
            else {
                continue;
            };
            let author = Author::Agent(agent.clone());
            let body = message.line_body();
            let found = self.transcript.iter().enumerate().position(|(l, line)| {
                !paired[l] && line.mid.is_none() && line.author == author && line.body == body
            });
            if let Some(l) = found {
                paired[l] = true;
                pairs.push((l, e));
            }
        }
        pairs
    }
}
