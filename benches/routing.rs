//! Routing: Push decisions (`AgentRouter::reserve_offer`: read the agents, decide with
//! `choose_agent`, reserve the chosen agent's capacity) at the size: 10 queues, 200
//! agents, 10,000 open conversations (1,600 of them held by agents, 8 units of each agent's
//! 10, the other 8,400 waiting for an offer), on one core (a current-thread runtime).
//!
//! Each decision is followed by the end of its offer (`offer_ended`, as when the agent
//! declines), so that agents keep free capacity and every decision chooses among them; the
//! in-memory rate counts both calls. On PostgreSQL each decision is timed alone and the
//! percentiles are given: the target is no routing query slower than 5 ms.
//!
//! On PostgreSQL the store then holds the 10,000 conversations too, and the reads around
//! routing are timed: a queue's open work, a customer's place in a queue, every waiting or
//! open conversation, a tick's page of waiting ones, and a whole `Engine::tick` when one
//! agent has room for one conversation.
//!
//! Run with `cargo bench --bench routing --features postgres,test-util`, with
//! `MESSENGER_CHANNEL_TEST_POSTGRES` set for the PostgreSQL half (`bash scripts/postgres.sh`
//! starts one); without it, only memory is measured.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use messenger_channel::agents::{AgentRouter, Hold, InMemoryRouter, OfferRequest, Presence};
use messenger_channel::ids::{AgentId, ConversationId, QueueId, SkillId};
use messenger_channel::routing::{AgentProfile, Queue, SkillMatching};
use messenger_channel::testing::t0;

const QUEUES: usize = 10;
const AGENTS: usize = 200;
const CONVERSATIONS: usize = 10_000;
/// Sessions each agent holds (units of their capacity of 10).
const SESSIONS_PER_AGENT: usize = 8;
const MEMORY_TARGET: f64 = 50_000.0;
#[cfg(feature = "postgres")]
const POSTGRES_TARGET: Duration = Duration::from_millis(5);

/// The queues: three skill matchings, one or two skills each.
fn queues() -> Vec<Queue> {
    (0..QUEUES)
        .map(|i| {
            let q = Queue::push(QueueId::from(format!("q{i}")))
                .skill(SkillId::from(format!("s{i}")), 2)
                .matching(match i % 3 {
                    0 => SkillMatching::Exact,
                    1 => SkillMatching::Closest,
                    _ => SkillMatching::None,
                });
            // Agents with skill `s{i}` have `s{i+3}` too.
            if i % 2 == 0 {
                q.skill(SkillId::from(format!("s{}", (i + 3) % QUEUES)), 1)
            } else {
                q
            }
        })
        .collect()
}

/// Agent `i`: three skills at levels 1 to 3, the default capacity (10).
fn profile(i: usize) -> AgentProfile {
    let level = |k: usize| u8::try_from(1 + (i + k) % 3).unwrap();
    AgentProfile::new(AgentId::from(format!("agent{i:03}")))
        .skill(SkillId::from(format!("s{}", i % QUEUES)), level(0))
        .skill(SkillId::from(format!("s{}", (i + 3) % QUEUES)), level(1))
        .skill(SkillId::from(format!("s{}", (i + 7) % QUEUES)), level(2))
}

/// The agents' ids, made once.
static AGENT_IDS: std::sync::LazyLock<Vec<AgentId>> =
    std::sync::LazyLock::new(|| (0..AGENTS).map(|i| profile(i).id).collect());

fn conversation(i: usize) -> ConversationId {
    ConversationId::from(format!("conv{i:05}"))
}

/// Fills a router: every agent available, 1,600 sessions; returns the waiting conversations.
async fn fill(router: &dyn AgentRouter, now: SystemTime) -> Vec<ConversationId> {
    for i in 0..AGENTS {
        let p = profile(i);
        router.upsert_agent(&p).await.unwrap();
        router
            .update_presence(&p.id, Presence::Available)
            .await
            .unwrap();
    }
    let held = AGENTS * SESSIONS_PER_AGENT;
    for i in 0..held {
        router
            .session_started(&conversation(i), &AGENT_IDS[i % AGENTS], 1, now)
            .await
            .unwrap();
    }
    (held..CONVERSATIONS).map(conversation).collect()
}

/// One decision for waiting conversation `k`: reserve, then end the offer. Returns whether
/// an agent was chosen, and how long the decision alone took.
async fn decide(
    router: &dyn AgentRouter,
    queues: &[Queue],
    waiting: &[ConversationId],
    k: usize,
    now: SystemTime,
) -> (bool, Duration) {
    let c = &waiting[k % waiting.len()];
    let queue = &queues[k % QUEUES];
    // One agent declined it lately.
    let exclude = std::slice::from_ref(&AGENT_IDS[k % AGENTS]);
    let hold = Hold {
        at: now,
        until: now + Duration::from_secs(120),
    };
    let started = Instant::now();
    let chosen = router
        .reserve_offer(c, &OfferRequest::new(queue, exclude, None), hold)
        .await
        .unwrap();
    let took = started.elapsed();
    if let Some(agent) = &chosen {
        router
            .offer_ended(c, agent, Some(hold.until))
            .await
            .unwrap();
    }
    (chosen.is_some(), took)
}

/// Decisions per second in memory (each with its `offer_ended`).
fn memory_rate(runtime: &tokio::runtime::Runtime, decisions: usize) -> f64 {
    let router = InMemoryRouter::new();
    let queues = queues();
    let now = t0();
    runtime.block_on(async {
        let waiting = fill(&router, now).await;
        let started = Instant::now();
        let mut chosen = 0usize;
        for k in 0..decisions {
            chosen += usize::from(decide(&router, &queues, &waiting, k, now).await.0);
        }
        let elapsed = started.elapsed();
        assert!(
            chosen * 10 > decisions * 9,
            "nearly every decision finds an agent: {chosen}"
        );
        black_box(&router);
        f64::from(u32::try_from(decisions).unwrap()) / elapsed.as_secs_f64()
    })
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut criterion = Criterion::default().configure_from_args();
    {
        let router = InMemoryRouter::new();
        let queues = queues();
        let now = t0();
        let waiting = runtime.block_on(fill(&router, now));
        let mut group = criterion.benchmark_group("routing_memory");
        group.throughput(criterion::Throughput::Elements(1));
        let mut k = 0;
        group.bench_function(
            "reserve_offer_and_end_200_agents_10000_conversations",
            |b| {
                b.iter(|| {
                    k += 1;
                    runtime.block_on(decide(&router, &queues, &waiting, k, now))
                });
            },
        );
        group.finish();
    }
    criterion.final_summary();

    if std::env::args().any(|a| a == "--bench") {
        let mut rates: Vec<f64> = (0..5).map(|_| memory_rate(&runtime, 200_000)).collect();
        rates.sort_by(f64::total_cmp);
        let rate = rates[rates.len() / 2];
        println!(
            "\nrouting decisions/s in memory, {QUEUES} queues, {AGENTS} agents, {CONVERSATIONS} conversations, one core: {rate:>10.0}  target {MEMORY_TARGET:.0}: {}",
            if rate >= MEMORY_TARGET {
                "met"
            } else {
                "MISSED"
            }
        );
        postgres::run(&runtime);
    }
}

use criterion::Criterion;

#[cfg(feature = "postgres")]
mod postgres {
    use super::{
        AGENTS, AgentRouter, CONVERSATIONS, Duration, POSTGRES_TARGET, QUEUES, conversation_reads,
        decide, fill, queues, t0,
    };
    use messenger_channel::store::PostgresStore;

    const DB: &str = "mc_bench_routing";
    const DECISIONS: usize = 5_000;

    pub(super) fn run(runtime: &tokio::runtime::Runtime) {
        let url = match std::env::var("MESSENGER_CHANNEL_TEST_POSTGRES") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                println!("PostgreSQL: skipped (set MESSENGER_CHANNEL_TEST_POSTGRES)");
                return;
            }
        };
        runtime.block_on(async {
            let admin = sqlx::PgPool::connect(&url).await.unwrap();
            for sql in [
                format!("DROP DATABASE IF EXISTS {DB}"),
                format!("CREATE DATABASE {DB}"),
            ] {
                sqlx::query(&sql).execute(&admin).await.unwrap();
            }
            let base = url.rsplit_once('/').expect("a database in the URL").0;
            let store = PostgresStore::connect(&format!("{base}/{DB}"))
                .await
                .unwrap();
            let router: &dyn AgentRouter = &store;
            let queues = queues();
            let now = t0();
            let waiting = fill(router, now).await;
            // Warm the connections and the plans.
            for k in 0..200 {
                decide(router, &queues, &waiting, k, now).await;
            }
            let mut times = Vec::with_capacity(DECISIONS);
            let mut chosen = 0usize;
            let started = std::time::Instant::now();
            for k in 0..DECISIONS {
                let (yes, took) = decide(router, &queues, &waiting, k, now).await;
                chosen += usize::from(yes);
                times.push(took);
            }
            let elapsed = started.elapsed();
            assert!(chosen * 10 > DECISIONS * 9, "nearly every decision finds an agent: {chosen}");
            times.sort();
            // The smallest time at least `per_mille` of the decisions took no longer than.
            let at = |per_mille: usize| {
                let i = (times.len() * per_mille).div_ceil(1000);
                times[i.clamp(1, times.len()) - 1]
            };
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            let p99 = at(990);
            println!(
                "routing on PostgreSQL, {QUEUES} queues, {AGENTS} agents, {CONVERSATIONS} conversations, one core: {:.0} decisions/s (with their offer_ended); reserve_offer p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; whole decision (about ten statements) p99 under {} ms: {}",
                f64::from(u32::try_from(DECISIONS).unwrap()) / elapsed.as_secs_f64(),
                ms(at(500)),
                ms(p99),
                ms(at(1000)),
                POSTGRES_TARGET.as_millis(),
                if p99 <= POSTGRES_TARGET { "met" } else { "MISSED" }
            );
            // The heaviest of a decision's queries alone: every agent with their units in use
            // (the decision reads the available ones the same way).
            let mut reads = Vec::with_capacity(1000);
            for _ in 0..1000 {
                let started = std::time::Instant::now();
                let all = router.agent_statuses(now).await.unwrap();
                reads.push(started.elapsed());
                assert_eq!(all.len(), AGENTS);
            }
            reads.sort();
            let at_read = |per_mille: usize| {
                let i = (reads.len() * per_mille).div_ceil(1000);
                reads[i.clamp(1, reads.len()) - 1]
            };
            println!(
                "PostgreSQL, the agents' read alone (200 agents, units in use over 1,600 sessions): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; under {} ms: {}",
                ms(at_read(500)),
                ms(at_read(990)),
                ms(at_read(1000)),
                POSTGRES_TARGET.as_millis(),
                if at_read(990) <= POSTGRES_TARGET { "met" } else { "MISSED" }
            );
            conversation_reads(&store, &queues).await;
            store.pool().close().await;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
        });
    }
}

/// The milliseconds of the median, the 99th percentile and the longest of `times`.
#[cfg(feature = "postgres")]
fn percentiles(mut times: Vec<Duration>) -> (f64, f64, f64) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    times.sort();
    let at = |per_mille: usize| {
        let i = (times.len() * per_mille).div_ceil(1000);
        times[i.clamp(1, times.len()) - 1]
    };
    (ms(at(500)), ms(at(990)), ms(at(1000)))
}

/// Fills the store with the 10,000 conversations (1,600 held by agents, 8,400 waiting, over
/// the ten queues), then gathers the table's statistics.
#[cfg(feature = "postgres")]
async fn fill_conversations(store: &messenger_channel::store::PostgresStore, queues: &[Queue]) {
    use messenger_channel::conversation::{
        Conversation, ConversationConfig, Inbound, Input, LineBody,
    };
    use messenger_channel::ids::{PageId, UserId};
    use messenger_channel::store::{Commit, ConversationStore};

    let config = ConversationConfig::default();
    let now = t0();
    let held = AGENTS * SESSIONS_PER_AGENT;
    for i in 0..CONVERSATIONS {
        let (mut c, _) = Conversation::start_in_queue(
            Some(queues[i % QUEUES].id.clone()),
            conversation(i),
            PageId::from("104987654321098").into_owned(),
            UserId::from(format!("psid{i:05}")).into_owned(),
            Inbound::new(
                Some(format!("m{i}")),
                vec![LineBody::Text(
                    "Hello, I have a question about my order".into(),
                )],
            ),
            now,
            &config,
        );
        if i < held {
            let agent = AGENT_IDS[i % AGENTS].clone();
            c.apply(Input::OfferTo(agent.clone()), now, &config)
                .unwrap();
            c.apply(Input::Accept(agent), now, &config).unwrap();
        }
        store
            .commit(&Commit {
                conversation: c,
                expected_version: None,
                transcript: Vec::new(),
                effects: Vec::new(),
                deadline: None,
                applies: None,
                at: now,
                claim: None,
            })
            .await
            .unwrap();
    }
    // The table's statistics, as autovacuum gathers them within a minute of such a fill (a
    // database in service has them; without them the planner may count a queue's places on
    // another partial index of waiting conversations, row by row).
    sqlx::query("ANALYZE conversations")
        .execute(store.pool())
        .await
        .unwrap();
}

/// The reads that grow with the open conversations, once the store holds them all (1,600
/// active, 8,400 waiting, over the ten queues): a queue's open work (Pick's list), a
/// customer's place in a queue, every waiting conversation, a tick's page of them, every open
/// one (a supervisor's overview), and a whole tick. Not routing decisions, but what routing
/// reads around them.
#[cfg(feature = "postgres")]
async fn conversation_reads(store: &messenger_channel::store::PostgresStore, queues: &[Queue]) {
    use messenger_channel::store::ConversationStore;

    fill_conversations(store, queues).await;
    let held = AGENTS * SESSIONS_PER_AGENT;
    let mut queue_reads = Vec::new();
    for k in 0..200 {
        let started = std::time::Instant::now();
        let page = store
            .list_queue(Some(&queues[k % QUEUES].id), 500)
            .await
            .unwrap();
        queue_reads.push(started.elapsed());
        assert_eq!(page.len(), 500);
    }
    let (p50, p99, max) = percentiles(queue_reads);
    println!(
        "PostgreSQL, one queue's open work (500 of 840 waiting, with their bodies): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );
    places_and_pages(store, queues).await;
    let mut waiting_reads = Vec::new();
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let all = store.list_queued().await.unwrap();
        waiting_reads.push(started.elapsed());
        assert_eq!(all.len(), CONVERSATIONS - held);
    }
    let (p50, p99, max) = percentiles(waiting_reads);
    println!(
        "PostgreSQL, every waiting conversation (list_queued, 8,400 with their bodies): p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"
    );
    let mut open_reads = Vec::new();
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let all = store.list_open().await.unwrap();
        open_reads.push(started.elapsed());
        assert_eq!(all.len(), CONVERSATIONS);
    }
    let (p50, p99, max) = percentiles(open_reads);
    println!(
        "PostgreSQL, every open conversation (a supervisor's overview, 10,000 with their bodies): p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"
    );
    let (p50, p99, max) = percentiles(one_agent_ticks(store, queues).await);
    println!(
        "PostgreSQL, a whole tick when one agent has room for one conversation and 8,400 wait (reads the agents and the waiting conversations it needs, offers one): p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms"
    );
}

/// A customer's place in the queue ("position in queue"): the last of a queue's 840, as
/// counted by the store, and as the engine read it before (the whole queue with bodies); and
/// a tick's page of the waiting conversations, from the first and from half-way (keyset: no
/// offset).
#[cfg(feature = "postgres")]
async fn places_and_pages(store: &messenger_channel::store::PostgresStore, queues: &[Queue]) {
    use messenger_channel::engine::QUEUED_PAGE;
    use messenger_channel::store::{ConversationStore, QueuePlace};

    let held = AGENTS * SESSIONS_PER_AGENT;
    let last = store
        .list_queue(Some(&queues[0].id), usize::MAX)
        .await
        .unwrap()
        .pop()
        .unwrap();
    let place = QueuePlace::of(&last.conversation);
    let mut counts = Vec::new();
    let mut whole = Vec::new();
    for _ in 0..200 {
        let started = std::time::Instant::now();
        let ahead = store
            .queued_ahead(Some(&queues[0].id), &place)
            .await
            .unwrap();
        counts.push(started.elapsed());
        assert_eq!(ahead, 839);
    }
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let all = store
            .list_queue(Some(&queues[0].id), usize::MAX)
            .await
            .unwrap();
        whole.push(started.elapsed());
        assert_eq!(all.len(), 840);
    }
    let (p50, p99, max) = percentiles(counts);
    let (whole_p50, whole_p99, _) = percentiles(whole);
    println!(
        "PostgreSQL, a customer's place in a queue of 840 (queued_ahead, counted on the index): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms; by reading the whole queue with bodies: p50 {whole_p50:.2} ms, p99 {whole_p99:.2} ms"
    );
    let half = store
        .list_queued_after(None, (CONVERSATIONS - held) / 2)
        .await
        .unwrap();
    let middle = QueuePlace::of(&half.last().unwrap().conversation);
    let mut page_reads = Vec::new();
    for k in 0..200 {
        let after = (k % 2 == 1).then_some(&middle);
        let started = std::time::Instant::now();
        let page = store.list_queued_after(after, QUEUED_PAGE).await.unwrap();
        page_reads.push(started.elapsed());
        assert_eq!(page.len(), QUEUED_PAGE);
    }
    let (p50, p99, max) = percentiles(page_reads);
    println!(
        "PostgreSQL, a tick's page of waiting conversations ({QUEUED_PAGE} of 8,400 with their bodies, from the first or half-way): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms"
    );
}

/// Ticks of an engine on the filled store when one agent alone is available, with room for
/// one conversation: each offers the agent one waiting conversation; the agent declines it
/// (not timed), which frees the room for the next tick.
#[cfg(feature = "postgres")]
async fn one_agent_ticks(
    store: &messenger_channel::store::PostgresStore,
    queues: &[Queue],
) -> Vec<Duration> {
    use std::sync::Arc;

    use messenger_channel::conversation::State;
    use messenger_channel::engine::Engine;
    use messenger_channel::routing::Routing;
    use messenger_channel::secret::AppSecret;
    use messenger_channel::store::ConversationStore;
    use messenger_channel::testing::FakeSend;
    use messenger_channel::webhook::Webhook;

    const TICKS: usize = 20;
    let now = t0() + Duration::from_secs(1);
    let router: &dyn AgentRouter = store;
    // Everyone signs out but agent 0, who takes one more session: 9 of 10 units.
    for agent in &AGENT_IDS[1..] {
        router
            .update_presence(agent, Presence::Offline)
            .await
            .unwrap();
    }
    let one = &AGENT_IDS[0];
    router
        .session_started(&ConversationId::from("elsewhere"), one, 1, now)
        .await
        .unwrap();
    let routing = queues[1..]
        .iter()
        .fold(Routing::new(queues[0].clone()), |r, q| {
            r.add_queue(q.clone())
        });
    let shared = Arc::new(store.clone());
    let engine = Engine::builder(
        Webhook::new(&AppSecret::new("routing-bench").unwrap()),
        Arc::new(FakeSend::new()),
    )
    .store(shared.clone())
    .router(shared)
    .routing(routing)
    .build();
    engine.tick(now).await.unwrap();
    let offered = |store: &messenger_channel::store::PostgresStore| {
        let store = store.clone();
        async move {
            store
                .list_for_agent(one)
                .await
                .unwrap()
                .into_iter()
                .find(|s| matches!(s.conversation.state(), State::Open { offer: Some(_) }))
                .map(|s| s.conversation.id().clone())
        }
    };
    // The warm-up tick's offer, declined.
    let first = offered(store)
        .await
        .expect("the tick offered a conversation");
    engine.reject(&first, one, now).await.unwrap();
    let mut ticks = Vec::with_capacity(TICKS);
    for _ in 0..TICKS {
        let started = Instant::now();
        engine.tick(now).await.unwrap();
        ticks.push(started.elapsed());
        let id = offered(store)
            .await
            .expect("each tick offers one conversation");
        engine.reject(&id, one, now).await.unwrap();
    }
    ticks
}

#[cfg(not(feature = "postgres"))]
mod postgres {
    pub(super) fn run(_: &tokio::runtime::Runtime) {
        println!("PostgreSQL: skipped (build with --features postgres)");
    }
}
