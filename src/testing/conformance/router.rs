//! The [`AgentRouter`] contract as one suite ([`run_router`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{check_in, unique};
use crate::agents::{AgentRouter, Hold, OfferRequest, PickOutcome};
use crate::ids::{AgentId, ConversationId, QueueId, SkillId};
use crate::routing::{
    AgentProfile, AgentStatus, DEFAULT_AGENT_CAPACITY, Presence, Queue, SkillMatching,
};
use crate::testing::t0;

/// Each check's name and the contract it holds the router to.
const CHECKS: [(&str, &str); 10] = [
    (
        "agents_presence_and_profiles",
        "`upsert_agent` sets skills and capacity (a new agent is offline); `update_presence` sets presence (a new agent gets the default capacity); `agent_statuses` lists agents in id order, `agent_status` one or none",
    ),
    (
        "presence_after_an_offer_is_set_once",
        "`presence_after_offer` sets the presence only while the agent is Available, for an offer made after the last one that set it (the same offer again, or an older one, after the agent came back, changes nothing; a later offer does), and of two handles setting it for one offer at once exactly one does",
    ),
    (
        "a_renewal_unused_lapses_with_the_offer",
        "`renewal_unused` sets a reservation renewed for an offer that was not made back to the outstanding offer's end, unless renewed again since; the offer's end then ends it",
    ),
    (
        "offers_reserve_the_chosen_agent",
        "`reserve_offer` reserves the agent `choose_agent` decides on (available, capacity free, not excluded, skills allow, preferred first), once per conversation and agent (again: renewed, counted once); `session_started` turns it into a session, `offer_ended` ends a reservation and `session_released` a session, each only what it names, idempotently",
    ),
    (
        "reservations_lapse",
        "a reservation not turned into a session stops counting at its `until`, and the conversation can be reserved again",
    ),
    (
        "a_late_offer_end_leaves_a_renewed_reservation",
        "`offer_ended` given the `until` of an earlier offer's hold leaves the reservation renewed since for a later offer to the same agent; given the later one's, or none, it ends it",
    ),
    (
        "picks_reserve_capacity",
        "`reserve_pick` reserves for the agent whatever their presence, unless the conversation is reserved (`Taken`) or the agent's free capacity is short (`AtCapacity`)",
    ),
    (
        "concurrent_reservations_never_exceed_capacity",
        "offers and picks reserved at once through two handles never take an agent past capacity, and every unit free is reserved",
    ),
    (
        "offers_and_picks_race_for_one_agent",
        "offers and picks of different conversations for one agent, all at once and interleaved over two handles, reserve exactly the agent's capacity, no more; ended (as offers, or as sessions released), every unit is free again",
    ),
    (
        "a_pick_race_has_one_winner",
        "of agents picking one conversation at once through two handles, exactly one reserves it; a conversation picked is not offered, one on offer is not picked",
    ),
];

/// Runs every check of the [`AgentRouter`] contract against two handles on one backend: two
/// store values on one database (two connection pools), or the same in-memory router twice.
/// Races go through both.
///
/// The checks use agents and a skill named uniquely for the run, so the database may hold
/// other agents, and other runs may share it at the same time.
///
/// ```
/// use std::sync::Arc;
/// use messenger_channel::agents::{AgentRouter, InMemoryRouter};
/// use messenger_channel::testing::conformance;
///
/// #[tokio::main]
/// async fn main() {
///     let router: Arc<dyn AgentRouter> = Arc::new(InMemoryRouter::new());
///     conformance::run_router(router.clone(), router).await;
/// }
/// ```
///
/// | check | the contract |
/// |---|---|
/// | `agents_presence_and_profiles` | `upsert_agent` sets skills and capacity (a new agent is offline); `update_presence` sets presence (a new agent gets the default capacity); `agent_statuses` lists agents in id order, `agent_status` one or none |
/// | `presence_after_an_offer_is_set_once` | `presence_after_offer` sets the presence only while the agent is Available, for an offer made after the last one that set it; of two handles at once, exactly one sets it |
/// | `a_renewal_unused_lapses_with_the_offer` | `renewal_unused` sets a renewed reservation back to the outstanding offer's end, unless renewed since |
/// | `offers_reserve_the_chosen_agent` | `reserve_offer` reserves the agent `choose_agent` decides on, once per conversation and agent (again: renewed, counted once); `session_started` turns it into a session, `offer_ended` ends a reservation and `session_released` a session, each only what it names, idempotently |
/// | `reservations_lapse` | a reservation not turned into a session stops counting at its `until`, and the conversation can be reserved again |
/// | `a_late_offer_end_leaves_a_renewed_reservation` | `offer_ended` given an earlier offer's `until` leaves the reservation renewed for a later offer to the same agent; given the later one's, or none, it ends it |
/// | `picks_reserve_capacity` | `reserve_pick` reserves whatever the presence, unless the conversation is reserved (`Taken`) or the capacity is short (`AtCapacity`) |
/// | `concurrent_reservations_never_exceed_capacity` | offers and picks reserved at once through two handles never take an agent past capacity, and every unit free is reserved |
/// | `offers_and_picks_race_for_one_agent` | offers and picks for one agent, all at once and interleaved over two handles, reserve exactly its capacity; ended, every unit is free again |
/// | `a_pick_race_has_one_winner` | of agents picking one conversation at once through two handles, exactly one reserves it; a conversation picked is not offered, one on offer is not picked |
///
/// # Panics
///
/// At the first contract broken, naming the check and the contract (`router conformance:
/// <check> failed ...`); if the router returns an error; outside a tokio runtime.
pub async fn run_router<R>(a: Arc<R>, b: Arc<R>)
where
    R: AgentRouter + ?Sized + 'static,
{
    macro_rules! checks {
        ($($check:ident($($arg:expr),*)),* $(,)?) => {$(
            check_in(&CHECKS, "router", stringify!($check), $check($($arg),*)).await;
        )*};
    }
    checks!(
        agents_presence_and_profiles(&*a, &*b),
        presence_after_an_offer_is_set_once(a.clone(), b.clone()),
        a_renewal_unused_lapses_with_the_offer(&*a, &*b),
        offers_reserve_the_chosen_agent(&*a, &*b),
        reservations_lapse(&*a),
        a_late_offer_end_leaves_a_renewed_reservation(&*a, &*b),
        picks_reserve_capacity(&*a, &*b),
        concurrent_reservations_never_exceed_capacity(a.clone(), b.clone()),
        offers_and_picks_race_for_one_agent(a.clone(), b.clone()),
        a_pick_race_has_one_winner(a.clone(), b.clone()),
    );
}

fn at(secs: u64) -> SystemTime {
    t0() + Duration::from_secs(secs)
}

fn hold(from: u64, until: u64) -> Hold {
    Hold {
        at: at(from),
        until: at(until),
    }
}

/// A run's agents and a queue that only they qualify for (a skill unique to the run).
struct Run {
    skill: SkillId,
    prefix: String,
}

impl Run {
    fn new() -> Self {
        Self {
            skill: SkillId::new(unique("skill")),
            prefix: unique("r"),
        }
    }

    fn agent(&self, name: &str) -> AgentId {
        AgentId::new(format!("{}-{name}", self.prefix))
    }

    fn conversation(&self, name: &str) -> ConversationId {
        ConversationId::new(format!("{}-c-{name}", self.prefix))
    }

    fn queue(&self) -> Queue {
        Queue::push(QueueId::new(unique("q")))
            .skill(self.skill.clone(), 1)
            .matching(SkillMatching::Exact)
    }

    fn profile(&self, name: &str, capacity: u32) -> AgentProfile {
        AgentProfile::new(self.agent(name))
            .skill(self.skill.clone(), 1)
            .capacity(capacity)
    }

    async fn add<R: AgentRouter + ?Sized>(&self, router: &R, name: &str, capacity: u32) -> AgentId {
        router
            .upsert_agent(&self.profile(name, capacity))
            .await
            .unwrap();
        router
            .update_presence(&self.agent(name), Presence::Available)
            .await
            .unwrap();
        self.agent(name)
    }
}

async fn used<R: AgentRouter + ?Sized>(router: &R, agent: &AgentId, now: SystemTime) -> (u32, u32) {
    let s = router
        .agent_status(agent, now)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("agent {agent} is not known"));
    (s.used, s.sessions)
}

async fn agents_presence_and_profiles<R: AgentRouter + ?Sized>(a: &R, b: &R) {
    let run = Run::new();
    let ada = run.agent("ada");
    a.upsert_agent(&run.profile("ada", 4).skill(SkillId::from("fr"), 3))
        .await
        .unwrap();
    let status = b
        .agent_status(&ada, at(0))
        .await
        .unwrap()
        .expect("ada is known");
    assert_eq!(status.presence, Presence::Offline, "a new agent is offline");
    assert_eq!(status.profile.capacity, 4);
    assert_eq!(status.profile.skills.get(&SkillId::from("fr")), Some(&3));
    assert_eq!(
        (status.used, status.sessions, status.last_assigned),
        (0, 0, None)
    );
    b.update_presence(&ada, Presence::DoNotDisturb)
        .await
        .unwrap();
    let status = a.agent_status(&ada, at(0)).await.unwrap().unwrap();
    assert_eq!(status.presence, Presence::DoNotDisturb);
    assert_eq!(status.profile.capacity, 4, "presence keeps the profile");
    // A profile update keeps the presence.
    a.upsert_agent(&run.profile("ada", 6)).await.unwrap();
    let status = a.agent_status(&ada, at(0)).await.unwrap().unwrap();
    assert_eq!(
        (status.presence, status.profile.capacity),
        (Presence::DoNotDisturb, 6)
    );
    assert_eq!(status.profile.skills.get(&SkillId::from("fr")), None);
    // Presence first: the default capacity, no skills.
    let bob = run.agent("bob");
    a.update_presence(&bob, Presence::Away).await.unwrap();
    let status = b.agent_status(&bob, at(0)).await.unwrap().unwrap();
    assert_eq!(status.presence, Presence::Away);
    assert_eq!(status.profile.capacity, DEFAULT_AGENT_CAPACITY);
    assert!(status.profile.skills.is_empty());
    let all = a.agent_statuses(at(0)).await.unwrap();
    let ours: Vec<&AgentId> = all
        .iter()
        .map(AgentStatus::id)
        .filter(|id| id.as_str().starts_with(&run.prefix))
        .collect();
    assert_eq!(ours, [&ada, &bob], "in id order");
    let ids: Vec<&AgentId> = all.iter().map(AgentStatus::id).collect();
    assert!(ids.is_sorted(), "agent_statuses is in id order");
    assert_eq!(
        a.agent_status(&run.agent("nobody"), at(0)).await.unwrap(),
        None
    );
}

async fn presence_after_an_offer_is_set_once<R: AgentRouter + ?Sized + 'static>(
    a: Arc<R>,
    b: Arc<R>,
) {
    let run = Run::new();
    let ada = run.add(&*a, "ada", 1).await;
    let presence = |router: Arc<R>, agent: AgentId| async move {
        router
            .agent_status(&agent, at(0))
            .await
            .unwrap()
            .map(|s| s.presence)
    };
    assert!(
        a.presence_after_offer(&ada, Presence::Away, at(5))
            .await
            .unwrap(),
        "an Available agent's presence is set"
    );
    assert_eq!(presence(b.clone(), ada.clone()).await, Some(Presence::Away));
    // The agent comes back; the same offer's effect delivered again, or an older offer's
    // delivered late, changes nothing.
    b.update_presence(&ada, Presence::Available).await.unwrap();
    for (router, t) in [(&a, 5), (&b, 5), (&a, 4)] {
        assert!(
            !router
                .presence_after_offer(&ada, Presence::Away, at(t))
                .await
                .unwrap(),
            "only for an offer made after the last one that set it"
        );
    }
    assert_eq!(
        presence(a.clone(), ada.clone()).await,
        Some(Presence::Available)
    );
    // A later offer sets it again.
    assert!(
        b.presence_after_offer(&ada, Presence::DoNotDisturb, at(6))
            .await
            .unwrap(),
        "a later offer sets it"
    );
    // Not Available: kept.
    b.update_presence(&ada, Presence::Busy).await.unwrap();
    assert!(
        !a.presence_after_offer(&ada, Presence::Away, at(9))
            .await
            .unwrap()
    );
    assert_eq!(
        presence(a.clone(), ada.clone()).await,
        Some(Presence::Busy),
        "an agent not Available keeps their presence"
    );
    // An agent nobody knows is not added.
    let nobody = run.agent("nobody");
    assert!(
        !a.presence_after_offer(&nobody, Presence::Away, at(1))
            .await
            .unwrap()
    );
    assert_eq!(presence(a.clone(), nobody).await, None);
    // Two handles at once, one offer: exactly one sets it.
    a.update_presence(&ada, Presence::Available).await.unwrap();
    let tries = (0..8).map(|i| {
        let router = if i % 2 == 0 { a.clone() } else { b.clone() };
        let ada = ada.clone();
        tokio::spawn(async move {
            router
                .presence_after_offer(&ada, Presence::Away, at(10))
                .await
                .unwrap()
        })
    });
    let mut set = 0;
    for t in tries.collect::<Vec<_>>() {
        set += usize::from(t.await.unwrap());
    }
    assert_eq!(
        set, 1,
        "of calls for one offer at once, one sets the presence"
    );
}

async fn a_renewal_unused_lapses_with_the_offer<R: AgentRouter + ?Sized>(a: &R, b: &R) {
    let run = Run::new();
    let queue = run.queue();
    let ada = run.add(a, "ada", 1).await;
    let c1 = run.conversation("1");
    let request = OfferRequest::new(&queue, &[], None);
    let reserve = |h: Hold| a.reserve_offer(&c1, &request, h);
    // Offered until 10; renewed until 15 by a caller whose offer was then refused.
    assert_eq!(reserve(hold(0, 10)).await.unwrap().as_ref(), Some(&ada));
    assert_eq!(reserve(hold(5, 15)).await.unwrap().as_ref(), Some(&ada));
    b.renewal_unused(&c1, &ada, at(15), at(10)).await.unwrap();
    assert_eq!(used(a, &ada, at(9)).await, (1, 0));
    assert_eq!(
        used(b, &ada, at(10)).await,
        (0, 0),
        "it lapses with the offer again"
    );
    // Renewed again since (until 20): left alone.
    assert_eq!(reserve(hold(11, 18)).await.unwrap().as_ref(), Some(&ada));
    assert_eq!(reserve(hold(12, 20)).await.unwrap().as_ref(), Some(&ada));
    b.renewal_unused(&c1, &ada, at(18), at(10)).await.unwrap();
    assert_eq!(
        used(a, &ada, at(19)).await,
        (1, 0),
        "a renewal since is kept"
    );
    // And the offer's end with its hold ends the reservation set back to it.
    b.renewal_unused(&c1, &ada, at(20), at(18)).await.unwrap();
    a.offer_ended(&c1, &ada, Some(at(18))).await.unwrap();
    assert_eq!(used(b, &ada, at(12)).await, (0, 0), "ended with its offer");
}

#[allow(clippy::too_many_lines)] // one script, read top to bottom
async fn offers_reserve_the_chosen_agent<R: AgentRouter + ?Sized>(a: &R, b: &R) {
    let run = Run::new();
    let queue = run.queue();
    let ada = run.add(a, "ada", 2).await;
    let bob = run.add(a, "bob", 2).await;
    // Not for this queue: no skill.
    let cy = run.agent("cy");
    a.update_presence(&cy, Presence::Available).await.unwrap();
    let (c1, c2, c3) = (
        run.conversation("1"),
        run.conversation("2"),
        run.conversation("3"),
    );

    // Both never given work and idle: the smallest id.
    let got = a
        .reserve_offer(&c1, &OfferRequest::new(&queue, &[], None), hold(0, 100))
        .await
        .unwrap();
    assert_eq!(got.as_ref(), Some(&ada));
    assert_eq!(
        used(b, &ada, at(1)).await,
        (1, 0),
        "the offer reserves a unit"
    );
    let status = b.agent_status(&ada, at(1)).await.unwrap().unwrap();
    assert_eq!(status.last_assigned, Some(at(0)));
    // Offered again to the same agent (an instance that never made the offer): renewed,
    // counted once.
    let only_ada = [bob.clone()];
    let again = b
        .reserve_offer(
            &c1,
            &OfferRequest::new(&queue, &only_ada, None),
            hold(1, 100),
        )
        .await
        .unwrap();
    assert_eq!(again.as_ref(), Some(&ada));
    assert_eq!(
        used(a, &ada, at(1)).await,
        (1, 0),
        "a renewed offer counts once"
    );
    // The least loaded next; then the preferred one when they qualify; excluded never.
    let got = b
        .reserve_offer(&c2, &OfferRequest::new(&queue, &[], None), hold(2, 100))
        .await
        .unwrap();
    assert_eq!(got.as_ref(), Some(&bob));
    let excluded = [ada.clone(), bob.clone()];
    let none = a
        .reserve_offer(
            &c3,
            &OfferRequest::new(&queue, &excluded, None),
            hold(3, 100),
        )
        .await
        .unwrap();
    assert_eq!(
        none, None,
        "excluded agents are not offered it; cy lacks the skill"
    );
    let got = a
        .reserve_offer(
            &c3,
            &OfferRequest::new(&queue, &[], Some(&bob)),
            hold(3, 100),
        )
        .await
        .unwrap();
    assert_eq!(got.as_ref(), Some(&bob), "the preferred agent qualifies");
    assert_eq!(used(a, &bob, at(4)).await, (2, 0));
    // bob is full; ada has one unit left.
    let c4 = run.conversation("4");
    let got = a
        .reserve_offer(
            &c4,
            &OfferRequest::new(&queue, &[], Some(&bob)),
            hold(4, 100),
        )
        .await
        .unwrap();
    assert_eq!(got.as_ref(), Some(&ada));
    let c5 = run.conversation("5");
    let full = b
        .reserve_offer(&c5, &OfferRequest::new(&queue, &[], None), hold(5, 100))
        .await
        .unwrap();
    assert_eq!(full, None, "nobody has capacity left");

    // Accepted: the reservation becomes the session; the offer's end then changes nothing.
    b.session_started(&c1, &ada, 1, at(6)).await.unwrap();
    assert_eq!(used(a, &ada, at(6)).await, (2, 1));
    a.offer_ended(&c1, &ada, Some(at(100))).await.unwrap();
    assert_eq!(
        used(a, &ada, at(6)).await,
        (2, 1),
        "offer_ended leaves the session"
    );
    // Rejected: the reservation ends (twice: once).
    a.offer_ended(&c4, &ada, Some(at(100))).await.unwrap();
    b.offer_ended(&c4, &ada, None).await.unwrap();
    assert_eq!(used(a, &ada, at(7)).await, (1, 1));
    // offer_ended and session_released end only what they name.
    a.offer_ended(&c2, &ada, None).await.unwrap();
    a.session_released(&c2, &bob).await.unwrap();
    assert_eq!(used(a, &bob, at(7)).await, (2, 0));
    a.session_released(&c1, &ada).await.unwrap();
    b.session_released(&c1, &ada).await.unwrap();
    assert_eq!(used(a, &ada, at(8)).await, (0, 0));
    // A session started with no reservation (a revive) counts too, past capacity if need be.
    for c in [&c1, &c4, &c5] {
        a.session_started(c, &bob, 1, at(9)).await.unwrap();
    }
    assert_eq!(used(b, &bob, at(9)).await, (5, 3), "sessions always start");
    // Not available: no offers.
    b.update_presence(&ada, Presence::Busy).await.unwrap();
    let c6 = run.conversation("6");
    let got = a
        .reserve_offer(&c6, &OfferRequest::new(&queue, &[], None), hold(10, 100))
        .await
        .unwrap();
    assert_eq!(got, None, "a busy agent is not offered work");
}

async fn reservations_lapse<R: AgentRouter + ?Sized>(router: &R) {
    let run = Run::new();
    let queue = run.queue();
    let ada = run.add(router, "ada", 1).await;
    let c1 = run.conversation("1");
    let got = router
        .reserve_offer(&c1, &OfferRequest::new(&queue, &[], None), hold(0, 10))
        .await
        .unwrap();
    assert_eq!(got.as_ref(), Some(&ada));
    assert_eq!(used(router, &ada, at(9)).await, (1, 0));
    assert_eq!(
        used(router, &ada, at(10)).await,
        (0, 0),
        "lapsed at `until`"
    );
    // The conversation and the capacity are free again.
    let got = router
        .reserve_offer(&c1, &OfferRequest::new(&queue, &[], None), hold(10, 20))
        .await
        .unwrap();
    assert_eq!(got.as_ref(), Some(&ada));
    let c2 = run.conversation("2");
    assert_eq!(
        router
            .reserve_pick(&c2, &ada, 1, hold(11, 30))
            .await
            .unwrap(),
        PickOutcome::AtCapacity
    );
    assert_eq!(
        router
            .reserve_pick(&c2, &ada, 1, hold(20, 30))
            .await
            .unwrap(),
        PickOutcome::Reserved
    );
}

async fn a_late_offer_end_leaves_a_renewed_reservation<R: AgentRouter + ?Sized>(a: &R, b: &R) {
    let run = Run::new();
    let queue = run.queue();
    let ada = run.add(a, "ada", 1).await;
    let c1 = run.conversation("1");
    let c2 = run.conversation("2");
    // Offered at 0 until 10; offered again (renewed) at 5 until 15, before the first offer's
    // end is told.
    for h in [hold(0, 10), hold(5, 15)] {
        let got = a
            .reserve_offer(&c1, &OfferRequest::new(&queue, &[], None), h)
            .await
            .unwrap();
        assert_eq!(got.as_ref(), Some(&ada));
    }
    assert_eq!(used(a, &ada, at(6)).await, (1, 0), "renewed, counted once");
    // The first offer's end, late: the renewed reservation stays, on either handle, and
    // still holds the capacity against another conversation.
    a.offer_ended(&c1, &ada, Some(at(10))).await.unwrap();
    b.offer_ended(&c1, &ada, Some(at(9))).await.unwrap();
    assert_eq!(
        used(b, &ada, at(11)).await,
        (1, 0),
        "an earlier offer's end leaves the renewed reservation"
    );
    let other = b
        .reserve_offer(&c2, &OfferRequest::new(&queue, &[], None), hold(11, 21))
        .await
        .unwrap();
    assert_eq!(other, None, "the renewed reservation holds ada's capacity");
    // The later offer's end ends it.
    b.offer_ended(&c1, &ada, Some(at(15))).await.unwrap();
    assert_eq!(used(a, &ada, at(11)).await, (0, 0), "its own end ends it");
    // And an end with no hold ends whatever is reserved.
    let got = a
        .reserve_offer(&c2, &OfferRequest::new(&queue, &[], None), hold(12, 40))
        .await
        .unwrap();
    assert_eq!(got.as_ref(), Some(&ada));
    a.offer_ended(&c2, &ada, None).await.unwrap();
    assert_eq!(used(b, &ada, at(13)).await, (0, 0), "no hold: ended");
}

async fn picks_reserve_capacity<R: AgentRouter + ?Sized>(a: &R, b: &R) {
    let run = Run::new();
    let ada = run.agent("ada");
    a.upsert_agent(&run.profile("ada", 3)).await.unwrap();
    // Offline: picks go by capacity only.
    let (c1, c2, c3) = (
        run.conversation("1"),
        run.conversation("2"),
        run.conversation("3"),
    );
    assert_eq!(
        a.reserve_pick(&c1, &ada, 2, hold(0, 100)).await.unwrap(),
        PickOutcome::Reserved
    );
    assert_eq!(used(b, &ada, at(1)).await, (2, 0));
    let bob = run.agent("bob");
    assert_eq!(
        b.reserve_pick(&c1, &bob, 1, hold(1, 100)).await.unwrap(),
        PickOutcome::Taken,
        "a reserved conversation is taken"
    );
    assert_eq!(
        b.reserve_pick(&c2, &ada, 2, hold(1, 100)).await.unwrap(),
        PickOutcome::AtCapacity
    );
    assert_eq!(
        b.reserve_pick(&c2, &ada, 1, hold(1, 100)).await.unwrap(),
        PickOutcome::Reserved
    );
    // The picks become sessions; a session is taken too.
    a.session_started(&c1, &ada, 2, at(2)).await.unwrap();
    assert_eq!(used(b, &ada, at(2)).await, (3, 2));
    assert_eq!(
        b.reserve_pick(&c1, &bob, 1, hold(3, 100)).await.unwrap(),
        PickOutcome::Taken
    );
    // An agent the router did not know picks with the default capacity.
    assert_eq!(
        b.reserve_pick(&c3, &bob, 1, hold(3, 100)).await.unwrap(),
        PickOutcome::Reserved
    );
    let status = a
        .agent_status(&bob, at(3))
        .await
        .unwrap()
        .expect("bob is known now");
    assert_eq!(
        (status.used, status.profile.capacity),
        (1, DEFAULT_AGENT_CAPACITY)
    );
    // A pick given up frees its capacity.
    a.offer_ended(&c2, &ada, None).await.unwrap();
    assert_eq!(used(b, &ada, at(4)).await, (2, 2));
}

async fn concurrent_reservations_never_exceed_capacity<R: AgentRouter + ?Sized + 'static>(
    a: Arc<R>,
    b: Arc<R>,
) {
    let run = Arc::new(Run::new());
    let queue = Arc::new(run.queue());
    let ada = run.add(&*a, "ada", 3).await;
    let bob = run.add(&*a, "bob", 2).await;
    let offers: Vec<_> = (0..16)
        .map(|i| {
            let router = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (run, queue) = (run.clone(), queue.clone());
            tokio::spawn(async move {
                let c = run.conversation(&format!("offer-{i}"));
                router
                    .reserve_offer(&c, &OfferRequest::new(&queue, &[], None), hold(0, 100))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut got = Vec::new();
    for task in offers {
        got.extend(task.await.unwrap());
    }
    assert_eq!(
        got.len(),
        5,
        "every free unit is reserved, and no more: {got:?}"
    );
    assert_eq!(got.iter().filter(|g| **g == ada).count(), 3);
    assert_eq!(got.iter().filter(|g| **g == bob).count(), 2);
    assert_eq!(used(&*b, &ada, at(1)).await, (3, 0));
    assert_eq!(used(&*a, &bob, at(1)).await, (2, 0));

    // Picks for one agent, each conversation its own.
    let cy = run.add(&*b, "cy", 4).await;
    let picks: Vec<_> = (0..12)
        .map(|i| {
            let router = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (run, cy) = (run.clone(), cy.clone());
            tokio::spawn(async move {
                let c = run.conversation(&format!("pick-{i}"));
                router.reserve_pick(&c, &cy, 1, hold(0, 100)).await.unwrap()
            })
        })
        .collect();
    let mut reserved = 0;
    for task in picks {
        match task.await.unwrap() {
            PickOutcome::Reserved => reserved += 1,
            PickOutcome::AtCapacity => {}
            other => panic!("a pick of its own conversation was {other:?}"),
        }
    }
    assert_eq!(reserved, 4, "capacity 4: four picks reserved");
    assert_eq!(used(&*a, &cy, at(1)).await, (4, 0));
}

/// Offers and picks compete for one agent at the same moment: each call reserves its own
/// conversation, offers and picks alternate, and so do the two handles (offer on `a`, offer
/// on `b`, pick on `a`, pick on `b`, ...), all released together by a barrier.
#[allow(clippy::too_many_lines)] // one script, read top to bottom
async fn offers_and_picks_race_for_one_agent<R: AgentRouter + ?Sized + 'static>(
    a: Arc<R>,
    b: Arc<R>,
) {
    const CAPACITY: u32 = 5;
    const CALLS: usize = 16;
    let run = Arc::new(Run::new());
    let queue = Arc::new(run.queue());
    let ada = run.add(&*a, "ada", CAPACITY).await;
    let start = Arc::new(tokio::sync::Barrier::new(CALLS));
    let tasks: Vec<_> = (0..CALLS)
        .map(|i| {
            let router = if i % 2 == 0 { a.clone() } else { b.clone() };
            let offer = i % 4 < 2;
            let (run, queue, ada, start) = (run.clone(), queue.clone(), ada.clone(), start.clone());
            tokio::spawn(async move {
                let c = run.conversation(&format!("race-{i}"));
                start.wait().await;
                let won = if offer {
                    let got = router
                        .reserve_offer(&c, &OfferRequest::new(&queue, &[], None), hold(0, 100))
                        .await
                        .unwrap();
                    if let Some(agent) = &got {
                        assert_eq!(*agent, ada, "only ada qualifies");
                    }
                    got.is_some()
                } else {
                    match router
                        .reserve_pick(&c, &ada, 1, hold(0, 100))
                        .await
                        .unwrap()
                    {
                        PickOutcome::Reserved => true,
                        PickOutcome::AtCapacity => false,
                        other => panic!("a pick of its own conversation was {other:?}"),
                    }
                };
                (i, c, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (i, c, won) = task.await.unwrap();
        if won {
            winners.push((i, c));
        }
    }
    let capacity = usize::try_from(CAPACITY).unwrap();
    assert_eq!(
        winners.len(),
        capacity,
        "capacity {CAPACITY}: exactly {CAPACITY} of {CALLS} offers and picks reserved, got {:?}",
        winners.iter().map(|(i, _)| i).collect::<Vec<_>>()
    );
    assert_eq!(used(&*a, &ada, at(1)).await, (CAPACITY, 0));
    assert_eq!(used(&*b, &ada, at(1)).await, (CAPACITY, 0));
    // Full: neither an offer nor a pick of another conversation gets through.
    let more = run.conversation("more");
    assert_eq!(
        a.reserve_offer(&more, &OfferRequest::new(&queue, &[], None), hold(1, 100))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        b.reserve_pick(&more, &ada, 1, hold(1, 100)).await.unwrap(),
        PickOutcome::AtCapacity
    );

    // Every other one becomes a session (on the other handle) and is released; the rest end
    // as offers. Nothing is left reserved.
    for (n, (i, c)) in winners.iter().enumerate() {
        let other = if i % 2 == 0 { &*b } else { &*a };
        if n % 2 == 0 {
            other.session_started(c, &ada, 1, at(2)).await.unwrap();
        } else {
            other.offer_ended(c, &ada, None).await.unwrap();
        }
    }
    let sessions = u32::try_from(winners.len().div_ceil(2)).unwrap();
    assert_eq!(used(&*a, &ada, at(2)).await, (sessions, sessions));
    for (n, (i, c)) in winners.iter().enumerate() {
        let this = if i % 2 == 0 { &*a } else { &*b };
        if n % 2 == 0 {
            this.session_released(c, &ada).await.unwrap();
        }
    }
    assert_eq!(
        used(&*b, &ada, at(3)).await,
        (0, 0),
        "every reservation and session released"
    );
    assert_eq!(used(&*a, &ada, at(3)).await, (0, 0));
    // All of the capacity is free again.
    for n in 0..CAPACITY {
        let c = run.conversation(&format!("after-{n}"));
        let got = if n % 2 == 0 {
            a.reserve_offer(&c, &OfferRequest::new(&queue, &[], None), hold(3, 100))
                .await
                .unwrap()
                .is_some()
        } else {
            b.reserve_pick(&c, &ada, 1, hold(3, 100)).await.unwrap() == PickOutcome::Reserved
        };
        assert!(got, "unit {n} is free again");
    }
    assert_eq!(used(&*a, &ada, at(4)).await, (CAPACITY, 0));
}

async fn a_pick_race_has_one_winner<R: AgentRouter + ?Sized + 'static>(a: Arc<R>, b: Arc<R>) {
    let run = Arc::new(Run::new());
    let contested = run.conversation("contested");
    for i in 0..8 {
        run.add(&*a, &format!("agent{i}"), 5).await;
    }
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let router = if i % 2 == 0 { a.clone() } else { b.clone() };
            let (run, c) = (run.clone(), contested.clone());
            tokio::spawn(async move {
                let agent = run.agent(&format!("agent{i}"));
                let outcome = router
                    .reserve_pick(&c, &agent, 1, hold(0, 100))
                    .await
                    .unwrap();
                (agent, outcome)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (agent, outcome) = task.await.unwrap();
        match outcome {
            PickOutcome::Reserved => winners.push(agent),
            PickOutcome::Taken => {}
            other => panic!("{agent} got {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one pick wins: {winners:?}");
    let mut total = 0;
    for i in 0..8 {
        total += used(&*b, &run.agent(&format!("agent{i}")), at(1)).await.0;
    }
    assert_eq!(total, 1, "only the winner's unit is reserved");

    // The winner holds it: no offer of it, no other pick.
    let queue = run.queue();
    let offered = a
        .reserve_offer(
            &contested,
            &OfferRequest::new(&queue, &[], None),
            hold(1, 100),
        )
        .await
        .unwrap();
    assert_eq!(offered, None, "a picked conversation is not offered");
    // A conversation on offer cannot be picked.
    let other = run.conversation("offered");
    let to = a
        .reserve_offer(&other, &OfferRequest::new(&queue, &[], None), hold(1, 100))
        .await
        .unwrap()
        .expect("an agent is free");
    let picker = (0..8)
        .map(|i| run.agent(&format!("agent{i}")))
        .find(|a| *a != to)
        .expect("another agent");
    assert_eq!(
        b.reserve_pick(&other, &picker, 1, hold(2, 100))
            .await
            .unwrap(),
        PickOutcome::Taken
    );
}
