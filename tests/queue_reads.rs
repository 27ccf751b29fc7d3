//! How much of the queue the engine reads: the customer's place in the queue is counted by
//! the store, not read from it; the stores' place column survives an upgrade of an older
//! database (SQLite and PostgreSQL).

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use messenger_channel::agents::{InMemoryRouter, RecordingNotifier};
use messenger_channel::conversation::AutomatedTrigger;
use messenger_channel::engine::Engine;
use messenger_channel::ids::QueueId;
use messenger_channel::routing::{AutomatedMessages, Queue, Routing};
use messenger_channel::store::{ConversationStore, InMemoryStore};
use messenger_channel::testing::{FakeSend, t0};
use messenger_channel::webhook::Webhook;
use support::channel::{secret, signed, webhook};
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

/// Databases written before the place column (schema 14), upgraded.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod upgrade {
    use super::*;
    use messenger_channel::conversation::{
        Conversation, ConversationConfig, Inbound, Input, LineBody, TransferTarget,
    };
    use messenger_channel::ids::{AgentId, ConversationId, PageId, UserId};
    use messenger_channel::store::{Commit, QueuePlace};

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
    /// its index dropped, the version forgotten), as a database written before it.
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
                "ALTER TABLE conversations DROP COLUMN queued_ms",
                "DELETE FROM schema_version WHERE version >= 15",
            ] {
                sqlx::query(sql).execute($store.pool()).await.unwrap();
            }
        }};
    }

    /// After the upgrade, the places are the bodies' (to the millisecond): the waiting
    /// conversation is first, the transferred one second, whatever their starts.
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
