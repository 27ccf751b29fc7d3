//! The delivery worker's throughput: effects delivered per second by [`Engine::deliver_due`]
//! from a backlog of 10,000 agent text messages on SQLite (a file, WAL) and on PostgreSQL, to a
//! fake Graph on loopback, next to the bare `GraphClient` sending the same 10,000 messages one
//! after another with no store, to the same fake, in the same run. Target: at least
//! [`TARGET_RATIO`] of the bare client.
//!
//! Run with `cargo bench --bench deliver --all-features`, with
//! `MESSENGER_CHANNEL_TEST_POSTGRES` set for the PostgreSQL half (`bash scripts/postgres.sh`
//! starts one; the bench makes databases of its own on it and drops them); without it, only
//! SQLite is measured. It takes 3 to 4 minutes on 2 busy cores with both.
//!
//! # The backlog
//!
//! [`CONVERSATIONS`] Active conversations (2,000), each with [`PER_CONVERSATION`] (5) agent
//! messages waiting: what an outage of the Send API leaves behind while a desk keeps typing.
//! The messages are committed the way the engine commits an agent's message (the agent's line
//! in the transcript, one `Effect::Send` in the outbox), one commit per message, but with
//! `claim: None` (nobody delivered them), round by round across the conversations, so that
//! the outbox interleaves conversations as a real one does: a batch of
//! [`DeliveryConfig::batch`](messenger_channel::engine::DeliveryConfig) effects holds as many
//! conversations. (A backlog of 100 conversations × 100 messages would let one conversation
//! load serve a whole batch, which no desk produces; 10,000 × 1 measures the same per-effect
//! work as this one.) Each customer's last message is half an hour old, inside the window.
//! Texts come from `../shared/perf-payloads/w2_texts.json` when present, else from a
//! generator; every conversation has a customer of its own.
//!
//! # What is timed
//!
//! Delivery: one `deliver_due(now)` on a fresh database holding the backlog (it claims and
//! delivers batch after batch until nothing is due); the backlog is committed once per backend
//! and each run works on a copy of that database, made untimed. The floor: the same
//! messages (same recipients, texts and `metadata`) sent with `GraphClient::send` one after
//! another — the engine too delivers one effect after another within a pass. Both use one
//! `GraphClient` on one fake. The fake logs every message's `metadata`; after every run the bench
//! asserts that each of the 10,000 was delivered exactly once, and each conversation's messages
//! in the order they were committed.
//!
//! After criterion's report, paired rounds per backend (bare → deliver → bare → deliver → …,
//! each delivery set against the mean of the bare runs either side, median of [`ROUNDS`]) print
//! one line per backend: `deliver/sqlite: N effects/s, bare client M/s, ratio R`. Then, per
//! backend, where a pass's time goes: the same pass done by hand (claim a batch; per effect load
//! the conversation, send, complete), each kind of call timed.

#[cfg(feature = "postgres")]
#[path = "../tests/support/postgres.rs"]
#[allow(dead_code, unreachable_pub)]
mod postgres;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use criterion::{Criterion, Throughput};
use messenger_channel::agents::AgentNotifier;
use messenger_channel::conversation::{
    Author, Conversation, ConversationConfig, Effect, Inbound, Input, LineBody, Offer, Outgoing,
    TranscriptLine,
};
use messenger_channel::engine::{DeliveryConfig, ECHO_KEY_PREFIX, Engine};
use messenger_channel::ids::{AgentId, ConversationId, PageId, UserId};
use messenger_channel::secret::{AppSecret, PageAccessToken};
use messenger_channel::send::{GraphClient, Message, RetryPolicy, SendApi, SendRequest};
use messenger_channel::store::{Commit, ConversationStore, Lease, SqliteStore};
use messenger_channel::webhook::Webhook;

/// Conversations in the backlog.
const CONVERSATIONS: usize = 2_000;
/// Agent messages waiting per conversation.
const PER_CONVERSATION: usize = 5;
/// The backlog: 10,000 effects.
const EFFECTS: usize = CONVERSATIONS * PER_CONVERSATION;
/// Deliveries per round of the summary (each between two bare runs).
const ROUNDS: usize = 3;
/// The issue's target: this share of the bare client's rate.
const TARGET_RATIO: f64 = 0.5;
const PAGE: &str = "104987654321098";
const AGENT: &str = "alice";

/// Texts for generated customers, when the payloads folder is absent.
const TEXTS: [&str; 6] = [
    "ok see you tomorrow at 10",
    "Bonjour, ma commande n'est pas arrivée",
    "你好，我想退货，请问怎么操作？",
    "Thanks! 🙏😀",
    "Where is my parcel? https://track.example.com/a/b",
    "Can I change the delivery address?",
];

/// Texts: the payloads folder's when present, else generated.
fn texts() -> (Vec<String>, &'static str) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/perf-payloads/w2_texts.json");
    if let Some(pairs) = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<(String, String)>>(&b).ok())
        .filter(|p| !p.is_empty())
    {
        return (
            pairs.into_iter().map(|(_, text)| text).collect(),
            "texts from shared/perf-payloads/w2_texts.json",
        );
    }
    (
        TEXTS.iter().map(|&t| t.to_owned()).collect(),
        "generated texts",
    )
}

/// The `i`th customer's PSID (the payloads repeat their customers; each conversation here has
/// its own).
fn psid(i: usize) -> String {
    format!(
        "{}",
        2_401_234_567_890_123 + u64::try_from(i).unwrap() * 7_919
    )
}

/// When the customers wrote; the messages are committed after it and delivered at
/// [`delivery_time`], inside the 24-hour window.
fn base() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_718_000_000)
}

fn delivery_time() -> SystemTime {
    base() + Duration::from_secs(1_800)
}

/// One message of the backlog, in commit order.
struct Planned {
    conversation: usize,
    round: usize,
    psid: String,
    text: String,
    /// Its outbox key (deterministic: the conversation, the version, the index).
    key: String,
}

/// The backlog's messages in commit order: round by round across the conversations.
fn plan(texts: &[String]) -> Vec<Planned> {
    let mut planned = Vec::with_capacity(EFFECTS);
    for round in 0..PER_CONVERSATION {
        for conversation in 0..CONVERSATIONS {
            planned.push(Planned {
                conversation,
                round,
                psid: psid(conversation),
                text: texts[(round * CONVERSATIONS + conversation) % texts.len()].clone(),
                // Version 1 is the conversation's creation; each message is one more commit.
                key: format!("{}:{}:0", conversation_id(conversation), round + 2),
            });
        }
    }
    planned
}

fn conversation_id(i: usize) -> ConversationId {
    ConversationId::new(format!("{i:024x}"))
}

/// Commits the backlog through `store`, unclaimed; asserts every key is the planned one.
async fn build_backlog(store: &dyn ConversationStore, planned: &[Planned]) {
    let config = ConversationConfig::default();
    let agent = AgentId::from(AGENT);
    let mut conversations = Vec::with_capacity(CONVERSATIONS);
    for (i, p) in planned.iter().take(CONVERSATIONS).enumerate() {
        let at = base();
        let (mut c, started) = Conversation::start(
            conversation_id(i),
            PageId::from(PAGE),
            UserId::from(p.psid.clone()),
            Inbound::new(
                Some(format!("m_customer_{i}")),
                vec![LineBody::Text("hello?".to_owned())],
            )
            .sent_at(at),
            at,
            &config,
        );
        // Offered and accepted long ago: the conversation is Active with the agent.
        c.apply(Input::OfferTo(agent.clone()), at, &config).unwrap();
        c.apply(Input::Accept(agent.clone()), at, &config).unwrap();
        let transcript = started.lines;
        let deadline = c.next_deadline(&config);
        let (version, _) = store
            .commit(&Commit {
                conversation: c.clone(),
                expected_version: None,
                transcript,
                effects: Vec::new(),
                deadline,
                applies: None,
                at,
                claim: None,
            })
            .await
            .unwrap();
        conversations.push((c, version));
    }
    for (n, p) in planned.iter().enumerate() {
        let at =
            base() + Duration::from_secs(60) + Duration::from_millis(u64::try_from(n).unwrap());
        let (c, version) = &mut conversations[p.conversation];
        let message = Outgoing::Text(p.text.clone());
        let sent = c
            .apply(
                Input::AgentSend {
                    agent: agent.clone(),
                    message: message.clone(),
                },
                at,
                &config,
            )
            .unwrap();
        // The machine records the agent's line and asks for the send: commit both.
        assert_eq!(
            sent.lines,
            [TranscriptLine {
                at,
                author: Author::Agent(agent.clone()),
                body: LineBody::Text(p.text.clone()),
                mid: None,
                reply_to: None,
                sent_at: None,
            }]
        );
        assert_eq!(
            sent.effects,
            [Effect::Send {
                agent: Some(agent.clone()),
                message,
            }]
        );
        let (next, pending) = store
            .commit(&Commit {
                conversation: c.clone(),
                expected_version: Some(*version),
                transcript: sent.lines,
                effects: sent.effects,
                deadline: c.next_deadline(&config),
                applies: None,
                at,
                claim: None,
            })
            .await
            .unwrap();
        *version = next;
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].key, p.key);
    }
}

/// The fake Graph: answers every send, and logs each message's `metadata` in arrival order.
#[derive(Default)]
struct Fake {
    log: Mutex<Vec<String>>,
    sent: AtomicU64,
}

impl Fake {
    /// Everything delivered since the last call.
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

#[derive(serde::Deserialize)]
struct SendBody {
    recipient: Recipient,
    message: SentMessage,
}

#[derive(serde::Deserialize)]
struct Recipient {
    id: String,
}

#[derive(serde::Deserialize)]
struct SentMessage {
    metadata: Option<String>,
}

async fn messages(
    State(fake): State<Arc<Fake>>,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let json = [("content-type", "application/json")];
    let Ok(sent) = serde_json::from_slice::<SendBody>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            json,
            r#"{"error":{"message":"(#100) Invalid parameter","type":"OAuthException","code":100}}"#.to_owned(),
        );
    };
    let n = fake.sent.fetch_add(1, Ordering::Relaxed);
    fake.log
        .lock()
        .unwrap()
        .push(sent.message.metadata.unwrap_or_default());
    let answer =
        serde_json::json!({"recipient_id": sent.recipient.id, "message_id": format!("m_{n}")});
    (StatusCode::OK, json, answer.to_string())
}

/// Serves the fake on 127.0.0.1, port 0; returns its base URL.
async fn serve(fake: Arc<Fake>) -> String {
    let app = Router::new()
        .route("/{version}/{page}/messages", post(messages))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A notifier that drops everything (a host's would push to agents' screens).
struct Quiet;

#[async_trait::async_trait]
impl AgentNotifier for Quiet {
    async fn offer(&self, _: &Conversation, _: &Offer) {}
    async fn withdraw(&self, _: &ConversationId, _: &AgentId) {}
    async fn updated(&self, _: &Conversation, _: &[TranscriptLine]) {}
}

/// Where a backlog is kept.
enum Backend {
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres(String),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => "postgres",
        }
    }
}

/// The PostgreSQL databases the bench makes: the backlog once, and the copy a run works on.
#[cfg(feature = "postgres")]
const PG_TEMPLATE: &str = "deliver_bench_template";
#[cfg(feature = "postgres")]
const PG_RUN: &str = "deliver_bench";

/// The backlog committed once per backend, copied for every run (committing 12,000 times per
/// run would triple the bench's time): on SQLite the database file (checkpointed), on
/// PostgreSQL a database used as `TEMPLATE`.
enum Template {
    Sqlite(tempfile::TempDir),
    #[cfg(feature = "postgres")]
    Postgres(String),
}

impl Template {
    async fn build(backend: &Backend, planned: &[Planned]) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let store = SqliteStore::open(dir.path().join("deliver.db"))
                    .await
                    .unwrap();
                build_backlog(&store, planned).await;
                // Everything into the main file, so that copying it copies the backlog.
                let (busy, _, _): (i64, i64, i64) =
                    sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                        .fetch_one(store.pool())
                        .await
                        .unwrap();
                assert_eq!(busy, 0, "the checkpoint was blocked");
                Self::Sqlite(dir)
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(url) => {
                let template = postgres::fresh_postgres_database(url, PG_TEMPLATE).await;
                let store = messenger_channel::store::PostgresStore::connect(&template)
                    .await
                    .unwrap();
                build_backlog(&store, planned).await;
                // No connection may stay open on a template.
                store.pool().close().await;
                Self::Postgres(url.clone())
            }
        }
    }

    /// A store holding a copy of the backlog.
    async fn copy(&self) -> Fresh {
        match self {
            Self::Sqlite(template) => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("deliver.db");
                std::fs::copy(template.path().join("deliver.db"), &path).unwrap();
                Fresh {
                    store: Arc::new(SqliteStore::open(path).await.unwrap()),
                    _dir: Some(dir),
                    #[cfg(feature = "postgres")]
                    pool: None,
                }
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(url) => {
                let admin = sqlx::PgPool::connect(url).await.unwrap();
                for sql in [
                    format!("DROP DATABASE IF EXISTS {PG_RUN}"),
                    format!("CREATE DATABASE {PG_RUN} TEMPLATE {PG_TEMPLATE}"),
                ] {
                    sqlx::query(&sql).execute(&admin).await.unwrap();
                }
                admin.close().await;
                let base = url.rsplit_once('/').expect("a database in the URL").0;
                let store =
                    messenger_channel::store::PostgresStore::connect(&format!("{base}/{PG_RUN}"))
                        .await
                        .unwrap();
                Fresh {
                    pool: Some(store.pool().clone()),
                    store: Arc::new(store),
                    _dir: None,
                }
            }
        }
    }

    /// Drops what the bench made.
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    async fn remove(self) {
        match self {
            Self::Sqlite(dir) => drop(dir),
            #[cfg(feature = "postgres")]
            Self::Postgres(url) => {
                let admin = sqlx::PgPool::connect(&url).await.unwrap();
                for db in [PG_RUN, PG_TEMPLATE] {
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {db}"))
                        .execute(&admin)
                        .await
                        .unwrap();
                }
                admin.close().await;
            }
        }
    }
}

/// A store holding a copy of the backlog, and what to clean up after it.
struct Fresh {
    store: Arc<dyn ConversationStore>,
    _dir: Option<tempfile::TempDir>,
    #[cfg(feature = "postgres")]
    pool: Option<sqlx::PgPool>,
}

impl Fresh {
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    async fn close(self) {
        #[cfg(feature = "postgres")]
        if let Some(pool) = self.pool {
            // Every connection closed, so that the next run can drop the database.
            pool.close().await;
        }
    }
}

struct Bench {
    fake: Arc<Fake>,
    client: GraphClient,
    planned: Vec<Planned>,
}

impl Bench {
    /// Asserts the fake received every planned message exactly once, and each conversation's
    /// in commit order.
    fn check(&self) {
        let log = self.fake.take();
        let mut index: HashMap<String, &Planned> = self
            .planned
            .iter()
            .map(|p| (format!("{ECHO_KEY_PREFIX}{}", p.key), p))
            .collect();
        let mut last = vec![None; CONVERSATIONS];
        for metadata in &log {
            let p = index
                .remove(metadata)
                .unwrap_or_else(|| panic!("{metadata:?}: not planned, or delivered twice"));
            assert!(
                last[p.conversation] < Some(p.round),
                "{metadata}: delivered out of order"
            );
            last[p.conversation] = Some(p.round);
        }
        assert!(
            index.is_empty(),
            "{} of {EFFECTS} messages never delivered",
            index.len()
        );
        assert_eq!(log.len(), EFFECTS);
    }

    /// The floor: every planned message through `GraphClient::send`, one after another.
    async fn bare(&self) -> Duration {
        let page = PageId::from(PAGE);
        self.fake.take();
        let started = Instant::now();
        for p in &self.planned {
            let message = Message::text(&p.text)
                .and_then(|m| m.with_metadata(&format!("{ECHO_KEY_PREFIX}{}", p.key)))
                .unwrap();
            self.client
                .send(&page, &SendRequest::new(p.psid.as_str(), message))
                .await
                .unwrap();
        }
        let elapsed = started.elapsed();
        self.check();
        elapsed
    }

    /// A copy of the backlog (untimed), then one timed `deliver_due`.
    async fn deliver(&self, template: &Template) -> Duration {
        let fresh = template.copy().await;
        let engine = Engine::builder(
            Webhook::new(&AppSecret::new("deliver-bench").unwrap()),
            Arc::new(self.client.clone()),
        )
        .store(fresh.store.clone())
        .notifier(Arc::new(Quiet))
        .build();
        self.fake.take();
        let started = Instant::now();
        let report = engine.deliver_due(delivery_time()).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(report.delivered, EFFECTS, "{report:?}");
        assert!(fresh.store.pending(1).await.unwrap().is_empty());
        self.check();
        drop(engine);
        fresh.close().await;
        elapsed
    }
}

fn per_second(d: Duration) -> f64 {
    count(EFFECTS) / d.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Paired rounds on one backend: bare → deliver → bare → …; prints the summary line and
/// returns the medians (effects/s delivered, bare sends/s).
async fn summary(bench: &Bench, name: &str, template: &Template) -> (f64, f64) {
    let mut bare = vec![per_second(bench.bare().await)];
    let mut delivered = Vec::new();
    for _ in 0..ROUNDS {
        delivered.push(per_second(bench.deliver(template).await));
        bare.push(per_second(bench.bare().await));
    }
    let ratio = median(
        (0..ROUNDS)
            .map(|i| delivered[i] / f64::midpoint(bare[i], bare[i + 1]))
            .collect(),
    );
    let (delivered, bare) = (median(delivered), median(bare));
    println!(
        "deliver/{name}: {delivered:.0} effects/s, bare client {bare:.0}/s, ratio {ratio:.2} (target {TARGET_RATIO}: {})",
        if ratio >= TARGET_RATIO {
            "met"
        } else {
            "NOT MET"
        }
    );
    (delivered, bare)
}

/// Where a pass's time goes on one backend: the pass done by hand, without the engine, over a
/// copy of the backlog — claim a batch of [`DeliveryConfig::batch`], then per effect load its
/// conversation, send, complete — each kind of call timed, in µs per effect, next to the
/// engine's pass and the bare send measured by the paired rounds.
async fn breakdown(bench: &Bench, name: &str, template: &Template, (delivered, bare): (f64, f64)) {
    let fresh = template.copy().await;
    let store = &fresh.store;
    let now = delivery_time();
    let lease = Lease {
        owner: "breakdown".to_owned(),
        at: std::time::SystemTime::now(),
        until: std::time::SystemTime::now() + Duration::from_secs(3_600),
    };
    let page = PageId::from(PAGE);
    let (mut claim, mut load, mut send, mut complete) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let mut lap = Instant::now();
    let mut split = |into: &mut Duration| {
        let now = Instant::now();
        *into += now - lap;
        lap = now;
    };
    bench.fake.take();
    loop {
        let batch = store
            .claim_effects(&lease, now, DeliveryConfig::default().batch)
            .await
            .unwrap();
        split(&mut claim);
        if batch.is_empty() {
            break;
        }
        for p in &batch {
            let conversation = store
                .load(&p.conversation)
                .await
                .unwrap()
                .unwrap()
                .conversation;
            split(&mut load);
            let Effect::Send {
                message: Outgoing::Text(text),
                ..
            } = &p.effect
            else {
                panic!("{:?}: not a text", p.effect);
            };
            let message = Message::text(text)
                .and_then(|m| m.with_metadata(&format!("{ECHO_KEY_PREFIX}{}", p.key)))
                .unwrap();
            bench
                .client
                .send(
                    &page,
                    &SendRequest::new(conversation.customer().clone(), message),
                )
                .await
                .unwrap();
            split(&mut send);
            store.complete(&p.key).await.unwrap();
            split(&mut complete);
        }
    }
    bench.check();
    fresh.close().await;
    let per_effect = |d: Duration| d.as_secs_f64() * 1e6 / count(EFFECTS);
    let (claim, load, send, complete) = (
        per_effect(claim),
        per_effect(load),
        per_effect(send),
        per_effect(complete),
    );
    let by_hand = claim + load + send + complete;
    let (pass, bare) = (1e6 / delivered, 1e6 / bare);
    println!(
        "  {name:<8} µs per effect: engine's pass {pass:.0}; by hand {by_hand:.0} = claim {claim:.0} + load {load:.0} + send {send:.0} + complete {complete:.0}; bare send {bare:.0}"
    );
}

fn count(n: usize) -> f64 {
    f64::from(u32::try_from(n).unwrap())
}

/// PostgreSQL, when built with it and `MESSENGER_CHANNEL_TEST_POSTGRES` names a server.
fn postgres_backend() -> Option<Backend> {
    #[cfg(feature = "postgres")]
    match std::env::var("MESSENGER_CHANNEL_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => return Some(Backend::Postgres(url)),
        _ => println!("PostgreSQL: skipped (set MESSENGER_CHANNEL_TEST_POSTGRES)"),
    }
    #[cfg(not(feature = "postgres"))]
    println!("PostgreSQL: skipped (build with --features postgres)");
    None
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (texts, source) = texts();
    let fake = Arc::new(Fake::default());
    let base_url = runtime.block_on(serve(fake.clone()));
    let bench = Bench {
        fake,
        client: GraphClient::builder(PageAccessToken::new("deliver-bench").unwrap())
            .base_url(base_url)
            .retry(RetryPolicy::never())
            .build()
            .unwrap(),
        planned: plan(&texts),
    };
    let backends: Vec<Backend> = std::iter::once(Backend::Sqlite)
        .chain(postgres_backend())
        .collect();
    let templates: Vec<(&str, Template)> = runtime.block_on(async {
        let mut templates = Vec::new();
        for backend in &backends {
            templates.push((
                backend.name(),
                Template::build(backend, &bench.planned).await,
            ));
        }
        templates
    });

    // Each sample is a whole backlog: ten samples of one pass each, after one warm-up pass
    // (criterion warns that they take longer than the 1 ms asked for; that is the point).
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1));
    let mut group = criterion.benchmark_group("deliver");
    group.throughput(Throughput::Elements(u64::try_from(EFFECTS).unwrap()));
    group.bench_function("bare_client", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| runtime.block_on(bench.bare())).sum());
    });
    for (name, template) in &templates {
        group.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| runtime.block_on(bench.deliver(template)))
                    .sum()
            });
        });
    }
    group.finish();
    criterion.final_summary();

    runtime.block_on(async {
        if std::env::args().any(|a| a == "--bench") {
            println!(
                "\n{EFFECTS} agent messages ({CONVERSATIONS} conversations x {PER_CONVERSATION}), one pass, sequential sends, fake Graph on loopback ({source}); median of {ROUNDS} paired rounds"
            );
            let mut figures = Vec::new();
            for (name, template) in &templates {
                figures.push(summary(&bench, name, template).await);
            }
            println!("\nwhere a pass's time goes (the same pass by hand, each kind of call timed)");
            for ((name, template), figures) in templates.iter().zip(figures) {
                breakdown(&bench, name, template, figures).await;
            }
        }
        for (_, template) in templates {
            template.remove().await;
        }
    });
}
