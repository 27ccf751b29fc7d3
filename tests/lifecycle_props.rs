//! Random sequences of webhooks (each delivered three times, concurrently), agent actions and
//! time, through the engine; invariants checked after every step.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use messenger_channel::agents::Notification;
use messenger_channel::conversation::{Author, Conversation, ConversationConfig, State};
use messenger_channel::ids::{AgentId, ConversationId};
use messenger_channel::store::ConversationStore;
use messenger_channel::testing::t0;
use proptest::prelude::*;
use support::channel::{Channel, signed, webhook};

const AGENTS: [&str; 3] = ["alice", "bob", "carol"];
const CAPACITY: u32 = 2;

#[derive(Debug, Clone)]
enum Op {
    Message { customer: u8 },
    TwoCustomers { first: u8, second: u8 },
    Accept { conversation: usize, agent: usize },
    Reject { conversation: usize, agent: usize },
    End { conversation: usize, agent: usize },
    Close { conversation: usize, agent: usize },
    Revive { conversation: usize, agent: usize },
    Wait { secs: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4).prop_map(|customer| Op::Message { customer }),
        1 => (0u8..4, 0u8..4).prop_map(|(first, second)| Op::TwoCustomers { first, second }),
        4 => (0usize..8, 0usize..3).prop_map(|(conversation, agent)| Op::Accept { conversation, agent }),
        2 => (0usize..8, 0usize..3).prop_map(|(conversation, agent)| Op::Reject { conversation, agent }),
        2 => (0usize..8, 0usize..3).prop_map(|(conversation, agent)| Op::End { conversation, agent }),
        2 => (0usize..8, 0usize..3).prop_map(|(conversation, agent)| Op::Close { conversation, agent }),
        1 => (0usize..8, 0usize..3).prop_map(|(conversation, agent)| Op::Revive { conversation, agent }),
        2 => prop_oneof![1u64..200, Just(2 * 24 * 3600), Just(31 * 24 * 3600)].prop_map(|secs| Op::Wait { secs }),
    ]
}

struct World {
    channel: Arc<Channel>,
    now: std::time::SystemTime,
    next_mid: u64,
    ids: Vec<ConversationId>,
    closed: HashMap<ConversationId, Conversation>,
    accepted_mids: HashSet<String>,
}

impl World {
    fn pick(&self, i: usize) -> Option<ConversationId> {
        (!self.ids.is_empty()).then(|| self.ids[i % self.ids.len()].clone())
    }

    async fn deliver_three_times(&mut self, customers: &[u8]) {
        let mut items = webhook();
        for c in customers {
            self.next_mid += 1;
            let mid = format!("m_{}", self.next_mid);
            items = items.message(&format!("9000000000000{c}"), &mid, "hello", self.now);
            self.accepted_mids.insert(mid);
        }
        let (headers, body) = signed(items);
        let mut tasks = Vec::new();
        for _ in 0..3 {
            let (channel, headers, body, now) = (
                self.channel.clone(),
                headers.clone(),
                body.clone(),
                self.now,
            );
            tasks.push(tokio::spawn(async move {
                channel.engine.handle_webhook(&headers, &body, now).await
            }));
        }
        let mut handled = 0;
        for t in tasks {
            let report = t.await.unwrap().unwrap();
            assert!(report.failed.is_empty(), "{:?}", report.failed);
            handled += report.handled;
        }
        assert_eq!(
            handled,
            customers.len(),
            "each event handled once across three deliveries"
        );
    }

    async fn check(&mut self) {
        let store = &self.channel.store;
        // Known conversations.
        for s in store.list_open().await.unwrap() {
            if !self.ids.contains(s.conversation.id()) {
                self.ids.push(s.conversation.id().clone());
            }
        }
        // At most one open conversation per (page, customer).
        let open = store.list_open().await.unwrap();
        let mut keys = HashSet::new();
        for s in &open {
            assert!(
                keys.insert((
                    s.conversation.page().clone(),
                    s.conversation.customer().clone()
                )),
                "two open conversations for one customer"
            );
        }
        // Closed conversations never change.
        let mut loads: HashMap<AgentId, u32> = HashMap::new();
        let mut mids = Vec::new();
        for id in &self.ids {
            let c = store.load(id).await.unwrap().unwrap().conversation;
            if let Some(before) = self.closed.get(id) {
                assert_eq!(&c, before, "a closed conversation changed");
            } else if c.is_closed() {
                self.closed.insert(id.clone(), c.clone());
            }
            if let State::Active { agent } | State::WrapUp { agent } = c.state() {
                *loads.entry(agent.clone()).or_default() += 1;
            }
            for line in store.transcript(id).await.unwrap() {
                if line.author == Author::Customer {
                    if let Some(mid) = line.mid {
                        mids.push(mid);
                    }
                }
            }
        }
        // Every accepted message is in a transcript exactly once.
        let unique: HashSet<_> = mids.iter().cloned().collect();
        assert_eq!(unique.len(), mids.len(), "a message recorded twice");
        assert_eq!(
            unique, self.accepted_mids,
            "a message missing from the transcripts"
        );
        // No agent holds more sessions than their capacity; the router's count is right.
        for name in AGENTS {
            let agent = AgentId::from(name);
            let held = loads.get(&agent).copied().unwrap_or(0);
            assert!(held <= CAPACITY, "{name} holds {held} sessions");
            assert_eq!(
                self.channel.router.load(&agent),
                held,
                "router load for {name}"
            );
        }
    }

    fn last_offer(&self, id: &ConversationId) -> Option<AgentId> {
        self.channel
            .notifier
            .all()
            .iter()
            .rev()
            .find_map(|n| match n {
                Notification::Offer {
                    conversation,
                    offer,
                } if conversation == id => Some(offer.agent.clone()),
                _ => None,
            })
    }

    async fn run(&mut self, op: Op) {
        let engine = &self.channel.engine;
        match op {
            Op::Message { customer } => self.deliver_three_times(&[customer]).await,
            Op::TwoCustomers { first, second } if first != second => {
                self.deliver_three_times(&[first, second]).await;
            }
            Op::TwoCustomers { first, .. } => self.deliver_three_times(&[first]).await,
            Op::Accept {
                conversation,
                agent,
            } => {
                if let Some(id) = self.pick(conversation) {
                    let agent = AgentId::from(AGENTS[agent]);
                    let offered = self.last_offer(&id);
                    let state = self
                        .channel
                        .store
                        .load(&id)
                        .await
                        .unwrap()
                        .unwrap()
                        .conversation;
                    if engine.accept(&id, &agent, self.now).await.is_ok() {
                        assert!(matches!(state.state(), State::Open { offer: Some(_) }));
                        assert_eq!(
                            offered.as_ref(),
                            Some(&agent),
                            "accepted by an agent it was not offered to"
                        );
                    }
                }
            }
            Op::Reject {
                conversation,
                agent,
            } => {
                if let Some(id) = self.pick(conversation) {
                    let _ = engine
                        .reject(&id, &AgentId::from(AGENTS[agent]), self.now)
                        .await;
                }
            }
            Op::End {
                conversation,
                agent,
            } => {
                if let Some(id) = self.pick(conversation) {
                    let _ = engine
                        .end(&id, &AgentId::from(AGENTS[agent]), self.now)
                        .await;
                }
            }
            Op::Close {
                conversation,
                agent,
            } => {
                if let Some(id) = self.pick(conversation) {
                    let _ = engine
                        .close_session(&id, &AgentId::from(AGENTS[agent]), self.now)
                        .await;
                }
            }
            Op::Revive {
                conversation,
                agent,
            } => {
                if let Some(id) = self.pick(conversation) {
                    let _ = engine
                        .revive(&id, &AgentId::from(AGENTS[agent]), self.now)
                        .await;
                }
            }
            Op::Wait { secs } => {
                self.now += Duration::from_secs(secs);
                engine.tick(self.now).await.unwrap();
            }
        }
        self.check().await;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold(ops in prop::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async {
            let channel = Channel::new(&AGENTS, ConversationConfig::default());
            for a in AGENTS {
                channel.router.set_capacity(&AgentId::from(a), CAPACITY);
            }
            let mut world = World {
                channel: Arc::new(channel),
                now: t0(),
                next_mid: 0,
                ids: Vec::new(),
                closed: HashMap::new(),
                accepted_mids: HashSet::new(),
            };
            for op in ops {
                world.run(op).await;
            }
        });
    }
}
