//! Delivery: carrying out committed effects at least once, from the durable outbox.
//!
//! Every effect is committed with the state change that produced it, claimed by the
//! committing instance, and delivered right away. What cannot be delivered at once stays in
//! the outbox with its attempt history, and [`Engine::deliver_due`] (run by [`Engine::tick`],
//! and continuously by the worker, [`Engine::start`]) delivers it later:
//!
//! | Outcome of an attempt | What happens |
//! |---|---|
//! | Sent | Recorded as delivered (the row leaves the outbox). |
//! | Transport failure before the request was sent, HTTP 5xx, rate limits (4, 17, 32, 613…) | Tried again after the [`DeliveryConfig::retry`] backoff (with jitter; at least Graph's `estimated_time_to_regain_access`), until the retry budget is spent; then failed. |
//! | Timeout after the request was written (the platform may have it) | Not resent blindly: the echo carrying the effect's key is awaited for [`DeliveryConfig::echo_grace`]; then it is sent again or failed, per [`DeliveryConfig::unconfirmed`]. |
//! | Token invalid or expired (190), no token, a permission the page lacks (10, 200–299 with no subcode), page restricted (368) | The page needs attention ([`Engine::pages_needing_attention`]); its sends wait, without spending retries, until [`Engine::resume_page`]. |
//! | Outside the window, recipient unavailable, invalid message, permission refused for one recipient (a subcode) | Failed at once. |
//!
//! A failed agent message gets a transcript line in words an agent can act on ("Not
//! delivered: …"), written in the same transaction that marks the effect failed, and the agent
//! is notified ([`crate::agents::AgentNotifier::updated`]).
//!
//! Before a late attempt the engine checks again what may have changed since the commit: a
//! closed conversation, an offer withdrawn or expired, a messaging window now closed. Such an
//! effect is skipped or failed, and recorded, never sent.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tracing::Instrument as _;

use super::{ECHO_KEY_PREFIX, Engine, EngineError};
use crate::conversation::{
    Author, AutomatedTrigger, Conversation, Effect, Input, LineBody, Outgoing, State,
    TranscriptLine,
};
use crate::ids::{AgentId, ConversationId, MessageId, PageId};
use crate::send::{
    AttachmentSource, ErrorKind, MediaKind, Message, RetryDecision, RetryPolicy, SendError,
    SendRequest, Upload,
};
use crate::store::{Lease, PendingEffect, QueuePlace, Retry, SentMessage, StoreError};
use crate::window::{Sender, WindowDenial, check_window};

/// How the outbox is worked. The defaults suit production; see each field. Values below the
/// floors (lease, echo grace and attention recheck 1 s, batch 1, poll 10 ms) are raised to
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// How long a claim on effects lasts unless renewed (default
    /// [`crate::store::DEFAULT_OUTBOX_LEASE`], 60 s). The engine renews its claims every third
    /// of it while it works on them; another instance takes over effects whose claim lapsed.
    pub lease: Duration,
    /// Effects claimed at a time by [`Engine::deliver_due`] (default 64): a batch's
    /// conversations are read in one call and its deliveries recorded in one write.
    pub batch: usize,
    /// Backoff and budget for retryable failures (default: 10 attempts, from 1 s doubling to
    /// at most 5 min, for at most 1 hour after the commit).
    pub retry: RetryPolicy,
    /// How long to wait for the echo of a send whose outcome is unknown before deciding per
    /// [`DeliveryConfig::unconfirmed`] (default 30 s). Meta echoes a message within seconds.
    pub echo_grace: Duration,
    /// What to do with a send whose outcome stayed unknown through the grace period.
    pub unconfirmed: Unconfirmed,
    /// How often the sends of a page needing attention are looked at again (default 30 s).
    pub attention_recheck: Duration,
    /// How long the worker sleeps when nothing is due (default 1 s).
    pub poll: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            lease: crate::store::DEFAULT_OUTBOX_LEASE,
            batch: 64,
            retry: RetryPolicy {
                max_attempts: 10,
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(300),
                max_elapsed: Duration::from_secs(3600),
                retry_unknown_outcome: false,
            },
            echo_grace: Duration::from_secs(30),
            unconfirmed: Unconfirmed::Resend,
            attention_recheck: Duration::from_secs(30),
            poll: Duration::from_secs(1),
        }
    }
}

impl DeliveryConfig {
    /// The floors the engine applies, so that no setting makes a pass spin or a claim lapse
    /// at once: lease, echo grace and attention recheck at least 1 s, batch at least 1, poll
    /// at least 10 ms.
    pub(super) fn with_floors(mut self) -> Self {
        const SECOND: Duration = Duration::from_secs(1);
        self.lease = self.lease.max(SECOND);
        self.echo_grace = self.echo_grace.max(SECOND);
        self.attention_recheck = self.attention_recheck.max(SECOND);
        self.batch = self.batch.max(1);
        self.poll = self.poll.max(Duration::from_millis(10));
        self
    }
}

/// The host's choice for a send whose outcome is unknown (a timeout after the request was
/// written, or a crash mid-send) and whose echo did not arrive within the grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Unconfirmed {
    /// Send it again (the default): the customer may get it twice if Meta had it and its echo
    /// came later than the grace period, but never gets nothing.
    #[default]
    Resend,
    /// Fail it, visibly: the agent is told it may not have been delivered.
    Fail,
}

/// What became of an agent's message when it was committed and first tried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// Sent; the platform's message id.
    Sent {
        /// The platform's message id (`mid`).
        message_id: MessageId<'static>,
    },
    /// Not sent yet: it is in the transcript and in the outbox, and will be tried again.
    Retrying {
        /// Why the first attempt did not go through, in words an agent can read.
        reason: String,
        /// When it will be tried next.
        next_attempt: SystemTime,
    },
}

/// An agent's message that was committed but cannot be delivered. The transcript shows the
/// message and, after it, [`Undelivered::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Undelivered {
    /// In words an agent can act on ("Not delivered: …").
    pub reason: String,
    /// Why, as data: the window, a missing file, or the platform's error. `None` when the
    /// send was not tried (the conversation closed first, or Messenger never confirmed an
    /// earlier attempt).
    pub error: Option<DeliveryError>,
}

/// Why a committed message could not be delivered, as data: the cause behind an
/// [`Undelivered`] and its words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The messaging window no longer allows the send (it closed after the commit). Nothing
    /// was sent.
    #[error(transparent)]
    Window(#[from] WindowDenial),
    /// The file to send is no longer in the media store (or no media store is configured).
    /// Nothing was sent.
    #[error("the file is no longer stored")]
    MediaMissing {
        /// The file's key in the media store.
        media_key: String,
    },
    /// The message could not be built, or the platform (or the network) refused it.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// A page whose sends are stopped until the host acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageAttention {
    /// The page.
    pub page: String,
    /// What is wrong, in words an administrator can act on.
    pub reason: String,
    /// The class of the error that stopped it.
    pub kind: ErrorKind,
    /// Since when.
    pub since: SystemTime,
}

/// What a delivery pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryReport {
    /// Effects carried out (messages sent, offers made, files fetched…).
    pub delivered: usize,
    /// Effects scheduled again.
    pub retrying: usize,
    /// Effects given up on (each recorded with its reason).
    pub failed: usize,
    /// Effects no longer relevant (an offer that lapsed, a conversation that closed).
    pub skipped: usize,
}

/// How one effect settled.
#[derive(Debug)]
pub(super) enum Settled {
    Delivered(Option<MessageId<'static>>),
    Retrying {
        reason: String,
        at: SystemTime,
        /// Whether it spends an attempt of the retry budget.
        counts: bool,
        /// Whether the platform may have it (wait for its echo first).
        unconfirmed: bool,
    },
    Failed(Undelivered),
    Skipped,
    /// Left claimed: a store failure; taken over when the claim lapses.
    Kept,
}

impl Settled {
    /// Tried again at `at`, spending an attempt.
    fn retry(reason: String, at: SystemTime) -> Self {
        Self::Retrying {
            reason,
            at,
            counts: true,
            unconfirmed: false,
        }
    }
}

/// What delivering a run's effects produced.
#[derive(Default)]
pub(super) struct Outcome {
    /// The result for the last agent message among the effects.
    pub(super) agent_send: Option<Result<Delivery, Undelivered>>,
    pub(super) report: DeliveryReport,
    /// When set (a delivery pass's batch), sends delivered or skipped are not marked done
    /// one by one but gathered here and marked at the end of the batch, in one write for
    /// those with no id ([`crate::store::ConversationStore::complete_all`]) and one for those
    /// with one ([`crate::store::ConversationStore::complete_sent`]).
    pub(super) deferred: Option<Vec<Done>>,
}

/// A send delivered or skipped, to mark done at the end of a batch ([`Outcome::deferred`]).
pub(super) struct Done {
    key: String,
    delivered: bool,
    /// The platform's id, recorded on the send's line in the same step.
    sent: Option<SentMessage>,
}

/// Effects whose claim this instance lost while delivering a batch (see [`Engine::holding`]),
/// and when the delivery began.
pub(super) struct Held {
    lost: Mutex<std::collections::HashSet<String>>,
    began: std::time::Instant,
}

impl Held {
    /// For a delivery on the clock of a pass whose `now` was taken at `began`.
    pub(super) fn new(began: std::time::Instant) -> Self {
        Self {
            lost: Mutex::default(),
            began,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.lost
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The time now, on the clock of a delivery that began at `now`: a send's answer may come
    /// long after its pass began (a backlog), and receipts are compared with its time.
    fn now(&self, now: SystemTime) -> SystemTime {
        crate::time::saturating_add(now, self.began.elapsed())
    }
}

/// The passes running now (a tick: the inbox sweep, timers, then deliveries; or a
/// `deliver_due`), each with its `now` and when it began on the monotonic clock: the engine
/// takes its time as a parameter, and a pass may run long after its `now`. A send answered
/// late in it is recorded at `now` plus the time since the pass began. A pass is forgotten
/// when it ends ([`PassGuard`]), so a `now` used again later (a manual clock) starts afresh.
#[derive(Default)]
pub(super) struct Passes(Mutex<Vec<Pass>>);

/// A running pass: its `now`, when it began, and how many callers run it (a tick's
/// deliveries are a pass within the tick, at the same `now`).
struct Pass {
    now: SystemTime,
    began: std::time::Instant,
    running: usize,
}

/// Ends a pass when dropped.
pub(super) struct PassGuard<'a> {
    passes: &'a Passes,
    now: SystemTime,
}

impl Drop for PassGuard<'_> {
    fn drop(&mut self) {
        let mut passes = self.passes.lock();
        if let Some(i) = passes.iter().position(|p| p.now == self.now) {
            passes[i].running -= 1;
            if passes[i].running == 0 {
                passes.swap_remove(i);
            }
        }
    }
}

impl Passes {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pass>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A pass at `now` begins (or joins the one running at the same `now`), until the guard
    /// is dropped.
    pub(super) fn begin(&self, now: SystemTime) -> PassGuard<'_> {
        let mut passes = self.lock();
        match passes.iter_mut().find(|p| p.now == now) {
            Some(pass) => pass.running += 1,
            None => passes.push(Pass {
                now,
                began: std::time::Instant::now(),
                running: 1,
            }),
        }
        PassGuard { passes: self, now }
    }

    /// When the pass running at `now` began; this instant when none is (a call made at
    /// once, such as an agent's send).
    pub(super) fn began(&self, now: SystemTime) -> std::time::Instant {
        self.lock()
            .iter()
            .find(|p| p.now == now)
            .map_or_else(std::time::Instant::now, |p| p.began)
    }
}

/// Pages needing attention, shared by the engine's deliveries.
#[derive(Default)]
pub(super) struct Health(Mutex<HashMap<String, PageAttention>>);

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PageAttention>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// "Not delivered: …" for a platform error that will not go away by retrying.
fn refusal_words(e: &SendError) -> String {
    match e.kind() {
        ErrorKind::OutsideWindow => "Not delivered: the customer's last message is more than 24 hours old. Use a message tag or wait for the customer.".to_owned(),
        ErrorKind::RecipientUnavailable => "Not delivered: the customer cannot receive messages from this page right now (they may have blocked it, or their account is unavailable).".to_owned(),
        ErrorKind::InvalidParameter => format!("Not delivered: Messenger refused the message as invalid{}.", code_words(e)),
        ErrorKind::TokenInvalid => "Not delivered: the page's access token is invalid or expired; an administrator must renew it.".to_owned(),
        ErrorKind::Permission => format!("Not delivered: this page may not send this message to this customer (a permission is missing, or the page is restricted){}.", code_words(e)),
        _ => format!("Not delivered: Messenger refused the message{}.", code_words(e)),
    }
}

/// " (error 100/2018001)" when Graph answered with a code, for support; never the raw text.
fn code_words(e: &SendError) -> String {
    match (e.code(), e.subcode()) {
        (Some(code), Some(sub)) => format!(" (error {code}/{sub})"),
        (Some(code), None) => format!(" (error {code})"),
        _ => String::new(),
    }
}

/// "Retrying: …" for a failure that will be tried again.
fn retry_words(e: &SendError) -> String {
    match e.kind() {
        ErrorKind::RateLimited => {
            "Messenger is limiting this page's sends; it will be sent again shortly.".to_owned()
        }
        ErrorKind::Transport => {
            "Messenger could not be reached; it will be sent again shortly.".to_owned()
        }
        _ => "Messenger failed for now; it will be sent again shortly.".to_owned(),
    }
}

/// Whether an error stops a whole page until the host acts (no retry can succeed): an
/// invalid, expired or missing token, a permission the page or app lacks (a permission code
/// with no subcode, such as 10 or 230), or a page restricted for policy (368). A permission
/// code with a subcode names a refusal for one recipient (2018028: the app is in development
/// and the customer is not a tester): that fails its own message only.
fn stops_page(e: &SendError) -> bool {
    match e.kind() {
        ErrorKind::TokenInvalid => true,
        ErrorKind::Permission => e.subcode().is_none(),
        _ => e.code() == Some(368),
    }
}

/// What an administrator reads in the attention banner.
fn attention_words(e: &SendError) -> String {
    match e.kind() {
        ErrorKind::TokenInvalid => {
            "the page's access token is invalid or expired; an administrator must renew it."
                .to_owned()
        }
        ErrorKind::Permission => format!(
            "the page or app lacks a permission Messenger requires; an administrator must grant it{}.",
            code_words(e)
        ),
        _ => format!(
            "Messenger has restricted the page; an administrator must check the page's quality and policy status{}.",
            code_words(e)
        ),
    }
}

/// A number in `[0, 1)` that spreads retries of different effects (stable per key and
/// attempt, so a test can predict the schedule's bounds).
fn jitter(key: &str, attempts: u32) -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .build_hasher();
    h.write(key.as_bytes());
    h.write_u32(attempts);
    #[allow(clippy::cast_precision_loss)]
    let unit = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
    unit
}

/// How many times a session start or release reads the conversation, writes the router and
/// reads again before it waits and retries: the conversation changed under it each time.
pub(super) const SESSION_RECONCILE_ROUNDS: usize = 3;

/// The wait before fetching an inbound file again: 2 s doubling, at most 10 minutes.
fn fetch_backoff(attempts: u32) -> Duration {
    Duration::from_secs(2)
        .saturating_mul(1u32 << attempts.min(9))
        .min(Duration::from_secs(600))
}

impl Engine {
    /// A lease for this instance from now, on the wall clock (leases are shared between
    /// instances, whatever time the callers pass for the conversations).
    pub(super) fn lease(&self) -> Lease {
        let at = SystemTime::now();
        Lease {
            owner: self.instance.clone(),
            at,
            until: crate::time::saturating_add(at, self.delivery.lease),
        }
    }

    /// This instance's name in the outbox's claims.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The delivery settings.
    pub fn delivery_config(&self) -> &DeliveryConfig {
        &self.delivery
    }

    /// Pages whose sends are stopped on this instance (an invalid, expired or missing token, a
    /// missing permission, a restricted page), with the reason.
    pub fn pages_needing_attention(&self) -> Vec<PageAttention> {
        let mut pages: Vec<_> = self.health.lock().values().cloned().collect();
        pages.sort_by(|a, b| a.page.cmp(&b.page));
        pages
    }

    /// The host fixed a page (a new token, a permission granted): its sends resume at their
    /// next check (within [`DeliveryConfig::attention_recheck`]). Returns whether it needed
    /// attention.
    pub fn resume_page(&self, page: &PageId<'_>) -> bool {
        let resumed = self.health.lock().remove(page.as_str()).is_some();
        if resumed {
            tracing::info!(page = page.as_str(), "page resumed");
            metrics::gauge!("messenger_channel_pages_needing_attention").set(f64::from(
                u32::try_from(self.health.lock().len()).unwrap_or(u32::MAX),
            ));
        }
        resumed
    }

    fn needs_attention(&self, page: &PageId<'_>) -> Option<PageAttention> {
        self.health.lock().get(page.as_str()).cloned()
    }

    fn page_stopped(&self, page: &PageId<'_>, e: &SendError, now: SystemTime) {
        let mut health = self.health.lock();
        if !health.contains_key(page.as_str()) {
            tracing::error!(page = page.as_str(), error = %e, "page needs attention: sends stopped");
            health.insert(
                page.as_str().to_owned(),
                PageAttention {
                    page: page.as_str().to_owned(),
                    reason: attention_words(e),
                    kind: e.kind(),
                    since: now,
                },
            );
        }
        metrics::gauge!("messenger_channel_pages_needing_attention")
            .set(f64::from(u32::try_from(health.len()).unwrap_or(u32::MAX)));
    }

    /// Takes back at once the effects this instance ([`crate::engine::EngineBuilder::instance`])
    /// held when it last stopped, instead of waiting for their lease to lapse: they are then
    /// delivered as interrupted (a send first waits [`DeliveryConfig::echo_grace`] for the
    /// echo of an attempt that may have reached the platform). The worker does this when it
    /// starts; a host driving the engine by hand calls it once at start-up, before serving.
    /// Returns how many effects it took back.
    ///
    /// # Errors
    /// A store failure.
    pub async fn reclaim(&self) -> Result<u64, EngineError> {
        let n = self.store.drop_claims(&self.instance).await?;
        if n > 0 {
            tracing::info!(
                effects = n,
                instance = self.instance,
                "took back the effects held before a restart"
            );
        }
        Ok(n)
    }

    /// One delivery pass: claims due effects in batches of [`DeliveryConfig::batch`] and
    /// delivers them (renewing the claim while it works), until none is due. [`Engine::tick`]
    /// and the worker ([`Engine::start`]) run it; call it yourself only if you drive the
    /// engine by hand.
    ///
    /// # Errors
    /// A store failure claiming effects; effects already claimed are left for the next pass.
    pub async fn deliver_due(&self, now: SystemTime) -> Result<DeliveryReport, EngineError> {
        let _pass = self.passes.begin(now);
        let mut total = DeliveryReport::default();
        loop {
            // Due by `now`, the pass's time: an effect rescheduled during the pass waits for
            // the next one, however short its backoff.
            let batch = self
                .store
                .claim_effects(&self.lease(), now, self.delivery.batch.max(1))
                .await?;
            if batch.is_empty() {
                break;
            }
            let keys: Vec<String> = batch.iter().map(|p| p.key.clone()).collect();
            let held = Held::new(self.passes.began(now));
            let (mut outcome, queue) = self
                .holding(&keys, &held, self.deliver_claimed(batch, &held, now))
                .await;
            // Follow-ups (offers) after the batch is recorded: they hold claims of their own.
            self.drain(queue, now, &mut outcome).await;
            total.delivered += outcome.report.delivered;
            total.retrying += outcome.report.retrying;
            total.failed += outcome.report.failed;
            total.skipped += outcome.report.skipped;
        }
        self.record_outbox_gauges(now).await;
        Ok(total)
    }

    async fn record_outbox_gauges(&self, now: SystemTime) {
        match self.store.outbox_stats().await {
            Ok(stats) => {
                #[allow(clippy::cast_precision_loss)]
                {
                    metrics::gauge!("messenger_channel_outbox_pending").set(stats.pending as f64);
                    metrics::gauge!("messenger_channel_outbox_failed").set(stats.failed as f64);
                }
                let age = stats
                    .oldest_pending
                    .and_then(|t| now.duration_since(t).ok())
                    .unwrap_or_default();
                metrics::gauge!("messenger_channel_outbox_oldest_pending_seconds")
                    .set(age.as_secs_f64());
            }
            Err(e) => tracing::debug!(error = %e, "outbox stats unavailable"),
        }
    }

    /// Delivers claimed effects, grouped by conversation, in order. The batch's conversations
    /// are read in one call, and its delivered effects marked in one write at the end (a
    /// crash before it leaves them claimed: they are then taken back as interrupted, and a
    /// send waits for its echo before any resend).
    async fn deliver_claimed(
        &self,
        batch: Vec<PendingEffect>,
        held: &Held,
        now: SystemTime,
    ) -> (Outcome, VecDeque<(ConversationId, Input)>) {
        /// A snapshot older than this is read again before its group is delivered, so that
        /// late-send checks see a conversation closed meanwhile.
        const FRESH: Duration = Duration::from_secs(1);
        let mut outcome = Outcome {
            deferred: Some(Vec::with_capacity(batch.len())),
            ..Outcome::default()
        };
        let mut queue = VecDeque::new();
        let mut ids: Vec<ConversationId> = batch.iter().map(|p| p.conversation.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let read_at = std::time::Instant::now();
        // One read for the batch; if it fails (one unreadable conversation, a blip), each group
        // is read on its own below, so that one bad conversation holds back only its own.
        let mut loaded: Option<HashMap<ConversationId, crate::store::Stored>> = match self
            .store
            .load_all(&ids)
            .await
        {
            Ok(all) => Some(
                all.into_iter()
                    .map(|s| (s.conversation.id().clone(), s))
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the batch's conversations at once; reading them one by one");
                None
            }
        };
        let mut i = 0;
        while i < batch.len() {
            let id = batch[i].conversation.clone();
            let mut j = i;
            while j < batch.len() && batch[j].conversation == id {
                j += 1;
            }
            let group = batch[i..j].to_vec();
            i = j;
            if read_at.elapsed() > FRESH {
                loaded = None;
            }
            let stored = match &loaded {
                Some(all) => Ok(all.get(&id).cloned()),
                None => self.store.load(&id).await,
            };
            match stored {
                Ok(Some(stored)) => {
                    self.deliver(
                        &stored.conversation,
                        group,
                        &[],
                        now,
                        held,
                        &mut queue,
                        &mut outcome,
                    )
                    .await;
                }
                Ok(None) => {
                    for p in group {
                        // Its conversation is gone (a host purged it): nothing to deliver to.
                        if let Err(e) = self.store.complete(&p.key).await {
                            tracing::warn!(key = p.key, error = %e, "could not drop an orphan effect");
                        } else {
                            outcome.report.skipped += 1;
                        }
                    }
                }
                Err(e) => {
                    // Left claimed; taken over when the claim lapses.
                    tracing::warn!(conversation = %id, error = %e, "could not read a conversation to deliver to");
                }
            }
        }
        if let Some(done) = outcome.deferred.take() {
            let (with_id, without): (Vec<Done>, Vec<Done>) =
                done.into_iter().partition(|d| d.sent.is_some());
            let keys: Vec<String> = without.iter().map(|d| d.key.clone()).collect();
            let sent: Vec<SentMessage> = with_id.iter().filter_map(|d| d.sent.clone()).collect();
            for (written, done) in [
                (self.store.complete_all(&keys).await, without),
                (self.store.complete_sent(&sent).await, with_id),
            ] {
                let Err(e) = written else { continue };
                // They stay claimed, and are taken back as interrupted when the claim lapses
                // (each send then waits for its echo, which records its id).
                tracing::error!(effects = done.len(), error = %e, "could not record delivered effects");
                for d in done {
                    if d.delivered {
                        outcome.report.delivered -= 1;
                    } else {
                        outcome.report.skipped -= 1;
                    }
                }
            }
        }
        (outcome, queue)
    }

    /// Runs `work` while renewing this instance's claim on `keys` every third of the lease
    /// (with the `worker` feature; without it, work must end within the lease). A key whose
    /// claim could not be renewed (it lapsed, and another instance may hold it) goes into
    /// `held`'s lost set, and `deliver` leaves it alone.
    pub(super) async fn holding<F: std::future::Future>(
        &self,
        keys: &[String],
        held: &Held,
        work: F,
    ) -> F::Output {
        #[cfg(feature = "worker")]
        {
            let every = (self.delivery.lease / 3).max(Duration::from_millis(10));
            // Boxed: the delivery it wraps is large, and callers hold this future.
            let mut work = Box::pin(work);
            loop {
                if let Ok(out) = tokio::time::timeout(every, &mut work).await {
                    return out;
                }
                match self.store.renew_claims(&self.lease(), keys).await {
                    Ok(still) => {
                        let mut lost = held.lock();
                        for key in keys {
                            if !still.contains(key) && lost.insert(key.clone()) {
                                tracing::debug!(
                                    key,
                                    "no longer held (done, released, or taken over)"
                                );
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "could not renew a claim on effects"),
                }
            }
        }
        #[cfg(not(feature = "worker"))]
        {
            let _ = (keys, held);
            work.await
        }
    }

    /// Carries out effects this instance holds, in order, settling each: delivered, retried,
    /// failed (recorded) or skipped.
    #[allow(clippy::too_many_arguments)] // the run's state, threaded through one loop
    pub(super) async fn deliver(
        &self,
        conversation: &Conversation,
        pending: Vec<PendingEffect>,
        lines: &[TranscriptLine],
        now: SystemTime,
        held: &Held,
        queue: &mut VecDeque<(ConversationId, Input)>,
        outcome: &mut Outcome,
    ) {
        // Lines recorded while delivering (failures, fetched files); the committed ones are not
        // copied unless there are some.
        let mut recorded = Vec::new();
        for p in pending {
            if held.lock().contains(&p.key) {
                // The claim lapsed while earlier effects were delivered: another instance may
                // hold it now, so it is theirs to deliver.
                tracing::warn!(
                    key = p.key,
                    "a claim lapsed before its effect was delivered; left to its new holder"
                );
                continue;
            }
            let is_agent_send = matches!(&p.effect, Effect::Send { agent: Some(_), .. });
            let settled = self
                .settle_effect(
                    conversation,
                    &p,
                    now,
                    held,
                    queue,
                    &mut recorded,
                    outcome.deferred.as_mut(),
                )
                .await;
            match &settled {
                Settled::Delivered(_) => outcome.report.delivered += 1,
                Settled::Retrying { .. } => outcome.report.retrying += 1,
                Settled::Failed(_) => outcome.report.failed += 1,
                Settled::Skipped => outcome.report.skipped += 1,
                Settled::Kept => {}
            }
            if is_agent_send {
                outcome.agent_send = match settled {
                    // A send always settles with the platform's id; none is an empty one.
                    Settled::Delivered(mid) => Some(Ok(Delivery::Sent {
                        message_id: mid.unwrap_or_else(|| MessageId::new("")),
                    })),
                    Settled::Retrying { reason, at, .. } => Some(Ok(Delivery::Retrying {
                        reason,
                        next_attempt: at,
                    })),
                    Settled::Failed(u) => Some(Err(u)),
                    Settled::Skipped | Settled::Kept => Some(Ok(Delivery::Retrying {
                        reason: "The message is saved and will be sent shortly.".to_owned(),
                        next_attempt: crate::time::saturating_add(now, self.delivery.lease),
                    })),
                };
            }
        }
        if recorded.is_empty() {
            self.notifier.updated(conversation, lines).await;
        } else {
            let all: Vec<TranscriptLine> = lines.iter().cloned().chain(recorded).collect();
            self.notifier.updated(conversation, &all).await;
        }
    }

    /// Carries out one effect and records how it settled in the outbox.
    #[allow(clippy::too_many_arguments)] // the run's state, threaded through one loop
    async fn settle_effect(
        &self,
        conversation: &Conversation,
        p: &PendingEffect,
        now: SystemTime,
        held: &Held,
        queue: &mut VecDeque<(ConversationId, Input)>,
        recorded: &mut Vec<TranscriptLine>,
        deferred: Option<&mut Vec<Done>>,
    ) -> Settled {
        let settled = match &p.effect {
            Effect::Send { agent, message } => {
                let human = agent.is_some();
                match self
                    .attempt_send(conversation, p, message, human, now)
                    .await
                {
                    Ok(s @ Settled::Delivered(_))
                        if matches!(message, Outgoing::Reaction { .. }) =>
                    {
                        self.record_reaction(conversation, p, message, now, recorded)
                            .await
                            .unwrap_or(s)
                    }
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(key = p.key, error = %e, "a send could not be carried out or recorded; it stays claimed");
                        return Settled::Kept;
                    }
                }
            }
            Effect::FetchMedia { url, sent_at } => {
                match self.fetch_media(conversation, url, *sent_at, now).await {
                    Ok(Some(lines)) => {
                        recorded.extend(lines);
                        Settled::Delivered(None)
                    }
                    Ok(None) => Settled::retry(
                        "the file could not be fetched yet".to_owned(),
                        crate::time::saturating_add(now, fetch_backoff(p.attempts)),
                    ),
                    Err(e) => Settled::retry(
                        format!("the file could not be kept yet: {e}"),
                        crate::time::saturating_add(now, fetch_backoff(p.attempts)),
                    ),
                }
            }
            Effect::RequestOffer { exclude, prefer } => {
                self.request_offer(conversation, exclude, prefer.as_ref(), p, now, queue)
                    .await
            }
            Effect::NotifyOffer(offer) => {
                // Only an offer still outstanding reaches the agent's screen.
                let current = matches!(conversation.state(), State::Open { offer: Some(o) }
                    if o.agent == offer.agent && o.expires_at == offer.expires_at);
                if current && offer.expires_at > now {
                    self.notifier.offer(conversation, offer).await;
                    Settled::Delivered(None)
                } else {
                    Settled::Skipped
                }
            }
            Effect::ConsultInvited { agent } => {
                // Only a consult still under way reaches the agent's screen.
                if conversation.consultants().contains(agent) {
                    self.notifier.consult(conversation, agent).await;
                    Settled::Delivered(None)
                } else {
                    Settled::Skipped
                }
            }
            Effect::WithdrawOffer { agent } => {
                self.notifier.withdraw(conversation.id(), agent).await;
                Settled::Delivered(None)
            }
            Effect::SetPresence { .. }
            | Effect::OfferEnded { .. }
            | Effect::SessionStarted { .. }
            | Effect::SessionReleased { .. } => {
                // Boxed: a future of its own, so that its callers' stay small.
                Box::pin(self.settle_agent_effect(conversation, p, now)).await
            }
            Effect::ForgetMessage { mid } => match self.forget_message(conversation, mid).await {
                Ok(lines) => {
                    recorded.extend(lines);
                    Settled::Delivered(None)
                }
                Err(e) => Settled::retry(
                    format!("the removed message could not be forgotten yet: {e}"),
                    crate::time::saturating_add(now, fetch_backoff(p.attempts)),
                ),
            },
        };
        // A send's time is when its answer came, not when the pass began.
        let answered = held.now(now);
        self.record(conversation, p, settled, now, answered, recorded, deferred)
            .await
    }

    /// Ends `agent`'s offer reservation of conversation `id` lapsing no later than `until`
    /// ([`AgentRouter::offer_ended`](crate::agents::AgentRouter::offer_ended)) unless the
    /// store says it is still theirs: they hold the conversation (their session takes the
    /// reservation over) or are offered it (again). Whether it was ended.
    pub(super) async fn end_offer_unless_taken(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        until: Option<SystemTime>,
    ) -> Result<bool, StoreError> {
        let taken = self.store.load(id).await?.is_some_and(|s| {
            let state = s.conversation.state();
            state.session_agent() == Some(agent)
                || matches!(state, State::Open { offer: Some(o) } if o.agent == *agent)
        });
        if taken {
            return Ok(false);
        }
        self.router.offer_ended(id, agent, until).await?;
        Ok(true)
    }

    /// Undoes the reservation made (at `hold_until`) for an offer of conversation `id` to
    /// `agent` that could not be made (another instance made an offer meanwhile, or the
    /// conversation moved on), as the store shows it now: the agent holds the conversation
    /// (their session took the reservation over): nothing; the agent is offered it already
    /// (the reservation was theirs, renewed): it lapses with that offer again; otherwise it
    /// ends, unless renewed since for a newer offer.
    pub(super) async fn undo_reservation(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        hold_until: SystemTime,
    ) -> Result<(), StoreError> {
        let Some(stored) = self.store.load(id).await? else {
            return self.router.offer_ended(id, agent, Some(hold_until)).await;
        };
        match stored.conversation.state() {
            state if state.session_agent() == Some(agent) => Ok(()),
            State::Open { offer: Some(o) } if o.agent == *agent => {
                if o.expires_at < hold_until {
                    self.router
                        .renewal_unused(id, agent, hold_until, o.expires_at)
                        .await?;
                }
                Ok(())
            }
            _ => self.router.offer_ended(id, agent, Some(hold_until)).await,
        }
    }

    /// An effect on an agent's capacity or presence, reconciled with the conversation as it
    /// is now (read again from the store), not as the committed step left it: router effects
    /// are delivered in no fixed order (retries, other instances), so a late one must not
    /// undo a later state.
    ///
    /// - A session start or release makes the router agree with the store: a session while
    ///   the agent holds the conversation, none otherwise, read again after the write until
    ///   two reads agree (at most [`SESSION_RECONCILE_ROUNDS`] rounds, then retried).
    /// - An offer's end skips an agent who holds the conversation (their session takes the
    ///   reservation over) or is offered it again, and leaves a reservation renewed for a
    ///   later offer (the router compares holds).
    /// - A presence is set only while the agent is still Available, for an offer that ended
    ///   after the last one that set it (the router's
    ///   [`presence_after_offer`](crate::agents::AgentRouter::presence_after_offer)); once
    ///   set, the notifier is told ([`crate::agents::AgentNotifier::presence`]).
    async fn settle_agent_effect(
        &self,
        conversation: &Conversation,
        p: &PendingEffect,
        now: SystemTime,
    ) -> Settled {
        let id = conversation.id();
        let retry = |what: &str, e: StoreError| {
            Settled::retry(
                format!("{what}: {e}"),
                crate::time::saturating_add(now, fetch_backoff(p.attempts)),
            )
        };
        let holds = |c: &Option<crate::store::Stored>, agent: &AgentId| {
            c.as_ref()
                .is_some_and(|s| s.conversation.state().session_agent() == Some(agent))
        };
        match &p.effect {
            Effect::SetPresence {
                agent,
                presence,
                ended_at,
            } => {
                let set = self
                    .router
                    .presence_after_offer(agent, *presence, *ended_at)
                    .await;
                match set {
                    Ok(true) => {
                        tracing::info!(%agent, presence = presence.as_str(), "the agent's presence was set after a missed or rejected offer");
                        // Set: the agent's screen is told (an effect delivered again is not
                        // set again, and tells nothing twice).
                        self.notifier.presence(agent, *presence).await;
                        Settled::Delivered(None)
                    }
                    Ok(false) => Settled::Skipped,
                    Err(e) => retry("the agent's presence could not be set yet", e),
                }
            }
            Effect::OfferEnded { agent, until } => {
                match self.end_offer_unless_taken(id, agent, *until).await {
                    Ok(ended) if ended => Settled::Delivered(None),
                    Ok(_) => Settled::Skipped,
                    Err(e) => retry("the agent's capacity could not be updated yet", e),
                }
            }
            Effect::SessionStarted { agent } | Effect::SessionReleased { agent } => {
                // Either way the router is made to agree with the store: a session while the
                // agent holds the conversation, none otherwise. Read, write, read again until
                // two reads agree (a step committed in between is followed).
                // Held, and the units of the queue it is in now (a transfer moves it).
                let read = |c: Option<crate::store::Stored>| {
                    let units = c
                        .as_ref()
                        .map_or(0, |s| self.queue_of(&s.conversation).capacity_units);
                    (holds(&c, agent), units)
                };
                let mut seen = match self.store.load(id).await {
                    Ok(c) => read(c),
                    Err(e) => return retry("the agent's capacity could not be updated yet", e),
                };
                for _ in 0..SESSION_RECONCILE_ROUNDS {
                    let (held, units) = seen;
                    let written = if held {
                        self.router.session_started(id, agent, units, now).await
                    } else {
                        self.router.session_released(id, agent).await
                    };
                    if let Err(e) = written {
                        return retry("the agent's capacity could not be updated yet", e);
                    }
                    let now_seen = match self.store.load(id).await {
                        Ok(c) => read(c),
                        Err(e) => {
                            return retry(
                                "the agent's capacity was updated but not checked yet",
                                e,
                            );
                        }
                    };
                    if now_seen == seen {
                        return Settled::Delivered(None);
                    }
                    seen = now_seen;
                }
                retry(
                    "the agent's capacity could not be settled yet",
                    StoreError::Conflict,
                )
            }
            _ => Settled::Skipped,
        }
    }

    /// Asks the router for an agent to offer a queued conversation (the follow-up
    /// [`Input::OfferTo`] goes to `queue`); a Pick queue makes no offer.
    async fn request_offer(
        &self,
        conversation: &Conversation,
        exclude: &[AgentId],
        prefer: Option<&AgentId>,
        p: &PendingEffect,
        now: SystemTime,
        queue: &mut VecDeque<(ConversationId, Input)>,
    ) -> Settled {
        // Still queued with no offer? (Another instance may have offered it since.)
        if !conversation.awaits_offer() {
            return Settled::Skipped;
        }
        // Outside its queue's operating hours it waits: offers are asked for again at each
        // tick, and made once the queue opens.
        if !self.queue_of(conversation).is_open(now) {
            return Settled::Delivered(None);
        }
        // A Pick queue makes none: the conversation waits to be picked.
        if !self.offers(conversation) {
            self.tell_no_agent(conversation, queue).await;
            return Settled::Delivered(None);
        }
        match self.reserve_offer(conversation, exclude, prefer, now).await {
            Ok(reserved) => {
                match reserved {
                    Some(agent) => {
                        queue.push_back((conversation.id().clone(), Input::OfferTo(agent)));
                    }
                    None => self.tell_no_agent(conversation, queue).await,
                }
                Settled::Delivered(None)
            }
            Err(e) => Settled::retry(
                format!("no agent could be reserved yet: {e}"),
                crate::time::saturating_add(now, fetch_backoff(p.attempts)),
            ),
        }
    }

    /// No agent took a queued conversation: the customer is told once, with their place in
    /// the queue, when the queue has that automated message (a follow-up
    /// [`Input::Automated`] for `queue`). A store failure leaves it untold.
    async fn tell_no_agent(
        &self,
        conversation: &Conversation,
        queue: &mut VecDeque<(ConversationId, Input)>,
    ) {
        let messages = &self.queue_of(conversation).messages;
        let trigger = AutomatedTrigger::NoAgentAvailable;
        let locale = conversation.customer_locale();
        if conversation.told_no_agent() || messages.get_in(trigger, locale).is_none() {
            return;
        }
        // Counted over the whole queue (a place past a page of it must not be told as the
        // last place of the page), without reading the conversations.
        let ahead = match self
            .store
            .queued_ahead(conversation.queue(), &QueuePlace::of(conversation))
            .await
        {
            Ok(ahead) => ahead,
            Err(e) => {
                tracing::warn!(error = %e, "the queue could not be counted for the customer's place in it");
                return;
            }
        };
        if let Some(text) = messages.render_in(locale, trigger, None, Some(ahead + 1)) {
            queue.push_back((
                conversation.id().clone(),
                Input::Automated { trigger, text },
            ));
        }
    }

    /// Writes how an effect settled; a store failure leaves it claimed. A send delivered is
    /// recorded as sent at `answered`.
    #[allow(clippy::too_many_arguments)] // the run's state, threaded through one loop
    async fn record(
        &self,
        conversation: &Conversation,
        p: &PendingEffect,
        settled: Settled,
        now: SystemTime,
        answered: SystemTime,
        recorded: &mut Vec<TranscriptLine>,
        deferred: Option<&mut Vec<Done>>,
    ) -> Settled {
        let written = match &settled {
            // Sends are deferred to the batch's one write (their echo protects them if it is
            // lost); effects with no echo are recorded at once. A sent message's id goes on its
            // line in the step that completes it (a customer's reaction or reply to it shows on
            // it), with the time its answer came (receipts are compared with it); the echo's
            // time, the platform's own, replaces it when the echo comes.
            Settled::Delivered(_) | Settled::Skipped => {
                let sent = match (&settled, &p.effect) {
                    (Settled::Delivered(Some(mid)), Effect::Send { .. }) => {
                        Some(SentMessage::new(p.key.clone(), mid.as_str(), answered))
                    }
                    _ => None,
                };
                match (
                    deferred.filter(|_| matches!(p.effect, Effect::Send { .. })),
                    sent,
                ) {
                    (Some(done), sent) => {
                        done.push(Done {
                            key: p.key.clone(),
                            delivered: matches!(settled, Settled::Delivered(_)),
                            sent,
                        });
                        Ok(())
                    }
                    (None, Some(sent)) => self.store.complete_sent(&[sent]).await,
                    (None, None) => self.store.complete(&p.key).await,
                }
            }
            Settled::Retrying {
                reason,
                at,
                counts,
                unconfirmed,
            } => self
                .store
                .reschedule(
                    &p.key,
                    &self.instance,
                    &Retry {
                        error: reason.clone(),
                        at: *at,
                        counts: *counts,
                        unconfirmed: *unconfirmed,
                    },
                )
                .await
                .map(drop),
            Settled::Failed(u) => {
                let line = TranscriptLine {
                    at: now,
                    author: Author::System,
                    body: LineBody::Notice(u.reason.clone()),
                    mid: None,
                    reply_to: None,
                    sent_at: None,
                };
                // Agent messages and a queue's automated messages get a line; the privacy
                // notice is recorded in the outbox only.
                let lines = if matches!(
                    &p.effect,
                    Effect::Send { agent: Some(_), .. }
                        | Effect::Send {
                            message: Outgoing::Automated { .. },
                            ..
                        }
                ) {
                    vec![line]
                } else {
                    Vec::new()
                };
                match self
                    .store
                    .fail_effect(&p.key, &self.instance, &u.reason, &lines)
                    .await
                {
                    Ok(true) => {
                        recorded.extend(lines);
                        Ok(())
                    }
                    Ok(false) => {
                        tracing::warn!(
                            key = p.key,
                            "a failed effect was taken over by another instance"
                        );
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            Settled::Kept => Ok(()),
        };
        if let Err(e) = written {
            // It stays claimed, and is taken over (as interrupted) when the claim lapses.
            tracing::error!(key = p.key, conversation = %conversation.id(), error = %e, "could not record an effect's outcome");
            return Settled::Kept;
        }
        settled
    }

    /// One attempt at a send, with the checks a late attempt needs.
    ///
    /// # Errors
    /// A store failure (reading the file, rescheduling): the effect stays claimed.
    async fn attempt_send(
        &self,
        conversation: &Conversation,
        p: &PendingEffect,
        message: &Outgoing,
        human: bool,
        now: SystemTime,
    ) -> Result<Settled, StoreError> {
        let page = conversation.page();
        if let Outgoing::Reaction { mid, reaction } = message {
            return Ok(self
                .attempt_react(conversation, p, mid, reaction.as_deref(), now)
                .await);
        }
        // A crash or a lost claim mid-send: the platform may have it. Its echo carries the
        // key and completes the effect; wait for it before sending again.
        if p.unconfirmed && !p.interrupted {
            // The echo was awaited and did not come: the host's choice, or the retry budget,
            // may end here. (An interrupted effect always waits for its echo once first: it
            // may have been sent, and only not recorded.)
            // A creation time ahead of `now` (a clock stepped back) counts as no time spent.
            let elapsed = now.duration_since(p.created_at).unwrap_or_default();
            let spent = p.attempts.saturating_add(1) >= self.delivery.retry.max_attempts
                || elapsed >= self.delivery.retry.max_elapsed;
            let give_up = p.unconfirmed && self.delivery.unconfirmed == Unconfirmed::Fail;
            if spent || give_up {
                metrics::counter!("messenger_channel_sends_total", "outcome" => "unconfirmed")
                    .increment(1);
                return Ok(Settled::Failed(Undelivered {
                    reason: "Not confirmed: Messenger did not confirm this message; it may not have reached the customer. Send it again if needed.".to_owned(),
                    error: None,
                }));
            }
        }
        if p.interrupted {
            return Ok(self.wait_for_echo(p, now, "the previous attempt was interrupted"));
        }
        if let Some(attention) = self.needs_attention(page) {
            return Ok(Settled::Retrying {
                reason: format!(
                    "Waiting: {} Messages are sent once it is fixed.",
                    attention.reason
                ),
                at: crate::time::saturating_add(now, self.delivery.attention_recheck),
                counts: false,
                unconfirmed: false,
            });
        }
        // An automated message is sent whatever became of the conversation since: the one
        // its close produced (the survey link) is sent once it is closed.
        if conversation.is_closed() && !matches!(message, Outgoing::Automated { .. }) {
            return Ok(Settled::Failed(Undelivered {
                reason:
                    "Not delivered: the conversation was closed before the message could be sent."
                        .to_owned(),
                error: None,
            }));
        }
        let sender = if human {
            Sender::HumanAgent
        } else {
            Sender::Automation
        };
        let marking = match check_window(
            conversation.last_customer_message_at(),
            now,
            sender,
            &self.window,
        ) {
            Ok(marking) => marking,
            Err(denial) => {
                return Ok(Settled::Failed(Undelivered {
                    reason: format!("Not delivered: {denial}."),
                    error: Some(denial.into()),
                }));
            }
        };
        let built = match self.outgoing(message).await? {
            Ok(m) => m
                .with_metadata(&format!("{ECHO_KEY_PREFIX}{}", p.key))
                .map_err(|e| DeliveryError::Send(e.into())),
            Err(e) => Err(e),
        };
        let message = match built {
            Ok(m) => m,
            Err(e) => {
                return Ok(Settled::Failed(Undelivered {
                    reason: format!("Not delivered: {e}."),
                    error: Some(e),
                }));
            }
        };
        let request = SendRequest::new(conversation.customer().clone(), message).marking(marking);
        let span = tracing::debug_span!("send", conversation = %conversation.id(), key = p.key, attempt = p.attempts + 1);
        match self.send.send(page, &request).instrument(span).await {
            Ok(sent) => {
                metrics::counter!("messenger_channel_sends_total", "outcome" => "delivered")
                    .increment(1);
                Ok(Settled::Delivered(Some(sent.message_id)))
            }
            Err(e) => Ok(self.after_failure(conversation, p, e, now)),
        }
    }

    /// Writes the line of an agent's reaction once it is sent: only a sent reaction is in the
    /// transcript (the desk paints it on the message). Written before the effect is done, so
    /// a crash in between sends it again (the same reaction twice is one); a store failure
    /// retries it. `None`: delivered, nothing to write.
    async fn record_reaction(
        &self,
        conversation: &Conversation,
        p: &PendingEffect,
        message: &Outgoing,
        now: SystemTime,
        recorded: &mut Vec<TranscriptLine>,
    ) -> Option<Settled> {
        let Effect::Send {
            agent: Some(agent), ..
        } = &p.effect
        else {
            return None;
        };
        let line = TranscriptLine {
            at: now,
            author: Author::Agent(agent.clone()),
            body: message.line_body(),
            mid: None,
            reply_to: None,
            sent_at: Some(now),
        };
        match self
            .store
            .append(conversation.id(), vec![line.clone()])
            .await
        {
            Ok(()) => {
                recorded.push(line);
                None
            }
            Err(e) => Some(Settled::retry(
                format!("the sent reaction could not be recorded yet: {e}"),
                crate::time::saturating_add(now, fetch_backoff(p.attempts)),
            )),
        }
    }

    /// Sends an agent's reaction. It has no echo to wait for: sent again after a failure (the
    /// same reaction twice is one), under the same checks as a message.
    async fn attempt_react(
        &self,
        conversation: &Conversation,
        p: &PendingEffect,
        mid: &str,
        reaction: Option<&str>,
        now: SystemTime,
    ) -> Settled {
        let page = conversation.page();
        if let Some(attention) = self.needs_attention(page) {
            return Settled::Retrying {
                reason: format!(
                    "Waiting: {} Reactions are sent once it is fixed.",
                    attention.reason
                ),
                at: crate::time::saturating_add(now, self.delivery.attention_recheck),
                counts: false,
                unconfirmed: false,
            };
        }
        if conversation.is_closed() {
            return Settled::Failed(Undelivered {
                reason:
                    "Not delivered: the conversation was closed before the reaction could be sent."
                        .to_owned(),
                error: None,
            });
        }
        if let Err(denial) = check_window(
            conversation.last_customer_message_at(),
            now,
            Sender::HumanAgent,
            &self.window,
        ) {
            return Settled::Failed(Undelivered {
                reason: format!("Not delivered: {denial}."),
                error: Some(denial.into()),
            });
        }
        let span = tracing::debug_span!("react", conversation = %conversation.id(), key = p.key, attempt = p.attempts + 1);
        match self
            .send
            .react(
                page,
                conversation.customer(),
                &MessageId::new(mid.to_owned()),
                reaction,
            )
            .instrument(span)
            .await
        {
            Ok(()) => {
                metrics::counter!("messenger_channel_sends_total", "outcome" => "delivered")
                    .increment(1);
                Settled::Delivered(None)
            }
            Err(e) => self.after_failure(conversation, p, e, now),
        }
    }

    /// Reschedules a send whose outcome is unknown until its echo has had time to arrive.
    fn wait_for_echo(&self, p: &PendingEffect, now: SystemTime, why: &str) -> Settled {
        tracing::info!(
            key = p.key,
            why,
            "waiting for the echo of a send before trying again"
        );
        Settled::Retrying {
            reason: format!("Checking: {why}; waiting for Messenger to confirm the message."),
            at: crate::time::saturating_add(now, self.delivery.echo_grace),
            counts: true,
            unconfirmed: true,
        }
    }

    /// Decides what a failed send becomes.
    fn after_failure(
        &self,
        conversation: &Conversation,
        p: &PendingEffect,
        e: SendError,
        now: SystemTime,
    ) -> Settled {
        tracing::warn!(conversation = %conversation.id(), key = p.key, error = %e, "send failed");
        if matches!(
            e,
            SendError::Transport {
                outcome_unknown: true,
                ..
            }
        ) {
            metrics::counter!("messenger_channel_send_retries_total").increment(1);
            return self.wait_for_echo(p, now, "Messenger did not answer in time");
        }
        if stops_page(&e) {
            self.page_stopped(conversation.page(), &e, now);
            return Settled::Retrying {
                reason: format!("Waiting: {}", attention_words(&e)),
                at: crate::time::saturating_add(now, self.delivery.attention_recheck),
                counts: false,
                unconfirmed: false,
            };
        }
        let elapsed = now.duration_since(p.created_at).unwrap_or_default();
        let attempts = p.attempts.saturating_add(1);
        if e.is_retryable() {
            return match self
                .delivery
                .retry
                .decide(&e, attempts, elapsed, jitter(&p.key, attempts))
            {
                RetryDecision::RetryAfter(wait) => {
                    metrics::counter!("messenger_channel_send_retries_total").increment(1);
                    Settled::retry(retry_words(&e), crate::time::saturating_add(now, wait))
                }
                RetryDecision::GiveUp => {
                    metrics::counter!("messenger_channel_sends_total", "outcome" => "failed")
                        .increment(1);
                    Settled::Failed(Undelivered {
                        reason: format!(
                            "Not delivered: Messenger kept failing after {attempts} attempts ({e}). Send it again later."
                        ),
                        error: Some(e.into()),
                    })
                }
            };
        }
        metrics::counter!("messenger_channel_sends_total", "outcome" => "failed").increment(1);
        Settled::Failed(Undelivered {
            reason: refusal_words(&e),
            error: Some(e.into()),
        })
    }

    /// The message to send for an effect.
    ///
    /// # Errors
    /// The outer error when the media store failed (the effect stays claimed); the inner one
    /// when the message cannot be sent at all.
    async fn outgoing(
        &self,
        message: &Outgoing,
    ) -> Result<Result<Message, DeliveryError>, StoreError> {
        Ok(match message {
            Outgoing::Text(text)
            | Outgoing::PrivacyNotice(text)
            | Outgoing::Automated { text, .. } => {
                Message::text(text).map_err(|e| DeliveryError::Send(e.into()))
            }
            // Sent as a sender action, not a message (`attempt_react`).
            Outgoing::Reaction { .. } => Err(DeliveryError::Send(
                crate::send::BuildError::Empty { field: "message" }.into(),
            )),
            Outgoing::File {
                media_key,
                name,
                mime,
            } => {
                let file = match &self.media {
                    Some(media) => media.get(media_key).await?,
                    None => None,
                };
                match file {
                    Some((bytes, _)) => Upload::new(bytes, name, mime)
                        .and_then(|u| {
                            Message::attachment(
                                MediaKind::from_mime(mime),
                                AttachmentSource::Upload(u),
                            )
                        })
                        .map_err(|e| DeliveryError::Send(e.into())),
                    None => Err(DeliveryError::MediaMissing {
                        media_key: media_key.clone(),
                    }),
                }
            }
        })
    }
}
