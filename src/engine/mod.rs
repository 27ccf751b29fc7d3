//! The engine: verified webhooks in, state changes saved, effects carried out, through the
//! host's traits.
//!
//! ```no_run
//! # async fn demo(headers: http::HeaderMap, body: bytes::Bytes) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::SystemTime;
//! use messenger_channel::engine::Engine;
//! use messenger_channel::secret::{AppSecret, PageAccessToken};
//! use messenger_channel::send::GraphClient;
//! use messenger_channel::webhook::Webhook;
//!
//! let secret = AppSecret::new(std::env::var("APP_SECRET")?)?;
//! let client = GraphClient::builder(PageAccessToken::new(std::env::var("PAGE_ACCESS_TOKEN")?)?)
//!     .app_secret(secret.clone())
//!     .build()?;
//! let engine = Arc::new(Engine::builder(Webhook::new(&secret), Arc::new(client)).build());
//! // In the POST handler, with the raw body: record first; answer with what that says.
//! match engine.receive(&headers, &body, SystemTime::now()).await {
//!     Ok(receipt) => {
//!         // Answer 200 now; then apply what was recorded (downloads and sends happen here).
//!         let engine = engine.clone();
//!         tokio::spawn(async move { engine.apply_threads(&receipt.threads, SystemTime::now()).await });
//!     }
//!     Err(e) => println!("answer {}", e.status()), // 4xx, or 503: Meta delivers it again
//! }
//! // Every second or so: what a crash or a failure left, timers, effects to deliver again.
//! engine.tick(SystemTime::now()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Order of work for one webhook: verify and parse; record the events the channel acts on in
//! the store's inbox, in one transaction (the acknowledgement; redeliveries are recognised by
//! their keys there); then, per thread (page and customer) in order of receipt: attachments
//! checked against the policy; the conversation found or created and the transition applied;
//! the new state, its transcript lines, its effects (the outbox) and the inbox event's
//! "applied" mark committed in one step (with a version check: a conflict reloads and retries);
//! then the effects delivered (sends, offers, notifications, fetching inbound files) and marked
//! done. A crash after the acknowledgement leaves the events in the inbox
//! ([`Engine::apply_pending`]); effects not delivered at once (a crash, a failure to retry)
//! stay in the outbox ([`Engine::deliver_due`], and the `delivery` module's table of
//! outcomes); [`Engine::tick`] runs both, and the worker ([`Engine::start`]) runs `tick`. [`Engine::handle_webhook`] does
//! the recording and the applying in one call, for tests and simple hosts: its answer then
//! waits for the applying.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tracing::Instrument as _;

use crate::attachment::{AttachmentInfo, AttachmentPolicy, Direction, Violation};
use crate::conversation::{
    Author, Conversation, ConversationConfig, Effect, FileLine, Input, LineBody, MediaState,
    Outgoing, TranscriptLine, TransitionError,
};
use crate::ids::{AgentId, ConversationId, PageId, UserId};
use crate::policy::{Sender, WindowConfig, WindowDenial, check_window};
use crate::send::{MediaKind, Message, SendApi, SendError};
use crate::store::{
    AgentNotifier, AgentRouter, Commit, ConversationStore, InMemoryRouter, InMemoryStore,
    MediaStore, PendingEffect, RecordingNotifier, StoreError,
};
use crate::webhook::{Webhook, WebhookError};

mod delivery;
mod ingest;
#[cfg(feature = "worker")]
mod worker;

use delivery::Outcome;
pub use delivery::{
    Delivery, DeliveryConfig, DeliveryReport, PageAttention, Unconfirmed, Undelivered,
};
pub use ingest::{ApplyReport, INBOX_SWEEP_AFTER, Receipt, WebhookReport};
#[cfg(feature = "worker")]
pub use worker::Worker;

/// How long an event's key is remembered after it was received: Meta retries failed
/// deliveries for up to 36 hours.
pub const DEFAULT_DEDUP_TTL: Duration = Duration::from_secs(48 * 3600);
/// Marks the `metadata` of messages this channel sends: the effect key follows.
pub const ECHO_KEY_PREFIX: &str = "mc-effect:";

/// How many times a transition is tried when the store reports conflicts. Each attempt that
/// fails lost to a writer that succeeded, so this bounds how many concurrent writers on one
/// conversation are absorbed before an event is reported as failed (and left for Meta's
/// redelivery).
pub const DEFAULT_CONFLICT_RETRIES: u32 = 32;

/// What went wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The request is not an authentic webhook.
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// The input is not possible in the conversation's state.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A send failed (the state change was saved; the transcript records the failure).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The messaging window does not allow the send. Nothing was sent.
    #[error(transparent)]
    Window(#[from] WindowDenial),
    /// The agent's message was committed (it is in the transcript) but cannot be delivered;
    /// the transcript shows why.
    #[error(transparent)]
    Undelivered(#[from] Undelivered),
    /// The attachment policy refuses the agent's file. Nothing was sent.
    #[error("{0}")]
    Attachment(Violation),
    /// No such conversation.
    #[error("no conversation {0}")]
    NotFound(ConversationId),
    /// The store kept reporting conflicts.
    #[error("the conversation kept changing concurrently; gave up after {0} attempts")]
    Contention(u32),
    /// Files need a media store, and none is configured.
    #[error("sending files needs a media store")]
    NoMediaStore,
}

impl EngineError {
    /// The HTTP status to answer a webhook POST with when [`Engine::handle_webhook`] or
    /// [`Engine::receive`] fails: the webhook's own 4xx for a request that is not an authentic
    /// webhook, 503 when the events could not be recorded (Meta delivers the body again), 500
    /// otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Self::Webhook(e) => e.status(),
            Self::Store(_) | Self::Contention(_) => 503,
            _ => 500,
        }
    }
}

/// Configures an [`Engine`]. Stores default to in-memory ones.
pub struct EngineBuilder {
    webhook: Webhook,
    send: Arc<dyn SendApi>,
    store: Arc<dyn ConversationStore>,
    router: Arc<dyn AgentRouter>,
    notifier: Arc<dyn AgentNotifier>,
    media: Option<Arc<dyn MediaStore>>,
    policy: AttachmentPolicy,
    window: WindowConfig,
    config: ConversationConfig,
    download_inbound: bool,
    conflict_retries: u32,
    instance: Option<String>,
    delivery: DeliveryConfig,
}

impl std::fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// Sets the conversation store.
    #[must_use]
    pub fn store(mut self, store: Arc<dyn ConversationStore>) -> Self {
        self.store = store;
        self
    }

    /// Sets the agent router.
    #[must_use]
    pub fn router(mut self, router: Arc<dyn AgentRouter>) -> Self {
        self.router = router;
        self
    }

    /// Sets the agent notifier.
    #[must_use]
    pub fn notifier(mut self, notifier: Arc<dyn AgentNotifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// Sets the media store (needed to send files, and to keep inbound files).
    #[must_use]
    pub fn media(mut self, media: Arc<dyn MediaStore>) -> Self {
        self.media = Some(media);
        self
    }

    /// Sets the attachment policy.
    #[must_use]
    pub fn policy(mut self, policy: AttachmentPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the messaging-window permissions.
    #[must_use]
    pub fn window(mut self, window: WindowConfig) -> Self {
        self.window = window;
        self
    }

    /// Sets the lifecycle settings.
    #[must_use]
    pub fn config(mut self, config: ConversationConfig) -> Self {
        self.config = config;
        self
    }

    /// Downloads accepted inbound files into the media store on receipt (Messenger's links
    /// expire) and checks them again with their real size and first bytes.
    #[must_use]
    pub fn download_inbound(mut self, on: bool) -> Self {
        self.download_inbound = on;
        self
    }

    /// Sets how many times a transition is tried when the store reports conflicts (default
    /// [`DEFAULT_CONFLICT_RETRIES`]).
    #[must_use]
    pub fn conflict_retries(mut self, attempts: u32) -> Self {
        self.conflict_retries = attempts.max(1);
        self
    }

    /// Names this instance in the outbox's claims. Give each instance sharing a database its
    /// own stable name (a host name, a pod name): an instance that starts again under the name
    /// it had takes back at once the effects it held when it stopped, instead of waiting for
    /// their lease to lapse. Two running instances must never share a name. Default: a random
    /// name per engine (safe, but a restarted instance waits for the lease).
    #[must_use]
    pub fn instance(mut self, name: impl Into<String>) -> Self {
        self.instance = Some(name.into());
        self
    }

    /// Sets how the outbox is worked: lease, batch, retries, echo grace (default
    /// [`DeliveryConfig::default`]).
    #[must_use]
    pub fn delivery(mut self, delivery: DeliveryConfig) -> Self {
        self.delivery = delivery;
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Engine {
        Engine {
            webhook: self.webhook,
            send: self.send,
            store: self.store,
            router: self.router,
            notifier: self.notifier,
            media: self.media,
            policy: self.policy,
            window: self.window,
            config: self.config,
            download_inbound: self.download_inbound,
            conflict_retries: self.conflict_retries,
            dedup_ttl: DEFAULT_DEDUP_TTL,
            claims: ingest::Claims::default(),
            instance: self.instance.unwrap_or_else(random_instance),
            delivery: self.delivery,
            health: delivery::Health::default(),
        }
    }
}

/// The channel's engine. Cheap to share (`Arc<Engine>`); every method takes `now`.
pub struct Engine {
    webhook: Webhook,
    send: Arc<dyn SendApi>,
    store: Arc<dyn ConversationStore>,
    router: Arc<dyn AgentRouter>,
    notifier: Arc<dyn AgentNotifier>,
    media: Option<Arc<dyn MediaStore>>,
    policy: AttachmentPolicy,
    window: WindowConfig,
    config: ConversationConfig,
    download_inbound: bool,
    conflict_retries: u32,
    dedup_ttl: Duration,
    claims: ingest::Claims,
    instance: String,
    delivery: DeliveryConfig,
    health: delivery::Health,
}

/// A name no other engine is likely to have: `instance-` and 16 hex digits from the clock,
/// the process id and a per-process counter.
fn random_instance() -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("instance-{:016x}", h.finish())
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn conversation_id(page: &PageId<'_>, customer: &UserId<'_>, seed: &str) -> ConversationId {
    let mut h = Sha256::new();
    for part in [page.as_str(), customer.as_str(), seed] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    ConversationId::new(crate::webhook::signature::to_hex(&digest[..12]))
}

/// The transcript line of an outgoing message.
fn line_body(message: &Outgoing) -> LineBody {
    match message {
        Outgoing::Text(text) => LineBody::Text(text.clone()),
        Outgoing::PrivacyNotice(text) => LineBody::Notice(text.clone()),
        Outgoing::File {
            media_key,
            name,
            mime,
        } => LineBody::File(FileLine {
            name: name.clone(),
            kind: media_kind(mime).as_str().to_owned(),
            url: None,
            media_key: Some(media_key.clone()),
            size: None,
            rejected: None,
            media: MediaState::Stored,
        }),
    }
}

fn media_kind(mime: &str) -> MediaKind {
    match mime.split('/').next() {
        Some("image") => MediaKind::Image,
        Some("video") => MediaKind::Video,
        Some("audio") => MediaKind::Audio,
        _ => MediaKind::File,
    }
}

impl Engine {
    /// A builder with in-memory stores, router and notifier, the default policy and window.
    pub fn builder(webhook: Webhook, send: Arc<dyn SendApi>) -> EngineBuilder {
        EngineBuilder {
            webhook,
            send,
            store: Arc::new(InMemoryStore::new()),
            router: Arc::new(InMemoryRouter::new()),
            notifier: Arc::new(RecordingNotifier::new()),
            media: None,
            policy: AttachmentPolicy::default(),
            window: WindowConfig::default(),
            config: ConversationConfig::default(),
            download_inbound: false,
            conflict_retries: DEFAULT_CONFLICT_RETRIES,
            instance: None,
            delivery: DeliveryConfig::default(),
        }
    }

    /// The conversation store.
    pub fn store(&self) -> &Arc<dyn ConversationStore> {
        &self.store
    }

    /// The lifecycle settings.
    pub fn config(&self) -> &ConversationConfig {
        &self.config
    }

    /// The attachment policy.
    pub fn policy(&self) -> &AttachmentPolicy {
        &self.policy
    }

    /// The webhook receiver (signature check and limits).
    pub fn webhook(&self) -> &Webhook {
        &self.webhook
    }

    /// Delivers a committed run's effects and the follow-ups they lead to.
    async fn deliver_run(
        &self,
        (conversation, pending, lines): (Conversation, Vec<PendingEffect>, Vec<TranscriptLine>),
        now: SystemTime,
    ) -> Outcome {
        let mut queue = VecDeque::new();
        let mut outcome = Outcome::default();
        let keys: Vec<String> = pending.iter().map(|p| p.key.clone()).collect();
        self.holding(
            &keys,
            now,
            self.deliver(
                &conversation,
                pending,
                &lines,
                now,
                &mut queue,
                &mut outcome,
            ),
        )
        .await;
        self.drain(queue, now, &mut outcome).await;
        outcome
    }

    /// Commits a changed conversation; returns it with its pending effects and new lines.
    async fn commit(
        &self,
        conversation: Conversation,
        expected_version: Option<u64>,
        effects: Vec<Effect>,
        applies: Option<u64>,
        now: SystemTime,
    ) -> Result<(Conversation, Vec<PendingEffect>, Vec<TranscriptLine>), StoreError> {
        let mut transcript = Vec::new();
        let mut outbox = Vec::with_capacity(effects.len());
        for effect in effects {
            match effect {
                Effect::Transcript(line) => transcript.push(line),
                // An agent's message is in the transcript from the moment it is committed,
                // whatever becomes of its delivery (a failure adds a notice).
                Effect::Send {
                    agent: Some(agent),
                    message,
                } => {
                    transcript.push(TranscriptLine {
                        at: now,
                        author: Author::Agent(agent.clone()),
                        body: line_body(&message),
                        mid: None,
                    });
                    outbox.push(Effect::Send {
                        agent: Some(agent),
                        message,
                    });
                }
                // Timers live in the saved deadline, and closing in the saved state: nothing
                // to deliver, so nothing for the outbox to write and mark done.
                Effect::SetTimer { .. } | Effect::CancelTimer { .. } | Effect::Closed { .. } => {}
                other => outbox.push(other),
            }
        }
        let deadline = conversation.next_deadline(&self.config);
        let commit = Commit {
            conversation,
            expected_version,
            transcript,
            effects: outbox,
            deadline,
            applies,
            at: now,
            // Delivered by this instance right after the commit.
            claim: Some(self.lease(now)),
        };
        let (_, pending) = self.store.commit(&commit).await?;
        metrics::counter!("messenger_channel_commits_total").increment(1);
        Ok((commit.conversation, pending, commit.transcript))
    }

    /// Loads, applies and commits one input, retrying on conflicts.
    async fn apply(
        &self,
        id: &ConversationId,
        input: &Input,
        now: SystemTime,
    ) -> Result<(Conversation, Vec<PendingEffect>, Vec<TranscriptLine>), EngineError> {
        let span = tracing::debug_span!("transition", conversation = %id, input = ?input.kind());
        self.apply_retrying(id, input, now).instrument(span).await
    }

    async fn apply_retrying(
        &self,
        id: &ConversationId,
        input: &Input,
        now: SystemTime,
    ) -> Result<(Conversation, Vec<PendingEffect>, Vec<TranscriptLine>), EngineError> {
        for _ in 0..self.conflict_retries {
            let stored = self
                .store
                .load(id)
                .await?
                .ok_or_else(|| EngineError::NotFound(id.clone()))?;
            let mut conversation = stored.conversation;
            let from = conversation.state.kind();
            let effects = conversation.apply(input.clone(), now, &self.config)?;
            tracing::debug!(?from, to = ?conversation.state.kind(), effects = effects.len(), "transition");
            match self
                .commit(conversation, Some(stored.version), effects, None, now)
                .await
            {
                Ok(done) => return Ok(done),
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Contention(self.conflict_retries))
    }

    /// Applies an input and everything it leads to (offers found by the router).
    async fn run(
        &self,
        id: ConversationId,
        input: Input,
        now: SystemTime,
    ) -> Result<Outcome, EngineError> {
        let done = self.apply(&id, &input, now).await?;
        Ok(self.deliver_run(done, now).await)
    }

    /// Follow-up inputs (offers), each applied and delivered in turn.
    async fn drain(
        &self,
        mut queue: VecDeque<(ConversationId, Input)>,
        now: SystemTime,
        outcome: &mut Outcome,
    ) {
        while let Some((id, input)) = queue.pop_front() {
            match self.apply(&id, &input, now).await {
                Ok((conversation, pending, lines)) => {
                    self.deliver(&conversation, pending, &lines, now, &mut queue, outcome)
                        .await;
                }
                Err(e) => {
                    // Another instance made an offer meanwhile, or the conversation moved on:
                    // the agent picked for it is free again.
                    if let Input::OfferTo(agent) = &input {
                        self.router.offer_ended(agent).await;
                    }
                    match e {
                        EngineError::Transition(e) => {
                            tracing::debug!(error = %e, "follow-up dropped");
                        }
                        e => tracing::warn!(error = %e, "follow-up failed"),
                    }
                }
            }
        }
    }

    /// The agent accepts an offer.
    ///
    /// # Errors
    /// [`EngineError::Transition`] when the offer was not made to this agent or has expired.
    pub async fn accept(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        self.run(id.clone(), Input::Accept(agent.clone()), now)
            .await
            .map(drop)
    }

    /// The agent rejects an offer; it goes to another agent.
    ///
    /// # Errors
    /// As [`Engine::accept`].
    pub async fn reject(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        self.run(id.clone(), Input::Reject(agent.clone()), now)
            .await
            .map(drop)
    }

    /// The agent presses End (Wrap-up).
    ///
    /// # Errors
    /// [`EngineError::Transition`] unless the agent holds the conversation, Active.
    pub async fn end(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        self.run(id.clone(), Input::End(agent.clone()), now)
            .await
            .map(drop)
    }

    /// The agent closes the session: Waiting from Active, Closed from Wrap-up.
    ///
    /// # Errors
    /// [`EngineError::Transition`] unless the agent holds the conversation.
    pub async fn close_session(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        self.run(id.clone(), Input::CloseSession(agent.clone()), now)
            .await
            .map(drop)
    }

    /// The agent revives a Waiting conversation.
    ///
    /// # Errors
    /// [`EngineError::Transition`] unless the agent held it.
    pub async fn revive(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        self.run(id.clone(), Input::Revive(agent.clone()), now)
            .await
            .map(drop)
    }

    /// Checks that the agent may send now: holds the conversation, thread not paused, window
    /// open.
    async fn check_send(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        let stored = self
            .store
            .load(id)
            .await?
            .ok_or_else(|| EngineError::NotFound(id.clone()))?;
        let c = stored.conversation;
        // A dry run of the transition: holder, state and pause are checked without saving.
        c.clone().apply(
            Input::AgentSend {
                agent: agent.clone(),
                message: Outgoing::Text(String::new()),
            },
            now,
            &self.config,
        )?;
        check_window(
            c.last_customer_message_at,
            now,
            Sender::HumanAgent,
            &self.window,
        )?;
        Ok(())
    }

    /// Applies the agent's send (already checked) and returns what became of its first
    /// attempt.
    async fn agent_send(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        message: Outgoing,
        now: SystemTime,
    ) -> Result<Delivery, EngineError> {
        let input = Input::AgentSend {
            agent: agent.clone(),
            message,
        };
        let outcome = self.run(id.clone(), input, now).await?;
        match outcome.agent_send {
            Some(Ok(delivery)) => Ok(delivery),
            Some(Err(undelivered)) => Err(undelivered.into()),
            // The commit produced no send (it cannot happen for an accepted AgentSend).
            None => Err(EngineError::NotFound(id.clone())),
        }
    }

    /// The agent sends text. The window and the message are checked before any network call.
    /// Once they pass, the message is committed (in the transcript and the outbox) and sent:
    /// [`Delivery::Sent`] with the platform's message id, or [`Delivery::Retrying`] when it
    /// will be tried again (the outbox delivers it at least once).
    ///
    /// # Errors
    /// Before the commit (nothing saved): [`EngineError::Window`], [`EngineError::Transition`],
    /// [`EngineError::Send`] (with [`SendError::Invalid`] for a message over the platform's
    /// limits). After it: [`EngineError::Undelivered`] when the platform refused the message
    /// for good; the transcript shows why.
    pub async fn send_text(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        text: &str,
        now: SystemTime,
    ) -> Result<Delivery, EngineError> {
        Message::text(text).map_err(SendError::from)?;
        self.check_send(id, agent, now).await?;
        self.agent_send(id, agent, Outgoing::Text(text.to_owned()), now)
            .await
    }

    /// The agent sends a file. The attachment policy (outbound) and the window are checked
    /// before any network call; then as [`Engine::send_text`].
    ///
    /// # Errors
    /// [`EngineError::Attachment`] with the policy's first violation, or as
    /// [`Engine::send_text`].
    pub async fn send_file(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        name: &str,
        mime: &str,
        bytes: bytes::Bytes,
        now: SystemTime,
    ) -> Result<Delivery, EngineError> {
        let info = AttachmentInfo::new()
            .name(name)
            .mime(mime)
            .size(bytes.len() as u64)
            .head(&bytes[..bytes.len().min(8192)]);
        let verdict = self.policy.check(Direction::Outbound, &info);
        if let Some(v) = verdict.first() {
            return Err(EngineError::Attachment(v.clone()));
        }
        let safe_name = verdict.safe_name().to_owned();
        let media = self.media.as_ref().ok_or(EngineError::NoMediaStore)?;
        self.check_send(id, agent, now).await?;
        let media_key = media.put(bytes, Some(mime)).await?;
        let message = Outgoing::File {
            media_key,
            name: safe_name,
            mime: mime.to_owned(),
        };
        self.agent_send(id, agent, message, now).await
    }

    /// Applies events left in the inbox by a crash or a failure ([`Engine::apply_pending`]),
    /// fires what is due (offer timeouts: the offer goes to another agent; auto-close and
    /// inactivity), and delivers the outbox's due effects ([`Engine::deliver_due`]). The
    /// worker ([`Engine::start`]) calls it every [`DeliveryConfig::poll`]; a host driving
    /// the engine by hand calls it every second or so with the current time.
    ///
    /// # Errors
    /// Store failures; conversations that fail are skipped and retried at the next tick.
    pub async fn tick(&self, now: SystemTime) -> Result<usize, EngineError> {
        // Each step runs even when an earlier one failed; the first failure is returned.
        let mut first_error = None;
        match self.apply_pending(now).await {
            Ok(swept) => {
                for (thread, e) in &swept.failed {
                    tracing::warn!(thread, error = %e, "inbox sweep: an event is still pending");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "inbox sweep failed");
                first_error = Some(e);
            }
        }
        let fired = match self.fire_due(now).await {
            Ok(fired) => fired,
            Err(e) => {
                tracing::warn!(error = %e, "timers failed");
                first_error.get_or_insert(e);
                0
            }
        };
        if let Err(e) = self.deliver_due(now).await {
            tracing::warn!(error = %e, "delivery failed");
            first_error.get_or_insert(e);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(fired),
        }
    }

    /// Fires due timers and gives queued conversations another chance at an offer.
    async fn fire_due(&self, now: SystemTime) -> Result<usize, EngineError> {
        let due = self.store.due(now).await?;
        let mut fired = 0;
        for id in due {
            match self.run(id, Input::Tick, now).await {
                Ok(_) => fired += 1,
                Err(e) => tracing::warn!(error = %e, "tick failed"),
            }
        }
        // Conversations left in the queue without an offer get another chance.
        for stored in self.store.list_queued().await? {
            let c = stored.conversation;
            if !c.paused && matches!(c.state, crate::conversation::State::Open { offer: None }) {
                let exclude: Vec<AgentId> = c
                    .declined
                    .iter()
                    .filter(|d| {
                        crate::time::saturating_add(d.at, self.config.reoffer_interval) > now
                    })
                    .map(|d| d.agent.clone())
                    .collect();
                if let Some(agent) = self.router.pick(&c.page, &exclude, None).await {
                    let mut outcome = Outcome::default();
                    self.drain(
                        VecDeque::from([(c.id.clone(), Input::OfferTo(agent))]),
                        now,
                        &mut outcome,
                    )
                    .await;
                }
            }
        }
        Ok(fired)
    }
}
