//! Process crashes: a child process serving the webhook (axum routes, one engine on a durable
//! store) is killed with SIGKILL at random moments while a driver, acting as Meta, posts signed
//! bodies a few at a time and delivers again every body that was not acknowledged (and, now and
//! then, one that was). After the restarts, every acknowledged message is in its customer's
//! transcript exactly once, and every body was eventually acknowledged. Run on SQLite and on
//! PostgreSQL, with [`DEFAULT_KILLS`] kills each (never fewer than [`MIN_KILLS`]).
//!
//! The child is this test binary itself, run again with [`CHILD_ENV`] set: then the test
//! [`crash_child`] serves instead of returning. The kills are drawn from a seeded generator;
//! the seed is printed, and `MC_CRASH_SEED` replays its choices (the timing of a real process
//! and network is not replayed, so a replay explores the same neighbourhood, not the same run).
//! `MC_CRASH_KILLS` raises the number of kills for a longer local run.
#![cfg(all(feature = "axum", any(feature = "sqlite", feature = "postgres")))]

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use messenger_channel::agents::{InMemoryRouter, RecordingNotifier};
use messenger_channel::axum::WebhookRoutes;
use messenger_channel::conversation::Author;
use messenger_channel::engine::Engine;
use messenger_channel::ids::{PageId, UserId};
use messenger_channel::secret::VerifyToken;
use messenger_channel::store::{ConversationStore, MediaStore};
use messenger_channel::testing::FakeSend;
use messenger_channel::webhook::Webhook;
use support::channel::{secret, signed, webhook};
#[cfg(feature = "postgres")]
use support::postgres::{fresh_postgres_database, postgres_url};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

/// Set in the child's environment: `sqlite:<path>` or `postgres:<url>`, the store to serve on.
const CHILD_ENV: &str = "MC_CRASH_CHILD";
/// The line the child prints once it listens, followed by its port.
const PORT_LINE: &str = "MC_CRASH_PORT=";
/// The fewest kills per store and run (what the issue asks of CI).
const MIN_KILLS: usize = 50;
/// Kills per store and run unless `MC_CRASH_KILLS` says more.
const DEFAULT_KILLS: usize = 100;
/// Requests in flight at once.
const IN_FLIGHT: usize = 6;
/// Customers the messages come from.
const CUSTOMERS: usize = 5;
/// How often the child runs [`Engine::tick`] (which applies what a crash left in the inbox).
const TICK_EVERY: Duration = Duration::from_millis(200);

/// Not a test on its own: the child process of the crash tests. Without [`CHILD_ENV`] it
/// returns at once; with it, it serves the webhook on that store until it is killed.
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(serve_child(&spec));
}

/// The child: opens the store, serves the webhook on 127.0.0.1 port 0, prints the port, and
/// ticks until it is killed.
async fn serve_child(spec: &str) {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        #[cfg(feature = "sqlite")]
        {
            let store = messenger_channel::store::SqliteStore::open(path)
                .await
                .unwrap();
            serve_on(Arc::new(store)).await;
        }
        #[cfg(not(feature = "sqlite"))]
        panic!("this build has no SQLite store ({path})");
    } else if let Some(url) = spec.strip_prefix("postgres:") {
        #[cfg(feature = "postgres")]
        {
            let store = messenger_channel::store::PostgresStore::connect(url)
                .await
                .unwrap();
            serve_on(Arc::new(store)).await;
        }
        #[cfg(not(feature = "postgres"))]
        panic!("this build has no PostgreSQL store ({url})");
    } else {
        panic!("{CHILD_ENV} must be sqlite:<path> or postgres:<url>, not {spec:?}");
    }
}

/// Serves one engine on `store` as a host would: the axum routes (200 once recorded, applied
/// in the background), recovery at start, and a tick every [`TICK_EVERY`]. Never returns.
async fn serve_on<S>(store: Arc<S>)
where
    S: ConversationStore + MediaStore + 'static,
{
    // No agent is available: conversations stay queued, so each customer keeps one open
    // conversation whose transcript holds all their messages.
    let engine = Arc::new(
        Engine::builder(Webhook::new(&secret()), Arc::new(FakeSend::new()))
            .store(store.clone())
            .media(store)
            .router(Arc::new(InMemoryRouter::new()))
            .notifier(Arc::new(RecordingNotifier::new()))
            .instance("crash-child")
            .delivery(messenger_channel::engine::DeliveryConfig {
                poll: TICK_EVERY,
                ..messenger_channel::engine::DeliveryConfig::default()
            })
            .build(),
    );
    let app = WebhookRoutes::new(engine.clone(), VerifyToken::new("x").unwrap()).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    println!("{PORT_LINE}{port}");
    let _worker = engine.start();
    std::future::pending::<()>().await;
}

/// A small deterministic generator (xorshift64*), so that a failing run's choices can be
/// replayed from its printed seed.
struct Rng(u64);

impl Rng {
    /// From `MC_CRASH_SEED` when set, else from the clock; the seed is printed.
    fn seeded(label: &str) -> Self {
        let seed = std::env::var("MC_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let nanos = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos();
                // Only the low bits vary between runs; that is all the entropy needed.
                #[allow(clippy::cast_possible_truncation)]
                let low = nanos as u64;
                low ^ u64::from(std::process::id()).rotate_left(32)
            });
        eprintln!("crash test ({label}): seed {seed} (replay with MC_CRASH_SEED={seed})");
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }

    /// True with probability `1 / n`.
    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

/// One message of a body.
struct Sent {
    customer: String,
    mid: String,
    /// The event's dedup key (its key in the inbox).
    key: String,
}

/// One webhook body, as Meta would deliver it again and again until it is acknowledged.
struct Body {
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
    messages: Vec<Sent>,
    acked: bool,
}

/// What the driver has sent and learnt.
#[derive(Default)]
struct Ledger {
    bodies: Vec<Body>,
    in_flight: HashSet<usize>,
    /// Answers by status, and requests without an answer (refused, reset, timed out).
    statuses: BTreeMap<u16, usize>,
    errors: usize,
    redeliveries_of_acked: usize,
    /// Bodies acknowledged, and bodies that got no answer, since the last start.
    acked_since_start: Vec<usize>,
    unanswered_since_start: Vec<usize>,
}

impl Ledger {
    /// A new body of one to three messages from random customers, with fresh mids.
    fn new_body(&mut self, customers: &[String], rng: &mut Rng) -> usize {
        let n = self.bodies.len();
        let events = 1 + rng.below(3);
        // Sent now: a conversation whose last message is older than a month closes on a tick.
        let at = SystemTime::now();
        let messages: Vec<(String, String)> = (0..events)
            .map(|i| {
                (
                    customers[rng.below(customers.len())].clone(),
                    format!("m_crash_{n}_{i}"),
                )
            })
            .collect();
        let body = messages.iter().fold(webhook(), |body, (c, mid)| {
            body.message(c, mid, &format!("hello {mid}"), at)
        });
        let (headers, bytes) = signed(body);
        let batch = Webhook::new(&secret())
            .verify_and_parse(&headers, &bytes)
            .unwrap();
        let messages = messages
            .into_iter()
            .zip(batch.items())
            .map(|((customer, mid), event)| Sent {
                customer,
                mid,
                key: event.as_ref().unwrap().dedup_key(),
            })
            .collect();
        let mut reqwest_headers = reqwest::header::HeaderMap::new();
        for (name, value) in &headers {
            reqwest_headers.insert(
                reqwest::header::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
                reqwest::header::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
            );
        }
        self.bodies.push(Body {
            headers: reqwest_headers,
            bytes,
            messages,
            acked: false,
        });
        n
    }

    /// The next body to post: now and then one already acknowledged (a redelivery), else one
    /// not yet acknowledged and not in flight, else a new one. `None` when `fresh` is false
    /// and nothing is left to deliver.
    fn pick(&mut self, customers: &[String], rng: &mut Rng, fresh: bool) -> Option<usize> {
        if fresh && rng.one_in(8) {
            let acked: Vec<usize> = (0..self.bodies.len())
                .filter(|&i| self.bodies[i].acked)
                .collect();
            if !acked.is_empty() {
                self.redeliveries_of_acked += 1;
                return Some(acked[rng.below(acked.len())]);
            }
        }
        let waiting: Vec<usize> = (0..self.bodies.len())
            .filter(|&i| !self.bodies[i].acked && !self.in_flight.contains(&i))
            .collect();
        if !waiting.is_empty() {
            return Some(waiting[rng.below(waiting.len())]);
        }
        fresh.then(|| self.new_body(customers, rng))
    }

    /// Records an answer; returns whether it was an acknowledgement.
    fn record(&mut self, index: usize, answer: Option<u16>) -> bool {
        self.in_flight.remove(&index);
        let Some(status) = answer else {
            self.errors += 1;
            self.unanswered_since_start.push(index);
            return false;
        };
        *self.statuses.entry(status).or_default() += 1;
        assert!(
            status == 200 || status >= 500,
            "body {index} refused with {status}: it would never be delivered again"
        );
        if status == 200 {
            self.bodies[index].acked = true;
            self.acked_since_start.push(index);
        }
        status == 200
    }

    fn all_acked(&self) -> bool {
        self.bodies.iter().all(|b| b.acked)
    }

    /// The events of these bodies, by key.
    fn keys<'a>(&'a self, bodies: &'a [usize]) -> impl Iterator<Item = &'a str> + 'a {
        bodies
            .iter()
            .flat_map(|&i| self.bodies[i].messages.iter())
            .map(|m| m.key.as_str())
    }
}

/// What the store holds of the events sent so far: the keys of events pending in the inbox,
/// and the keys of those applied (their mids in transcripts).
async fn recorded<S: ConversationStore>(
    store: &S,
    customers: &[String],
    ledger: &Ledger,
) -> (HashSet<String>, HashSet<String>) {
    let mut pending = HashSet::new();
    for thread in store
        .inbox_threads(SystemTime::now() + Duration::from_secs(3600), 10_000)
        .await
        .unwrap()
    {
        let events = store.inbox(&thread, 1_000_000).await.unwrap();
        pending.extend(events.into_iter().map(|e| e.key));
    }
    let key_of: HashMap<&str, &str> = ledger
        .bodies
        .iter()
        .flat_map(|b| b.messages.iter())
        .map(|m| (m.mid.as_str(), m.key.as_str()))
        .collect();
    let applied = customer_mids(store, customers)
        .await
        .values()
        .flatten()
        .map(|mid| key_of[mid.as_str()].to_owned())
        .collect();
    (pending, applied)
}

/// Posts body `index` to the child at `url`.
fn post(
    tasks: &mut JoinSet<(usize, Option<u16>)>,
    http: &reqwest::Client,
    url: &str,
    ledger: &mut Ledger,
    index: usize,
) {
    ledger.in_flight.insert(index);
    let body = &ledger.bodies[index];
    let request = http
        .post(url)
        .headers(body.headers.clone())
        .body(body.bytes.clone());
    tasks.spawn(async move {
        // No answer (refused, reset, timed out) is `None`.
        let outcome = request.send().await.ok().map(|r| r.status().as_u16());
        (index, outcome)
    });
}

/// A running child process and the URL of its webhook.
struct Server {
    child: Child,
    url: String,
}

/// Starts a child serving on `spec`. With `wait_for_port` false, returns as soon as it is
/// spawned (to kill it while it starts).
async fn start(spec: &str, wait_for_port: bool) -> Server {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, spec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = if wait_for_port {
        let read = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                // libtest may have printed "test crash_child ... " on the same line.
                if let Some((_, port)) = line.split_once(PORT_LINE) {
                    return port.trim().parse::<u16>().unwrap();
                }
            }
            panic!("the crash child exited before listening");
        };
        Some(
            tokio::time::timeout(Duration::from_secs(60), read)
                .await
                .expect("the crash child did not listen within 60 s"),
        )
    } else {
        None
    };
    // Whatever else it prints is read and dropped, so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Server {
        child,
        url: port.map_or_else(String::new, |p| format!("http://127.0.0.1:{p}/")),
    }
}

/// Kills the child with SIGKILL and reaps it.
async fn kill(server: &mut Server) {
    server.child.kill().await.unwrap();
}

/// Waits about `micros` microseconds without blocking a worker (sub-millisecond precision,
/// which the timer does not have).
async fn pause_micros(micros: u64) {
    let until = Instant::now() + Duration::from_micros(micros);
    while Instant::now() < until {
        tokio::task::yield_now().await;
    }
}

/// A client with no pooled connections from an earlier child.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Counts of where the kills landed, for the report: the test is only as good as its kills.
#[derive(Debug, Default)]
struct Kills {
    all: usize,
    /// While the child started (opening or migrating the store, binding).
    starting: usize,
    /// After some event was recorded and before its body was answered.
    after_commit: usize,
    /// After some body was acknowledged and before its events were applied.
    before_apply: usize,
    /// Requests in flight at the kills.
    cut: usize,
    /// Events pending in the inbox after the last kill.
    left_pending: usize,
}

/// The driver of one crash run: Meta's side of the webhook, and the killer.
struct Driver {
    label: &'static str,
    spec: String,
    rng: Rng,
    customers: Vec<String>,
    ledger: Ledger,
    kills: Kills,
    /// The keys of events recorded by the previous kill.
    recorded_before: HashSet<String>,
}

impl Driver {
    fn new(label: &'static str, spec: String) -> Self {
        Self {
            label,
            spec,
            rng: Rng::seeded(label),
            customers: (0..CUSTOMERS)
                .map(|i| format!("2401000000000{i}"))
                .collect(),
            ledger: Ledger::default(),
            kills: Kills::default(),
            recorded_before: HashSet::new(),
        }
    }

    /// Starts a child and kills it at a random moment while it starts.
    async fn kill_while_starting(&mut self) {
        let mut server = start(&self.spec, false).await;
        pause_micros(u64::try_from(self.rng.below(40_000)).unwrap()).await;
        kill(&mut server).await;
        self.kills.all += 1;
        self.kills.starting += 1;
    }

    /// Starts a child, posts bodies to it, and kills it at a random moment: after a random
    /// number of acknowledgements, then a random delay while requests are in flight (nothing,
    /// under a millisecond, a few milliseconds, or, so that ticks run and the sweep of earlier
    /// crashes' events is killed too, up to 600 ms with bodies still coming).
    async fn serve_and_kill(&mut self) {
        let mut server = start(&self.spec, true).await;
        let http = client();
        let mut tasks = JoinSet::new();
        self.ledger.acked_since_start.clear();
        self.ledger.unanswered_since_start.clear();
        let acks_before_kill = self.rng.below(12);
        let delay = match self.rng.below(20) {
            0..=5 => Duration::ZERO,
            6..=11 => Duration::from_micros(self.rng.below(1_000) as u64),
            12..=16 => Duration::from_micros(self.rng.below(5_000) as u64),
            _ => Duration::from_millis(150 + self.rng.below(450) as u64),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut acks = 0;
        while acks < acks_before_kill {
            self.fill(&mut tasks, &http, &server.url, true);
            let (index, outcome) = tasks.join_next().await.unwrap().unwrap();
            if self.ledger.record(index, outcome) {
                acks += 1;
            }
            assert!(
                Instant::now() < deadline,
                "{}: the child acknowledged only {acks} bodies in 60 s",
                self.label
            );
        }
        if delay < Duration::from_millis(5) {
            pause_micros(u64::try_from(delay.as_micros()).unwrap()).await;
        } else {
            let until = tokio::time::Instant::now() + delay;
            loop {
                self.fill(&mut tasks, &http, &server.url, true);
                tokio::select! {
                    done = tasks.join_next() => {
                        let (index, outcome) = done.unwrap().unwrap();
                        self.ledger.record(index, outcome);
                    }
                    () = tokio::time::sleep_until(until) => break,
                }
            }
        }
        self.kills.cut += tasks.len();
        kill(&mut server).await;
        self.kills.all += 1;
        // Answers that arrived before the kill are acknowledgements; the rest failed.
        while let Some(done) = tasks.join_next().await {
            let (index, outcome) = done.unwrap();
            self.ledger.record(index, outcome);
        }
    }

    /// Posts bodies until [`IN_FLIGHT`] are in flight (with `fresh`, new ones when none is
    /// waiting; without, only those not yet acknowledged).
    fn fill(
        &mut self,
        tasks: &mut JoinSet<(usize, Option<u16>)>,
        http: &reqwest::Client,
        url: &str,
        fresh: bool,
    ) {
        while tasks.len() < IN_FLIGHT {
            let Some(index) = self.ledger.pick(&self.customers, &mut self.rng, fresh) else {
                return;
            };
            post(tasks, http, url, &mut self.ledger, index);
        }
    }

    /// Looks at the store after a kill and counts where it landed.
    async fn locate_kill<S: ConversationStore>(&mut self, store: &S) {
        let ledger = &self.ledger;
        let (pending, applied) = recorded(store, &self.customers, ledger).await;
        let unanswered: Vec<usize> = ledger
            .unanswered_since_start
            .iter()
            .copied()
            .filter(|&i| !ledger.bodies[i].acked)
            .collect();
        if ledger.keys(&unanswered).any(|k| {
            !self.recorded_before.contains(k) && (pending.contains(k) || applied.contains(k))
        }) {
            self.kills.after_commit += 1;
        }
        if ledger
            .keys(&ledger.acked_since_start)
            .any(|k| pending.contains(k))
        {
            self.kills.before_apply += 1;
        }
        self.kills.left_pending = pending.len();
        self.recorded_before = pending.union(&applied).cloned().collect();
    }

    /// Starts a child that is not killed, and delivers every body not yet acknowledged until
    /// it is.
    async fn deliver_the_rest(&mut self) -> Server {
        let server = start(&self.spec, true).await;
        let http = client();
        let mut tasks = JoinSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.ledger.all_acked() || !tasks.is_empty() {
            self.fill(&mut tasks, &http, &server.url, false);
            if let Some(done) = tasks.join_next().await {
                let (index, outcome) = done.unwrap();
                self.ledger.record(index, outcome);
            }
            assert!(
                Instant::now() < deadline,
                "{}: bodies still not acknowledged after 60 s without kills",
                self.label
            );
        }
        server
    }

    /// Each message's customer, by mid.
    fn owners(&self) -> HashMap<&str, &str> {
        self.ledger
            .bodies
            .iter()
            .flat_map(|b| b.messages.iter())
            .map(|m| (m.mid.as_str(), m.customer.as_str()))
            .collect()
    }
}

/// Waits until the child has applied every message and nothing is pending in the inbox; fails
/// once 30 s pass without a message applied.
async fn await_drained<S: ConversationStore>(store: &S, driver: &Driver) {
    let owner = driver.owners();
    let mut progress = (Instant::now(), 0);
    loop {
        let seen = customer_mids(store, &driver.customers).await;
        let pending = store
            .inbox_threads(SystemTime::now() + Duration::from_secs(3600), 1)
            .await
            .unwrap();
        let present: HashSet<&str> = seen.values().flatten().map(String::as_str).collect();
        if pending.is_empty() && owner.keys().all(|m| present.contains(m)) {
            return;
        }
        if present.len() > progress.1 {
            progress = (Instant::now(), present.len());
        }
        assert!(
            progress.0.elapsed() < Duration::from_secs(30),
            "{}: stuck for 30 s at {} of {} messages in transcripts, {} threads pending",
            driver.label,
            present.len(),
            owner.len(),
            pending.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every acknowledged message exactly once, in its own customer's transcript; every body
/// acknowledged; one conversation per customer.
async fn assert_exactly_once<S: ConversationStore>(store: &S, driver: &Driver) {
    let label = driver.label;
    let owner = driver.owners();
    let seen = customer_mids(store, &driver.customers).await;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (customer, mids) in &seen {
        for mid in mids {
            *counts.entry(mid.as_str()).or_default() += 1;
            assert_eq!(
                owner.get(mid.as_str()).copied(),
                Some(customer.as_str()),
                "{label}: {mid} in {customer}'s transcript"
            );
        }
    }
    let lost: Vec<&&str> = owner.keys().filter(|m| !counts.contains_key(**m)).collect();
    let repeated: Vec<(&&str, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(lost.is_empty(), "{label}: acknowledged but lost: {lost:?}");
    assert!(repeated.is_empty(), "{label}: repeated: {repeated:?}");
    assert!(
        driver.ledger.all_acked(),
        "{label}: a body was never acknowledged"
    );
    assert_eq!(
        store.list_open().await.unwrap().len(),
        driver.customers.len(),
        "{label}: one conversation per customer"
    );
}

/// The crash run on one store: `spec` for the child, `open` for the parent's own look at the
/// database (called once the child has created it).
async fn crash_run<S, F, Fut>(label: &'static str, spec: String, open: F)
where
    S: ConversationStore,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    let started = Instant::now();
    let kills_wanted = std::env::var("MC_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(DEFAULT_KILLS)
        .max(MIN_KILLS);
    let mut driver = Driver::new(label, spec);
    let mut store_slot: Option<S> = None;
    let mut open = Some(open);
    let mut open_once = || open.take().expect("the store is opened once")();
    // The first start creates and migrates the database: it is killed while it starts, as
    // are some others.
    driver.kill_while_starting().await;
    while driver.kills.all < kills_wanted {
        if driver.rng.one_in(10) {
            driver.kill_while_starting().await;
        } else {
            driver.serve_and_kill().await;
            // The first served child has created the database by now.
            let store = match &store_slot {
                Some(store) => store,
                None => store_slot.insert(open_once().await),
            };
            driver.locate_kill(store).await;
        }
    }
    let killing = started.elapsed();
    let mut server = driver.deliver_the_rest().await;
    let delivered = started.elapsed();
    let store = match store_slot {
        Some(store) => store,
        None => open_once().await,
    };
    await_drained(&store, &driver).await;
    let drained = started.elapsed();
    kill(&mut server).await;
    assert_exactly_once(&store, &driver).await;
    let ledger = &driver.ledger;
    eprintln!(
        "crash test ({label}): {:?} in {:.1} s; {} bodies and {} messages acknowledged, each \
         message once; answers {:?}, {} without an answer, {} redeliveries of acknowledged \
         bodies; last deliveries at {:.1} s, inbox drained at {:.1} s, {:.1} s in all",
        driver.kills,
        killing.as_secs_f64(),
        ledger.bodies.len(),
        driver.owners().len(),
        ledger.statuses,
        ledger.errors,
        ledger.redeliveries_of_acked,
        delivered.as_secs_f64(),
        drained.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
}

/// Each customer's mids among the customer lines of their open conversation's transcript.
async fn customer_mids<S: ConversationStore>(
    store: &S,
    customers: &[String],
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for c in customers {
        let Some(open) = store
            .find_open(
                &PageId::from(support::channel::PAGE),
                &UserId::new(c.clone()),
            )
            .await
            .unwrap()
        else {
            continue;
        };
        let mids = store
            .transcript(open.conversation.id())
            .await
            .unwrap()
            .into_iter()
            .filter(|l| l.author == Author::Customer)
            .filter_map(|l| l.mid)
            .collect();
        out.insert(c.clone(), mids);
    }
    out
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_child_killed_at_random_loses_and_repeats_nothing() {
    use messenger_channel::store::SqliteStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let spec = format!("sqlite:{}", path.display());
    crash_run("sqlite", spec, || async {
        SqliteStore::open(&path).await.unwrap()
    })
    .await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_child_killed_at_random_loses_and_repeats_nothing() {
    use messenger_channel::store::PostgresStore;
    let Some(url) = postgres_url() else {
        return;
    };
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!("mc_crash_{}_{nanos}", std::process::id());
    let db = fresh_postgres_database(&url, &name).await;
    let spec = format!("postgres:{db}");
    crash_run("postgres", spec, || async {
        PostgresStore::connect(&db).await.unwrap()
    })
    .await;
    // Passed: the database is of no more use (a failed run's is kept, to look at).
    drop_postgres_database(&url, &name).await;
}

/// Drops a test database, closing what is still connected to it; best effort.
#[cfg(feature = "postgres")]
async fn drop_postgres_database(url: &str, name: &str) {
    use sqlx::Executor as _;
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    if let Err(e) = admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
    {
        eprintln!("could not drop the test database {name}: {e}");
    }
    admin.close().await;
}
