//! Time: [`Engine::tick`] sweeps the inbox, fires what is due (offer countdowns, auto-close,
//! inactivity), gives queued conversations another chance at an offer, and delivers the
//! outbox's due effects.

use std::collections::{HashSet, VecDeque};
use std::time::SystemTime;

use super::{Engine, EngineError, Outcome};
use crate::conversation::Input;
use crate::ids::{AgentId, QueueId};
use crate::routing::{DistributionMode, choose_agent};

impl Engine {
    /// Applies events left in the inbox by a crash or a failure ([`Engine::apply_pending`]),
    /// fires what is due (offer timeouts: the offer goes to another agent; auto-close and
    /// inactivity), and delivers the outbox's due effects ([`Engine::deliver_due`]). The
    /// worker ([`Engine::start`]) calls it every [`DeliveryConfig::poll`](super::DeliveryConfig::poll); a host driving
    /// the engine by hand calls it every second or so with the current time.
    ///
    /// # Errors
    /// Store failures; conversations that fail are skipped and retried at the next tick.
    pub async fn tick(&self, now: SystemTime) -> Result<usize, EngineError> {
        // Sends answered late in the pass are recorded at `now` plus the time since here.
        let _pass = self.passes.begin(now);
        // Each step runs even when an earlier one failed; the first failure is returned.
        let mut first_error = None;
        match self.apply_pending(now).await {
            Ok(swept) => {
                for (thread, e) in &swept.failed {
                    tracing::warn!(thread, error = %e, "inbox sweep: an event is still pending");
                }
                if let Some(e) = swept.unpacking {
                    tracing::warn!(error = %e, "inbox sweep: recorded webhook bodies not unpacked yet");
                    first_error = Some(e);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "inbox sweep failed");
                first_error = Some(e);
            }
        }
        let fired = match self.fire_due(now).await {
            Ok(fired) => fired,
            Err(e) => {
                tracing::warn!(error = %e, "timers failed");
                first_error.get_or_insert(e);
                0
            }
        };
        if let Err(e) = self.deliver_due(now).await {
            tracing::warn!(error = %e, "delivery failed");
            first_error.get_or_insert(e);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(fired),
        }
    }

    /// Fires due timers and gives queued conversations another chance at an offer.
    async fn fire_due(&self, now: SystemTime) -> Result<usize, EngineError> {
        let due = self.store.due(now).await?;
        let mut fired = 0;
        for id in due {
            match self.run(id, Input::Tick, now).await {
                Ok(_) => fired += 1,
                Err(e) => tracing::warn!(error = %e, "tick failed"),
            }
        }
        // Conversations left in a Push queue without an offer get another chance, oldest
        // first (Pick queues make no offer: their conversations wait to be picked). The
        // agents are read once: a queue for which none of them could take a conversation
        // (presence, free capacity, skills) is passed over until the next tick, so a full
        // queue costs no decision per waiting conversation. The reading is kept up to date
        // with the offers this tick makes; what other instances do meanwhile is for the
        // router's own decision, which is made for every conversation still tried.
        let mut agents = match self.router.agent_statuses(now).await {
            Ok(agents) => Some(agents),
            Err(e) => {
                tracing::warn!(error = %e, "the agents could not be read; every waiting conversation is tried");
                None
            }
        };
        if let Some(agents) = &agents {
            // Nobody could take any Push queue's work (the fallback queue stands for a
            // conversation of no queue, or of one the routing no longer has): the waiting
            // conversations are not even read.
            let anyone = self
                .routing
                .queues()
                .filter(|q| q.mode == DistributionMode::Push)
                .any(|q| choose_agent(q, agents, &[], None).is_some());
            if !anyone {
                return Ok(fired);
            }
        }
        let mut full: HashSet<QueueId> = HashSet::new();
        for stored in self.store.list_queued().await? {
            let c = stored.conversation;
            let queue = self.queue_of(&c);
            if !(c.awaits_offer()
                && self.offers(&c)
                && !full.contains(&queue.id)
                && queue.is_open(now))
            {
                continue;
            }
            let exclude: Vec<AgentId> = c.excluded_agents(now, &self.config).cloned().collect();
            if let Some(agents) = &agents {
                if choose_agent(queue, agents, &exclude, None).is_none() {
                    // Nobody for this one; for none of the queue's when it excludes nobody.
                    if exclude.is_empty() {
                        full.insert(queue.id.clone());
                    }
                    continue;
                }
            }
            let reserved = match self.reserve_offer(&c, &exclude, None, now).await {
                Ok(reserved) => reserved,
                Err(e) => {
                    tracing::warn!(error = %e, "no agent could be reserved");
                    None
                }
            };
            if let Some(agent) = reserved {
                if let Some(status) = agents
                    .as_mut()
                    .and_then(|all| all.iter_mut().find(|s| *s.id() == agent))
                {
                    status.used = status.used.saturating_add(queue.capacity_units);
                }
                let mut outcome = Outcome::default();
                self.drain(
                    VecDeque::from([(c.id().clone(), Input::OfferTo(agent))]),
                    now,
                    &mut outcome,
                )
                .await;
            }
        }
        Ok(fired)
    }
}
