//! From a hostile review (each failed before its fix): an agent who came back and then
//! misses an offer made earlier is set away again (presence keyed on when the offer ended),
//! and rows an instance of an older version wrote during an upgrade never hide a waiting
//! conversation from the tick (pages follow the rows' own places).

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use messenger_channel::agents::{AgentRouter, InMemoryRouter, Presence, RecordingNotifier};
use messenger_channel::conversation::{Conversation, ConversationConfig, Inbound, LineBody, State};
use messenger_channel::engine::{Engine, QUEUED_PAGE};
use messenger_channel::ids::{AgentId, ConversationId, PageId, QueueId, UserId};
use messenger_channel::routing::{Queue, Routing};
use messenger_channel::store::{Commit, ConversationStore, InMemoryStore, SqliteStore};
use messenger_channel::testing::{FakeSend, t0};
use messenger_channel::webhook::Webhook;
use support::channel::{PAGE, secret, signed, webhook};

fn secs(n: u64) -> SystemTime {
    t0() + Duration::from_secs(n)
}

fn agent(name: &str) -> AgentId {
    AgentId::from(name)
}

async fn presence(router: &InMemoryRouter, name: &str) -> Presence {
    router
        .agent_status(&agent(name), secs(0))
        .await
        .unwrap()
        .unwrap()
        .presence
}

async fn receive(engine: &Engine, customer: &str, at: SystemTime) {
    let (h, b) = signed(webhook().message(customer, &format!("m-{customer}"), "Hello", at));
    let report = engine.handle_webhook(&h, &b, at).await.unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
}

async fn open(store: &dyn ConversationStore, customer: &str) -> Conversation {
    store
        .find_open(
            &PageId::new(PAGE.to_owned()),
            &UserId::new(customer.to_owned()),
        )
        .await
        .unwrap()
        .unwrap()
        .conversation
}

/// Keyed on when offers were made, `presence_after_offer` dropped a distinct offer that the
/// agent misses after coming back, because it was made before the offer whose rejection
/// last set the presence: ada, Available again, let c1 lapse and stayed Available.
#[tokio::test]
async fn an_older_offer_missed_after_the_agent_came_back_sets_the_presence() {
    let config = ConversationConfig::default()
        .presence_after_rejected_offer(Some(Presence::DoNotDisturb))
        .presence_after_missed_offer(Some(Presence::Away));
    let timeout = config.offer_timeout;
    let router = Arc::new(InMemoryRouter::new());
    router.set_presence(&agent("ada"), Presence::Available);
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let engine = Engine::builder(Webhook::new(&secret()), Arc::new(FakeSend::new()))
        .store(store.clone())
        .router(router.clone())
        .notifier(Arc::new(RecordingNotifier::new()))
        .config(config)
        .build();
    // ada (capacity 10) is offered c1 at 1 s and c2 at 10 s.
    receive(&engine, "c1", secs(1)).await;
    receive(&engine, "c2", secs(10)).await;
    let (c1, c2) = (open(&*store, "c1").await, open(&*store, "c2").await);
    for c in [&c1, &c2] {
        assert!(
            matches!(c.state(), State::Open { offer: Some(o) } if o.agent == agent("ada")),
            "{:?}",
            c.state()
        );
    }
    // She rejects c2: Busy - DND. She sets herself Available again.
    engine
        .reject(c2.id(), &agent("ada"), secs(20))
        .await
        .unwrap();
    assert_eq!(presence(&router, "ada").await, Presence::DoNotDisturb);
    router.set_presence(&agent("ada"), Presence::Available);
    // Then she lets c1 lapse: a missed offer, after she came back.
    engine
        .tick(secs(1) + timeout + Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        !matches!(open(&*store, "c1").await.state(), State::Open { offer: Some(o) } if o.agent == agent("ada") && o.offered_at == secs(1)),
        "c1's first offer lapsed"
    );
    assert_eq!(
        presence(&router, "ada").await,
        Presence::Away,
        "a missed offer after the agent came back must set the presence"
    );
}

/// Commits conversation `id` waiting in `general` since `at` (paused: another app holds the
/// thread, so the tick passes over it).
async fn waiting(store: &dyn ConversationStore, id: &str, at: SystemTime, paused: bool) {
    let config = ConversationConfig::default();
    let (c, _) = Conversation::start_in_queue(
        Some(QueueId::from("general")),
        ConversationId::from(id),
        PageId::from(PAGE).into_owned(),
        UserId::from(id).into_owned(),
        Inbound::new(None, vec![LineBody::Text("hi".into())]).on_standby(paused),
        at,
        &config,
    );
    store
        .commit(&Commit {
            conversation: c,
            expected_version: None,
            transcript: Vec::new(),
            effects: Vec::new(),
            deadline: None,
            applies: None,
            at,
            claim: None,
        })
        .await
        .unwrap();
}

/// A row an instance of schema 14 still running writes keeps `queued_ms = 0`. The tick's
/// cursor was taken from the body while the page is ordered by the column: a page ending on
/// such a row jumped the cursor to the body's time, and every conversation whose column lies
/// between was skipped, by every tick, as long as those rows waited.
#[tokio::test]
async fn rows_of_a_schema_14_instance_never_hide_a_conversation_from_the_tick() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("db")).await.unwrap());
    // A page of paused conversations written by a schema-14 instance during the rollout
    // (their bodies say 100 s; their column the default, 0).
    for i in 0..QUEUED_PAGE {
        waiting(
            &*store,
            &format!("old{i:04}"),
            secs(100) + Duration::from_millis(i as u64),
            true,
        )
        .await;
    }
    sqlx::query("UPDATE conversations SET queued_ms = 0 WHERE id LIKE 'old%'")
        .execute(store.pool())
        .await
        .unwrap();
    // One the tick can offer, waiting since 50 s, written by an upgraded instance.
    waiting(&*store, "new", secs(50), false).await;
    let router = Arc::new(InMemoryRouter::new());
    router.set_presence(&agent("a"), Presence::Available);
    let engine = Engine::builder(Webhook::new(&secret()), Arc::new(FakeSend::new()))
        .store(store.clone())
        .router(router)
        .notifier(Arc::new(RecordingNotifier::new()))
        .routing(Routing::new(Queue::push(QueueId::from("general"))))
        .build();
    for n in 0..3 {
        engine.tick(secs(200 + n)).await.unwrap();
    }
    let new = store
        .load(&ConversationId::from("new"))
        .await
        .unwrap()
        .unwrap()
        .conversation;
    assert!(
        matches!(new.state(), State::Open { offer: Some(o) } if o.agent == agent("a")),
        "the tick skipped it: {:?}",
        new.state()
    );
}
