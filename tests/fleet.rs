//! A fleet: two engines on one PostgreSQL database, each with its own agents connected. An
//! offer made by either instance reaches the agent's instance through `LISTEN`/`NOTIFY`
//! (`agents::fleet`), and every countdown (offer expiry, auto-close, inactivity) fires once
//! although both instances tick at the same moments. A transfer made on one instance reaches
//! the target agent's instance as a transfer, and a consult invitation reaches the consulted
//! agent's instance, once.
//!
//! Needs `MESSENGER_CHANNEL_TEST_POSTGRES` (skipped without it); each run gets a fresh
//! database. Time is injected: the engines run on the test's `now`. Notifications travel
//! through the server, so the test waits for them, on a condition, with a generous deadline;
//! to know that nothing more is coming it sends a fence notification after the work, and
//! waits for it: the server delivers one channel's notifications in the order they were
//! committed.
#![cfg(feature = "postgres")]

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use messenger_channel::agents::fleet::{FleetChannel, FleetListener, PostgresNotifier};
use messenger_channel::agents::{AgentNotifier, AgentRouter, Notification, Presence};
use messenger_channel::conversation::{
    CloseReason, Conversation, ConversationConfig, Offer, State, StateKind, TranscriptLine,
    Transfer, TransferTarget,
};
use messenger_channel::engine::Engine;
use messenger_channel::ids::{AgentId, ConversationId, PageId, UserId};
use messenger_channel::store::{ConversationStore, PostgresStore};
use messenger_channel::testing::{FakeSend, WebhookBody, t0};
use messenger_channel::webhook::Webhook;
use support::channel::{PAGE, secret, signed, webhook};

const OFFER_TIMEOUT: Duration = Duration::from_secs(60);
const AUTO_CLOSE: Duration = Duration::from_secs(3600);
const INACTIVITY: Duration = Duration::from_secs(1800);
/// The agent of fence notifications: every instance's notifier keeps them.
const FENCE: &str = "~fence";
/// The conversation fences are withdrawn from: closed, committed straight to the store (no
/// instance notifies of it), so that listeners, which check a withdrawal against the store,
/// pass fences on.
const FENCE_CONVERSATION: &str = "~fence-conversation";
/// How long a notification may take, at most, on a loaded machine.
const DEADLINE: Duration = Duration::from_secs(60);

fn secs(n: u64) -> SystemTime {
    t0() + Duration::from_secs(n)
}

fn agent(name: &str) -> AgentId {
    AgentId::from(name)
}

/// One instance's desk: what its connected agents were told, as a desk's socket hub would
/// (offers, withdrawals and consults for its own agents; every update; resyncs).
struct Connected {
    agents: BTreeSet<AgentId>,
    log: Mutex<Vec<Notification>>,
    /// The transfer each offer told of came with ([`Conversation::transfer`]), in the order
    /// of the offers in `log`.
    transfers: Mutex<Vec<Option<Transfer>>>,
}

impl Connected {
    fn new(agents: &[&str]) -> Arc<Self> {
        let mut set: BTreeSet<AgentId> = agents.iter().map(|a| agent(a)).collect();
        set.insert(agent(FENCE));
        Arc::new(Self {
            agents: set,
            log: Mutex::new(Vec::new()),
            transfers: Mutex::new(Vec::new()),
        })
    }

    fn push(&self, n: Notification) {
        self.log.lock().unwrap().push(n);
    }

    fn all(&self) -> Vec<Notification> {
        self.log.lock().unwrap().clone()
    }

    /// The offers told: (conversation, agent).
    fn offers(&self) -> Vec<(ConversationId, AgentId)> {
        self.all()
            .into_iter()
            .filter_map(|n| match n {
                Notification::Offer {
                    conversation,
                    offer,
                } => Some((conversation, offer.agent)),
                _ => None,
            })
            .collect()
    }

    /// The offers told, with the transfer each came with: (conversation, agent, transfer).
    fn offered_transfers(&self) -> Vec<(ConversationId, AgentId, Option<Transfer>)> {
        self.offers()
            .into_iter()
            .zip(self.transfers.lock().unwrap().iter().cloned())
            .map(|((c, a), t)| (c, a, t))
            .collect()
    }

    /// The consults told: (conversation, agent invited).
    fn consults(&self) -> Vec<(ConversationId, AgentId)> {
        self.all()
            .into_iter()
            .filter_map(|n| match n {
                Notification::Consult {
                    conversation,
                    agent,
                } => Some((conversation, agent)),
                _ => None,
            })
            .collect()
    }

    /// The withdrawals told, fences left out.
    fn withdrawals(&self) -> Vec<(ConversationId, AgentId)> {
        self.all()
            .into_iter()
            .filter_map(|n| match n {
                Notification::Withdraw {
                    conversation,
                    agent,
                } if !agent.as_str().starts_with(FENCE) => Some((conversation, agent)),
                _ => None,
            })
            .collect()
    }

    /// The presences told: (agent, presence).
    fn presences(&self) -> Vec<(AgentId, Presence)> {
        self.all()
            .into_iter()
            .filter_map(|n| match n {
                Notification::Presence { agent, presence } => Some((agent, presence)),
                _ => None,
            })
            .collect()
    }

    /// The updates told of `id` in state `state`.
    fn updates_in(&self, id: &ConversationId, state: StateKind) -> usize {
        self.all()
            .iter()
            .filter(|n| {
                matches!(n, Notification::Updated { conversation, state: s, .. }
                    if conversation == id && *s == state)
            })
            .count()
    }

    fn resyncs(&self) -> usize {
        self.all()
            .iter()
            .filter(|n| matches!(n, Notification::Resynced))
            .count()
    }

    fn has_fence(&self, name: &str) -> bool {
        let fence = fence_agent(name);
        self.all().iter().any(|n| {
            matches!(n, Notification::Withdraw { conversation, agent }
                if conversation.as_str() == FENCE_CONVERSATION && *agent == fence)
        })
    }

    fn clear(&self) {
        self.log.lock().unwrap().clear();
        self.transfers.lock().unwrap().clear();
    }
}

#[async_trait::async_trait]
impl AgentNotifier for Connected {
    async fn offer(&self, conversation: &Conversation, offer: &Offer) {
        if self.agents.contains(&offer.agent) {
            let mut log = self.log.lock().unwrap();
            log.push(Notification::Offer {
                conversation: conversation.id().clone(),
                offer: offer.clone(),
            });
            self.transfers
                .lock()
                .unwrap()
                .push(conversation.transfer().cloned());
        }
    }

    async fn withdraw(&self, conversation: &ConversationId, agent: &AgentId) {
        if self.agents.contains(agent) || agent.as_str().starts_with(FENCE) {
            self.push(Notification::Withdraw {
                conversation: conversation.clone(),
                agent: agent.clone(),
            });
        }
    }

    async fn updated(&self, conversation: &Conversation, lines: &[TranscriptLine]) {
        self.push(Notification::Updated {
            conversation: conversation.id().clone(),
            state: conversation.state().kind(),
            lines: lines.to_vec(),
        });
    }

    async fn consult(&self, conversation: &Conversation, agent: &AgentId) {
        if self.agents.contains(agent) {
            self.push(Notification::Consult {
                conversation: conversation.id().clone(),
                agent: agent.clone(),
            });
        }
    }

    async fn presence(&self, agent: &AgentId, presence: Presence) {
        if self.agents.contains(agent) {
            self.push(Notification::Presence {
                agent: agent.clone(),
                presence,
            });
        }
    }

    async fn resynced(&self) {
        self.push(Notification::Resynced);
    }
}

/// One instance: its engine on its own pool, its listener, its desk.
struct Instance {
    engine: Arc<Engine>,
    store: Arc<PostgresStore>,
    desk: Arc<Connected>,
    notifier: PostgresNotifier,
    listener: Option<FleetListener>,
}

impl Instance {
    async fn start(url: &str, name: &str, channel: &FleetChannel, agents: &[&str]) -> Self {
        let config = ConversationConfig::default()
            .offer_timeout(OFFER_TIMEOUT)
            .reoffer_interval(Duration::from_secs(24 * 3600))
            .auto_close_open_active(AUTO_CLOSE)
            .waiting_inactivity(INACTIVITY);
        Self::start_with(url, name, channel, agents, config).await
    }

    async fn start_with(
        url: &str,
        name: &str,
        channel: &FleetChannel,
        agents: &[&str],
        config: ConversationConfig,
    ) -> Self {
        let store = Arc::new(PostgresStore::connect(url).await.unwrap());
        let desk = Connected::new(agents);
        let listener = FleetListener::start(
            store.pool().clone(),
            channel.clone(),
            store.clone(),
            store.clone(),
            desk.clone(),
        )
        .await
        .unwrap();
        let notifier = PostgresNotifier::new(store.pool().clone(), channel.clone());
        let engine = Engine::builder(Webhook::new(&secret()), Arc::new(FakeSend::new()))
            .store(store.clone())
            .router(store.clone())
            .notifier(Arc::new(notifier.clone()))
            .config(config)
            .instance(name)
            .build();
        Self {
            engine: Arc::new(engine),
            store,
            desk,
            notifier,
            listener: Some(listener),
        }
    }

    async fn receive(&self, body: WebhookBody, at: SystemTime) {
        let (h, b) = signed(body);
        let report = self.engine.handle_webhook(&h, &b, at).await.unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
    }

    async fn conversation_of(&self, customer: &str) -> Conversation {
        self.store
            .find_latest(
                &PageId::new(PAGE.to_owned()),
                &UserId::new(customer.to_owned()),
            )
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no conversation for {customer}"))
            .conversation
    }
}

/// Waits until `done` holds, failing after [`DEADLINE`].
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The agent a fence named `name` is withdrawn from.
fn fence_agent(name: &str) -> AgentId {
    agent(&format!("{FENCE}-{name}"))
}

/// Commits the closed conversation fences are withdrawn from, without notifying.
async fn fence_conversation(store: &PostgresStore) {
    use messenger_channel::conversation::{Inbound, Input, LineBody};
    use messenger_channel::store::Commit;
    let config = ConversationConfig::default();
    let (mut c, _) = Conversation::start(
        ConversationId::from(FENCE_CONVERSATION),
        PageId::from(PAGE).into_owned(),
        UserId::from("~fence-customer").into_owned(),
        Inbound::new(None, vec![LineBody::Text("fence".into())]),
        t0(),
        &config,
    );
    let force = Input::ForceClose {
        supervisor: agent("~fence-supervisor"),
    };
    c.apply(force, t0(), &config).unwrap();
    assert!(matches!(c.state(), State::Closed { .. }));
    store
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

/// Sends a fence from `from` and waits until every instance has heard it: whatever was
/// notified before it has been handed to every desk.
async fn fence(from: &Instance, all: &[&Instance], name: &str) {
    from.notifier
        .withdraw(
            &ConversationId::from(FENCE_CONVERSATION),
            &fence_agent(name),
        )
        .await;
    for i in all {
        wait_until(name, || i.desk.has_fence(name)).await;
    }
}

/// Ticks both instances at `now`, at once.
async fn tick_both(a: &Instance, b: &Instance, now: SystemTime) {
    let (x, y) = tokio::join!(a.engine.tick(now), b.engine.tick(now));
    x.unwrap();
    y.unwrap();
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(clippy::too_many_lines)] // one script, read top to bottom
async fn offers_reach_the_agents_instance_and_countdowns_fire_once() {
    let Some(url) = support::postgres::postgres_url() else {
        return;
    };
    let url = support::postgres::fresh_postgres_database(&url, "mc_fleet").await;
    let channel = FleetChannel::new("mc_fleet_test").unwrap();
    // ada is connected to instance a, bob to instance b.
    let a = Instance::start(&url, "fleet-a", &channel, &["ada"]).await;
    let b = Instance::start(&url, "fleet-b", &channel, &["bob"]).await;
    let both = [&a, &b];
    fence_conversation(&a.store).await;

    // Only bob is available: a conversation that starts on a is offered to him, and b's
    // desk (where he is) shows it; a's shows no offer.
    a.store
        .update_presence(&agent("bob"), Presence::Available)
        .await
        .unwrap();
    a.receive(webhook().message("c1", "m1", "Hello", secs(1)), secs(1))
        .await;
    let c1 = a.conversation_of("c1").await;
    assert!(
        matches!(c1.state(), State::Open { offer: Some(o) } if o.agent == agent("bob")),
        "{:?}",
        c1.state()
    );
    fence(&a, &both, "f1").await;
    assert_eq!(b.desk.offers(), [(c1.id().clone(), agent("bob"))]);
    assert_eq!(a.desk.offers(), []);
    // Any database user can notify: a forged withdrawal of the offer still outstanding, or
    // of a conversation that does not exist, is checked against the store and not passed on.
    let forged_withdrawal = format!(
        r#"{{"v":1,"kind":"withdraw","conversation":"{}","agent":"bob"}}"#,
        c1.id().as_str()
    );
    for payload in [
        forged_withdrawal.as_str(),
        r#"{"v":1,"kind":"withdraw","conversation":"nope","agent":"bob"}"#,
    ] {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel.as_str())
            .bind(payload)
            .execute(a.store.pool())
            .await
            .unwrap();
    }
    fence(&a, &both, "f1-forged").await;
    assert_eq!(b.desk.withdrawals(), [], "the offer is still outstanding");
    // Both desks were told of the new conversation (its first line, read back from the
    // store), once each.
    for i in both {
        let lines: Vec<_> = i
            .desk
            .all()
            .into_iter()
            .filter_map(|n| match n {
                Notification::Updated {
                    conversation,
                    lines,
                    ..
                } if conversation == *c1.id() => Some(lines),
                _ => None,
            })
            .flatten()
            .collect();
        let transcript = a.store.transcript(c1.id()).await.unwrap();
        assert_eq!(lines, transcript, "each line once, as stored");
    }
    a.desk.clear();
    b.desk.clear();

    // Now ada too; a conversation that starts on b goes to ada (bob has one on offer), and
    // reaches a's desk.
    b.store
        .update_presence(&agent("ada"), Presence::Available)
        .await
        .unwrap();
    b.receive(webhook().message("c2", "m2", "Hi", secs(2)), secs(2))
        .await;
    let c2 = b.conversation_of("c2").await;
    let c2_agent = match c2.state() {
        State::Open { offer: Some(o) } => o.agent.clone(),
        other => panic!("{other:?}"),
    };
    fence(&b, &both, "f2").await;
    let (here, there) = if c2_agent == agent("ada") {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(here.desk.offers(), [(c2.id().clone(), c2_agent.clone())]);
    assert_eq!(there.desk.offers(), []);
    a.desk.clear();
    b.desk.clear();

    // More conversations, so that the ticks below have several countdowns due at once.
    for (i, customer) in ["c3", "c4", "c5", "c6"].iter().enumerate() {
        let at = secs(3 + i as u64);
        let on = if i % 2 == 0 { &a } else { &b };
        on.receive(
            webhook().message(customer, &format!("m{customer}"), "Hey", at),
            at,
        )
        .await;
    }
    fence(&a, &both, "f3").await;
    // Every open conversation's outstanding offer, as stored.
    let mut offered = Vec::new();
    for customer in ["c1", "c2", "c3", "c4", "c5", "c6"] {
        let c = a.conversation_of(customer).await;
        if let State::Open { offer: Some(o) } = c.state() {
            offered.push((c.id().clone(), o.agent.clone()));
        }
    }
    assert!(offered.len() >= 2, "{offered:?}");
    a.desk.clear();
    b.desk.clear();

    // Every offer lapses; both instances tick at the same moment. Each lapsed offer is
    // withdrawn once, on the desk of its agent's instance, and never on the other.
    tick_both(&a, &b, secs(2) + OFFER_TIMEOUT + Duration::from_secs(10)).await;
    tick_both(&a, &b, secs(2) + OFFER_TIMEOUT + Duration::from_secs(11)).await;
    fence(&b, &both, "f4").await;
    let expected_a: Vec<_> = offered
        .iter()
        .filter(|(_, who)| *who == agent("ada"))
        .cloned()
        .collect();
    let expected_b: Vec<_> = offered
        .iter()
        .filter(|(_, who)| *who == agent("bob"))
        .cloned()
        .collect();
    assert_eq!(sorted(a.desk.withdrawals()), sorted(expected_a));
    assert_eq!(sorted(b.desk.withdrawals()), sorted(expected_b));
    // Each goes to the other agent (the re-offer interval keeps it from the first), offered
    // once, on the other instance; the conversation holds that one offer.
    let mut reoffers = Vec::new();
    for (c, who) in &offered {
        let now = a.store.load(c).await.unwrap().unwrap().conversation;
        let State::Open { offer: Some(o) } = now.state() else {
            panic!("{:?}", now.state())
        };
        assert_ne!(&o.agent, who, "not to the agent who let it lapse");
        reoffers.push((c.clone(), o.agent.clone()));
    }
    let told: Vec<_> = a.desk.offers().into_iter().chain(b.desk.offers()).collect();
    assert_eq!(
        sorted(told),
        sorted(reoffers.clone()),
        "each offer told once"
    );
    a.desk.clear();
    b.desk.clear();

    // ada takes c1 (on b); bob's offers lapse once more and, with nobody left, wait.
    let c1_now = a.store.load(c1.id()).await.unwrap().unwrap().conversation;
    let c1_agent = match c1_now.state() {
        State::Open { offer: Some(o) } => o.agent.clone(),
        other => panic!("{other:?}"),
    };
    let t_accept = secs(2) + OFFER_TIMEOUT + Duration::from_secs(20);
    b.engine.accept(c1.id(), &c1_agent, t_accept).await.unwrap();
    // The other reoffered conversation is taken, then its session closed (Waiting).
    let (c_wait, wait_agent) = reoffers
        .iter()
        .find(|(c, _)| c != c1.id())
        .cloned()
        .unwrap();
    a.engine
        .accept(&c_wait, &wait_agent, t_accept)
        .await
        .unwrap();
    a.engine
        .close_session(&c_wait, &wait_agent, t_accept)
        .await
        .unwrap();
    fence(&a, &both, "f5").await;
    a.desk.clear();
    b.desk.clear();

    // Inactivity: the Waiting conversation closes once, although both instances tick; the
    // offers still outstanding lapse, each withdrawn once, and wait (nobody else is left).
    tick_both(&a, &b, t_accept + INACTIVITY + Duration::from_secs(1)).await;
    tick_both(&a, &b, t_accept + INACTIVITY + Duration::from_secs(2)).await;
    fence(&a, &both, "f6").await;
    let still: Vec<_> = reoffers
        .iter()
        .filter(|(c, _)| c != c1.id() && *c != c_wait)
        .cloned()
        .collect();
    for (i, name) in [(&a, "ada"), (&b, "bob")] {
        let mine: Vec<_> = still
            .iter()
            .filter(|(_, who)| *who == agent(name))
            .cloned()
            .collect();
        assert_eq!(sorted(i.desk.withdrawals()), sorted(mine));
        assert_eq!(i.desk.offers(), []);
    }
    let waited = a.store.load(&c_wait).await.unwrap().unwrap().conversation;
    assert_eq!(
        waited.state(),
        &State::Closed {
            reason: CloseReason::Inactivity
        }
    );
    for i in both {
        assert_eq!(i.desk.updates_in(&c_wait, StateKind::Closed), 1);
    }

    // Auto-close: the Active conversation closes once.
    tick_both(&a, &b, t_accept + AUTO_CLOSE + Duration::from_secs(1)).await;
    tick_both(&a, &b, t_accept + AUTO_CLOSE + Duration::from_secs(2)).await;
    fence(&b, &both, "f7").await;
    let closed = a.store.load(c1.id()).await.unwrap().unwrap().conversation;
    assert_eq!(
        closed.state(),
        &State::Closed {
            reason: CloseReason::AutoClose
        }
    );
    for i in both {
        assert_eq!(i.desk.updates_in(c1.id(), StateKind::Closed), 1);
        assert_eq!(
            i.desk.updates_in(&c_wait, StateKind::Closed),
            1,
            "closed once, not again"
        );
    }

    // Payloads that are not ours, or name no conversation, are skipped; the listeners go on.
    // Any database user can notify: forged offers and consults for a real conversation (c1,
    // closed, offered to nobody, consulted by nobody) are checked against the store.
    let before: Vec<usize> = both.iter().map(|i| i.desk.all().len()).collect();
    let forged_offer = format!(
        r#"{{"v":1,"kind":"offer","conversation":"{}","agent":"ada","expires_ms":1}}"#,
        c1.id().as_str()
    );
    let forged_consult = format!(
        r#"{{"v":1,"kind":"consult","conversation":"{}","agent":"bob"}}"#,
        c1.id().as_str()
    );
    for payload in [
        "{not json",
        r#"{"v":1,"kind":"offer","conversation":"nope","agent":"ada","expires_ms":1}"#,
        r#"{"v":9,"kind":"withdraw","conversation":"c","agent":"ada"}"#,
        forged_offer.as_str(),
        forged_consult.as_str(),
    ] {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel.as_str())
            .bind(payload)
            .execute(a.store.pool())
            .await
            .unwrap();
    }
    fence(&a, &both, "f7b").await;
    let after: Vec<usize> = both.iter().map(|i| i.desk.all().len()).collect();
    assert_eq!(after, [before[0] + 1, before[1] + 1], "the fence only");

    // A listener's connection drops: it listens again, says notifications may have been
    // missed, and hears what follows.
    assert_eq!(a.desk.resyncs() + b.desk.resyncs(), 0);
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let killed: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(killed.len(), 2, "one listener per instance");
    for i in both {
        wait_until("a resync", || i.desk.resyncs() >= 1).await;
    }
    fence(&b, &both, "f8").await;
    for i in both {
        assert_eq!(i.desk.resyncs(), 1);
    }
    admin.close().await;

    for mut i in [a, b] {
        i.listener.take().unwrap().stop().await;
    }
}

/// A transfer and a consult across instances: ada, on instance a, holds a conversation and
/// transfers it to bob, connected to b; bob's desk gets the transfer notification (the
/// offer, with the transfer), a's desk nothing. bob accepts on b, then consults ada: a's
/// desk gets the invitation, once; b's nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[allow(clippy::too_many_lines)] // one script, read top to bottom
async fn transfers_and_consults_reach_the_agents_instance() {
    let Some(url) = support::postgres::postgres_url() else {
        return;
    };
    let url = support::postgres::fresh_postgres_database(&url, "mc_fleet_transfer").await;
    let channel = FleetChannel::new("mc_fleet_transfer_test").unwrap();
    let a = Instance::start(&url, "fleet-a", &channel, &["ada"]).await;
    let b = Instance::start(&url, "fleet-b", &channel, &["bob"]).await;
    let both = [&a, &b];
    fence_conversation(&a.store).await;

    // Only ada is available: c1, arriving on b, is offered to her (on a's desk); she takes
    // it on a.
    b.store
        .update_presence(&agent("ada"), Presence::Available)
        .await
        .unwrap();
    b.receive(webhook().message("c1", "m1", "Hello", secs(1)), secs(1))
        .await;
    let c1 = a.conversation_of("c1").await;
    fence(&b, &both, "t1").await;
    assert_eq!(a.desk.offers(), [(c1.id().clone(), agent("ada"))]);
    assert_eq!(a.desk.offered_transfers()[0].2, None, "not a transfer");
    assert_eq!(b.desk.offers(), []);
    a.engine
        .accept(c1.id(), &agent("ada"), secs(2))
        .await
        .unwrap();
    a.store
        .update_presence(&agent("bob"), Presence::Available)
        .await
        .unwrap();
    fence(&a, &both, "t2").await;
    a.desk.clear();
    b.desk.clear();

    // ada transfers it to bob, on a: b's desk gets the offer with the transfer; a's none.
    a.engine
        .transfer_to_agent(
            c1.id(),
            &agent("ada"),
            &agent("bob"),
            Some("wants a refund"),
            secs(3),
        )
        .await
        .unwrap();
    fence(&a, &both, "t3").await;
    let told = b.desk.offered_transfers();
    assert_eq!(told.len(), 1, "{told:?}");
    let (conversation, to, transfer) = &told[0];
    assert_eq!((conversation, to), (c1.id(), &agent("bob")));
    let transfer = transfer.as_ref().expect("told as a transfer");
    assert_eq!(transfer.from, agent("ada"));
    assert_eq!(transfer.to, TransferTarget::Agent(agent("bob")));
    assert_eq!(transfer.note.as_deref(), Some("wants a refund"));
    assert_eq!(a.desk.offers(), []);
    assert_eq!(b.desk.consults(), []);

    // bob accepts on b.
    b.engine
        .accept(c1.id(), &agent("bob"), secs(4))
        .await
        .unwrap();
    let taken = b.conversation_of("c1").await;
    assert_eq!(
        taken.state(),
        &State::Active {
            agent: agent("bob")
        }
    );
    assert!(taken.transfer().is_none());
    fence(&b, &both, "t4").await;
    for i in both {
        assert_eq!(
            i.desk.withdrawals(),
            [],
            "an accepted offer is not withdrawn"
        );
        assert_eq!(i.desk.updates_in(c1.id(), StateKind::Active), 1);
    }
    a.desk.clear();
    b.desk.clear();

    // bob consults ada, on b: a's desk gets the invitation once; b's none.
    b.engine
        .consult(c1.id(), &agent("bob"), &agent("ada"), secs(5))
        .await
        .unwrap();
    fence(&b, &both, "t5").await;
    assert_eq!(a.desk.consults(), [(c1.id().clone(), agent("ada"))]);
    assert_eq!(b.desk.consults(), []);
    for i in both {
        assert_eq!(i.desk.offers(), []);
    }
    // ada, consulted, writes a note on a; bob's instance hears of it.
    a.engine
        .add_note(c1.id(), &agent("ada"), "ask for the order number", secs(6))
        .await
        .unwrap();
    fence(&a, &both, "t6").await;
    assert_eq!(a.desk.consults().len(), 1, "still once");
    assert_eq!(b.desk.updates_in(c1.id(), StateKind::Active), 2);

    for mut i in [a, b] {
        i.listener.take().unwrap().stop().await;
    }
}

/// A presence the engine sets after a missed offer reaches the agent's instance: bob,
/// connected to b, lets an offer made and timed out on a lapse; a sets him Away, and b's desk
/// is told, once; a's is not. Presences forged on the channel (or stale: bob chose another
/// since) are checked against the router and not passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_presence_set_after_a_missed_offer_reaches_the_agents_instance() {
    let Some(url) = support::postgres::postgres_url() else {
        return;
    };
    let url = support::postgres::fresh_postgres_database(&url, "mc_fleet_presence").await;
    let channel = FleetChannel::new("mc_fleet_presence_test").unwrap();
    let config = ConversationConfig::default()
        .offer_timeout(OFFER_TIMEOUT)
        .presence_after_missed_offer(Some(Presence::Away));
    let a = Instance::start_with(&url, "fleet-a", &channel, &["ada"], config.clone()).await;
    let b = Instance::start_with(&url, "fleet-b", &channel, &["bob"], config).await;
    let both = [&a, &b];
    fence_conversation(&a.store).await;

    // Only bob is available: c1, arriving on a, is offered to him (on b's desk).
    a.store
        .update_presence(&agent("bob"), Presence::Available)
        .await
        .unwrap();
    a.receive(webhook().message("c1", "m1", "Hello", secs(1)), secs(1))
        .await;
    let c1 = a.conversation_of("c1").await;
    fence(&a, &both, "p1").await;
    assert_eq!(b.desk.offers(), [(c1.id().clone(), agent("bob"))]);
    assert_eq!(b.desk.presences(), []);

    // It lapses; only a ticks (so a sets the presence and notifies): bob is Away, and b's
    // desk is told so, once; a's desk, where bob is not, nothing.
    a.engine
        .tick(secs(1) + OFFER_TIMEOUT + Duration::from_secs(1))
        .await
        .unwrap();
    a.engine
        .tick(secs(1) + OFFER_TIMEOUT + Duration::from_secs(2))
        .await
        .unwrap();
    let bob = a
        .store
        .agent_status(&agent("bob"), secs(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bob.presence, Presence::Away);
    fence(&a, &both, "p2").await;
    assert_eq!(b.desk.presences(), [(agent("bob"), Presence::Away)]);
    assert_eq!(a.desk.presences(), []);
    assert_eq!(b.desk.withdrawals(), [(c1.id().clone(), agent("bob"))]);

    // Any database user can notify: a presence that is not the router's (bob is Away), of
    // an agent nobody knows, or unreadable, is not passed on.
    let before: Vec<usize> = both.iter().map(|i| i.desk.all().len()).collect();
    for payload in [
        r#"{"v":1,"kind":"presence","agent":"bob","presence":"available"}"#,
        r#"{"v":1,"kind":"presence","agent":"bob","presence":"dnd"}"#,
        r#"{"v":1,"kind":"presence","agent":"nobody","presence":"away"}"#,
        r#"{"v":1,"kind":"presence","agent":"bob","presence":"asleep"}"#,
        r#"{"v":1,"kind":"presence","agent":"bob"}"#,
    ] {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel.as_str())
            .bind(payload)
            .execute(a.store.pool())
            .await
            .unwrap();
    }
    fence(&a, &both, "p3").await;
    let after: Vec<usize> = both.iter().map(|i| i.desk.all().len()).collect();
    assert_eq!(after, [before[0] + 1, before[1] + 1], "the fence only");

    // bob is back (on b): a late "away" for him, as a notification sent before his change
    // would arrive, is stale and not passed on.
    b.store
        .update_presence(&agent("bob"), Presence::Available)
        .await
        .unwrap();
    a.notifier.presence(&agent("bob"), Presence::Away).await;
    fence(&a, &both, "p4").await;
    assert_eq!(
        b.desk.presences(),
        [(agent("bob"), Presence::Away)],
        "still the one"
    );

    for mut i in [a, b] {
        i.listener.take().unwrap().stop().await;
    }
}
