//! How much of the queue the engine reads: the customer's place in the queue is counted by
//! the store, not read from it; a tick reads the waiting conversations a page at a time and
//! stops once nobody can take more, yet conversations nobody can be offered at the head of
//! the queue never starve the ones behind them; the stores' place column survives an upgrade
//! of an older database (SQLite and PostgreSQL).

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use messenger_channel::agents::{InMemoryRouter, Presence, RecordingNotifier};
use messenger_channel::conversation::{
    AutomatedTrigger, Conversation, ConversationConfig, Inbound, Input, LineBody, State,
};
use messenger_channel::engine::{Engine, QUEUED_PAGE};
use messenger_channel::ids::{AgentId, ConversationId, PageId, QueueId, UserId};
use messenger_channel::routing::{
    AutomatedMessages, Date, OperatingHours, OutsideHours, Queue, Routing, Time,
};
use messenger_channel::store::{Commit, ConversationStore, InMemoryStore};
use messenger_channel::testing::{FakeSend, t0};
use messenger_channel::webhook::Webhook;
use support::channel::{PAGE, secret, signed, webhook};
use support::faulty_store::{Fault, FaultyStore};

fn secs(n: u64) -> SystemTime {
    t0() + Duration::from_secs(n)
}

/// One Push queue that tells the customer their place when nobody takes them.
fn told_places() -> Routing {
    Routing::new(
        Queue::push(QueueId::from("general")).messages(AutomatedMessages::default().set(
            AutomatedTrigger::NoAgentAvailable,
            "All agents are busy; you are number {QueuePosition} in the queue.",
        )),
    )
}

/// An engine on `store` with no agent available; returns it and what it sends.
fn engine(store: Arc<dyn ConversationStore>) -> (Engine, Arc<FakeSend>) {
    let send = Arc::new(FakeSend::new());
    let engine = Engine::builder(Webhook::new(&secret()), send.clone())
        .store(store)
        .router(Arc::new(InMemoryRouter::new()))
        .notifier(Arc::new(RecordingNotifier::new()))
        .routing(told_places())
        .build();
    (engine, send)
}

async fn receive(e: &Engine, customer: &str, mid: &str, at: SystemTime) {
    let (h, b) = signed(webhook().message(customer, mid, "hi", at));
    let r = e.handle_webhook(&h, &b, at).await.unwrap();
    assert!(r.failed.is_empty());
}

/// Three customers write while nobody is available: each is told their place.
async fn three_told(store: Arc<dyn ConversationStore>) {
    let (e, send) = engine(store);
    for (i, customer) in ["c1", "c2", "c3"].into_iter().enumerate() {
        receive(&e, customer, &format!("m{i}"), secs(1 + i as u64)).await;
    }
    assert_eq!(
        send.texts(),
        [1, 2, 3].map(|n| format!("All agents are busy; you are number {n} in the queue."))
    );
}

/// The place told to a customer nobody takes is counted by the store
/// (`ConversationStore::queued_ahead`): the queue's conversations are not read, bodies and
/// all, for each new one.
#[tokio::test]
async fn the_place_in_the_queue_is_counted_not_read() {
    let counted = Arc::new(FaultyStore::new(
        Arc::new(InMemoryStore::new()),
        0,
        Fault::FailBefore,
    ));
    three_told(counted.clone()).await;
    assert_eq!(counted.queued_ahead_calls.load(Ordering::SeqCst), 3);
    assert_eq!(
        counted.list_queue_calls.load(Ordering::SeqCst),
        0,
        "no read of the queue"
    );
    assert_eq!(counted.list_queued_calls.load(Ordering::SeqCst), 0);
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn the_place_in_the_queue_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = messenger_channel::store::SqliteStore::open(dir.path().join("q.db"))
        .await
        .unwrap();
    three_told(Arc::new(store)).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_place_in_the_queue_on_postgres() {
    let Some(url) = support::postgres::postgres_url() else {
        return;
    };
    let db = support::postgres::fresh_postgres_database(
        &url,
        &format!("mc_queue_told_{}", std::process::id()),
    )
    .await;
    let store = messenger_channel::store::PostgresStore::connect(&db)
        .await
        .unwrap();
    three_told(Arc::new(store.clone())).await;
    store.pool().close().await;
}

/// The queues of the tick tests: `general` (Push, the fallback), `sales` (Pick) and `night`
/// (Push, closed at t0: Paris, 09:00 to 18:00 on weekdays, and t0's Monday a holiday).
fn three_queues() -> Routing {
    let closed_now = OperatingHours::new("Europe/Paris")
        .unwrap()
        .weekdays(Time::constant(9, 0, 0, 0), Time::constant(18, 0, 0, 0))
        .holiday(Date::constant(2024, 6, 10));
    Routing::new(Queue::push(QueueId::from("general")))
        .add_queue(Queue::pick(QueueId::from("sales")))
        .add_queue(Queue::push(QueueId::from("night")).hours(closed_now, OutsideHours::Wait))
}

/// Kinds of waiting conversation a tick cannot offer to agent `a`.
#[derive(Clone, Copy)]
enum Head {
    /// Another app holds the thread (paused).
    Paused,
    /// `a` declined it a moment ago (excluded for the re-offer interval).
    Declined,
    /// In the Pick queue.
    Pick,
    /// In the closed queue.
    Closed,
}

/// Commits conversation `id` (customer `id`) waiting in `queue` since `at`, as `head` makes it
/// (`None`: one the tick can offer).
async fn waiting(store: &dyn ConversationStore, id: &str, at: SystemTime, head: Option<Head>) {
    let config = ConversationConfig::default();
    let queue = match head {
        Some(Head::Pick) => "sales",
        Some(Head::Closed) => "night",
        _ => "general",
    };
    let (mut c, _) = Conversation::start_in_queue(
        Some(QueueId::from(queue)),
        ConversationId::from(id),
        PageId::from(PAGE).into_owned(),
        UserId::from(id).into_owned(),
        Inbound::new(None, vec![LineBody::Text("hi".into())])
            .on_standby(matches!(head, Some(Head::Paused))),
        at,
        &config,
    );
    if matches!(head, Some(Head::Declined)) {
        let a = AgentId::from("a");
        c.apply(Input::OfferTo(a.clone()), secs(9), &config)
            .unwrap();
        c.apply(Input::Reject(a), secs(9), &config).unwrap();
    }
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

/// An engine on `store` with the [`three_queues`], and agent `a` available with room for one
/// conversation.
fn one_agent(store: Arc<dyn ConversationStore>) -> (Engine, Arc<InMemoryRouter>) {
    let router = Arc::new(InMemoryRouter::new());
    let a = AgentId::from("a");
    router.set_capacity(&a, 1);
    router.set_presence(&a, Presence::Available);
    let engine = Engine::builder(Webhook::new(&secret()), Arc::new(FakeSend::new()))
        .store(store)
        .router(router.clone())
        .notifier(Arc::new(RecordingNotifier::new()))
        .routing(three_queues())
        .build();
    (engine, router)
}

/// To whom conversation `id` is offered, if anyone.
async fn offered_to(store: &dyn ConversationStore, id: &str) -> Option<AgentId> {
    match store
        .load(&ConversationId::from(id))
        .await
        .unwrap()
        .unwrap()
        .conversation
        .state()
    {
        State::Open { offer: Some(o) } => Some(o.agent.clone()),
        _ => None,
    }
}

/// One agent has room for one conversation and 1,000 wait: the tick offers the oldest and
/// reads one page of them, not all.
#[tokio::test]
async fn a_tick_reads_one_page_when_one_agent_has_room_for_one() {
    let counted = Arc::new(FaultyStore::new(
        Arc::new(InMemoryStore::new()),
        0,
        Fault::FailBefore,
    ));
    for i in 0..1000 {
        waiting(
            &*counted,
            &format!("w{i:04}"),
            secs(1) + Duration::from_millis(i),
            None,
        )
        .await;
    }
    let (e, _) = one_agent(counted.clone());
    e.tick(secs(10)).await.unwrap();
    assert_eq!(
        offered_to(&*counted, "w0000").await,
        Some(AgentId::from("a"))
    );
    assert_eq!(offered_to(&*counted, "w0001").await, None);
    assert_eq!(
        counted.list_queued_calls.load(Ordering::SeqCst),
        1,
        "one read"
    );
    assert_eq!(
        counted.queued_read.load(Ordering::SeqCst),
        QUEUED_PAGE as u64,
        "of one page"
    );
    // The agent is full: the next tick reads none.
    e.tick(secs(11)).await.unwrap();
    assert_eq!(counted.list_queued_calls.load(Ordering::SeqCst), 1);
}

/// More than two pages of conversations nobody can offer `a` (paused, declined by `a`, in
/// the Pick queue, in the closed queue) wait ahead of one `a` can take: the first tick
/// offers it, oldest first, passing over the head page after page.
async fn the_head_never_starves_the_rest(store: Arc<dyn ConversationStore>) {
    let kinds = [Head::Paused, Head::Declined, Head::Pick, Head::Closed];
    let head = 2 * QUEUED_PAGE + 44;
    for i in 0..head {
        let at = secs(1) + Duration::from_millis(u64::try_from(i).unwrap());
        waiting(&*store, &format!("h{i:04}"), at, Some(kinds[i % 4])).await;
    }
    waiting(&*store, "behind", secs(2), None).await;
    waiting(&*store, "later", secs(3), None).await;
    let (e, _) = one_agent(store.clone());
    e.tick(secs(10)).await.unwrap();
    assert_eq!(
        offered_to(&*store, "behind").await,
        Some(AgentId::from("a")),
        "the first tick offers the conversation behind the head"
    );
    assert_eq!(offered_to(&*store, "later").await, None, "oldest first");
    for i in 0..head {
        assert_eq!(offered_to(&*store, &format!("h{i:04}")).await, None);
    }
}

#[tokio::test]
async fn the_head_never_starves_the_rest_in_memory() {
    the_head_never_starves_the_rest(Arc::new(InMemoryStore::new())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn the_head_never_starves_the_rest_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = messenger_channel::store::SqliteStore::open(dir.path().join("h.db"))
        .await
        .unwrap();
    the_head_never_starves_the_rest(Arc::new(store)).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_head_never_starves_the_rest_on_postgres() {
    let Some(url) = support::postgres::postgres_url() else {
        return;
    };
    let db = support::postgres::fresh_postgres_database(
        &url,
        &format!("mc_queue_head_{}", std::process::id()),
    )
    .await;
    let store = messenger_channel::store::PostgresStore::connect(&db)
        .await
        .unwrap();
    the_head_never_starves_the_rest(Arc::new(store.clone())).await;
    store.pool().close().await;
}

/// Offers go in the order of the time conversations last went to the queue (the place the
/// customer is told), not of their starts: one started first but transferred back to the
/// queue later waits behind one that was in the queue before the transfer.
#[tokio::test]
async fn a_tick_offers_in_the_order_of_the_queue_not_of_the_starts() {
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let config = ConversationConfig::default();
    let (mut back, _) = Conversation::start_in_queue(
        Some(QueueId::from("general")),
        ConversationId::from("back"),
        PageId::from(PAGE).into_owned(),
        UserId::from("back").into_owned(),
        Inbound::new(None, vec![LineBody::Text("hi".into())]),
        secs(1),
        &config,
    );
    let ada = AgentId::from("ada");
    for input in [
        Input::OfferTo(ada.clone()),
        Input::Accept(ada.clone()),
        Input::Transfer {
            agent: ada.clone(),
            to: messenger_channel::conversation::TransferTarget::Queue(QueueId::from("general")),
            note: None,
        },
    ] {
        back.apply(input, secs(5), &config).unwrap();
    }
    store
        .commit(&Commit {
            conversation: back,
            expected_version: None,
            transcript: Vec::new(),
            effects: Vec::new(),
            deadline: None,
            applies: None,
            at: secs(5),
            claim: None,
        })
        .await
        .unwrap();
    waiting(&*store, "waited", secs(3), None).await;
    let (e, _) = one_agent(store.clone());
    e.tick(secs(10)).await.unwrap();
    assert_eq!(
        offered_to(&*store, "waited").await,
        Some(AgentId::from("a"))
    );
    assert_eq!(offered_to(&*store, "back").await, None);
}

/// Databases written before the place column (schema 14), upgraded.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod upgrade {
    use super::*;
    use messenger_channel::conversation::TransferTarget;
    use messenger_channel::store::QueuePlace;

    /// Conversations as a database of schema 14 holds them: one waiting since its start (its
    /// body has no `queued_at`), one transferred back to the queue later (its body has it, at a
    /// time with a fraction of a millisecond), one held by an agent, one closed.
    fn older_rows() -> Vec<Conversation> {
        let config = ConversationConfig::default();
        let queue = QueueId::from("general");
        let start = |id: &str, at: SystemTime| {
            Conversation::start_in_queue(
                Some(queue.clone()),
                ConversationId::from(id),
                PageId::from("p").into_owned(),
                UserId::from(id).into_owned(),
                Inbound::new(None, vec![LineBody::Text("hi".into())]),
                at,
                &config,
            )
            .0
        };
        let ada = AgentId::from("ada");
        let apply = |mut c: Conversation, at: SystemTime, inputs: Vec<Input>| {
            for input in inputs {
                c.apply(input, at, &config).unwrap();
            }
            c
        };
        let taken = vec![Input::OfferTo(ada.clone()), Input::Accept(ada.clone())];
        let waiting = start("waiting", secs(10) + Duration::from_micros(1_500));
        let transferred = apply(
            start("transferred", secs(1)),
            secs(20) + Duration::from_micros(2_700),
            [
                taken.clone(),
                vec![Input::Transfer {
                    agent: ada.clone(),
                    to: TransferTarget::Queue(queue.clone()),
                    note: None,
                }],
            ]
            .concat(),
        );
        let held = apply(start("held", secs(2)), secs(3), taken);
        let closed = apply(
            start("closed", secs(4)),
            secs(5),
            vec![Input::ForceClose {
                supervisor: AgentId::from("sup"),
            }],
        );
        assert_eq!(
            transferred.queued_since(),
            secs(20) + Duration::from_micros(2_700)
        );
        vec![waiting, transferred, held, closed]
    }

    /// Commits [`older_rows`], then takes the database back to schema 14 (the place column and
    /// its indexes dropped, the version forgotten), as a database written before it.
    macro_rules! back_to_schema_14 {
        ($store:expr) => {{
            for c in older_rows() {
                $store
                    .commit(&Commit {
                        conversation: c,
                        expected_version: None,
                        transcript: Vec::new(),
                        effects: Vec::new(),
                        deadline: None,
                        applies: None,
                        at: t0(),
                        claim: None,
                    })
                    .await
                    .unwrap();
            }
            for sql in [
                "DROP INDEX conversations_queue_place",
                "DROP INDEX conversations_place",
                "ALTER TABLE conversations DROP COLUMN queued_ms",
                "DELETE FROM schema_version WHERE version >= 15",
            ] {
                sqlx::query(sql).execute($store.pool()).await.unwrap();
            }
        }};
    }

    /// After the upgrade, the places are the bodies' (to the millisecond): the waiting
    /// conversation is first, the transferred one second, whatever their starts; counted
    /// and paged alike.
    async fn places_after_the_upgrade(store: &dyn ConversationStore) {
        let queue = QueueId::from("general");
        let at = |name: &str, since: SystemTime| QueuePlace::new(since, ConversationId::from(name));
        let ahead = |place: QueuePlace| {
            let queue = queue.clone();
            async move { store.queued_ahead(Some(&queue), &place).await.unwrap() }
        };
        let waiting = secs(10) + Duration::from_micros(1_500);
        let transferred = secs(20) + Duration::from_micros(2_700);
        assert_eq!(ahead(at("waiting", waiting)).await, 0);
        assert_eq!(ahead(at("transferred", transferred)).await, 1);
        assert_eq!(ahead(at("", secs(15))).await, 1, "transferred at 20 s");
        assert_eq!(
            ahead(at("", secs(3600))).await,
            2,
            "neither held nor closed"
        );
        // The tick's pages, in the same order.
        let page = store.list_queued_after(None, 10).await.unwrap();
        let ids: Vec<&str> = page.iter().map(|s| s.conversation.id().as_str()).collect();
        assert_eq!(ids, ["waiting", "transferred"]);
        let rest = store
            .list_queued_after(Some(&at("waiting", waiting)), 10)
            .await
            .unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].conversation.id().as_str(), "transferred");
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn an_older_sqlite_database_gets_its_places_from_the_bodies() {
        use messenger_channel::store::{SCHEMA_VERSION, SqliteStore};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let store = SqliteStore::open(&path).await.unwrap();
            back_to_schema_14!(store);
            store.pool().close().await;
        }
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
        places_after_the_upgrade(&store).await;
    }

    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn an_older_postgres_database_gets_its_places_from_the_bodies() {
        use messenger_channel::store::{PostgresStore, SCHEMA_VERSION};
        let Some(url) = support::postgres::postgres_url() else {
            return;
        };
        let db = support::postgres::fresh_postgres_database(
            &url,
            &format!("mc_queue_upgrade_{}", std::process::id()),
        )
        .await;
        {
            let store = PostgresStore::connect(&db).await.unwrap();
            back_to_schema_14!(store);
            store.pool().close().await;
        }
        let store = PostgresStore::connect(&db).await.unwrap();
        assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
        places_after_the_upgrade(&store).await;
        store.pool().close().await;
    }
}
