//! What supervisors do: see every queue's work, assign an Open conversation, force-close
//! one, write internal notes.
//!
//! Who is a supervisor is the host's decision: it makes a [`Supervisor`] for a person it has
//! authorised, and the methods that need one take it, so that an agent's id alone never
//! reaches them.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::{Engine, EngineError};
use crate::conversation::{Conversation, Input, NoteAuthor, State, StateKind};
use crate::ids::{AgentId, ConversationId, QueueId};

/// A supervisor: a person the host has authorised to supervise (it decides who, by its own
/// roles). [`Engine::assign`], [`Engine::force_close`] and [`Engine::supervisor_note`] take
/// one.
///
/// ```
/// use messenger_channel::engine::Supervisor;
/// use messenger_channel::ids::AgentId;
///
/// // After the host's own check that this person supervises.
/// let sam = Supervisor::new(AgentId::from("sam"));
/// assert_eq!(sam.id().as_str(), "sam");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Supervisor(AgentId);

impl Supervisor {
    /// The supervisor `id`, whom the host has authorised.
    pub fn new(id: AgentId) -> Self {
        Self(id)
    }

    /// Their id (as authors of internal lines).
    pub fn id(&self) -> &AgentId {
        &self.0
    }
}

/// One queue's work ([`Engine::queue_overview`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueOverview {
    /// The queue.
    pub queue: QueueId,
    /// Its name.
    pub name: String,
    /// Conversations waiting in it (Open), the longest waiting first.
    pub waiting: Vec<WaitingItem>,
    /// Conversations agents hold (Active, Wrap-up, or Waiting for the customer), by id.
    pub active: Vec<ActiveItem>,
}

/// A conversation waiting in a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WaitingItem {
    /// The conversation.
    pub conversation: ConversationId,
    /// Since when it waits ([`Conversation::queued_since`]).
    pub since: SystemTime,
    /// How long it has waited.
    pub waited: Duration,
    /// The agent it is offered to now, if any.
    pub offered_to: Option<AgentId>,
    /// Whether it came by a transfer not yet taken.
    pub transferred: bool,
}

/// A conversation an agent holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActiveItem {
    /// The conversation.
    pub conversation: ConversationId,
    /// The agent.
    pub agent: AgentId,
    /// Active, Wrap-up or Waiting.
    pub state: StateKind,
    /// Agents consulted in it.
    pub consultants: Vec<AgentId>,
    /// When anything last happened in it.
    pub last_activity: SystemTime,
}

impl Engine {
    /// Every queue's waiting and active conversations, with wait times at `now`, in queue id
    /// order, from the store (conversations of no queue, or of a queue since removed, are
    /// the fallback queue's).
    ///
    /// # Errors
    /// [`EngineError::Store`] when the store fails.
    pub async fn queue_overview(&self, now: SystemTime) -> Result<Vec<QueueOverview>, EngineError> {
        let mut queues: BTreeMap<QueueId, QueueOverview> = self
            .routing
            .queues()
            .map(|q| {
                (
                    q.id.clone(),
                    QueueOverview {
                        queue: q.id.clone(),
                        name: q.name.clone(),
                        waiting: Vec::new(),
                        active: Vec::new(),
                    },
                )
            })
            .collect();
        for stored in self.store.list_open().await? {
            let c = stored.conversation;
            let queue = self.queue_of(&c).id.clone();
            let Some(overview) = queues.get_mut(&queue) else {
                continue;
            };
            place(overview, &c, now);
        }
        let mut all: Vec<QueueOverview> = queues.into_values().collect();
        for q in &mut all {
            q.waiting
                .sort_by(|a, b| (a.since, &a.conversation).cmp(&(b.since, &b.conversation)));
            q.active.sort_by(|a, b| a.conversation.cmp(&b.conversation));
        }
        Ok(all)
    }

    /// A supervisor assigns an Open conversation to an agent, who holds its session at once
    /// (capacity taken, whatever their presence and capacity: the supervisor chose them);
    /// an outstanding offer to another agent is withdrawn.
    ///
    /// # Errors
    /// [`EngineError::Transition`] unless the conversation is Open; [`EngineError::NotFound`].
    pub async fn assign(
        &self,
        supervisor: &Supervisor,
        id: &ConversationId,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        let input = Input::Assign {
            supervisor: supervisor.id().clone(),
            agent: agent.clone(),
        };
        self.run(id.clone(), input, now).await.map(drop)
    }

    /// A supervisor closes a conversation, whatever its state: an offer is withdrawn, a
    /// session released; the queue's survey link is sent if it has one.
    ///
    /// # Errors
    /// [`EngineError::Transition`] when it is closed already; [`EngineError::NotFound`].
    pub async fn force_close(
        &self,
        supervisor: &Supervisor,
        id: &ConversationId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        let input = Input::ForceClose {
            supervisor: supervisor.id().clone(),
        };
        self.run(id.clone(), input, now).await.map(drop)
    }

    /// An internal note by a supervisor, on any conversation not closed.
    ///
    /// # Errors
    /// [`EngineError::Transition`] when it is closed; [`EngineError::NotFound`].
    pub async fn supervisor_note(
        &self,
        supervisor: &Supervisor,
        id: &ConversationId,
        text: &str,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        if let Some(refused) = super::transfer::note_too_long(text) {
            return Err(refused);
        }
        let input = Input::Note {
            author: NoteAuthor::Supervisor(supervisor.id().clone()),
            text: text.to_owned(),
        };
        self.run(id.clone(), input, now).await.map(drop)
    }
}

/// Puts a conversation in its queue's overview.
fn place(overview: &mut QueueOverview, c: &Conversation, now: SystemTime) {
    match c.state() {
        State::Open { offer } => {
            let since = c.queued_since();
            overview.waiting.push(WaitingItem {
                conversation: c.id().clone(),
                since,
                waited: now.duration_since(since).unwrap_or_default(),
                offered_to: offer.as_ref().map(|o| o.agent.clone()),
                transferred: c.transfer().is_some(),
            });
        }
        State::Active { agent } | State::WrapUp { agent } | State::Waiting { agent } => {
            overview.active.push(ActiveItem {
                conversation: c.id().clone(),
                agent: agent.clone(),
                state: c.state().kind(),
                consultants: c.consultants().to_vec(),
                last_activity: c.last_activity_at(),
            });
        }
        _ => {}
    }
}
