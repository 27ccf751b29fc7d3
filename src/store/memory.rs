//! In-memory implementations: for tests, demos, and single-process hosts that accept losing
//! state on restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::{
    Commit, ConversationStore, InboxEvent, Lease, MediaStore, NewInboxEvent, OutboxStats,
    PendingEffect, QueuePlace, Queued, RecordedWebhook, Retry, StoreError, Stored,
};
use crate::conversation::{Conversation, FileLine, LineBody, MediaState, State, TranscriptLine};
use crate::ids::{AgentId, ConversationId, PageId, QueueId, UserId};
use crate::profile::{CustomerProfile, ProfileStore};

/// Whether the line is a file at `url` still being fetched.
fn pending_file(line: &TranscriptLine, url: &str) -> bool {
    matches!(&line.body, LineBody::File(f) if f.url.as_deref() == Some(url) && f.media == MediaState::Pending)
}

/// Whether the conversation waits in its queue with no outstanding offer (as
/// [`ConversationStore::list_queued`] lists them).
fn waiting(c: &Conversation) -> bool {
    matches!(c.state(), State::Open { offer: None })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Default)]
struct StoreInner {
    conversations: HashMap<ConversationId, Entry>,
    /// page → customer → the open conversation.
    open: HashMap<String, HashMap<String, ConversationId>>,
    /// Effects neither delivered nor failed, by sequence number.
    outbox: BTreeMap<u64, OutboxRow>,
    outbox_keys: HashMap<String, u64>,
    /// Effects given up on, with the error.
    outbox_failed: Vec<PendingEffect>,
    next_effect: u64,
    /// Pending inbox events by sequence number.
    inbox: BTreeMap<u64, InboxEvent>,
    /// Events received, by thread and key: when, and whether the event was applied.
    inbox_keys: HashMap<(String, String), InboxKey>,
    /// Failed attempts at pending events, and when to try again.
    inbox_retry: HashMap<u64, (u32, SystemTime)>,
    /// Events given up on, with the error.
    inbox_dead: Vec<(InboxEvent, String)>,
    next_inbox: u64,
    /// Recorded webhook bodies not unpacked yet, by sequence number.
    webhooks: BTreeMap<u64, RecordedWebhook>,
    next_webhook: u64,
    /// The line each agent message was committed as, by its effect's key: the conversation
    /// and the line's place in its transcript ([`Commit::sent_lines`]). Kept as long as the
    /// transcript it points into (an echo may come long after the delivery, and its time
    /// replaces the delivery's), like SQL stores' `effect_key` column.
    sent_lines: HashMap<String, (ConversationId, usize)>,
}

impl StoreInner {
    /// Records received events; for each, whether it is new.
    fn receive(&mut self, events: &[NewInboxEvent], now: SystemTime, keep: Duration) -> Vec<bool> {
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            let id = (e.thread.clone(), e.key.clone());
            let seen = self
                .inbox_keys
                .get(&id)
                .is_some_and(|k| k.remembered(now, keep));
            if seen {
                out.push(false);
                continue;
            }
            let seq = self.next_inbox;
            self.next_inbox += 1;
            self.inbox.insert(
                seq,
                InboxEvent {
                    seq,
                    key: e.key.clone(),
                    thread: e.thread.clone(),
                    body: e.body.clone(),
                    attempts: 0,
                    retry_at: None,
                },
            );
            self.inbox_keys.insert(
                id,
                InboxKey {
                    received: now,
                    applied: false,
                },
            );
            out.push(true);
        }
        out
    }

    /// An inbox event as read: with its failed attempts and when it is tried again.
    fn with_retry(&self, e: &InboxEvent) -> InboxEvent {
        let retry = self.inbox_retry.get(&e.seq);
        InboxEvent {
            attempts: retry.map_or(0, |(n, _)| *n),
            retry_at: retry.map(|(_, at)| *at),
            ..e.clone()
        }
    }
}

struct OutboxRow {
    effect: PendingEffect,
    holder: Option<(String, SystemTime)>,
    next: SystemTime,
}

impl OutboxRow {
    fn held_by(&self, owner: &str) -> bool {
        self.holder.as_ref().is_some_and(|(o, _)| o == owner)
    }
}

struct InboxKey {
    received: SystemTime,
    applied: bool,
}

impl InboxKey {
    /// Whether a redelivery of this key is still a duplicate at `now`.
    fn remembered(&self, now: SystemTime, keep: Duration) -> bool {
        !self.applied || crate::time::saturating_add(self.received, keep) > now
    }
}

impl StoreInner {
    fn mark_applied(&mut self, seq: u64) -> bool {
        let Some(event) = self.inbox.remove(&seq) else {
            return false;
        };
        self.inbox_retry.remove(&seq);
        if let Some(k) = self
            .inbox_keys
            .get_mut(&(event.thread.clone(), event.key.clone()))
        {
            k.applied = true;
        }
        true
    }
}

struct Entry {
    conversation: Conversation,
    version: u64,
    deadline: Option<SystemTime>,
    transcript: Vec<TranscriptLine>,
}

/// A [`ConversationStore`] in memory, with the same semantics as the durable ones.
#[derive(Default)]
pub struct InMemoryStore {
    inner: Mutex<StoreInner>,
    /// Customers' profiles ([`ProfileStore`]), by page and customer.
    profiles: Mutex<HashMap<(String, String), CustomerProfile>>,
}

impl std::fmt::Debug for InMemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = lock(&self.inner);
        f.debug_struct("InMemoryStore")
            .field("conversations", &inner.conversations.len())
            .field("pending_effects", &inner.outbox.len())
            .field("pending_events", &inner.inbox.len())
            .field("profiles", &lock(&self.profiles).len())
            .finish()
    }
}

impl InMemoryStore {
    /// The conversations `keep` keeps, oldest first (ties by id, as the SQL stores order them).
    fn listed(&self, keep: impl Fn(&Conversation) -> bool) -> Vec<Stored> {
        let inner = lock(&self.inner);
        let mut out: Vec<Stored> = inner
            .conversations
            .values()
            .filter(|e| keep(&e.conversation))
            .map(|e| Stored {
                conversation: e.conversation.clone(),
                version: e.version,
            })
            .collect();
        out.sort_by(|a, b| {
            (a.conversation.created_at(), a.conversation.id())
                .cmp(&(b.conversation.created_at(), b.conversation.id()))
        });
        out
    }

    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl ConversationStore for InMemoryStore {
    async fn find_open(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<Stored>, StoreError> {
        let inner = lock(&self.inner);
        let id = inner
            .open
            .get(page.as_str())
            .and_then(|m| m.get(customer.as_str()));
        Ok(id
            .and_then(|id| inner.conversations.get(id))
            .map(|e| Stored {
                conversation: e.conversation.clone(),
                version: e.version,
            }))
    }

    async fn history(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        let inner = lock(&self.inner);
        let mut all: Vec<Stored> = inner
            .conversations
            .values()
            .filter(|e| {
                e.conversation.page().as_str() == page.as_str()
                    && e.conversation.customer().as_str() == customer.as_str()
            })
            .map(|e| Stored {
                conversation: e.conversation.clone(),
                version: e.version,
            })
            .collect();
        all.sort_by(|a, b| {
            (b.conversation.created_at(), b.conversation.id().as_str())
                .cmp(&(a.conversation.created_at(), a.conversation.id().as_str()))
        });
        all.truncate(limit);
        Ok(all)
    }

    async fn find_latest(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<Stored>, StoreError> {
        Ok(self.history(page, customer, 1).await?.pop())
    }

    async fn load(&self, id: &ConversationId) -> Result<Option<Stored>, StoreError> {
        let inner = lock(&self.inner);
        Ok(inner.conversations.get(id).map(|e| Stored {
            conversation: e.conversation.clone(),
            version: e.version,
        }))
    }

    async fn commit(&self, commit: &Commit) -> Result<(u64, Vec<PendingEffect>), StoreError> {
        let mut inner = lock(&self.inner);
        let inner = &mut *inner;
        let c = &commit.conversation;
        let page = c.page().as_str().to_owned();
        let customer = c.customer().as_str().to_owned();
        if let Some(seq) = commit.applies {
            if !inner.inbox.contains_key(&seq) {
                return Err(StoreError::Conflict);
            }
        }
        let version = match commit.expected_version {
            None => {
                if inner.conversations.contains_key(c.id())
                    || inner
                        .open
                        .get(&page)
                        .is_some_and(|m| m.contains_key(&customer))
                {
                    return Err(StoreError::Conflict);
                }
                1
            }
            Some(expected) => match inner.conversations.get(c.id()) {
                Some(e) if e.version == expected => expected + 1,
                Some(_) => return Err(StoreError::Conflict),
                None => return Err(StoreError::NotFound(c.id().clone())),
            },
        };
        // The open index: at most one open conversation per (page, customer).
        if c.is_closed() {
            if let Some(m) = inner.open.get_mut(&page) {
                if m.get(&customer) == Some(c.id()) {
                    m.remove(&customer);
                }
            }
        } else {
            inner
                .open
                .entry(page)
                .or_default()
                .insert(customer, c.id().clone());
        }
        let id = c.id().clone();
        let entry = inner
            .conversations
            .entry(id.clone())
            .or_insert_with(|| Entry {
                conversation: c.clone(),
                version: 0,
                deadline: None,
                transcript: Vec::new(),
            });
        entry.conversation = c.clone();
        entry.version = version;
        entry.deadline = commit.deadline;
        let first = entry.transcript.len();
        entry.transcript.extend_from_slice(&commit.transcript);
        for (line, effect) in commit.sent_lines() {
            inner.sent_lines.insert(
                format!("{id}:{version}:{effect}"),
                (id.clone(), first + line),
            );
        }
        if let Some(seq) = commit.applies {
            inner.mark_applied(seq);
        }
        let mut pending = Vec::with_capacity(commit.effects.len());
        let holder = commit.claim.as_ref().map(|l| (l.owner.clone(), l.until));
        for (i, effect) in commit.effects.iter().enumerate() {
            let p = PendingEffect {
                key: format!("{id}:{version}:{i}"),
                conversation: id.clone(),
                effect: effect.clone(),
                created_at: commit.at,
                attempts: 0,
                interrupted: false,
                unconfirmed: false,
                last_error: None,
            };
            let seq = inner.next_effect;
            inner.next_effect += 1;
            inner.outbox_keys.insert(p.key.clone(), seq);
            inner.outbox.insert(
                seq,
                OutboxRow {
                    effect: p.clone(),
                    holder: holder.clone(),
                    next: commit.at,
                },
            );
            pending.push(p);
        }
        Ok((version, pending))
    }

    async fn append(
        &self,
        id: &ConversationId,
        lines: Vec<TranscriptLine>,
    ) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        let entry = inner
            .conversations
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        entry.transcript.extend(lines);
        Ok(())
    }

    async fn transcript(&self, id: &ConversationId) -> Result<Vec<TranscriptLine>, StoreError> {
        let inner = lock(&self.inner);
        let entry = inner
            .conversations
            .get(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        let mut lines = entry.transcript.clone();
        // By time; a stable sort keeps the order of appends among lines of one time.
        lines.sort_by_key(|l| l.at);
        Ok(lines)
    }

    async fn update_file(
        &self,
        id: &ConversationId,
        url: &str,
        file: &FileLine,
    ) -> Result<Vec<TranscriptLine>, StoreError> {
        let mut inner = lock(&self.inner);
        let entry = inner
            .conversations
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        Ok(entry
            .transcript
            .iter_mut()
            .filter(|l| pending_file(l, url))
            .map(|l| {
                l.body = LineBody::File(file.clone());
                l.clone()
            })
            .collect())
    }

    async fn forget_message(
        &self,
        id: &ConversationId,
        mid: &str,
    ) -> Result<Vec<TranscriptLine>, StoreError> {
        let mut inner = lock(&self.inner);
        let entry = inner
            .conversations
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        Ok(entry
            .transcript
            .iter_mut()
            .filter_map(|l| {
                let forgotten = l.forgotten_by(mid)?;
                *l = forgotten.clone();
                Some(forgotten)
            })
            .collect())
    }

    async fn complete_sent(&self, sent: &[super::SentMessage]) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        for message in sent {
            if let Some(seq) = inner.outbox_keys.remove(&message.key) {
                inner.outbox.remove(&seq);
            }
            let Some((id, at)) = inner.sent_lines.get(&message.key).cloned() else {
                continue;
            };
            if let Some(line) = inner
                .conversations
                .get_mut(&id)
                .and_then(|e| e.transcript.get_mut(at))
            {
                match &line.mid {
                    None => {
                        line.mid = Some(message.mid.clone());
                        line.sent_at = Some(message.at);
                    }
                    Some(mid) if message.echoed && *mid == message.mid => {
                        line.sent_at = Some(message.at);
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }

    async fn list_for_agent(&self, agent: &AgentId) -> Result<Vec<Stored>, StoreError> {
        Ok(self.listed(|c| match c.state() {
            State::Active { agent: a }
            | State::WrapUp { agent: a }
            | State::Waiting { agent: a } => a == agent,
            State::Open { offer: Some(o) } => o.agent == *agent,
            _ => false,
        }))
    }

    async fn list_open(&self) -> Result<Vec<Stored>, StoreError> {
        Ok(self.listed(|c| !c.is_closed()))
    }

    async fn list_queued_after(
        &self,
        after: Option<&QueuePlace>,
        limit: usize,
    ) -> Result<Vec<Queued>, StoreError> {
        let inner = lock(&self.inner);
        let mut page: Vec<&Entry> = inner
            .conversations
            .values()
            .filter(|e| {
                let c = &e.conversation;
                waiting(c) && after.is_none_or(|a| (c.queued_since(), c.id()) > (a.since, &a.id))
            })
            .collect();
        page.sort_by(|a, b| {
            let (a, b) = (&a.conversation, &b.conversation);
            (a.queued_since(), a.id()).cmp(&(b.queued_since(), b.id()))
        });
        Ok(page
            .into_iter()
            .take(limit)
            .map(|e| {
                Queued::new(Stored {
                    conversation: e.conversation.clone(),
                    version: e.version,
                })
            })
            .collect())
    }

    async fn queued_ahead(
        &self,
        queue: Option<&QueueId>,
        place: &QueuePlace,
    ) -> Result<usize, StoreError> {
        let inner = lock(&self.inner);
        Ok(inner
            .conversations
            .values()
            .map(|e| &e.conversation)
            .filter(|c| {
                waiting(c)
                    && c.queue() == queue
                    && (c.queued_since(), c.id()) < (place.since, &place.id)
            })
            .count())
    }

    async fn due(&self, now: SystemTime) -> Result<Vec<ConversationId>, StoreError> {
        let inner = lock(&self.inner);
        Ok(inner
            .conversations
            .iter()
            .filter(|(_, e)| e.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn pending(&self, limit: usize) -> Result<Vec<PendingEffect>, StoreError> {
        let inner = lock(&self.inner);
        Ok(inner
            .outbox
            .values()
            .take(limit)
            .map(|row| row.effect.clone())
            .collect())
    }

    async fn claim_effects(
        &self,
        lease: &Lease,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<PendingEffect>, StoreError> {
        let mut inner = lock(&self.inner);
        let mut due: Vec<(SystemTime, u64)> = inner
            .outbox
            .iter()
            .filter(|(_, row)| {
                row.next <= now
                    && row
                        .holder
                        .as_ref()
                        .is_none_or(|(_, until)| *until <= lease.at)
            })
            .map(|(seq, row)| (row.next, *seq))
            .collect();
        due.sort_unstable();
        due.truncate(limit);
        let mut seqs: Vec<u64> = due.into_iter().map(|(_, seq)| seq).collect();
        seqs.sort_unstable();
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(row) = inner.outbox.get_mut(&seq) {
                row.effect.interrupted = row.holder.is_some();
                row.holder = Some((lease.owner.clone(), lease.until));
                out.push(row.effect.clone());
            }
        }
        Ok(out)
    }

    async fn renew_claims(
        &self,
        lease: &Lease,
        keys: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let mut inner = lock(&self.inner);
        let mut held = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(seq) = inner.outbox_keys.get(key).copied() else {
                continue;
            };
            if let Some(row) = inner.outbox.get_mut(&seq) {
                let live = matches!(&row.holder, Some((o, until)) if *o == lease.owner && *until > lease.at);
                if live {
                    row.holder = Some((lease.owner.clone(), lease.until));
                    held.push(key.clone());
                }
            }
        }
        Ok(held)
    }

    async fn drop_claims(&self, owner: &str) -> Result<u64, StoreError> {
        let mut inner = lock(&self.inner);
        let mut dropped = 0;
        for row in inner.outbox.values_mut() {
            if let Some((o, until)) = &mut row.holder {
                if o == owner {
                    *until = SystemTime::UNIX_EPOCH;
                    dropped += 1;
                }
            }
        }
        Ok(dropped)
    }

    async fn complete(&self, key: &str) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        if let Some(seq) = inner.outbox_keys.remove(key) {
            inner.outbox.remove(&seq);
        }
        Ok(())
    }

    async fn reschedule(
        &self,
        key: &str,
        owner: &str,
        retry: &Retry,
    ) -> Result<Option<u32>, StoreError> {
        let mut inner = lock(&self.inner);
        let Some(seq) = inner.outbox_keys.get(key).copied() else {
            return Ok(None);
        };
        let Some(row) = inner.outbox.get_mut(&seq).filter(|r| r.held_by(owner)) else {
            return Ok(None);
        };
        if retry.counts {
            row.effect.attempts = row.effect.attempts.saturating_add(1);
        }
        row.effect.unconfirmed = retry.unconfirmed;
        row.effect.interrupted = false;
        row.holder = None;
        row.next = retry.at;
        row.effect.last_error = Some(retry.error.clone());
        Ok(Some(row.effect.attempts))
    }

    async fn fail_effect(
        &self,
        key: &str,
        owner: &str,
        error: &str,
        lines: &[TranscriptLine],
    ) -> Result<bool, StoreError> {
        let mut inner = lock(&self.inner);
        let Some(seq) = inner.outbox_keys.get(key).copied() else {
            return Ok(false);
        };
        if !inner.outbox.get(&seq).is_some_and(|r| r.held_by(owner)) {
            return Ok(false);
        }
        let Some(row) = inner.outbox.remove(&seq) else {
            return Ok(false);
        };
        inner.outbox_keys.remove(key);
        if let Some(entry) = inner.conversations.get_mut(&row.effect.conversation) {
            entry.transcript.extend_from_slice(lines);
        }
        let mut effect = row.effect;
        effect.last_error = Some(error.to_owned());
        inner.outbox_failed.push(effect);
        Ok(true)
    }

    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let inner = lock(&self.inner);
        Ok(OutboxStats {
            pending: inner.outbox.len() as u64,
            failed: inner.outbox_failed.len() as u64,
            oldest_pending: inner.outbox.values().map(|r| r.effect.created_at).min(),
        })
    }

    async fn receive(
        &self,
        events: &[NewInboxEvent],
        now: SystemTime,
        keep: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        Ok(lock(&self.inner).receive(events, now, keep))
    }

    async fn record_webhook(&self, body: &[u8], now: SystemTime) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        inner.next_webhook += 1;
        let seq = inner.next_webhook;
        inner.webhooks.insert(
            seq,
            RecordedWebhook::new(seq, Bytes::copy_from_slice(body), now),
        );
        Ok(())
    }

    async fn webhooks(&self, after: u64, limit: usize) -> Result<Vec<RecordedWebhook>, StoreError> {
        Ok(lock(&self.inner)
            .webhooks
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(_, w)| w.clone())
            .collect())
    }

    async fn unpack_webhook(
        &self,
        seq: u64,
        events: &[NewInboxEvent],
        now: SystemTime,
        keep: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        let mut inner = lock(&self.inner);
        if inner.webhooks.remove(&seq).is_none() {
            return Ok(vec![false; events.len()]);
        }
        Ok(inner.receive(events, now, keep))
    }

    async fn inbox(&self, thread: &str, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        let inner = lock(&self.inner);
        Ok(inner
            .inbox
            .values()
            .filter(|e| e.thread == thread)
            .take(limit)
            .map(|e| inner.with_retry(e))
            .collect())
    }

    async fn inbox_pending(&self, from: u64, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        let inner = lock(&self.inner);
        Ok(inner
            .inbox
            .range(from..)
            .take(limit)
            .map(|(_, e)| inner.with_retry(e))
            .collect())
    }

    async fn inbox_threads(
        &self,
        received_by: SystemTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let inner = lock(&self.inner);
        // Threads with an event waiting to be tried again after `received_by`.
        let backing_off: std::collections::HashSet<&str> = inner
            .inbox
            .values()
            .filter(|e| {
                inner
                    .inbox_retry
                    .get(&e.seq)
                    .is_some_and(|(_, at)| *at > received_by)
            })
            .map(|e| e.thread.as_str())
            .collect();
        let mut threads: Vec<String> = Vec::new();
        for e in inner.inbox.values() {
            if threads.len() >= limit {
                break;
            }
            let received = inner
                .inbox_keys
                .get(&(e.thread.clone(), e.key.clone()))
                .map(|k| k.received);
            if received.is_some_and(|r| r <= received_by)
                && !backing_off.contains(e.thread.as_str())
                && !threads.contains(&e.thread)
            {
                threads.push(e.thread.clone());
            }
        }
        Ok(threads)
    }

    async fn inbox_failed(
        &self,
        seq: u64,
        _error: &str,
        retry_at: SystemTime,
    ) -> Result<u32, StoreError> {
        let mut inner = lock(&self.inner);
        if !inner.inbox.contains_key(&seq) {
            return Ok(0);
        }
        let entry = inner.inbox_retry.entry(seq).or_insert((0, retry_at));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = retry_at;
        Ok(entry.0)
    }

    async fn inbox_dead(&self, seq: u64, error: &str) -> Result<bool, StoreError> {
        let mut inner = lock(&self.inner);
        let Some(event) = inner.inbox.remove(&seq) else {
            return Ok(false);
        };
        inner.inbox_retry.remove(&seq);
        inner.inbox_dead.push((event, error.to_owned()));
        Ok(true)
    }

    async fn purge_inbox(&self, received_before: SystemTime) -> Result<u64, StoreError> {
        let mut inner = lock(&self.inner);
        let before = inner.inbox_keys.len();
        inner
            .inbox_keys
            .retain(|_, k| !(k.applied && k.received < received_before));
        Ok((before - inner.inbox_keys.len()) as u64)
    }

    async fn inbox_done(&self, seq: u64) -> Result<bool, StoreError> {
        Ok(lock(&self.inner).mark_applied(seq))
    }
}

/// A [`MediaStore`] in memory, content-addressed (the key is the SHA-256 of the bytes).
#[derive(Default)]
pub struct InMemoryMediaStore {
    files: Mutex<HashMap<String, (Bytes, Option<String>)>>,
}

impl std::fmt::Debug for InMemoryMediaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryMediaStore")
            .field("files", &lock(&self.files).len())
            .finish()
    }
}

impl InMemoryMediaStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl MediaStore for InMemoryMediaStore {
    async fn put(
        &self,
        conversation: &ConversationId,
        bytes: Bytes,
        content_type: Option<&str>,
    ) -> Result<String, StoreError> {
        let key = super::media_key(conversation, &bytes);
        lock(&self.files)
            .entry(key.clone())
            .or_insert((bytes, content_type.map(str::to_owned)));
        Ok(key)
    }

    async fn get(&self, key: &str) -> Result<Option<(Bytes, Option<String>)>, StoreError> {
        Ok(lock(&self.files).get(key).cloned())
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.files).remove(key).is_some())
    }
}

#[async_trait::async_trait]
impl ProfileStore for InMemoryStore {
    async fn profile(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<CustomerProfile>, StoreError> {
        let key = (page.as_str().to_owned(), customer.as_str().to_owned());
        Ok(lock(&self.profiles).get(&key).cloned())
    }

    async fn save_profile(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
        profile: &CustomerProfile,
    ) -> Result<(), StoreError> {
        let key = (page.as_str().to_owned(), customer.as_str().to_owned());
        let mut profiles = lock(&self.profiles);
        match profiles.get(&key) {
            Some(kept) if kept.fetched_at > profile.fetched_at => {}
            _ => {
                profiles.insert(key, profile.clone());
            }
        }
        Ok(())
    }
}
