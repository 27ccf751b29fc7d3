//! The engine: verified webhooks in, state changes saved, effects carried out, through the
//! host's traits.
//!
//! ```no_run
//! # #[cfg(feature = "graph")]
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
//! checked against the policy; the conversation found, or created in the queue the routing
//! rules choose ([`EngineBuilder::routing`]), and the transition applied;
//! the new state, its transcript lines, its effects (the outbox) and the inbox event's
//! "applied" mark committed in one step (with a version check: a conflict reloads and retries);
//! then the effects delivered (sends; offers, with the agent's capacity reserved through the
//! router in a Push queue, none in a Pick queue; notifications; fetching inbound files) and
//! marked done. A crash after the acknowledgement leaves the events in the inbox
//! ([`Engine::apply_pending`]); effects not delivered at once (a crash, a failure to retry)
//! stay in the outbox ([`Engine::deliver_due`], and the `delivery` module's table of
//! outcomes); [`Engine::tick`] runs both, and the worker ([`Engine::start`]) runs `tick`. [`Engine::handle_webhook`] does
//! the recording and the applying in one call, for tests and simple hosts: its answer then
//! waits for the applying.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::agents::{AgentNotifier, AgentRouter};
use crate::attachment::AttachmentPolicy;
use crate::conversation::ConversationConfig;
use crate::ids::{ConversationId, PageId, UserId};
use crate::send::SendApi;
use crate::store::{ConversationStore, MediaStore};
use crate::webhook::Webhook;
use crate::window::WindowConfig;

mod agent;
mod builder;
mod commit;
mod delivery;
mod error;
mod inbox;
mod ingest;
mod locale;
mod media;
mod record;
mod routing;
mod supervise;
mod timers;
mod transfer;
#[cfg(feature = "worker")]
mod worker;

pub use agent::REACTION_MID_MAX_BYTES;
pub use builder::EngineBuilder;
use delivery::Outcome;
pub use delivery::{
    Delivery, DeliveryConfig, DeliveryError, DeliveryReport, PageAttention, Unconfirmed,
    Undelivered,
};
pub use error::EngineError;
pub use inbox::{ApplyReport, INBOX_SWEEP_AFTER};
pub use ingest::{Receipt, UNPACK_FAILURES_MAX, Unpacked, WEBHOOK_PAGE, WebhookReport};
pub use locale::{CustomerLocale, DEFAULT_LOCALE_TIMEOUT, LocaleLookupError};
pub use record::CUSTOMER_RECORD_MAX_BYTES;
pub use routing::OPEN_WORK_LIMIT;
pub use supervise::{ActiveItem, QueueOverview, Supervisor, WaitingItem};
pub use timers::QUEUED_PAGE;
pub use transfer::NOTE_MAX_CHARS;
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

/// How many threads (customers) a pass over the inbox applies at once, by default: one. Each
/// thread's events are applied one after another, in order of receipt, whatever the setting
/// ([`EngineBuilder::apply_concurrency`]); on PostgreSQL, several threads at once apply a
/// backlog faster, at the cost of acknowledgements competing with more writers (see the
/// README's measurements).
pub const DEFAULT_APPLY_CONCURRENCY: usize = 1;

/// The host's display name for an agent, for customers ([`EngineBuilder::agent_names`]);
/// `None`: the agent's id.
pub type AgentNames = std::sync::Arc<dyn Fn(&crate::ids::AgentId) -> Option<String> + Send + Sync>;

/// The channel's engine. Cheap to share (`Arc<Engine>`); every method takes `now`.
pub struct Engine {
    webhook: Webhook,
    send: Arc<dyn SendApi>,
    store: Arc<dyn ConversationStore>,
    router: Arc<dyn AgentRouter>,
    notifier: Arc<dyn AgentNotifier>,
    media: Option<Arc<dyn MediaStore>>,
    attachment_policy: AttachmentPolicy,
    window: WindowConfig,
    config: ConversationConfig,
    download_inbound: bool,
    conflict_retries: u32,
    /// How many threads a pass over the inbox applies at once ([`EngineBuilder::apply_concurrency`]).
    apply_concurrency: usize,
    dedup_ttl: Duration,
    claims: inbox::Claims,
    instance: String,
    delivery: DeliveryConfig,
    health: delivery::Health,
    /// This channel's app ([`EngineBuilder::app_id`]): echoes from another app are never ours.
    app_id: Option<crate::ids::AppId>,
    routing: crate::routing::Routing,
    /// How agents are named to customers ([`EngineBuilder::agent_names`]).
    agent_names: Option<AgentNames>,
    /// The host's customer locales ([`EngineBuilder::customer_locale`]).
    customer_locale: Option<Arc<dyn CustomerLocale>>,
    /// Customers' profiles, fetched when a conversation starts ([`EngineBuilder::profiles`]).
    #[cfg(feature = "worker")]
    profiles: Option<Arc<crate::profile::Profiles>>,
    /// How long the engine waits for them ([`EngineBuilder::customer_locale_timeout`]).
    #[cfg_attr(not(feature = "worker"), allow(dead_code))]
    customer_locale_timeout: Duration,
    /// When each recent pass's `now` was taken, on this process's monotonic clock (see
    /// `delivery::Passes`).
    passes: delivery::Passes,
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

impl Engine {
    /// The conversation store.
    pub fn store(&self) -> &Arc<dyn ConversationStore> {
        &self.store
    }

    /// The lifecycle settings.
    pub fn config(&self) -> &ConversationConfig {
        &self.config
    }

    /// The attachment policy.
    pub fn attachment_policy(&self) -> &AttachmentPolicy {
        &self.attachment_policy
    }

    /// The webhook receiver (signature check and limits).
    pub fn webhook(&self) -> &Webhook {
        &self.webhook
    }
}
