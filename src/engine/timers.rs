//! Time: [`Engine::tick`] sweeps the inbox, fires what is due (offer countdowns, auto-close,
//! inactivity), gives queued conversations another chance at an offer, and delivers the
//! outbox's due effects.

use std::collections::{HashSet, VecDeque};
use std::time::SystemTime;

use super::{Engine, EngineError, Outcome};
use crate::conversation::Input;
use crate::ids::{AgentId, QueueId};
use crate::routing::{AgentStatus, DistributionMode, choose_agent};
use crate::store::QueuePlace;

/// How many waiting conversations [`Engine::tick`] reads at a time to give them another
/// chance at an offer ([`crate::store::ConversationStore::list_queued_after`]), oldest
/// first: a tick that offers one conversation to the one agent with room reads one page,
/// not every waiting conversation; one whose head holds conversations nobody can be
/// offered reads on, page after page, until someone can be.
pub const QUEUED_PAGE: usize = 128;

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
        if let Err(e) = self.offer_waiting(now).await {
            tracing::warn!(error = %e, "waiting conversations could not be offered");
            first_error.get_or_insert(e);
        }
        if let Err(e) = self.deliver_due(now).await {
            tracing::warn!(error = %e, "delivery failed");
            first_error.get_or_insert(e);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(fired),
        }
    }

    /// Fires due timers: how many.
    async fn fire_due(&self, now: SystemTime) -> Result<usize, EngineError> {
        let due = self.store.due(now).await?;
        let mut fired = 0;
        for id in due {
            match self.run(id, Input::Tick, now).await {
                Ok(_) => fired += 1,
                Err(e) => tracing::warn!(error = %e, "tick failed"),
            }
        }
        Ok(fired)
    }

    /// Gives queued conversations another chance at an offer.
    async fn offer_waiting(&self, now: SystemTime) -> Result<(), EngineError> {
        // Conversations left in a Push queue without an offer get another chance, oldest
        // first (Pick queues make no offer: their conversations wait to be picked), with the
        // agent affinity they wait with ([`Conversation::preferred_agent`]). The agents are
        // read once: a queue for which none of them could take a conversation (presence,
        // free capacity, skills) is passed over until the next tick, so a full queue costs
        // no decision per waiting conversation. After each offer this tick makes, its
        // agent is read again; what other instances do meanwhile is for the router's own
        // decision, which is made for every conversation still tried. A conversation whose
        // offer's reservation outlived its offer (an instance crashed between the two) waits
        // at most until that reservation lapses, the offer's countdown.
        //
        // The agents unread (the router failing), no conversation is tried: each would fail
        // the same way. The tick reports the failure; the next one tries again.
        let mut agents = self.router.agent_statuses(now).await?;
        // Nobody could take any open Push queue's work: the waiting conversations are not
        // even read.
        if !self.anyone_takes(&agents, now) {
            return Ok(());
        }
        // They are read a page at a time, oldest first, each page after the last place of
        // the one before: conversations that cannot be offered (paused, excluded agents, a
        // closed or Pick queue) are passed over, never read again in this tick, and never
        // hide the ones behind them. Once the reading says that nobody can take any more
        // work, no further page is read.
        let mut full: HashSet<QueueId> = HashSet::new();
        let mut after: Option<QueuePlace> = None;
        loop {
            let page = self
                .store
                .list_queued_after(after.as_ref(), QUEUED_PAGE)
                .await?;
            let more = page.len() >= QUEUED_PAGE;
            after = page.last().map(|q| q.place.clone());
            for queued in page {
                let c = queued.stored.conversation;
                let queue = self.queue_of(&c);
                if !(c.awaits_offer()
                    && self.offers(&c)
                    && !full.contains(&queue.id)
                    && queue.is_open(now))
                {
                    continue;
                }
                let exclude: Vec<AgentId> = c.excluded_agents(now, &self.config).cloned().collect();
                if choose_agent(queue, &agents, &exclude, None).is_none() {
                    // Nobody for this one; for none of the queue's when it excludes nobody.
                    if exclude.is_empty() {
                        full.insert(queue.id.clone());
                    }
                    continue;
                }
                let prefer = c.preferred_agent();
                let reserved = match self.reserve_offer(&c, &exclude, prefer, now).await {
                    Ok(reserved) => reserved,
                    Err(e) => {
                        tracing::warn!(error = %e, "no agent could be reserved");
                        None
                    }
                };
                if let Some(agent) = reserved {
                    // The agent as the router counts them now (a renewed reservation counts
                    // once); unread, the queue's units are added.
                    if let Some(status) = agents.iter_mut().find(|s| *s.id() == agent) {
                        match self.router.agent_status(&agent, now).await {
                            Ok(Some(read)) => *status = read,
                            Ok(None) | Err(_) => {
                                status.used = status.used.saturating_add(queue.capacity_units);
                            }
                        }
                    }
                    let mut outcome = Outcome::default();
                    self.drain(
                        VecDeque::from([(c.id().clone(), Input::OfferTo(agent))]),
                        now,
                        &mut outcome,
                    )
                    .await;
                    if !self.anyone_takes(&agents, now) {
                        return Ok(());
                    }
                }
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// Whether the agents' reading leaves someone who could take work from an open Push
    /// queue (the fallback queue stands for a conversation of no queue, or of one the routing
    /// no longer has): presence, free capacity, skills.
    fn anyone_takes(&self, agents: &[AgentStatus], now: SystemTime) -> bool {
        self.routing
            .queues()
            .filter(|q| q.mode == DistributionMode::Push && q.is_open(now))
            .any(|q| choose_agent(q, agents, &[], None).is_some())
    }
}
