//! How agents are found and told: the traits the host implements, with in-memory versions.
//!
//! Each trait is small, object-safe (`async-trait`) and has a written contract.
//!
//! - [`AgentRouter`]: which agent gets an offer; agents' presence and capacity
//!   ([`InMemoryRouter`] keeps them in memory, with [`Presence`]).
//! - [`AgentNotifier`]: how offers and updates reach agents' screens ([`RecordingNotifier`]
//!   records them, as [`Notification`]s).

mod memory;

pub use memory::{
    DEFAULT_AGENT_CAPACITY, InMemoryRouter, Notification, Presence, RecordingNotifier,
};

use crate::conversation::{Conversation, Offer, TranscriptLine};
use crate::ids::{AgentId, ConversationId, PageId};

/// Choosing agents.
///
/// Contract: `pick` returns an available agent with free capacity, not in `exclude`, and
/// `prefer` when that agent qualifies; `None` when nobody does. An outstanding offer reserves
/// one unit of the agent's capacity from `pick` until `offer_ended`, so that accepting every
/// outstanding offer never takes an agent past capacity. `session_started` and
/// `session_released` keep the agent's load.
#[async_trait::async_trait]
pub trait AgentRouter: Send + Sync {
    /// An agent for a conversation of `page`; reserves one unit of their capacity.
    async fn pick(
        &self,
        page: &PageId<'_>,
        exclude: &[AgentId],
        prefer: Option<&AgentId>,
    ) -> Option<AgentId>;

    /// An offer made after `pick` is over (or was never made): frees the reservation.
    async fn offer_ended(&self, agent: &AgentId);

    /// The agent took a session.
    async fn session_started(&self, agent: &AgentId);

    /// The agent's session ended.
    async fn session_released(&self, agent: &AgentId);
}

/// Delivering news to agents (a websocket, server-sent events, push, e-mail…).
///
/// Contract: calls are notifications, delivered at least once; a notifier must not fail the
/// channel (it logs its own errors).
#[async_trait::async_trait]
pub trait AgentNotifier: Send + Sync {
    /// A conversation is offered to an agent, until `offer.expires_at`.
    async fn offer(&self, conversation: &Conversation, offer: &Offer);

    /// An offer lapsed: remove it from the agent's screen.
    async fn withdraw(&self, conversation: &ConversationId, agent: &AgentId);

    /// A conversation changed (state or transcript).
    async fn updated(&self, conversation: &Conversation, lines: &[TranscriptLine]);
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_obj_safe!(AgentRouter, AgentNotifier);
}
