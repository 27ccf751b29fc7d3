//! How agents are found and told: the traits the host implements, with in-memory versions.
//!
//! Each trait is small, object-safe (`async-trait`) and has a written contract.
//!
//! - [`AgentRouter`]: agents' presence, skills and capacity, and the capacity reserved for
//!   offers, picks and sessions. [`InMemoryRouter`] keeps them in one process; the SQL stores
//!   (`store::SqliteStore`, `store::PostgresStore`) keep them in the shared database, so that
//!   several instances never take an agent past capacity. Which agent gets an offer is
//!   decided by [`crate::routing::choose_agent`], a pure function, on what the router reads.
//! - [`AgentNotifier`]: how offers, updates and presence set by the engine reach agents' screens ([`RecordingNotifier`]
//!   records them, as [`Notification`]s).
//! - [`fleet`] (feature `postgres`): the notifications of a fleet of instances on one
//!   PostgreSQL database, through `LISTEN`/`NOTIFY`, so that an agent connected to any
//!   instance hears of an offer made by another.

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod fleet;
mod memory;

use std::time::SystemTime;

pub use memory::{InMemoryRouter, Notification, RecordingNotifier};

pub use crate::routing::{DEFAULT_AGENT_CAPACITY, Presence};

use crate::conversation::{Conversation, Offer, TranscriptLine};
use crate::ids::{AgentId, ConversationId};
use crate::routing::{AgentProfile, AgentStatus, Queue};
use crate::store::StoreError;

/// What a Push offer needs decided: the queue, who not to offer it to, whom to prefer.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct OfferRequest<'a> {
    /// The conversation's queue: its skills, matching and capacity units.
    pub queue: &'a Queue,
    /// Agents not to offer it to ([`Conversation::excluded_agents`]).
    pub exclude: &'a [AgentId],
    /// An agent to offer it to first if they qualify (agent affinity on revive).
    pub prefer: Option<&'a AgentId>,
}

impl<'a> OfferRequest<'a> {
    /// A request for `queue`, excluding `exclude`, preferring `prefer`.
    pub fn new(queue: &'a Queue, exclude: &'a [AgentId], prefer: Option<&'a AgentId>) -> Self {
        Self {
            queue,
            exclude,
            prefer,
        }
    }
}

/// How long a reservation for an offer or a pick holds: made at `at`, it lapses at `until`
/// unless ended, or turned into a session, before. A reservation whose instance crashed
/// before its offer was saved frees the agent's capacity when it lapses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    /// Now, on the conversations' clock (the engine's `now`).
    pub at: SystemTime,
    /// When it lapses.
    pub until: SystemTime,
}

/// What became of a pick ([`AgentRouter::reserve_pick`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PickOutcome {
    /// The capacity is reserved: the conversation is the agent's to take.
    Reserved,
    /// Another agent holds the conversation (picked it, is offered it, or holds its session).
    Taken,
    /// The agent has not the capacity free.
    AtCapacity,
}

/// Agents' presence and capacity, and what of it is reserved: for an outstanding offer, a pick
/// under way, a session held; by conversation and agent.
///
/// Contract:
/// - `reserve_offer` decides with [`crate::routing::choose_agent`] on the agents as they are
///   and reserves the queue's units of the agent it returns, atomically: however many callers
///   (instances on one database) reserve at once, no agent's reserved units exceed their
///   capacity. `None` when nobody qualifies, or when someone holds the conversation (a
///   session, a pick). Reserving an offer of a conversation again for the agent who holds
///   one renews it, counted once (an offer whose instance crashed before saving it does
///   not block the conversation). Offers of one conversation to several agents may be
///   reserved at once; the conversation's state machine lets one be made, and the others
///   end with `offer_ended`.
/// - `reserve_pick` reserves for one agent, atomically, unless someone holds the
///   conversation (a session, a pick, an offer: [`PickOutcome::Taken`]) or the agent has not
///   the capacity free ([`PickOutcome::AtCapacity`]): of agents picking one conversation at
///   once, exactly one gets it. Presence is not checked.
/// - A reservation for an offer or a pick holds until [`Hold::until`], unless
///   `session_started` turns it into a session (which holds until `session_released`) or
///   `offer_ended` ends it. `session_started` never fails for capacity: an accepted offer,
///   a pick, a revive always start their session.
/// - `presence_after_offer` sets the presence only while the agent is Available and for an
///   offer that ended after the last one that set it, atomically.
/// - `renewal_unused` sets a reservation renewed for an offer not made back to the
///   outstanding offer's end, only while it still lapses at the renewal's.
/// - Units in use are those of sessions and of reservations not lapsed at the `now` given.
/// - `offer_ended` and `session_released` end only what they name (this conversation, this
///   agent, this kind; for `offer_ended` given a hold's end, a reservation lapsing no later:
///   a late end of an earlier offer leaves the renewed reservation of a later one); calling
///   them again changes nothing.
#[async_trait::async_trait]
pub trait AgentRouter: Send + Sync {
    /// Adds an agent, or updates their skills and capacity (their presence stays; a new
    /// agent is [`Presence::Offline`]).
    async fn upsert_agent(&self, profile: &AgentProfile) -> Result<(), StoreError>;

    /// Sets an agent's presence (a new agent gets no skills and the default capacity).
    async fn update_presence(&self, agent: &AgentId, presence: Presence) -> Result<(), StoreError>;

    /// Sets an agent's presence after an offer that they missed or rejected at `ended_at`
    /// ([`crate::conversation::Effect::SetPresence`], Omnichannel's option), in one step:
    /// only while they are [`Presence::Available`], and only for an offer that ended after the
    /// last one that set it, so that the effect delivered again (at least once), or an older
    /// miss's delivered late, after the agent set themselves Available again changes nothing.
    /// Whether the presence was set.
    async fn presence_after_offer(
        &self,
        agent: &AgentId,
        presence: Presence,
        ended_at: SystemTime,
    ) -> Result<bool, StoreError>;

    /// Every agent known, with presence and the capacity in use at `now`, in id order.
    async fn agent_statuses(&self, now: SystemTime) -> Result<Vec<AgentStatus>, StoreError>;

    /// One agent as [`AgentRouter::agent_statuses`] gives them.
    async fn agent_status(
        &self,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<Option<AgentStatus>, StoreError> {
        Ok(self
            .agent_statuses(now)
            .await?
            .into_iter()
            .find(|a| a.id() == agent))
    }

    /// Chooses an agent for an offer of `conversation` and reserves the queue's units of
    /// their capacity until `hold.until`.
    async fn reserve_offer(
        &self,
        conversation: &ConversationId,
        request: &OfferRequest<'_>,
        hold: Hold,
    ) -> Result<Option<AgentId>, StoreError>;

    /// Reserves `units` of `agent`'s capacity for a pick of `conversation` until
    /// `hold.until`.
    async fn reserve_pick(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
        units: u32,
        hold: Hold,
    ) -> Result<PickOutcome, StoreError>;

    /// The agent holds the conversation's session: its reservation (if any) becomes the
    /// session, of `units`.
    async fn session_started(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
        units: u32,
        now: SystemTime,
    ) -> Result<(), StoreError>;

    /// The offer (or pick) of the conversation to the agent is over: its reservation ends.
    /// Given `until`, the [`Hold::until`] the ended offer's reservation was made with, only a
    /// reservation lapsing no later ends: one renewed since for a new offer of the
    /// conversation to the same agent (lapsing later) stays. `None` ends it whatever its
    /// hold. A session the agent holds in it stays.
    async fn offer_ended(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
        until: Option<SystemTime>,
    ) -> Result<(), StoreError>;

    /// `agent`'s reservation of the conversation, renewed until `renewed_until` for an offer
    /// that was not made because the agent is offered the conversation already (a caller that
    /// decided on an older reading), lapses with that outstanding offer again, at
    /// `offer_until`, unless it was renewed since (it no longer lapses at `renewed_until`).
    /// Otherwise the renewal would outlive the offer, and the offer's end
    /// ([`AgentRouter::offer_ended`] with the offer's hold) would leave it.
    async fn renewal_unused(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
        renewed_until: SystemTime,
        offer_until: SystemTime,
    ) -> Result<(), StoreError>;

    /// The agent's session of the conversation ended: its capacity is free.
    async fn session_released(
        &self,
        conversation: &ConversationId,
        agent: &AgentId,
    ) -> Result<(), StoreError>;
}

/// Delivering news to agents (a websocket, server-sent events, push, e-mail…).
///
/// Contract: calls are notifications, delivered at least once; a notifier must not fail the
/// channel (it logs its own errors).
#[async_trait::async_trait]
pub trait AgentNotifier: Send + Sync {
    /// A conversation is offered to an agent, until `offer.expires_at`. An offer of a
    /// transferred conversation has [`Conversation::transfer`] set: show it as a transfer
    /// (Omnichannel's transfer notification), with who transferred it and the note.
    async fn offer(&self, conversation: &Conversation, offer: &Offer);

    /// An offer lapsed: remove it from the agent's screen.
    async fn withdraw(&self, conversation: &ConversationId, agent: &AgentId);

    /// A conversation changed (state or transcript).
    async fn updated(&self, conversation: &Conversation, lines: &[TranscriptLine]);

    /// The agent was invited to consult in the conversation (internal notes only;
    /// [`Conversation::consultants`]). The default does nothing: [`AgentNotifier::updated`]
    /// tells of the invitation too, by its internal line.
    async fn consult(&self, conversation: &Conversation, agent: &AgentId) {
        let _ = (conversation, agent);
    }

    /// The agent's presence was set to `presence` by the engine, not by the agent: they let an
    /// offer lapse or rejected it, and the host configured
    /// [`ConversationConfig::presence_after_missed_offer`] or
    /// [`ConversationConfig::presence_after_rejected_offer`]. Called once the router holds the
    /// new presence, and only when it was set ([`AgentRouter::presence_after_offer`]: once per
    /// offer; an agent who had meanwhile left [`Presence::Available`] keeps their own, and
    /// nothing is told). Show it on the agent's screen (their presence control, and why it
    /// changed). The default does nothing.
    ///
    /// [`ConversationConfig::presence_after_missed_offer`]: crate::conversation::ConversationConfig::presence_after_missed_offer
    /// [`ConversationConfig::presence_after_rejected_offer`]: crate::conversation::ConversationConfig::presence_after_rejected_offer
    async fn presence(&self, agent: &AgentId, presence: Presence) {
        let _ = (agent, presence);
    }

    /// Notifications may have been missed: a notifier fed from elsewhere (a
    /// [`fleet::FleetListener`] whose connection dropped and came back) calls it once it hears
    /// again. Re-read what agents' screens show (their offers, their conversations) from the
    /// engine or the store. The default does nothing: a notifier the engine calls directly
    /// misses nothing.
    async fn resynced(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_obj_safe!(AgentRouter, AgentNotifier);
}
