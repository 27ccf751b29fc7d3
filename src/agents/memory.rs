//! In-memory agents: a router that keeps presence, capacity and load, and a notifier that
//! records what it is told.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{AgentNotifier, AgentRouter};
use crate::conversation::{Conversation, Offer, TranscriptLine};
use crate::ids::{AgentId, ConversationId, PageId};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An agent's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Presence {
    /// Takes new work.
    Available,
    /// Working; takes no new offers.
    Busy,
    /// Takes no new offers.
    DoNotDisturb,
    /// Away.
    Away,
    /// Signed out.
    Offline,
}

#[derive(Debug, Clone)]
struct AgentState {
    presence: Presence,
    capacity: u32,
    load: u32,
    /// Outstanding offers.
    reserved: u32,
}

/// An [`AgentRouter`] in memory: agents, their presence and capacity (Omnichannel's default:
/// 10 sessions); picks the least loaded available agent, ties broken by id.
#[derive(Debug, Default)]
pub struct InMemoryRouter {
    agents: Mutex<BTreeMap<AgentId, AgentState>>,
}

/// Omnichannel's default cap on an agent's open sessions.
pub const DEFAULT_AGENT_CAPACITY: u32 = 10;

impl InMemoryRouter {
    /// No agents yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or updates) an agent with a presence and the default capacity.
    pub fn set_presence(&self, agent: &AgentId, presence: Presence) {
        lock(&self.agents)
            .entry(agent.clone())
            .or_insert(AgentState {
                presence,
                capacity: DEFAULT_AGENT_CAPACITY,
                load: 0,
                reserved: 0,
            })
            .presence = presence;
    }

    /// Sets an agent's capacity.
    pub fn set_capacity(&self, agent: &AgentId, capacity: u32) {
        lock(&self.agents)
            .entry(agent.clone())
            .or_insert(AgentState {
                presence: Presence::Offline,
                capacity,
                load: 0,
                reserved: 0,
            })
            .capacity = capacity;
    }

    /// An agent's current load (sessions held).
    pub fn load(&self, agent: &AgentId) -> u32 {
        lock(&self.agents).get(agent).map_or(0, |a| a.load)
    }

    /// Every agent with presence, load and capacity, in id order.
    pub fn agents(&self) -> Vec<(AgentId, Presence, u32, u32)> {
        lock(&self.agents)
            .iter()
            .map(|(id, a)| (id.clone(), a.presence, a.load, a.capacity))
            .collect()
    }
}

#[async_trait::async_trait]
impl AgentRouter for InMemoryRouter {
    async fn pick(
        &self,
        _page: &PageId<'_>,
        exclude: &[AgentId],
        prefer: Option<&AgentId>,
    ) -> Option<AgentId> {
        let mut agents = lock(&self.agents);
        let eligible = |id: &AgentId, a: &AgentState| {
            a.presence == Presence::Available
                && a.load + a.reserved < a.capacity
                && !exclude.contains(id)
        };
        let chosen = prefer
            .filter(|p| agents.get(*p).is_some_and(|a| eligible(p, a)))
            .cloned()
            .or_else(|| {
                agents
                    .iter()
                    .filter(|(id, a)| eligible(id, a))
                    .min_by_key(|(_, a)| a.load + a.reserved)
                    .map(|(id, _)| id.clone())
            })?;
        if let Some(a) = agents.get_mut(&chosen) {
            a.reserved += 1;
        }
        Some(chosen)
    }

    async fn offer_ended(&self, agent: &AgentId) {
        if let Some(a) = lock(&self.agents).get_mut(agent) {
            a.reserved = a.reserved.saturating_sub(1);
        }
    }

    async fn session_started(&self, agent: &AgentId) {
        if let Some(a) = lock(&self.agents).get_mut(agent) {
            a.load += 1;
        }
    }

    async fn session_released(&self, agent: &AgentId) {
        if let Some(a) = lock(&self.agents).get_mut(agent) {
            a.load = a.load.saturating_sub(1);
        }
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
    /// A conversation changed.
    Updated {
        /// The conversation.
        conversation: ConversationId,
        /// Its state's name.
        state: crate::conversation::StateKind,
        /// The new lines.
        lines: Vec<TranscriptLine>,
    },
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

    async fn updated(&self, conversation: &Conversation, lines: &[TranscriptLine]) {
        lock(&self.log).push(Notification::Updated {
            conversation: conversation.id().clone(),
            state: conversation.state().kind(),
            lines: lines.to_vec(),
        });
    }
}
