//! Webhook ingest: signature check + parse, against a floor measured in the same run.
//!
//! Run with `cargo bench --bench ingest`. The floor is HMAC-SHA256 over the body plus
//! `serde_json` into `IgnoredAny`: the least any verifying JSON handler must do. The crate's
//! side verifies, parses every event, and reads each event's kind, ids, `mid` and decoded text,
//! so lazy decoding is still counted. Bodies come from `../shared/perf-payloads/` when present
//! (event counts checked against its manifest), else from a generator of the same shape.
//!
//! After criterion's report, a paired run (floor → crate → floor, median of rounds) prints
//! events/s for both and their ratio.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use hmac::{Hmac, Mac};
use messenger_channel::secret::AppSecret;
use messenger_channel::webhook::signature::sign_sha256;
use messenger_channel::webhook::{EventKind, Webhook};
use sha2::Sha256;

#[path = "../tests/support/generate.rs"]
#[allow(dead_code)]
mod generate;

const TARGET_RATIO: f64 = 0.6;

struct Payload {
    name: &'static str,
    events: usize,
    body: Vec<u8>,
    signature: String,
    secret: String,
    source: &'static str,
}

fn payloads() -> Vec<Payload> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/perf-payloads");
    let manifest = std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m).ok());
    let sizes = [
        ("1", "w1_single.json", 1),
        ("100", "w1_b100.json", 100),
        ("1000", "w1_b1000.json", 1000),
    ];
    sizes
        .into_iter()
        .map(|(name, file, events)| {
            if let Some(manifest) = &manifest {
                let entry = manifest["w1"]
                    .as_array()
                    .and_then(|a| a.iter().find(|e| e["file"] == file));
                if let (Some(entry), Ok(body)) = (entry, std::fs::read(dir.join(file))) {
                    return Payload {
                        name,
                        events: usize::try_from(entry["events"].as_u64().expect("manifest events"))
                            .unwrap(),
                        signature: entry["x_hub_signature_256"]
                            .as_str()
                            .expect("manifest signature")
                            .to_owned(),
                        secret: manifest["app_secret"]
                            .as_str()
                            .expect("manifest secret")
                            .to_owned(),
                        body,
                        source: "shared/perf-payloads",
                    };
                }
            }
            let body = generate::body(events, 20_240_917).into_bytes();
            let secret = "perf-secret".to_owned();
            let signature = sign_sha256(&AppSecret::new(&secret).unwrap(), &body);
            Payload {
                name,
                events,
                body,
                signature,
                secret,
                source: "generated",
            }
        })
        .collect()
}

fn floor(key: &[u8], body: &[u8]) -> usize {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    black_box(mac.finalize().into_bytes());
    serde_json::from_slice::<serde::de::IgnoredAny>(body).unwrap();
    1
}

/// Verifies, parses, and reads every event's kind, ids, mid and text. Returns the event count.
fn ingest(webhook: &Webhook, signature: &str, body: &[u8]) -> usize {
    let batch = webhook
        .verify_and_parse_value(signature, body)
        .expect("valid body");
    let mut touched = 0usize;
    let mut events = 0usize;
    for event in batch.events() {
        events += 1;
        touched += event.kind_name().len() + event.page_id.as_str().len();
        touched += event.sender.as_ref().map_or(0, |s| s.as_str().len());
        touched += event.recipient.as_ref().map_or(0, |s| s.as_str().len());
        touched += event.mid().map_or(0, |m| m.as_str().len());
        if let EventKind::Message(m) = &event.kind {
            touched += m.text.map_or(0, |t| t.decode().len());
        }
    }
    black_box(touched);
    events
}

fn criterion_benches(c: &mut Criterion, payloads: &[Payload]) {
    let mut group = c.benchmark_group("ingest");
    for p in payloads {
        let webhook = Webhook::new(&AppSecret::new(&p.secret).unwrap());
        group.throughput(Throughput::Elements(p.events as u64));
        group.bench_with_input(BenchmarkId::new("floor", p.name), p, |b, p| {
            b.iter(|| floor(p.secret.as_bytes(), black_box(&p.body)));
        });
        group.bench_with_input(BenchmarkId::new("crate", p.name), p, |b, p| {
            b.iter(|| ingest(&webhook, &p.signature, black_box(&p.body)));
        });
    }
    group.finish();
}

/// Runs `f` repeatedly for about `budget`; returns seconds per call.
fn time_per_call(budget: Duration, mut f: impl FnMut() -> usize) -> f64 {
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < budget || calls < 3 {
        black_box(f());
        calls += 1;
    }
    start.elapsed().as_secs_f64() / f64::from(calls)
}

fn paired_ratios(payloads: &[Payload]) {
    println!("\npaired run: floor -> crate -> floor, median of 11 rounds");
    println!(
        "{:>6} {:>16} {:>16} {:>8} {:>7}  source",
        "events", "floor events/s", "crate events/s", "ratio", "target"
    );
    for p in payloads {
        let webhook = Webhook::new(&AppSecret::new(&p.secret).unwrap());
        let budget = Duration::from_millis(150);
        let mut ratios = Vec::new();
        let mut floor_rates = Vec::new();
        let mut crate_rates = Vec::new();
        for _ in 0..11 {
            let f1 = time_per_call(budget, || floor(p.secret.as_bytes(), &p.body));
            let c = time_per_call(budget, || ingest(&webhook, &p.signature, &p.body));
            let f2 = time_per_call(budget, || floor(p.secret.as_bytes(), &p.body));
            let f = f64::midpoint(f1, f2);
            ratios.push(f / c);
            let events = f64::from(u32::try_from(p.events).expect("event counts fit in u32"));
            floor_rates.push(events / f);
            crate_rates.push(events / c);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let ratio = median(&mut ratios);
        let met = if p.events < 100 {
            "-"
        } else if ratio >= TARGET_RATIO {
            "met"
        } else {
            "MISSED"
        };
        println!(
            "{:>6} {:>16.0} {:>16.0} {:>8.2} {:>7}  {}",
            p.events,
            median(&mut floor_rates),
            median(&mut crate_rates),
            ratio,
            met,
            p.source
        );
    }
}

fn main() {
    let payloads = payloads();
    for p in &payloads {
        let webhook = Webhook::new(&AppSecret::new(&p.secret).unwrap());
        let n = ingest(&webhook, &p.signature, &p.body);
        assert_eq!(
            n, p.events,
            "{}: parsed {n} events, manifest says {}",
            p.name, p.events
        );
    }
    let mut criterion = Criterion::default().configure_from_args();
    criterion_benches(&mut criterion, &payloads);
    criterion.final_summary();
    // `cargo test --benches` runs this binary in test mode: skip the long paired run there.
    if std::env::args().any(|a| a == "--bench") {
        paired_ratios(&payloads);
    }
}
