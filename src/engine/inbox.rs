//! Applying the inbox: a thread's events one after another, in order of receipt; in one
//! process by a per-thread claim, across instances by the commit that marks an event applied
//! only if it still was pending. Failures back off; an event that cannot be applied is set
//! aside with a notice, so that it never blocks the customer's later messages.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tracing::Instrument as _;

use super::commit::Attempt;
use super::ingest::{Queued, QueuedFile, QueuedKind, customer_message, split_thread};
use super::{Engine, EngineError, conversation_id};
use crate::attachment::{AttachmentInfo, Direction, Rejection, UNSUPPORTED_INBOUND_NOTICE};
use crate::conversation::{
    Author, Conversation, FileLine, Inbound, Input, LineBody, MediaState, ReactionLine,
    ThreadEvent, TranscriptLine, map_url,
};
use crate::ids::{AppId, PageId, UserId};
use crate::locale::Locale;
use crate::routing::{StartFacts, ThreadReferral};
use crate::store::{InboxEvent, StoreError};

/// How long after its receipt a pending event is left to the instance that received it
/// before [`Engine::tick`]'s sweep applies it (that instance applies it at once unless it
/// failed or died).
pub const INBOX_SWEEP_AFTER: Duration = Duration::from_secs(2);

/// How many pending events (of all threads, in order of receipt) are read at a time.
const INBOX_PAGE: usize = 256;

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
    /// Why the sweep ([`Engine::apply_pending`]) could not unpack every recorded webhook
    /// body due: they stay recorded, and the next sweep tries again.
    pub unpacking: Option<EngineError>,
}

/// How many pages of recorded webhook bodies one sweep unpacks at most
/// ([`super::WEBHOOK_PAGE`] each).
const SWEEP_UNPACK_PAGES: usize = 4;

/// How long a thread stays claimed by work in this process before other work may take it
/// over (the first work is hung: a store or a host callback that never answers). Taking over
/// is safe: an event is applied only by the commit that marks it applied.
pub(super) const CLAIM_LEASE: Duration = Duration::from_secs(60);

/// Threads being applied in this process.
#[derive(Debug, Default)]
pub(super) struct Claims {
    held: Mutex<HashMap<String, Held>>,
    next: AtomicU64,
    /// Recorded webhook bodies found unreadable and reported (logged once per process).
    unreadable: Mutex<HashSet<u64>>,
    /// Threads waiting for the background drain (`Engine::apply_in_background`).
    #[cfg(feature = "worker")]
    backlog: Mutex<Backlog>,
}

/// The background drain's work: the threads received since it last looked, and whether it
/// is running.
#[cfg(feature = "worker")]
#[derive(Debug, Default)]
struct Backlog {
    threads: HashSet<String>,
    /// Recorded webhook bodies may be waiting to be unpacked.
    webhooks: bool,
    running: bool,
}

#[derive(Debug)]
struct Held {
    generation: u64,
    since: SystemTime,
    /// More events arrived for the thread since its holder last looked.
    dirty: bool,
}

impl Claims {
    /// Whether the unreadable body `seq` is reported for the first time in this process.
    pub(super) fn first_report_of_unreadable(&self, seq: u64) -> bool {
        self.unreadable
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(seq)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(feature = "worker")]
    fn backlog(&self) -> std::sync::MutexGuard<'_, Backlog> {
        self.backlog.lock().unwrap_or_else(PoisonError::into_inner)
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
/// How one thread fared in a lane of a pass ([`Engine::apply_lane`]).
struct ThreadOutcome {
    thread: String,
    handled: usize,
    ignored: usize,
    /// Left alone for the rest of the pass.
    settled: bool,
    /// To be looked at again (another instance applied one of its events meanwhile).
    again: bool,
    failed: Option<EngineError>,
}

impl Engine {
    /// Applies the pending events of these threads, each thread in order of receipt. A thread
    /// already being applied in this process is left to that work, which looks again before it
    /// lets go.
    ///
    /// The inbox is read in order of receipt, a page at a time, whatever the thread (the
    /// store's index of pending events grows at its end); each page's events are grouped by
    /// thread, and a thread's events are applied one after another. A thread whose event
    /// fails, waits for a retry, or is being applied elsewhere is left alone for the rest of
    /// the pass, so that none of its later events overtakes it.
    pub async fn apply_threads(&self, threads: &[String], now: SystemTime) -> ApplyReport {
        let mut report = ApplyReport::default();
        let mut wanted: HashSet<String> = threads.iter().cloned().collect();
        while !wanted.is_empty() {
            wanted = self.apply_pass(&wanted, now, &mut report).await;
        }
        report
    }

    /// Applies, in a background task, the pending events of these threads (typically a
    /// [`super::Receipt::threads`] just acknowledged). One task per engine drains at a time:
    /// threads handed over while it runs join its next pass, so that any number of
    /// acknowledgements in flight cost one reader of the inbox and one writer of
    /// applications, not one each. Failures are logged and left to [`Engine::tick`]'s sweep.
    ///
    /// # Panics
    /// Outside a Tokio runtime (it spawns a task).
    #[cfg(feature = "worker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "worker")))]
    pub fn apply_in_background(self: &std::sync::Arc<Self>, threads: Vec<String>) {
        if threads.is_empty() {
            return;
        }
        self.drain_in_background(|backlog| backlog.threads.extend(threads));
    }

    /// Unpacks recorded webhook bodies ([`Engine::record_webhook`]) and applies their events,
    /// in the background drain of [`Engine::apply_in_background`]: what the webhook route
    /// does after answering 200. Failures are logged and left to [`Engine::tick`]'s sweep.
    ///
    /// # Panics
    /// Outside a Tokio runtime (it spawns a task).
    #[cfg(feature = "worker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "worker")))]
    pub fn unpack_in_background(self: &std::sync::Arc<Self>) {
        self.drain_in_background(|backlog| backlog.webhooks = true);
    }

    /// Hands work to the background drain, starting it unless it runs.
    #[cfg(feature = "worker")]
    fn drain_in_background(self: &std::sync::Arc<Self>, add: impl FnOnce(&mut Backlog)) {
        {
            let mut backlog = self.claims.backlog();
            add(&mut backlog);
            if backlog.running {
                return;
            }
            backlog.running = true;
        }
        let engine = self.clone();
        tokio::spawn(async move {
            // Lets the next hand-over start a drain if this task ends in a panic.
            struct Stopped<'a>(&'a Claims);
            impl Drop for Stopped<'_> {
                fn drop(&mut self) {
                    if std::thread::panicking() {
                        self.0.backlog().running = false;
                    }
                }
            }
            let _stopped = Stopped(&engine.claims);
            loop {
                let (mut threads, unpack): (Vec<String>, bool) = {
                    let mut backlog = engine.claims.backlog();
                    if backlog.threads.is_empty() && !backlog.webhooks {
                        backlog.running = false;
                        return;
                    }
                    (
                        backlog.threads.drain().collect(),
                        std::mem::take(&mut backlog.webhooks),
                    )
                };
                if unpack {
                    // Every recorded body, whenever it was received (another instance's
                    // clock may be ahead of this one's).
                    let unpacked = engine.unpack_webhooks(None, SystemTime::now()).await;
                    threads.extend(unpacked.threads);
                    if let Some(e) = &unpacked.failed {
                        tracing::warn!(error = %e, "recorded webhooks not unpacked yet; the sweep retries them");
                    } else if unpacked.more {
                        engine.claims.backlog().webhooks = true;
                    }
                }
                let report = engine.apply_threads(&threads, SystemTime::now()).await;
                for (thread, e) in &report.failed {
                    tracing::warn!(thread, error = %e, "recorded event not applied yet; the sweep retries it");
                }
                tracing::debug!(handled = report.handled, "inbox drained");
            }
        });
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
        // Bodies recorded and not unpacked (their instance died or failed): into the inbox
        // first, the oldest first, at most a few pages per sweep (the timers and deliveries
        // of this tick wait for it), and their threads applied with the rest. A failure is
        // reported and the sweep goes on with what is in the inbox.
        let mut unpacked = Vec::new();
        let mut unpacking = None;
        for _ in 0..SWEEP_UNPACK_PAGES {
            let page = self.unpack_webhooks(Some(by), now).await;
            unpacked.extend(page.threads);
            if page.failed.is_some() {
                unpacking = page.failed;
                break;
            }
            if !page.more {
                break;
            }
        }
        let mut threads = self.store.inbox_threads(by, 256).await?;
        for thread in unpacked {
            if !threads.contains(&thread) {
                threads.push(thread);
            }
        }
        let mut report = self.apply_threads(&threads, now).await;
        report.unpacking = unpacking;
        if let Some(before) = now.checked_sub(self.dedup_ttl) {
            self.store.purge_inbox(before).await?;
        }
        Ok(report)
    }

    /// One pass over the inbox in order of receipt, applying the events of `wanted` threads;
    /// returns the threads to look at again (events arrived for them while they were held
    /// here, or another instance applied one of them meanwhile).
    async fn apply_pass(
        &self,
        wanted: &HashSet<String>,
        now: SystemTime,
        report: &mut ApplyReport,
    ) -> HashSet<String> {
        let mut held: HashMap<&str, Claim<'_>> = HashMap::new();
        // Threads left alone for the rest of the pass.
        let mut settled: HashSet<String> = HashSet::new();
        let mut again = HashSet::new();
        // The threads are held from before the first read: work that hangs holds them (for
        // the claim lease), and a thread held by other work here is left to it (it looks
        // again before it lets go).
        for thread in wanted {
            match self.claims.claim(thread, now) {
                Some(claim) => {
                    held.insert(thread.as_str(), claim);
                }
                None => {
                    settled.insert(thread.clone());
                }
            }
        }
        if held.is_empty() {
            return again;
        }
        let mut from = 0;
        loop {
            let page = match self.store.inbox_pending(from, INBOX_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    let thread = wanted
                        .iter()
                        .find(|t| !settled.contains(*t))
                        .or_else(|| wanted.iter().next())
                        .cloned()
                        .unwrap_or_default();
                    tracing::warn!(thread, error = %e, "inbox not read; its events stay pending");
                    report.failed.push((thread, e.into()));
                    return HashSet::new();
                }
            };
            let Some(last) = page.last() else {
                break;
            };
            from = last.seq.saturating_add(1);
            // The page's events of each wanted thread, in order; threads in lanes applied at
            // the same time, each lane's threads one after another.
            let mut groups: Vec<(String, Vec<InboxEvent>)> = Vec::new();
            let mut group_of: HashMap<String, usize> = HashMap::new();
            for event in page {
                let Some(thread) = wanted.get(&event.thread) else {
                    continue;
                };
                if settled.contains(thread) {
                    continue;
                }
                let at = *group_of.entry(thread.clone()).or_insert_with(|| {
                    groups.push((thread.clone(), Vec::new()));
                    groups.len() - 1
                });
                groups[at].1.push(event);
            }
            let lanes = self.apply_concurrency.max(1).min(groups.len().max(1));
            let mut lane_groups: Vec<Vec<(String, Vec<InboxEvent>)>> =
                (0..lanes).map(|_| Vec::new()).collect();
            for (i, group) in groups.into_iter().enumerate() {
                lane_groups[i % lanes].push(group);
            }
            let outcomes = futures_util::future::join_all(
                lane_groups
                    .into_iter()
                    .map(|lane| self.apply_lane(lane, now)),
            )
            .await;
            for outcome in outcomes.into_iter().flatten() {
                report.handled += outcome.handled;
                report.ignored += outcome.ignored;
                if outcome.settled {
                    settled.insert(outcome.thread.clone());
                }
                if outcome.again {
                    again.insert(outcome.thread.clone());
                }
                if let Some(e) = outcome.failed {
                    again.remove(&outcome.thread);
                    report.failed.push((outcome.thread, e));
                }
            }
        }
        // A thread whose events arrived while it was held here is looked at again (unless
        // it failed: the sweep tries it after its backoff).
        for (thread, mut claim) in held {
            if !claim.release_unless_more() && !report.failed.iter().any(|(t, _)| t == thread) {
                again.insert(thread.to_owned());
            }
        }
        again
    }

    /// Applies each thread's events of one lane, in order, one thread after another; a
    /// thread stops at its first event that fails, waits for a retry, or is being applied by
    /// another instance.
    async fn apply_lane(
        &self,
        lane: Vec<(String, Vec<InboxEvent>)>,
        now: SystemTime,
    ) -> Vec<ThreadOutcome> {
        let mut outcomes = Vec::with_capacity(lane.len());
        for (thread, events) in lane {
            let mut outcome = ThreadOutcome {
                thread,
                handled: 0,
                ignored: 0,
                settled: false,
                again: false,
                failed: None,
            };
            for event in events {
                if event.retry_at.is_some_and(|at| at > now) {
                    // Waiting to be tried again: the sweep takes it up when it is due.
                    outcome.settled = true;
                    break;
                }
                let span = tracing::debug_span!("apply", key = %event.key, seq = event.seq);
                match self.apply_event(&event, now).instrument(span).await {
                    Ok(Applied::Handled) => outcome.handled += 1,
                    Ok(Applied::Ignored) => outcome.ignored += 1,
                    // Another instance is working on this thread: read it again.
                    Ok(Applied::ByAnother) => {
                        outcome.settled = true;
                        outcome.again = true;
                        break;
                    }
                    Err(e) => {
                        self.apply_failed(&event, &e, now).await;
                        tracing::warn!(thread = outcome.thread, error = %e, "inbox event not applied; it stays pending");
                        outcome.settled = true;
                        outcome.failed = Some(e);
                        break;
                    }
                }
            }
            outcomes.push(outcome);
        }
        outcomes
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
                reply_to: None,
                sent_at: None,
            };
            if let Err(e) = self
                .store
                .append(stored.conversation.id(), vec![line])
                .await
            {
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
            referral,
            kind,
        } = serde_json::from_str(&event.body)
            .map_err(|e| EngineError::Store(StoreError::Backend(Box::new(e))))?;
        let inbound = match kind {
            QueuedKind::ThreadTaken => Input::ThreadTaken,
            QueuedKind::ThreadReturned => Input::ThreadReturned,
            QueuedKind::Message {
                mid,
                text,
                files,
                reply_to,
            } => customer_message(
                Inbound::new(
                    Some(mid),
                    self.message_lines(text, &files, Sender::Customer),
                )
                .reply_to(reply_to),
                sent_ms,
                standby,
            ),
            QueuedKind::Outside {
                mid,
                app_id,
                text,
                files,
                reply_to,
            } => thread_event(
                ThreadEvent::Outside {
                    author: Author::outside(app_id.map(AppId)),
                    mid: Some(mid),
                    lines: self.message_lines(text, &files, Sender::Page),
                    reply_to,
                },
                sent_ms,
            ),
            QueuedKind::Reaction {
                mid,
                emoji,
                name,
                removed,
            } => thread_event(
                ThreadEvent::Reaction(ReactionLine::new(mid, emoji, removed).name(name)),
                sent_ms,
            ),
            QueuedKind::Edit {
                mid,
                text,
                edit_count,
            } => thread_event(
                ThreadEvent::Edit {
                    mid,
                    text,
                    edit_count,
                },
                sent_ms,
            ),
            QueuedKind::Unsent { mid } => thread_event(ThreadEvent::Unsent { mid }, sent_ms),
            QueuedKind::Delivered { watermark } => thread_event(
                ThreadEvent::Delivered {
                    watermark: millis(watermark),
                },
                sent_ms,
            ),
            QueuedKind::Read { watermark } => thread_event(
                ThreadEvent::Read {
                    watermark: millis(watermark),
                },
                sent_ms,
            ),
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
            referral.as_ref(),
            event,
            now,
        )
        .await
    }

    /// Whether `event` is still pending (it is the first pending event of its thread, since a
    /// thread's events are applied in order).
    async fn still_pending(&self, event: &InboxEvent) -> Result<bool, EngineError> {
        let first = self.store.inbox_pending(event.seq, 1).await?;
        Ok(first.first().is_some_and(|e| e.seq == event.seq))
    }

    /// Applies an event's input to the customer's open conversation: a customer's message
    /// starts one when there is none; a reaction, edit, removal or outside reply goes to the
    /// most recent one, even closed; thread control and receipts for none change nothing. Retries on
    /// conflicts, unless another instance applied the event meanwhile.
    async fn apply_input(
        &self,
        page: PageId<'static>,
        customer: UserId<'static>,
        input: Input,
        referral: Option<&ThreadReferral>,
        event: &InboxEvent,
        now: SystemTime,
    ) -> Result<Applied, EngineError> {
        // The host's answer about the customer's locale, asked once for this event however
        // many times a conflict makes it start the conversation again.
        let asked: std::sync::Mutex<Option<Option<Locale>>> = std::sync::Mutex::new(None);
        let asked = &asked;
        self.retrying_conflicts(|| async {
            let (conversation, transition, expected) =
                match (self.store.find_open(&page, &customer).await?, &input) {
                    (None, Input::CustomerMessage(inbound)) => {
                        // The event names the conversation: an id never taken before, the
                        // same on every instance that applies this event.
                        let seed = format!("{}:{}", event.key, event.seq);
                        let id = conversation_id(&page, &customer, &seed);
                        // Classified into a queue by what is known now.
                        let known = asked
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .clone();
                        let locale = if let Some(locale) = known {
                            locale
                        } else {
                            let locale = self.customer_locale(&page, &customer).await;
                            *asked
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                                Some(locale.clone());
                            locale
                        };
                        let facts = StartFacts::new(&page, &customer)
                            .referral(referral)
                            .first_text(first_text(inbound))
                            .locale(locale.as_ref().map(Locale::as_str));
                        let queue = self.routing.classify(&facts).id.clone();
                        let (c, mut transition) = Conversation::start_in_queue(
                            Some(queue),
                            id,
                            page.clone(),
                            customer.clone(),
                            inbound.clone(),
                            now,
                            &self.config,
                        );
                        // Linked to the record the customer's previous conversation was.
                        let record = self
                            .store
                            .find_latest(&page, &customer)
                            .await?
                            .and_then(|s| s.conversation.customer_record().cloned());
                        let mut c = c.with_customer_locale(locale).with_customer_record(record);
                        self.automate_start(&mut c, &mut transition, now)?;
                        (c, transition, None)
                    }
                    (None, Input::Thread { event: e, .. }) if e.is_recorded_after_close() => {
                        // A reaction, edit, removal or outside reply after the close: recorded
                        // in the customer's most recent conversation, closed as it is.
                        match self.store.find_latest(&page, &customer).await? {
                            Some(stored) => {
                                let mut c = stored.conversation;
                                let transition = c.apply(input.clone(), now, &self.config)?;
                                (c, transition, Some(stored.version))
                            }
                            None => return self.nothing_to_apply(event).await,
                        }
                    }
                    (None, _) => return self.nothing_to_apply(event).await,
                    (Some(stored), _) => {
                        let mut c = stored.conversation;
                        let transition = c.apply(input.clone(), now, &self.config)?;
                        (c, transition, Some(stored.version))
                    }
                };
            let started = expected.is_none() && matches!(input, Input::CustomerMessage(_));
            match self
                .commit(conversation, expected, transition, Some(event.seq), now)
                .await
            {
                Ok(committed) => {
                    // Started before the offer is delivered, so that the offer's screen
                    // may already find the customer's name.
                    if started {
                        self.fetch_profile_in_background(&page, &customer, now);
                    }
                    self.deliver_committed(committed, now).await;
                    Ok(Attempt::Done(Applied::Handled))
                }
                // Unless another instance applied the event meanwhile, try again.
                Err(StoreError::Conflict) if self.still_pending(event).await? => {
                    Ok(Attempt::Conflict)
                }
                Err(StoreError::Conflict) => Ok(Attempt::Done(Applied::ByAnother)),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    /// Marks an event that applies to no conversation as done.
    async fn nothing_to_apply(&self, event: &InboxEvent) -> Result<Attempt<Applied>, EngineError> {
        Ok(Attempt::Done(if self.store.inbox_done(event.seq).await? {
            Applied::Ignored
        } else {
            Applied::ByAnother
        }))
    }

    /// The lines of a message: its text, then each attachment as an agent can read it (a
    /// sticker, a link, a location, a template's words, a file). The customer's: a file the
    /// policy refuses, and an attachment with nothing readable, come with the Omnichannel
    /// notice. The Page's (sent from outside the channel: the Page inbox, another app): its
    /// files are shown as Messenger's links, neither checked against the attachment policy
    /// (which is for what customers send) nor downloaded, and what cannot be read gets a
    /// notice worded for the Page, recorded as the channel's.
    fn message_lines(
        &self,
        text: Option<String>,
        files: &[QueuedFile],
        sender: Sender,
    ) -> Vec<LineBody> {
        let mut lines = Vec::with_capacity(1 + files.len());
        if let Some(text) = text {
            lines.push(LineBody::Text(text));
        }
        for file in files {
            if let Some(line) = readable(file) {
                lines.push(line);
                continue;
            }
            if !is_file(&file.kind) && file.url.is_none() {
                lines.push(LineBody::Notice(match sender {
                    Sender::Customer => format!("{UNSUPPORTED_INBOUND_NOTICE} ({}).", file.kind),
                    Sender::Page => format!(
                        "The Page sent a message this channel cannot show ({}).",
                        file.kind
                    ),
                }));
                continue;
            }
            if sender == Sender::Page {
                lines.push(LineBody::File(self.page_file(file)));
                continue;
            }
            let line = self.inbound_file(file);
            // A refused file never reaches the agent as a file: the panel shows the
            // Omnichannel notice, with the policy's reason.
            let refusal = line
                .rejected
                .as_ref()
                .map(|r| format!("{UNSUPPORTED_INBOUND_NOTICE}. {}", r.message));
            lines.push(LineBody::File(line));
            if let Some(notice) = refusal {
                lines.push(LineBody::Notice(notice));
            }
        }
        lines
    }

    /// A file the Page sent from outside the channel: shown as Messenger's link (which
    /// expires like any attachment URL), under a safe name; not checked, not downloaded.
    fn page_file(&self, file: &QueuedFile) -> FileLine {
        let mut info = AttachmentInfo::new().platform_kind(&file.kind);
        if let Some(name) = &file.name {
            info = info.name(name);
        }
        // Only its safe name is used: the policy is for the customer's files.
        let verdict = self.attachment_policy.check(Direction::Inbound, &info);
        FileLine {
            name: verdict.safe_name().to_owned(),
            kind: file.kind.clone(),
            url: file.url.clone(),
            media_key: None,
            size: None,
            rejected: None,
            media: MediaState::NotKept,
        }
    }

    /// Checks an inbound attachment against the policy. An accepted file is marked to be
    /// fetched into the media store (when downloads are on), after the message is recorded.
    fn inbound_file(&self, file: &QueuedFile) -> FileLine {
        let mut info = AttachmentInfo::new().platform_kind(&file.kind);
        if let Some(name) = &file.name {
            info = info.name(name);
        }
        let verdict = self.attachment_policy.check(Direction::Inbound, &info);
        let rejected = verdict.first().map(Rejection::from);
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
}

/// Who sent a message: the customer, or the Page from outside the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    Customer,
    Page,
}

/// An input for something in the thread at the event's time.
/// The text of a customer's first message, for routing rules: its first text line, or a
/// postback's title.
fn first_text(inbound: &Inbound) -> Option<&str> {
    inbound.lines.iter().find_map(|l| match l {
        LineBody::Text(text) => Some(text.as_str()),
        LineBody::Postback { title, .. } => title.as_deref(),
        _ => None,
    })
}

fn thread_event(event: ThreadEvent, sent_ms: u64) -> Input {
    Input::Thread {
        event,
        at: millis(sent_ms),
    }
}

fn millis(ms: u64) -> SystemTime {
    crate::time::from_millis(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// Whether Messenger's attachment type is a file (checked against the attachment policy).
fn is_file(kind: &str) -> bool {
    matches!(kind, "image" | "video" | "audio" | "file")
}

/// What an agent reads of an attachment that is not a file: a sticker, a location, a shared
/// link, post, reel, template (its words, [`super::ingest::template_text`]) or fallback. `None` for files, and for shares with nothing to
/// read.
fn readable(file: &QueuedFile) -> Option<LineBody> {
    if let Some(words) = &file.template {
        return Some(LineBody::Link {
            kind: file.kind.clone(),
            title: Some(words.clone()),
            url: file.url.clone(),
        });
    }
    if file.sticker {
        return Some(LineBody::Sticker {
            url: file.url.clone(),
            sticker_id: file.sticker_id,
        });
    }
    if let Some((lat, long)) = file.coordinates {
        return Some(LineBody::Location {
            title: file.title.clone(),
            map_url: map_url(lat, long),
        });
    }
    if is_file(&file.kind) || (file.title.is_none() && file.url.is_none()) {
        return None;
    }
    Some(LineBody::Link {
        kind: file.kind.clone(),
        title: file.title.clone(),
        url: file.url.clone(),
    })
}
