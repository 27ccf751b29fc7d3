//! Time: [`Engine::tick`] sweeps the inbox, fires what is due (offer countdowns, auto-close,
//! inactivity), gives queued conversations another chance at an offer, and delivers the
//! outbox's due effects.

use std::collections::VecDeque;
use std::time::SystemTime;

use super::{Engine, EngineError, Outcome};
use crate::conversation::Input;
use crate::ids::{AgentId, QueueId};
use crate::routing::DistributionMode;

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
        // first, a page of each queue at most (Pick queues make no offer: their
        // conversations wait to be picked). When nobody could be reserved for a conversation
        // that excludes nobody, nobody can take the queue's others either (exclusions only
        // narrow the choice): the queue is passed over until the next tick, so a full queue
        // costs one decision, not one per waiting conversation. Conversations of a queue
        // the routing no longer has get their chance when something happens in them.
        let mut queues: Vec<Option<QueueId>> = vec![None];
        queues.extend(
            self.routing
                .queues()
                .filter(|q| q.mode == DistributionMode::Push)
                .map(|q| Some(q.id.clone())),
        );
        for queue in queues {
            let waiting = self
                .store
                .list_queue(queue.as_ref(), super::OPEN_WORK_LIMIT)
                .await?;
            for stored in waiting {
                let c = stored.conversation;
                if !(c.awaits_offer() && self.offers(&c) && self.queue_of(&c).is_open(now)) {
                    continue;
                }
                let exclude: Vec<AgentId> = c.excluded_agents(now, &self.config).cloned().collect();
                let reserved = match self.reserve_offer(&c, &exclude, None, now).await {
                    Ok(None) if exclude.is_empty() => break,
                    Ok(reserved) => reserved,
                    Err(e) => {
                        tracing::warn!(error = %e, "no agent could be reserved");
                        None
                    }
                };
                if let Some(agent) = reserved {
                    let mut outcome = Outcome::default();
                    self.drain(
                        VecDeque::from([(c.id().clone(), Input::OfferTo(agent))]),
                        now,
                        &mut outcome,
                    )
                    .await;
                }
            }
        }
        Ok(fired)
    }
}
