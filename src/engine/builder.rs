//! Configuring an [`Engine`]: stores, router, routing, notifier, policies, delivery.

use std::sync::Arc;
use std::time::SystemTime;

use super::{
    DEFAULT_APPLY_CONCURRENCY, DEFAULT_CONFLICT_RETRIES, DEFAULT_DEDUP_TTL, DeliveryConfig, Engine,
    delivery, inbox,
};
use crate::agents::{AgentNotifier, AgentRouter, InMemoryRouter, RecordingNotifier};
use crate::attachment::AttachmentPolicy;
use crate::conversation::ConversationConfig;
use crate::ids::AppId;
use crate::routing::Routing;
use crate::send::SendApi;
use crate::store::{ConversationStore, InMemoryStore, MediaStore};
use crate::webhook::Webhook;
use crate::window::WindowConfig;

/// Configures an [`Engine`]. Stores default to in-memory ones.
pub struct EngineBuilder {
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
    apply_concurrency: usize,
    instance: Option<String>,
    delivery: DeliveryConfig,
    app_id: Option<AppId>,
    routing: Routing,
    agent_names: Option<super::AgentNames>,
    customer_locale: Option<Arc<dyn super::CustomerLocale>>,
    customer_locale_timeout: std::time::Duration,
    #[cfg(feature = "worker")]
    profiles: Option<Arc<crate::profile::Profiles>>,
    /// Whether the host set the store, and the router.
    store_set: bool,
    router_set: bool,
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
        self.store_set = true;
        self
    }

    /// Sets the agent router.
    #[must_use]
    pub fn router(mut self, router: Arc<dyn AgentRouter>) -> Self {
        self.router = router;
        self.router_set = true;
        self
    }

    /// Sets the queues and routing rules (default: [`Routing::default`], one Push queue for
    /// every conversation). A conversation is classified into a queue when it starts; a
    /// Push queue offers it to the best agent the router reserves; a Pick queue makes no
    /// offer, and agents pick it ([`Engine::open_work`], [`Engine::pick`]).
    #[must_use]
    pub fn routing(mut self, routing: Routing) -> Self {
        self.routing = routing;
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
    pub fn attachment_policy(mut self, policy: AttachmentPolicy) -> Self {
        self.attachment_policy = policy;
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

    /// Sets how many threads (customers) a pass over the inbox applies at once (default
    /// [`DEFAULT_APPLY_CONCURRENCY`]; at least 1). A thread's events are always applied one
    /// after another, in order of receipt, whatever this is.
    #[must_use]
    pub fn apply_concurrency(mut self, threads: usize) -> Self {
        self.apply_concurrency = threads.max(1);
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
        self.delivery = delivery.with_floors();
        self
    }

    /// The app id of this channel's Meta app. When set, an echo is this channel's own send
    /// only if it carries its key and comes from this app; an echo with the key from another
    /// app (another deployment on the same Page, a forgery) is recorded as that app's reply.
    /// Default: unset (the key alone decides).
    #[must_use]
    pub fn app_id(mut self, app: AppId) -> Self {
        self.app_id = Some(app);
        self
    }

    /// How agents are named to customers in automated messages (the `{AgentName}` of
    /// [`crate::conversation::AutomatedTrigger::AgentJoined`]): the host's display name for an
    /// agent id, `None` for the id itself (the default for every agent).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use messenger_channel::engine::AgentNames;
    /// use messenger_channel::ids::AgentId;
    ///
    /// let names: AgentNames =
    ///     Arc::new(|agent: &AgentId| (agent.as_str() == "ada").then(|| "Ada L.".to_owned()));
    /// assert_eq!(names(&AgentId::from("ada")).as_deref(), Some("Ada L."));
    /// assert_eq!(names(&AgentId::from("bob")), None, "bob is named by his id");
    /// // Engine::builder(webhook, send).agent_names(names).build()
    /// ```
    #[must_use]
    pub fn agent_names(mut self, names: super::AgentNames) -> Self {
        self.agent_names = Some(names);
        self
    }

    /// The host's customer locales, asked once when a customer starts a conversation: a
    /// routing fact and the language of the automated messages ([`super::CustomerLocale`]).
    /// Default: none (no conversation has a locale).
    #[must_use]
    pub fn customer_locale(mut self, locales: Arc<dyn super::CustomerLocale>) -> Self {
        self.customer_locale = Some(locales);
        self
    }

    /// Who is writing: each new conversation's customer profile (name, picture) is fetched
    /// once through `profiles`, in the background after the conversation is committed (never
    /// on the webhook's path), and kept in its store, so that screens showing the offer find
    /// it there ([`crate::profile::Profiles::cached`]). Default: none (the host fetches when
    /// it shows a conversation). Needs the `worker` feature (a tokio runtime).
    #[cfg(feature = "worker")]
    #[cfg_attr(docsrs, doc(cfg(feature = "worker")))]
    #[must_use]
    pub fn profiles(mut self, profiles: Arc<crate::profile::Profiles>) -> Self {
        self.profiles = Some(profiles);
        self
    }

    /// How long the engine waits for [`EngineBuilder::customer_locale`]'s answer before it
    /// starts the conversation without a locale (with the `worker` feature). Default:
    /// [`super::DEFAULT_LOCALE_TIMEOUT`], 2 seconds.
    #[must_use]
    pub fn customer_locale_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.customer_locale_timeout = timeout;
        self
    }

    /// Builds the engine. A store set without a router is logged (`warn`): the default
    /// router counts capacity in this process only, so instances sharing the store would
    /// each fill agents up to their capacity; give the SQL store as the router too
    /// (`.router(store.clone())`).
    pub fn build(self) -> Engine {
        if self.store_set && !self.router_set {
            tracing::warn!(
                "a store without a router: agents' capacity and presence are kept in this process only; with several instances on one database, set the store as the router too"
            );
        }
        Engine {
            webhook: self.webhook,
            send: self.send,
            store: self.store,
            router: self.router,
            notifier: self.notifier,
            media: self.media,
            attachment_policy: self.attachment_policy,
            window: self.window,
            config: self.config,
            download_inbound: self.download_inbound,
            conflict_retries: self.conflict_retries,
            apply_concurrency: self.apply_concurrency,
            dedup_ttl: DEFAULT_DEDUP_TTL,
            claims: inbox::Claims::default(),
            passes: super::delivery::Passes::default(),
            instance: self.instance.unwrap_or_else(random_instance),
            delivery: self.delivery,
            health: delivery::Health::default(),
            app_id: self.app_id,
            routing: self.routing,
            agent_names: self.agent_names,
            customer_locale: self.customer_locale,
            customer_locale_timeout: self.customer_locale_timeout,
            #[cfg(feature = "worker")]
            profiles: self.profiles,
        }
    }
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
            attachment_policy: AttachmentPolicy::default(),
            window: WindowConfig::default(),
            config: ConversationConfig::default(),
            download_inbound: false,
            conflict_retries: DEFAULT_CONFLICT_RETRIES,
            apply_concurrency: DEFAULT_APPLY_CONCURRENCY,
            instance: None,
            delivery: DeliveryConfig::default(),
            app_id: None,
            routing: Routing::default(),
            agent_names: None,
            customer_locale: None,
            customer_locale_timeout: super::DEFAULT_LOCALE_TIMEOUT,
            #[cfg(feature = "worker")]
            profiles: None,
            store_set: false,
            router_set: false,
        }
    }
}
