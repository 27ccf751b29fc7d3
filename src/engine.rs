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
//! let engine = Engine::builder(Webhook::new(&secret), Arc::new(client)).build();
//! // In the POST handler, with the raw body:
//! let report = engine.handle_webhook(&headers, &body, SystemTime::now()).await?;
//! println!("{} handled, {} duplicates", report.handled, report.duplicates);
//! // Every few seconds:
//! engine.tick(SystemTime::now()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! Order of work for one inbound message: dedup by event id; attachments checked against the
//! policy (and, when enabled, downloaded, stored and checked again with their real size and
//! first bytes); the conversation found or created and the transition applied; the new state,
//! its transcript lines and its effects committed in one step (with a version check: a
//! conflict reloads and retries, a bounded number of times); then the effects delivered (sends,
//! offers, notifications) and marked done. A crash between commit and delivery leaves the
//! effects pending in the store: [`Engine::recover`] delivers them.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::attachment::{
    AttachmentInfo, AttachmentPolicy, Direction, UNSUPPORTED_INBOUND_NOTICE, Violation,
};
use crate::conversation::{
    Author, Conversation, ConversationConfig, Effect, FileLine, Inbound, Input, LineBody, Outgoing,
    TranscriptLine, TransitionError,
};
use crate::ids::{AgentId, ConversationId, PageId, UserId};
use crate::policy::{Sender, WindowConfig, WindowDenial, check_window};
use crate::send::{AttachmentSource, MediaKind, Message, SendApi, SendError, SendRequest, Upload};
use crate::store::{
    AgentNotifier, AgentRouter, Commit, ConversationStore, DedupStore, InMemoryDedup,
    InMemoryRouter, InMemoryStore, MediaStore, PendingEffect, RecordingNotifier, StoreError,
};
use crate::webhook::{Event, EventKind, Webhook, WebhookError};

/// How long an event id is remembered: Meta retries failed deliveries for up to 36 hours.
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

/// What [`Engine::handle_webhook`] did with a batch.
#[derive(Debug, Default)]
pub struct WebhookReport {
    /// Events that changed a conversation.
    pub handled: usize,
    /// Events already seen (redeliveries).
    pub duplicates: usize,
    /// Events the channel does not act on (deliveries, reads, standby, echoes…).
    pub ignored: usize,
    /// Items that could not be read.
    pub malformed: usize,
    /// Events that failed, with their position (entry, index); they can be redelivered.
    pub failed: Vec<((usize, usize), EngineError)>,
}

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventOutcome {
    /// It changed a conversation.
    Handled,
    /// Already seen.
    Duplicate,
    /// Not something the channel acts on.
    Ignored,
}

/// Configures an [`Engine`]. Stores default to in-memory ones.
pub struct EngineBuilder {
    webhook: Webhook,
    send: Arc<dyn SendApi>,
    store: Arc<dyn ConversationStore>,
    dedup: Arc<dyn DedupStore>,
    router: Arc<dyn AgentRouter>,
    notifier: Arc<dyn AgentNotifier>,
    media: Option<Arc<dyn MediaStore>>,
    policy: AttachmentPolicy,
    window: WindowConfig,
    config: ConversationConfig,
    download_inbound: bool,
    conflict_retries: u32,
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

    /// Sets the dedup store.
    #[must_use]
    pub fn dedup(mut self, dedup: Arc<dyn DedupStore>) -> Self {
        self.dedup = dedup;
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

    /// Builds the engine.
    pub fn build(self) -> Engine {
        Engine {
            webhook: self.webhook,
            send: self.send,
            store: self.store,
            dedup: self.dedup,
            router: self.router,
            notifier: self.notifier,
            media: self.media,
            policy: self.policy,
            window: self.window,
            config: self.config,
            download_inbound: self.download_inbound,
            conflict_retries: self.conflict_retries,
            dedup_ttl: DEFAULT_DEDUP_TTL,
        }
    }
}

/// The channel's engine. Cheap to share (`Arc<Engine>`); every method takes `now`.
pub struct Engine {
    webhook: Webhook,
    send: Arc<dyn SendApi>,
    store: Arc<dyn ConversationStore>,
    dedup: Arc<dyn DedupStore>,
    router: Arc<dyn AgentRouter>,
    notifier: Arc<dyn AgentNotifier>,
    media: Option<Arc<dyn MediaStore>>,
    policy: AttachmentPolicy,
    window: WindowConfig,
    config: ConversationConfig,
    download_inbound: bool,
    conflict_retries: u32,
    dedup_ttl: Duration,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What delivering a run's effects produced.
#[derive(Default)]
struct Outcome {
    sent: Vec<String>,
    send_error: Option<SendError>,
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
            dedup: Arc::new(InMemoryDedup::new()),
            router: Arc::new(InMemoryRouter::new()),
            notifier: Arc::new(RecordingNotifier::new()),
            media: None,
            policy: AttachmentPolicy::default(),
            window: WindowConfig::default(),
            config: ConversationConfig::default(),
            download_inbound: false,
            conflict_retries: DEFAULT_CONFLICT_RETRIES,
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

    /// Verifies, parses and handles a webhook POST. Items are handled in body order; one that
    /// fails is reported and the rest go on.
    ///
    /// # Errors
    /// [`EngineError::Webhook`] when the request is not authentic or not a webhook (answer
    /// with [`WebhookError::status`]); then nothing was handled.
    pub async fn handle_webhook(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<WebhookReport, EngineError> {
        let batch = self.webhook.verify_and_parse(headers, body)?;
        Ok(self.handle_batch(&batch, now).await)
    }

    /// Handles a body whose signature the caller has already checked (with
    /// [`Engine::webhook`]), as the axum integration does before answering 200.
    ///
    /// # Errors
    /// [`EngineError::Webhook`] when the body is not a webhook.
    pub async fn handle_verified(
        &self,
        body: &[u8],
        now: SystemTime,
    ) -> Result<WebhookReport, EngineError> {
        let batch = crate::webhook::parse_with_limits(body, &self.webhook_limits())
            .map_err(|e| EngineError::Webhook(e.into()))?;
        Ok(self.handle_batch(&batch, now).await)
    }

    fn webhook_limits(&self) -> crate::webhook::Limits {
        self.webhook.parse_limits()
    }

    /// The webhook receiver (signature check and limits).
    pub fn webhook(&self) -> &Webhook {
        &self.webhook
    }

    /// Handles every item of a parsed batch, in body order.
    pub async fn handle_batch(
        &self,
        batch: &crate::webhook::Batch<'_>,
        now: SystemTime,
    ) -> WebhookReport {
        let mut report = WebhookReport::default();
        for item in batch.items() {
            match item {
                Err(_) => report.malformed += 1,
                Ok(event) => match self.handle_event(event, now).await {
                    Ok(EventOutcome::Handled) => report.handled += 1,
                    Ok(EventOutcome::Duplicate) => report.duplicates += 1,
                    Ok(EventOutcome::Ignored) => report.ignored += 1,
                    Err(e) => {
                        tracing::warn!(entry = event.entry, index = event.index, error = %e, "event failed");
                        report.failed.push(((event.entry, event.index), e));
                    }
                },
            }
        }
        report
    }

    /// Handles one parsed (and already verified) event.
    ///
    /// # Errors
    /// Store and transition failures; the event is then forgotten by the dedup store, so a
    /// redelivery is processed again.
    pub async fn handle_event(
        &self,
        event: &Event<'_>,
        now: SystemTime,
    ) -> Result<EventOutcome, EngineError> {
        // The echo of a message this channel sent: its effect is delivered, whatever happens to
        // the instance that sent it.
        if let EventKind::Echo(echo) = &event.kind {
            if let Some(key) = echo
                .metadata
                .and_then(|m| m.decode().strip_prefix(ECHO_KEY_PREFIX).map(str::to_owned))
            {
                self.store.complete(&key).await?;
                return Ok(EventOutcome::Handled);
            }
        }
        let relevant = match &event.kind {
            EventKind::Message(_) | EventKind::Postback(_) => {
                !event.standby && event.sender.is_some()
            }
            EventKind::TakeThreadControl(_) | EventKind::PassThreadControl(_) => {
                event.sender.is_some()
            }
            _ => false,
        };
        if !relevant {
            return Ok(EventOutcome::Ignored);
        }
        let key = event.dedup_key();
        if !self.dedup.first_seen(&key, now, self.dedup_ttl).await? {
            tracing::debug!(key, "duplicate event");
            return Ok(EventOutcome::Duplicate);
        }
        let result = self.process(event, now).await;
        if result.is_err() {
            // Let a redelivery try again.
            self.dedup.forget(&key).await?;
        }
        result
    }

    async fn process(
        &self,
        event: &Event<'_>,
        now: SystemTime,
    ) -> Result<EventOutcome, EngineError> {
        let page = event.page_id.clone().into_owned();
        let customer = event
            .sender
            .clone()
            .map(UserId::into_owned)
            .expect("checked by the caller");
        match &event.kind {
            EventKind::TakeThreadControl(_) | EventKind::PassThreadControl(_) => {
                let Some(stored) = self.store.find_open(&page, &customer).await? else {
                    return Ok(EventOutcome::Ignored);
                };
                let input = if matches!(event.kind, EventKind::TakeThreadControl(_)) {
                    Input::ThreadTaken
                } else {
                    Input::ThreadReturned
                };
                self.run(stored.conversation.id, input, now).await?;
                Ok(EventOutcome::Handled)
            }
            EventKind::Message(m) => {
                let mut lines = Vec::with_capacity(1 + m.attachments.len());
                if let Some(text) = m.text {
                    lines.push(LineBody::Text(text.decode().into_owned()));
                }
                for attachment in &m.attachments {
                    let file = self.inbound_file(attachment).await;
                    // A refused file never reaches the agent as a file: the panel shows the
                    // Omnichannel notice, with the policy's reason.
                    let refusal = file
                        .rejected
                        .as_ref()
                        .map(|(_, why)| format!("{UNSUPPORTED_INBOUND_NOTICE}. {why}"));
                    lines.push(LineBody::File(file));
                    if let Some(notice) = refusal {
                        lines.push(LineBody::Notice(notice));
                    }
                }
                let inbound = Inbound {
                    mid: Some(m.mid.as_str().to_owned()),
                    lines,
                };
                self.customer_input(page, customer, inbound, now).await?;
                Ok(EventOutcome::Handled)
            }
            EventKind::Postback(p) => {
                let body = LineBody::Postback {
                    title: p.title.map(|t| t.decode().into_owned()),
                    payload: p.payload.map(|t| t.decode().into_owned()),
                };
                let inbound = Inbound {
                    mid: p.mid.as_ref().map(|m| m.as_str().to_owned()),
                    lines: vec![body],
                };
                self.customer_input(page, customer, inbound, now).await?;
                Ok(EventOutcome::Handled)
            }
            _ => Ok(EventOutcome::Ignored),
        }
    }

    /// Checks an inbound attachment against the policy; downloads and stores it when enabled.
    async fn inbound_file(&self, attachment: &crate::webhook::Attachment<'_>) -> FileLine {
        let info = AttachmentInfo::from(attachment);
        let verdict = self.policy.check(Direction::Inbound, &info);
        let url = attachment.url.map(|u| u.decode().into_owned());
        let mut line = FileLine {
            name: verdict.safe_name().to_owned(),
            kind: info.platform_kind.unwrap_or("file").to_owned(),
            url: url.clone(),
            media_key: None,
            size: None,
            rejected: verdict
                .first()
                .map(|v| (v.code().to_owned(), v.to_string())),
        };
        if line.rejected.is_some() || !self.download_inbound {
            return line;
        }
        let (Some(media), Some(url)) = (&self.media, url) else {
            return line;
        };
        let max = self.policy.direction(Direction::Inbound).max_bytes();
        match self.send.download(&url, max).await {
            Ok(file) => {
                let head = &file.bytes[..file.bytes.len().min(8192)];
                let name = file.file_name.clone();
                let mut again = info;
                again.size = Some(file.bytes.len() as u64);
                again.head = Some(head);
                again.mime = file.content_type.as_deref();
                if name.is_some() {
                    again.name = name.as_deref();
                }
                let verdict = self.policy.check(Direction::Inbound, &again);
                line.name = verdict.safe_name().to_owned();
                line.size = again.size;
                if let Some(v) = verdict.first() {
                    line.rejected = Some((v.code().to_owned(), v.to_string()));
                } else {
                    match media
                        .put(file.bytes.clone(), file.content_type.as_deref())
                        .await
                    {
                        Ok(key) => line.media_key = Some(key),
                        Err(e) => tracing::warn!(error = %e, "could not store an inbound file"),
                    }
                }
            }
            Err(SendError::TooLarge { max }) => {
                let v = Violation::TooLarge { size: max + 1, max };
                line.rejected = Some((v.code().to_owned(), v.to_string()));
            }
            Err(e) => tracing::warn!(error = %e, "could not download an inbound file"),
        }
        line
    }

    /// A customer's message: into the open conversation, or a new one.
    async fn customer_input(
        &self,
        page: PageId<'static>,
        customer: UserId<'static>,
        inbound: Inbound,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        for _ in 0..self.conflict_retries {
            let (conversation, effects, expected) =
                match self.store.find_open(&page, &customer).await? {
                    None => {
                        let seed = inbound.mid.clone().unwrap_or_else(|| format!("{now:?}"));
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
                    Some(stored) => {
                        let mut c = stored.conversation;
                        let effects =
                            c.apply(Input::CustomerMessage(inbound.clone()), now, &self.config)?;
                        (c, effects, Some(stored.version))
                    }
                };
            match self.commit(conversation, expected, effects).await {
                Ok((conversation, pending, lines)) => {
                    let mut queue = VecDeque::new();
                    let mut outcome = Outcome::default();
                    self.deliver(
                        &conversation,
                        pending,
                        &lines,
                        now,
                        &mut queue,
                        &mut outcome,
                    )
                    .await;
                    self.drain(queue, now, &mut outcome).await;
                    return Ok(());
                }
                Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Contention(self.conflict_retries))
    }

    /// Commits a changed conversation; returns it with its pending effects and new lines.
    async fn commit(
        &self,
        conversation: Conversation,
        expected_version: Option<u64>,
        effects: Vec<Effect>,
    ) -> Result<(Conversation, Vec<PendingEffect>, Vec<TranscriptLine>), StoreError> {
        let mut transcript = Vec::new();
        let mut outbox = Vec::with_capacity(effects.len());
        for effect in effects {
            match effect {
                Effect::Transcript(line) => transcript.push(line),
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
        };
        let (_, pending) = self.store.commit(&commit).await?;
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
        let _enter = span.enter();
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
                .commit(conversation, Some(stored.version), effects)
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
        let (conversation, pending, lines) = self.apply(&id, &input, now).await?;
        let mut queue = VecDeque::new();
        let mut outcome = Outcome::default();
        self.deliver(
            &conversation,
            pending,
            &lines,
            now,
            &mut queue,
            &mut outcome,
        )
        .await;
        self.drain(queue, now, &mut outcome).await;
        Ok(outcome)
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

    /// Carries out committed effects, in order, marking each done.
    async fn deliver(
        &self,
        conversation: &Conversation,
        pending: Vec<PendingEffect>,
        lines: &[TranscriptLine],
        now: SystemTime,
        queue: &mut VecDeque<(ConversationId, Input)>,
        outcome: &mut Outcome,
    ) {
        // Lines recorded while delivering (sends); the committed ones are not copied unless
        // there are some.
        let mut delivered = Vec::new();
        for p in pending {
            match &p.effect {
                Effect::Send { agent, message } => {
                    if let Some(line) = self
                        .deliver_send(conversation, agent.as_ref(), message, &p.key, now, outcome)
                        .await
                    {
                        delivered.push(line);
                    }
                }
                Effect::RequestOffer { exclude, prefer } => {
                    if let Some(agent) = self
                        .router
                        .pick(&conversation.page, exclude, prefer.as_ref())
                        .await
                    {
                        queue.push_back((conversation.id.clone(), Input::OfferTo(agent)));
                    }
                }
                Effect::NotifyOffer(offer) => self.notifier.offer(conversation, offer).await,
                Effect::WithdrawOffer { agent } => {
                    self.notifier.withdraw(&conversation.id, agent).await;
                }
                Effect::OfferEnded { agent } => self.router.offer_ended(agent).await,
                Effect::SessionStarted { agent } => self.router.session_started(agent).await,
                Effect::SessionReleased { agent } => self.router.session_released(agent).await,
                _ => {}
            }
            if let Err(e) = self.store.complete(&p.key).await {
                tracing::warn!(key = p.key, error = %e, "could not mark an effect done");
            }
        }
        if delivered.is_empty() {
            self.notifier.updated(conversation, lines).await;
        } else {
            let all: Vec<TranscriptLine> = lines.iter().cloned().chain(delivered).collect();
            self.notifier.updated(conversation, &all).await;
        }
    }

    /// The message to send for an effect, and the transcript line it will make.
    async fn outgoing(&self, message: &Outgoing) -> (Result<Message, SendError>, LineBody) {
        match message {
            Outgoing::Text(text) => (
                Message::text(text).map_err(SendError::from),
                LineBody::Text(text.clone()),
            ),
            Outgoing::PrivacyNotice(text) => (
                Message::text(text).map_err(SendError::from),
                LineBody::Notice(text.clone()),
            ),
            Outgoing::File {
                media_key,
                name,
                mime,
            } => {
                let file = match &self.media {
                    Some(media) => media.get(media_key).await.ok().flatten(),
                    None => None,
                };
                let built = match file {
                    Some((bytes, _)) => Upload::new(bytes.clone(), name, mime)
                        .and_then(|u| {
                            Message::attachment(media_kind(mime), AttachmentSource::Upload(u))
                        })
                        .map_err(SendError::from),
                    None => Err(SendError::UnexpectedResponse {
                        status: 0,
                        snippet: "the file is no longer stored".into(),
                    }),
                };
                let line = FileLine {
                    name: name.clone(),
                    kind: media_kind(mime).as_str().to_owned(),
                    url: None,
                    media_key: Some(media_key.clone()),
                    size: None,
                    rejected: None,
                };
                (built, LineBody::File(line))
            }
        }
    }

    /// Sends one message; returns the transcript line recording the outcome.
    ///
    /// The message carries the effect's key as its `metadata`: Meta returns it in the echo,
    /// and an echo carrying a pending key marks that effect delivered (see
    /// [`Engine::handle_event`]), so a restarted instance does not send it again.
    async fn deliver_send(
        &self,
        conversation: &Conversation,
        agent: Option<&AgentId>,
        message: &Outgoing,
        key: &str,
        now: SystemTime,
        outcome: &mut Outcome,
    ) -> Option<TranscriptLine> {
        let sender = if agent.is_some() {
            Sender::HumanAgent
        } else {
            Sender::Automation
        };
        let (built, body) = self.outgoing(message).await;
        let built = built.and_then(|m| {
            m.with_metadata(&format!("{ECHO_KEY_PREFIX}{key}"))
                .map_err(SendError::from)
        });
        let result = match (
            built,
            check_window(
                conversation.last_customer_message_at,
                now,
                sender,
                &self.window,
            ),
        ) {
            (Ok(message), Ok(marking)) => {
                let request =
                    SendRequest::new(conversation.customer.as_str(), message).marking(marking);
                self.send.send(&conversation.page, &request).await
            }
            (Err(e), _) => Err(e),
            (_, Err(denial)) => Err(SendError::UnexpectedResponse {
                status: 0,
                snippet: denial.to_string(),
            }),
        };
        let author = agent.map_or(Author::System, |a| Author::Agent(a.clone()));
        let line = match result {
            Ok(sent) => {
                outcome.sent.push(sent.message_id.clone());
                if matches!(message, Outgoing::PrivacyNotice(_)) {
                    // The machine already recorded the notice.
                    return None;
                }
                TranscriptLine {
                    at: now,
                    author,
                    body,
                    mid: Some(sent.message_id),
                }
            }
            Err(e) => {
                tracing::warn!(conversation = %conversation.id, error = %e, "send failed");
                let line = TranscriptLine {
                    at: now,
                    author: Author::System,
                    body: LineBody::Notice(format!("not delivered: {e}")),
                    mid: None,
                };
                outcome.send_error.get_or_insert(e);
                line
            }
        };
        if let Err(e) = self
            .store
            .append(&conversation.id, vec![line.clone()])
            .await
        {
            tracing::warn!(error = %e, "could not record a delivery");
        }
        Some(line)
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

    /// Applies the agent's send (already checked) and returns the platform's message id, or
    /// the delivery's error.
    async fn agent_send(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        message: Outgoing,
        now: SystemTime,
    ) -> Result<String, EngineError> {
        let input = Input::AgentSend {
            agent: agent.clone(),
            message,
        };
        let outcome = self.run(id.clone(), input, now).await?;
        match outcome.send_error {
            Some(e) => Err(e.into()),
            None => Ok(outcome.sent.last().cloned().unwrap_or_default()),
        }
    }

    /// The agent sends text. The window and the message are checked before any network call.
    /// Returns the platform's message id.
    ///
    /// # Errors
    /// [`EngineError::Window`], [`EngineError::Transition`], [`EngineError::Send`] (with
    /// [`SendError::Invalid`] for a message over the platform's limits).
    pub async fn send_text(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        text: &str,
        now: SystemTime,
    ) -> Result<String, EngineError> {
        Message::text(text).map_err(SendError::from)?;
        self.check_send(id, agent, now).await?;
        self.agent_send(id, agent, Outgoing::Text(text.to_owned()), now)
            .await
    }

    /// The agent sends a file. The attachment policy (outbound) and the window are checked
    /// before any network call. Returns the platform's message id.
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
    ) -> Result<String, EngineError> {
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

    /// Fires what is due: offer timeouts (the offer goes to another agent), auto-close and
    /// inactivity. Call it every few seconds with the current time.
    ///
    /// # Errors
    /// Store failures; conversations that fail are skipped and retried at the next tick.
    pub async fn tick(&self, now: SystemTime) -> Result<usize, EngineError> {
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
            if matches!(c.state, crate::conversation::State::Open { offer: None }) {
                let exclude: Vec<AgentId> = c
                    .declined
                    .iter()
                    .filter(|d| d.at + self.config.reoffer_interval > now)
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

    /// Delivers effects left pending by a crash between a commit and its delivery. Offers and
    /// notifications may be repeated (at least once); sends carry the effect's key in the logs.
    ///
    /// # Errors
    /// Store failures.
    pub async fn recover(&self, now: SystemTime) -> Result<usize, EngineError> {
        let pending = self.store.pending(10_000).await?;
        let count = pending.len();
        let mut outcome = Outcome::default();
        let mut queue = VecDeque::new();
        for p in pending {
            let Some(stored) = self.store.load(&p.conversation).await? else {
                self.store.complete(&p.key).await?;
                continue;
            };
            self.deliver(
                &stored.conversation,
                vec![p],
                &[],
                now,
                &mut queue,
                &mut outcome,
            )
            .await;
        }
        self.drain(queue, now, &mut outcome).await;
        Ok(count)
    }
}
