//! Transfer and consult: the holder of a session hands the conversation to another agent or
//! queue, or invites a second agent for internal notes; and internal notes themselves. The
//! rules are the state machine's ([`crate::conversation`]); this is the edge.

use std::time::SystemTime;

use super::{Engine, EngineError};
use crate::conversation::{Input, NoteAuthor, TransferTarget};
use crate::ids::{AgentId, ConversationId, QueueId};

/// The longest internal note (or transfer note) the engine records, in characters: longer
/// ones are refused with [`EngineError::NoteTooLong`].
pub const NOTE_MAX_CHARS: usize = 4000;

/// The refusal of a note longer than [`NOTE_MAX_CHARS`] ([`EngineError::NoteTooLong`]).
pub(super) fn note_too_long(text: &str) -> Option<EngineError> {
    let chars = text.chars().count();
    (chars > NOTE_MAX_CHARS).then_some(EngineError::NoteTooLong {
        chars,
        max: NOTE_MAX_CHARS,
    })
}

impl Engine {
    /// The agent who holds the Active conversation transfers it to another agent, with a
    /// note: their session ends (capacity released), and `target` is offered it with the
    /// transfer notification ([`crate::agents::AgentNotifier::offer`], with
    /// [`crate::conversation::Conversation::transfer`] set) and the offer's countdown,
    /// whatever their presence and capacity (the holder chose them). Accepted, `target` holds
    /// the session (capacity taken); declined or lapsed, the conversation goes back to its
    /// queue, which offers it as usual.
    ///
    /// # Errors
    /// [`EngineError::Transition`] unless `agent` holds the conversation, Active, and
    /// `target` is someone else; [`EngineError::NotFound`].
    pub async fn transfer_to_agent(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        target: &AgentId,
        note: Option<&str>,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        if let Some(refused) = note.and_then(note_too_long) {
            return Err(refused);
        }
        let input = Input::Transfer {
            agent: agent.clone(),
            to: TransferTarget::Agent(target.clone()),
            note: note.map(str::to_owned),
        };
        self.run(id.clone(), input, now).await.map(drop)
    }

    /// The agent who holds the Active conversation transfers it to a queue, with a note:
    /// their session ends, and the queue routes it as one of its own (Push: an offer to the
    /// best agent of the queue, with the transfer notification, the transferring agent left
    /// out for the re-offer interval; Pick: it waits to be picked).
    ///
    /// # Errors
    /// [`EngineError::UnknownQueue`] when the routing has no such queue; otherwise as
    /// [`Engine::transfer_to_agent`].
    pub async fn transfer_to_queue(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        queue: &QueueId,
        note: Option<&str>,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        if let Some(refused) = note.and_then(note_too_long) {
            return Err(refused);
        }
        if !self.routing.queues().any(|q| q.id == *queue) {
            return Err(EngineError::UnknownQueue(queue.clone()));
        }
        let input = Input::Transfer {
            agent: agent.clone(),
            to: TransferTarget::Queue(queue.clone()),
            note: note.map(str::to_owned),
        };
        self.run(id.clone(), input, now).await.map(drop)
    }

    /// The agent who holds the Active conversation invites `consultant` to consult: they
    /// are told ([`crate::agents::AgentNotifier::consult`]), read the conversation and write
    /// internal notes ([`Engine::add_note`]); the customer sees nothing of it. The consult
    /// ends when the consultant leaves ([`Engine::leave_consult`]) or the session does; to
    /// take over, the holder transfers the conversation to them.
    ///
    /// # Errors
    /// [`EngineError::Transition`] unless `agent` holds the conversation, Active, and
    /// `consultant` does not take part yet.
    pub async fn consult(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        consultant: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        let input = Input::Consult {
            agent: agent.clone(),
            consultant: consultant.clone(),
        };
        self.run(id.clone(), input, now).await.map(drop)
    }

    /// A consulted agent leaves the consult.
    ///
    /// # Errors
    /// [`EngineError::Transition`] unless `consultant` is consulted in the conversation.
    pub async fn leave_consult(
        &self,
        id: &ConversationId,
        consultant: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        self.run(id.clone(), Input::LeaveConsult(consultant.clone()), now)
            .await
            .map(drop)
    }

    /// An internal note by an agent: one who holds (or held, while it waits) the session,
    /// or one consulted. Recorded in the transcript as an internal line, for agents and
    /// supervisors; never sent. (Supervisors write theirs with [`Engine::supervisor_note`].)
    ///
    /// # Errors
    /// [`EngineError::Transition`] when the agent takes no part in the conversation, or it is
    /// closed.
    pub async fn add_note(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        text: &str,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        if let Some(refused) = note_too_long(text) {
            return Err(refused);
        }
        let input = Input::Note {
            author: NoteAuthor::Agent(agent.clone()),
            text: text.to_owned(),
        };
        self.run(id.clone(), input, now).await.map(drop)
    }
}
