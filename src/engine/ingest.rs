//! Ingest: verified webhooks into the durable inbox (the acknowledgement), then applied to
//! conversations one thread at a time, in order of receipt.
//!
//! **Why an inbox.** A webhook is acknowledged (200) once its events are durably recorded, and
//! only then; recording is one multi-row insert in one transaction per body, whatever the
//! number of events, so it is cheap, and [`Engine::receive`] waits for no download, send, or
//! other conversation's work (applying comes after, in [`Engine::apply_threads`]). The unique key of each inbox row is the record of what was seen, so
//! dedup is written in the same transaction as the event it guards ("seen iff saved"). A
//! thread's events are then applied one after another, in order of receipt: in one process
//! by a per-thread claim (a burst of bodies for one customer never contends with itself);
//! across instances by the optimistic version check and the commit that marks the event
//! applied only if it still was pending (an event is applied exactly once). Events a crash or
//! a failure leaves pending are applied by [`Engine::tick`]'s sweep.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use super::{Engine, EngineError, conversation_id};
use crate::attachment::{AttachmentInfo, Direction, UNSUPPORTED_INBOUND_NOTICE, Violation};
use crate::conversation::{
    Author, Conversation, FileLine, Inbound, Input, LineBody, MediaState, TranscriptLine,
};
use crate::ids::{PageId, UserId};
use crate::send::SendError;
use crate::store::{InboxEvent, NewInboxEvent, StoreError};
use crate::webhook::{Batch, Event, EventKind};

/// How long after its receipt a pending event is left to the instance that received it
/// before [`Engine::tick`]'s sweep applies it (that instance applies it at once unless it
/// failed or died).
pub const INBOX_SWEEP_AFTER: Duration = Duration::from_secs(2);

/// How many pending events of a thread are read at a time.
const INBOX_PAGE: usize = 64;

/// How many times applying an event that fails on its own (it cannot be read, or the state
/// machine refuses it) is tried before it is set aside (about 27 minutes of backoff in all),
/// so that it does not block its thread for ever. Store failures are tried again for as long
/// as they last, with the same backoff.
pub(super) const MAX_APPLY_ATTEMPTS: u32 = 12;

/// The wait after `attempts` earlier failures: 1 s doubling, at most 10 minutes.
fn apply_backoff(attempts: u32) -> Duration {
    let secs = 2_u64.saturating_pow(attempts.min(20)).min(600);
    Duration::from_secs(secs)
}

/// What [`Engine::receive`] recorded. When it returns `Ok`, every event of the body that the
/// channel acts on is durably in the inbox: answer 200.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Receipt {
    /// New events recorded in the inbox.
    pub received: usize,
    /// Events recorded before (redeliveries).
    pub duplicates: usize,
    /// Events the channel does not act on (deliveries, reads, reactions…).
    pub ignored: usize,
    /// Echoes of this channel's own sends, which marked their effects delivered.
    pub echoes: usize,
    /// Items that could not be read.
    pub malformed: usize,
    /// The threads with new events, to apply next ([`Engine::apply_threads`]).
    pub threads: Vec<String>,
}

/// What applying inbox events did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ApplyReport {
    /// Events applied to a conversation.
    pub handled: usize,
    /// Events that changed nothing (thread control for a conversation already closed).
    pub ignored: usize,
    /// Threads whose next event could not be applied, with the error. The event stays in the
    /// inbox, and the thread's later events wait behind it; the sweep tries again.
    pub failed: Vec<(String, EngineError)>,
}

impl ApplyReport {
    fn merge(&mut self, other: ApplyReport) {
        self.handled += other.handled;
        self.ignored += other.ignored;
        self.failed.extend(other.failed);
    }
}

/// An event as the inbox keeps it: what applying it needs, owned and versioned by serde.
#[derive(Debug, Serialize, Deserialize)]
struct Queued {
    page: String,
    customer: String,
    /// The event's timestamp, in milliseconds since the epoch.
    sent_ms: u64,
    #[serde(default)]
    standby: bool,
    #[serde(flatten)]
    kind: QueuedKind,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum QueuedKind {
    Message {
        mid: String,
        text: Option<String>,
        #[serde(default)]
        files: Vec<QueuedFile>,
    },
    Postback {
        mid: Option<String>,
        title: Option<String>,
        payload: Option<String>,
    },
    ThreadTaken,
    ThreadReturned,
}

#[derive(Debug, Serialize, Deserialize)]
struct QueuedFile {
    kind: String,
    name: Option<String>,
    url: Option<String>,
}

/// The thread key of a page and customer (unambiguous whatever the ids hold).
fn thread_key(page: &str, customer: &str) -> String {
    format!("{}:{page}:{customer}", page.len())
}

/// A customer's message as the state machine takes it, with its time and channel.
fn customer_message(inbound: Inbound, sent_ms: u64, standby: bool) -> Input {
    let sent = crate::time::from_millis(i64::try_from(sent_ms).unwrap_or(i64::MAX));
    Input::CustomerMessage(inbound.sent_at(sent).on_standby(standby))
}

/// The page and customer of a thread key.
fn split_thread(thread: &str) -> Option<(&str, &str)> {
    let (len, rest) = thread.split_once(':')?;
    let len: usize = len.parse().ok()?;
    let page = rest.get(..len)?;
    let customer = rest.get(len..)?.strip_prefix(':')?;
    Some((page, customer))
}

/// What an event becomes in the inbox, if the channel acts on it.
fn queued(event: &Event<'_>) -> Option<Queued> {
    let customer = event.sender.as_ref()?.as_str().to_owned();
    let kind = match &event.kind {
        EventKind::Message(m) => QueuedKind::Message {
            mid: m.mid.as_str().to_owned(),
            text: m.text.map(|t| t.decode().into_owned()),
            files: m
                .attachments
                .iter()
                .map(|a| {
                    let info = AttachmentInfo::from(a);
                    QueuedFile {
                        kind: info.platform_kind.unwrap_or("file").to_owned(),
                        name: info.name.map(str::to_owned),
                        url: a.url.map(|u| u.decode().into_owned()),
                    }
                })
                .collect(),
        },
        EventKind::Postback(p) => QueuedKind::Postback {
            mid: p.mid.as_ref().map(|m| m.as_str().to_owned()),
            title: p.title.map(|t| t.decode().into_owned()),
            payload: p.payload.map(|t| t.decode().into_owned()),
        },
        EventKind::TakeThreadControl(_) => QueuedKind::ThreadTaken,
        EventKind::PassThreadControl(_) => QueuedKind::ThreadReturned,
        _ => return None,
    };
    Some(Queued {
        page: event.page_id.as_str().to_owned(),
        customer,
        sent_ms: event.timestamp,
        standby: event.standby,
        kind,
    })
}

/// How long a thread stays claimed by work in this process before other work may take it
/// over (the first work is hung: a store or a host callback that never answers). Taking over
/// is safe: an event is applied only by the commit that marks it applied.
pub(super) const CLAIM_LEASE: Duration = Duration::from_secs(60);

/// Threads being applied in this process.
#[derive(Debug, Default)]
pub(super) struct Claims {
    held: Mutex<HashMap<String, Held>>,
    next: AtomicU64,
}

#[derive(Debug)]
struct Held {
    generation: u64,
    since: SystemTime,
    /// More events arrived for the thread since its holder last looked.
    dirty: bool,
}

impl Claims {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims `thread`; `None` (and the holder told to look again) when it is held, unless
    /// the holder has held it for more than [`CLAIM_LEASE`].
    fn claim<'a>(&'a self, thread: &str, now: SystemTime) -> Option<Claim<'a>> {
        let mut map = self.lock();
        if let Some(held) = map.get_mut(thread) {
            if now < crate::time::saturating_add(held.since, CLAIM_LEASE) {
                held.dirty = true;
                return None;
            }
            tracing::warn!(
                thread,
                "taking over a thread whose work has not finished in time"
            );
        }
        let generation = self.next.fetch_add(1, Ordering::Relaxed);
        map.insert(
            thread.to_owned(),
            Held {
                generation,
                since: now,
                dirty: false,
            },
        );
        Some(Claim {
            claims: self,
            thread: thread.to_owned(),
            generation,
            released: false,
        })
    }
}

/// A held thread; dropped (also on cancellation or panic), it is released.
struct Claim<'a> {
    claims: &'a Claims,
    thread: String,
    generation: u64,
    released: bool,
}

impl Claim<'_> {
    /// Releases the thread unless events arrived since the last look (then the holder looks
    /// again), in one step, so that no arrival is missed. `true` when released (or taken over
    /// by other work).
    fn release_unless_more(&mut self) -> bool {
        let mut map = self.claims.lock();
        match map.get_mut(&self.thread) {
            Some(held) if held.generation == self.generation => {
                if std::mem::replace(&mut held.dirty, false) {
                    return false;
                }
                map.remove(&self.thread);
            }
            _ => {}
        }
        self.released = true;
        true
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let mut map = self.claims.lock();
        if map
            .get(&self.thread)
            .is_some_and(|held| held.generation == self.generation)
        {
            map.remove(&self.thread);
        }
    }
}

/// What applying one event came to.
enum Applied {
    Handled,
    Ignored,
    /// Another instance applied it first.
    ByAnother,
}

impl Engine {
    /// Verifies, parses and records a webhook POST in the inbox, then applies its events.
    ///
    /// `Ok` means every event the channel acts on is durably recorded: answer 200. The
    /// report also says what was applied during the call; an event that could not be applied
    /// yet stays in the inbox and [`Engine::tick`] applies it later.
    ///
    /// # Errors
    /// [`EngineError::Webhook`] when the request is not authentic or not a webhook;
    /// [`EngineError::Store`] when the events could not be recorded. Answer with
    /// [`EngineError::status`] (a 5xx makes Meta deliver the body again).
    pub async fn handle_webhook(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<WebhookReport, EngineError> {
        let receipt = self.receive(headers, body, now).await?;
        let applied = self.apply_threads(&receipt.threads, now).await;
        Ok(WebhookReport::new(&receipt, applied))
    }

    /// Verifies, parses and records a webhook POST in the inbox, without applying it: the
    /// acknowledgement step. Apply the [`Receipt::threads`] next, with
    /// [`Engine::apply_threads`], typically after answering.
    ///
    /// # Errors
    /// As [`Engine::handle_webhook`].
    pub async fn receive(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Receipt, EngineError> {
        let batch = self.webhook.verify_and_parse(headers, body)?;
        self.receive_batch(&batch, now).await
    }

    /// Records the events of a batch that the caller has verified (with [`Engine::webhook`]).
    ///
    /// # Errors
    /// [`EngineError::Store`] when the events could not be recorded; then none was.
    pub async fn receive_batch(
        &self,
        batch: &Batch<'_>,
        now: SystemTime,
    ) -> Result<Receipt, EngineError> {
        let span = tracing::debug_span!("receive", events = tracing::field::Empty);
        self.receive_events(batch, now, &span)
            .instrument(span.clone())
            .await
    }

    async fn receive_events(
        &self,
        batch: &Batch<'_>,
        now: SystemTime,
        span: &tracing::Span,
    ) -> Result<Receipt, EngineError> {
        let mut receipt = Receipt::default();
        let mut events = Vec::new();
        let mut echoes = Vec::new();
        for item in batch.items() {
            let Ok(event) = item else {
                receipt.malformed += 1;
                continue;
            };
            // The echo of a message this channel sent: its effect is delivered, whatever
            // happens to the instance that sent it.
            if let EventKind::Echo(echo) = &event.kind {
                if let Some(key) = echo.metadata.and_then(|m| {
                    m.decode()
                        .strip_prefix(super::ECHO_KEY_PREFIX)
                        .map(str::to_owned)
                }) {
                    echoes.push(key);
                    continue;
                }
            }
            match queued(event) {
                Some(q) => {
                    let body = serde_json::to_string(&q)
                        .map_err(|e| EngineError::Store(StoreError::Backend(Box::new(e))))?;
                    events.push(NewInboxEvent {
                        // The event's time first: keys arrive roughly in order, so the store's
                        // unique index grows at its end. Meta delivers an event again
                        // unchanged, time included.
                        key: format!(
                            "{:013}|{}",
                            event.timestamp.min(9_999_999_999_999),
                            event.dedup_key()
                        ),
                        thread: thread_key(&q.page, &q.customer),
                        body,
                    });
                }
                None => receipt.ignored += 1,
            }
        }
        span.record("events", events.len());
        let fresh = self.store.receive(&events, now, self.dedup_ttl).await?;
        let mut threads = HashSet::new();
        for (event, new) in events.iter().zip(fresh) {
            if new {
                receipt.received += 1;
                if threads.insert(event.thread.as_str()) {
                    receipt.threads.push(event.thread.clone());
                }
            } else {
                receipt.duplicates += 1;
            }
        }
        for key in echoes {
            self.store.complete(&key).await?;
            receipt.echoes += 1;
        }
        tracing::debug!(
            received = receipt.received,
            duplicates = receipt.duplicates,
            "webhook recorded"
        );
        for (outcome, n) in [
            ("received", receipt.received),
            ("duplicate", receipt.duplicates),
            ("echo", receipt.echoes),
            ("ignored", receipt.ignored),
            ("malformed", receipt.malformed),
        ] {
            if n > 0 {
                metrics::counter!("messenger_channel_webhook_events_total", "outcome" => outcome)
                    .increment(n as u64);
            }
        }
        Ok(receipt)
    }

    /// Applies the pending events of these threads, each thread in order of receipt. A thread
    /// already being applied in this process is left to that work, which looks again before it
    /// lets go.
    pub async fn apply_threads(&self, threads: &[String], now: SystemTime) -> ApplyReport {
        let mut report = ApplyReport::default();
        for thread in threads {
            report.merge(self.apply_thread(thread, now).await);
        }
        report
    }

    /// Applies events that a crash or a failure left in the inbox (received at least
    /// [`INBOX_SWEEP_AFTER`] before `now`, and not waiting to be tried again), and forgets
    /// applied events older than the dedup window. [`Engine::tick`] calls it.
    ///
    /// # Errors
    /// Store failures while listing the threads or forgetting old events.
    pub async fn apply_pending(&self, now: SystemTime) -> Result<ApplyReport, EngineError> {
        let by = now
            .checked_sub(INBOX_SWEEP_AFTER)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let threads = self.store.inbox_threads(by, 256).await?;
        let report = self.apply_threads(&threads, now).await;
        if let Some(before) = now.checked_sub(self.dedup_ttl) {
            self.store.purge_inbox(before).await?;
        }
        Ok(report)
    }

    async fn apply_thread(&self, thread: &str, now: SystemTime) -> ApplyReport {
        let mut report = ApplyReport::default();
        let Some(mut claim) = self.claims.claim(thread, now) else {
            return report;
        };
        loop {
            if let Err((event, e)) = self.apply_pending_of(thread, now, &mut report).await {
                if let Some(event) = event {
                    self.apply_failed(&event, &e, now).await;
                }
                tracing::warn!(thread, error = %e, "inbox event not applied; it stays pending");
                report.failed.push((thread.to_owned(), e));
                return report;
            }
            if claim.release_unless_more() {
                return report;
            }
        }
    }

    /// Applies a thread's pending events until none is left; on failure, the event that
    /// failed (if one did) and the error.
    async fn apply_pending_of(
        &self,
        thread: &str,
        now: SystemTime,
        report: &mut ApplyReport,
    ) -> Result<(), (Option<InboxEvent>, EngineError)> {
        loop {
            let pending = self
                .store
                .inbox(thread, INBOX_PAGE)
                .await
                .map_err(|e| (None, e.into()))?;
            if pending.is_empty() {
                return Ok(());
            }
            if pending[0].retry_at.is_some_and(|at| at > now) {
                // Waiting to be tried again: the sweep takes it up when it is due.
                return Ok(());
            }
            for event in pending {
                let span = tracing::debug_span!("apply", key = %event.key, seq = event.seq);
                match self.apply_event(&event, now).instrument(span).await {
                    Ok(Applied::Handled) => report.handled += 1,
                    Ok(Applied::Ignored) => report.ignored += 1,
                    // Another instance is working on this thread: read it again.
                    Ok(Applied::ByAnother) => break,
                    Err(e) => return Err((Some(event), e)),
                }
            }
        }
    }

    /// Records a failed attempt at an event: tried again after a backoff, and after
    /// [`MAX_APPLY_ATTEMPTS`] given up on (kept for the administrator, with a notice in the
    /// conversation when there is one), so that it does not block its thread for ever.
    async fn apply_failed(&self, event: &InboxEvent, error: &EngineError, now: SystemTime) {
        let message = error.to_string();
        let retry_at = crate::time::saturating_add(now, apply_backoff(event.attempts));
        let attempts = match self.store.inbox_failed(event.seq, &message, retry_at).await {
            Ok(attempts) => attempts,
            Err(e) => {
                tracing::warn!(error = %e, "could not record a failed attempt");
                return;
            }
        };
        // A store that fails, or keeps conflicting, says nothing about the event: it is tried
        // again for as long as that lasts. Only an event that fails on its own is set aside.
        let transient = matches!(
            error,
            EngineError::Store(StoreError::Backend(_)) | EngineError::Contention(_)
        ) && !matches!(error, EngineError::Store(StoreError::Backend(e)) if e.is::<serde_json::Error>());
        if transient || attempts < MAX_APPLY_ATTEMPTS {
            return;
        }
        tracing::error!(key = %event.key, attempts, error = %message, "giving up on an inbox event; it is kept for the administrator");
        match self.store.inbox_dead(event.seq, &message).await {
            Ok(_) => self.notice_dead(event, &message, now).await,
            Err(e) => tracing::warn!(error = %e, "could not set an inbox event aside"),
        }
    }

    /// Tells the agents, in the conversation, that a customer's event could not be recorded.
    async fn notice_dead(&self, event: &InboxEvent, error: &str, now: SystemTime) {
        let Some((page, customer)) = split_thread(&event.thread) else {
            return;
        };
        let page = PageId::new(page.to_owned());
        let customer = UserId::new(customer.to_owned());
        if let Ok(Some(stored)) = self.store.find_open(&page, &customer).await {
            let line = TranscriptLine {
                at: now,
                author: Author::System,
                body: LineBody::Notice(format!(
                    "Something the customer sent could not be recorded ({error}); it is kept for the administrator."
                )),
                mid: None,
            };
            if let Err(e) = self.store.append(&stored.conversation.id, vec![line]).await {
                tracing::warn!(error = %e, "could not add a notice");
            }
        }
    }

    async fn apply_event(
        &self,
        event: &InboxEvent,
        now: SystemTime,
    ) -> Result<Applied, EngineError> {
        let Queued {
            page,
            customer,
            sent_ms,
            standby,
            kind,
        } = serde_json::from_str(&event.body)
            .map_err(|e| EngineError::Store(StoreError::Backend(Box::new(e))))?;
        let inbound = match kind {
            QueuedKind::ThreadTaken => Input::ThreadTaken,
            QueuedKind::ThreadReturned => Input::ThreadReturned,
            QueuedKind::Message { mid, text, files } => {
                let mut lines = Vec::with_capacity(1 + files.len());
                if let Some(text) = text {
                    lines.push(LineBody::Text(text));
                }
                for file in &files {
                    let line = self.inbound_file(file);
                    // A refused file never reaches the agent as a file: the panel shows the
                    // Omnichannel notice, with the policy's reason.
                    let refusal = line
                        .rejected
                        .as_ref()
                        .map(|(_, why)| format!("{UNSUPPORTED_INBOUND_NOTICE}. {why}"));
                    lines.push(LineBody::File(line));
                    if let Some(notice) = refusal {
                        lines.push(LineBody::Notice(notice));
                    }
                }
                customer_message(Inbound::new(Some(mid), lines), sent_ms, standby)
            }
            QueuedKind::Postback {
                mid,
                title,
                payload,
            } => customer_message(
                Inbound::new(mid, vec![LineBody::Postback { title, payload }]),
                sent_ms,
                standby,
            ),
        };
        self.apply_input(
            PageId::new(page),
            UserId::new(customer),
            inbound,
            event,
            now,
        )
        .await
    }

    /// Whether `event` is still pending (it is the first pending event of its thread, since a
    /// thread's events are applied in order).
    async fn still_pending(&self, event: &InboxEvent) -> Result<bool, EngineError> {
        let first = self.store.inbox(&event.thread, 1).await?;
        Ok(first.first().is_some_and(|e| e.seq == event.seq))
    }

    /// Applies an event's input to the customer's open conversation: a customer's message
    /// starts one when there is none; thread control for none changes nothing. Retries on
    /// conflicts, unless another instance applied the event meanwhile.
    async fn apply_input(
        &self,
        page: PageId<'static>,
        customer: UserId<'static>,
        input: Input,
        event: &InboxEvent,
        now: SystemTime,
    ) -> Result<Applied, EngineError> {
        for _ in 0..self.conflict_retries {
            let (conversation, effects, expected) =
                match (self.store.find_open(&page, &customer).await?, &input) {
                    (None, Input::CustomerMessage(inbound)) => {
                        // The event names the conversation: an id never taken before, the
                        // same on every instance that applies this event.
                        let seed = format!("{}:{}", event.key, event.seq);
                        let id = conversation_id(&page, &customer, &seed);
                        let (c, effects) = Conversation::start(
                            id,
                            page.clone(),
                            customer.clone(),
                            inbound.clone(),
                            now,
                            &self.config,
                        );
                        (c, effects, None)
                    }
                    (None, _) => {
                        return Ok(if self.store.inbox_done(event.seq).await? {
                            Applied::Ignored
                        } else {
                            Applied::ByAnother
                        });
                    }
                    (Some(stored), _) => {
                        let mut c = stored.conversation;
                        let effects = c.apply(input.clone(), now, &self.config)?;
                        (c, effects, Some(stored.version))
                    }
                };
            match self
                .commit(conversation, expected, effects, Some(event.seq), now)
                .await
            {
                Ok(done) => {
                    self.deliver_run(done, now).await;
                    return Ok(Applied::Handled);
                }
                Err(StoreError::Conflict) => {
                    if !self.still_pending(event).await? {
                        return Ok(Applied::ByAnother);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Contention(self.conflict_retries))
    }

    /// Checks an inbound attachment against the policy. An accepted file is marked to be
    /// fetched into the media store (when downloads are on), after the message is recorded.
    fn inbound_file(&self, file: &QueuedFile) -> FileLine {
        let mut info = AttachmentInfo::new().platform_kind(&file.kind);
        if let Some(name) = &file.name {
            info = info.name(name);
        }
        let verdict = self.policy.check(Direction::Inbound, &info);
        let rejected = verdict
            .first()
            .map(|v| (v.code().to_owned(), v.to_string()));
        let keep = rejected.is_none()
            && self.download_inbound
            && self.media.is_some()
            && file.url.is_some();
        FileLine {
            name: verdict.safe_name().to_owned(),
            kind: file.kind.clone(),
            url: file.url.clone(),
            media_key: None,
            size: None,
            rejected,
            media: if keep {
                MediaState::Pending
            } else {
                MediaState::NotKept
            },
        }
    }

    /// Fetches a customer's file into the media store, checks it again with its real size and
    /// first bytes, and updates its line. Returns the lines to show (the updated line, and a
    /// notice when the file is refused), or `None` to try again later (the download failed
    /// and the link may still work).
    ///
    /// # Errors
    /// Store failures (reading the line, keeping the bytes, updating the line): tried again
    /// later.
    pub(super) async fn fetch_media(
        &self,
        conversation: &Conversation,
        url: &str,
        sent_at: SystemTime,
        now: SystemTime,
    ) -> Result<Option<Vec<TranscriptLine>>, StoreError> {
        let id = &conversation.id;
        let current = self
            .store
            .transcript(id)
            .await?
            .into_iter()
            .find_map(|l| match l.body {
                LineBody::File(f)
                    if f.url.as_deref() == Some(url) && f.media == MediaState::Pending =>
                {
                    Some(f)
                }
                _ => None,
            });
        let Some(mut file) = current else {
            // Fetched already (the same file sent twice is fetched once).
            return Ok(Some(Vec::new()));
        };
        let Some(media) = &self.media else {
            file.media = MediaState::Unavailable("no media store is configured".into());
            return self.settle(id, url, &file, None, now).await;
        };
        let max = self.policy.direction(Direction::Inbound).max_bytes();
        let span = tracing::debug_span!("fetch_media", conversation = %id);
        match self.send.download(url, max).instrument(span).await {
            Ok(downloaded) => {
                let head = &downloaded.bytes[..downloaded.bytes.len().min(8192)];
                let (kind, shown) = (file.kind.clone(), file.name.clone());
                let mut info = AttachmentInfo::new().platform_kind(&kind).name(&shown);
                if let Some(name) = downloaded.file_name.as_deref() {
                    info = info.name(name);
                }
                info.size = Some(downloaded.bytes.len() as u64);
                info.head = Some(head);
                info.mime = downloaded.content_type.as_deref();
                let verdict = self.policy.check(Direction::Inbound, &info);
                file.name = verdict.safe_name().to_owned();
                file.size = info.size;
                if let Some(v) = verdict.first() {
                    file.rejected = Some((v.code().to_owned(), v.to_string()));
                    file.media = MediaState::NotKept;
                    let notice = format!("{UNSUPPORTED_INBOUND_NOTICE}. {v}");
                    return self.settle(id, url, &file, Some(notice), now).await;
                }
                let key = media
                    .put(downloaded.bytes.clone(), downloaded.content_type.as_deref())
                    .await?;
                file.media_key = Some(key);
                file.media = MediaState::Stored;
                self.settle(id, url, &file, None, now).await
            }
            Err(SendError::TooLarge { max }) => {
                let v = Violation::TooLarge {
                    size: max.saturating_add(1),
                    max,
                };
                file.rejected = Some((v.code().to_owned(), v.to_string()));
                file.media = MediaState::NotKept;
                let notice = format!("{UNSUPPORTED_INBOUND_NOTICE}. {v}");
                self.settle(id, url, &file, Some(notice), now).await
            }
            Err(e) if is_gone(&e) => {
                tracing::warn!(error = %e, "an inbound file is gone from Messenger");
                file.media =
                    MediaState::Unavailable(format!("Messenger no longer serves the file ({e})"));
                self.settle(id, url, &file, None, now).await
            }
            Err(e) if now < link_expiry(url, sent_at) => {
                tracing::warn!(error = %e, "an inbound file could not be fetched; it will be tried again");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "an inbound file could not be fetched before its link expired");
                file.media = MediaState::Unavailable(format!(
                    "the file could not be fetched from Messenger before its link expired ({e})"
                ));
                self.settle(id, url, &file, None, now).await
            }
        }
    }

    /// Records a fetched file's outcome: its line updated, and a notice when given.
    async fn settle(
        &self,
        id: &crate::ids::ConversationId,
        url: &str,
        file: &FileLine,
        notice: Option<String>,
        now: SystemTime,
    ) -> Result<Option<Vec<TranscriptLine>>, StoreError> {
        let mut lines = self.store.update_file(id, url, file).await?;
        if let Some(text) = notice {
            let line = TranscriptLine {
                at: now,
                author: Author::System,
                body: LineBody::Notice(text),
                mid: None,
            };
            self.store.append(id, vec![line.clone()]).await?;
            lines.push(line);
        }
        Ok(Some(lines))
    }
}

/// Whether a download failed for good: the CDN answered 4xx (not found, forbidden, the link's
/// signature expired), other than a timeout or a rate limit.
fn is_gone(e: &SendError) -> bool {
    matches!(e, SendError::UnexpectedResponse { status, .. }
        if (400..500).contains(status) && *status != 408 && *status != 429)
}

/// Until when a Messenger CDN link is worth trying: the expiry it carries (`oe=`, seconds
/// since the epoch in hexadecimal, on fbcdn links), kept between an hour and a week after the
/// message; three days when it carries none (Meta documents no lifetime).
fn link_expiry(url: &str, sent_at: SystemTime) -> SystemTime {
    const HOUR: Duration = Duration::from_secs(3600);
    let earliest = crate::time::saturating_add(sent_at, HOUR);
    let latest = crate::time::saturating_add(sent_at, HOUR * 24 * 7);
    let stated = url
        .split_once('?')
        .into_iter()
        .flat_map(|(_, query)| query.split('&'))
        .find_map(|pair| pair.strip_prefix("oe="))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .map(|secs| crate::time::saturating_add(SystemTime::UNIX_EPOCH, Duration::from_secs(secs)));
    match stated {
        Some(at) => at.clamp(earliest, latest),
        None => crate::time::saturating_add(sent_at, HOUR * 24 * 3),
    }
}

/// What [`Engine::handle_webhook`] did: what it recorded (the acknowledgement), and what it
/// applied during the call.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct WebhookReport {
    /// New events recorded in the inbox.
    pub received: usize,
    /// Events recorded before (redeliveries).
    pub duplicates: usize,
    /// Events the channel does not act on.
    pub ignored: usize,
    /// Echoes of this channel's own sends.
    pub echoes: usize,
    /// Items that could not be read.
    pub malformed: usize,
    /// Events applied to conversations during the call (this body's, or others' of the same
    /// threads).
    pub handled: usize,
    /// Threads whose next event could not be applied yet; it stays in the inbox.
    pub failed: Vec<(String, EngineError)>,
}

impl WebhookReport {
    fn new(receipt: &Receipt, applied: ApplyReport) -> Self {
        Self {
            received: receipt.received,
            duplicates: receipt.duplicates,
            ignored: receipt.ignored + applied.ignored,
            echoes: receipt.echoes,
            malformed: receipt.malformed,
            handled: applied.handled,
            failed: applied.failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_link_expires_when_its_oe_says_within_an_hour_and_a_week() {
        let sent = at(1_718_000_000);
        // 0x666C0000 = 1,718,353,920: about four days after `sent`, within the bounds.
        assert_eq!(
            link_expiry(
                "https://scontent.xx.fbcdn.net/v/t1/a.jpg?_nc_ht=x&oe=666C0000",
                sent
            ),
            at(0x666C_0000)
        );
        // Already past, or absurdly far: clamped.
        assert_eq!(
            link_expiry("https://x/a.jpg?oe=1", sent),
            at(1_718_000_000 + 3600)
        );
        assert_eq!(
            link_expiry("https://x/a.jpg?oe=ffffffffffff", sent),
            at(1_718_000_000 + 7 * 24 * 3600)
        );
        // None, or not hexadecimal: three days.
        for url in [
            "https://x/a.jpg",
            "https://x/a.jpg?oe=zz",
            "https://x/a.jpg?toe=66700000",
        ] {
            assert_eq!(
                link_expiry(url, sent),
                at(1_718_000_000 + 3 * 24 * 3600),
                "{url}"
            );
        }
        // A huge sent time does not panic.
        let _ = link_expiry("https://x/a.jpg?oe=ffffffffffffffff", at(u64::MAX / 4));
    }

    #[test]
    fn thread_keys_are_unambiguous() {
        assert_ne!(thread_key("1:2", "3"), thread_key("1", "2:3"));
        assert_eq!(thread_key("10", "7"), "2:10:7");
        for (page, customer) in [("10", "7"), ("1:2", "3"), ("", ""), ("é", ":")] {
            assert_eq!(
                split_thread(&thread_key(page, customer)),
                Some((page, customer))
            );
        }
        for bad in ["", "x", "9:ab:c", "2:ab", "2:abc", "2é:ab:c"] {
            assert_eq!(split_thread(bad), None, "{bad}");
        }
    }
}
