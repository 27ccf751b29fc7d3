//! In-memory agents: a router that keeps presence, skills, capacity and reservations, and a
//! notifier that records what it is told.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

use super::{AgentNotifier, AgentRouter, Hold, OfferRequest, PickOutcome};
use crate::conversation::{Conversation, Offer, TranscriptLine};
use crate::ids::{AgentId, ConversationId, SkillId};
use crate::routing::{AgentProfile, AgentStatus, DEFAULT_AGENT_CAPACITY, Presence, choose_agent};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Clone)]
struct AgentState {
    presence: Presence,
    profile: AgentProfile,
    last_assigned: Option<SystemTime>,
}

impl AgentState {
    fn new(id: &AgentId, presence: Presence) -> Self {
        Self {
            presence,
            profile: AgentProfile::new(id.clone()),
            last_assigned: None,
        }
    }
}

/// What an agent holds of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Offer,
    Pick,
    Session,
}

/// An agent's reservation of a conversation: for an offer or a pick until `until`, or a
/// session.
#[derive(Debug, Clone)]
struct Work {
    kind: Kind,
    units: u32,
    until: Option<SystemTime>,
}

impl Work {
    fn live(&self, now: SystemTime) -> bool {
        self.until.is_none_or(|until| until > now)
    }
}

#[derive(Debug, Default)]
struct State {
    agents: BTreeMap<AgentId, AgentState>,
    work: HashMap<(ConversationId, AgentId), Work>,
}

impl State {
    fn statuses(&self, now: SystemTime) -> Vec<AgentStatus> {
        let mut used: HashMap<&AgentId, (u32, u32)> = HashMap::new();
        for ((_, agent), w) in self.work.iter().filter(|(_, w)| w.live(now)) {
            let entry = used.entry(agent).or_default();
            entry.0 += w.units;
            if w.kind == Kind::Session {
                entry.1 += w.units;
            }
        }
        self.agents
            .iter()
            .map(|(id, a)| {
                let (used, sessions) = used.get(id).copied().unwrap_or_default();
                AgentStatus::new(a.profile.clone(), a.presence)
                    .used(used)
                    .sessions(sessions)
                    .last_assigned(a.last_assigned)
            })
            .collect()
    }

    /// Whether anyone holds the conversation at `now`: a session, a pick, or (`offers`) an
    /// offer.
    fn held(&self, conversation: &ConversationId, now: SystemTime, offers: bool) -> bool {
        self.work.iter().any(|((c, _), w)| {
            c == conversation && w.live(now) && (offers || w.kind != Kind::Offer)
        })
    }

    fn reserve(
        &mut self,
        conversation: &ConversationId,
        agent: &AgentId,
        units: u32,
        hold: Hold,
        kind: Kind,
    ) {
        let key = (conversation.clone(), agent.clone());
        match self.work.get_mut(&key) {
            // The agent's own offer of it, live: renewed, counted once.
            Some(w) if w.live(hold.at) => {
                w.until = w.until.max(Some(hold.until));
            }
            _ => {
                self.work.insert(
                    key,
                    Work {
                        kind,
                        units,
                        until: Some(hold.until),
                    },
                );
            }
        }
        if let Some(a) = self.agents.get_mut(agent) {
            a.last_assigned = Some(a.last_assigned.map_or(hold.at, |t| t.max(hold.at)));
        }
    }

    /// Ends what `agent` holds of the conversation of kind `which`.
    fn end(
        &mut self,
        conversation: &ConversationId,
        agent: &AgentId,
        which: impl Fn(Kind) -> bool,
    ) {
        let key = (conversation.clone(), agent.clone());
        if self.work.get(&key).is_some_and(|w| which(w.kind)) {
            self.work.remove(&key);
        }
    }
}

/// An [`AgentRouter`] in memory, for tests and single-process hosts: agents, their presence,
/// skills and capacity (Omnichannel's default: 10 units), and reservations. Several engines
/// in one process may share one; engines in several processes need the store's router.
#[derive(Debug, Default)]
pub struct InMemoryRouter {
    state: Mutex<State>,
}

impl InMemoryRouter {
    /// No agents yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or updates) an agent with a presence and the default capacity.
    pub fn set_presence(&self, agent: &AgentId, presence: Presence) {
        lock(&self.state)
            .agents
            .entry(agent.clone())
            .or_insert_with(|| AgentState::new(agent, presence))
            .presence = presence;
    }

    /// Sets an agent's capacity (a new agent is offline).
    pub fn set_capacity(&self, agent: &AgentId, capacity: u32) {
        lock(&self.state)
            .agents
            .entry(agent.clone())
            .or_insert_with(|| AgentState::new(agent, Presence::Offline))
            .profile
            .capacity = capacity;
    }

    /// Sets an agent's skills and their levels (a new agent is offline).
    pub fn set_skills(&self, agent: &AgentId, skills: impl IntoIterator<Item = (SkillId, u8)>) {
        lock(&self.state)
            .agents
            .entry(agent.clone())
            .or_insert_with(|| AgentState::new(agent, Presence::Offline))
            .profile
            .skills = skills.into_iter().collect();
    }

    /// An agent's current load: the units of the sessions they hold.
    pub fn load(&self, agent: &AgentId) -> u32 {
        lock(&self.state)
            .work
            .iter()
            .filter(|((_, a), w)| w.kind == Kind::Session && a == agent)
            .map(|(_, w)| w.units)
            .sum()
    }

    /// Every agent with presence, load (units of sessions held) and capacity, in id order.
    pub fn agents(&self) -> Vec<(AgentId, Presence, u32, u32)> {
        let state = lock(&self.state);
        state
            .agents
            .iter()
            .map(|(id, a)| {
                let load = state
                    .work
                    .iter()
                    .filter(|((_, a), w)| w.kind == Kind::Session && a == id)
                    .map(|(_, w)| w.units)
                    .sum();
                (id.clone(), a.presence, load, a.profile.capacity)
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl AgentRouter for InMemoryRouter {
    async fn upsert_agent(&self, profile: &AgentProfile) -> Result<(), crate::store::StoreError> {
        lock(&self.state)
            .agents
            .entry(profile.id.clone())
            .or_insert_with(|| AgentState::new(&profile.id, Presence::Offline))
            .profile = profile.clone();
        Ok(())
    }

    async fn update_presence(
        &self,
        agent: &AgentId,
        presence: Presence,
    ) -> Result<(), crate::store::StoreError> {
        self.set_presence(agent, presence);
        Ok(())
    }

    async fn agent_statuses(
        &self,
        now: SystemTime,
    ) -> Result<Vec<AgentStatus>, crate::store::StoreError> {
        Ok(lock(&self.state).statuses(now))
    }

    async fn reserve_offer(
        &self,
        conversation: &ConversationId,
        request: &OfferRequest<'_>,
        hold: Hold,
    ) -> Result<Option<AgentId>, crate::store::StoreError> {
        let mut state = lock(&self.state);
        if state.held(conversation, hold.at, false) {
            return Ok(None);
        }
        // The agent's own live offer of it counts for its capacity already: left out of
        // `used` for the decision, renewed if chosen.
        let mut statuses = state.statuses(hold.at);
        for s in &mut statuses {
            if let Some(w) = state
                .work
                .get(&(conversation.clone(), s.id().clone()))
                .filter(|w| w.live(hold.at))
            {
                s.used = s.used.saturating_sub(w.units);
            }
        }
        let Some(chosen) = choose_agent(request.queue, &statuses, request.exclude, request.prefer)
        else {
            return Ok(None);
        };
        let agent = chosen.id().clone();
        state.reserve(
            conversation,
            &agent,
            request.queue.capacity_units,
            hold,
            Kind::Offer,
        );
        Ok(Some(agent))
    }

    async fn reserve_pick(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
        units: u32,
        hold: Hold,
    ) -> Result<PickOutcome, crate::store::StoreError> {
        let mut state = lock(&self.state);
        if state.held(conversation, hold.at, true) {
            return Ok(PickOutcome::Taken);
        }
        let free = state
            .statuses(hold.at)
            .iter()
            .find(|a| a.id() == agent)
            .map_or(DEFAULT_AGENT_CAPACITY, AgentStatus::free);
        if free < units {
            return Ok(PickOutcome::AtCapacity);
        }
        state
            .agents
            .entry(agent.clone())
            .or_insert_with(|| AgentState::new(agent, Presence::Offline));
        state.reserve(conversation, agent, units, hold, Kind::Pick);
        Ok(PickOutcome::Reserved)
    }

    async fn session_started(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
        units: u32,
        now: SystemTime,
    ) -> Result<(), crate::store::StoreError> {
        let mut state = lock(&self.state);
        state.work.insert(
            (conversation.clone(), agent.clone()),
            Work {
                kind: Kind::Session,
                units,
                until: None,
            },
        );
        if let Some(a) = state.agents.get_mut(agent) {
            a.last_assigned = Some(a.last_assigned.map_or(now, |t| t.max(now)));
        }
        Ok(())
    }

    async fn offer_ended(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
    ) -> Result<(), crate::store::StoreError> {
        lock(&self.state).end(conversation, agent, |k| k != Kind::Session);
        Ok(())
    }

    async fn session_released(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
    ) -> Result<(), crate::store::StoreError> {
        lock(&self.state).end(conversation, agent, |k| k == Kind::Session);
        Ok(())
    }
}

/// What a [`RecordingNotifier`] was told.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notification {
    /// An offer.
    Offer {
        /// The conversation.
        conversation: ConversationId,
        /// The offer.
        offer: Offer,
    },
    /// An offer withdrawn.
    Withdraw {
        /// The conversation.
        conversation: ConversationId,
        /// The agent.
        agent: AgentId,
    },
    /// An invitation to consult.
    Consult {
        /// The conversation.
        conversation: ConversationId,
        /// The agent invited.
        agent: AgentId,
    },
    /// A conversation changed.
    Updated {
        /// The conversation.
        conversation: ConversationId,
        /// Its state's name.
        state: crate::conversation::StateKind,
        /// The new lines.
        lines: Vec<TranscriptLine>,
    },
    /// Notifications may have been missed ([`AgentNotifier::resynced`]).
    Resynced,
}

/// An [`AgentNotifier`] that records what it is told, for tests and simple hosts that poll.
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    log: Mutex<Vec<Notification>>,
}

impl RecordingNotifier {
    /// Nothing recorded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything recorded so far, and clears the record.
    pub fn take(&self) -> Vec<Notification> {
        std::mem::take(&mut *lock(&self.log))
    }

    /// Everything recorded so far.
    pub fn all(&self) -> Vec<Notification> {
        lock(&self.log).clone()
    }
}

#[async_trait::async_trait]
impl AgentNotifier for RecordingNotifier {
    async fn offer(&self, conversation: &Conversation, offer: &Offer) {
        lock(&self.log).push(Notification::Offer {
            conversation: conversation.id().clone(),
            offer: offer.clone(),
        });
    }

    async fn withdraw(&self, conversation: &ConversationId, agent: &AgentId) {
        lock(&self.log).push(Notification::Withdraw {
            conversation: conversation.clone(),
            agent: agent.clone(),
        });
    }

    async fn consult(&self, conversation: &Conversation, agent: &AgentId) {
        lock(&self.log).push(Notification::Consult {
            conversation: conversation.id().clone(),
            agent: agent.clone(),
        });
    }

    async fn updated(&self, conversation: &Conversation, lines: &[TranscriptLine]) {
        lock(&self.log).push(Notification::Updated {
            conversation: conversation.id().clone(),
            state: conversation.state().kind(),
            lines: lines.to_vec(),
        });
    }

    async fn resynced(&self) {
        lock(&self.log).push(Notification::Resynced);
    }
}
