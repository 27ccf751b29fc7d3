//! Durable stores under the engine: inbound text messages per second through the engine with
//! SQLite (a file, WAL) and with PostgreSQL, over 1 and over 1,000 active conversations, next
//! to the database's own floor in the same run: plain single-row inserts of the same size
//! through the same driver.
//!
//! Run with `cargo bench --bench store --features postgres,test-util`, with
//! `MESSENGER_CHANNEL_TEST_POSTGRES` set for the PostgreSQL half (`bash scripts/postgres.sh`
//! starts one); without it, only SQLite is measured.

#[path = "../tests/support/channel.rs"]
#[allow(dead_code, unreachable_pub)]
mod channel;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use channel::{secret, signed, webhook};
use criterion::Criterion;
use messenger_channel::agents::{InMemoryRouter, Presence, RecordingNotifier};
use messenger_channel::conversation::ConversationConfig;
use messenger_channel::engine::Engine;
use messenger_channel::ids::AgentId;
use messenger_channel::store::{ConversationStore, MediaStore};
use messenger_channel::testing::{FakeSend, t0};
use messenger_channel::webhook::Webhook;

const MESSAGES: usize = 2_000;

fn engine<S>(store: Arc<S>, conversations: usize) -> Engine
where
    S: ConversationStore + MediaStore + 'static,
{
    let router = Arc::new(InMemoryRouter::new());
    let alice = AgentId::from("alice");
    router.set_presence(&alice, Presence::Available);
    router.set_capacity(&alice, u32::try_from(conversations).unwrap() + 1);
    Engine::builder(Webhook::new(&secret()), Arc::new(FakeSend::new()))
        .store(store.clone())
        .media(store)
        .router(router)
        .notifier(Arc::new(RecordingNotifier::new()))
        .config(ConversationConfig::default())
        .build()
}

/// Messages per second through `handle_webhook` into `conversations` active conversations.
async fn engine_rate<S>(store: Arc<S>, conversations: usize, run: &str) -> f64
where
    S: ConversationStore + MediaStore + 'static,
{
    let engine = engine(store.clone(), conversations);
    let customer = |i: usize| format!("8{run}{i:06}");
    for i in 0..conversations {
        let (h, b) =
            signed(webhook().message(&customer(i), &format!("m_{run}_open_{i}"), "hi", t0()));
        engine.handle_webhook(&h, &b, t0()).await.unwrap();
    }
    let alice = AgentId::from("alice");
    for s in store.list_for_agent(&alice).await.unwrap() {
        let _ = engine.accept(s.conversation.id(), &alice, t0()).await;
    }
    let now = t0() + Duration::from_secs(10);
    let bodies: Vec<_> = (0..MESSAGES)
        .map(|i| {
            signed(webhook().message(
                &customer(i % conversations),
                &format!("m_{run}_{i}"),
                "where is my parcel?",
                now,
            ))
        })
        .collect();
    let started = Instant::now();
    for (h, b) in &bodies {
        let report = engine.handle_webhook(h, b, now).await.unwrap();
        assert_eq!(report.handled, 1);
    }
    f64::from(u32::try_from(MESSAGES).unwrap()) / started.elapsed().as_secs_f64()
}

/// The size of what the engine writes per message: the conversation row's JSON.
fn row_size() -> usize {
    let (c, _) = messenger_channel::conversation::Conversation::start(
        "0123456789abcdef01234567".into(),
        messenger_channel::ids::PageId::from("104987654321098"),
        messenger_channel::ids::UserId::from("24012345678901234"),
        messenger_channel::conversation::Inbound::new(None, vec![]),
        t0(),
        &ConversationConfig::default(),
    );
    serde_json::to_string(&c).unwrap().len()
}

macro_rules! floor {
    ($name:ident, $db:ty, $create:literal) => {
        /// Plain single-row inserts of `row_size()` bytes per second, through the same driver.
        async fn $name(pool: &sqlx::Pool<$db>, run: &str) -> f64 {
            let table = format!("floor_{run}");
            sqlx::query(&format!($create, table))
                .execute(pool)
                .await
                .unwrap();
            let body = "x".repeat(row_size());
            let started = Instant::now();
            for i in 0..MESSAGES {
                sqlx::query(&format!("INSERT INTO {table} (id, body) VALUES ($1, $2)"))
                    .bind(i64::try_from(i).unwrap())
                    .bind(&body)
                    .execute(pool)
                    .await
                    .unwrap();
            }
            let rate =
                f64::from(u32::try_from(MESSAGES).unwrap()) / started.elapsed().as_secs_f64();
            sqlx::query(&format!("DROP TABLE {table}"))
                .execute(pool)
                .await
                .unwrap();
            rate
        }
    };
}

floor!(
    sqlite_floor,
    sqlx::Sqlite,
    "CREATE TABLE {} (id BIGINT PRIMARY KEY, body TEXT NOT NULL)"
);
#[cfg(feature = "postgres")]
floor!(
    postgres_floor,
    sqlx::Postgres,
    "CREATE TABLE {} (id BIGINT PRIMARY KEY, body TEXT NOT NULL)"
);

fn run_id() -> String {
    format!(
        "{}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_micros()
            % 1_000_000_000
    )
}

fn report(backend: &str, conversations: usize, rate: f64, floor: f64) {
    println!(
        "{backend:<10} {conversations:>6} conversations: {rate:>9.0} messages/s   floor {floor:>9.0} inserts/s   ratio {:.2}",
        rate / floor
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    let mut criterion = Criterion::default().configure_from_args().sample_size(10);
    criterion.bench_function("sqlite_single_row_insert_floor", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|i| {
                    runtime.block_on(async {
                        let store = messenger_channel::store::SqliteStore::open(
                            dir.path().join(format!("floor{i}.db")),
                        )
                        .await
                        .unwrap();
                        let started = Instant::now();
                        sqlite_floor(store.pool(), &run_id()).await;
                        started.elapsed()
                    })
                })
                .sum()
        });
    });
    criterion.final_summary();

    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!("\ninbound text messages through the engine, one core, {MESSAGES} messages per run");
    runtime.block_on(async {
        for conversations in [1usize, 1_000] {
            let path = dir.path().join(format!("engine{conversations}.db"));
            let store = Arc::new(
                messenger_channel::store::SqliteStore::open(&path)
                    .await
                    .unwrap(),
            );
            let rate = engine_rate(store.clone(), conversations, &run_id()).await;
            let floor = sqlite_floor(store.pool(), &run_id()).await;
            report("SQLite", conversations, rate, floor);
        }
        #[cfg(feature = "postgres")]
        match std::env::var("MESSENGER_CHANNEL_TEST_POSTGRES") {
            Ok(url) => {
                for conversations in [1usize, 1_000] {
                    let store = Arc::new(
                        messenger_channel::store::PostgresStore::connect(&url)
                            .await
                            .unwrap(),
                    );
                    let rate = engine_rate(store.clone(), conversations, &run_id()).await;
                    let floor = postgres_floor(store.pool(), &run_id()).await;
                    report("PostgreSQL", conversations, rate, floor);
                }
            }
            Err(_) => println!("PostgreSQL: skipped (set MESSENGER_CHANNEL_TEST_POSTGRES)"),
        }
    });
}
