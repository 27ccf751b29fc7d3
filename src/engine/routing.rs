//! Work distribution at the edge: the conversation's queue, reservations through the
//! router, and what agents do in Pick queues ([`Engine::open_work`], [`Engine::pick`]).
//! The decisions themselves are in [`crate::routing`].

use std::time::SystemTime;

use super::{Engine, EngineError};
use crate::agents::{Hold, OfferRequest, PickOutcome};
use crate::conversation::{Conversation, Input};
use crate::ids::{AgentId, ConversationId};
use crate::routing::{AgentProfile, DistributionMode, PickRefusal, Queue, Routing, may_pick};
use crate::store::StoreError;
use crate::time::saturating_add;

/// The most conversations [`Engine::open_work`] lists per queue.
pub const OPEN_WORK_LIMIT: usize = 500;

impl Engine {
    /// The queues and routing rules.
    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// The queue a conversation is in (the fallback for one stored with none).
    pub(super) fn queue_of(&self, conversation: &Conversation) -> &Queue {
        self.routing.queue(conversation.queue())
    }

    /// Whether the conversation's queue offers its conversations (Push).
    pub(super) fn offers(&self, conversation: &Conversation) -> bool {
        self.queue_of(conversation).mode == DistributionMode::Push
    }

    /// Reserves an agent for an offer of `conversation`, made at `now` and lapsing with the
    /// offer's countdown.
    pub(super) async fn reserve_offer(
        &self,
        conversation: &Conversation,
        exclude: &[AgentId],
        prefer: Option<&AgentId>,
        now: SystemTime,
    ) -> Result<Option<AgentId>, StoreError> {
        let queue = self.queue_of(conversation);
        let request = OfferRequest::new(queue, exclude, prefer);
        self.router
            .reserve_offer(conversation.id(), &request, self.hold(now))
            .await
    }

    /// A reservation made at `now`, lapsing with an offer's countdown.
    pub(super) fn hold(&self, now: SystemTime) -> Hold {
        Hold {
            at: now,
            until: saturating_add(now, self.config.offer_timeout),
        }
    }

    /// What the router knows of an agent's skills (none, for an agent it does not know).
    async fn profile(&self, agent: &AgentId, now: SystemTime) -> Result<AgentProfile, StoreError> {
        Ok(self
            .router
            .agent_status(agent, now)
            .await?
            .map_or_else(|| AgentProfile::new(agent.clone()), |s| s.profile))
    }

    /// The conversations `agent` may pick now ("Open work items"): those waiting in the
    /// Pick queues whose skills allow the agent ([`may_pick`]), oldest first, at most
    /// [`OPEN_WORK_LIMIT`] per queue. Conversations stored with no queue belong to the
    /// fallback queue.
    ///
    /// # Errors
    /// [`EngineError::Store`] when the store or the router fails.
    pub async fn open_work(
        &self,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<Vec<Conversation>, EngineError> {
        let profile = self.profile(agent, now).await?;
        let fallback = &self.routing.fallback().id;
        let mut work = Vec::new();
        for queue in self
            .routing
            .queues()
            .filter(|q| q.mode == DistributionMode::Pick && may_pick(q, &profile))
        {
            work.extend(
                self.store
                    .list_queue(Some(&queue.id), OPEN_WORK_LIMIT)
                    .await?,
            );
            if queue.id == *fallback {
                work.extend(self.store.list_queue(None, OPEN_WORK_LIMIT).await?);
            }
        }
        let mut work: Vec<Conversation> = work
            .into_iter()
            .map(|s| s.conversation)
            .filter(Conversation::awaits_offer)
            .collect();
        work.sort_by(|a, b| (a.created_at(), a.id()).cmp(&(b.created_at(), b.id())));
        Ok(work)
    }

    /// The agent picks a conversation waiting in a Pick queue: its capacity is reserved
    /// (atomically: of agents picking one conversation at once, on one instance or many,
    /// exactly one gets it), then the conversation becomes Active, the agent's session, as
    /// an accepted offer would.
    ///
    /// # Errors
    /// [`EngineError::Pick`] when the queue is a Push queue, the agent lacks the skills it
    /// requires, another agent took the conversation first, or the agent has no capacity
    /// free; [`EngineError::Transition`] when the conversation does not wait in the queue
    /// (the thread is paused, or it moved on); [`EngineError::NotFound`].
    pub async fn pick(
        &self,
        id: &ConversationId,
        agent: &AgentId,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        let stored = self.load_existing(id).await?;
        let conversation = stored.conversation;
        let queue = self.queue_of(&conversation);
        if queue.mode != DistributionMode::Pick {
            return Err(PickRefusal::NotAPickQueue {
                queue: queue.id.clone(),
            }
            .into());
        }
        if !may_pick(queue, &self.profile(agent, now).await?) {
            return Err(PickRefusal::SkillsMissing {
                agent: agent.clone(),
                queue: queue.id.clone(),
            }
            .into());
        }
        // The machine's refusal, before anything is reserved.
        conversation
            .clone()
            .apply(Input::Pick(agent.clone()), now, &self.config)?;
        let hold = self.hold(now);
        match self
            .router
            .reserve_pick(id, agent, queue.capacity_units, hold)
            .await?
        {
            PickOutcome::Reserved => {}
            PickOutcome::Taken => return Err(PickRefusal::Taken.into()),
            _ => {
                return Err(PickRefusal::AtCapacity {
                    agent: agent.clone(),
                }
                .into());
            }
        }
        match self.run(id.clone(), Input::Pick(agent.clone()), now).await {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Err(release) = self.router.offer_ended(id, agent, Some(hold.until)).await {
                    tracing::warn!(error = %release, "a pick's reservation could not be ended; it lapses");
                }
                Err(e)
            }
        }
    }
}
