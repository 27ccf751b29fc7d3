//! Reservations, affinity and presence effects against the conversation's own offer (from a
//! hostile review; each test failed before its fix): a stale tick's renewal of a live offer's
//! reservation set back to the offer's end, affinity kept when the customer writes again while
//! the conversation waits, a presence effect recorded by an earlier build still read.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use messenger_channel::agents::{AgentRouter, InMemoryRouter, Presence, RecordingNotifier};
use messenger_channel::conversation::{ConversationConfig, Effect, State};
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

fn build_with(
    store: Arc<dyn ConversationStore>,
    router: Arc<dyn AgentRouter>,
    config: ConversationConfig,
) -> Engine {
    Engine::builder(Webhook::new(&secret()), Arc::new(FakeSend::new()))
        .store(store)
        .router(router)
        .notifier(Arc::new(RecordingNotifier::new()))
        .routing(Routing::new(Queue::push(QueueId::from("general"))))
        .config(config)
        .build()
}

/// S1. Two instances' ticks race for the same waiting conversations (every instance runs the
/// queue pass each second). e2's pass (begun at 11) read the queue [c0, c1] before e1's pass
/// (begun at 10) offered both to a; e2 then reserves a for c1 again: a's own row is renewed
/// to 11 + T, past the offer's expiry (10 + T), and e2's `OfferTo` is refused ("offer
/// outstanding", the store shows c1 offered to a: nothing is ended). When a rejects c1, the
/// offer's end carries 10 + T and leaves the row: a's unit stays reserved for a conversation
/// a declined, until 11 + T. Before 8f7279d the end deleted it.
#[tokio::test]
async fn a_stale_ticks_renewal_outlives_the_offer_and_the_offers_end_leaves_it() {
    let store = Arc::new(InMemoryStore::new());
    let router = Arc::new(InMemoryRouter::new());
    let a = AgentId::from("a");
    router.set_capacity(&a, 3);
    let gate = GatedRouter::new(router.clone());
    let config = ConversationConfig::default();
    let e1 = Arc::new(build_with(store.clone(), gate.clone(), config.clone()));
    let e2 = Arc::new(build_with(store.clone(), gate.clone(), config.clone()));
    // Nobody is available when they write: both wait.
    receive(&e1, "c0", "m0", secs(1)).await;
    receive(&e1, "c1", "m1", secs(2)).await;
    let (c1, _) = id_of(&*store, "c1").await;
    router.set_presence(&a, Presence::Available);
    // e2's pass reads [c0, c1] and is held right after reserving a for c0.
    gate.hold_reserve.store(true, Ordering::SeqCst);
    let entered = gate.entered.notified();
    let t2 = tokio::spawn({
        let e2 = e2.clone();
        async move { e2.tick(secs(11)).await }
    });
    entered.await;
    // e1's pass offers c0 and c1 to a.
    e1.tick(secs(10)).await.unwrap();
    let (_, state) = id_of(&*store, "c1").await;
    assert!(
        matches!(&state, State::Open { offer: Some(o) } if o.agent == a && o.expires_at == secs(10) + config.offer_timeout),
        "{state:?}"
    );
    // e2 goes on: its offers are refused (c0, then c1 after renewing a's row of it).
    gate.go.notify_one();
    t2.await.unwrap().unwrap();
    let used = |at: SystemTime| {
        let router = router.clone();
        let a = a.clone();
        async move { router.agent_status(&a, at).await.unwrap().unwrap().used }
    };
    assert_eq!(used(secs(12)).await, 2, "c0 and c1 are offered to a");
    // a rejects c1: its reservation ends; c0's offer alone counts.
    e1.reject(&c1, &a, secs(12)).await.unwrap();
    e1.tick(secs(13)).await.unwrap();
    assert_eq!(
        used(secs(13)).await,
        1,
        "a declined c1: only c0's offer holds a unit (c1's renewed reservation was left)"
    );
}

/// S2. Affinity is kept while a revived conversation waits, and the tick and a thread passed
/// back ask with it, but the customer's next message asks for an offer with no preference:
/// both agents free again, the customer writes before the next tick, and c1 goes to b.
#[tokio::test]
async fn a_revived_conversation_keeps_its_affinity_when_the_customer_writes_again() {
    let store = Arc::new(InMemoryStore::new());
    let router = Arc::new(InMemoryRouter::new());
    let (a, b) = (AgentId::from("a"), AgentId::from("b"));
    let engine = build_with(
        store.clone(),
        router.clone(),
        ConversationConfig::default().agent_affinity(true),
    );
    router.set_presence(&a, Presence::Available);
    receive(&engine, "c1", "m1", secs(1)).await;
    let (c1, _) = id_of(&*store, "c1").await;
    engine.accept(&c1, &a, secs(2)).await.unwrap();
    engine.close_session(&c1, &a, secs(3)).await.unwrap();
    // Nobody can take it when the customer writes again: it waits with a as its preference.
    router.set_presence(&a, Presence::Away);
    receive(&engine, "c1", "m2", secs(4)).await;
    let waiting = store.load(&c1).await.unwrap().unwrap().conversation;
    assert_eq!(waiting.preferred_agent(), Some(&a));
    // Both come back; b would be chosen first without affinity (never given work). The
    // customer writes once more before any tick.
    router.set_presence(&a, Presence::Available);
    router.set_presence(&b, Presence::Available);
    receive(&engine, "c1", "m3", secs(5)).await;
    let (_, state) = id_of(&*store, "c1").await;
    assert!(
        matches!(&state, State::Open { offer: Some(o) } if o.agent == a),
        "offered to its agent first: {state:?}"
    );
}

/// S3. `Effect::SetPresence` gained `offered_at` with no serde default: an outbox row written
/// before 91ef1d7 no longer decodes. The SQL stores decode a whole claimed batch at once
/// (`claim_effects`: `collect::<Result<_>>`), so one such row fails every `deliver_due`
/// until it is removed by hand. `OfferEnded::until`, added in the same round, has the default.
#[test]
fn a_set_presence_recorded_before_offered_at_still_decodes() {
    let now = Effect::SetPresence {
        agent: AgentId::from("a"),
        presence: Presence::Away,
        ended_at: t0(),
    };
    let mut old = serde_json::to_value(&now).unwrap();
    let fields = old
        .as_object_mut()
        .and_then(|o| o.values_mut().next())
        .and_then(|v| v.as_object_mut())
        .expect("externally tagged");
    assert!(fields.remove("ended_at").is_some());
    // The control: an OfferEnded recorded before `until` decodes.
    let mut ended = serde_json::to_value(Effect::offer_ended(AgentId::from("a"), t0())).unwrap();
    ended
        .as_object_mut()
        .and_then(|o| o.values_mut().next())
        .and_then(|v| v.as_object_mut())
        .unwrap()
        .remove("until");
    assert!(serde_json::from_value::<Effect>(ended).is_ok());
    let decoded = serde_json::from_value::<Effect>(old.clone());
    assert!(
        decoded.is_ok(),
        "a SetPresence recorded before 91ef1d7 must decode: {old} -> {decoded:?}"
    );
}

/// S1 on SQLite (the store as conversation store and router): the stale instance's renewal
/// (`RENEW_OFFER` extends the row) is set back to the offer's end when its offer is refused,
/// so the offer's end (`END_RESERVATION_UNTIL`) ends it.
#[cfg(feature = "sqlite")]
#[tokio::test]
async fn on_sqlite_a_renewal_past_the_offer_outlives_the_offers_end() {
    use support::faulty_store::{Fault, FaultyStore};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        messenger_channel::store::SqliteStore::open(dir.path().join("c.db"))
            .await
            .unwrap(),
    );
    let a = AgentId::from("a");
    let config = ConversationConfig::default();
    let engine = build_with(store.clone(), store.clone(), config.clone());
    // c1 waits (nobody available); another instance reads the queue now.
    receive(&engine, "c1", "m1", secs(1)).await;
    let (c1, _) = id_of(&*store, "c1").await;
    let behind = Arc::new(FaultyStore::new(store.clone(), 0, Fault::FailBefore));
    *behind.stale_queue.lock().unwrap() = Some(store.list_queued().await.unwrap());
    let lagging = build_with(behind.clone(), store.clone(), config.clone());
    store
        .update_presence(&a, Presence::Available)
        .await
        .unwrap();
    engine.tick(secs(2)).await.unwrap();
    let (_, state) = id_of(&*store, "c1").await;
    assert!(
        matches!(&state, State::Open { offer: Some(o) } if o.agent == a),
        "{state:?}"
    );
    // The other instance's tick, on its old reading, reserves a for c1 again at 3 (renewing
    // a's row past the offer) and its offer is refused.
    let _ = lagging.tick(secs(3)).await;
    assert_eq!(
        store.agent_status(&a, secs(3)).await.unwrap().unwrap().used,
        1,
        "counted once"
    );
    engine.reject(&c1, &a, secs(4)).await.unwrap();
    let used = store.agent_status(&a, secs(5)).await.unwrap().unwrap().used;
    assert_eq!(used, 0, "a declined c1: nothing of it is reserved");
}
