//! In-memory agents: a router that keeps presence, skills, capacity and reservations, and a
//! notifier that records what it is told.

use std::collections::HashMap;
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

/// What one agent holds: every piece of work by conversation, with the units of its sessions
/// counted as they come and go and its reservations (offers, picks: few) listed, so that
/// its units in use are read without going over its sessions.
#[derive(Debug, Default)]
struct Holding {
    work: HashMap<ConversationId, Work>,
    /// Units of the sessions in `work`.
    sessions: u32,
    /// The conversations of `work` reserved (offers, picks).
    reserved: Vec<ConversationId>,
}

impl Holding {
    fn put(&mut self, conversation: &ConversationId, work: Work) {
        self.take(conversation);
        if work.kind == Kind::Session {
            self.sessions = self.sessions.saturating_add(work.units);
        } else {
            self.reserved.push(conversation.clone());
        }
        self.work.insert(conversation.clone(), work);
    }

    fn take(&mut self, conversation: &ConversationId) -> Option<Work> {
        let old = self.work.remove(conversation)?;
        if old.kind == Kind::Session {
            self.sessions = self.sessions.saturating_sub(old.units);
        } else {
            self.reserved.retain(|c| c != conversation);
        }
        Some(old)
    }

    /// Units in use at `now` (but for what is held of `except`), and units of sessions.
    fn units(&self, now: SystemTime, except: Option<&ConversationId>) -> (u32, u32) {
        let mut used = self.sessions;
        if let Some(c) = except {
            if let Some(w) = self.work.get(c).filter(|w| w.kind == Kind::Session) {
                used = used.saturating_sub(w.units);
            }
        }
        for c in &self.reserved {
            if except == Some(c) {
                continue;
            }
            if let Some(w) = self.work.get(c).filter(|w| w.live(now)) {
                used = used.saturating_add(w.units);
            }
        }
        (used, self.sessions)
    }
}

/// Agents and what they hold, indexed for the decisions: `agents` is `choose_agent`'s input
/// as it stands (each read sets `used` and `sessions`), `work` what each agent holds, and
/// `holders` who holds something of each conversation.
#[derive(Debug, Default)]
struct State {
    /// Agents in id order.
    agents: Vec<AgentStatus>,
    /// Where each agent is in `agents`.
    index: HashMap<AgentId, usize>,
    /// What each agent of `agents` holds, in the same order.
    work: Vec<Holding>,
    /// What agents not added hold (sessions may start for anyone).
    others: HashMap<AgentId, Holding>,
    /// Who holds something of each conversation.
    holders: HashMap<ConversationId, Vec<AgentId>>,
    /// When the last offer after which each agent's presence was set ended.
    presence_set_after: HashMap<AgentId, SystemTime>,
}

impl State {
    /// The agent `id`, added with `presence` (no skills, the default capacity) if new.
    fn agent_mut(&mut self, id: &AgentId, presence: Presence) -> &mut AgentStatus {
        let i = if let Some(&i) = self.index.get(id) {
            i
        } else {
            let i = self.agents.partition_point(|a| a.id() < id);
            self.agents
                .insert(i, AgentStatus::new(AgentProfile::new(id.clone()), presence));
            let held = self.others.remove(id).unwrap_or_default();
            self.work.insert(i, held);
            for (j, a) in self.agents.iter().enumerate().skip(i) {
                self.index.insert(a.id().clone(), j);
            }
            i
        };
        &mut self.agents[i]
    }

    /// Sets every agent's units in use at `now`, leaving out of `used` what they hold of
    /// `except`.
    fn refresh(&mut self, now: SystemTime, except: Option<&ConversationId>) {
        for (a, held) in self.agents.iter_mut().zip(&self.work) {
            (a.used, a.sessions) = held.units(now, except);
        }
    }

    fn statuses(&mut self, now: SystemTime) -> Vec<AgentStatus> {
        self.refresh(now, None);
        self.agents.clone()
    }

    /// What `agent` holds.
    fn work_of(&self, agent: &AgentId) -> Option<&Holding> {
        match self.index.get(agent) {
            Some(&i) => Some(&self.work[i]),
            None => self.others.get(agent),
        }
    }

    /// What `agent` holds, to change.
    fn work_of_mut(&mut self, agent: &AgentId) -> &mut Holding {
        match self.index.get(agent) {
            Some(&i) => &mut self.work[i],
            None => self.others.entry(agent.clone()).or_default(),
        }
    }

    /// Units of the sessions `agent` holds.
    fn load(&self, agent: &AgentId) -> u32 {
        self.work_of(agent).map_or(0, |held| held.sessions)
    }

    /// Whether anyone holds the conversation at `now`: a session, a pick, or (`offers`) an
    /// offer.
    fn held(&self, conversation: &ConversationId, now: SystemTime, offers: bool) -> bool {
        self.holders.get(conversation).is_some_and(|agents| {
            agents.iter().any(|agent| {
                self.work_of(agent)
                    .and_then(|held| held.work.get(conversation))
                    .is_some_and(|w| w.live(now) && (offers || w.kind != Kind::Offer))
            })
        })
    }

    /// Records `work` of `agent` in the conversation.
    fn insert(&mut self, conversation: &ConversationId, agent: &AgentId, work: Work) {
        self.work_of_mut(agent).put(conversation, work);
        let holders = self.holders.entry(conversation.clone()).or_default();
        if !holders.contains(agent) {
            holders.push(agent.clone());
        }
    }

    /// The agent was given work at `at`.
    fn assigned(&mut self, agent: &AgentId, at: SystemTime) {
        if let Some(&i) = self.index.get(agent) {
            let a = &mut self.agents[i];
            a.last_assigned = Some(a.last_assigned.map_or(at, |t| t.max(at)));
        }
    }

    fn reserve(
        &mut self,
        conversation: &ConversationId,
        agent: &AgentId,
        units: u32,
        hold: Hold,
        kind: Kind,
    ) {
        let own = self.work_of_mut(agent).work.get_mut(conversation);
        match own {
            // The agent's own offer of it, live: renewed, counted once.
            Some(w) if w.live(hold.at) => {
                w.until = w.until.max(Some(hold.until));
            }
            _ => self.insert(
                conversation,
                agent,
                Work {
                    kind,
                    units,
                    until: Some(hold.until),
                },
            ),
        }
        self.assigned(agent, hold.at);
    }

    /// Ends what `agent` holds of the conversation if it is `which`.
    fn end(
        &mut self,
        conversation: &ConversationId,
        agent: &AgentId,
        which: impl Fn(&Work) -> bool,
    ) {
        let held = self.work_of_mut(agent);
        if !held.work.get(conversation).is_some_and(which) {
            return;
        }
        held.take(conversation);
        if held.work.is_empty() {
            self.others.remove(agent);
        }
        if let Some(holders) = self.holders.get_mut(conversation) {
            holders.retain(|a| a != agent);
            if holders.is_empty() {
                self.holders.remove(conversation);
            }
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
        lock(&self.state).agent_mut(agent, presence).presence = presence;
    }

    /// Sets an agent's capacity (a new agent is offline).
    pub fn set_capacity(&self, agent: &AgentId, capacity: u32) {
        lock(&self.state)
            .agent_mut(agent, Presence::Offline)
            .profile
            .capacity = capacity;
    }

    /// Sets an agent's skills and their levels (a new agent is offline).
    pub fn set_skills(&self, agent: &AgentId, skills: impl IntoIterator<Item = (SkillId, u8)>) {
        lock(&self.state)
            .agent_mut(agent, Presence::Offline)
            .profile
            .skills = skills.into_iter().collect();
    }

    /// An agent's current load: the units of the sessions they hold.
    pub fn load(&self, agent: &AgentId) -> u32 {
        lock(&self.state).load(agent)
    }

    /// Every agent with presence, load (units of sessions held) and capacity, in id order.
    pub fn agents(&self) -> Vec<(AgentId, Presence, u32, u32)> {
        let state = lock(&self.state);
        state
            .agents
            .iter()
            .map(|a| {
                (
                    a.id().clone(),
                    a.presence,
                    state.load(a.id()),
                    a.profile.capacity,
                )
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl AgentRouter for InMemoryRouter {
    async fn upsert_agent(&self, profile: &AgentProfile) -> Result<(), crate::store::StoreError> {
        lock(&self.state)
            .agent_mut(&profile.id, Presence::Offline)
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

    async fn presence_after_offer(
        &self,
        agent: &AgentId,
        presence: Presence,
        ended_at: SystemTime,
    ) -> Result<bool, crate::store::StoreError> {
        let mut state = lock(&self.state);
        let Some(&i) = state.index.get(agent) else {
            return Ok(false);
        };
        if state.agents[i].presence != Presence::Available
            || state
                .presence_set_after
                .get(agent)
                .is_some_and(|last| *last >= ended_at)
        {
            return Ok(false);
        }
        state.agents[i].presence = presence;
        state.presence_set_after.insert(agent.clone(), ended_at);
        Ok(true)
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
        state.refresh(hold.at, Some(conversation));
        let Some(chosen) = choose_agent(
            request.queue,
            &state.agents,
            request.exclude,
            request.prefer,
        ) else {
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
        state.refresh(hold.at, None);
        let free = state
            .index
            .get(agent)
            .map_or(DEFAULT_AGENT_CAPACITY, |&i| state.agents[i].free());
        if free < units {
            return Ok(PickOutcome::AtCapacity);
        }
        state.agent_mut(agent, Presence::Offline);
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
        state.insert(
            conversation,
            agent,
            Work {
                kind: Kind::Session,
                units,
                until: None,
            },
        );
        state.assigned(agent, now);
        Ok(())
    }

    async fn offer_ended(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
        until: Option<SystemTime>,
    ) -> Result<(), crate::store::StoreError> {
        lock(&self.state).end(conversation, agent, |w| {
            w.kind != Kind::Session && until.is_none_or(|until| w.until <= Some(until))
        });
        Ok(())
    }

    async fn renewal_unused(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
        renewed_until: SystemTime,
        offer_until: SystemTime,
    ) -> Result<(), crate::store::StoreError> {
        let mut state = lock(&self.state);
        if let Some(w) = state.work_of_mut(agent).work.get_mut(conversation) {
            if w.kind == Kind::Offer && w.until == Some(renewed_until) {
                w.until = Some(offer_until);
            }
        }
        Ok(())
    }

    async fn session_released(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
    ) -> Result<(), crate::store::StoreError> {
        lock(&self.state).end(conversation, agent, |w| w.kind == Kind::Session);
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
    /// The engine set an agent's presence after a missed or rejected offer
    /// ([`AgentNotifier::presence`]).
    Presence {
        /// The agent.
        agent: AgentId,
        /// Their presence now.
        presence: Presence,
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

    async fn presence(&self, agent: &AgentId, presence: Presence) {
        lock(&self.log).push(Notification::Presence {
            agent: agent.clone(),
            presence,
        });
    }

    async fn resynced(&self) {
        lock(&self.log).push(Notification::Resynced);
    }
}
