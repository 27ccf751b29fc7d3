//! A channel wired with in-memory stores and a fake Send API, and signed webhook bodies, for
//! the lifecycle tests and benches.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use messenger_channel::agents::{InMemoryRouter, Presence, RecordingNotifier};
use messenger_channel::conversation::{ConversationConfig, FileLine, LineBody};
use messenger_channel::engine::Engine;
use messenger_channel::ids::{AgentId, PageId, UserId};
use messenger_channel::secret::AppSecret;
use messenger_channel::store::{ConversationStore, InMemoryMediaStore, InMemoryStore, MediaStore};
use messenger_channel::webhook::Webhook;
use messenger_channel::webhook::signature::sign_sha256;
use serde_json::json;

use super::fake_send::FakeSend;

pub const SECRET: &str = "channel-test-secret";
pub const PAGE: &str = "104987654321098";

pub struct Channel {
    pub engine: Arc<Engine>,
    pub store: Arc<InMemoryStore>,
    pub router: Arc<InMemoryRouter>,
    pub notifier: Arc<RecordingNotifier>,
    pub send: Arc<FakeSend>,
}

pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_718_000_000)
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
        let engine = Engine::builder(Webhook::new(&AppSecret::new(SECRET).unwrap()), send.clone())
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

fn millis(at: SystemTime) -> u64 {
    u64::try_from(
        at.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// One `messaging` item from a customer.
pub fn message_item(customer: &str, mid: &str, text: &str, at: SystemTime) -> serde_json::Value {
    json!({
        "sender": {"id": customer},
        "recipient": {"id": PAGE},
        "timestamp": millis(at),
        "message": {"mid": mid, "text": text}
    })
}

/// One item with a file attachment.
pub fn file_item(customer: &str, mid: &str, url: &str, at: SystemTime) -> serde_json::Value {
    json!({
        "sender": {"id": customer},
        "recipient": {"id": PAGE},
        "timestamp": millis(at),
        "message": {"mid": mid, "attachments": [{"type": "file", "payload": {"url": url}}]}
    })
}

/// A signed body with the items, one entry per item.
pub fn signed(items: &[serde_json::Value]) -> (http::HeaderMap, Vec<u8>) {
    let entries: Vec<_> = items
        .iter()
        .map(|i| json!({"id": PAGE, "time": 1, "messaging": [i]}))
        .collect();
    let body = serde_json::to_vec(&json!({"object": "page", "entry": entries})).unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-hub-signature-256",
        sign_sha256(&AppSecret::new(SECRET).unwrap(), &body)
            .parse()
            .unwrap(),
    );
    (headers, body)
}
