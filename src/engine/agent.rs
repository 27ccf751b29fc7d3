//! What agents do: accept, reject, end, close, revive, send text and files, and react.

use std::time::SystemTime;

use super::{Delivery, Engine, EngineError};
use crate::attachment::{AttachmentInfo, Direction};
use crate::conversation::{Author, Input, Outgoing, TransitionError};
use crate::ids::{AgentId, ConversationId};
use crate::send::{Message, SendError, check_reaction};
use crate::window::{Sender, check_window};

/// The longest message id [`Engine::react`] takes (Messenger's ids are far shorter): it is kept
/// in the outbox and the transcript.
pub const REACTION_MID_MAX_BYTES: usize = 512;

impl Engine {
    /// The agent accepts an offer.
    ///
    /// # Errors
    /// [`EngineError::Transition`] when the offer was not made to this agent or has expired.
    pub async fn accept(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        self.run(id.clone(), Input::Accept(agent.clone()), now)
            .await
            .map(drop)
    }

    /// The agent rejects an offer; it goes to another agent.
    ///
    /// # Errors
    /// As [`Engine::accept`].
    pub async fn reject(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        self.run(id.clone(), Input::Reject(agent.clone()), now)
            .await
            .map(drop)
    }

    /// The agent presses End (Wrap-up).
    ///
    /// # Errors
    /// [`EngineError::Transition`] unless the agent holds the conversation, Active.
    pub async fn end(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        self.run(id.clone(), Input::End(agent.clone()), now)
            .await
            .map(drop)
    }

    /// The agent closes the session: Waiting from Active, Closed from Wrap-up.
    ///
    /// # Errors
    /// [`EngineError::Transition`] unless the agent holds the conversation.
    pub async fn close_session(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        self.run(id.clone(), Input::CloseSession(agent.clone()), now)
            .await
            .map(drop)
    }

    /// The agent revives a Waiting conversation.
    ///
    /// # Errors
    /// [`EngineError::Transition`] unless the agent held it.
    pub async fn revive(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        self.run(id.clone(), Input::Revive(agent.clone()), now)
            .await
            .map(drop)
    }

    /// Checks that the agent may send now: holds the conversation, thread not paused, window
    /// open.
    async fn check_send(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        let stored = self.load_existing(id).await?;
        let c = stored.conversation;
        c.may_send(agent).map_err(TransitionError::from)?;
        check_window(
            c.last_customer_message_at(),
            now,
            Sender::HumanAgent,
            &self.window,
        )?;
        Ok(())
    }

    /// Applies the agent's send (already checked) and returns what became of its first
    /// attempt.
    async fn agent_send(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        message: Outgoing,
        now: SystemTime,
    ) -> Result<Delivery, EngineError> {
        let input = Input::AgentSend {
            agent: agent.clone(),
            message,
        };
        let outcome = self.run(id.clone(), input, now).await?;
        match outcome.agent_send {
            Some(Ok(delivery)) => Ok(delivery),
            Some(Err(undelivered)) => Err(undelivered.into()),
            // The commit produced no send (it cannot happen for an accepted AgentSend).
            None => Err(EngineError::NotFound(id.clone())),
        }
    }

    /// The agent sends text. The window and the message are checked before any network call.
    /// Once they pass, the message is committed (in the transcript and the outbox) and sent:
    /// [`Delivery::Sent`] with the platform's message id, or [`Delivery::Retrying`] when it
    /// will be tried again (the outbox delivers it at least once).
    ///
    /// # Errors
    /// Before the commit (nothing saved): [`EngineError::Window`], [`EngineError::Transition`],
    /// [`EngineError::Send`] (with [`SendError::Invalid`] for a message over the platform's
    /// limits). After it: [`EngineError::Undelivered`] when the platform refused the message
    /// for good; the transcript shows why.
    pub async fn send_text(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        text: &str,
        now: SystemTime,
    ) -> Result<Delivery, EngineError> {
        Message::text(text).map_err(SendError::from)?;
        self.check_send(id, agent, now).await?;
        self.agent_send(id, agent, Outgoing::Text(text.to_owned()), now)
            .await
    }

    /// The agent sends a file. The attachment policy (outbound) and the window are checked
    /// before any network call; then as [`Engine::send_text`].
    ///
    /// # Errors
    /// [`EngineError::Attachment`] with the policy's first violation, or as
    /// [`Engine::send_text`].
    pub async fn send_file(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        name: &str,
        mime: &str,
        bytes: bytes::Bytes,
        now: SystemTime,
    ) -> Result<Delivery, EngineError> {
        let info = AttachmentInfo::new()
            .name(name)
            .mime(mime)
            .size(bytes.len() as u64)
            .head(&bytes[..bytes.len().min(8192)]);
        let verdict = self.attachment_policy.check(Direction::Outbound, &info);
        if let Some(v) = verdict.first() {
            return Err(EngineError::Attachment(v.clone()));
        }
        let safe_name = verdict.safe_name().to_owned();
        let media = self.media.as_ref().ok_or(EngineError::NoMediaStore)?;
        self.check_send(id, agent, now).await?;
        let media_key = media.put(id, bytes, Some(mime)).await?;
        let message = Outgoing::File {
            media_key,
            name: safe_name,
            mime: mime.to_owned(),
        };
        self.agent_send(id, agent, message, now).await
    }

    /// The agent reacts to a message of the conversation with an emoji, or removes the page's
    /// reaction (`reaction` `None`): checked like a message (the agent holds the session, the
    /// thread is not paused, the window is open), then checked to be the customer's message
    /// in this conversation, then committed (the send in the outbox: durable, retried) and
    /// sent as Messenger's `sender_action` `react` / `unreact`. The reaction's line is added
    /// to the transcript once it is sent, never for one that failed (a failure adds its "Not
    /// delivered" notice only).
    ///
    /// Returns what became of the first attempt: [`Delivery::Sent`] with an empty
    /// `message_id` (a reaction is a sender action; the platform gives it no id), or
    /// [`Delivery::Retrying`].
    ///
    /// # Errors
    /// As [`Engine::send_text`]; [`EngineError::Send`] with [`SendError::Invalid`] for an
    /// empty message id, one over [`REACTION_MID_MAX_BYTES`], or a reaction over
    /// [`crate::send::REACTION_MAX_CHARS`]; [`EngineError::UnknownMessage`] when `mid` is no
    /// message of the customer's in the conversation (checked after the agent's right to
    /// send, so that an agent learns nothing of a conversation they may not act in).
    pub async fn react(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        mid: &str,
        reaction: Option<&str>,
        now: SystemTime,
    ) -> Result<Delivery, EngineError> {
        if mid.is_empty() {
            return Err(SendError::from(crate::send::BuildError::Empty {
                field: "payload.message_id",
            })
            .into());
        }
        if mid.len() > REACTION_MID_MAX_BYTES {
            return Err(SendError::from(crate::send::BuildError::TooLong {
                field: "payload.message_id",
                chars: mid.chars().count(),
                max: REACTION_MID_MAX_BYTES,
            })
            .into());
        }
        if let Some(reaction) = reaction {
            check_reaction(reaction).map_err(SendError::from)?;
        }
        self.check_send(id, agent, now).await?;
        let customers = self
            .store
            .transcript(id)
            .await?
            .iter()
            .any(|l| l.author == Author::Customer && l.mid.as_deref() == Some(mid));
        if !customers {
            return Err(EngineError::UnknownMessage(mid.to_owned()));
        }
        let message = Outgoing::Reaction {
            mid: mid.to_owned(),
            reaction: reaction.map(str::to_owned),
        };
        self.agent_send(id, agent, message, now).await
    }
}
