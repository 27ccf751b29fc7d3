//! Process crashes mid-send: a child process (one engine on a durable store, its worker
//! started as a host would, at the default outbox lease) sends every new customer the privacy
//! notice through the real `GraphClient` to a fake Graph API in this process, which answers
//! slowly; the child is killed with SIGKILL while sends are in flight, and started again
//! under the same instance name. This process acts as Meta: it posts the customers' messages
//! (again until acknowledged) and the echo of every message the fake accepted. In the end
//! every customer got the notice exactly once, by the worker alone (no one-off recovery call),
//! and nothing is left pending.
//!
//! The echo grace is shortened from 30 s to 3 s here, only to keep the run short (each
//! restart that takes back an interrupted send waits for it); the default grace is covered
//! with injected time in `tests/delivery.rs` and `tests/durable.rs`. The lease is the default.
#![cfg(all(feature = "axum", feature = "graph", feature = "sqlite"))]

mod support;

use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use messenger_channel::agents::{InMemoryRouter, RecordingNotifier};
use messenger_channel::axum::WebhookRoutes;
use messenger_channel::conversation::ConversationConfig;
use messenger_channel::engine::{DeliveryConfig, Engine};
use messenger_channel::secret::{PageAccessToken, VerifyToken};
use messenger_channel::send::{GraphClient, RetryPolicy};
use messenger_channel::store::{ConversationStore, MediaStore};
use messenger_channel::testing::SignedBody;
use messenger_channel::webhook::Webhook;
use support::channel::{secret, webhook};
use support::fake_graph::{FakeGraph, Pattern};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const CHILD_ENV: &str = "MC_CRASH_DELIVERY_CHILD";
const GRAPH_ENV: &str = "MC_CRASH_DELIVERY_GRAPH";
const PORT_LINE: &str = "MC_CRASH_DELIVERY_PORT=";
const NOTICE: &str = "This conversation may be recorded.";
/// Shortened from the default, see the module's docs.
const ECHO_GRACE: Duration = Duration::from_secs(3);
/// Kills per store and run.
const KILLS: usize = 8;
/// New customers per round between kills.
const PER_ROUND: usize = 6;

/// Not a test on its own: the child process. Without [`CHILD_ENV`] it returns at once.
#[test]
fn crash_delivery_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let graph = std::env::var(GRAPH_ENV).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        if let Some(path) = spec.strip_prefix("sqlite:") {
            let store = messenger_channel::store::SqliteStore::open(path)
                .await
                .unwrap();
            serve(Arc::new(store), &graph).await;
        }
        #[cfg(feature = "postgres")]
        if let Some(url) = spec.strip_prefix("postgres:") {
            let store = messenger_channel::store::PostgresStore::connect(url)
                .await
                .unwrap();
            serve(Arc::new(store), &graph).await;
        }
        panic!("{CHILD_ENV} must be sqlite:<path> or postgres:<url>, not {spec:?}");
    });
}

/// Serves the webhook and runs the worker, as a host does. Never returns.
async fn serve<S: ConversationStore + MediaStore + 'static>(store: Arc<S>, graph: &str) {
    let client = GraphClient::builder(PageAccessToken::new("EAAB-crash").unwrap())
        .base_url(graph)
        .timeout(Duration::from_secs(20))
        .retry(RetryPolicy::never())
        .build()
        .unwrap();
    let engine = Arc::new(
        Engine::builder(Webhook::new(&secret()), Arc::new(client))
            .store(store.clone())
            .media(store)
            .router(Arc::new(InMemoryRouter::new()))
            .notifier(Arc::new(RecordingNotifier::new()))
            .config(ConversationConfig::default().privacy_notice(Some(NOTICE.into())))
            .instance("crash-delivery-child")
            .delivery(DeliveryConfig {
                echo_grace: ECHO_GRACE,
                poll: Duration::from_millis(100),
                ..DeliveryConfig::default()
            })
            .build(),
    );
    let app = WebhookRoutes::new(engine.clone(), VerifyToken::new("x").unwrap()).router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _worker = engine.start();
    println!("{PORT_LINE}{port}");
    axum::serve(listener, app).await.unwrap();
}

async fn spawn(spec: &str, graph: &str) -> (Child, u16) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_delivery_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, spec)
        .env(GRAPH_ENV, graph)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the child exited before listening");
        if let Some((_, port)) = line.split_once(PORT_LINE) {
            break port.trim().parse::<u16>().unwrap();
        }
    };
    // Keep draining its output so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

/// Posts a body until the current child acknowledges it; `false` if it is dead.
async fn post(http: &reqwest::Client, port: u16, body: &SignedBody) -> bool {
    matches!(
        http.post(format!("http://127.0.0.1:{port}/"))
            .headers(body.headers())
            .body(body.body().to_vec())
            .send()
            .await,
        Ok(r) if r.status() == 200
    )
}

/// Acts as Meta for one run of the child: posts the echoes not yet acknowledged by any
/// child, every 100 ms, until the child dies.
async fn echo_loop(
    fake: Arc<FakeGraph>,
    port: u16,
    echoed: Arc<std::sync::Mutex<HashSet<String>>>,
) {
    let http = reqwest::Client::new();
    loop {
        let fresh: Vec<_> = fake
            .delivered()
            .into_iter()
            .filter(|e| {
                e.key
                    .as_ref()
                    .is_some_and(|k| !echoed.lock().unwrap().contains(k))
            })
            .collect();
        for entry in fresh {
            let Some(item) = entry.echo_item() else {
                continue;
            };
            let body = webhook().item(item, SystemTime::now()).sign(&secret());
            if !post(&http, port, &body).await {
                return;
            }
            echoed.lock().unwrap().insert(entry.key.clone().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run(spec: &str, label: &str) {
    let fake = Arc::new(FakeGraph::start().await);
    // Every send is answered slowly, so that kills land while sends are in flight (the fake
    // has the message: Meta got it, the child never heard).
    fake.set_default(Pattern::Slow(Duration::from_millis(150)));
    let graph = format!("http://{}", fake.addr());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let echoed = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let mut customers: Vec<String> = Vec::new();
    let mut in_flight_at_kill = 0;
    for round in 0..=KILLS {
        let (mut child, port) = spawn(spec, &graph).await;
        let meta = tokio::spawn(echo_loop(fake.clone(), port, echoed.clone()));
        // New customers write; each body is posted until acknowledged.
        for i in 0..PER_ROUND {
            let psid = format!("2401{round:04}{i:04}{}", label.len());
            let body = webhook()
                .message(
                    &psid,
                    &format!("m_{label}_{round}_{i}"),
                    "hello",
                    SystemTime::now(),
                )
                .sign(&secret());
            assert!(post(&http, port, &body).await, "acknowledged");
            customers.push(psid);
        }
        if round < KILLS {
            // Kill while a send is in flight: the fake has read a request not yet answered.
            let before = fake.requests().len();
            fake.wait_for_requests(before + 1, Duration::from_secs(30))
                .await;
            child.kill().await.unwrap();
            in_flight_at_kill += 1;
            meta.abort();
        } else {
            // The last child runs until every customer has the notice and nothing is pending.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            loop {
                let by_customer = notices_by_customer(&fake);
                if customers.iter().all(|c| by_customer.contains_key(c)) {
                    // Give the worker time to receive the last echoes and settle.
                    tokio::time::sleep(ECHO_GRACE * 2).await;
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "not every notice was sent: {by_customer:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            meta.abort();
            child.kill().await.unwrap();
        }
    }
    let by_customer = notices_by_customer(&fake);
    for c in &customers {
        assert_eq!(
            by_customer.get(c),
            Some(&1),
            "{label}: customer {c} got the notice {:?} times; log: {:?}",
            by_customer.get(c),
            fake.requests()
        );
    }
    eprintln!(
        "crash_delivery ({label}): {} customers, {KILLS} kills with a send in flight ({in_flight_at_kill}), {} requests to Graph",
        customers.len(),
        fake.requests().len()
    );
}

/// Notices delivered, by customer.
fn notices_by_customer(fake: &FakeGraph) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for e in fake.delivered() {
        if e.body["message"]["text"] == NOTICE {
            if let Some(psid) = &e.psid {
                *out.entry(psid.clone()).or_insert(0) += 1;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_child_killed_mid_send_delivers_each_notice_once() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("sqlite:{}", dir.path().join("channel.db").display());
    run(&spec, "sqlite").await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_child_killed_mid_send_delivers_each_notice_once() {
    let Some(url) = support::postgres::postgres_url() else {
        return;
    };
    let db = support::postgres::fresh_postgres_database(&url, "mc_crash_delivery").await;
    run(&format!("postgres:{db}"), "postgres").await;
}
