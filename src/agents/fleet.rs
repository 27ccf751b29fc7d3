//! Agent notifications across a fleet on PostgreSQL: `NOTIFY` out, `LISTEN` in.
//!
//! An effect is delivered by whichever instance claims it, so an offer made on instance A
//! reaches A's notifier, while the agent may be connected to instance B. On PostgreSQL the
//! fan-out is the database's own `LISTEN`/`NOTIFY`:
//!
//! - [`PostgresNotifier`] is the engine's [`AgentNotifier`]: each call becomes one
//!   `pg_notify(channel, payload)`. The payload is a small JSON object with the kind and ids
//!   only, and a presence's name (at most [`MAX_PAYLOAD_BYTES`]): never transcript text,
//!   never a secret.
//! - [`FleetListener`], one per instance, `LISTEN`s on the channel and turns each notification
//!   back into a call on that instance's own notifier (the one that holds its agents'
//!   sockets), reading the conversation and its lines from the store where the call needs
//!   them, and checking an agent's presence against the router. Every instance hears every
//!   notification, its own included; its notifier tells the agents connected to it, as it
//!   would in a single-instance deployment.
//!
//! # Missed notifications
//!
//! `NOTIFY` is not stored: a notification sent while a listener's connection is down is lost
//! to it. When the listener's connection drops, it connects again, `LISTEN`s again, and then
//! calls [`AgentNotifier::resynced`] on its notifier: the host re-reads what its agents'
//! screens show (their offers, their conversations) from the engine or the store. A
//! notification that could not be sent (the database refused it) is logged and handed to
//! the fallback notifier, if one is set ([`PostgresNotifier::fallback`]), so that the agents of
//! the sending instance still hear of it.
//!
//! A payload that cannot be read (another program on the channel, a newer version of this
//! crate) is logged and skipped. Any user of the database can notify on the channel, so what
//! a payload says is checked before it is passed on: an offer, a consult or a withdrawal
//! against the store, an agent's presence against the router; one that does not hold (any
//! more) is skipped.
//!
//! # Examples
//!
//! ```no_run
//! # #[cfg(feature = "test-util")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use messenger_channel::agents::RecordingNotifier;
//! use messenger_channel::agents::fleet::{FleetChannel, FleetListener, PostgresNotifier};
//! use messenger_channel::engine::Engine;
//! use messenger_channel::secret::AppSecret;
//! use messenger_channel::store::PostgresStore;
//! use messenger_channel::testing::FakeSend;
//! use messenger_channel::webhook::Webhook;
//!
//! let store = Arc::new(PostgresStore::connect("postgres://app@db/messenger").await?);
//! let channel = FleetChannel::new("messenger_agents")?;
//! // What this instance's agents see (a websocket hub in a real host).
//! let desk = Arc::new(RecordingNotifier::new());
//! // Hear what every instance tells agents, before this one starts telling.
//! let listener = FleetListener::start(
//!     store.pool().clone(),
//!     channel.clone(),
//!     store.clone(),
//!     store.clone(),
//!     desk.clone(),
//! )
//! .await?;
//! let notifier = PostgresNotifier::new(store.pool().clone(), channel).fallback(desk.clone());
//! let engine = Engine::builder(Webhook::new(&AppSecret::new("app secret")?), Arc::new(FakeSend::new()))
//!     .store(store.clone())
//!     .router(store.clone())
//!     .notifier(Arc::new(notifier))
//!     .instance("web-1")
//!     .build();
//! // … serve; when the listener's connection comes back, `desk.resynced()` is called …
//! listener.stop().await;
//! # drop(engine);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use super::{AgentNotifier, AgentRouter, Presence};
use crate::conversation::{Conversation, Offer, State, TranscriptLine};
use crate::ids::{AgentId, ConversationId};
use crate::store::{ConversationStore, StoreError};

/// The longest channel name: PostgreSQL's identifiers are at most 63 bytes (`NAMEDATALEN`
/// less one); a longer one would be cut short, and two names could meet.
pub const MAX_CHANNEL_LEN: usize = 63;

/// The largest payload sent: PostgreSQL refuses a `NOTIFY` payload of 8000 bytes or more.
pub const MAX_PAYLOAD_BYTES: usize = 7999;

/// The channel used unless another is given.
pub const DEFAULT_CHANNEL: &str = "messenger_channel_agents";

/// How long the listener waits before connecting again after a failure, at first; it doubles
/// up to [`MAX_RECONNECT_DELAY`].
pub const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// The longest wait between two attempts to connect the listener again.
pub const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(10);

/// After this long without a notification, the listener asks its connection whether it is
/// alive (`SELECT 1`): a connection a NAT or a load balancer dropped silently sends no error,
/// and would leave the instance deaf.
pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// How long the heartbeat's `SELECT 1` may take before the connection counts as lost.
pub const HEARTBEAT_REPLY: Duration = Duration::from_secs(10);

/// The version of the payload's shape; a listener skips payloads of another.
const PAYLOAD_VERSION: u32 = 1;

/// What went wrong in the fleet's notifications.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The channel name is empty.
    #[error("the notification channel name is empty")]
    EmptyChannel,
    /// The channel name is longer than PostgreSQL keeps.
    #[error("the notification channel name is {len} bytes; at most {max} are allowed")]
    ChannelTooLong {
        /// Its length in bytes.
        len: usize,
        /// [`MAX_CHANNEL_LEN`].
        max: usize,
    },
    /// The channel name has a character other than an ASCII letter, digit or `_`, or starts
    /// with a digit.
    #[error(
        "the notification channel name has {found:?} at byte {at}; only ASCII letters, digits and `_` are allowed, not starting with a digit"
    )]
    ChannelCharacter {
        /// The character.
        found: char,
        /// Its byte offset.
        at: usize,
    },
    /// A payload would exceed what `NOTIFY` takes (ids too long).
    #[error("the notification payload is {len} bytes; at most {max} are allowed")]
    PayloadTooLarge {
        /// Its length in bytes.
        len: usize,
        /// [`MAX_PAYLOAD_BYTES`].
        max: usize,
    },
    /// A payload received could not be read.
    #[error("unreadable notification payload")]
    Payload(#[source] serde_json::Error),
    /// A payload of another version of the shape.
    #[error("notification payload version {found}; this version reads {supported}")]
    PayloadVersion {
        /// The payload's version.
        found: u32,
        /// The version read here.
        supported: u32,
    },
    /// The database failed (sending, listening, connecting).
    #[error("database")]
    Database(#[source] sqlx::Error),
    /// Reading what a notification names (the conversation, the agent's presence) failed.
    #[error("store")]
    Store(#[source] StoreError),
}

/// A validated `LISTEN`/`NOTIFY` channel name: 1 to [`MAX_CHANNEL_LEN`] ASCII letters,
/// digits and `_`, not starting with a digit.
///
/// ```
/// use messenger_channel::agents::fleet::{FleetChannel, FleetError};
///
/// assert_eq!(FleetChannel::new("desk_eu1").unwrap().as_str(), "desk_eu1");
/// assert!(matches!(FleetChannel::new("desk-eu1"), Err(FleetError::ChannelCharacter { found: '-', at: 4 })));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FleetChannel(String);

impl FleetChannel {
    /// The channel `name`.
    ///
    /// # Errors
    /// [`FleetError::EmptyChannel`], [`FleetError::ChannelTooLong`],
    /// [`FleetError::ChannelCharacter`].
    pub fn new(name: impl Into<String>) -> Result<Self, FleetError> {
        let name = name.into();
        validate_channel(&name)?;
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for FleetChannel {
    /// [`DEFAULT_CHANNEL`].
    fn default() -> Self {
        Self(DEFAULT_CHANNEL.to_owned())
    }
}

impl fmt::Display for FleetChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a channel name (see [`FleetChannel`]).
///
/// # Errors
/// As [`FleetChannel::new`].
pub fn validate_channel(name: &str) -> Result<(), FleetError> {
    if name.is_empty() {
        return Err(FleetError::EmptyChannel);
    }
    if name.len() > MAX_CHANNEL_LEN {
        return Err(FleetError::ChannelTooLong {
            len: name.len(),
            max: MAX_CHANNEL_LEN,
        });
    }
    for (at, c) in name.char_indices() {
        let allowed = c.is_ascii_alphabetic() || c == '_' || (at > 0 && c.is_ascii_digit());
        if !allowed {
            return Err(FleetError::ChannelCharacter { found: c, at });
        }
    }
    Ok(())
}

/// What one notification says: the kind and ids only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Message {
    /// [`AgentNotifier::offer`]: the offer is read back from the conversation.
    Offer {
        conversation: String,
        agent: String,
        /// The offer's `expires_at`, in milliseconds since the epoch: which offer.
        expires_ms: u64,
    },
    /// [`AgentNotifier::withdraw`].
    Withdraw { conversation: String, agent: String },
    /// [`AgentNotifier::consult`].
    Consult { conversation: String, agent: String },
    /// [`AgentNotifier::updated`]: the lines by digest ([`line_digest`]), read back from the
    /// transcript.
    Updated {
        conversation: String,
        lines: Vec<String>,
    },
    /// [`AgentNotifier::presence`]: checked against the router before it is passed on.
    Presence {
        agent: String,
        /// By its name in storage ([`Presence::as_str`]); another name makes the payload
        /// unreadable.
        #[serde(with = "presence_name")]
        presence: Presence,
    },
}

/// A presence on the wire: its name in storage ([`Presence::as_str`], [`Presence::parse`]),
/// one spelling whatever the enum's own serde form.
mod presence_name {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use super::Presence;

    // serde's `with` hands the field by reference.
    #[allow(clippy::trivially_copy_pass_by_ref)]
    pub(super) fn serialize<S>(presence: &Presence, s: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
    {
        s.serialize_str(presence.as_str())
    }

    pub(super) fn deserialize<'de, D>(d: D) -> Result<Presence, D::Error>
    where
        D: Deserializer<'de>,
    {
        let name = std::borrow::Cow::<str>::deserialize(d)?;
        Presence::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format_args!("unknown presence {name:?}")))
    }
}

/// A payload: its version and the message.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    v: u32,
    #[serde(flatten)]
    message: Message,
}

impl Message {
    fn kind(&self) -> &'static str {
        match self {
            Self::Offer { .. } => "offer",
            Self::Withdraw { .. } => "withdraw",
            Self::Consult { .. } => "consult",
            Self::Updated { .. } => "updated",
            Self::Presence { .. } => "presence",
        }
    }

    /// The conversation it is about; `None` for an agent's presence.
    fn conversation(&self) -> Option<&str> {
        match self {
            Self::Offer { conversation, .. }
            | Self::Withdraw { conversation, .. }
            | Self::Consult { conversation, .. }
            | Self::Updated { conversation, .. } => Some(conversation),
            Self::Presence { .. } => None,
        }
    }

    fn encode(&self) -> Result<String, FleetError> {
        let payload = serde_json::to_string(&Payload {
            v: PAYLOAD_VERSION,
            message: self.clone(),
        })
        .map_err(FleetError::Payload)?;
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(FleetError::PayloadTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_BYTES,
            });
        }
        Ok(payload)
    }

    fn decode(payload: &str) -> Result<Self, FleetError> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let Version { v } = serde_json::from_str(payload).map_err(FleetError::Payload)?;
        if v != PAYLOAD_VERSION {
            return Err(FleetError::PayloadVersion {
                found: v,
                supported: PAYLOAD_VERSION,
            });
        }
        let Payload { message, .. } = serde_json::from_str(payload).map_err(FleetError::Payload)?;
        Ok(message)
    }
}

/// Which line: 16 hex digits of the SHA-256 of the line as stored (JSON). Two instances of
/// one version of the crate give a line the same digest; a line rewritten since (a file
/// kept, a message forgotten) gets another, and its rewrite is notified on its own.
fn line_digest(line: &TranscriptLine) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    let json = serde_json::to_vec(line).unwrap_or_default();
    let hash = sha2::Sha256::digest(&json);
    let mut hex = String::with_capacity(16);
    for b in &hash[..8] {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Milliseconds since the epoch (0 before it, saturating far after).
fn millis(at: std::time::SystemTime) -> u64 {
    at.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The `updated` messages for `lines`: as few as fit a payload each (none of them empty
/// unless `lines` is).
fn updated_messages(conversation: &ConversationId, lines: &[TranscriptLine]) -> Vec<Message> {
    // `{"v":1,"kind":"updated","conversation":"…","lines":[…]}`: each digest takes 19 bytes.
    let overhead = 64 + conversation.as_str().len() * 6;
    let per_message = (MAX_PAYLOAD_BYTES.saturating_sub(overhead) / 19).max(1);
    let digests: Vec<String> = lines.iter().map(line_digest).collect();
    if digests.is_empty() {
        return vec![Message::Updated {
            conversation: conversation.as_str().to_owned(),
            lines: Vec::new(),
        }];
    }
    digests
        .chunks(per_message)
        .map(|chunk| Message::Updated {
            conversation: conversation.as_str().to_owned(),
            lines: chunk.to_vec(),
        })
        .collect()
}

/// An [`AgentNotifier`] for a fleet on PostgreSQL: each call is a `pg_notify` on the channel,
/// heard by every instance's [`FleetListener`] (see the [module docs](self)).
#[derive(Clone)]
pub struct PostgresNotifier {
    pool: sqlx::PgPool,
    channel: FleetChannel,
    fallback: Option<Arc<dyn AgentNotifier>>,
}

impl fmt::Debug for PostgresNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresNotifier")
            .field("channel", &self.channel)
            .field("fallback", &self.fallback.is_some())
            .finish_non_exhaustive()
    }
}

impl PostgresNotifier {
    /// Notifies on `channel` through `pool` (the store's pool will do:
    /// `PostgresStore::pool`).
    pub fn new(pool: sqlx::PgPool, channel: FleetChannel) -> Self {
        Self {
            pool,
            channel,
            fallback: None,
        }
    }

    /// Where a notification goes when it cannot be sent (the database refused it): this
    /// instance's own notifier, so that its agents still hear of it.
    #[must_use]
    pub fn fallback(mut self, local: Arc<dyn AgentNotifier>) -> Self {
        self.fallback = Some(local);
        self
    }

    /// The channel.
    pub fn channel(&self) -> &FleetChannel {
        &self.channel
    }

    /// Sends one message.
    ///
    /// # Errors
    /// [`FleetError::PayloadTooLarge`], [`FleetError::Database`].
    async fn send(&self, message: &Message) -> Result<(), FleetError> {
        let payload = message.encode()?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(self.channel.as_str())
            .bind(&payload)
            .execute(&self.pool)
            .await
            .map_err(FleetError::Database)?;
        Ok(())
    }

    /// Sends a message; on failure, logs it and says so.
    async fn sent(&self, message: &Message) -> bool {
        let span = tracing::debug_span!(
            "fleet_notify",
            kind = message.kind(),
            conversation = message.conversation()
        );
        match self.send(message).instrument(span).await {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(
                    kind = message.kind(),
                    conversation = message.conversation(),
                    error = %e,
                    "an agent notification could not be sent to the fleet"
                );
                false
            }
        }
    }
}

#[async_trait::async_trait]
impl AgentNotifier for PostgresNotifier {
    async fn offer(&self, conversation: &Conversation, offer: &Offer) {
        let message = Message::Offer {
            conversation: conversation.id().as_str().to_owned(),
            agent: offer.agent.as_str().to_owned(),
            expires_ms: millis(offer.expires_at),
        };
        if !self.sent(&message).await {
            if let Some(local) = &self.fallback {
                local.offer(conversation, offer).await;
            }
        }
    }

    async fn withdraw(&self, conversation: &ConversationId, agent: &AgentId) {
        let message = Message::Withdraw {
            conversation: conversation.as_str().to_owned(),
            agent: agent.as_str().to_owned(),
        };
        if !self.sent(&message).await {
            if let Some(local) = &self.fallback {
                local.withdraw(conversation, agent).await;
            }
        }
    }

    async fn updated(&self, conversation: &Conversation, lines: &[TranscriptLine]) {
        let mut all_sent = true;
        for message in updated_messages(conversation.id(), lines) {
            all_sent &= self.sent(&message).await;
        }
        if !all_sent {
            if let Some(local) = &self.fallback {
                local.updated(conversation, lines).await;
            }
        }
    }

    async fn consult(&self, conversation: &Conversation, agent: &AgentId) {
        let message = Message::Consult {
            conversation: conversation.id().as_str().to_owned(),
            agent: agent.as_str().to_owned(),
        };
        if !self.sent(&message).await {
            if let Some(local) = &self.fallback {
                local.consult(conversation, agent).await;
            }
        }
    }

    async fn presence(&self, agent: &AgentId, presence: Presence) {
        let message = Message::Presence {
            agent: agent.as_str().to_owned(),
            presence,
        };
        if !self.sent(&message).await {
            if let Some(local) = &self.fallback {
                local.presence(agent, presence).await;
            }
        }
    }

    async fn resynced(&self) {
        if let Some(local) = &self.fallback {
            local.resynced().await;
        }
    }
}

/// One instance's ear on the fleet's channel: a task that `LISTEN`s and calls the instance's
/// own notifier for each notification (see the [module docs](self)). Stopped by
/// [`FleetListener::stop`], or when dropped.
#[derive(Debug)]
pub struct FleetListener {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl FleetListener {
    /// Connects (one connection of `pool`, held while listening), `LISTEN`s on `channel`,
    /// and starts the task that hands notifications to `local`, checking them against
    /// `store` (conversations) and `router` (presence: the engines' router, the same
    /// `PostgresStore` in a fleet). Notifications sent once this returns are heard. Call it
    /// within a tokio runtime.
    ///
    /// # Errors
    /// [`FleetError::Database`]: the first connection or `LISTEN` failed.
    pub async fn start(
        pool: sqlx::PgPool,
        channel: FleetChannel,
        store: Arc<dyn ConversationStore>,
        router: Arc<dyn AgentRouter>,
        local: Arc<dyn AgentNotifier>,
    ) -> Result<Self, FleetError> {
        let listener = listen(&pool, &channel).await?;
        let relay = Relay {
            store,
            router,
            local,
        };
        let task = tokio::spawn(async move { relay.run(listener, pool, channel).await });
        Ok(Self { task: Some(task) })
    }

    /// Stops listening and waits for the task to end.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for FleetListener {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A listener on `channel`.
async fn listen(
    pool: &sqlx::PgPool,
    channel: &FleetChannel,
) -> Result<sqlx::postgres::PgListener, FleetError> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool)
        .await
        .map_err(FleetError::Database)?;
    listener
        .listen(channel.as_str())
        .await
        .map_err(FleetError::Database)?;
    Ok(listener)
}

/// What the listener's task holds.
#[derive(Clone)]
struct Relay {
    store: Arc<dyn ConversationStore>,
    router: Arc<dyn AgentRouter>,
    local: Arc<dyn AgentNotifier>,
}

impl Relay {
    /// Receives until the pool closes; after a lost connection, listens again and calls
    /// [`AgentNotifier::resynced`].
    async fn run(
        &self,
        mut listener: sqlx::postgres::PgListener,
        pool: sqlx::PgPool,
        channel: FleetChannel,
    ) {
        loop {
            let Ok(received) = tokio::time::timeout(HEARTBEAT, listener.try_recv()).await else {
                // Quiet for a while: a silently dropped connection sends no error.
                let alive = tokio::time::timeout(
                    HEARTBEAT_REPLY,
                    sqlx::query("SELECT 1").execute(&mut listener),
                )
                .await;
                if matches!(alive, Ok(Ok(_))) {
                    continue;
                }
                tracing::warn!(%channel, "fleet listener's connection does not answer");
                drop(listener);
                let Some(again) = reconnect(&pool, &channel).await else {
                    return;
                };
                listener = again;
                tracing::warn!(%channel, "fleet listener reconnected; notifications may have been missed");
                self.local.resynced().await;
                continue;
            };
            match received {
                Ok(Some(notification)) => self.handle_isolated(notification.payload()).await,
                Ok(None) => {
                    // sqlx connected and listened again before returning.
                    tracing::warn!(%channel, "fleet listener reconnected; notifications may have been missed");
                    self.local.resynced().await;
                }
                Err(sqlx::Error::PoolClosed) => {
                    tracing::info!(%channel, "fleet listener stopped: the pool is closed");
                    return;
                }
                Err(e) => {
                    tracing::warn!(%channel, error = %e, "fleet listener lost its connection");
                    drop(listener);
                    let Some(again) = reconnect(&pool, &channel).await else {
                        return;
                    };
                    listener = again;
                    tracing::warn!(%channel, "fleet listener reconnected; notifications may have been missed");
                    self.local.resynced().await;
                }
            }
        }
    }

    /// [`Relay::handle`] in a task of its own, awaited: a panic in the host's notifier ends
    /// that task, not the listener, and the host is told to resync (the notification is lost).
    async fn handle_isolated(&self, payload: &str) {
        let (relay, payload) = (self.clone(), payload.to_owned());
        if let Err(e) = tokio::spawn(async move { relay.handle(&payload).await }).await {
            tracing::error!(error = %e, "fleet notification's handling panicked; resyncing");
            self.local.resynced().await;
        }
    }

    /// Hands one payload to the local notifier; a payload that cannot be read or whose
    /// conversation does not exist is logged and skipped; when the store (or the router)
    /// cannot be read, the host is told to resync (the notification is lost).
    async fn handle(&self, payload: &str) {
        let message = match Message::decode(payload) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, bytes = payload.len(), "fleet notification skipped");
                return;
            }
        };
        let span = tracing::debug_span!(
            "fleet_notification",
            kind = message.kind(),
            conversation = message.conversation()
        );
        if let Err(e) = self.deliver(message).instrument(span).await {
            tracing::warn!(error = %e, "fleet notification not delivered; resyncing");
            if matches!(e, FleetError::Store(_)) {
                self.local.resynced().await;
            }
        }
    }

    async fn deliver(&self, message: Message) -> Result<(), FleetError> {
        match message {
            Message::Withdraw {
                conversation,
                agent,
            } => {
                // Checked against the store, which the withdrawing instance committed to
                // before notifying: a conversation that does not exist, or whose offer to
                // the agent is still outstanding, has nothing to withdraw. The latter is a
                // forgery, or a withdrawal that arrives after the same agent was offered the
                // conversation again (that offer's own notification shows it).
                let Some(c) = self.load(conversation).await? else {
                    return Ok(());
                };
                let agent = AgentId::from(agent);
                if let State::Open { offer: Some(o) } = c.state() {
                    if o.agent == agent {
                        tracing::debug!("the offer is still outstanding: nothing to withdraw");
                        return Ok(());
                    }
                }
                self.local.withdraw(c.id(), &agent).await;
            }
            Message::Offer {
                conversation,
                agent,
                expires_ms,
            } => {
                let Some(c) = self.load(conversation).await? else {
                    return Ok(());
                };
                // Only the offer still outstanding: a lapsed or replaced one has its own
                // notifications (withdraw, the next offer).
                if let State::Open { offer: Some(o) } = c.state() {
                    if o.agent.as_str() == agent && millis(o.expires_at) == expires_ms {
                        let o = o.clone();
                        self.local.offer(&c, &o).await;
                        return Ok(());
                    }
                }
                tracing::debug!("the offer is no longer outstanding");
            }
            Message::Consult {
                conversation,
                agent,
            } => {
                let Some(c) = self.load(conversation).await? else {
                    return Ok(());
                };
                let agent = AgentId::from(agent);
                if c.consultants().contains(&agent) {
                    self.local.consult(&c, &agent).await;
                }
            }
            Message::Updated {
                conversation,
                lines,
            } => {
                let id = ConversationId::from(conversation);
                let Some(c) = self.load_id(&id).await? else {
                    return Ok(());
                };
                let found = if lines.is_empty() {
                    Vec::new()
                } else {
                    let transcript = self
                        .store
                        .transcript(&id)
                        .await
                        .map_err(FleetError::Store)?;
                    pick_lines(&transcript, &lines)
                };
                if found.len() < lines.len() {
                    tracing::debug!(
                        wanted = lines.len(),
                        found = found.len(),
                        "some lines changed since"
                    );
                }
                self.local.updated(&c, &found).await;
            }
            Message::Presence { agent, presence } => {
                // Checked against the router, which the sending instance wrote to before
                // notifying: an agent whose presence is another now (they chose one since,
                // or the notification is forged) is not told of this one.
                let agent = AgentId::from(agent);
                let now = self
                    .router
                    .agent_status(&agent, std::time::SystemTime::now())
                    .await
                    .map_err(FleetError::Store)?
                    .map(|status| status.presence);
                if now == Some(presence) {
                    self.local.presence(&agent, presence).await;
                } else {
                    tracing::debug!("the agent's presence is not the one told");
                }
            }
        }
        Ok(())
    }

    async fn load(&self, id: String) -> Result<Option<Conversation>, FleetError> {
        self.load_id(&ConversationId::from(id)).await
    }

    async fn load_id(&self, id: &ConversationId) -> Result<Option<Conversation>, FleetError> {
        let stored = self.store.load(id).await.map_err(FleetError::Store)?;
        if stored.is_none() {
            tracing::debug!("no such conversation");
        }
        Ok(stored.map(|s| s.conversation))
    }
}

/// The lines of `transcript` with the `digests`, in the digests' order; a digest found
/// nowhere (the line was rewritten since) is left out.
fn pick_lines(transcript: &[TranscriptLine], digests: &[String]) -> Vec<TranscriptLine> {
    let by_digest: std::collections::HashMap<String, &TranscriptLine> = transcript
        .iter()
        .map(|line| (line_digest(line), line))
        .collect();
    digests
        .iter()
        .filter_map(|d| by_digest.get(d).map(|line| (*line).clone()))
        .collect()
}

/// Connects again, waiting longer after each failure; `None` once the pool is closed.
async fn reconnect(
    pool: &sqlx::PgPool,
    channel: &FleetChannel,
) -> Option<sqlx::postgres::PgListener> {
    let mut delay = FIRST_RECONNECT_DELAY;
    loop {
        if pool.is_closed() {
            tracing::info!(%channel, "fleet listener stopped: the pool is closed");
            return None;
        }
        tokio::time::sleep(delay).await;
        match listen(pool, channel).await {
            Ok(listener) => return Some(listener),
            Err(e) => {
                tracing::warn!(%channel, error = %e, "fleet listener could not reconnect yet");
                delay = (delay * 2).min(MAX_RECONNECT_DELAY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::conversation::{Author, LineBody};

    fn line(text: &str, secs: u64) -> TranscriptLine {
        TranscriptLine {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
            author: Author::Customer,
            body: LineBody::Text(text.to_owned()),
            mid: Some(format!("m_{secs}")),
            reply_to: None,
            sent_at: None,
        }
    }

    #[test]
    fn channel_names_are_identifiers_within_the_limit() {
        assert!(FleetChannel::new("agents").is_ok());
        assert!(FleetChannel::new("_a9").is_ok());
        assert!(FleetChannel::new("a".repeat(MAX_CHANNEL_LEN)).is_ok());
        assert!(matches!(
            FleetChannel::new("a".repeat(MAX_CHANNEL_LEN + 1)),
            Err(FleetError::ChannelTooLong { len: 64, max: 63 })
        ));
        assert!(matches!(
            FleetChannel::new(""),
            Err(FleetError::EmptyChannel)
        ));
        assert!(matches!(
            FleetChannel::new("9lives"),
            Err(FleetError::ChannelCharacter { found: '9', at: 0 })
        ));
        assert!(matches!(
            FleetChannel::new("a\"; DROP"),
            Err(FleetError::ChannelCharacter { found: '"', at: 1 })
        ));
        assert!(matches!(
            FleetChannel::new("café"),
            Err(FleetError::ChannelCharacter { found: 'é', at: 3 })
        ));
        assert_eq!(FleetChannel::default().as_str(), DEFAULT_CHANNEL);
        assert!(validate_channel(DEFAULT_CHANNEL).is_ok());
    }

    #[test]
    fn payloads_carry_ids_only_and_round_trip() {
        let secret_text = "my card number is 4111 1111 1111 1111";
        let id = ConversationId::from("c1");
        let messages = updated_messages(&id, &[line(secret_text, 1), line("hi", 2)]);
        assert_eq!(messages.len(), 1);
        let payload = messages[0].encode().unwrap();
        assert!(!payload.contains("4111"), "{payload}");
        assert!(
            !payload.contains("m_1"),
            "no platform ids either: {payload}"
        );
        assert_eq!(Message::decode(&payload).unwrap(), messages[0]);
        let offer = Message::Offer {
            conversation: "c1".to_owned(),
            agent: "ada".to_owned(),
            expires_ms: 42,
        };
        let payload = offer.encode().unwrap();
        assert_eq!(
            payload,
            r#"{"v":1,"kind":"offer","conversation":"c1","agent":"ada","expires_ms":42}"#
        );
        assert_eq!(Message::decode(&payload).unwrap(), offer);
    }

    #[test]
    fn unreadable_payloads_are_errors_not_panics() {
        for bad in [
            "",
            "not json",
            "{}",
            r#"{"v":1}"#,
            r#"{"v":1,"kind":"launch","conversation":"c1"}"#,
            r#"{"v":1,"kind":"offer","conversation":"c1"}"#,
            r#"{"v":-1,"kind":"withdraw","conversation":"c1","agent":"a"}"#,
            "[1,2,3]",
        ] {
            assert!(
                matches!(Message::decode(bad), Err(FleetError::Payload(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Message::decode(r#"{"v":2,"kind":"withdraw","conversation":"c1","agent":"a"}"#),
            Err(FleetError::PayloadVersion {
                found: 2,
                supported: 1
            })
        ));
    }

    #[test]
    fn many_lines_are_split_across_payloads_that_fit() {
        let id = ConversationId::from("c".repeat(200));
        let lines: Vec<TranscriptLine> = (0..2000).map(|i| line("x", i)).collect();
        let messages = updated_messages(&id, &lines);
        assert!(messages.len() > 1);
        let mut digests = Vec::new();
        for m in &messages {
            let payload = m.encode().expect("each payload fits");
            assert!(payload.len() <= MAX_PAYLOAD_BYTES);
            let Message::Updated { lines, .. } = m else {
                panic!("{m:?}")
            };
            assert!(!lines.is_empty());
            digests.extend(lines.iter().cloned());
        }
        assert_eq!(pick_lines(&lines, &digests), lines, "every line, in order");
    }

    #[test]
    fn presence_payloads_name_the_presence_as_stored_and_nothing_else_reads() {
        let m = Message::Presence {
            agent: "ada".to_owned(),
            presence: Presence::DoNotDisturb,
        };
        let payload = m.encode().unwrap();
        assert_eq!(
            payload,
            r#"{"v":1,"kind":"presence","agent":"ada","presence":"dnd"}"#
        );
        assert_eq!(Message::decode(&payload).unwrap(), m);
        assert_eq!(m.conversation(), None);
        for presence in [
            Presence::Available,
            Presence::Busy,
            Presence::Away,
            Presence::Offline,
        ] {
            let m = Message::Presence {
                agent: "a".to_owned(),
                presence,
            };
            assert_eq!(Message::decode(&m.encode().unwrap()).unwrap(), m);
        }
        for bad in [
            r#"{"v":1,"kind":"presence","agent":"ada"}"#,
            r#"{"v":1,"kind":"presence","presence":"away"}"#,
            r#"{"v":1,"kind":"presence","agent":"ada","presence":"Away"}"#,
            r#"{"v":1,"kind":"presence","agent":"ada","presence":"DoNotDisturb"}"#,
            r#"{"v":1,"kind":"presence","agent":"ada","presence":"asleep"}"#,
            r#"{"v":1,"kind":"presence","agent":"ada","presence":""}"#,
            r#"{"v":1,"kind":"presence","agent":"ada","presence":3}"#,
            r#"{"v":1,"kind":"presence","agent":"ada","presence":null}"#,
            r#"{"v":1,"kind":"presence","agent":7,"presence":"away"}"#,
            r#"{"v":1,"kind":"presence","agent":"ada","presence":["away"]}"#,
        ] {
            assert!(
                matches!(Message::decode(bad), Err(FleetError::Payload(_))),
                "{bad:?}"
            );
        }
        let long = Message::Presence {
            agent: "a".repeat(MAX_PAYLOAD_BYTES),
            presence: Presence::Away,
        };
        assert!(matches!(
            long.encode(),
            Err(FleetError::PayloadTooLarge {
                max: MAX_PAYLOAD_BYTES,
                ..
            })
        ));
    }

    #[test]
    fn too_long_ids_are_refused_not_cut() {
        let m = Message::Withdraw {
            conversation: "c".repeat(MAX_PAYLOAD_BYTES),
            agent: "a".to_owned(),
        };
        assert!(matches!(
            m.encode(),
            Err(FleetError::PayloadTooLarge {
                max: MAX_PAYLOAD_BYTES,
                ..
            })
        ));
    }

    #[test]
    fn lines_are_found_by_digest_and_rewritten_ones_left_out() {
        let (a, b, c) = (line("a", 1), line("b", 2), line("c", 3));
        let digests = vec![line_digest(&c), line_digest(&a)];
        assert_ne!(line_digest(&a), line_digest(&b));
        assert_eq!(
            pick_lines(&[a.clone(), b.clone(), c.clone()], &digests),
            [c.clone(), a.clone()]
        );
        let mut rewritten = c.clone();
        rewritten.body = LineBody::Text("c, edited".to_owned());
        assert_eq!(pick_lines(&[a.clone(), b, rewritten], &digests), [a]);
    }
}
