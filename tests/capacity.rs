//! An agent's capacity as the router counts it stays right when router effects arrive late
//! or in another order than the steps that made them: a tick that read the queue before
//! another instance's offer, a release retried after a revive, a close committed while an
//! accept's session was on its way to the router. (Found by a hostile review; each test
//! failed before the fix.)

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use messenger_channel::agents::{AgentRouter, InMemoryRouter, Presence, RecordingNotifier};
use messenger_channel::conversation::State;
use messenger_channel::engine::Engine;
use messenger_channel::ids::{AgentId, QueueId};
use messenger_channel::routing::{Queue, Routing};
use messenger_channel::store::{ConversationStore, InMemoryStore};
use messenger_channel::testing::{FakeSend, t0};
use messenger_channel::webhook::Webhook;
use support::channel::{id_of, receive, secret};
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

#[tokio::test]
async fn a_tick_with_a_stale_queue_never_frees_an_outstanding_offer() {
    let inner = Arc::new(InMemoryStore::new());
    let router = Arc::new(InMemoryRouter::new());
    let a = AgentId::from("a");
    router.set_capacity(&a, 1);
    let e1 = build(inner.clone(), router.clone());
    let behind = Arc::new(support::faulty_store::FaultyStore::new(
        inner.clone(),
        0,
        support::faulty_store::Fault::FailBefore,
    ));
    let e2 = build(behind.clone(), router.clone());

    receive(&e1, "c1", "m1", secs(1)).await;
    // Instance 2 read the queue before instance 1's offer (its `list_queued` ran first).
    *behind.stale_queue.lock().unwrap() = Some(inner.list_queued().await.unwrap());
    router.set_presence(&a, Presence::Available);
    e1.tick(secs(2)).await.unwrap();
    let (c1, state) = id_of(&*inner, "c1").await;
    assert!(
        matches!(state, State::Open { offer: Some(ref o) } if o.agent == a),
        "{state:?}"
    );
    let used = |at| {
        let router = router.clone();
        let a = a.clone();
        async move { router.agent_status(&a, at).await.unwrap().unwrap().used }
    };
    assert_eq!(used(secs(2)).await, 1);
    let _ = e2.tick(secs(3)).await;
    *behind.stale_queue.lock().unwrap() = None;
    let (_, state) = id_of(&*inner, "c1").await;
    assert!(
        matches!(state, State::Open { offer: Some(ref o) } if o.agent == a),
        "still offered to a: {state:?}"
    );
    let used_now = used(secs(3)).await;
    // Consequence: another conversation is offered to a, who accepts both.
    receive(&e1, "c2", "m2", secs(4)).await;
    let (c2, state2) = id_of(&*inner, "c2").await;
    let both = if matches!(state2, State::Open { offer: Some(ref o) } if o.agent == a) {
        e1.accept(&c1, &a, secs(5)).await.unwrap();
        e1.accept(&c2, &a, secs(5)).await.unwrap();
        router.load(&a)
    } else {
        0
    };
    assert_eq!(
        (used_now, both),
        (1, 0),
        "a's outstanding offer must count (used {used_now}); a ended with load {both} for capacity 1"
    );
}

#[tokio::test]
async fn a_late_session_release_never_ends_the_revived_session() {
    let store = Arc::new(InMemoryStore::new());
    let inner = Arc::new(InMemoryRouter::new());
    let a = AgentId::from("a");
    inner.set_capacity(&a, 1);
    inner.set_presence(&a, Presence::Available);
    let flaky = GatedRouter::new(inner.clone());
    let e = build(store.clone(), flaky.clone());
    receive(&e, "c1", "m1", secs(1)).await;
    let (c1, _) = id_of(&*store, "c1").await;
    e.accept(&c1, &a, secs(2)).await.unwrap();
    assert_eq!(inner.load(&a), 1);
    flaky.fail_release_once.store(true, Ordering::SeqCst);
    e.close_session(&c1, &a, secs(3)).await.unwrap();
    e.revive(&c1, &a, secs(4)).await.unwrap();
    assert_eq!(inner.load(&a), 1, "revived");
    // The release retried after its backoff.
    let _ = e.tick(secs(30)).await;
    let c = store.load(&c1).await.unwrap().unwrap().conversation;
    assert!(matches!(c.state(), State::Active { agent } if *agent == a));
    assert_eq!(
        inner.load(&a),
        1,
        "a holds c1 Active; its session must count"
    );
}

#[tokio::test]
async fn a_close_between_accept_and_its_session_start_leaks_no_session() {
    let store = Arc::new(InMemoryStore::new());
    let inner = Arc::new(InMemoryRouter::new());
    let a = AgentId::from("a");
    inner.set_capacity(&a, 1);
    inner.set_presence(&a, Presence::Available);
    let flaky = GatedRouter::new(inner.clone());
    let e = Arc::new(build(store.clone(), flaky.clone()));
    receive(&e, "c1", "m1", secs(1)).await;
    let (c1, _) = id_of(&*store, "c1").await;
    flaky.hold_start.store(true, Ordering::SeqCst);
    let accepting = {
        let (e, c1, a) = (e.clone(), c1.clone(), a.clone());
        tokio::spawn(async move { e.accept(&c1, &a, secs(2)).await })
    };
    // Accept is committed; its SessionStarted is on its way to the router.
    flaky.entered.notified().await;
    let sam = messenger_channel::engine::Supervisor::new(AgentId::from("sam"));
    e.force_close(&sam, &c1, secs(3)).await.unwrap();
    flaky.go.notify_one();
    accepting.await.unwrap().unwrap();
    let c = store.load(&c1).await.unwrap().unwrap().conversation;
    assert!(c.is_closed());
    let _ = e.tick(secs(600)).await;
    assert_eq!(inner.load(&a), 0, "c1 is closed: a holds no session of it");
}

/// An accept whose session fails to reach the router (a blip) keeps the offer's reservation
/// counting until the session is started on retry: the agent's capacity is never free in
/// between for another conversation.
#[tokio::test]
async fn an_accept_whose_session_start_fails_keeps_the_capacity_taken() {
    let store = Arc::new(InMemoryStore::new());
    let inner = Arc::new(InMemoryRouter::new());
    let a = AgentId::from("a");
    inner.set_capacity(&a, 1);
    inner.set_presence(&a, Presence::Available);
    let flaky = GatedRouter::new(inner.clone());
    let e = build(store.clone(), flaky.clone());
    receive(&e, "c1", "m1", secs(1)).await;
    let (c1, _) = id_of(&*store, "c1").await;
    let used = || async { inner.agent_status(&a, secs(2)).await.unwrap().unwrap().used };
    assert_eq!(used().await, 1, "the offer");
    flaky.fail_start.store(true, Ordering::SeqCst);
    e.accept(&c1, &a, secs(2)).await.unwrap();
    assert_eq!(used().await, 1, "the offer's reservation still counts");
    // A second customer is not offered to a in between.
    receive(&e, "c2", "m2", secs(3)).await;
    let (_, state) = id_of(&*store, "c2").await;
    assert!(matches!(state, State::Open { offer: None }), "{state:?}");
    // The retried start makes it a session.
    let _ = e.tick(secs(60)).await;
    assert_eq!(inner.load(&a), 1);
    assert_eq!(used().await, 1);
}

/// A tick gives each waiting conversation another chance at an offer, but a queue for which
/// nobody is free costs no decision; a conversation that excludes
/// an agent (who declined it) does not make the queue look full for the others.
#[tokio::test]
async fn a_tick_asks_once_for_a_queue_nobody_can_take() {
    let store = Arc::new(InMemoryStore::new());
    let inner = Arc::new(InMemoryRouter::new());
    let a = AgentId::from("a");
    inner.set_capacity(&a, 1);
    inner.set_presence(&a, Presence::Available);
    let flaky = GatedRouter::new(inner.clone());
    let counted = Arc::new(support::faulty_store::FaultyStore::new(
        store.clone(),
        0,
        support::faulty_store::Fault::FailBefore,
    ));
    let e = build(counted.clone(), flaky.clone());
    for (i, customer) in ["c1", "c2", "c3", "c4", "c5"].into_iter().enumerate() {
        receive(&e, customer, &format!("m{i}"), secs(1 + i as u64)).await;
    }
    let (c1, state) = id_of(&*store, "c1").await;
    assert!(matches!(state, State::Open { offer: Some(ref o) } if o.agent == a));
    // a is full: four wait. A tick asks once for them.
    let calls = || flaky.reserve_calls.load(Ordering::SeqCst);
    let before = calls();
    e.tick(secs(10)).await.unwrap();
    assert_eq!(
        calls() - before,
        0,
        "no decision for a queue nobody can take"
    );
    assert_eq!(
        counted.list_queued_calls.load(Ordering::SeqCst),
        0,
        "nor a read of the waiting conversations"
    );
    // a declines c1: c1 excludes a and finds nobody; c2, which excludes nobody, gets a in the
    // same tick.
    e.reject(&c1, &a, secs(11)).await.unwrap();
    let (_, state) = id_of(&*store, "c2").await;
    let offered_c2 = matches!(state, State::Open { offer: Some(ref o) } if o.agent == a);
    if !offered_c2 {
        e.tick(secs(12)).await.unwrap();
    }
    let (_, state) = id_of(&*store, "c2").await;
    assert!(
        matches!(state, State::Open { offer: Some(ref o) } if o.agent == a),
        "{state:?}"
    );
}
