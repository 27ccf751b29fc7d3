//! A channel wired with in-memory stores and the fake `SendApi`, for the lifecycle tests; the
//! test page, secret and customer, and webhook bodies signed with that secret.

use std::sync::Arc;

use messenger_channel::agents::{InMemoryRouter, Presence, RecordingNotifier};
use messenger_channel::conversation::{ConversationConfig, FileLine, LineBody};
use messenger_channel::engine::Engine;
use messenger_channel::ids::{AgentId, PageId, UserId};
use messenger_channel::secret::AppSecret;
use messenger_channel::store::{ConversationStore, InMemoryMediaStore, InMemoryStore, MediaStore};
use messenger_channel::testing::{FakeSend, WebhookBody};
use messenger_channel::webhook::Webhook;

pub const SECRET: &str = "channel-test-secret";
pub const PAGE: &str = "104987654321098";
/// The customer most tests talk to.
pub const CUSTOMER: &str = "24012345678901234";

pub struct Channel {
    pub engine: Arc<Engine>,
    pub store: Arc<InMemoryStore>,
    pub router: Arc<InMemoryRouter>,
    pub notifier: Arc<RecordingNotifier>,
    pub send: Arc<FakeSend>,
}

impl Channel {
    pub fn new(agents: &[&str], config: ConversationConfig) -> Self {
        Self::with_downloads(agents, config, false)
    }

    pub fn with_downloads(
        agents: &[&str],
        config: ConversationConfig,
        download_inbound: bool,
    ) -> Self {
        Self::with_store(agents, config, download_inbound, InMemoryStore::new())
    }

    pub fn with_store(
        agents: &[&str],
        config: ConversationConfig,
        download_inbound: bool,
        store: InMemoryStore,
    ) -> Self {
        Self::with_stores(
            agents,
            config,
            download_inbound,
            store,
            Arc::new(InMemoryMediaStore::new()),
        )
    }

    pub fn with_stores(
        agents: &[&str],
        config: ConversationConfig,
        download_inbound: bool,
        store: InMemoryStore,
        media: Arc<dyn MediaStore>,
    ) -> Self {
        let store = Arc::new(store);
        let router = Arc::new(InMemoryRouter::new());
        for a in agents {
            router.set_presence(&AgentId::from(*a), Presence::Available);
        }
        let notifier = Arc::new(RecordingNotifier::new());
        let send = Arc::new(FakeSend::new());
        let engine = Engine::builder(Webhook::new(&secret()), send.clone())
            .store(store.clone())
            .router(router.clone())
            .notifier(notifier.clone())
            .media(media)
            .config(config)
            .download_inbound(download_inbound)
            .build();
        let engine = Arc::new(engine);
        Self {
            engine,
            store,
            router,
            notifier,
            send,
        }
    }
}

impl Channel {
    /// The file lines of the customer's open conversation.
    pub async fn file_lines(&self, customer: &str) -> Vec<FileLine> {
        let id = self
            .store
            .find_open(&PageId::from(PAGE), &UserId::new(customer.to_owned()))
            .await
            .unwrap()
            .expect("an open conversation")
            .conversation
            .id()
            .clone();
        self.store
            .transcript(&id)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|l| match l.body {
                LineBody::File(f) => Some(f),
                _ => None,
            })
            .collect()
    }
}

/// The test secret, as the engine's [`Webhook`] is built with it.
pub fn secret() -> AppSecret {
    AppSecret::new(SECRET).unwrap()
}

/// An empty webhook body for [`PAGE`].
pub fn webhook() -> WebhookBody {
    WebhookBody::new(PAGE)
}

/// The body signed with [`SECRET`]: the headers and the bytes for `handle_webhook`.
#[allow(clippy::needless_pass_by_value)] // by value, for `signed(webhook().message(…))`
pub fn signed(body: WebhookBody) -> (http::HeaderMap, Vec<u8>) {
    body.sign(&secret()).into_parts()
}

/// The customer's text message `mid` at `at`, through the signed webhook; every event applied.
pub async fn receive(e: &Engine, customer: &str, mid: &str, at: std::time::SystemTime) {
    let (h, b) = signed(webhook().message(customer, mid, "hi", at));
    let r = e.handle_webhook(&h, &b, at).await.unwrap();
    assert!(r.failed.is_empty());
}

/// The customer's open conversation on [`PAGE`]: its id and state.
pub async fn id_of(
    s: &dyn ConversationStore,
    customer: &str,
) -> (
    messenger_channel::ids::ConversationId,
    messenger_channel::conversation::State,
) {
    let c = s
        .find_open(
            &PageId::new(PAGE.to_owned()),
            &UserId::new(customer.to_owned()),
        )
        .await
        .unwrap()
        .unwrap()
        .conversation;
    (c.id().clone(), c.state().clone())
}
