//! Everything the customer does reaches the agent: reactions, replies, edits, removals,
//! replies from outside the channel, receipts, and readable attachments, through signed
//! webhooks, on the in-memory and the SQLite stores, redeliveries included.

mod support;

#[cfg(feature = "postgres")]
use support::postgres;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use messenger_channel::agents::{InMemoryRouter, Presence};
use messenger_channel::conversation::{
    Author, ConversationConfig, LineBody, MessageStatus, PAGE_INBOX_APP_ID, ReactionLine,
    TranscriptLine,
};
use messenger_channel::engine::Engine;
use messenger_channel::engine::{Delivery, EngineError};
use messenger_channel::ids::{AgentId, AppId, PageId, UserId};
use messenger_channel::secret::AppSecret;
use messenger_channel::send::SendError;
use messenger_channel::store::{ConversationStore, InMemoryStore, MediaStore as _, Stored};
use messenger_channel::testing::FakeSend;
use messenger_channel::webhook::{Webhook, WebhookBody};
use serde_json::{Value, json};

const SECRET: &str = "thread-events-secret";
const PAGE: &str = "104987654321098";
const CUSTOMER: &str = "24012345678901234";

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_718_000_000)
}

fn ms(at: SystemTime) -> u64 {
    u64::try_from(
        at.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn engine(store: Arc<dyn ConversationStore>, config: ConversationConfig) -> Engine {
    engine_and_send(store, config).0
}

fn engine_and_send(
    store: Arc<dyn ConversationStore>,
    config: ConversationConfig,
) -> (Engine, Arc<FakeSend>) {
    let send = Arc::new(FakeSend::new());
    let router = Arc::new(InMemoryRouter::new());
    router.set_presence(&AgentId::from("alice"), Presence::Available);
    let engine = Engine::builder(Webhook::new(&AppSecret::new(SECRET).unwrap()), send.clone())
        .store(store)
        .router(router)
        .config(config)
        .build();
    (engine, send)
}

/// A signed body with one entry per item.
fn signed(items: &[Value]) -> (http::HeaderMap, Vec<u8>) {
    let entry_time = SystemTime::UNIX_EPOCH + Duration::from_millis(1);
    items
        .iter()
        .fold(WebhookBody::new(PAGE), |body, item| {
            body.item(item.clone(), entry_time)
        })
        .sign(&AppSecret::new(SECRET).unwrap())
        .into_parts()
}

/// Runs `scenario` on a store in a fresh SQLite file.
#[cfg(feature = "sqlite")]
async fn on_sqlite<F: std::future::Future<Output = ()>>(
    scenario: impl FnOnce(Arc<dyn ConversationStore>) -> F,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = messenger_channel::store::SqliteStore::open(dir.path().join("c.db"))
        .await
        .unwrap();
    scenario(Arc::new(store)).await;
}

fn from_customer(at: SystemTime, key: &str, value: Value) -> Value {
    let mut item = json!({
        "sender": {"id": CUSTOMER},
        "recipient": {"id": PAGE},
        "timestamp": ms(at),
    });
    item[key] = value;
    item
}

fn echo(at: SystemTime, message: Value) -> Value {
    let mut item = json!({
        "sender": {"id": PAGE},
        "recipient": {"id": CUSTOMER},
        "timestamp": ms(at),
    });
    item["message"] = message;
    item
}

async fn post(engine: &Engine, items: &[Value], now: SystemTime) {
    let (h, b) = signed(items);
    // Each body arrives twice, like Meta's redeliveries: the second changes nothing.
    let first = engine.handle_webhook(&h, &b, now).await.unwrap();
    assert!(first.failed.is_empty(), "{:?}", first.failed);
    let again = engine.handle_webhook(&h, &b, now).await.unwrap();
    assert_eq!(again.received, 0);
    assert_eq!(again.duplicates, first.received);
}

async fn open(store: &dyn ConversationStore) -> (Stored, Vec<TranscriptLine>) {
    let stored = store
        .find_open(&PageId::from(PAGE), &UserId::from(CUSTOMER))
        .await
        .unwrap()
        .expect("an open conversation");
    let lines = store.transcript(stored.conversation.id()).await.unwrap();
    (stored, lines)
}

fn at(s: u64) -> SystemTime {
    t0() + Duration::from_secs(s)
}

/// The whole story on one store.
#[allow(clippy::too_many_lines)]
async fn story(store: Arc<dyn ConversationStore>) {
    let engine = engine(store.clone(), ConversationConfig::default());
    post(
        &engine,
        &[from_customer(
            at(0),
            "message",
            json!({"mid": "m_1", "text": "where is my parcel?"}),
        )],
        at(0),
    )
    .await;
    // A reaction, a quoted reply, an edit, a removal, a Page-inbox reply, another app's.
    post(
        &engine,
        &[
            from_customer(
                at(1),
                "reaction",
                json!({"mid": "m_1", "action": "react", "emoji": "\u{1F44D}", "reaction": "like"}),
            ),
            from_customer(
                at(2),
                "message",
                json!({"mid": "m_2", "text": "this one", "reply_to": {"mid": "m_1"}}),
            ),
            from_customer(
                at(3),
                "message_edit",
                json!({"mid": "m_2", "text": "this one, please", "num_edit": 1}),
            ),
            echo(at(4), json!({"mid": "m_p1", "is_echo": true, "text": "Hello from the inbox"})),
            echo(
                at(5),
                json!({"mid": "m_p2", "is_echo": true, "app_id": 1_234_567, "text": "bot says hi"}),
            ),
            echo(
                at(6),
                json!({"mid": "m_p3", "is_echo": true, "app_id": PAGE_INBOX_APP_ID.0, "text": "again"}),
            ),
            from_customer(at(7), "message", json!({"mid": "m_1", "is_deleted": true})),
        ],
        at(8),
    )
    .await;
    let (stored, lines) = open(&*store).await;
    let bodies: Vec<(&Author, &LineBody)> = lines.iter().map(|l| (&l.author, &l.body)).collect();
    assert_eq!(
        bodies,
        [
            (
                &Author::Customer,
                &LineBody::Text("where is my parcel?".into())
            ),
            (
                &Author::Customer,
                &LineBody::Reaction(
                    ReactionLine::new(Some("m_1".into()), Some("\u{1F44D}".into()), false)
                        .name(Some("like".into()))
                )
            ),
            (&Author::Customer, &LineBody::Text("this one".into())),
            (
                &Author::Customer,
                &LineBody::Edit {
                    of: "m_2".into(),
                    text: "this one, please".into(),
                    edit_count: 1
                }
            ),
            (
                &Author::PageInbox,
                &LineBody::Text("Hello from the inbox".into())
            ),
            (
                &Author::App(AppId(1_234_567)),
                &LineBody::Text("bot says hi".into())
            ),
            (&Author::PageInbox, &LineBody::Text("again".into())),
            (&Author::Customer, &LineBody::Unsent { of: "m_1".into() }),
        ]
    );
    assert_eq!(lines[2].mid.as_deref(), Some("m_2"));
    assert_eq!(lines[2].reply_to.as_deref(), Some("m_1"));
    assert_eq!(lines[4].mid.as_deref(), Some("m_p1"));
    // Kept by default: the removed message's text stays in the record.
    assert_eq!(lines[0].body, LineBody::Text("where is my parcel?".into()));
    // Reactions, edits and removals are not messages: the messaging window is the last
    // message's (m_2), not the edit's or the removal's.
    assert_eq!(stored.conversation.last_customer_message_at(), Some(at(2)));

    // Receipts: watermarks on the conversation, no line.
    post(
        &engine,
        &[
            from_customer(at(10), "delivery", json!({"watermark": ms(at(6))})),
            from_customer(at(11), "read", json!({"watermark": ms(at(4))})),
        ],
        at(12),
    )
    .await;
    let (stored, after) = open(&*store).await;
    assert_eq!(after.len(), lines.len(), "no line per receipt");
    let c = &stored.conversation;
    assert_eq!(c.delivered_until(), Some(at(6)));
    assert_eq!(c.read_until(), Some(at(4)));
    assert_eq!(c.message_status(Some(at(4))), MessageStatus::Read);
    assert_eq!(c.message_status(Some(at(5))), MessageStatus::Delivered);
    assert_eq!(c.message_status(Some(at(7))), MessageStatus::Sent);
    assert_eq!(
        c.message_status(None),
        MessageStatus::Sent,
        "not known sent"
    );
    // An older watermark arriving late does not take the status back.
    post(
        &engine,
        &[from_customer(
            at(13),
            "read",
            json!({"watermark": ms(at(1))}),
        )],
        at(13),
    )
    .await;
    assert_eq!(open(&*store).await.0.conversation.read_until(), Some(at(4)));
}

#[tokio::test]
async fn every_kind_reaches_the_transcript_in_memory() {
    story(Arc::new(InMemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn every_kind_reaches_the_transcript_on_sqlite() {
    on_sqlite(story).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_reaches_the_transcript_on_postgres() {
    let Some(url) = postgres::postgres_url() else {
        return;
    };
    let story_db = postgres::fresh_postgres_database(&url, "thread_events_story").await;
    let store = messenger_channel::store::PostgresStore::connect(&story_db)
        .await
        .unwrap();
    story(Arc::new(store)).await;
    let forget_db = postgres::fresh_postgres_database(&url, "thread_events_forget").await;
    let store = messenger_channel::store::PostgresStore::connect(&forget_db)
        .await
        .unwrap();
    forgetting(Arc::new(store)).await;
    let closed_db = postgres::fresh_postgres_database(&url, "thread_events_closed").await;
    let store = messenger_channel::store::PostgresStore::connect(&closed_db)
        .await
        .unwrap();
    after_the_close(Arc::new(store)).await;
    let echo_db = postgres::fresh_postgres_database(&url, "thread_events_echo").await;
    let store = messenger_channel::store::PostgresStore::connect(&echo_db)
        .await
        .unwrap();
    confirmed_by_its_echo(Arc::new(store), None).await;
}

async fn forgetting(store: Arc<dyn ConversationStore>) {
    let config = ConversationConfig::default().keep_unsent(false);
    let engine = engine(store.clone(), config);
    post(
        &engine,
        &[
            from_customer(
                at(0),
                "message",
                json!({"mid": "m_1", "text": "my card is 4111"}),
            ),
            from_customer(
                at(1),
                "message_edit",
                json!({"mid": "m_1", "text": "my card is 4111 1111", "num_edit": 1}),
            ),
            from_customer(at(2), "message", json!({"mid": "m_2", "text": "stays"})),
        ],
        at(2),
    )
    .await;
    post(
        &engine,
        &[from_customer(
            at(3),
            "message",
            json!({"mid": "m_1", "is_deleted": true}),
        )],
        at(3),
    )
    .await;
    engine.deliver_due(at(4)).await.unwrap();
    let (_, lines) = open(&*store).await;
    let removed = LineBody::Unsent { of: "m_1".into() };
    assert_eq!(lines[0].body, removed);
    assert_eq!(lines[0].mid.as_deref(), Some("m_1"));
    assert_eq!(lines[1].body, removed, "its edits are forgotten too");
    assert_eq!(lines[2].body, LineBody::Text("stays".into()));
    assert_eq!(lines[3].body, removed);
    assert!(
        !serde_json::to_string(&lines).unwrap().contains("4111"),
        "nothing of the removed text is left"
    );
}

#[tokio::test]
async fn a_removed_message_is_forgotten_when_configured_in_memory() {
    forgetting(Arc::new(InMemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_removed_message_is_forgotten_when_configured_on_sqlite() {
    on_sqlite(forgetting).await;
}

#[tokio::test]
async fn stickers_links_and_locations_are_readable() {
    let store = Arc::new(InMemoryStore::new());
    let engine = engine(store.clone(), ConversationConfig::default());
    let attachments = json!([
        {"type": "image", "payload": {"url": "https://cdn.example/sticker.png", "sticker_id": 369_239_263_222_822_u64}},
        {"type": "fallback", "title": "Our shop", "url": "https://shop.example/item", "payload": null},
        {"type": "location", "title": "Pinned", "payload": {"coordinates": {"lat": 48.8584, "long": 2.2945}}},
        {"type": "ig_reel", "payload": {"url": "https://cdn.example/reel.mp4", "title": "a reel"}},
        {"type": "template", "payload": {"template_type": "generic"}},
    ]);
    post(
        &engine,
        &[from_customer(
            at(0),
            "message",
            json!({"mid": "m_1", "attachments": attachments}),
        )],
        at(0),
    )
    .await;
    let (_, lines) = open(&*store).await;
    let bodies: Vec<_> = lines
        .iter()
        .filter(|l| l.author == Author::Customer)
        .map(|l| l.body.clone())
        .collect();
    assert_eq!(
        bodies[0],
        LineBody::Sticker {
            url: Some("https://cdn.example/sticker.png".into()),
            sticker_id: Some(369_239_263_222_822),
        }
    );
    assert_eq!(
        bodies[1],
        LineBody::Link {
            kind: "fallback".into(),
            title: Some("Our shop".into()),
            url: Some("https://shop.example/item".into()),
        }
    );
    match &bodies[2] {
        LineBody::Location { title, map_url } => {
            assert_eq!(title.as_deref(), Some("Pinned"));
            assert!(map_url.contains("mlat=48.8584&mlon=2.2945"), "{map_url}");
        }
        other => panic!("not a location: {other:?}"),
    }
    assert!(matches!(&bodies[3], LineBody::Link { kind, url: Some(_), .. } if kind == "ig_reel"));
    // A template with nothing readable: the Omnichannel notice.
    assert!(
        matches!(&bodies[4], LineBody::Notice(n) if n.contains("unsupported message type")),
        "{:?}",
        bodies[4]
    );
    assert_eq!(bodies.len(), 5);
}

#[tokio::test]
async fn an_agent_reacts_through_the_outbox() {
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let (engine, graph) = engine_and_send(store.clone(), ConversationConfig::default());
    post(
        &engine,
        &[from_customer(
            at(0),
            "message",
            json!({"mid": "m_1", "text": "thanks!"}),
        )],
        at(0),
    )
    .await;
    let id = open(&*store).await.0.conversation.id().clone();
    let alice = AgentId::from("alice");
    // Not before the agent holds the conversation: nothing is saved or sent.
    let early = engine
        .react(&id, &alice, "m_1", Some("\u{2764}\u{FE0F}"), at(1))
        .await;
    assert!(
        matches!(early, Err(EngineError::Transition(_))),
        "{early:?}"
    );
    engine.accept(&id, &alice, at(1)).await.unwrap();
    // A reaction too long for one emoji, or no message id: refused before anything is saved.
    let long = engine
        .react(&id, &alice, "m_1", Some(&"x".repeat(40)), at(2))
        .await;
    assert!(
        matches!(long, Err(EngineError::Send(SendError::Invalid(_)))),
        "{long:?}"
    );
    let none = engine.react(&id, &alice, "", Some("x"), at(2)).await;
    assert!(
        matches!(none, Err(EngineError::Send(SendError::Invalid(_)))),
        "{none:?}"
    );
    // A message id too long to keep, or no message of the customer's in this conversation.
    let huge = engine
        .react(&id, &alice, &"m".repeat(513), Some("x"), at(2))
        .await;
    assert!(
        matches!(huge, Err(EngineError::Send(SendError::Invalid(_)))),
        "{huge:?}"
    );
    let unknown = engine.react(&id, &alice, "m_nope", Some("x"), at(2)).await;
    assert!(
        matches!(&unknown, Err(EngineError::UnknownMessage(m)) if m == "m_nope"),
        "{unknown:?}"
    );
    assert!(graph.reactions().is_empty());

    let sent = engine
        .react(&id, &alice, "m_1", Some("\u{2764}\u{FE0F}"), at(2))
        .await
        .unwrap();
    assert!(matches!(sent, Delivery::Sent { .. }), "{sent:?}");
    engine.react(&id, &alice, "m_1", None, at(3)).await.unwrap();
    let bodies = graph.reactions();
    assert_eq!(
        bodies,
        [
            json!({"recipient": {"id": CUSTOMER}, "sender_action": "react", "payload": {"message_id": "m_1", "reaction": "\u{2764}\u{FE0F}"}}),
            json!({"recipient": {"id": CUSTOMER}, "sender_action": "unreact", "payload": {"message_id": "m_1"}}),
        ]
    );
    let (_, lines) = open(&*store).await;
    let reactions: Vec<_> = lines
        .iter()
        .filter_map(|l| match &l.body {
            LineBody::Reaction(r) => Some((l.author.clone(), r.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        reactions,
        [
            (
                Author::Agent(alice.clone()),
                ReactionLine::new(Some("m_1".into()), Some("\u{2764}\u{FE0F}".into()), false)
            ),
            (
                Author::Agent(alice.clone()),
                ReactionLine::new(Some("m_1".into()), None, true)
            ),
        ]
    );
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!((stats.pending, stats.failed), (0, 0), "both delivered");

    // The agent's message gets its platform id once sent, so that the customer's reaction
    // to it (and a reply quoting it) can show on it.
    let Delivery::Sent { message_id } = engine
        .send_text(&id, &alice, "you're welcome", at(4))
        .await
        .unwrap()
    else {
        panic!("not sent")
    };
    let (_, lines) = open(&*store).await;
    let line = lines
        .iter()
        .find(|l| l.body == LineBody::Text("you're welcome".into()))
        .unwrap();
    assert_eq!(line.mid.as_deref(), Some(message_id.as_str()));
}

/// Receipts compare the watermark with when the message was sent, not when it was written: a
/// message written at t=100 that Graph took only at t=200 is not read by a read watermark of
/// t=150 (the customer read an earlier message).
#[tokio::test]
async fn receipts_compare_with_the_send_time_not_the_commit_time() {
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let (engine, graph) = engine_and_send(store.clone(), ConversationConfig::default());
    post(
        &engine,
        &[from_customer(
            at(0),
            "message",
            json!({"mid": "m_1", "text": "hello?"}),
        )],
        at(0),
    )
    .await;
    let id = open(&*store).await.0.conversation.id().clone();
    let alice = AgentId::from("alice");
    engine.accept(&id, &alice, at(1)).await.unwrap();
    graph.fail_sends(Some(SendError::Transport {
        kind: messenger_channel::send::TransportKind::Connect,
        outcome_unknown: false,
        message: "Graph is down".into(),
    }));
    let delivery = engine
        .send_text(&id, &alice, "on its way", at(100))
        .await
        .unwrap();
    assert!(
        matches!(delivery, Delivery::Retrying { .. }),
        "{delivery:?}"
    );
    post(
        &engine,
        &[from_customer(
            at(150),
            "read",
            json!({"watermark": ms(at(150))}),
        )],
        at(150),
    )
    .await;
    let line = |lines: Vec<TranscriptLine>| {
        lines
            .into_iter()
            .find(|l| l.body == LineBody::Text("on its way".into()))
            .unwrap()
    };
    let (stored, lines) = open(&*store).await;
    let waiting = line(lines);
    assert_eq!((waiting.mid, waiting.sent_at), (None, None));
    assert_eq!(
        stored.conversation.message_status(waiting.sent_at),
        MessageStatus::Sent
    );
    graph.fail_sends(None);
    engine.tick(at(200)).await.unwrap();
    let (stored, lines) = open(&*store).await;
    let sent = line(lines);
    assert!(sent.mid.is_some(), "delivered at last");
    assert_eq!(sent.at, at(100));
    // The time the answer came, on the pass's clock: at(200) and what the pass took since.
    let sent_at = sent.sent_at.expect("a send time");
    assert!(
        sent_at >= at(200) && sent_at < at(260),
        "{sent_at:?} is the delivery's time"
    );
    assert_eq!(stored.conversation.read_until(), Some(at(150)));
    assert_eq!(
        stored.conversation.message_status(sent.sent_at),
        MessageStatus::Sent,
        "read before it was sent"
    );
    // The commit time would have said "read".
    assert_eq!(
        stored.conversation.message_status(Some(sent.at)),
        MessageStatus::Read
    );

    // Its echo carries the platform's own time, which replaces the delivery's: receipts are
    // on the platform's clock. (An echo is looked up by its metadata, the effect's key.)
    let mid = sent.mid.clone().unwrap();
    let key = graph
        .sent()
        .into_iter()
        .rev()
        .find_map(|r| r.body["message"]["metadata"].as_str().map(str::to_owned))
        .expect("the send carried its key");
    post(
        &engine,
        &[echo(
            at(300),
            json!({"mid": mid, "is_echo": true, "metadata": key, "text": "on its way"}),
        )],
        at(300),
    )
    .await;
    let again = line(open(&*store).await.1);
    assert_eq!(again.mid.as_deref(), Some(mid.as_str()));
    assert_eq!(again.sent_at, Some(at(300)), "the echo's time wins");
}

/// A `SendApi` whose every send takes at least `SLOW` (it waits, then sends through the fake).
struct Slow(Arc<FakeSend>);

const SLOW: Duration = Duration::from_millis(40);

#[async_trait::async_trait]
impl messenger_channel::send::SendApi for Slow {
    async fn send(
        &self,
        page: &PageId<'_>,
        request: &messenger_channel::send::SendRequest,
    ) -> Result<messenger_channel::send::SendResponse, SendError> {
        tokio::time::sleep(SLOW).await;
        self.0.send(page, request).await
    }

    async fn download(
        &self,
        url: &str,
        max_bytes: u64,
    ) -> Result<messenger_channel::send::Media, SendError> {
        self.0.download(url, max_bytes).await
    }

    async fn react(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
        message_id: &messenger_channel::ids::MessageId<'_>,
        reaction: Option<&str>,
    ) -> Result<(), SendError> {
        self.0.react(page, user, message_id, reaction).await
    }
}

/// A backlog sent in one pass (a tick at t=200, one effect per batch, each send taking at
/// least `SLOW`): each message is recorded as sent when its answer came, counted from when
/// the pass began, not from when its batch began: the third is at least three sends later.
/// (The lower bounds hold however loaded the machine; the upper one is generous.)
#[tokio::test]
async fn a_backlog_is_recorded_as_sent_when_each_answer_came() {
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let graph = Arc::new(FakeSend::new());
    let router = Arc::new(InMemoryRouter::new());
    router.set_presence(&AgentId::from("alice"), Presence::Available);
    // One effect per batch: each batch's start is later than the pass's.
    let delivery = messenger_channel::engine::DeliveryConfig {
        batch: 1,
        ..Default::default()
    };
    let engine = Engine::builder(
        Webhook::new(&AppSecret::new(SECRET).unwrap()),
        Arc::new(Slow(graph.clone())),
    )
    .store(store.clone())
    .router(router)
    .delivery(delivery)
    .build();
    post(
        &engine,
        &[from_customer(
            at(0),
            "message",
            json!({"mid": "m_1", "text": "hello?"}),
        )],
        at(0),
    )
    .await;
    let id = open(&*store).await.0.conversation.id().clone();
    let alice = AgentId::from("alice");
    engine.accept(&id, &alice, at(1)).await.unwrap();
    graph.fail_sends(Some(SendError::Transport {
        kind: messenger_channel::send::TransportKind::Connect,
        outcome_unknown: false,
        message: "Graph is down".into(),
    }));
    for text in ["one", "two", "three"] {
        engine.send_text(&id, &alice, text, at(100)).await.unwrap();
    }
    graph.fail_sends(None);
    engine.tick(at(200)).await.unwrap();
    let lines = open(&*store).await.1;
    let sent_at = |text: &str| {
        lines
            .iter()
            .find(|l| l.body == LineBody::Text(text.into()))
            .and_then(|l| l.sent_at)
            .expect("sent")
    };
    // In the order they were sent (their retries' jitter decides it): the k-th answer came
    // after k sends.
    let mut times: Vec<SystemTime> = ["one", "two", "three"].map(sent_at).to_vec();
    times.sort_unstable();
    for (k, time) in (1_u32..).zip(times) {
        let at_least = at(200) + SLOW * k;
        assert!(
            time >= at_least && time < at(260),
            "answer {k}: {time:?}, at least {at_least:?}"
        );
    }
}

/// The echo of the channel's own send (its metadata `mc-effect:` key) adds no line: the
/// agent's line is already there. An echo without that key (the Page inbox, even with the
/// same text) is a reply from outside the channel and gets its own line.
#[tokio::test]
async fn the_echo_of_our_own_send_is_no_page_inbox_line() {
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let (engine, graph) = engine_and_send(store.clone(), ConversationConfig::default());
    post(
        &engine,
        &[from_customer(
            at(0),
            "message",
            json!({"mid": "m_1", "text": "hello?"}),
        )],
        at(0),
    )
    .await;
    let id = open(&*store).await.0.conversation.id().clone();
    let alice = AgentId::from("alice");
    engine.accept(&id, &alice, at(1)).await.unwrap();
    let Delivery::Sent { message_id } = engine
        .send_text(&id, &alice, "on its way", at(2))
        .await
        .unwrap()
    else {
        panic!("not sent")
    };
    let sent = graph.sent();
    let ours = sent
        .iter()
        .find(|s| s.text() == Some("on its way"))
        .expect("the agent's message was sent");
    let metadata = ours.body["message"]["metadata"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(metadata.starts_with(messenger_channel::engine::ECHO_KEY_PREFIX));
    let before = open(&*store).await.1;
    post(
        &engine,
        &[echo(
            at(3),
            json!({"mid": message_id.as_str(), "is_echo": true, "app_id": 1_234_567,
                   "metadata": metadata, "text": "on its way"}),
        )],
        at(3),
    )
    .await;
    let mut after = open(&*store).await.1;
    // No line added; the echo's time (the platform's) replaced the delivery's.
    assert_eq!(after[2].sent_at, Some(at(3)), "{after:?}");
    after[2].sent_at = before[2].sent_at;
    assert_eq!(after, before, "our own echo adds no line");
    post(
        &engine,
        &[echo(
            at(4),
            json!({"mid": "m_inbox", "is_echo": true, "text": "on its way"}),
        )],
        at(4),
    )
    .await;
    let lines = open(&*store).await.1;
    let with_text: Vec<_> = lines
        .iter()
        .filter(|l| l.body == LineBody::Text("on its way".into()))
        .map(|l| (l.author.clone(), l.mid.as_deref()))
        .collect();
    assert_eq!(
        with_text,
        [
            (Author::Agent(alice), Some(message_id.as_str())),
            (Author::PageInbox, Some("m_inbox")),
        ]
    );
}

/// An agent's reaction is in the transcript (painted on the message by the desk) only once
/// it is sent: not while it waits for a retry, and never when it fails, which adds only its
/// "Not delivered" notice.
#[tokio::test]
async fn a_failed_reaction_is_not_shown_as_applied() {
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let (engine, graph) = engine_and_send(store.clone(), ConversationConfig::default());
    post(
        &engine,
        &[from_customer(
            at(0),
            "message",
            json!({"mid": "m_1", "text": "thanks!"}),
        )],
        at(0),
    )
    .await;
    let id = open(&*store).await.0.conversation.id().clone();
    let alice = AgentId::from("alice");
    engine.accept(&id, &alice, at(1)).await.unwrap();
    let reactions = |lines: &[TranscriptLine]| {
        lines
            .iter()
            .filter(|l| matches!(l.body, LineBody::Reaction(_)))
            .cloned()
            .collect::<Vec<_>>()
    };

    // Graph is down: the reaction waits, and is not shown.
    graph.fail_sends(Some(SendError::Transport {
        kind: messenger_channel::send::TransportKind::Connect,
        outcome_unknown: false,
        message: "Graph is down".into(),
    }));
    let waiting = engine
        .react(&id, &alice, "m_1", Some("\u{2764}\u{FE0F}"), at(2))
        .await
        .unwrap();
    assert!(matches!(waiting, Delivery::Retrying { .. }), "{waiting:?}");
    assert!(reactions(&open(&*store).await.1).is_empty(), "not sent yet");

    // Graph refuses it for good: a notice, and still no reaction.
    let outside = messenger_channel::send::GraphError::from_body(
        400,
        br#"{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","code":10,"error_subcode":2018278,"fbtrace_id":"A1"}}"#,
    )
    .unwrap();
    graph.fail_sends(Some(SendError::Graph(outside)));
    engine.tick(at(300)).await.unwrap();
    let lines = open(&*store).await.1;
    assert_eq!(store.outbox_stats().await.unwrap().failed, 1, "{lines:?}");
    assert!(reactions(&lines).is_empty(), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.author == Author::System
            && matches!(&l.body, LineBody::Notice(n) if n.starts_with("Not delivered"))),
        "{lines:?}"
    );

    // Sent: now it is shown, with its send time.
    graph.fail_sends(None);
    engine
        .react(&id, &alice, "m_1", Some("\u{1F44D}"), at(400))
        .await
        .unwrap();
    let lines = open(&*store).await.1;
    let shown = reactions(&lines);
    assert_eq!(shown.len(), 1, "{lines:?}");
    assert_eq!(shown[0].author, Author::Agent(alice));
    assert_eq!(
        shown[0].body,
        LineBody::Reaction(ReactionLine::new(
            Some("m_1".into()),
            Some("\u{1F44D}".into()),
            false
        ))
    );
    assert_eq!(shown[0].sent_at, Some(at(400)));
}

/// A conversation with `m_1` (a secret) and `m_2`, closed by its agent; its id and how many
/// lines it has.
async fn closed_conversation(
    engine: &Engine,
    store: &dyn ConversationStore,
) -> (messenger_channel::ids::ConversationId, usize) {
    post(
        engine,
        &[
            from_customer(
                at(0),
                "message",
                json!({"mid": "m_1", "text": "my card is 4111"}),
            ),
            from_customer(at(1), "message", json!({"mid": "m_2", "text": "thanks"})),
        ],
        at(1),
    )
    .await;
    let id = open(store).await.0.conversation.id().clone();
    let alice = AgentId::from("alice");
    engine.accept(&id, &alice, at(2)).await.unwrap();
    engine.end(&id, &alice, at(3)).await.unwrap();
    engine.close_session(&id, &alice, at(4)).await.unwrap();
    let closed = store.load(&id).await.unwrap().unwrap().conversation;
    assert!(closed.is_closed());
    let lines = store.transcript(&id).await.unwrap().len();
    (id, lines)
}

/// What comes after the close (a reaction, an edit, an outside reply, a removal) is recorded
/// in the customer's most recent conversation, closed as it is, instead of being dropped;
/// with `keep_unsent` off the removal forgets the text there. Receipts change nothing, and no
/// conversation is opened.
async fn after_the_close(store: Arc<dyn ConversationStore>) {
    let config = ConversationConfig::default().keep_unsent(false);
    let engine = engine(store.clone(), config);
    let (id, before) = closed_conversation(&engine, &*store).await;

    post(
        &engine,
        &[
            from_customer(
                at(10),
                "reaction",
                json!({"mid": "m_2", "action": "react", "emoji": "\u{1F44D}", "reaction": "like"}),
            ),
            from_customer(
                at(11),
                "message_edit",
                json!({"mid": "m_2", "text": "thanks a lot", "num_edit": 1}),
            ),
            echo(
                at(12),
                json!({"mid": "m_p1", "is_echo": true, "text": "You're welcome"}),
            ),
            from_customer(at(13), "read", json!({"watermark": ms(at(13))})),
            from_customer(at(14), "message", json!({"mid": "m_1", "is_deleted": true})),
        ],
        at(14),
    )
    .await;
    engine.deliver_due(at(15)).await.unwrap();

    assert!(
        store
            .find_open(&PageId::from(PAGE), &UserId::from(CUSTOMER))
            .await
            .unwrap()
            .is_none(),
        "nothing was opened"
    );
    let after = store.load(&id).await.unwrap().unwrap().conversation;
    assert!(after.is_closed());
    assert_eq!(
        after.read_until(),
        None,
        "receipts are not kept after the close"
    );
    let lines = store.transcript(&id).await.unwrap();
    let added: Vec<_> = lines[before..]
        .iter()
        .map(|l| (l.author.clone(), l.body.clone()))
        .collect();
    assert_eq!(
        added,
        [
            (
                Author::Customer,
                LineBody::Reaction(
                    ReactionLine::new(Some("m_2".into()), Some("\u{1F44D}".into()), false)
                        .name(Some("like".into()))
                )
            ),
            (
                Author::Customer,
                LineBody::Edit {
                    of: "m_2".into(),
                    text: "thanks a lot".into(),
                    edit_count: 1
                }
            ),
            (Author::PageInbox, LineBody::Text("You're welcome".into())),
            (Author::Customer, LineBody::Unsent { of: "m_1".into() }),
        ]
    );
    let removed = LineBody::Unsent { of: "m_1".into() };
    assert_eq!(lines[0].mid.as_deref(), Some("m_1"));
    assert_eq!(
        lines[0].body, removed,
        "forgotten in the closed conversation"
    );
    assert!(
        !serde_json::to_string(&lines).unwrap().contains("4111"),
        "nothing of the removed text is left"
    );
}

/// With `keep_unsent` off, a removal of a message from the customer's earlier conversation
/// (a new one is open since, where the customer's edit of it is) forgets it everywhere: the
/// removal is recorded in the open one, the text is gone from the earlier one, the edit from
/// the open one.
async fn removed_from_an_earlier_conversation(store: Arc<dyn ConversationStore>) {
    let config = ConversationConfig::default().keep_unsent(false);
    let engine = engine(store.clone(), config);
    let (earlier, _) = closed_conversation(&engine, &*store).await;
    post(
        &engine,
        &[from_customer(
            at(20),
            "message",
            json!({"mid": "m_3", "text": "me again"}),
        )],
        at(20),
    )
    .await;
    let (now_open, _) = open(&*store).await;
    assert_ne!(now_open.conversation.id(), &earlier);
    // The customer edits the old message first: the edit is recorded where the customer is
    // now, the message stays in the earlier conversation; the removal forgets both.
    post(
        &engine,
        &[from_customer(
            at(21),
            "message_edit",
            json!({"mid": "m_1", "text": "my card is 4111 1111", "num_edit": 1}),
        )],
        at(21),
    )
    .await;
    post(
        &engine,
        &[from_customer(
            at(22),
            "message",
            json!({"mid": "m_1", "is_deleted": true}),
        )],
        at(22),
    )
    .await;
    engine.deliver_due(at(23)).await.unwrap();
    let old_lines = store.transcript(&earlier).await.unwrap();
    assert!(
        old_lines
            .iter()
            .all(|l| l.body != LineBody::Text("my card is 4111".into())),
        "forgotten in the earlier conversation: {old_lines:?}"
    );
    assert!(
        old_lines
            .iter()
            .any(|l| l.body == LineBody::Unsent { of: "m_1".into() }),
        "{old_lines:?}"
    );
    assert!(
        old_lines
            .iter()
            .any(|l| l.body == LineBody::Text("thanks".into())),
        "the rest stays: {old_lines:?}"
    );
    let open_lines = open(&*store).await.1;
    assert!(
        open_lines
            .iter()
            .any(|l| matches!(&l.body, LineBody::Unsent { of } if of == "m_1")),
        "the removal is recorded where the customer is: {open_lines:?}"
    );
    assert!(
        open_lines.iter().all(|l| !matches!(&l.body,
            LineBody::Edit { text, .. } if text.contains("4111"))),
        "the edit is forgotten too: {open_lines:?}"
    );
}

#[tokio::test]
async fn a_removal_reaches_an_earlier_conversation_in_memory() {
    removed_from_an_earlier_conversation(Arc::new(InMemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_removal_reaches_an_earlier_conversation_on_sqlite() {
    on_sqlite(removed_from_an_earlier_conversation).await;
}

#[tokio::test]
async fn after_the_close_events_reach_the_last_conversation_in_memory() {
    after_the_close(Arc::new(InMemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn after_the_close_events_reach_the_last_conversation_on_sqlite() {
    on_sqlite(after_the_close).await;
}

/// A send whose outcome is unknown (Graph timed out after the request was written) is
/// confirmed by its echo alone, after a restart: the echo's key completes the effect and its
/// mid and time go on the agent's line, in the same step, so that the customer's reaction to
/// the message shows on it. Nothing waits in memory: a new engine on the same store, which
/// never saw the send, records it all.
#[allow(clippy::too_many_lines)]
async fn confirmed_by_its_echo(store: Arc<dyn ConversationStore>, reopen: Option<ReopenStore>) {
    let (engine, graph) = engine_and_send(store.clone(), ConversationConfig::default());
    post(
        &engine,
        &[from_customer(
            at(0),
            "message",
            json!({"mid": "m_1", "text": "hello?"}),
        )],
        at(0),
    )
    .await;
    let id = open(&*store).await.0.conversation.id().clone();
    let alice = AgentId::from("alice");
    engine.accept(&id, &alice, at(1)).await.unwrap();
    graph.fail_sends(Some(SendError::Transport {
        kind: messenger_channel::send::TransportKind::Timeout,
        outcome_unknown: true,
        message: "no answer".into(),
    }));
    let delivery = engine
        .send_text(&id, &alice, "on its way", at(2))
        .await
        .unwrap();
    assert!(
        matches!(delivery, Delivery::Retrying { .. }),
        "{delivery:?}"
    );
    let pending = store.pending(10).await.unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(pending[0].unconfirmed);
    let metadata = format!(
        "{}{}",
        messenger_channel::engine::ECHO_KEY_PREFIX,
        pending[0].key
    );
    // The instance stops; another starts on the same database.
    drop(engine);
    let store = match reopen {
        Some(reopen) => {
            drop(store);
            reopen().await
        }
        None => store,
    };
    let (engine, graph) = engine_and_send(store.clone(), ConversationConfig::default());
    post(
        &engine,
        &[echo(
            at(5),
            json!({"mid": "m_echo", "is_echo": true, "app_id": 1_234_567,
                   "metadata": metadata, "text": "on its way"}),
        )],
        at(5),
    )
    .await;
    let (_, lines) = open(&*store).await;
    let sent: Vec<_> = lines
        .iter()
        .filter(|l| l.author == Author::Agent(alice.clone()))
        .collect();
    assert_eq!(sent.len(), 1, "one agent line: {lines:?}");
    assert_eq!(sent[0].mid.as_deref(), Some("m_echo"));
    assert_eq!(sent[0].sent_at, Some(at(5)), "the echo's time");
    assert!(
        lines
            .iter()
            .all(|l| l.author != Author::PageInbox && !matches!(l.author, Author::App(_))),
        "{lines:?}"
    );
    let stats = store.outbox_stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.failed),
        (0, 0),
        "the echo delivered it"
    );
    // Nothing is sent again.
    engine.tick(at(600)).await.unwrap();
    assert!(graph.sent().is_empty(), "{:?}", graph.sent());

    // The customer's reaction to it attaches to the agent's line.
    post(
        &engine,
        &[from_customer(
            at(6),
            "reaction",
            json!({"mid": "m_echo", "action": "react", "emoji": "\u{1F44D}", "reaction": "like"}),
        )],
        at(6),
    )
    .await;
    let (_, lines) = open(&*store).await;
    let reaction = lines
        .iter()
        .find_map(|l| match &l.body {
            LineBody::Reaction(r) => r.to.clone(),
            _ => None,
        })
        .expect("a reaction line");
    let target = lines
        .iter()
        .find(|l| l.mid.as_deref() == Some(reaction.as_str()))
        .expect("the reaction's message is in the transcript");
    assert_eq!(target.author, Author::Agent(alice));
    assert_eq!(target.body, LineBody::Text("on its way".into()));
}

/// Opens the store again (a restart).
type ReopenStore = Box<
    dyn FnOnce()
        -> std::pin::Pin<Box<dyn std::future::Future<Output = Arc<dyn ConversationStore>>>>,
>;

#[tokio::test]
async fn a_send_confirmed_by_its_echo_gets_its_id_in_memory() {
    confirmed_by_its_echo(Arc::new(InMemoryStore::new()), None).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_send_confirmed_by_its_echo_gets_its_id_after_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let open_db = |path: std::path::PathBuf| async move {
        Arc::new(
            messenger_channel::store::SqliteStore::open(path)
                .await
                .unwrap(),
        ) as Arc<dyn ConversationStore>
    };
    let store = open_db(path.clone()).await;
    let again = path.clone();
    confirmed_by_its_echo(store, Some(Box::new(move || Box::pin(open_db(again))))).await;
}

const PNG: &[u8] = include_bytes!("../examples/sample/logo.png");

fn png() -> messenger_channel::send::Media {
    messenger_channel::send::Media {
        bytes: bytes::Bytes::from_static(PNG),
        content_type: Some("image/png".into()),
        file_name: None,
    }
}

fn image(at_s: u64, mid: &str, url: &str) -> Value {
    from_customer(
        at(at_s),
        "message",
        json!({"mid": mid, "attachments": [{"type": "image", "payload": {"url": url}}]}),
    )
}

fn forgetful() -> ConversationConfig {
    ConversationConfig::default().keep_unsent(false)
}

/// An engine that downloads customers' files into `media`, over `send`.
fn downloading(
    store: Arc<dyn ConversationStore>,
    media: Arc<dyn messenger_channel::store::MediaStore>,
    send: Arc<dyn messenger_channel::send::SendApi>,
    config: ConversationConfig,
) -> Engine {
    let router = Arc::new(InMemoryRouter::new());
    router.set_presence(&AgentId::from("alice"), Presence::Available);
    Engine::builder(Webhook::new(&AppSecret::new(SECRET).unwrap()), send)
        .store(store)
        .router(router)
        .media(media)
        .download_inbound(true)
        .config(config)
        .build()
}

fn media_keys(lines: &[TranscriptLine]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| match &l.body {
            LineBody::File(f) => f.media_key.clone(),
            _ => None,
        })
        .collect()
}

/// With `keep_unsent` off, removing a message with a file deletes the bytes kept for it,
/// unless another line holds the same bytes; in a closed conversation too.
#[tokio::test]
async fn an_unsent_file_is_deleted_from_the_media_store() {
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let media = Arc::new(messenger_channel::store::InMemoryMediaStore::new());
    let graph = Arc::new(FakeSend::new());
    for url in ["https://cdn.example/a.png", "https://cdn.example/b.png"] {
        graph.serve(url, png());
    }
    let engine = downloading(store.clone(), media.clone(), graph.clone(), forgetful());
    // The same bytes twice, in two messages: one removal keeps the other's file. The first
    // has words too.
    post(
        &engine,
        &[
            from_customer(
                at(0),
                "message",
                json!({"mid": "m_1", "text": "my card",
                       "attachments": [{"type": "image", "payload": {"url": "https://cdn.example/a.png"}}]}),
            ),
            image(1, "m_2", "https://cdn.example/b.png"),
        ],
        at(1),
    )
    .await;
    let (stored, lines) = open(&*store).await;
    let keys = media_keys(&lines);
    assert_eq!(keys.len(), 2, "{lines:?}");
    assert_eq!(keys[0], keys[1], "the same bytes, one key");
    let key = keys[0].clone();
    post(
        &engine,
        &[from_customer(
            at(2),
            "message",
            json!({"mid": "m_1", "is_deleted": true}),
        )],
        at(2),
    )
    .await;
    engine.deliver_due(at(3)).await.unwrap();
    assert!(
        media.get(&key).await.unwrap().is_some(),
        "m_2 still holds it"
    );
    let (_, lines) = open(&*store).await;
    let of_m_1: Vec<_> = lines
        .iter()
        .filter(|l| l.mid.as_deref() == Some("m_1"))
        .map(|l| l.body.clone())
        .collect();
    assert_eq!(
        of_m_1,
        vec![LineBody::Unsent { of: "m_1".into() }; 2],
        "its words and its file: {lines:?}"
    );
    // Closed, and then the other removed too: gone.
    let id = stored.conversation.id().clone();
    let alice = AgentId::from("alice");
    engine.accept(&id, &alice, at(4)).await.unwrap();
    engine.end(&id, &alice, at(5)).await.unwrap();
    engine.close_session(&id, &alice, at(6)).await.unwrap();
    assert!(
        store
            .load(&id)
            .await
            .unwrap()
            .unwrap()
            .conversation
            .is_closed()
    );
    post(
        &engine,
        &[from_customer(
            at(20),
            "message",
            json!({"mid": "m_2", "is_deleted": true}),
        )],
        at(20),
    )
    .await;
    engine.deliver_due(at(21)).await.unwrap();
    assert!(media.get(&key).await.unwrap().is_none(), "no line holds it");
    let lines = store.transcript(&id).await.unwrap();
    assert!(media_keys(&lines).is_empty(), "{lines:?}");
    assert!(
        store
            .find_open(&PageId::from(PAGE), &UserId::from(CUSTOMER))
            .await
            .unwrap()
            .is_none()
    );
}

/// One pause in a media store call: armed, the next call (after `skip` more) waits there
/// until released.
#[derive(Default)]
struct Gate {
    armed: std::sync::atomic::AtomicBool,
    skip: std::sync::atomic::AtomicUsize,
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

impl Gate {
    async fn pass(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        if !self.armed.load(SeqCst) {
            return;
        }
        if self.skip.load(SeqCst) > 0 {
            self.skip.fetch_sub(1, SeqCst);
            return;
        }
        if self.armed.swap(false, SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
    }
}

/// A media store that can pause right after a `put` or right before a `get`, to run a
/// removal at the worst moment of a download of the same bytes.
#[derive(Default)]
struct GatedMedia {
    inner: messenger_channel::store::InMemoryMediaStore,
    before_put: Gate,
    after_put: Gate,
    before_get: Gate,
}

#[async_trait::async_trait]
impl messenger_channel::store::MediaStore for GatedMedia {
    async fn put(
        &self,
        conversation: &messenger_channel::ids::ConversationId,
        bytes: bytes::Bytes,
        content_type: Option<&str>,
    ) -> Result<String, messenger_channel::store::StoreError> {
        self.before_put.pass().await;
        let key = self.inner.put(conversation, bytes, content_type).await?;
        self.after_put.pass().await;
        Ok(key)
    }

    async fn get(
        &self,
        key: &str,
    ) -> Result<Option<(bytes::Bytes, Option<String>)>, messenger_channel::store::StoreError> {
        self.before_get.pass().await;
        self.inner.get(key).await
    }

    async fn delete(&self, key: &str) -> Result<bool, messenger_channel::store::StoreError> {
        self.inner.delete(key).await
    }
}

/// The customer sends the same picture twice (`m_1`, `m_2`: one key in the conversation) and
/// removes `m_1` while `m_2` is being downloaded, on another instance, with `keep_unsent` off.
/// Whichever way the two interleave, `m_2`'s file stays: the removal deleting the bytes
/// between the download's put and its line's update (the download puts them again), or
/// after looking at the lines but before the download's line is written (the removal looks
/// again and puts them back).
#[tokio::test]
async fn removing_a_file_while_the_same_bytes_download_keeps_them() {
    for pause_in_removal in [false, true] {
        let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
        let media = Arc::new(GatedMedia::default());
        let graph = Arc::new(FakeSend::new());
        for url in ["https://cdn.example/a.png", "https://cdn.example/b.png"] {
            graph.serve(url, png());
        }
        let downloader = Arc::new(downloading(
            store.clone(),
            media.clone(),
            graph.clone(),
            forgetful(),
        ));
        let remover = downloading(store.clone(), media.clone(), graph.clone(), forgetful());
        post(
            &remover,
            &[image(0, "m_1", "https://cdn.example/a.png")],
            at(0),
        )
        .await;
        let key = media_keys(&open(&*store).await.1)[0].clone();

        let gate = if pause_in_removal {
            &media.before_get
        } else {
            &media.after_put
        };
        gate.armed.store(true, std::sync::atomic::Ordering::SeqCst);
        let removal = || {
            signed(&[from_customer(
                at(2),
                "message",
                json!({"mid": "m_1", "is_deleted": true}),
            )])
        };
        let download = signed(&[image(1, "m_2", "https://cdn.example/b.png")]);
        if pause_in_removal {
            // The removal looks at the lines (m_2 not kept yet) and pauses before deleting;
            // the download then completes; the removal deletes, looks again, puts back.
            let (h, b) = removal();
            let removing = {
                let store = store.clone();
                let media = media.clone();
                let graph = graph.clone();
                tokio::spawn(async move {
                    let remover = downloading(store, media, graph, forgetful());
                    let report = remover.handle_webhook(&h, &b, at(2)).await.unwrap();
                    assert!(report.failed.is_empty(), "{:?}", report.failed);
                    remover.deliver_due(at(2)).await.unwrap();
                })
            };
            gate.entered.notified().await;
            let (h, b) = download;
            let report = downloader.handle_webhook(&h, &b, at(1)).await.unwrap();
            assert!(report.failed.is_empty(), "{:?}", report.failed);
            downloader.deliver_due(at(1)).await.unwrap();
            gate.release.notify_one();
            removing.await.unwrap();
        } else {
            // The download puts the bytes (already there) and pauses before its line says
            // so; the removal sees no line holding them and deletes; the download goes on.
            let (h, b) = download;
            let downloading_task = {
                let downloader = downloader.clone();
                tokio::spawn(async move {
                    let report = downloader.handle_webhook(&h, &b, at(1)).await.unwrap();
                    assert!(report.failed.is_empty(), "{:?}", report.failed);
                    downloader.deliver_due(at(1)).await.unwrap();
                })
            };
            gate.entered.notified().await;
            let (h, b) = removal();
            let report = remover.handle_webhook(&h, &b, at(2)).await.unwrap();
            assert!(report.failed.is_empty(), "{:?}", report.failed);
            remover.deliver_due(at(2)).await.unwrap();
            gate.release.notify_one();
            downloading_task.await.unwrap();
        }
        let lines = open(&*store).await.1;
        let of_m_2: Vec<_> = lines
            .iter()
            .filter(|l| l.mid.as_deref() == Some("m_2"))
            .collect();
        assert!(
            matches!(&of_m_2[..], [l] if matches!(&l.body, LineBody::File(f)
                if f.media_key.as_deref() == Some(key.as_str()))),
            "m_2 kept under the same key: {lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| matches!(&l.body, LineBody::Unsent { of } if of == "m_1")),
            "m_1 forgotten: {lines:?}"
        );
        assert!(
            media.inner.get(&key).await.unwrap().is_some(),
            "the bytes m_2 refers to are kept (pause in removal: {pause_in_removal})"
        );
    }
}

/// The customer removes a picture while its download, on another instance, has written its
/// line and is about to put the bytes once more (which keeps them from a concurrent removal
/// of identical bytes): the removal deletes them, the put brings them back, and the download
/// then sees that no line refers to them and deletes them again. Nothing of a removed
/// message stays with `keep_unsent` off.
#[tokio::test]
async fn a_picture_removed_while_its_download_ends_is_not_kept() {
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let media = Arc::new(GatedMedia::default());
    let graph = Arc::new(FakeSend::new());
    graph.serve("https://cdn.example/a.png", png());
    let downloader = Arc::new(downloading(
        store.clone(),
        media.clone(),
        graph.clone(),
        forgetful(),
    ));
    let remover = downloading(store.clone(), media.clone(), graph.clone(), forgetful());
    // The download's first put goes through; its second (after the line) waits.
    media
        .before_put
        .skip
        .store(1, std::sync::atomic::Ordering::SeqCst);
    media
        .before_put
        .armed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (h, b) = signed(&[image(0, "m_1", "https://cdn.example/a.png")]);
    let downloading_task = {
        let downloader = downloader.clone();
        tokio::spawn(async move {
            let report = downloader.handle_webhook(&h, &b, at(0)).await.unwrap();
            assert!(report.failed.is_empty(), "{:?}", report.failed);
            downloader.deliver_due(at(0)).await.unwrap();
        })
    };
    media.before_put.entered.notified().await;
    let key = media_keys(&open(&*store).await.1)[0].clone();
    let (h, b) = signed(&[from_customer(
        at(2),
        "message",
        json!({"mid": "m_1", "is_deleted": true}),
    )]);
    let report = remover.handle_webhook(&h, &b, at(2)).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    remover.deliver_due(at(2)).await.unwrap();
    assert!(media.inner.get(&key).await.unwrap().is_none(), "removed");
    media.before_put.release.notify_one();
    downloading_task.await.unwrap();
    let lines = open(&*store).await.1;
    assert!(media_keys(&lines).is_empty(), "{lines:?}");
    assert!(
        media.inner.get(&key).await.unwrap().is_none(),
        "the bytes of the removed picture are not kept"
    );
}

/// Two customers send the same picture; one removes it with `keep_unsent` off: the other
/// customer's copy stays (files are kept per conversation, never shared between two).
#[tokio::test]
async fn removing_a_file_leaves_another_customers_copy() {
    const OTHER: &str = "24099999999999999";
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let media = Arc::new(messenger_channel::store::InMemoryMediaStore::new());
    let graph = Arc::new(FakeSend::new());
    for url in ["https://cdn.example/a.png", "https://cdn.example/b.png"] {
        graph.serve(url, png());
    }
    let engine = downloading(store.clone(), media.clone(), graph.clone(), forgetful());
    let mut theirs = image(1, "m_other", "https://cdn.example/b.png");
    theirs["sender"]["id"] = json!(OTHER);
    post(
        &engine,
        &[image(0, "m_1", "https://cdn.example/a.png"), theirs],
        at(1),
    )
    .await;
    let (_, lines) = open(&*store).await;
    let mine = media_keys(&lines);
    let other = store
        .find_open(&PageId::from(PAGE), &UserId::from(OTHER))
        .await
        .unwrap()
        .expect("the other customer's conversation");
    let other_keys = media_keys(&store.transcript(other.conversation.id()).await.unwrap());
    assert_eq!((mine.len(), other_keys.len()), (1, 1));
    assert_ne!(
        mine[0], other_keys[0],
        "the same bytes, a key per conversation"
    );
    post(
        &engine,
        &[from_customer(
            at(2),
            "message",
            json!({"mid": "m_1", "is_deleted": true}),
        )],
        at(2),
    )
    .await;
    engine.deliver_due(at(3)).await.unwrap();
    assert!(media.get(&mine[0]).await.unwrap().is_none(), "removed");
    assert_eq!(
        media.get(&other_keys[0]).await.unwrap().map(|(b, _)| b),
        Some(bytes::Bytes::from_static(PNG)),
        "the other customer's copy stays"
    );
}

/// A media store keyed as the built-in stores were before keys were per conversation: by the
/// bytes' digest alone, so a key may be shared by several conversations.
#[derive(Default)]
struct DigestKeyed(std::sync::Mutex<std::collections::HashMap<String, bytes::Bytes>>);

#[async_trait::async_trait]
impl messenger_channel::store::MediaStore for DigestKeyed {
    async fn put(
        &self,
        _: &messenger_channel::ids::ConversationId,
        bytes: bytes::Bytes,
        _: Option<&str>,
    ) -> Result<String, messenger_channel::store::StoreError> {
        use sha2::Digest as _;
        let key = sha2::Sha256::digest(&bytes)
            .iter()
            .fold(String::new(), |mut k, b| {
                use std::fmt::Write as _;
                let _ = write!(k, "{b:02x}");
                k
            });
        self.0.lock().unwrap().insert(key.clone(), bytes);
        Ok(key)
    }

    async fn get(
        &self,
        key: &str,
    ) -> Result<Option<(bytes::Bytes, Option<String>)>, messenger_channel::store::StoreError> {
        Ok(self.0.lock().unwrap().get(key).map(|b| (b.clone(), None)))
    }

    async fn delete(&self, key: &str) -> Result<bool, messenger_channel::store::StoreError> {
        Ok(self.0.lock().unwrap().remove(key).is_some())
    }
}

/// A file kept under the bytes' digest alone (how files were kept before keys were per
/// conversation) may be another conversation's too: a removal forgets the line, never the bytes.
#[tokio::test]
async fn a_file_kept_under_its_digest_alone_is_never_deleted() {
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let media = Arc::new(DigestKeyed::default());
    let graph = Arc::new(FakeSend::new());
    graph.serve("https://cdn.example/a.png", png());
    let engine = downloading(store.clone(), media.clone(), graph.clone(), forgetful());
    post(
        &engine,
        &[image(0, "m_1", "https://cdn.example/a.png")],
        at(1),
    )
    .await;
    let (_, lines) = open(&*store).await;
    let keys = media_keys(&lines);
    assert_eq!(keys.len(), 1, "{lines:?}");
    post(
        &engine,
        &[from_customer(
            at(2),
            "message",
            json!({"mid": "m_1", "is_deleted": true}),
        )],
        at(2),
    )
    .await;
    engine.deliver_due(at(3)).await.unwrap();
    let (_, lines) = open(&*store).await;
    assert!(
        media_keys(&lines).is_empty(),
        "the line is forgotten: {lines:?}"
    );
    assert!(
        media.get(&keys[0]).await.unwrap().is_some(),
        "the bytes may be shared: kept"
    );
}

/// Downloads wait until the test lets them go.
struct GatedSend {
    inner: Arc<FakeSend>,
    gate: tokio::sync::Semaphore,
    started: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl messenger_channel::send::SendApi for GatedSend {
    async fn send(
        &self,
        page: &PageId<'_>,
        request: &messenger_channel::send::SendRequest,
    ) -> Result<messenger_channel::send::SendResponse, SendError> {
        self.inner.send(page, request).await
    }

    async fn download(
        &self,
        url: &str,
        max_bytes: u64,
    ) -> Result<messenger_channel::send::Media, SendError> {
        self.started.notify_one();
        self.gate.acquire().await.unwrap().forget();
        self.inner.download(url, max_bytes).await
    }

    async fn react(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
        message_id: &messenger_channel::ids::MessageId<'_>,
        reaction: Option<&str>,
    ) -> Result<(), SendError> {
        self.inner.react(page, user, message_id, reaction).await
    }
}

/// A download that ends after the message was removed (and forgotten, by another instance)
/// keeps nothing: its result is dropped, and the bytes it stored are deleted.
#[tokio::test]
async fn a_download_ending_after_the_removal_keeps_nothing() {
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let media = Arc::new(messenger_channel::store::InMemoryMediaStore::new());
    let fake = Arc::new(FakeSend::new());
    fake.serve("https://cdn.example/a.png", png());
    let gated = Arc::new(GatedSend {
        inner: fake.clone(),
        gate: tokio::sync::Semaphore::new(0),
        started: tokio::sync::Notify::new(),
    });
    let first = Arc::new(downloading(
        store.clone(),
        media.clone(),
        gated.clone(),
        forgetful(),
    ));
    let (h, b) = signed(&[image(0, "m_1", "https://cdn.example/a.png")]);
    let fetching = tokio::spawn({
        let first = first.clone();
        async move { first.handle_webhook(&h, &b, at(0)).await.unwrap() }
    });
    gated.started.notified().await;
    // Meanwhile another instance applies the removal.
    let second = downloading(store.clone(), media.clone(), fake.clone(), forgetful());
    let (h, b) = signed(&[from_customer(
        at(1),
        "message",
        json!({"mid": "m_1", "is_deleted": true}),
    )]);
    second.handle_webhook(&h, &b, at(1)).await.unwrap();
    second.deliver_due(at(2)).await.unwrap();
    gated.gate.add_permits(1);
    fetching.await.unwrap();
    let (stored, lines) = open(&*store).await;
    let key = messenger_channel::store::InMemoryMediaStore::new()
        .put(
            stored.conversation.id(),
            bytes::Bytes::from_static(PNG),
            None,
        )
        .await
        .unwrap();
    assert!(media.get(&key).await.unwrap().is_none(), "nothing kept");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.author == Author::Customer)
            .map(|l| l.body.clone())
            .collect::<Vec<_>>(),
        [
            LineBody::Unsent { of: "m_1".into() },
            LineBody::Unsent { of: "m_1".into() }
        ],
        "{lines:?}"
    );
    assert_eq!(store.outbox_stats().await.unwrap().pending, 0);
}

/// Another app's templates read as what they say (text, cards, buttons), and what the Page
/// sends that cannot be shown is the channel's notice worded for the Page, never "the
/// customer sent an unsupported message type". The Page's file is Messenger's link: neither
/// refused by the customers' attachment policy (an `.exe` here) nor downloaded.
#[tokio::test]
#[allow(clippy::too_many_lines)]
async fn the_pages_templates_and_files_are_readable() {
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let media = Arc::new(messenger_channel::store::InMemoryMediaStore::new());
    let graph = Arc::new(FakeSend::new());
    let engine = downloading(
        store.clone(),
        media.clone(),
        graph.clone(),
        ConversationConfig::default(),
    );
    post(
        &engine,
        &[from_customer(
            at(0),
            "message",
            json!({"mid": "m_1", "text": "hi"}),
        )],
        at(0),
    )
    .await;
    let fixture: Value = serde_json::from_str(
        &include_str!("fixtures/webhook/echo_templates.json")
            .replace("\"1234567890\"", &format!("\"{PAGE}\"")),
    )
    .unwrap();
    let items = fixture["entry"][0]["messaging"].as_array().unwrap().clone();
    post(&engine, &items, at(1)).await;
    let (_, lines) = open(&*store).await;
    let app = Author::App(AppId(555_000_111_222_333));
    let added: Vec<_> = lines
        .iter()
        .filter(|l| l.author != Author::Customer)
        .map(|l| (l.author.clone(), l.body.clone(), l.mid.clone()))
        .collect();
    let link = |title: &str, url: Option<&str>| LineBody::Link {
        kind: "template".into(),
        title: Some(title.into()),
        url: url.map(Into::into),
    };
    assert_eq!(
        added[0],
        (
            app.clone(),
            link(
                "Classic T-Shirt — See all our colors [Buy] [Start chatting]\nClassic Hoodie",
                Some("https://shop.example/shirt"),
            ),
            Some("m_generic".into()),
        )
    );
    assert_eq!(
        added[1],
        (
            app.clone(),
            link(
                "[View website]",
                Some("https://www.facebook.com/photo.php?fbid=1")
            ),
            Some("m_media".into()),
        )
    );
    assert_eq!(
        added[2],
        (
            app.clone(),
            link(
                "Classic White T-Shirt — 100% Soft and Luxurious Cotton",
                None
            ),
            Some("m_receipt".into()),
        )
    );
    let LineBody::File(file) = &added[3].1 else {
        panic!("{:?}", added[3])
    };
    assert_eq!(added[3].0, Author::PageInbox);
    assert_eq!(file.rejected, None, "not the customers' policy");
    assert_eq!(
        file.media,
        messenger_channel::conversation::MediaState::NotKept
    );
    assert_eq!(
        file.url.as_deref(),
        Some("https://cdn.fbsbx.com/v/t59/invoice.exe?oe=666C0000")
    );
    assert_eq!(
        added[4].0,
        Author::System,
        "the channel's notice, not the app's"
    );
    assert!(
        matches!(&added[4].1, LineBody::Notice(n) if n.starts_with("The Page sent") && n.contains("(template)")),
        "{:?}",
        added[4]
    );
    assert_eq!(added.len(), 5, "{added:?}");
    assert!(
        lines
            .iter()
            .all(|l| !matches!(&l.body, LineBody::Notice(n) if n.contains("customer sent"))),
        "{lines:?}"
    );
    assert!(
        graph.downloads().is_empty(),
        "the Page's file is not downloaded"
    );
}

/// The same reaction, edit and removal delivered again in another envelope (another body with
/// other events, another entry time), and again after the inbox forgot them (past the dedup
/// window, purged), are each one change: one line.
#[tokio::test]
async fn a_reaction_or_edit_delivered_again_in_another_envelope_applies_once() {
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let (engine, _) = engine_and_send(store.clone(), ConversationConfig::default());
    let reaction = from_customer(
        at(1),
        "reaction",
        json!({"mid": "m_1", "action": "react", "emoji": "\u{1F44D}", "reaction": "like"}),
    );
    let edit = from_customer(
        at(2),
        "message_edit",
        json!({"mid": "m_1", "text": "hello there", "num_edit": 1}),
    );
    let unsent = from_customer(at(3), "message", json!({"mid": "m_2", "is_deleted": true}));
    post(
        &engine,
        &[
            from_customer(at(0), "message", json!({"mid": "m_1", "text": "hello"})),
            from_customer(at(0), "message", json!({"mid": "m_2", "text": "oops"})),
            reaction.clone(),
            edit.clone(),
            unsent.clone(),
        ],
        at(3),
    )
    .await;
    let once = open(&*store).await.1;
    // Another body: the same events among others, under another entry time.
    let other_envelope = |now: SystemTime| {
        WebhookBody::new(PAGE)
            .item(
                from_customer(
                    at(4),
                    "message",
                    json!({"mid": format!("m_{}", ms(now)), "text": "more"}),
                ),
                now,
            )
            .item(unsent.clone(), now)
            .item(edit.clone(), now)
            .item(reaction.clone(), now)
            .sign(&AppSecret::new(SECRET).unwrap())
            .into_parts()
    };
    let (h, b) = other_envelope(at(10));
    let report = engine.handle_webhook(&h, &b, at(10)).await.unwrap();
    assert_eq!((report.received, report.duplicates), (1, 3), "{report:?}");
    // Long after: the inbox purged them, so they are new to it, and still recorded once.
    let later = at(10) + messenger_channel::engine::DEFAULT_DEDUP_TTL + Duration::from_secs(60);
    engine.apply_pending(later).await.unwrap();
    let (h, b) = other_envelope(later);
    let report = engine.handle_webhook(&h, &b, later).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.received, 4, "forgotten by the inbox: {report:?}");
    let lines = open(&*store).await.1;
    let count = |body: &dyn Fn(&LineBody) -> bool| lines.iter().filter(|l| body(&l.body)).count();
    assert_eq!(
        count(&|b| matches!(b, LineBody::Reaction(_))),
        1,
        "{lines:?}"
    );
    assert_eq!(
        count(&|b| matches!(b, LineBody::Edit { .. })),
        1,
        "{lines:?}"
    );
    assert_eq!(
        count(&|b| matches!(b, LineBody::Unsent { .. })),
        1,
        "{lines:?}"
    );
    assert_eq!(lines.len(), once.len() + 2, "only the two new messages");
}

/// Echoes and whose they are. An echo of our own send (its `mc-effect:` key) adds no line;
/// one from our app without the key (sent by another part of the app) is the app's line;
/// with the app id configured, an echo carrying a key from another app (another deployment
/// on the Page, a forgery) is that app's line, and completes nothing.
#[tokio::test]
async fn an_echo_is_ours_only_with_our_key_and_our_app() {
    const OURS: u64 = 1_234_567;
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let send = Arc::new(FakeSend::new());
    let router = Arc::new(InMemoryRouter::new());
    router.set_presence(&AgentId::from("alice"), Presence::Available);
    let engine = Engine::builder(Webhook::new(&AppSecret::new(SECRET).unwrap()), send.clone())
        .store(store.clone())
        .router(router)
        .app_id(AppId(OURS))
        .build();
    post(
        &engine,
        &[from_customer(
            at(0),
            "message",
            json!({"mid": "m_1", "text": "hello?"}),
        )],
        at(0),
    )
    .await;
    let id = open(&*store).await.0.conversation.id().clone();
    let alice = AgentId::from("alice");
    engine.accept(&id, &alice, at(1)).await.unwrap();
    send.fail_sends(Some(SendError::Transport {
        kind: messenger_channel::send::TransportKind::Timeout,
        outcome_unknown: true,
        message: "no answer".into(),
    }));
    engine
        .send_text(&id, &alice, "on its way", at(2))
        .await
        .unwrap();
    let key = store.pending(10).await.unwrap()[0].key.clone();
    let metadata = format!("{}{key}", messenger_channel::engine::ECHO_KEY_PREFIX);
    post(
        &engine,
        &[
            // Staging, on the same Page, with a key of the same shape: not ours.
            echo(
                at(3),
                json!({"mid": "m_staging", "is_echo": true, "app_id": 7_654_321,
                       "metadata": metadata, "text": "staging says hi"}),
            ),
            // Our app, without a key: ours, but not this channel's send.
            echo(
                at(4),
                json!({"mid": "m_app", "is_echo": true, "app_id": OURS, "text": "automated"}),
            ),
        ],
        at(4),
    )
    .await;
    assert_eq!(
        store.pending(10).await.unwrap().len(),
        1,
        "another app's echo completes nothing"
    );
    // Ours, with its key: completes the send, and adds no line.
    post(
        &engine,
        &[echo(
            at(5),
            json!({"mid": "m_ours", "is_echo": true, "app_id": OURS,
                   "metadata": metadata, "text": "on its way"}),
        )],
        at(5),
    )
    .await;
    assert!(store.pending(10).await.unwrap().is_empty());
    let lines = open(&*store).await.1;
    let others: Vec<_> = lines
        .iter()
        .filter(|l| l.author != Author::Customer && l.author != Author::System)
        .map(|l| (l.author.clone(), l.body.clone(), l.mid.clone()))
        .collect();
    assert_eq!(
        others,
        [
            (
                Author::Agent(alice),
                LineBody::Text("on its way".into()),
                Some("m_ours".into())
            ),
            (
                Author::App(AppId(7_654_321)),
                LineBody::Text("staging says hi".into()),
                Some("m_staging".into())
            ),
            (
                Author::App(AppId(OURS)),
                LineBody::Text("automated".into()),
                Some("m_app".into())
            ),
        ]
    );
}

/// A watermark past the event that carries it (a skewed or forged clock) counts only up to
/// the event's time: it cannot mark later messages read.
#[tokio::test]
async fn a_watermark_is_never_past_its_event() {
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let engine = engine(store.clone(), ConversationConfig::default());
    post(
        &engine,
        &[
            from_customer(at(0), "message", json!({"mid": "m_1", "text": "hi"})),
            from_customer(at(20), "delivery", json!({"watermark": ms(at(500))})),
            from_customer(at(21), "read", json!({"watermark": ms(at(900))})),
        ],
        at(30),
    )
    .await;
    let c = open(&*store).await.0.conversation;
    assert_eq!(c.delivered_until(), Some(at(20)));
    assert_eq!(c.read_until(), Some(at(21)));
    assert_eq!(c.message_status(Some(at(25))), MessageStatus::Sent);
}
