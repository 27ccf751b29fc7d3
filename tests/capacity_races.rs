//! More orderings of router effects and ticks (found by a second hostile review; each test
//! failed before its fix): a release that restores a session after another close, a
//! conversation the router still sees as held at the head of the queue, a stale tick against
//! an accept whose session start is retried, and conversations another app holds filling the
//! head of a queue.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use messenger_channel::agents::{AgentRouter, InMemoryRouter, Presence, RecordingNotifier};
use messenger_channel::conversation::State;
use messenger_channel::engine::Engine;
use messenger_channel::ids::{AgentId, ConversationId, PageId, QueueId, UserId};
use messenger_channel::routing::{Queue, Routing};
use messenger_channel::store::{ConversationStore, InMemoryStore};
use messenger_channel::testing::{FakeSend, t0};
use messenger_channel::webhook::Webhook;
use support::channel::{PAGE, id_of, receive, secret};
use support::gated_router::GatedRouter;

fn secs(n: u64) -> SystemTime {
    t0() + Duration::from_secs(n)
}

fn build(store: Arc<dyn ConversationStore>, router: Arc<dyn AgentRouter>) -> Engine {
    Engine::builder(Webhook::new(&secret()), Arc::new(FakeSend::new()))
        .store(store)
        .router(router)
        .notifier(Arc::new(RecordingNotifier::new()))
        .routing(Routing::new(Queue::push(QueueId::from("general"))))
        .build()
}

use messenger_channel::conversation::{Conversation, ConversationConfig, Inbound, LineBody};
use messenger_channel::store::Commit;

/// 500 older conversations the Page inbox holds (standby, paused) fill the tick's page of the
/// queue: a customer waiting behind them is never offered to the free agent by a tick.
#[tokio::test]
async fn conversations_another_app_holds_never_starve_the_queue() {
    let store = Arc::new(InMemoryStore::new());
    let router = Arc::new(InMemoryRouter::new());
    let a = AgentId::from("a");
    router.set_capacity(&a, 1);
    let e = build(store.clone(), router.clone());
    let config = ConversationConfig::default();
    for i in 0..500 {
        let (c, _) = Conversation::start_in_queue(
            Some(QueueId::from("general")),
            ConversationId::from(format!("p{i}").as_str()),
            PageId::new(PAGE.to_owned()),
            UserId::new(format!("p{i}")),
            Inbound::new(None, vec![LineBody::Text("hi".into())]).on_standby(true),
            t0(),
            &config,
        );
        assert!(!c.awaits_offer());
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
    // Nobody is available when c1 writes: it waits.
    receive(&e, "c1", "m1", secs(1)).await;
    router.set_presence(&a, Presence::Available);
    for k in 0..3 {
        e.tick(secs(10 + k)).await.unwrap();
    }
    let (_, state) = id_of(&*store, "c1").await;
    assert!(
        matches!(state, State::Open { offer: Some(ref o) } if o.agent == a),
        "a is free and c1 waits, yet no tick offers it: {state:?}"
    );
}

/// The release's "taken back while it was being released" branch starts the session again
/// without checking afterwards: a close committed (and released) in between leaves a session
/// of a Waiting conversation that nothing ever releases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_racing_a_revive_and_a_close_leaks_no_session() {
    let store = Arc::new(InMemoryStore::new());
    let inner = Arc::new(InMemoryRouter::new());
    let a = AgentId::from("a");
    inner.set_capacity(&a, 1);
    inner.set_presence(&a, Presence::Available);
    let gate = GatedRouter::new(inner.clone());
    let e = Arc::new(build(store.clone(), gate.clone()));
    receive(&e, "c1", "m1", secs(1)).await;
    let (c1, _) = id_of(&*store, "c1").await;
    e.accept(&c1, &a, secs(2)).await.unwrap();
    assert_eq!(inner.load(&a), 1);
    // R1: a closes the session; its release is held at the router.
    gate.hold_release.store(true, Ordering::SeqCst);
    let r1 = {
        let (e, c1, a) = (e.clone(), c1.clone(), a.clone());
        tokio::spawn(async move { e.close_session(&c1, &a, secs(3)).await })
    };
    gate.entered.notified().await;
    // a revives (S3: the session row is still there; started again, checked, done).
    e.revive(&c1, &a, secs(4)).await.unwrap();
    // R1 goes on: releases, reads "held again", and goes to start it again: held there.
    gate.hold_start.store(true, Ordering::SeqCst);
    gate.go.notify_one();
    gate.entered.notified().await;
    // a closes the session again (R4: released, checked, done).
    e.close_session(&c1, &a, secs(5)).await.unwrap();
    // R1's restore lands.
    gate.go.notify_one();
    r1.await.unwrap().unwrap();
    let _ = e.tick(secs(60)).await;
    let c = store.load(&c1).await.unwrap().unwrap().conversation;
    assert!(
        matches!(c.state(), State::Waiting { .. }),
        "{:?}",
        c.state()
    );
    assert_eq!(inner.load(&a), 0, "c1 is Waiting: a holds no session of it");
}

/// A conversation the router still sees as held (its holder's release is being retried)
/// answers "nobody" without any decision being made; the tick takes that for a full queue
/// and passes over the newer conversations, though an agent is free for them.
#[tokio::test]
async fn a_held_conversation_at_the_head_of_the_queue_does_not_stop_the_tick() {
    let store = Arc::new(InMemoryStore::new());
    let inner = Arc::new(InMemoryRouter::new());
    let (a, b) = (AgentId::from("a"), AgentId::from("b"));
    inner.set_capacity(&a, 1);
    inner.set_capacity(&b, 1);
    inner.set_presence(&a, Presence::Available);
    let gate = GatedRouter::new(inner.clone());
    let e = Engine::builder(Webhook::new(&secret()), Arc::new(FakeSend::new()))
        .store(store.clone())
        .router(gate.clone())
        .notifier(Arc::new(RecordingNotifier::new()))
        .routing(Routing::new(Queue::push(QueueId::from("general"))))
        .config(ConversationConfig::default().reoffer_interval(Duration::ZERO))
        .build();
    receive(&e, "c1", "m1", secs(1)).await;
    let (c1, _) = id_of(&*store, "c1").await;
    e.accept(&c1, &a, secs(2)).await.unwrap();
    // a's release keeps failing (a store blip that lasts): c1 is back in the queue, and
    // the router still holds a's session of it.
    gate.fail_release.store(true, Ordering::SeqCst);
    e.transfer_to_queue(&c1, &a, &QueueId::from("general"), None, secs(3))
        .await
        .unwrap();
    receive(&e, "c2", "m2", secs(4)).await;
    inner.set_presence(&b, Presence::Available);
    for k in 0..3 {
        let _ = e.tick(secs(10 + k)).await;
    }
    let (_, state) = id_of(&*store, "c2").await;
    assert!(
        matches!(state, State::Open { offer: Some(ref o) } if o.agent == b),
        "b is free and c2 excludes nobody, yet no tick offers it: {state:?}"
    );
}

/// A tick that read the queue before an offer was made and accepted renews the accepted
/// offer's reservation (its session start is being retried), is refused with "Active" (not
/// "offer outstanding"), and ends that reservation: a's units are free until the retry.
#[tokio::test]
async fn a_stale_tick_never_frees_an_accepted_offer_whose_session_start_is_retried() {
    let inner = Arc::new(InMemoryStore::new());
    let router = Arc::new(InMemoryRouter::new());
    let a = AgentId::from("a");
    router.set_capacity(&a, 1);
    let gate = GatedRouter::new(router.clone());
    let e1 = build(inner.clone(), gate.clone());
    let behind = Arc::new(support::faulty_store::FaultyStore::new(
        inner.clone(),
        0,
        support::faulty_store::Fault::FailBefore,
    ));
    let e2 = build(behind.clone(), gate.clone());
    receive(&e1, "c1", "m1", secs(1)).await;
    *behind.stale_queue.lock().unwrap() = Some(inner.list_queued().await.unwrap());
    router.set_presence(&a, Presence::Available);
    e1.tick(secs(2)).await.unwrap();
    let (c1, _) = id_of(&*inner, "c1").await;
    gate.fail_start.store(true, Ordering::SeqCst);
    e1.accept(&c1, &a, secs(3)).await.unwrap();
    let used = || async {
        router
            .agent_status(&a, secs(4))
            .await
            .unwrap()
            .unwrap()
            .used
    };
    assert_eq!(used().await, 1, "the accepted offer's reservation counts");
    // Instance 2's tick, on its old page (only its queue pass matters here).
    let _ = e2.tick(secs(4)).await;
    assert_eq!(
        used().await,
        1,
        "a holds c1 (its session start is retried): a's units must count"
    );
}

/// A session start delivered late takes the units of the queue the conversation is in now:
/// an accept in a one-unit queue whose start stalls, then a transfer to a three-unit queue
/// and the same agent given it again there, leaves the agent with three units in use, not
/// one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_session_start_takes_the_units_of_the_queue_it_is_in_now() {
    let store = Arc::new(InMemoryStore::new());
    let inner = Arc::new(InMemoryRouter::new());
    let a = AgentId::from("a");
    inner.set_capacity(&a, 10);
    inner.set_presence(&a, Presence::Available);
    let gate = GatedRouter::new(inner.clone());
    let e = Arc::new(
        Engine::builder(Webhook::new(&secret()), Arc::new(FakeSend::new()))
            .store(store.clone())
            .router(gate.clone())
            .notifier(Arc::new(RecordingNotifier::new()))
            .routing(
                Routing::new(Queue::push(QueueId::from("general")))
                    .add_queue(Queue::push(QueueId::from("big")).capacity_units(3)),
            )
            .build(),
    );
    receive(&e, "c1", "m1", secs(1)).await;
    let (c1, _) = id_of(&*store, "c1").await;
    // The accept's session start stalls at the router.
    gate.hold_start.store(true, Ordering::SeqCst);
    let accepting = {
        let (e, c1, a) = (e.clone(), c1.clone(), a.clone());
        tokio::spawn(async move { e.accept(&c1, &a, secs(2)).await })
    };
    gate.entered.notified().await;
    // a transfers it to the three-unit queue (where a, who gave it away, is not offered
    // it); a supervisor gives it back to a there.
    e.transfer_to_queue(&c1, &a, &QueueId::from("big"), None, secs(3))
        .await
        .unwrap();
    let sam = messenger_channel::engine::Supervisor::new(AgentId::from("sam"));
    e.assign(&sam, &c1, &a, secs(4)).await.unwrap();
    let (_, state) = id_of(&*store, "c1").await;
    assert!(
        matches!(state, State::Active { ref agent } if *agent == a),
        "{state:?}"
    );
    // The stalled start lands last.
    gate.go.notify_one();
    accepting.await.unwrap().unwrap();
    let used = inner.agent_status(&a, secs(5)).await.unwrap().unwrap().used;
    assert_eq!(used, 3, "a holds c1 in the three-unit queue");
}

/// An offer's end delivered late (its router write failed, then retried) while the same
/// agent is offered the conversation again: between the new reservation and the new offer's
/// commit the store shows no offer, so only the reservations' holds tell the two apart. The
/// late end must leave the new reservation, or the agent's capacity is free while they are
/// offered the conversation, and a second conversation is offered to them past capacity.
#[tokio::test]
async fn a_late_offer_end_leaves_the_reservation_of_the_next_offer_to_the_agent() {
    let inner = Arc::new(InMemoryStore::new());
    let router = Arc::new(InMemoryRouter::new());
    let a = AgentId::from("a");
    router.set_capacity(&a, 1);
    router.set_presence(&a, Presence::Available);
    let gate = GatedRouter::new(router.clone());
    let e1 = Arc::new(build(inner.clone(), gate.clone()));
    let e2 = build(inner.clone(), gate.clone());
    let config = ConversationConfig::default();
    receive(&e1, "c1", "m1", secs(1)).await;
    let (c1, state) = id_of(&*inner, "c1").await;
    assert!(
        matches!(&state, State::Open { offer: Some(o) } if o.agent == a),
        "{state:?}"
    );
    // a rejects it; the end of the offer's reservation fails and is retried later.
    gate.fail_offer_end.store(true, Ordering::SeqCst);
    e1.reject(&c1, &a, secs(2)).await.unwrap();
    let used = |at: SystemTime| {
        let router = router.clone();
        let a = a.clone();
        async move { router.agent_status(&a, at).await.unwrap().unwrap().used }
    };
    // Past the re-offer interval (and the first offer's hold), a tick offers it to a again;
    // hold that tick between the reservation and the offer's commit, and deliver the late
    // end meanwhile on the other instance.
    let later = secs(2) + config.reoffer_interval + config.offer_timeout + Duration::from_secs(1);
    gate.fail_offer_end.store(false, Ordering::SeqCst);
    gate.hold_reserve.store(true, Ordering::SeqCst);
    let entered = gate.entered.notified();
    let tick = tokio::spawn({
        let e1 = e1.clone();
        async move { e1.tick(later).await }
    });
    entered.await;
    e2.deliver_due(later + Duration::from_secs(3600))
        .await
        .unwrap();
    gate.go.notify_one();
    tick.await.unwrap().unwrap();
    let (_, state) = id_of(&*inner, "c1").await;
    assert!(
        matches!(&state, State::Open { offer: Some(o) } if o.agent == a),
        "offered to a again: {state:?}"
    );
    assert_eq!(
        used(later).await,
        1,
        "the new offer's reservation holds a's unit"
    );
    // So a second customer is not offered to a, who is at capacity.
    receive(&e2, "c2", "m2", later + Duration::from_secs(1)).await;
    let (_, state) = id_of(&*inner, "c2").await;
    assert_eq!(state, State::Open { offer: None }, "a is at capacity");
}

/// A tick's reading of the agents follows its own offers as the router counts them: an offer
/// that renews a reservation left by an instance that crashed before saving its offer counts
/// once, so the agent's remaining room is offered in the same tick (it was counted twice).
#[tokio::test]
async fn a_tick_counts_a_renewed_reservation_once() {
    let store = Arc::new(InMemoryStore::new());
    let router = Arc::new(InMemoryRouter::new());
    let a = AgentId::from("a");
    router.set_capacity(&a, 2);
    let e = build(store.clone(), router.clone());
    receive(&e, "c1", "m1", secs(1)).await;
    receive(&e, "c2", "m2", secs(2)).await;
    let (c1, _) = id_of(&*store, "c1").await;
    router.set_presence(&a, Presence::Available);
    // An instance reserved a for c1 and crashed before saving the offer.
    let queue = Queue::push(QueueId::from("general"));
    let orphan = router
        .reserve_offer(
            &c1,
            &messenger_channel::agents::OfferRequest::new(&queue, &[], None),
            messenger_channel::agents::Hold {
                at: secs(3),
                until: secs(3) + ConversationConfig::default().offer_timeout,
            },
        )
        .await
        .unwrap();
    assert_eq!(orphan.as_ref(), Some(&a));
    e.tick(secs(4)).await.unwrap();
    for customer in ["c1", "c2"] {
        let (_, state) = id_of(&*store, customer).await;
        assert!(
            matches!(&state, State::Open { offer: Some(o) } if o.agent == a),
            "{customer} is offered to a, who has room for both: {state:?}"
        );
    }
    assert_eq!(
        router
            .agent_status(&a, secs(4))
            .await
            .unwrap()
            .unwrap()
            .used,
        2
    );
}

/// Agent affinity holds at a tick: a conversation revived when its agent could not take it
/// waits with the preference, and the tick offers it to that agent first once they can.
#[tokio::test]
async fn a_tick_offers_a_revived_conversation_to_its_agent_first() {
    let store = Arc::new(InMemoryStore::new());
    let router = Arc::new(InMemoryRouter::new());
    let (a, b) = (AgentId::from("a"), AgentId::from("b"));
    let e = Engine::builder(Webhook::new(&secret()), Arc::new(FakeSend::new()))
        .store(store.clone())
        .router(router.clone())
        .notifier(Arc::new(RecordingNotifier::new()))
        .routing(Routing::new(Queue::push(QueueId::from("general"))))
        .config(ConversationConfig::default().agent_affinity(true))
        .build();
    router.set_presence(&a, Presence::Available);
    receive(&e, "c1", "m1", secs(1)).await;
    let (c1, _) = id_of(&*store, "c1").await;
    e.accept(&c1, &a, secs(2)).await.unwrap();
    e.close_session(&c1, &a, secs(3)).await.unwrap();
    // Nobody can take it when the customer writes again.
    router.set_presence(&a, Presence::Away);
    receive(&e, "c1", "m2", secs(4)).await;
    let (_, state) = id_of(&*store, "c1").await;
    assert_eq!(state, State::Open { offer: None });
    // Both come; b would be chosen first without affinity (never given work).
    router.set_presence(&a, Presence::Available);
    router.set_presence(&b, Presence::Available);
    e.tick(secs(5)).await.unwrap();
    let (_, state) = id_of(&*store, "c1").await;
    assert!(
        matches!(&state, State::Open { offer: Some(o) } if o.agent == a),
        "offered to its agent first: {state:?}"
    );
}

/// When the agents cannot be read, a tick tries no waiting conversation (each would fail
/// alike) and reports the failure; the next tick offers them.
#[tokio::test]
async fn a_tick_that_cannot_read_the_agents_tries_no_conversation_and_says_so() {
    let store = Arc::new(InMemoryStore::new());
    let router = Arc::new(InMemoryRouter::new());
    let a = AgentId::from("a");
    let gate = GatedRouter::new(router.clone());
    let e = build(store.clone(), gate.clone());
    receive(&e, "c1", "m1", secs(1)).await;
    router.set_presence(&a, Presence::Available);
    gate.fail_statuses.store(true, Ordering::SeqCst);
    let calls = gate.reserve_calls.load(Ordering::SeqCst);
    assert!(e.tick(secs(2)).await.is_err(), "the failure is reported");
    assert_eq!(
        gate.reserve_calls.load(Ordering::SeqCst),
        calls,
        "no conversation tried"
    );
    gate.fail_statuses.store(false, Ordering::SeqCst);
    e.tick(secs(3)).await.unwrap();
    let (_, state) = id_of(&*store, "c1").await;
    assert!(
        matches!(&state, State::Open { offer: Some(o) } if o.agent == a),
        "{state:?}"
    );
}
