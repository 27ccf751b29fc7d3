//! Transfer, consult, supervisors and automated messages through the webhook: a transfer to
//! an agent accepted, declined or left to lapse; to a queue; a consult; a supervisor's
//! assignment, forced close and overview; each automated trigger, the window refusing one,
//! and operating hours in a zone other than UTC with a holiday. Nothing internal is ever
//! sent to the customer.

mod support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use messenger_channel::agents::{
    AgentRouter as _, InMemoryRouter, Notification, Presence, RecordingNotifier,
};
use messenger_channel::conversation::{
    Author, AutomatedTrigger, CloseReason, Conversation, Internal, LineBody, State, TranscriptLine,
    TransferTarget, TransitionError,
};
use messenger_channel::engine::{Engine, EngineError, Supervisor};
use messenger_channel::ids::{AgentId, PageId, QueueId, UserId};
use messenger_channel::routing::{
    AutomatedMessages, Condition, Date, OperatingHours, OutsideHours, Queue, Routing, RoutingRules,
    Time, Weekday,
};
use messenger_channel::store::{ConversationStore, InMemoryStore};
use messenger_channel::testing::{FakeSend, t0};
use messenger_channel::webhook::Webhook;
use support::channel::{PAGE, secret, signed, webhook};

fn secs(n: u64) -> SystemTime {
    t0() + Duration::from_secs(n)
}

fn agent(name: &str) -> AgentId {
    AgentId::from(name)
}

fn q(name: &str) -> QueueId {
    QueueId::from(name)
}

/// Every automated message, each naming its trigger.
fn messages() -> AutomatedMessages {
    AutomatedMessages::default()
        .set(
            AutomatedTrigger::Greeting,
            "Hello! We will be with you shortly.",
        )
        .set(
            AutomatedTrigger::AgentJoined,
            "{AgentName} joined the conversation.",
        )
        .set(
            AutomatedTrigger::AgentEnded,
            "The agent ended the conversation.",
        )
        .set(AutomatedTrigger::Transferred, "We are transferring you.")
        .set(
            AutomatedTrigger::NoAgentAvailable,
            "All agents are busy; you are number {QueuePosition} in the queue.",
        )
        .set(
            AutomatedTrigger::OutsideOperatingHours,
            "We are closed; we open at 9:00.",
        )
        .set(
            AutomatedTrigger::Survey,
            "Tell us how we did: https://example.com/survey",
        )
}

const TRIGGERS: [AutomatedTrigger; 7] = [
    AutomatedTrigger::Greeting,
    AutomatedTrigger::AgentJoined,
    AutomatedTrigger::AgentEnded,
    AutomatedTrigger::Transferred,
    AutomatedTrigger::NoAgentAvailable,
    AutomatedTrigger::OutsideOperatingHours,
    AutomatedTrigger::Survey,
];

/// Every text [`messages`] can send, for agents ada, bob and cy, at places 1 to 3.
fn automated_texts() -> Vec<String> {
    let mut texts = Vec::new();
    for trigger in TRIGGERS {
        for name in ["ada", "bob", "cy"] {
            for position in 1..=3 {
                texts.extend(messages().render(trigger, Some(name), Some(position)));
            }
        }
    }
    texts
}

struct Desk {
    engine: Arc<Engine>,
    store: Arc<dyn ConversationStore>,
    router: Arc<InMemoryRouter>,
    notifier: Arc<RecordingNotifier>,
    send: Arc<FakeSend>,
}

fn desk(routing: Routing, agents: &[&str]) -> Desk {
    desk_named(routing, agents, None)
}

/// As [`desk`], with the host's display names for agents.
fn desk_named(
    routing: Routing,
    agents: &[&str],
    names: Option<messenger_channel::engine::AgentNames>,
) -> Desk {
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let router = Arc::new(InMemoryRouter::new());
    for name in agents {
        router.set_presence(&agent(name), Presence::Available);
    }
    let notifier = Arc::new(RecordingNotifier::new());
    let send = Arc::new(FakeSend::new());
    let engine = Engine::builder(Webhook::new(&secret()), send.clone())
        .store(store.clone())
        .router(router.clone())
        .notifier(notifier.clone())
        .routing(routing);
    let engine = match names {
        Some(names) => engine.agent_names(names),
        None => engine,
    }
    .build();
    Desk {
        engine: Arc::new(engine),
        store,
        router,
        notifier,
        send,
    }
}

/// Two Push queues, `general` (the fallback) and `billing` (for "invoice").
fn two_queues() -> Routing {
    Routing::new(Queue::push(q("general")))
        .add_queue(Queue::push(q("billing")))
        .rules(
            RoutingRules::new(q("general"))
                .when(Condition::Keywords(vec!["invoice".into()]), q("billing")),
        )
}

impl Desk {
    async fn write(&self, customer: &str, mid: &str, text: &str, at: SystemTime) {
        let (h, b) = signed(webhook().message(customer, mid, text, at));
        let report = self.engine.handle_webhook(&h, &b, at).await.unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
    }

    async fn open(&self, customer: &str) -> Conversation {
        self.store
            .find_open(&PageId::from(PAGE), &UserId::new(customer.to_owned()))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no open conversation for {customer}"))
            .conversation
    }

    async fn latest(&self, customer: &str) -> Conversation {
        self.store
            .find_latest(&PageId::from(PAGE), &UserId::new(customer.to_owned()))
            .await
            .unwrap()
            .unwrap()
            .conversation
    }

    async fn transcript(&self, c: &Conversation) -> Vec<TranscriptLine> {
        self.store.transcript(c.id()).await.unwrap()
    }

    /// The agents offered a conversation since the last call.
    fn offers(&self) -> Vec<String> {
        self.notifier
            .take()
            .into_iter()
            .filter_map(|n| match n {
                Notification::Offer { offer, .. } => Some(offer.agent.as_str().to_owned()),
                _ => None,
            })
            .collect()
    }

    /// A customer's conversation Active with `holder` (offered to them first).
    async fn active_with(&self, customer: &str, holder: &str, at: SystemTime) -> Conversation {
        self.write(customer, &format!("m_{customer}"), "hello", at)
            .await;
        let c = self.open(customer).await;
        let offered = self.offers();
        assert_eq!(offered, [holder]);
        self.engine
            .accept(c.id(), &agent(holder), at)
            .await
            .unwrap();
        self.open(customer).await
    }

    fn sent_texts(&self) -> Vec<String> {
        self.send.texts()
    }
}

fn internal(lines: &[TranscriptLine]) -> Vec<(Author, Internal)> {
    lines
        .iter()
        .filter_map(|l| match &l.body {
            LineBody::Internal(i) => Some((l.author.clone(), i.clone())),
            _ => None,
        })
        .collect()
}

fn notices(lines: &[TranscriptLine]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| match &l.body {
            LineBody::Notice(n) => Some(n.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_transfer_to_an_agent_accepted_moves_the_session() {
    let d = desk(two_queues(), &["ada", "bob"]);
    let c = d.active_with("c1", "ada", secs(1)).await;
    assert_eq!(d.router.load(&agent("ada")), 1);

    d.engine
        .transfer_to_agent(
            c.id(),
            &agent("ada"),
            &agent("bob"),
            Some("wants a refund"),
            secs(2),
        )
        .await
        .unwrap();
    let moved = d.open("c1").await;
    let transfer = moved.transfer().expect("a transfer under way");
    assert_eq!(transfer.from, agent("ada"));
    assert_eq!(transfer.to, TransferTarget::Agent(agent("bob")));
    assert_eq!(transfer.note.as_deref(), Some("wants a refund"));
    assert!(matches!(moved.state(), State::Open { offer: Some(o) } if o.agent == agent("bob")));
    assert_eq!(d.router.load(&agent("ada")), 0, "ada's session released");
    assert_eq!(d.offers(), ["bob"]);

    d.engine
        .accept(c.id(), &agent("bob"), secs(3))
        .await
        .unwrap();
    let taken = d.open("c1").await;
    assert_eq!(
        taken.state(),
        &State::Active {
            agent: agent("bob")
        }
    );
    assert!(taken.transfer().is_none());
    assert_eq!(d.router.load(&agent("bob")), 1, "bob's session taken");
    let lines = d.transcript(&taken).await;
    assert_eq!(
        internal(&lines),
        [(
            Author::Agent(agent("ada")),
            Internal::Transferred {
                to: TransferTarget::Agent(agent("bob")),
                note: Some("wants a refund".into())
            }
        )]
    );
    assert!(notices(&lines).contains(&"bob accepted the transfer".to_owned()));
    // bob may write; ada may not.
    d.engine
        .send_text(c.id(), &agent("bob"), "hi, bob here", secs(4))
        .await
        .unwrap();
    assert!(
        d.engine
            .send_text(c.id(), &agent("ada"), "me too", secs(4))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_transfer_declined_or_lapsed_goes_back_to_the_queue() {
    let d = desk(two_queues(), &["ada", "bob", "cy"]);
    let c = d.active_with("c1", "ada", secs(1)).await;
    d.engine
        .transfer_to_agent(c.id(), &agent("ada"), &agent("bob"), None, secs(2))
        .await
        .unwrap();
    assert_eq!(d.offers(), ["bob"]);
    // bob declines: it is an ordinary conversation of its queue again, offered to another.
    d.engine
        .reject(c.id(), &agent("bob"), secs(3))
        .await
        .unwrap();
    let back = d.open("c1").await;
    assert!(back.transfer().is_none());
    assert_eq!(back.queue(), Some(&q("general")));
    let offered = d.offers();
    assert_eq!(offered.len(), 1);
    assert_ne!(offered[0], "bob", "bob declined");
    let next = agent(&offered[0]);
    assert!(
        notices(&d.transcript(&back).await).contains(
            &"the transfer was not taken; the conversation is back in its queue".to_owned()
        )
    );

    // Taken again, transferred again, and left to lapse.
    d.engine.accept(c.id(), &next, secs(4)).await.unwrap();
    d.engine
        .transfer_to_agent(c.id(), &next, &agent("bob"), None, secs(5))
        .await
        .unwrap();
    assert_eq!(d.offers(), ["bob"]);
    let lapse = secs(5) + d.engine.config().offer_timeout;
    d.engine.tick(lapse).await.unwrap();
    let lapsed = d.open("c1").await;
    assert!(lapsed.transfer().is_none());
    let told = d.notifier.take();
    assert!(
        told.iter().any(
            |n| matches!(n, Notification::Withdraw { agent, .. } if *agent == self::agent("bob"))
        ),
        "bob's transfer notification is withdrawn"
    );
    assert_eq!(d.router.load(&agent("bob")), 0);
    assert_eq!(d.router.load(&next), 0);
    // Back in its queue, said so, and offered at this tick to someone other than bob, who
    // is left out for the re-offer interval.
    assert_eq!(lapsed.queue(), Some(&q("general")));
    let lines = d.transcript(&lapsed).await;
    let notices = notices(&lines);
    assert!(notices.contains(&"the offer to bob timed out".to_owned()));
    assert_eq!(
        notices
            .iter()
            .filter(|n| *n == "the transfer was not taken; the conversation is back in its queue")
            .count(),
        2,
        "once for the decline, once for the lapse: {notices:#?}"
    );
    assert!(
        lapsed
            .excluded_agents(lapse, d.engine.config())
            .any(|a| *a == agent("bob"))
    );
    let reoffered: Vec<&AgentId> = told
        .iter()
        .filter_map(|n| match n {
            Notification::Offer { offer, .. } => Some(&offer.agent),
            _ => None,
        })
        .collect();
    assert_eq!(reoffered.len(), 1, "{told:?}");
    assert_ne!(*reoffered[0], agent("bob"));
    assert!(
        matches!(lapsed.state(), State::Open { offer: Some(o) } if o.agent == *reoffered[0]),
        "{:?}",
        lapsed.state()
    );
}

/// A transfer to a queue that the agent offered it declines, then one whose offer lapses: it
/// stays in the queue it was transferred to, the agents who let it go are left out, and the
/// next tick offers it to another agent of the queue. The transfer itself is kept until an
/// agent takes the conversation (`Conversation::transfer`: only a transfer to an agent ends
/// when that agent declines), so each later offer is still shown as the transfer.
#[tokio::test]
#[allow(clippy::too_many_lines)] // one script, read top to bottom
async fn a_transfer_to_a_queue_declined_or_lapsed_stays_in_that_queue() {
    let d = desk(two_queues(), &["ada", "bob"]);
    // cy and dan work too, but are not available yet.
    d.router.set_presence(&agent("cy"), Presence::Busy);
    d.router.set_presence(&agent("dan"), Presence::Offline);
    let c = d.active_with("c1", "ada", secs(1)).await;
    d.engine
        .transfer_to_queue(
            c.id(),
            &agent("ada"),
            &q("billing"),
            Some("invoice 42"),
            secs(2),
        )
        .await
        .unwrap();
    assert_eq!(d.offers(), ["bob"]);
    let config = d.engine.config();
    let excluded = |c: &Conversation, at: SystemTime| {
        c.excluded_agents(at, config)
            .map(|a| a.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let still_the_transfer = |c: &Conversation| {
        let t = c.transfer().expect("the transfer is kept until taken");
        assert_eq!(t.from, agent("ada"));
        assert_eq!(t.to, TransferTarget::Queue(q("billing")));
        assert_eq!(t.note.as_deref(), Some("invoice 42"));
    };

    // bob declines: it stays in billing; nobody else may take it now (ada transferred it,
    // bob declined, cy is busy), so it waits.
    d.engine
        .reject(c.id(), &agent("bob"), secs(3))
        .await
        .unwrap();
    let declined = d.open("c1").await;
    assert_eq!(declined.queue(), Some(&q("billing")));
    assert!(declined.awaits_offer(), "{:?}", declined.state());
    assert_eq!(excluded(&declined, secs(3)), ["ada", "bob"]);
    still_the_transfer(&declined);
    assert!(d.offers().is_empty());
    assert_eq!(d.router.load(&agent("bob")), 0);
    assert!(
        notices(&d.transcript(&declined).await).contains(&"bob declined the conversation".into())
    );

    // cy becomes available: the next tick offers it to her, not to bob (idle, but he
    // declined it).
    d.router.set_presence(&agent("cy"), Presence::Available);
    d.engine.tick(secs(4)).await.unwrap();
    assert_eq!(d.offers(), ["cy"]);
    let offered = d.open("c1").await;
    assert!(matches!(offered.state(), State::Open { offer: Some(o) } if o.agent == agent("cy")));
    assert_eq!(offered.queue(), Some(&q("billing")));
    still_the_transfer(&offered);

    // cy lets it lapse: withdrawn from her, still in billing, waiting again.
    let lapse = secs(4) + config.offer_timeout;
    d.engine.tick(lapse).await.unwrap();
    let told = d.notifier.take();
    assert!(
        told.iter().any(
            |n| matches!(n, Notification::Withdraw { agent, .. } if *agent == self::agent("cy"))
        ),
        "{told:?}"
    );
    assert!(
        !told.iter().any(|n| matches!(n, Notification::Offer { .. })),
        "{told:?}"
    );
    let lapsed = d.open("c1").await;
    assert_eq!(lapsed.queue(), Some(&q("billing")));
    assert!(lapsed.awaits_offer(), "{:?}", lapsed.state());
    assert_eq!(excluded(&lapsed, lapse), ["ada", "bob", "cy"]);
    still_the_transfer(&lapsed);
    assert!(notices(&d.transcript(&lapsed).await).contains(&"the offer to cy timed out".into()));

    // dan comes in: the next tick offers it to him; he takes it, and the transfer is over.
    d.router.set_presence(&agent("dan"), Presence::Available);
    let next_tick = lapse + Duration::from_secs(1);
    d.engine.tick(next_tick).await.unwrap();
    assert_eq!(d.offers(), ["dan"]);
    d.engine
        .accept(c.id(), &agent("dan"), next_tick)
        .await
        .unwrap();
    let taken = d.open("c1").await;
    assert_eq!(
        taken.state(),
        &State::Active {
            agent: agent("dan")
        }
    );
    assert_eq!(taken.queue(), Some(&q("billing")));
    assert!(taken.transfer().is_none());
    assert_eq!(d.router.load(&agent("dan")), 1);
    let notices = notices(&d.transcript(&taken).await);
    assert!(notices.contains(&"dan accepted the transfer".to_owned()));
    assert!(
        !notices
            .iter()
            .any(|n| n.starts_with("the transfer was not taken")),
        "a transfer to a queue is not given back: {notices:#?}"
    );
}

#[tokio::test]
async fn a_transfer_to_a_queue_is_routed_by_that_queue() {
    let d = desk(two_queues(), &["ada", "bob"]);
    let c = d.active_with("c1", "ada", secs(1)).await;
    let unknown = d
        .engine
        .transfer_to_queue(c.id(), &agent("ada"), &q("nowhere"), None, secs(2))
        .await;
    assert!(matches!(unknown, Err(EngineError::UnknownQueue(ref queue)) if *queue == q("nowhere")));
    d.engine
        .transfer_to_queue(
            c.id(),
            &agent("ada"),
            &q("billing"),
            Some("invoice 42"),
            secs(2),
        )
        .await
        .unwrap();
    let moved = d.open("c1").await;
    assert_eq!(moved.queue(), Some(&q("billing")));
    assert_eq!(
        moved.transfer().map(|t| &t.to),
        Some(&TransferTarget::Queue(q("billing")))
    );
    // Offered to bob, not back to ada.
    assert_eq!(d.offers(), ["bob"]);
    assert_eq!(
        moved
            .excluded_agents(secs(2), d.engine.config())
            .collect::<Vec<_>>(),
        [&agent("ada")]
    );
    d.engine
        .accept(c.id(), &agent("bob"), secs(3))
        .await
        .unwrap();
    assert!(d.open("c1").await.transfer().is_none());
    // Only the holder transfers, and only an Active conversation.
    let err = d
        .engine
        .transfer_to_queue(c.id(), &agent("ada"), &q("general"), None, secs(4))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::Transition(TransitionError::NotHolder { .. })
    ));
    let err = d
        .engine
        .transfer_to_agent(c.id(), &agent("bob"), &agent("bob"), None, secs(4))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::Transition(TransitionError::AlreadyTakesPart { .. })
    ));
}

#[tokio::test]
#[allow(clippy::too_many_lines)] // one consult, start to end
async fn a_consulted_agent_writes_notes_leaves_or_takes_over() {
    let d = desk(two_queues(), &["ada"]);
    let c = d.active_with("c1", "ada", secs(1)).await;
    d.engine
        .consult(c.id(), &agent("ada"), &agent("bob"), secs(2))
        .await
        .unwrap();
    assert!(d.notifier.take().iter().any(|n| matches!(
        n,
        Notification::Consult { agent, .. } if *agent == self::agent("bob")
    )));
    assert_eq!(d.open("c1").await.consultants(), [agent("bob")]);
    d.engine
        .add_note(c.id(), &agent("bob"), "ask for the order number", secs(3))
        .await
        .unwrap();
    d.engine
        .add_note(c.id(), &agent("ada"), "done", secs(4))
        .await
        .unwrap();
    // Someone taking no part may not write; the consultant may not send to the customer.
    assert!(
        d.engine
            .add_note(c.id(), &agent("cy"), "hi", secs(4))
            .await
            .is_err()
    );
    assert!(
        d.engine
            .send_text(c.id(), &agent("bob"), "hello", secs(4))
            .await
            .is_err()
    );
    // Invited twice, or the holder themself: refused.
    assert!(
        d.engine
            .consult(c.id(), &agent("ada"), &agent("bob"), secs(4))
            .await
            .is_err()
    );
    assert!(
        d.engine
            .consult(c.id(), &agent("ada"), &agent("ada"), secs(4))
            .await
            .is_err()
    );

    d.engine
        .leave_consult(c.id(), &agent("bob"), secs(5))
        .await
        .unwrap();
    assert!(d.open("c1").await.consultants().is_empty());
    assert!(
        d.engine
            .leave_consult(c.id(), &agent("bob"), secs(5))
            .await
            .is_err()
    );
    assert!(
        d.engine
            .add_note(c.id(), &agent("bob"), "again", secs(5))
            .await
            .is_err()
    );

    // Consulted again, bob takes over by transfer.
    d.engine
        .consult(c.id(), &agent("ada"), &agent("bob"), secs(6))
        .await
        .unwrap();
    d.engine
        .transfer_to_agent(c.id(), &agent("ada"), &agent("bob"), Some("yours"), secs(7))
        .await
        .unwrap();
    assert!(
        d.open("c1").await.consultants().is_empty(),
        "the consult ends with the session"
    );
    d.engine
        .accept(c.id(), &agent("bob"), secs(8))
        .await
        .unwrap();
    assert_eq!(
        d.open("c1").await.state(),
        &State::Active {
            agent: agent("bob")
        }
    );

    let lines = d.transcript(&c).await;
    let internal = internal(&lines);
    assert_eq!(
        internal,
        [
            (
                Author::Agent(agent("ada")),
                Internal::ConsultInvited {
                    consultant: agent("bob")
                }
            ),
            (
                Author::Agent(agent("bob")),
                Internal::Note("ask for the order number".into())
            ),
            (Author::Agent(agent("ada")), Internal::Note("done".into())),
            (Author::Agent(agent("bob")), Internal::ConsultLeft),
            (
                Author::Agent(agent("ada")),
                Internal::ConsultInvited {
                    consultant: agent("bob")
                }
            ),
            (
                Author::Agent(agent("ada")),
                Internal::Transferred {
                    to: TransferTarget::Agent(agent("bob")),
                    note: Some("yours".into())
                }
            ),
        ]
    );
}

#[tokio::test]
async fn nothing_internal_is_ever_sent_to_the_customer() {
    let secret_words = "INTERNAL-ONLY";
    let routing = Routing::new(Queue::push(q("general")).messages(messages()))
        .add_queue(Queue::push(q("billing")).messages(messages()));
    let d = desk(routing, &["ada", "bob"]);
    let c = d.active_with("c1", "ada", secs(1)).await;
    let sam = Supervisor::new(agent("sam"));
    d.engine
        .consult(c.id(), &agent("ada"), &agent("bob"), secs(2))
        .await
        .unwrap();
    d.engine
        .add_note(
            c.id(),
            &agent("bob"),
            &format!("{secret_words} consult"),
            secs(3),
        )
        .await
        .unwrap();
    d.engine
        .add_note(
            c.id(),
            &agent("ada"),
            &format!("{secret_words} holder"),
            secs(3),
        )
        .await
        .unwrap();
    d.engine
        .supervisor_note(&sam, c.id(), &format!("{secret_words} supervisor"), secs(3))
        .await
        .unwrap();
    d.engine
        .leave_consult(c.id(), &agent("bob"), secs(4))
        .await
        .unwrap();
    d.engine
        .transfer_to_queue(
            c.id(),
            &agent("ada"),
            &q("billing"),
            Some(&format!("{secret_words} queue")),
            secs(5),
        )
        .await
        .unwrap();
    d.engine
        .accept(c.id(), &agent("bob"), secs(6))
        .await
        .unwrap();
    d.engine
        .transfer_to_agent(
            c.id(),
            &agent("bob"),
            &agent("ada"),
            Some(&format!("{secret_words} agent")),
            secs(7),
        )
        .await
        .unwrap();
    d.engine
        .reject(c.id(), &agent("ada"), secs(8))
        .await
        .unwrap();
    d.engine.force_close(&sam, c.id(), secs(9)).await.unwrap();

    let lines = d.transcript(&c).await;
    assert!(internal(&lines).len() >= 7, "{lines:#?}");
    let sent = d.send.sent();
    assert!(!sent.is_empty(), "automated messages were sent");
    for s in &sent {
        let body = s.body.to_string();
        assert!(
            !body.contains(secret_words),
            "an internal line was sent: {body}"
        );
        // Every text sent is an automated message of the queues (no agent wrote any).
        let text = s.text().unwrap_or_default().to_owned();
        assert!(automated_texts().contains(&text), "{text}");
        // Automated: never HUMAN_AGENT.
        assert_ne!(s.body["tag"], "HUMAN_AGENT", "{body}");
    }
}

#[tokio::test]
async fn a_supervisor_assigns_an_open_conversation() {
    // A Pick queue: no offers; the supervisor assigns.
    let routing = Routing::new(Queue::pick(q("general")));
    let d = desk(routing, &["ada"]);
    let sam = Supervisor::new(agent("sam"));
    d.write("c1", "m1", "hello", secs(1)).await;
    let c = d.open("c1").await;
    d.engine
        .assign(&sam, c.id(), &agent("ada"), secs(2))
        .await
        .unwrap();
    let assigned = d.open("c1").await;
    assert_eq!(
        assigned.state(),
        &State::Active {
            agent: agent("ada")
        }
    );
    assert_eq!(d.router.load(&agent("ada")), 1);
    assert_eq!(
        internal(&d.transcript(&c).await),
        [(
            Author::Supervisor(agent("sam")),
            Internal::Assigned {
                agent: agent("ada")
            }
        )]
    );
    // Only an Open conversation is assigned.
    let err = d
        .engine
        .assign(&sam, c.id(), &agent("bob"), secs(3))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        EngineError::Transition(TransitionError::Illegal { .. })
    ));

    // A Push queue with an offer outstanding to ada: assigned to bob, ada's offer withdrawn.
    let d = desk(Routing::new(Queue::push(q("general"))), &["ada"]);
    d.write("c2", "m2", "hello", secs(1)).await;
    let c = d.open("c2").await;
    assert_eq!(d.offers(), ["ada"]);
    d.engine
        .assign(&sam, c.id(), &agent("bob"), secs(2))
        .await
        .unwrap();
    assert_eq!(
        d.open("c2").await.state(),
        &State::Active {
            agent: agent("bob")
        }
    );
    assert!(d.notifier.take().iter().any(
        |n| matches!(n, Notification::Withdraw { agent, .. } if *agent == self::agent("ada"))
    ));
    assert_eq!(d.router.load(&agent("bob")), 1);
    assert_eq!(d.router.load(&agent("ada")), 0);
    let ada = d
        .router
        .agent_status(&agent("ada"), secs(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ada.used, 0, "ada's reservation ended");
}

#[tokio::test]
async fn a_supervisor_force_closes_and_sees_every_queue() {
    let routing = two_queues();
    let d = desk(routing, &["ada"]);
    let sam = Supervisor::new(agent("sam"));
    let c1 = d.active_with("c1", "ada", secs(1)).await;
    d.engine
        .consult(c1.id(), &agent("ada"), &agent("bob"), secs(2))
        .await
        .unwrap();
    // ada is busy now: the next ones wait (ada has capacity; make her Away).
    d.router.set_presence(&agent("ada"), Presence::Away);
    d.write("c2", "m2", "my invoice", secs(10)).await;
    d.write("c3", "m3", "hello", secs(20)).await;
    d.write("c4", "m4", "another invoice", secs(30)).await;

    let overview = d.engine.queue_overview(secs(100)).await.unwrap();
    let names: Vec<&str> = overview.iter().map(|o| o.queue.as_str()).collect();
    assert_eq!(names, ["billing", "general"]);
    let billing = &overview[0];
    let waited: Vec<Duration> = billing.waiting.iter().map(|w| w.waited).collect();
    assert_eq!(
        waited,
        [Duration::from_secs(90), Duration::from_secs(70)],
        "longest first"
    );
    assert!(billing.active.is_empty());
    let general = &overview[1];
    assert_eq!(general.waiting.len(), 1);
    assert_eq!(general.waiting[0].waited, Duration::from_secs(80));
    assert_eq!(general.waiting[0].offered_to, None);
    assert_eq!(general.active.len(), 1);
    assert_eq!(general.active[0].agent, agent("ada"));
    assert_eq!(general.active[0].consultants, [agent("bob")]);

    // Force-closed: the session released, the consult over; closed for good.
    d.engine
        .force_close(&sam, c1.id(), secs(101))
        .await
        .unwrap();
    let closed = d.latest("c1").await;
    assert_eq!(
        closed.state(),
        &State::Closed {
            reason: CloseReason::Supervisor
        }
    );
    assert!(closed.consultants().is_empty());
    assert_eq!(d.router.load(&agent("ada")), 0);
    assert!(
        d.engine
            .force_close(&sam, c1.id(), secs(102))
            .await
            .is_err()
    );
    assert!(
        d.engine
            .supervisor_note(&sam, c1.id(), "late", secs(102))
            .await
            .is_err()
    );
    // A waiting one too.
    let c3 = d.open("c3").await;
    d.engine
        .supervisor_note(&sam, c3.id(), "spam?", secs(103))
        .await
        .unwrap();
    d.engine
        .force_close(&sam, c3.id(), secs(104))
        .await
        .unwrap();
    let overview = d.engine.queue_overview(secs(105)).await.unwrap();
    assert!(overview[1].waiting.is_empty() && overview[1].active.is_empty());
    assert_eq!(
        internal(&d.transcript(&c3).await),
        [
            (
                Author::Supervisor(agent("sam")),
                Internal::Note("spam?".into())
            ),
            (Author::Supervisor(agent("sam")), Internal::ForceClosed),
        ]
    );
}

/// The queue `general` with every automated message.
fn with_messages() -> Routing {
    Routing::new(Queue::push(q("general")).messages(messages())).add_queue(
        Queue::push(q("billing"))
            .messages(messages().set(AutomatedTrigger::Transferred, "billing says bye")),
    )
}

#[tokio::test]
async fn automated_messages_follow_the_conversation() {
    let d = desk(with_messages(), &["ada", "bob"]);
    let c = d.active_with("c1", "ada", secs(1)).await;
    // Greeting, then ada joined (by her name).
    assert_eq!(
        d.sent_texts(),
        [
            "Hello! We will be with you shortly.",
            "ada joined the conversation."
        ]
    );
    // Transferred (the queue it leaves says it), then bob joined.
    d.engine
        .transfer_to_agent(c.id(), &agent("ada"), &agent("bob"), None, secs(2))
        .await
        .unwrap();
    d.engine
        .accept(c.id(), &agent("bob"), secs(3))
        .await
        .unwrap();
    // Ended, then the survey when it closes.
    d.engine.end(c.id(), &agent("bob"), secs(4)).await.unwrap();
    d.engine
        .close_session(c.id(), &agent("bob"), secs(5))
        .await
        .unwrap();
    assert_eq!(
        d.sent_texts()[2..],
        [
            "We are transferring you.",
            "bob joined the conversation.",
            "The agent ended the conversation.",
            "Tell us how we did: https://example.com/survey",
        ]
    );
    // Each is recorded, and each went without a tag (automation, in the window).
    let lines = d.transcript(&c).await;
    for text in d.sent_texts() {
        assert!(notices(&lines).contains(&text), "{text} recorded");
    }
    for s in d.send.sent() {
        assert_eq!(s.body["messaging_type"], "RESPONSE", "{}", s.body);
    }

    // A transfer to a queue: the queue it leaves says it.
    d.notifier.take();
    let c2 = d.active_with("c2", "ada", secs(10)).await;
    let before = d.sent_texts().len();
    d.engine
        .transfer_to_queue(c2.id(), &agent("ada"), &q("billing"), None, secs(11))
        .await
        .unwrap();
    assert_eq!(d.sent_texts()[before], "We are transferring you.");
}

#[tokio::test]
async fn no_agent_available_tells_the_place_in_the_queue_once() {
    let d = desk(with_messages(), &[]);
    d.write("c1", "m1", "hello", secs(1)).await;
    d.write("c2", "m2", "hello", secs(2)).await;
    d.write("c2", "m3", "anyone?", secs(3)).await;
    assert_eq!(
        d.sent_texts(),
        [
            "Hello! We will be with you shortly.",
            "All agents are busy; you are number 1 in the queue.",
            "Hello! We will be with you shortly.",
            "All agents are busy; you are number 2 in the queue.",
        ]
    );
    assert!(d.open("c2").await.told_no_agent());
    // Later ticks do not tell again.
    d.engine.tick(secs(60)).await.unwrap();
    assert_eq!(d.sent_texts().len(), 4);
}

#[tokio::test]
async fn a_window_refusal_of_an_automated_message_is_recorded() {
    let d = desk(with_messages(), &["ada"]);
    let c = d.active_with("c1", "ada", secs(1)).await;
    // 25 hours after the customer's last message, the automated "ended" message may not be
    // sent (24 hours for automation).
    let late = secs(1) + Duration::from_secs(25 * 3600);
    d.engine.end(c.id(), &agent("ada"), late).await.unwrap();
    assert!(
        !d.sent_texts()
            .contains(&"The agent ended the conversation.".to_owned())
    );
    let notices = notices(&d.transcript(&c).await);
    assert!(
        notices.contains(&"The agent ended the conversation.".to_owned()),
        "recorded as written"
    );
    assert!(
        notices
            .iter()
            .any(|n| n.starts_with("Not delivered:") && n.contains("24")),
        "{notices:#?}"
    );
}

/// Paris, weekdays 09:00 to 18:00; Monday 10 June 2024 (t0's date) is a holiday.
/// t0 is 08:13:20 on that Monday in Paris (06:13:20 UTC).
fn paris_hours() -> OperatingHours {
    OperatingHours::new("Europe/Paris")
        .unwrap()
        .weekdays(Time::constant(9, 0, 0, 0), Time::constant(18, 0, 0, 0))
        .holiday(Date::constant(2024, 6, 10))
}

#[tokio::test]
async fn outside_operating_hours_a_conversation_waits_for_the_queue_to_open() {
    let routing = Routing::new(
        Queue::push(q("general"))
            .messages(messages())
            .hours(paris_hours(), OutsideHours::Wait),
    );
    let d = desk(routing, &["ada"]);
    d.write("c1", "m1", "hello", secs(0)).await;
    assert_eq!(d.sent_texts(), ["We are closed; we open at 9:00."]);
    assert!(d.offers().is_empty());
    // 11:13 in Paris, a weekday, but the holiday: still closed.
    d.engine.tick(secs(3 * 3600)).await.unwrap();
    assert!(d.offers().is_empty());
    assert!(d.open("c1").await.awaits_offer());
    // Tuesday 11 June, 09:00 in Paris (07:00 UTC): the queue opens and offers it.
    let tuesday_nine = secs(24 * 3600 - (6 * 3600 + 13 * 60 + 20) + 7 * 3600);
    d.engine
        .tick(tuesday_nine - Duration::from_secs(1))
        .await
        .unwrap();
    assert!(d.offers().is_empty(), "08:59:59 in Paris");
    d.engine.tick(tuesday_nine).await.unwrap();
    assert_eq!(d.offers(), ["ada"]);
}

/// New York, 22:00 to 02:00 every night, past midnight; Wednesday 12 June 2024 is a
/// holiday: Tuesday night's shift stops at midnight, and Wednesday night's is closed, also
/// past midnight.
fn new_york_nights() -> OperatingHours {
    let mut hours = OperatingHours::new("America/New_York").unwrap();
    for day in [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ] {
        hours = hours.shift(day, Time::constant(22, 0, 0, 0), Time::constant(2, 0, 0, 0));
    }
    hours.holiday(Date::constant(2024, 6, 12))
}

/// `hh:mm` on `day` June 2024 in New York (EDT, UTC-4); t0 is 02:13:20 on Monday 10 June.
fn new_york(day: i8, hh: i8, mm: i8) -> SystemTime {
    let zone = jiff::tz::TimeZone::get("America/New_York").unwrap();
    let at = zone
        .to_ambiguous_timestamp(jiff::civil::date(2024, 6, day).at(hh, mm, 0, 0))
        .compatible()
        .unwrap();
    SystemTime::try_from(at).unwrap()
}

const CLOSED_AT_NIGHT: &str = "We are closed; we open at 22:00, New York time.";

#[tokio::test]
#[allow(clippy::too_many_lines)] // one script, read top to bottom
async fn operating_hours_past_midnight_in_new_york_with_a_holiday() {
    assert_eq!(new_york(10, 2, 13) + Duration::from_secs(20), t0());
    let routing = Routing::new(
        Queue::push(q("general"))
            .messages(messages().set(AutomatedTrigger::OutsideOperatingHours, CLOSED_AT_NIGHT))
            .hours(new_york_nights(), OutsideHours::Wait),
    );
    let d = desk(routing, &["ada"]);
    let new_texts = |before: usize| d.sent_texts()[before..].to_vec();

    // Tuesday 11 June, 01:30: Monday night's shift, past midnight. Offered at once.
    let at = new_york(11, 1, 30);
    d.write("c1", "m1", "hello", at).await;
    assert_eq!(d.offers(), ["ada"]);
    assert_eq!(d.sent_texts(), ["Hello! We will be with you shortly."]);
    let c1 = d.open("c1").await;
    d.engine.accept(c1.id(), &agent("ada"), at).await.unwrap();

    // 02:30: the shift is over. It waits, told the queue is closed; no offer.
    let at = new_york(11, 2, 30);
    let before = d.sent_texts().len();
    d.write("c2", "m2", "hello", at).await;
    assert_eq!(new_texts(before), [CLOSED_AT_NIGHT]);
    assert!(d.offers().is_empty());
    let c2 = d.open("c2").await;
    assert!(c2.awaits_offer());
    // Ticks through Tuesday: closed until 22:00, when Tuesday night's shift offers it.
    for at in [new_york(11, 2, 31), new_york(11, 12, 0)] {
        d.engine.tick(at).await.unwrap();
    }
    d.engine
        .tick(new_york(11, 22, 0) - Duration::from_secs(1))
        .await
        .unwrap();
    assert!(d.offers().is_empty(), "21:59:59 in New York");
    let opens = new_york(11, 22, 0);
    d.engine.tick(opens).await.unwrap();
    assert_eq!(d.offers(), ["ada"]);
    assert!(
        matches!(d.open("c2").await.state(), State::Open { offer: Some(o) } if o.agent == agent("ada"))
    );
    d.engine
        .accept(c2.id(), &agent("ada"), opens)
        .await
        .unwrap();

    // The holiday: Tuesday night's shift stops at midnight (00:30 Wednesday is closed), and
    // Wednesday night's own shift is closed, before and after midnight.
    let before = d.sent_texts().len();
    d.write("c3", "m3", "hello", new_york(12, 0, 30)).await;
    d.write("c4", "m4", "hello", new_york(12, 23, 30)).await;
    assert_eq!(new_texts(before), [CLOSED_AT_NIGHT, CLOSED_AT_NIGHT]);
    for at in [
        new_york(12, 22, 0),
        new_york(13, 0, 30),
        new_york(13, 1, 59),
    ] {
        d.engine.tick(at).await.unwrap();
    }
    d.engine
        .tick(new_york(13, 22, 0) - Duration::from_secs(1))
        .await
        .unwrap();
    assert!(d.offers().is_empty(), "closed for the holiday");
    for customer in ["c3", "c4"] {
        assert!(d.open(customer).await.awaits_offer(), "{customer} waits");
    }
    // Thursday 22:00: the queue opens again and offers both.
    d.engine.tick(new_york(13, 22, 0)).await.unwrap();
    assert_eq!(d.offers(), ["ada", "ada"]);
    for customer in ["c3", "c4"] {
        assert!(
            matches!(d.open(customer).await.state(), State::Open { offer: Some(o) } if o.agent == agent("ada")),
            "{customer} is offered"
        );
    }
}

#[tokio::test]
async fn outside_operating_hours_a_queue_may_close_the_conversation() {
    let routing = Routing::new(
        Queue::push(q("general"))
            .messages(messages())
            .hours(paris_hours(), OutsideHours::Close),
    );
    let d = desk(routing, &["ada"]);
    d.write("c1", "m1", "hello", secs(0)).await;
    let c = d.latest("c1").await;
    assert_eq!(
        c.state(),
        &State::Closed {
            reason: CloseReason::OutsideHours
        }
    );
    // The outside-hours message is sent even though it closed; no survey for it.
    assert_eq!(d.sent_texts(), ["We are closed; we open at 9:00."]);
    assert!(d.offers().is_empty());
    // The customer's next message starts a new conversation (closed again, outside hours).
    d.write("c1", "m2", "hello?", secs(60)).await;
    let again = d.latest("c1").await;
    assert_ne!(again.id(), c.id());
    assert_eq!(d.sent_texts().len(), 2);
}

#[tokio::test]
async fn with_nothing_configured_nothing_automated_is_sent() {
    let d = desk(Routing::default(), &["ada"]);
    let c = d.active_with("c1", "ada", secs(1)).await;
    d.engine.end(c.id(), &agent("ada"), secs(2)).await.unwrap();
    d.engine
        .close_session(c.id(), &agent("ada"), secs(3))
        .await
        .unwrap();
    assert!(d.send.sent().is_empty());
}

/// Transfer, consult and supervision on SQLite as store and router: the queue column follows
/// a transfer, capacity follows the session, and the overview reads the database.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn transfer_and_supervision_on_sqlite() {
    use messenger_channel::agents::AgentRouter;
    use messenger_channel::store::SqliteStore;

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("channel.db"))
            .await
            .unwrap(),
    );
    for name in ["ada", "bob"] {
        store
            .update_presence(&agent(name), Presence::Available)
            .await
            .unwrap();
    }
    let send = Arc::new(FakeSend::new());
    let engine = Engine::builder(Webhook::new(&secret()), send.clone())
        .store(store.clone())
        .router(store.clone())
        .routing(with_messages())
        .build();
    let used = |name: &'static str| {
        let store = store.clone();
        async move {
            store
                .agent_status(&agent(name), secs(10))
                .await
                .unwrap()
                .map_or(0, |s| s.used)
        }
    };
    let (h, b) = signed(webhook().message("c1", "m1", "hello", secs(1)));
    engine.handle_webhook(&h, &b, secs(1)).await.unwrap();
    let c = store
        .find_open(&PageId::from(PAGE), &UserId::from("c1"))
        .await
        .unwrap()
        .unwrap()
        .conversation;
    let State::Open { offer: Some(offer) } = c.state() else {
        panic!("offered: {:?}", c.state());
    };
    let first = offer.agent.clone();
    let second = if first == agent("ada") {
        agent("bob")
    } else {
        agent("ada")
    };
    engine.accept(c.id(), &first, secs(2)).await.unwrap();
    engine
        .consult(c.id(), &first, &second, secs(3))
        .await
        .unwrap();
    engine
        .add_note(c.id(), &second, "a note", secs(4))
        .await
        .unwrap();
    engine
        .transfer_to_queue(c.id(), &first, &q("billing"), Some("billing"), secs(5))
        .await
        .unwrap();
    // The billing queue lists it, and offered it to the other agent.
    let stored = store.load(c.id()).await.unwrap().unwrap().conversation;
    assert_eq!(stored.queue(), Some(&q("billing")));
    assert!(matches!(stored.state(), State::Open { offer: Some(o) } if o.agent == second));
    engine.accept(c.id(), &second, secs(6)).await.unwrap();
    assert_eq!(
        used(if first == agent("ada") { "ada" } else { "bob" }).await,
        0
    );
    let overview = engine.queue_overview(secs(10)).await.unwrap();
    let billing = overview.iter().find(|o| o.queue == q("billing")).unwrap();
    assert_eq!(billing.active.len(), 1);
    assert_eq!(billing.active[0].agent, second);
    engine
        .force_close(&Supervisor::new(agent("sam")), c.id(), secs(7))
        .await
        .unwrap();
    assert_eq!(used("ada").await + used("bob").await, 0);
    let lines = store.transcript(c.id()).await.unwrap();
    assert_eq!(internal(&lines).len(), 4, "{lines:#?}");
    for s in send.sent() {
        assert!(!s.body.to_string().contains("a note"));
    }
    assert_eq!(
        send.texts().last().map(String::as_str),
        Some("Tell us how we did: https://example.com/survey")
    );
}

/// The host links a conversation to its record of the customer; the holder relinks it; the
/// link is kept with the conversation and written as internal lines; bad ids change nothing.
#[tokio::test]
async fn a_conversation_is_linked_to_the_hosts_customer_record() {
    use messenger_channel::ids::CustomerRecordId;
    let d = desk(two_queues(), &["ada", "bob"]);
    let c = d.active_with("c1", "ada", secs(1)).await;
    d.engine
        .link_customer_record(c.id(), None, Some("contact-42".into()), secs(2))
        .await
        .unwrap();
    assert_eq!(
        d.open("c1").await.customer_record(),
        Some(&CustomerRecordId::from("contact-42"))
    );
    let refused = d
        .engine
        .link_customer_record(c.id(), Some(&agent("bob")), Some("x".into()), secs(3))
        .await
        .unwrap_err();
    assert!(matches!(refused, EngineError::Transition(_)), "{refused:?}");
    for bad in ["", "a\u{7}b"] {
        let refused = d
            .engine
            .link_customer_record(c.id(), None, Some(bad.into()), secs(3))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, EngineError::InvalidCustomerRecord(_)),
            "{refused:?}"
        );
    }
    d.engine
        .link_customer_record(
            c.id(),
            Some(&agent("ada")),
            Some("account-7".into()),
            secs(4),
        )
        .await
        .unwrap();
    let linked = d.open("c1").await;
    assert_eq!(
        linked.customer_record(),
        Some(&CustomerRecordId::from("account-7"))
    );
    let lines = d.store.transcript(linked.id()).await.unwrap();
    assert_eq!(
        internal(&lines)
            .into_iter()
            .filter(|(_, i)| matches!(i, Internal::RecordLinked { .. }))
            .collect::<Vec<_>>(),
        [
            (
                Author::System,
                Internal::RecordLinked {
                    record: Some("contact-42".into())
                }
            ),
            (
                Author::Agent(agent("ada")),
                Internal::RecordLinked {
                    record: Some("account-7".into())
                }
            )
        ]
    );
    assert!(d.send.sent().is_empty(), "nothing reaches the customer");

    // The customer's next conversation is linked to the same record from its start.
    let sam = Supervisor::new(agent("sam"));
    d.engine.force_close(&sam, c.id(), secs(5)).await.unwrap();
    d.write("c1", "m_again", "me again", secs(6)).await;
    let next = d.open("c1").await;
    assert_ne!(next.id(), c.id());
    assert_eq!(
        next.customer_record(),
        Some(&CustomerRecordId::from("account-7"))
    );
    // Another customer's is not.
    d.write("c2", "m_other", "hello", secs(7)).await;
    assert_eq!(d.open("c2").await.customer_record(), None);
}

/// `{AgentName}` is the host's display name for the agent when it has one, else the id.
#[tokio::test]
async fn the_agent_joined_message_names_the_agent_as_the_host_does() {
    let names: messenger_channel::engine::AgentNames =
        Arc::new(|a: &AgentId| (a.as_str() == "ada").then(|| "Ada Lovelace".to_owned()));
    let d = desk_named(with_messages(), &["ada", "bob"], Some(names));
    let c = d.active_with("c1", "ada", secs(1)).await;
    d.engine
        .transfer_to_agent(c.id(), &agent("ada"), &agent("bob"), None, secs(2))
        .await
        .unwrap();
    d.engine
        .accept(c.id(), &agent("bob"), secs(3))
        .await
        .unwrap();
    assert_eq!(
        d.sent_texts(),
        [
            "Hello! We will be with you shortly.",
            "Ada Lovelace joined the conversation.",
            "We are transferring you.",
            "bob joined the conversation."
        ]
    );
}

/// While another app (the Page inbox, a bot) holds the thread, no automated message is sent
/// over it: a transfer, a supervisor's close say nothing to the customer.
#[tokio::test]
async fn nothing_automated_is_sent_over_a_thread_another_app_holds() {
    use messenger_channel::ids::AppId;
    let d = desk(with_messages(), &["ada", "bob"]);
    let c = d.active_with("c1", "ada", secs(1)).await;
    let before = d.sent_texts().len();
    let (h, b) =
        signed(webhook().take_thread_control("c1", AppId(1), AppId(263_902_037_430_900), secs(2)));
    d.engine.handle_webhook(&h, &b, secs(2)).await.unwrap();
    assert!(d.open("c1").await.is_paused());
    d.engine
        .transfer_to_queue(c.id(), &agent("ada"), &q("billing"), None, secs(3))
        .await
        .unwrap();
    let sam = Supervisor::new(agent("sam"));
    d.engine.force_close(&sam, c.id(), secs(4)).await.unwrap();
    assert_eq!(d.sent_texts().len(), before, "{:?}", d.sent_texts());
    assert!(d.latest("c1").await.is_closed());
}

/// The place in the queue is counted over the whole queue, not a page of it: the 502nd
/// customer waiting is told 502.
#[tokio::test]
async fn the_place_in_the_queue_is_right_past_a_page_of_it() {
    let d = desk(with_messages(), &[]);
    for i in 0..502u64 {
        d.write(&format!("c{i}"), &format!("m{i}"), "hello", secs(1 + i))
            .await;
    }
    let told = d
        .send
        .sent()
        .into_iter()
        .filter(|s| s.body["recipient"]["id"] == "c501")
        .filter_map(|s| s.body["message"]["text"].as_str().map(str::to_owned))
        .collect::<Vec<_>>();
    assert_eq!(
        told.last().map(String::as_str),
        Some("All agents are busy; you are number 502 in the queue.")
    );
}

/// Notes are held to a size: one longer than `NOTE_MAX_CHARS` is refused with a typed error
/// and records nothing; one at the limit is recorded.
#[tokio::test]
async fn a_note_too_long_is_refused_and_records_nothing() {
    use messenger_channel::engine::NOTE_MAX_CHARS;
    let d = desk(two_queues(), &["ada", "bob"]);
    let c = d.active_with("c1", "ada", secs(1)).await;
    let long = "é".repeat(NOTE_MAX_CHARS + 1);
    let sam = Supervisor::new(agent("sam"));
    let refusals = [
        d.engine
            .add_note(c.id(), &agent("ada"), &long, secs(2))
            .await,
        d.engine.supervisor_note(&sam, c.id(), &long, secs(2)).await,
        d.engine
            .transfer_to_agent(c.id(), &agent("ada"), &agent("bob"), Some(&long), secs(2))
            .await,
        d.engine
            .transfer_to_queue(c.id(), &agent("ada"), &q("billing"), Some(&long), secs(2))
            .await,
    ];
    for refused in refusals {
        assert!(
            matches!(refused, Err(EngineError::NoteTooLong { chars, max })
                if chars == NOTE_MAX_CHARS + 1 && max == NOTE_MAX_CHARS),
            "{refused:?}"
        );
    }
    assert!(internal(&d.transcript(&c).await).is_empty());
    assert_eq!(d.open("c1").await.state(), c.state(), "not transferred");
    let at_limit = "é".repeat(NOTE_MAX_CHARS);
    d.engine
        .add_note(c.id(), &agent("ada"), &at_limit, secs(3))
        .await
        .unwrap();
    assert_eq!(internal(&d.transcript(&c).await).len(), 1);
}
