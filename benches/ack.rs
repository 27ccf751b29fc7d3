//! Acknowledged webhooks through the axum route: events answered 200 per second on SQLite (a
//! file, WAL) and on PostgreSQL, with 1 and with 100 customer messages per body, and each
//! request's latency from send to 200 (p50, p99), next to the database's floor in the same run:
//! one transaction per body inserting the same number of rows of the same size into a plain
//! table, through the store's own pool (on SQLite: WAL, `synchronous = NORMAL`,
//! `BEGIN IMMEDIATE`), with the same number of bodies in flight.
//!
//! Run with `cargo bench --bench ack --all-features`, with `MESSENGER_CHANNEL_TEST_POSTGRES` set
//! for the PostgreSQL half (`bash scripts/postgres.sh` starts one; the bench works in a schema of
//! its own and drops it); without it, only SQLite is measured.
//!
//! A 200 means the body is committed to the store as it came (`Engine::record_webhook`); the
//! route then unpacks its events into the inbox and applies them in the background of the
//! same process, competing with the acknowledgements for the cores and the pool. The bench
//! reports both: events acknowledged per second (the 200s), and the time until every body is
//! unpacked and every event applied (polled through [`ConversationStore::webhooks`] and
//! [`ConversationStore::inbox_threads`]). Customers and texts come from
//! `../shared/perf-payloads/w2_texts.json` when present, else from a generator; every `mid` is
//! unique to its body, so every event is new and is one inbox row.
//!
//! After the table, a breakdown at 100 events per body on SQLite says where an
//! acknowledgement's time goes: the CPU work per body on one thread (verify and parse, dedup
//! keys, the inbox row's JSON), the engine on an in-memory store with and without HTTP, and
//! the SQLite inbox insert on its own.

#[path = "../tests/support/channel.rs"]
#[allow(dead_code, unreachable_pub)]
mod channel;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use channel::{secret, webhook};
use criterion::Criterion;
use messenger_channel::agents::{InMemoryRouter, Presence, RecordingNotifier};
use messenger_channel::axum::WebhookRoutes;
use messenger_channel::conversation::ConversationConfig;
use messenger_channel::engine::Engine;
use messenger_channel::ids::AgentId;
use messenger_channel::secret::VerifyToken;
use messenger_channel::store::{ConversationStore, MediaStore, NewInboxEvent, SqliteStore};
use messenger_channel::testing::FakeSend;
use messenger_channel::webhook::{EventKind, Webhook};

/// Bodies in flight at once (client requests, or floor transactions).
const IN_FLIGHT: usize = 16;
/// Paired rounds per shape (floor → crate → floor); the median is reported.
const ROUNDS: usize = 3;
/// (events per body, bodies per round).
const SHAPES: [(usize, usize); 2] = [(1, 2_000), (100, 200)];
/// The target at 100 events per body: this share of the floor.
const TARGET_RATIO: f64 = 0.5;
/// Today's figures at one message per body (`benches/store.rs`, engine applying synchronously).
const TODAY_SQLITE: f64 = 2_575.0;
const TODAY_POSTGRES: f64 = 1_794.0;
/// How long the background apply may stall before the bench runs the sweep itself.
const STALL: Duration = Duration::from_secs(30);

/// Texts for generated customers, when the payloads folder is absent.
const TEXTS: [&str; 6] = [
    "ok see you tomorrow at 10",
    "Bonjour, ma commande n'est pas arrivée",
    "你好，我想退货，请问怎么操作？",
    "Thanks! 🙏😀",
    "Where is my parcel? https://track.example.com/a/b",
    "Can I change the delivery address?",
];

/// Customers and their texts.
fn texts() -> (Vec<(String, String)>, &'static str) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/perf-payloads/w2_texts.json");
    if let Some(pairs) = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Vec<(String, String)>>(&b).ok())
        .filter(|p| !p.is_empty())
    {
        return (pairs, "shared/perf-payloads/w2_texts.json");
    }
    let pairs = (0..5_000_u64)
        .map(|i| {
            (
                format!("{}", 2_401_234_567_890_123 + i * 7_919),
                TEXTS[usize::try_from(i % 6).unwrap()].to_owned(),
            )
        })
        .collect();
    (pairs, "generated")
}

/// A signed body: its `X-Hub-Signature-256` value and bytes.
#[derive(Clone)]
struct Post {
    signature: String,
    body: Bytes,
}

/// `count` bodies of `events` customer messages each, every `mid` unique to `run`.
fn posts(texts: &[(String, String)], run: &str, events: usize, count: usize) -> Vec<Post> {
    // Each event its own millisecond, increasing, all in the past: as Meta stamps them (the
    // shared payloads' events are 1 to 4 s apart), so that dedup keys, which start with the
    // event's time, arrive roughly in order.
    let total = u64::try_from(events * count).unwrap();
    let start = SystemTime::now() - Duration::from_millis(total);
    (0..count)
        .map(|b| {
            let body = (0..events).fold(webhook(), |body, j| {
                let n = b * events + j;
                let (customer, text) = &texts[n % texts.len()];
                let at = start + Duration::from_millis(u64::try_from(n).unwrap());
                body.message(customer, &format!("m_{run}_{n}"), text, at)
            });
            let signed = body.sign(&secret());
            Post {
                signature: signed.signature().to_owned(),
                body: Bytes::from(signed.body().to_vec()),
            }
        })
        .collect()
}

fn engine<S>(store: Arc<S>) -> Arc<Engine>
where
    S: ConversationStore + MediaStore + 'static,
{
    let router = Arc::new(InMemoryRouter::new());
    let alice = AgentId::from("alice");
    router.set_presence(&alice, Presence::Available);
    router.set_capacity(&alice, 1_000_000);
    Arc::new(
        Engine::builder(Webhook::new(&secret()), Arc::new(FakeSend::new()))
            .store(store.clone())
            .media(store)
            .router(router)
            .notifier(Arc::new(RecordingNotifier::new()))
            .config(ConversationConfig::default())
            .build(),
    )
}

/// Serves the webhook routes over `engine` on 127.0.0.1, port 0; returns the URL.
async fn serve(engine: Arc<Engine>) -> String {
    let app = WebhookRoutes::new(engine, VerifyToken::new("ack-bench").unwrap()).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/")
}

/// Wall time of a run and every operation's latency, sorted.
struct Timing {
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Timing {
    fn percentile(&self, p: usize) -> Duration {
        let n = self.latencies.len();
        self.latencies[((n * p).div_ceil(100)).clamp(1, n) - 1]
    }

    fn per_second(&self, events: usize) -> f64 {
        count(events * self.latencies.len()) / self.wall.as_secs_f64()
    }
}

fn count(n: usize) -> f64 {
    f64::from(u32::try_from(n).unwrap())
}

/// Runs `op(0..n)` with [`IN_FLIGHT`] at a time.
async fn drive<F, Fut>(n: usize, op: F) -> Timing
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (op, next) = (op.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return latencies;
                    }
                    let sent = Instant::now();
                    op(i).await;
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(n);
    for w in workers {
        latencies.extend(w.await.unwrap());
    }
    let wall = started.elapsed();
    latencies.sort_unstable();
    Timing { wall, latencies }
}

/// Posts every body to `url`; every answer must be 200.
async fn post_all(client: &reqwest::Client, url: &str, posts: Vec<Post>) -> Timing {
    let posts = Arc::new(posts);
    let (client, url) = (client.clone(), url.to_owned());
    drive(posts.len(), move |i| {
        let (client, url, post) = (client.clone(), url.clone(), posts[i].clone());
        async move {
            let answer = client
                .post(url)
                .header("x-hub-signature-256", post.signature)
                .header("content-type", "application/json")
                .body(post.body)
                .send()
                .await
                .expect("the route answers");
            let status = answer.status();
            let text = answer.text().await.unwrap_or_default();
            assert_eq!(status, 200, "answered {status}: {text}");
        }
    })
    .await
}

/// Waits until no recorded body waits to be unpacked and no event to be applied; returns whether the sweep had to run (an
/// apply failed in the background and left its thread pending).
async fn drained(engine: &Engine) -> bool {
    let far = SystemTime::now() + Duration::from_secs(3_600);
    let waiting = Instant::now();
    let mut swept = false;
    // Bodies recorded and not unpacked yet, or events unpacked and not applied yet.
    while !engine.store().webhooks(0, 1).await.unwrap().is_empty()
        || !engine
            .store()
            .inbox_threads(far, 1)
            .await
            .unwrap()
            .is_empty()
    {
        if waiting.elapsed() > STALL {
            swept = true;
            engine.apply_pending(far).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    swept
}

/// One round through the route: acknowledgement timing, then time until all applied.
struct Round {
    ack: Timing,
    applied: Duration,
    swept: bool,
}

async fn through_route(
    engine: &Engine,
    client: &reqwest::Client,
    url: &str,
    posts: Vec<Post>,
) -> Round {
    let started = Instant::now();
    let ack = post_all(client, url, posts).await;
    let swept = drained(engine).await;
    Round {
        ack,
        applied: started.elapsed(),
        swept,
    }
}

macro_rules! floor {
    ($name:ident, $db:ty, $begin:literal) => {
        /// One transaction per body inserting `events` rows of `row` bytes into a plain table,
        /// [`IN_FLIGHT`] transactions at a time, through `pool`.
        async fn $name(pool: &sqlx::Pool<$db>, run: &str, events: usize, bodies: usize, row: usize) -> Timing {
            let table = format!("ack_floor_{run}");
            sqlx::query(&format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, body TEXT NOT NULL)"))
                .execute(pool)
                .await
                .unwrap();
            let body: Arc<str> = "x".repeat(row).into();
            let (shared, sql) = (pool.clone(), format!("INSERT INTO {table} (id, body) "));
            let timing = drive(bodies, move |i| {
                let (pool, sql, body) = (shared.clone(), sql.clone(), body.clone());
                async move {
                    let mut tx = pool.begin_with($begin).await.unwrap();
                    let mut insert = sqlx::QueryBuilder::<$db>::new(sql);
                    insert.push_values(0..events, |mut values, j| {
                        values
                            .push_bind(i64::try_from(i * events + j).unwrap())
                            .push_bind(&*body);
                    });
                    insert.build().execute(&mut *tx).await.unwrap();
                    tx.commit().await.unwrap();
                }
            })
            .await;
            sqlx::query(&format!("DROP TABLE {table}"))
                .execute(pool)
                .await
                .unwrap();
            timing
        }

        impl Backend for sqlx::Pool<$db> {
            async fn floor(&self, run: &str, events: usize, bodies: usize, row: usize) -> Timing {
                $name(self, run, events, bodies, row).await
            }

            async fn inbox_row_bytes(&self) -> usize {
                let (bytes,): (i64,) = sqlx::query_as(
                    "SELECT CAST(AVG(LENGTH(key) + LENGTH(thread) + LENGTH(body)) AS BIGINT) FROM inbox",
                )
                .fetch_one(self)
                .await
                .unwrap();
                usize::try_from(bytes).unwrap()
            }
        }
    };
}

/// What a backend's pool does for the bench.
trait Backend {
    async fn floor(&self, run: &str, events: usize, bodies: usize, row: usize) -> Timing;
    /// The mean size of an inbox row as the crate writes it (key, thread and event JSON).
    async fn inbox_row_bytes(&self) -> usize;
}

floor!(sqlite_floor, sqlx::Sqlite, "BEGIN IMMEDIATE");
#[cfg(feature = "postgres")]
floor!(postgres_floor, sqlx::Postgres, "BEGIN");

fn run_id() -> String {
    format!(
        "{}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_micros()
            % 1_000_000_000_000
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

/// The median round of one shape on one backend.
struct Figures {
    backend: &'static str,
    events: usize,
    acked: f64,
    p50: Duration,
    p99: Duration,
    applied: f64,
    floor: f64,
    floor_p50: Duration,
    floor_p99: Duration,
    swept: bool,
}

/// Paired rounds (floor → crate → floor) of one shape through the route over `store`.
async fn measure<S>(
    backend: &'static str,
    store: Arc<S>,
    pool: &impl Backend,
    texts: &[(String, String)],
    (events, bodies): (usize, usize),
) -> Figures
where
    S: ConversationStore + MediaStore + 'static,
{
    let engine = engine(store);
    let url = serve(engine.clone()).await;
    let client = reqwest::Client::new();
    // Warm up connections and statements; learn the size of an inbox row.
    through_route(
        &engine,
        &client,
        &url,
        posts(texts, &run_id(), events, IN_FLIGHT),
    )
    .await;
    let row = pool.inbox_row_bytes().await;
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let before = pool.floor(&run_id(), events, bodies, row).await;
        let round = through_route(
            &engine,
            &client,
            &url,
            posts(texts, &run_id(), events, bodies),
        )
        .await;
        let after = pool.floor(&run_id(), events, bodies, row).await;
        rounds.push((round, before, after));
    }
    let ratio = |r: &(Round, Timing, Timing)| {
        r.0.ack.per_second(events) / f64::midpoint(r.1.per_second(events), r.2.per_second(events))
    };
    let ratios: Vec<f64> = rounds.iter().map(ratio).collect();
    let mid = median(ratios.clone());
    let (round, before, after) = rounds
        .into_iter()
        .find(|r| ratio(r).total_cmp(&mid).is_eq())
        .unwrap();
    Figures {
        backend,
        events,
        acked: round.ack.per_second(events),
        p50: round.ack.percentile(50),
        p99: round.ack.percentile(99),
        applied: count(events * bodies) / round.applied.as_secs_f64(),
        floor: f64::midpoint(before.per_second(events), after.per_second(events)),
        floor_p50: (before.percentile(50) + after.percentile(50)) / 2,
        floor_p99: (before.percentile(99) + after.percentile(99)) / 2,
        swept: round.swept,
    }
}

fn report(f: &Figures) {
    println!(
        "{:<10} {:>3} events/body: acked {:>8.0} events/s (p50 {:>6.2} ms, p99 {:>6.2} ms)   \
         applied {:>7.0} events/s{}   floor {:>8.0} events/s (p50 {:>6.2} ms, p99 {:>6.2} ms)   ratio {:.2}",
        f.backend,
        f.events,
        f.acked,
        millis(f.p50),
        millis(f.p99),
        f.applied,
        if f.swept { " (needed the sweep)" } else { "" },
        f.floor,
        millis(f.floor_p50),
        millis(f.floor_p99),
        f.acked / f.floor,
    );
}

fn verdict(figures: &[Figures]) {
    for f in figures {
        if f.events == 1 {
            let today = if f.backend == "SQLite" {
                TODAY_SQLITE
            } else {
                TODAY_POSTGRES
            };
            println!(
                "{:<10} 1 event/body: {:.0} events/s acknowledged vs {today:.0} messages/s today: {}",
                f.backend,
                f.acked,
                if f.acked >= today { "met" } else { "NOT MET" }
            );
        } else {
            let ratio = f.acked / f.floor;
            println!(
                "{:<10} {} events/body: ratio {ratio:.2} vs target {TARGET_RATIO}: {}",
                f.backend,
                f.events,
                if ratio >= TARGET_RATIO {
                    "met"
                } else {
                    "NOT MET"
                }
            );
        }
    }
}

/// The inbox rows the engine writes for a body, built the same way (for the store-only line).
fn inbox_rows(webhook: &Webhook, post: &Post) -> Vec<NewInboxEvent> {
    let batch = webhook
        .verify_and_parse_value(&post.signature, &post.body)
        .unwrap();
    batch.events().map(|event| row(event)).collect()
}

/// The inbox row's JSON, shaped as the engine's.
#[derive(serde::Serialize)]
struct QueuedLike<'a> {
    page: &'a str,
    customer: &'a str,
    sent_ms: u64,
    standby: bool,
    kind: &'static str,
    mid: &'a str,
    text: Option<std::borrow::Cow<'a, str>>,
    files: [(); 0],
}

fn row(event: &messenger_channel::webhook::Event<'_>) -> NewInboxEvent {
    let EventKind::Message(m) = &event.kind else {
        unreachable!("customer messages only")
    };
    let (page, customer) = (
        event.page_id.as_str(),
        event.sender.as_ref().unwrap().as_str(),
    );
    let body = serde_json::to_string(&QueuedLike {
        page,
        customer,
        sent_ms: event.timestamp,
        standby: event.standby,
        kind: "message",
        mid: m.mid.as_str(),
        text: m.text.map(|t| t.decode()),
        files: [],
    })
    .unwrap();
    NewInboxEvent {
        // As the engine names them: the event's time first.
        key: format!("{:013}|{}", event.timestamp, event.dedup_key()),
        thread: format!("{}:{page}:{customer}", page.len()),
        body,
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Opens a store on a fresh SQLite file with the crate's settings (WAL, `synchronous =
/// NORMAL`, 10 s busy timeout) and `connections` pooled connections (the crate opens 4).
async fn sqlite(path: PathBuf, connections: u32) -> Arc<SqliteStore> {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(connections)
        .connect_with(options)
        .await
        .unwrap();
    Arc::new(SqliteStore::from_pool(pool).await.unwrap())
}

/// The engine's inbox insert written by hand into the crate's `inbox` table: one transaction
/// per body, with or without `ON CONFLICT (key, thread) DO NOTHING RETURNING key`.
async fn raw_inbox(
    pool: &sqlx::SqlitePool,
    rows: Vec<Vec<NewInboxEvent>>,
    returning: bool,
) -> Timing {
    let (pool, rows) = (pool.clone(), Arc::new(rows));
    drive(rows.len(), move |i| {
        let (pool, rows) = (pool.clone(), rows.clone());
        async move {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
            let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO inbox (key, thread, body, received_ms, applied) ",
            );
            insert.push_values(&rows[i], |mut values, e| {
                values
                    .push_bind(e.key.as_str())
                    .push_bind(e.thread.as_str())
                    .push_bind(e.body.as_str())
                    .push_bind(0_i64)
                    .push_bind(0_i64);
            });
            if returning {
                insert.push(" ON CONFLICT (key, thread) DO NOTHING RETURNING key");
                let keys: Vec<(String,)> =
                    insert.build_query_as().fetch_all(&mut *tx).await.unwrap();
                assert_eq!(keys.len(), rows[i].len());
            } else {
                insert.build().execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
        }
    })
    .await
}

async fn store_receive(store: &Arc<SqliteStore>, rows: Vec<Vec<NewInboxEvent>>) -> Timing {
    let (store, rows) = (store.clone(), Arc::new(rows));
    drive(rows.len(), move |i| {
        let (store, rows) = (store.clone(), rows.clone());
        async move {
            let fresh = store
                .receive(&rows[i], SystemTime::now(), Duration::from_secs(86_400))
                .await
                .unwrap();
            assert!(fresh.iter().all(|f| *f));
        }
    })
    .await
}

async fn engine_receive(engine: &Arc<Engine>, posts: Vec<Post>, events: usize) -> Timing {
    let (engine, posts) = (engine.clone(), Arc::new(posts));
    drive(posts.len(), move |i| {
        let (engine, post) = (engine.clone(), posts[i].clone());
        async move {
            let mut headers = http::HeaderMap::new();
            headers.insert("x-hub-signature-256", post.signature.parse().unwrap());
            let receipt = engine
                .receive(&headers, &post.body, SystemTime::now())
                .await
                .unwrap();
            assert_eq!(receipt.received, events);
        }
    })
    .await
}

/// A bare axum route on 127.0.0.1 that reads the body and answers 200: HTTP alone.
async fn serve_bare() -> String {
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(|body: Bytes| async move {
            std::hint::black_box(body.len());
            "EVENT_RECEIVED"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/")
}

/// The shortest of three passes of `work` over `posts`, per body, on this thread.
fn cpu_per_body(posts: &[Post], mut work: impl FnMut(&Post)) -> Duration {
    (0..3)
        .map(|_| {
            let started = Instant::now();
            for p in posts {
                work(p);
            }
            started.elapsed() / u32::try_from(posts.len()).unwrap()
        })
        .min()
        .unwrap()
}

/// WAL bytes written per body, with automatic checkpoints off, one body at a time (after as
/// many bodies again, so that the indexes are past their first pages): the floor's insert,
/// the crate's inbox insert, and the same with schema 8's index of pending events by thread.
async fn wal_per_body(
    dir: &std::path::Path,
    webhook: &Webhook,
    texts: &[(String, String)],
    events: usize,
) -> [usize; 3] {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    const BODIES: usize = 40;
    let mut out = [0; 3];
    for (k, slot) in out.iter_mut().enumerate() {
        let path = dir.join(format!("wal{events}_{k}.db"));
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let store = SqliteStore::from_pool(pool).await.unwrap();
        sqlx::query("CREATE TABLE wal_floor (id BIGINT PRIMARY KEY, body TEXT NOT NULL)")
            .execute(store.pool())
            .await
            .unwrap();
        if k == 2 {
            sqlx::query("CREATE INDEX inbox_pending ON inbox (thread, seq) WHERE applied = 0")
                .execute(store.pool())
                .await
                .unwrap();
        }
        let wal = path.with_extension("db-wal");
        let size = || std::fs::metadata(&wal).map_or(0, |m| usize::try_from(m.len()).unwrap());
        let mut before = 0;
        for (i, post) in posts(texts, &run_id(), events, BODIES * 2)
            .iter()
            .enumerate()
        {
            if i == BODIES {
                before = size();
            }
            let rows = inbox_rows(webhook, post);
            if k > 0 {
                store
                    .receive(&rows, SystemTime::now(), Duration::from_secs(86_400))
                    .await
                    .unwrap();
                continue;
            }
            let body = "x".repeat(
                rows.iter()
                    .map(|r| r.key.len() + r.thread.len() + r.body.len())
                    .sum::<usize>()
                    / events,
            );
            let mut tx = store.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
            let mut insert =
                sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO wal_floor (id, body) ");
            insert.push_values(0..events, |mut values, j| {
                values
                    .push_bind(i64::try_from(i * events + j).unwrap())
                    .push_bind(body.as_str());
            });
            insert.build().execute(&mut *tx).await.unwrap();
            tx.commit().await.unwrap();
        }
        *slot = (size() - before) / BODIES;
    }
    out
}

/// The CPU work of an acknowledgement, per body, on one thread.
fn cpu(webhook: &Webhook, texts: &[(String, String)]) {
    let (events, bodies) = SHAPES[1];
    let sample = posts(texts, &run_id(), events, bodies);
    let parse = cpu_per_body(&sample, |p| {
        let batch = webhook
            .verify_and_parse_value(&p.signature, &p.body)
            .unwrap();
        std::hint::black_box(batch.events().count());
    });
    let keys = cpu_per_body(&sample, |p| {
        let batch = webhook
            .verify_and_parse_value(&p.signature, &p.body)
            .unwrap();
        std::hint::black_box(batch.events().map(|e| e.dedup_key().len()).sum::<usize>());
    });
    let rows = cpu_per_body(&sample, |p| {
        std::hint::black_box(inbox_rows(webhook, p));
    });
    println!(
        "  CPU on one thread, per {events}-event body: verify + parse {:.0} µs; \
         with the dedup keys {:.0} µs; with the inbox rows (key, thread, event JSON) {:.0} µs",
        micros(parse),
        micros(keys),
        micros(rows)
    );
}

/// Where an acknowledgement's time goes on SQLite: the same bodies, step by step, each step
/// warmed up first, [`IN_FLIGHT`] at a time.
async fn breakdown(dir: &std::path::Path, texts: &[(String, String)], route: &[Figures]) {
    let webhook = Webhook::new(&secret());
    println!("\nwhere the time goes (SQLite, {IN_FLIGHT} in flight)");
    cpu(&webhook, texts);
    let client = reqwest::Client::new();
    let bare = serve_bare().await;
    for (events, bodies) in SHAPES {
        let four = sqlite(dir.join(format!("steps{events}.db")), 4).await;
        let one = sqlite(dir.join(format!("steps{events}_1.db")), 1).await;
        let engine = engine(four.clone());
        let row_bytes = {
            let rows = inbox_rows(&webhook, &posts(texts, "size", events, 1)[0]);
            rows.iter()
                .map(|r| r.key.len() + r.thread.len() + r.body.len())
                .sum::<usize>()
                / events
        };
        let fresh_rows = |n: usize| -> Vec<Vec<NewInboxEvent>> {
            posts(texts, &run_id(), events, n)
                .iter()
                .map(|p| inbox_rows(&webhook, p))
                .collect()
        };
        let mut steps = Vec::new();
        for n in [IN_FLIGHT, bodies] {
            steps = vec![
                (
                    "floor: plain table, one multi-row INSERT per body",
                    four.pool().floor(&run_id(), events, n, row_bytes).await,
                ),
                (
                    "the crate's inbox table, plain multi-row INSERT",
                    raw_inbox(four.pool(), fresh_rows(n), false).await,
                ),
                (
                    "  + ON CONFLICT (key, thread) DO NOTHING RETURNING key",
                    raw_inbox(four.pool(), fresh_rows(n), true).await,
                ),
                (
                    "ConversationStore::receive (rows built beforehand)",
                    store_receive(&four, fresh_rows(n)).await,
                ),
                (
                    "  the same on a 1-connection pool",
                    store_receive(&one, fresh_rows(n)).await,
                ),
                (
                    "Engine::receive (verify, parse, rows, store), nothing applied",
                    engine_receive(&engine, posts(texts, &run_id(), events, n), events).await,
                ),
                (
                    "HTTP alone: a bare axum route answering 200",
                    post_all(&client, &bare, posts(texts, &run_id(), events, n)).await,
                ),
            ];
        }
        println!("  {events} event(s) per body, {bodies} bodies:");
        for (what, t) in &steps {
            println!(
                "    {what:<64} {:>8.0} events/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
                t.per_second(events),
                millis(t.percentile(50)),
                millis(t.percentile(99))
            );
        }
        let [floor_wal, inbox_wal, unindexed_wal] =
            wal_per_body(dir, &webhook, texts, events).await;
        println!(
            "    WAL written per body (no checkpoints, one at a time): floor {:.1} KiB, ConversationStore::receive {:.1} KiB, \
             the same with schema 8's index inbox_pending (thread, seq) {:.1} KiB",
            count(floor_wal) / 1024.0,
            count(inbox_wal) / 1024.0,
            count(unindexed_wal) / 1024.0
        );
        if let Some(f) = route
            .iter()
            .find(|f| f.backend == "SQLite" && f.events == events)
        {
            println!(
                "    {:<64} {:>8.0} events/s  p50 {:>6.2} ms  p99 {:>6.2} ms",
                "the route (all of the above, apply in the background)",
                f.acked,
                millis(f.p50),
                millis(f.p99)
            );
        }
    }
}

#[cfg(feature = "postgres")]
async fn postgres(url: &str, texts: &[(String, String)]) -> Vec<Figures> {
    use messenger_channel::store::PostgresStore;
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    let schema = format!("ack_bench_{}", run_id());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    let mut figures = Vec::new();
    for shape in SHAPES {
        let store = Arc::new(PostgresStore::connect(&scoped).await.unwrap());
        let pool = store.pool().clone();
        figures.push(measure("PostgreSQL", store, &pool, texts, shape).await);
        report(figures.last().unwrap());
    }
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
    figures
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (texts, source) = texts();

    // Criterion: one 100-event body at a time through the route on SQLite, send to 200.
    let (url, engine) = runtime.block_on(async {
        let store = Arc::new(
            SqliteStore::open(dir.path().join("criterion.db"))
                .await
                .unwrap(),
        );
        let engine = engine(store);
        (serve(engine.clone()).await, engine)
    });
    let client = reqwest::Client::new();
    let mut criterion = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    criterion.bench_function("ack_sqlite_100_events_per_body", |b| {
        b.iter_custom(|iters| {
            let bodies = posts(&texts, &run_id(), 100, usize::try_from(iters).unwrap());
            runtime.block_on(async {
                let started = Instant::now();
                for post in bodies {
                    let answer = client
                        .post(&url)
                        .header("x-hub-signature-256", post.signature)
                        .body(post.body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(answer.status(), 200);
                }
                started.elapsed()
            })
        });
    });
    criterion.final_summary();
    runtime.block_on(drained(&engine));

    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    println!(
        "\nacknowledged webhooks through the axum route, {IN_FLIGHT} bodies in flight, median of {ROUNDS} \
         paired rounds (floor → route → floor); customers and texts: {source}"
    );
    let figures = runtime.block_on(async {
        let mut figures = Vec::new();
        for shape in SHAPES {
            let store = Arc::new(
                SqliteStore::open(dir.path().join(format!("ack{}.db", shape.0)))
                    .await
                    .unwrap(),
            );
            let pool = store.pool().clone();
            figures.push(measure("SQLite", store, &pool, &texts, shape).await);
            report(figures.last().unwrap());
        }
        #[cfg(feature = "postgres")]
        match std::env::var("MESSENGER_CHANNEL_TEST_POSTGRES") {
            Ok(url) => figures.extend(postgres(&url, &texts).await),
            Err(_) => println!("PostgreSQL: skipped (set MESSENGER_CHANNEL_TEST_POSTGRES)"),
        }
        #[cfg(not(feature = "postgres"))]
        println!("PostgreSQL: skipped (build with --features postgres)");
        figures
    });
    println!();
    verdict(&figures);
    runtime.block_on(breakdown(dir.path(), &texts, &figures));
}
