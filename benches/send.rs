//! Send throughput: 5,000 text sends with 64 in flight against a mock Graph server on
//! loopback, the crate's `GraphClient` side by side with a bare `reqwest` loop posting the same
//! bodies to the same server.
//!
//! Run with `cargo bench --bench send`. Texts come from `../shared/perf-payloads/w2_texts.json`
//! when present, else from a generator. After criterion's report, a paired run
//! (bare → client → bare, median of rounds) prints messages/s for both and their ratio.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use criterion::{Criterion, Throughput};
use messenger_channel::ids::PageId;
use messenger_channel::secret::PageAccessToken;
use messenger_channel::send::{GraphClient, Message, RetryPolicy, SendApi, SendRequest};

const IN_FLIGHT: usize = 64;
const TARGET_RATIO: f64 = 0.9;
const PAGE: &str = "104987654321098";

fn texts() -> (Vec<(String, String)>, &'static str) {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/perf-payloads/w2_texts.json");
    if let Ok(raw) = std::fs::read(&path) {
        if let Ok(pairs) = serde_json::from_slice::<Vec<(String, String)>>(&raw) {
            return (pairs, "shared/perf-payloads");
        }
    }
    let samples = [
        "Do you ship to Canada?",
        "no",
        "Where is my order #48213?",
        "Merci beaucoup 🙏",
        "¿Tienen talla M?",
    ];
    let pairs = (0..5000u64)
        .map(|i| {
            (
                format!("{}", 4_000_000_000_000_000 + i * 7919),
                samples[(i % 5) as usize].to_owned(),
            )
        })
        .collect();
    (pairs, "generated")
}

async fn mock_server() -> String {
    async fn messages(body: Bytes) -> ([(&'static str, &'static str); 1], &'static str) {
        std::hint::black_box(body.len());
        (
            [("content-type", "application/json")],
            r#"{"recipient_id":"4618175910773773","message_id":"m_bench"}"#,
        )
    }
    let app = Router::new().route("/{version}/{page}/messages", post(messages));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// Runs `send(i)` for every text with `IN_FLIGHT` workers; returns the elapsed time.
async fn run<F, Fut>(count: usize, send: F) -> Duration
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let send = Arc::new(send);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (next, send) = (next.clone(), send.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                send(i).await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
    started.elapsed()
}

struct Bench {
    texts: Arc<Vec<(String, String)>>,
    client: GraphClient,
    bare: reqwest::Client,
    url: String,
}

impl Bench {
    async fn crate_run(&self) -> Duration {
        let (texts, client) = (self.texts.clone(), self.client.clone());
        run(texts.len(), move |i| {
            let (texts, client) = (texts.clone(), client.clone());
            async move {
                let (psid, text) = &texts[i];
                let request =
                    SendRequest::new(psid.clone(), Message::text(text).expect("valid text"));
                client
                    .send(&PageId::from(PAGE), &request)
                    .await
                    .expect("sent");
            }
        })
        .await
    }

    async fn bare_run(&self) -> Duration {
        let (texts, http, url) = (self.texts.clone(), self.bare.clone(), self.url.clone());
        run(texts.len(), move |i| {
            let (texts, http, url) = (texts.clone(), http.clone(), url.clone());
            async move {
                let (psid, text) = &texts[i];
                let body = serde_json::json!({"messaging_type": "RESPONSE", "recipient": {"id": psid}, "message": {"text": text}});
                let response = http
                    .post(&url)
                    .query(&[("access_token", "perf-token")])
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(&body).unwrap())
                    .send()
                    .await
                    .expect("sent");
                assert!(response.status().is_success());
                std::hint::black_box(response.bytes().await.expect("body"));
            }
        })
        .await
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (texts, source) = texts();
    let base = runtime.block_on(mock_server());
    let bench = Bench {
        texts: Arc::new(texts),
        client: GraphClient::builder(PageAccessToken::new("perf-token").unwrap())
            .base_url(base.clone())
            .retry(RetryPolicy::never())
            .build()
            .unwrap(),
        bare: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .unwrap(),
        url: format!("{base}/v26.0/{PAGE}/messages"),
    };
    let count = bench.texts.len();

    let mut criterion = Criterion::default().configure_from_args().sample_size(10);
    let mut group = criterion.benchmark_group("send");
    group.throughput(Throughput::Elements(count as u64));
    group.bench_function("bare_reqwest", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| runtime.block_on(bench.bare_run())).sum());
    });
    group.bench_function("graph_client", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| runtime.block_on(bench.crate_run()))
                .sum()
        });
    });
    group.finish();
    criterion.final_summary();

    if std::env::args().any(|a| a == "--bench") {
        let rounds = 9;
        let (mut ratios, mut bare_rates, mut crate_rates) = (Vec::new(), Vec::new(), Vec::new());
        let per_second = |d: Duration| f64::from(u32::try_from(count).unwrap()) / d.as_secs_f64();
        for _ in 0..rounds {
            let before = runtime.block_on(bench.bare_run());
            let client = runtime.block_on(bench.crate_run());
            let after = runtime.block_on(bench.bare_run());
            let bare_time = (before + after) / 2;
            ratios.push(bare_time.as_secs_f64() / client.as_secs_f64());
            bare_rates.push(per_second(bare_time));
            crate_rates.push(per_second(client));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let ratio = median(&mut ratios);
        println!(
            "\npaired run: bare -> client -> bare, {count} sends, {IN_FLIGHT} in flight, median of {rounds} rounds ({source})"
        );
        println!(
            "bare reqwest   {:>10.0} messages/s",
            median(&mut bare_rates)
        );
        println!(
            "GraphClient    {:>10.0} messages/s",
            median(&mut crate_rates)
        );
        println!(
            "ratio          {ratio:>10.2}  (target {TARGET_RATIO}: {})",
            if ratio >= TARGET_RATIO {
                "met"
            } else {
                "MISSED"
            }
        );
    }
}
