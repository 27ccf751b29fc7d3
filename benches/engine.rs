//! The lifecycle: the pure transition function alone, and inbound text messages through the
//! engine (verify, parse, dedup, transition, commit, deliver) with in-memory stores and a fake
//! Send API, over 1 and over 10,000 active conversations, on one core (a current-thread
//! runtime).
//!
//! Run with `cargo bench --bench engine --features test-util`. After criterion's report it prints
//! transitions/s and messages/s against the targets (5 million transitions/s, 100,000 messages/s).

#[path = "../tests/support/channel.rs"]
#[allow(dead_code, unreachable_pub)]
mod channel;

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use channel::{Channel, signed, webhook};
use criterion::{BatchSize, Criterion, Throughput};
use messenger_channel::conversation::{
    Conversation, ConversationConfig, Inbound, Input, LineBody, State,
};
use messenger_channel::ids::{AgentId, ConversationId, PageId, UserId};
use messenger_channel::store::ConversationStore;
use messenger_channel::testing::t0;

const TRANSITIONS_TARGET: f64 = 5_000_000.0;
const MESSAGES_TARGET: f64 = 100_000.0;

fn active_conversation() -> (Conversation, ConversationConfig) {
    let config = ConversationConfig::default();
    let (mut c, _) = Conversation::start(
        ConversationId::from("c"),
        PageId::from("104987654321098"),
        UserId::from("24012345678901234"),
        Inbound::new(Some("m0".into()), vec![LineBody::Text("hello".into())]),
        t0(),
        &config,
    );
    let alice = AgentId::from("alice");
    for input in [Input::OfferTo(alice.clone()), Input::Accept(alice)] {
        c.apply(input, t0(), &config).expect("legal");
    }
    assert!(matches!(c.state(), State::Active { .. }));
    (c, config)
}

fn text_input() -> Input {
    Input::CustomerMessage(Inbound::new(
        Some("m_1".into()),
        vec![LineBody::Text("where is my parcel?".into())],
    ))
}

/// Transitions per second of `apply` on an Active conversation (inputs built outside the timing).
fn transitions_per_second() -> f64 {
    let (mut c, config) = active_conversation();
    let now = t0() + Duration::from_secs(1);
    let n = 200_000u32;
    let inputs: Vec<Input> = (0..n).map(|_| text_input()).collect();
    let started = Instant::now();
    for input in inputs {
        black_box(c.apply(input, now, &config).expect("legal"));
    }
    f64::from(n) / started.elapsed().as_secs_f64()
}

struct Load {
    channel: Channel,
    bodies: Vec<(http::HeaderMap, Vec<u8>)>,
    now: SystemTime,
}

/// A channel with `conversations` active conversations and `messages` signed bodies, one text
/// message each, spread over them.
fn load(runtime: &tokio::runtime::Runtime, conversations: usize, messages: usize) -> Load {
    let channel = Channel::new(&["alice"], ConversationConfig::default());
    let alice = AgentId::from("alice");
    channel
        .router
        .set_capacity(&alice, u32::try_from(conversations).unwrap() + 1);
    let customer = |i: usize| format!("7{i:015}");
    runtime.block_on(async {
        for i in 0..conversations {
            let (h, b) =
                signed(webhook().message(&customer(i), &format!("m_open_{i}"), "hi", t0()));
            channel.engine.handle_webhook(&h, &b, t0()).await.unwrap();
        }
        for s in channel.store.list_open().await.unwrap() {
            channel
                .engine
                .accept(s.conversation.id(), &alice, t0())
                .await
                .unwrap();
        }
    });
    let now = t0() + Duration::from_secs(10);
    let bodies = (0..messages)
        .map(|i| {
            signed(webhook().message(
                &customer(i % conversations),
                &format!("m_{conversations}_{i}"),
                "where is my parcel?",
                now,
            ))
        })
        .collect();
    Load {
        channel,
        bodies,
        now,
    }
}

/// Messages per second through `handle_webhook`, on one core.
fn messages_per_second(
    runtime: &tokio::runtime::Runtime,
    conversations: usize,
    messages: usize,
) -> f64 {
    let load = load(runtime, conversations, messages);
    let started = Instant::now();
    runtime.block_on(async {
        for (h, b) in &load.bodies {
            let report = load
                .channel
                .engine
                .handle_webhook(h, b, load.now)
                .await
                .unwrap();
            debug_assert_eq!(report.handled, 1);
        }
    });
    let rate = f64::from(u32::try_from(messages).expect("message counts fit in u32"))
        / started.elapsed().as_secs_f64();
    black_box(&load.channel);
    rate
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut criterion = Criterion::default().configure_from_args();

    let mut group = criterion.benchmark_group("transition");
    group.throughput(Throughput::Elements(1));
    let (c, config) = active_conversation();
    let now = t0() + Duration::from_secs(1);
    group.bench_function("apply_customer_message", |b| {
        let mut c = c.clone();
        b.iter_batched(
            text_input,
            |input| c.apply(input, now, &config).expect("legal"),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("transition_with_clone", |b| {
        b.iter_batched(
            text_input,
            |input| messenger_channel::conversation::transition(&c, input, now, &config),
            BatchSize::SmallInput,
        );
    });
    group.finish();

    let mut group = criterion.benchmark_group("engine_inbound_text");
    group.sample_size(10);
    for conversations in [1usize, 10_000] {
        group.throughput(Throughput::Elements(20_000));
        group.bench_function(format!("{conversations}_conversations"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let load = load(&runtime, conversations, 20_000);
                        let started = Instant::now();
                        runtime.block_on(async {
                            for (h, body) in &load.bodies {
                                load.channel
                                    .engine
                                    .handle_webhook(h, body, load.now)
                                    .await
                                    .unwrap();
                            }
                        });
                        started.elapsed()
                    })
                    .sum()
            });
        });
    }
    group.finish();
    criterion.final_summary();

    if std::env::args().any(|a| a == "--bench") {
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let transitions = median((0..7).map(|_| transitions_per_second()).collect());
        println!(
            "\ntransitions/s (apply, customer message, Active):  {transitions:>12.0}  target {TRANSITIONS_TARGET:.0}: {}",
            verdict(transitions, TRANSITIONS_TARGET)
        );
        for conversations in [1usize, 10_000] {
            let rate = median(
                (0..5)
                    .map(|_| messages_per_second(&runtime, conversations, 50_000))
                    .collect(),
            );
            println!(
                "inbound text messages/s, {conversations:>6} conversations, one core: {rate:>10.0}  target {MESSAGES_TARGET:.0}: {}",
                verdict(rate, MESSAGES_TARGET)
            );
        }
    }
}

fn verdict(value: f64, target: f64) -> &'static str {
    if value >= target { "met" } else { "MISSED" }
}
