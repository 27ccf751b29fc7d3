//! Run a Facebook Messenger customer-service channel from Rust, on the Dynamics 365
//! Omnichannel model: a customer writes to a Facebook page, the conversation is offered to an
//! agent who accepts, messages and files go both ways under an administrator's attachment
//! policy, and the conversation closes.
//!
//! The crate verifies and parses Meta's webhooks, runs each conversation through a pure state
//! machine, commits every state change together with what it causes (an inbox for what
//! arrived, an outbox for what must be sent) and delivers the outbox at least once through the
//! Graph Send API. The host brings the HTTP server, the agents' desk and, if it likes, its own
//! storage; every piece also works alone.
//!
//! # Example
//!
//! A host hands a webhook POST to the engine, which verifies it, records it and opens a
//! conversation; the conversation is offered to an agent, who accepts and replies:
//!
//! ```no_run
//! # #[cfg(feature = "graph")]
//! # async fn example(headers: &http::HeaderMap, body: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::SystemTime;
//! use messenger_channel::engine::Engine;
//! use messenger_channel::ids::AgentId;
//! use messenger_channel::secret::{AppSecret, PageAccessToken};
//! use messenger_channel::send::GraphClient;
//! use messenger_channel::agents::{InMemoryRouter, Notification, Presence, RecordingNotifier};
//! use messenger_channel::webhook::Webhook;
//!
//! // At start-up: the Meta app's secret, the page's token, one agent, and where offers go.
//! let secret = AppSecret::new(std::env::var("APP_SECRET")?)?;
//! let token = PageAccessToken::new(std::env::var("PAGE_ACCESS_TOKEN")?)?;
//! let graph = GraphClient::builder(token).app_secret(secret.clone()).build()?;
//! let (agents, desk) = (Arc::new(InMemoryRouter::new()), Arc::new(RecordingNotifier::new()));
//! agents.set_presence(&AgentId::from("ada"), Presence::Available);
//! let engine = Engine::builder(Webhook::new(&secret), Arc::new(graph))
//!     .router(agents) // conversations kept in memory unless `.store(…)` is given
//!     .notifier(desk.clone())
//!     .build();
//!
//! // Per webhook POST, with the raw body: verified and recorded before the answer (`Err(e)`:
//! // answer `e.status()`), then applied: the customer's message opens a conversation.
//! engine.handle_webhook(headers, body, SystemTime::now()).await?;
//!
//! // The notifier tells the desk of the offer to ada; she accepts and replies (within the
//! // 24-hour window, checked before anything is sent).
//! for note in desk.take() {
//!     if let Notification::Offer { conversation, offer } = note {
//!         engine.accept(&conversation, &offer.agent, SystemTime::now()).await?;
//!         let reply = "Hello! How can I help?";
//!         engine.send_text(&conversation, &offer.agent, reply, SystemTime::now()).await?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! In production the engine goes behind the ready routes of `axum::WebhookRoutes` (feature
//! `axum`) and on a durable store (`store::SqliteStore`, `store::PostgresStore`), with the
//! background worker of `Engine::start` (feature `worker`) for timers and retries.
//!
//! # Where to start
//!
//! | module | what it holds |
//! |---|---|
//! | [`webhook`] | `X-Hub-Signature-256` over the raw bytes, the `hub.challenge` handshake, every event typed; usable alone |
//! | [`attachment`] | the administrator's attachment policy per direction, with a verdict per file |
//! | [`window`] | the messaging window: `RESPONSE` for 24 hours, `HUMAN_AGENT` for 7 days |
//! | [`send`] | the [`SendApi`](send::SendApi) trait (what the engine needs) and its extension [`PageApi`](send::PageApi) (typing, uploads, thread control, profiles), message builders within the platform's limits, typed Graph errors, the retry policy; `GraphClient` (feature `graph`) |
//! | [`conversation`] | the lifecycle as a pure state machine; every transition in a table |
//! | [`store`] | what the channel keeps: traits, in memory, on SQLite and PostgreSQL |
//! | [`routing`] | work distribution as pure decisions: queues (Push, Pick), routing rules, skills, who gets an offer |
//! | [`agents`] | how agents are found and told: the router (capacity, presence, reservations; in memory or in the shared store) and notifier traits, in-memory versions |
//! | [`profile`] | who is writing: the customer's name and picture from the Graph user profile, kept in the store and refreshed, with a fallback name |
//! | [`texts`] | what the crate says to agents in their language: a catalogue with English and Spanish, and room for a host's language |
//! | [`engine`] | webhooks to transitions to effects, committed and delivered; what each answer guarantees |
//! | `axum` | the webhook as a ready axum `Router` (feature `axum`) |
//! | `testing` | for hosts' tests (feature `test-util`): signed webhook bodies, a fake `SendApi` that records, a manual clock, the store conformance suite |
//! | [`ids`], [`secret`] | identifier newtypes; secrets that never reach `Debug` or logs |
//! | [`locale`] | a customer's locale, checked and written one way, matched by language |
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `graph` | yes | `GraphClient`, the Send API client on `reqwest` (rustls) and `tokio` |
//! | `axum` | yes | `axum::WebhookRoutes`, the webhook as a ready axum `Router` |
//! | `sqlite` | yes | `SqliteStore` (the embedded default) and `FsMediaStore` (`sqlx`, `tokio`) |
//! | `worker` | yes | `Engine::start`, the background worker (tokio); `axum` turns it on |
//! | `postgres` | no | `PostgresStore`, `FsMediaStore`, and `agents::fleet` (agent notifications across instances by `LISTEN`/`NOTIFY`) (`sqlx`, `tokio`) |
//! | `rate-limit` | no | a per-page client-side rate limiter for `GraphClient` (`governor`) |
//! | `test-util` | no | `testing`, for tests: `WebhookBody` (signed webhook bodies), `FakeSend`, `TestClock`, `testing::conformance::run` for a host's own store (`tokio`) |
//!
//! With `default-features = false` the crate (webhook, attachment policy, messaging window, the
//! `SendApi` trait and message builders) has no HTTP client and no async runtime.
//!
//! The [README](https://github.com/messenger-channel/messenger-channel#readme) shows the
//! agent desk, the command-line tools, the guarantees in full and the performance figures.
//!
//! # Minimum supported Rust version
//!
//! 1.85 (edition 2024).
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod agents;
pub mod attachment;
#[cfg(feature = "axum")]
pub mod axum;
pub mod conversation;
pub mod engine;
pub mod ids;
pub mod locale;
pub mod profile;
pub mod routing;
pub mod secret;
pub mod send;
pub mod store;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
pub mod texts;
mod time;
pub mod webhook;
pub mod window;

/// The README's examples, compiled and run as doctests with the default features (the crate
/// docs above have their own example).
#[cfg(all(doctest, feature = "graph", feature = "axum", feature = "sqlite"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
