//! Durability: a restart on SQLite, a crash between saving and sending, and two instances on
//! one PostgreSQL database.
#![cfg(any(feature = "sqlite", feature = "postgres"))]

mod support;

use std::sync::Arc;
use std::time::Duration;

use messenger_channel::agents::{InMemoryRouter, Presence, RecordingNotifier};
use messenger_channel::conversation::{Author, ConversationConfig};
use messenger_channel::engine::Engine;
use messenger_channel::ids::{AgentId, AppId, PageId, UserId};
use messenger_channel::store::{ConversationStore, MediaStore};
use messenger_channel::testing::{FakeSend, Hang, t0};
use messenger_channel::webhook::Webhook;
use support::channel::{PAGE, secret, signed, webhook};
#[cfg(feature = "postgres")]
use support::postgres::{fresh_postgres_database, postgres_url};

#[cfg(feature = "sqlite")]
const NOTICE: &str = "This conversation may be monitored, recorded and stored.";

fn engine<S>(store: Arc<S>, send: Arc<FakeSend>, config: ConversationConfig) -> Engine
where
    S: ConversationStore + MediaStore + 'static,
{
    let router = Arc::new(InMemoryRouter::new());
    router.set_presence(&AgentId::from("alice"), Presence::Available);
    router.set_capacity(&AgentId::from("alice"), 1000);
    Engine::builder(Webhook::new(&secret()), send)
        .store(store.clone())
        .media(store)
        .router(router)
        .notifier(Arc::new(RecordingNotifier::new()))
        .config(config)
        // One instance, restarted under its name in the crash tests.
        .instance("durable-test")
        .build()
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_survives_a_restart() {
    use messenger_channel::store::SqliteStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("channel.db");
    let customer = UserId::from("24012345678901234");
    let (before, transcript_before, id) = {
        let store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let e = engine(
            store.clone(),
            Arc::new(FakeSend::new()),
            ConversationConfig::default(),
        );
        let (h, b) = signed(webhook().message(customer.as_str(), "m_1", "Hello", t0()));
        e.handle_webhook(&h, &b, t0()).await.unwrap();
        let id = store
            .find_open(&PageId::from(PAGE), &customer)
            .await
            .unwrap()
            .unwrap()
            .conversation
            .id()
            .clone();
        e.accept(&id, &AgentId::from("alice"), t0() + Duration::from_secs(5))
            .await
            .unwrap();
        e.send_text(
            &id,
            &AgentId::from("alice"),
            "Hi, how can I help?",
            t0() + Duration::from_secs(6),
        )
        .await
        .unwrap();
        let before = store.load(&id).await.unwrap().unwrap();
        let transcript = store.transcript(&id).await.unwrap();
        (before, transcript, id)
        // Everything is dropped here: pool, engine, stores.
    };
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    assert_eq!(store.load(&id).await.unwrap().unwrap(), before);
    assert_eq!(store.transcript(&id).await.unwrap(), transcript_before);
    assert_eq!(
        store
            .find_open(&PageId::from(PAGE), &customer)
            .await
            .unwrap()
            .unwrap()
            .conversation
            .id(),
        &id
    );
    // The dedup record survived: Meta's redelivery of the first body is recognised.
    let e = engine(
        store.clone(),
        Arc::new(FakeSend::new()),
        ConversationConfig::default(),
    );
    let (h, b) = signed(webhook().message(customer.as_str(), "m_1", "Hello", t0()));
    let report = e
        .handle_webhook(&h, &b, t0() + Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!((report.handled, report.duplicates), (0, 1));
    assert_eq!(
        store.schema_version().await.unwrap(),
        messenger_channel::store::SCHEMA_VERSION
    );
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_saving_and_sending_loses_nothing() {
    use messenger_channel::store::SqliteStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("channel.db");
    let config = ConversationConfig::default().privacy_notice(Some(NOTICE.into()));
    let customer = "24012345678901234";

    // First process: the state is saved, then the send hangs and the process dies.
    {
        let store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let dying = Arc::new(FakeSend::new());
        dying.hang(Hang::BeforeSending);
        let e = Arc::new(engine(store, dying.clone(), config.clone()));
        let (h, b) = signed(webhook().message(customer, "m_1", "Hello", t0()));
        let task = tokio::spawn({
            let e = e.clone();
            async move { e.handle_webhook(&h, &b, t0()).await }
        });
        dying.hung().await;
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert!(dying.sent().is_empty());
    }

    // Second process: recovery delivers every pending effect, exactly once.
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    assert!(
        !store.pending(100).await.unwrap().is_empty(),
        "the effects were saved with the state"
    );
    let send = Arc::new(FakeSend::new());
    let e = engine(store.clone(), send.clone(), config.clone());
    // Restarted under its name, the instance takes back what it held at once (at the default
    // lease of 60 s, nothing would be handed out before then).
    assert!(e.reclaim().await.unwrap() > 0);
    e.deliver_due(t0() + Duration::from_secs(1)).await.unwrap();
    // The notice may have reached Meta before the crash: its echo is awaited first.
    assert!(send.texts().is_empty(), "{:?}", send.texts());
    let grace = e.delivery_config().echo_grace;
    e.deliver_due(t0() + Duration::from_secs(1) + grace)
        .await
        .unwrap();
    assert_eq!(send.texts(), [NOTICE]);
    e.deliver_due(t0() + Duration::from_secs(2) + grace * 10)
        .await
        .unwrap();
    assert_eq!(send.texts(), [NOTICE], "delivered once");
    assert!(store.pending(100).await.unwrap().is_empty());
    // The customer's message is in the transcript once, and the conversation was offered.
    let c = store
        .find_open(&PageId::from(PAGE), &UserId::from(customer))
        .await
        .unwrap()
        .unwrap()
        .conversation;
    let lines = store.transcript(c.id()).await.unwrap();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.author == Author::Customer)
            .count(),
        1
    );
    assert!(matches!(
        c.state(),
        messenger_channel::conversation::State::Open { offer: Some(_) }
    ));
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_marks_a_send_delivered_so_recovery_does_not_repeat_it() {
    use messenger_channel::store::SqliteStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("channel.db");
    let config = ConversationConfig::default().privacy_notice(Some(NOTICE.into()));
    let customer = "24012345678901234";

    // The platform accepted the notice, then the process died before marking it done.
    let metadata = {
        let store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let dying = Arc::new(FakeSend::new());
        dying.hang(Hang::AfterSending);
        let e = Arc::new(engine(store, dying.clone(), config.clone()));
        let (h, b) = signed(webhook().message(customer, "m_1", "Hello", t0()));
        let task = tokio::spawn({
            let e = e.clone();
            async move { e.handle_webhook(&h, &b, t0()).await }
        });
        dying.hung().await;
        task.abort();
        let _ = task.await;
        let sent = dying.sent();
        assert_eq!(sent.len(), 1);
        sent[0].body["message"]["metadata"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(metadata.starts_with(messenger_channel::engine::ECHO_KEY_PREFIX));

    // Meta's echo of that message reaches the restarted instance before its recovery runs.
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let send = Arc::new(FakeSend::new());
    let e = engine(store.clone(), send.clone(), config);
    let (h, b) = signed(webhook().echo(
        customer,
        "m_echo",
        AppId(1),
        Some(&metadata),
        Some(NOTICE),
        t0() + Duration::from_secs(1),
    ));
    assert_eq!(
        e.handle_webhook(&h, &b, t0() + Duration::from_secs(1))
            .await
            .unwrap()
            .echoes,
        1
    );
    e.reclaim().await.unwrap();
    for secs in [2, 40, 4000] {
        e.deliver_due(t0() + Duration::from_secs(secs))
            .await
            .unwrap();
    }
    assert!(store.pending(100).await.unwrap().is_empty());
    assert!(
        send.texts().is_empty(),
        "the notice is not sent a second time: {:?}",
        send.texts()
    );
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_database() {
    use messenger_channel::store::PostgresStore;
    let Some(url) = postgres_url() else {
        return;
    };
    let instances: Vec<Arc<Engine>> = {
        let mut v = Vec::new();
        for _ in 0..2 {
            let store = Arc::new(PostgresStore::connect(&url).await.unwrap());
            v.push(Arc::new(engine(
                store,
                Arc::new(FakeSend::new()),
                ConversationConfig::default(),
            )));
        }
        v
    };
    let run = format!(
        "{}{}",
        std::process::id(),
        t0().elapsed().map_or(0, |d| d.as_nanos())
    );
    let customers: Vec<String> = (0..6).map(|i| format!("9{run}{i}")).collect();
    // Ten batches, each with a message from every customer; unique mids.
    let batches: Vec<_> = (0..10)
        .map(|b| {
            let body = customers
                .iter()
                .enumerate()
                .fold(webhook(), |body, (i, c)| {
                    body.message(
                        c,
                        &format!("m_{run}_{b}_{i}"),
                        "hi",
                        t0() + Duration::from_secs(b),
                    )
                });
            signed(body)
        })
        .collect();
    let mut tasks = Vec::new();
    for (h, b) in &batches {
        // Each batch to both instances, three times, all at once.
        for e in &instances {
            for _ in 0..3 {
                let (e, h, b) = (e.clone(), h.clone(), b.clone());
                tasks.push(tokio::spawn(async move {
                    e.handle_webhook(&h, &b, t0()).await.unwrap()
                }));
            }
        }
    }
    let mut handled = 0;
    for t in tasks {
        let report = t.await.unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        handled += report.handled;
    }
    assert_eq!(
        handled,
        customers.len() * batches.len(),
        "each event handled by exactly one instance, once"
    );
    // Exactly one conversation per customer, each message once in its transcript.
    let store = PostgresStore::connect(&url).await.unwrap();
    for (i, c) in customers.iter().enumerate() {
        let conv = store
            .find_open(&PageId::from(PAGE), &UserId::new(c.clone()))
            .await
            .unwrap()
            .expect("a conversation");
        let mut mids: Vec<_> = store
            .transcript(conv.conversation.id())
            .await
            .unwrap()
            .into_iter()
            .filter(|l| l.author == Author::Customer)
            .filter_map(|l| l.mid)
            .collect();
        mids.sort();
        let mut expected: Vec<_> = (0..batches.len())
            .map(|b| format!("m_{run}_{b}_{i}"))
            .collect();
        expected.sort();
        assert_eq!(mids, expected, "customer {c}");
    }
    let open: Vec<_> = store
        .list_open()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| customers.contains(&s.conversation.customer().as_str().to_owned()))
        .collect();
    assert_eq!(open.len(), customers.len());
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_workers_never_take_the_same_effect() {
    use messenger_channel::conversation::{Conversation, Effect, Inbound};
    use messenger_channel::store::{Commit, PostgresStore};
    let Some(url) = postgres_url() else {
        return;
    };
    // Committed without a lease, as after a crash: claimable at once.
    let store = Arc::new(PostgresStore::connect(&url).await.unwrap());
    let run = format!("claim{}", t0().elapsed().map_or(0, |d| d.as_nanos()));
    let (c, _) = Conversation::start(
        run.as_str().into(),
        PageId::new(run.clone()),
        UserId::from("u"),
        Inbound::new(None, vec![]),
        t0(),
        &ConversationConfig::default(),
    );
    let effects: Vec<Effect> = (0..40)
        .map(|i| Effect::SessionStarted {
            agent: AgentId::new(format!("a{i}")),
        })
        .collect();
    store
        .commit(&Commit {
            conversation: c,
            expected_version: None,
            transcript: vec![],
            effects,
            deadline: None,
            applies: None,
            at: t0(),
            claim: None,
        })
        .await
        .unwrap();
    // Four workers, each on its own connection pool, each claiming (for the default lease)
    // until nothing is left.
    let mut workers = Vec::new();
    for _ in 0..4 {
        let worker = PostgresStore::connect(&url).await.unwrap();
        let lease = messenger_channel::store::Lease {
            owner: format!("{run}-w{}", workers.len()),
            at: t0(),
            until: t0() + messenger_channel::store::DEFAULT_OUTBOX_LEASE,
        };
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = worker
                    .claim_effects(&lease, t0() + Duration::from_secs(1), 5)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|p| p.key));
            }
        }));
    }
    let mut keys = Vec::new();
    for w in workers {
        keys.extend(w.await.unwrap().into_iter().filter(|k| k.starts_with(&run)));
    }
    let total = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), total, "two workers claimed the same effect");
    assert_eq!(total, 40, "every effect claimed once");
}

/// A fleet starting together on a fresh database: every instance opens it, none fails on a
/// half-made schema (the migrations run under an advisory lock).
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_opens_a_fresh_postgres_database_at_once() {
    use messenger_channel::store::{PostgresStore, SCHEMA_VERSION};
    let Some(url) = postgres_url() else {
        return;
    };
    for round in 0..3 {
        let db = fresh_postgres_database(&url, &format!("mc_fleet_{}_{round}", std::process::id()))
            .await;
        let opens: Vec<_> = (0..8)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move { PostgresStore::connect(&db).await })
            })
            .collect();
        for open in opens {
            let store = open
                .await
                .unwrap()
                .expect("every instance opens the database");
            assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
        }
    }
}

/// The same on SQLite: several pools opening one new file at once.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_pools_open_a_fresh_sqlite_file_at_once() {
    use messenger_channel::store::{SCHEMA_VERSION, SqliteStore};
    // Several rounds on new files: the lock met while one pool switches the file to WAL
    // showed up about once in ten runs of a single round.
    let dir = tempfile::tempdir().unwrap();
    for round in 0..5 {
        let path = dir.path().join(format!("fresh{round}.db"));
        let opens: Vec<_> = (0..16)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { SqliteStore::open(&path).await })
            })
            .collect();
        for open in opens {
            let store = open.await.unwrap().expect("every pool opens the file");
            assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
        }
    }
}

/// A fleet: three instances started at the same moment on a fresh PostgreSQL database, fed
/// concurrently with every body delivered to two of them; one instance dies half-way (its
/// requests dropped mid-flight). Every message ends up in its transcript exactly once, in
/// order.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one scenario, read top to bottom
async fn a_fleet_of_three_loses_and_repeats_nothing_when_one_dies() {
    use messenger_channel::store::PostgresStore;
    let Some(url) = postgres_url() else {
        return;
    };
    let db = fresh_postgres_database(&url, &format!("mc_fleet3_{}", std::process::id())).await;
    // Started together, on a database with no schema yet.
    let opens: Vec<_> = (0..3)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { PostgresStore::connect(&db).await.unwrap() })
        })
        .collect();
    let mut instances = Vec::new();
    for (i, open) in opens.into_iter().enumerate() {
        let store = Arc::new(open.await.unwrap());
        // The instance that dies first hangs in its first application (its second store
        // call), after recording what it received.
        let at_call = if i == 2 { 2 } else { 0 };
        let faulty = Arc::new(support::faulty_store::FaultyStore::new(
            store.clone(),
            at_call,
            support::faulty_store::Fault::HangAfter,
        ));
        let router = Arc::new(InMemoryRouter::new());
        router.set_presence(&AgentId::from("alice"), Presence::Available);
        instances.push(Arc::new(
            Engine::builder(Webhook::new(&secret()), Arc::new(FakeSend::new()))
                .store(faulty)
                .media(store)
                .router(router)
                .notifier(Arc::new(RecordingNotifier::new()))
                .build(),
        ));
    }
    // Handled a minute after the last message was sent.
    let now = t0() + Duration::from_secs(60);
    let customers: Vec<String> = (0..5).map(|i| format!("7100{i}")).collect();
    let bodies: Vec<_> = (0..24_u64)
        .map(|b| {
            let body = customers.iter().fold(webhook(), |body, c| {
                body.message(
                    c,
                    &format!("m_{c}_{b:02}"),
                    "hi",
                    t0() + Duration::from_secs(b),
                )
            });
            signed(body)
        })
        .collect();
    // Each body to two instances at once; instance 2 dies after half of the bodies went out.
    let mut deliveries: Vec<(usize, usize, tokio::task::JoinHandle<bool>)> = Vec::new();
    for (i, (h, b)) in bodies.iter().enumerate() {
        if i == bodies.len() / 2 {
            for (_, target, task) in &deliveries {
                if *target == 2 {
                    task.abort();
                }
            }
        }
        for target in [i % 3, (i + 1) % 3] {
            let alive = i < bodies.len() / 2 || target != 2;
            if !alive {
                continue;
            }
            let (e, h, b) = (instances[target].clone(), h.clone(), b.clone());
            deliveries.push((
                i,
                target,
                tokio::spawn(async move { e.handle_webhook(&h, &b, now).await.is_ok() }),
            ));
        }
    }
    let mut acknowledged = vec![false; bodies.len()];
    for (i, _, task) in deliveries {
        if let Ok(true) = task.await {
            acknowledged[i] = true;
        }
    }
    // Meta delivers again what no instance acknowledged, to a survivor.
    for (i, (h, b)) in bodies.iter().enumerate() {
        if !acknowledged[i] {
            instances[0].handle_webhook(h, b, now).await.unwrap();
        }
    }
    // The survivors sweep what the dead instance recorded but did not apply.
    instances.truncate(2);
    for e in &instances {
        e.tick(now + Duration::from_secs(30)).await.unwrap();
    }
    let store = PostgresStore::connect(&db).await.unwrap();
    for c in &customers {
        let conv = store
            .find_open(&PageId::from(PAGE), &UserId::new(c.clone()))
            .await
            .unwrap()
            .expect("one conversation per customer");
        let mids: Vec<_> = store
            .transcript(conv.conversation.id())
            .await
            .unwrap()
            .into_iter()
            .filter(|l| l.author == Author::Customer)
            .filter_map(|l| l.mid)
            .collect();
        let expected: Vec<_> = (0..bodies.len()).map(|b| format!("m_{c}_{b:02}")).collect();
        assert_eq!(mids, expected, "customer {c}: every message once, in order");
    }
    assert_eq!(
        store
            .inbox_threads(t0() + Duration::from_secs(3600), 100)
            .await
            .unwrap(),
        Vec::<String>::new(),
        "nothing left in the inbox"
    );
}
