//! A channel's routing: its queues and the rules that classify conversations into them.

use std::collections::BTreeMap;

use super::queue::Queue;
use super::rules::{RoutingRules, StartFacts};
use crate::ids::QueueId;

/// The queues and the routing rules an engine distributes work with
/// ([`crate::engine::EngineBuilder::routing`]).
///
/// The default is what an engine with no routing configured does: one Push queue,
/// [`super::DEFAULT_QUEUE`], with no skills, for every conversation.
///
/// ```
/// use messenger_channel::ids::{QueueId, SkillId};
/// use messenger_channel::routing::{Condition, Queue, Routing, RoutingRules, SkillMatching};
///
/// let routing = Routing::new(Queue::push(QueueId::from("general")))
///     .add_queue(Queue::pick(QueueId::from("returns")))
///     .add_queue(Queue::push(QueueId::from("billing")).skill(SkillId::from("billing"), 3))
///     .rules(
///         RoutingRules::new(QueueId::from("general"))
///             .when(Condition::Keywords(vec!["return".into()]), QueueId::from("returns"))
///             .when(Condition::Keywords(vec!["invoice".into()]), QueueId::from("billing")),
///     );
/// assert_eq!(routing.queue(Some(&QueueId::from("billing"))).matching, SkillMatching::Exact);
/// // Conversations of no queue, or of a queue since removed, belong to the fallback.
/// assert_eq!(routing.queue(None).id, "general");
/// assert_eq!(routing.queue(Some(&QueueId::from("gone"))).id, "general");
/// ```
#[derive(Debug, Clone)]
pub struct Routing {
    /// Every queue, the fallback included.
    queues: BTreeMap<QueueId, Queue>,
    /// The fallback queue (also in `queues`).
    fallback: Queue,
    rules: RoutingRules,
}

impl Default for Routing {
    fn default() -> Self {
        Self::new(Queue::fallback())
    }
}

impl Routing {
    /// Routing with one queue, the fallback, and no rules.
    pub fn new(fallback: Queue) -> Self {
        let rules = RoutingRules::new(fallback.id.clone());
        Self {
            queues: BTreeMap::from([(fallback.id.clone(), fallback.clone())]),
            fallback,
            rules,
        }
    }

    /// Adds (or replaces) a queue.
    #[must_use]
    pub fn add_queue(mut self, queue: Queue) -> Self {
        if queue.id == self.fallback.id {
            self.fallback = queue.clone();
        }
        self.queues.insert(queue.id.clone(), queue);
        self
    }

    /// Sets the rules. Their fallback becomes the fallback queue; when no queue of that id
    /// was added, it is added as a Push queue with no skills.
    #[must_use]
    pub fn rules(mut self, rules: RoutingRules) -> Self {
        let id = rules.fallback().clone();
        self.fallback = self
            .queues
            .entry(id.clone())
            .or_insert_with(|| Queue::push(id))
            .clone();
        self.rules = rules;
        self
    }

    /// The rules.
    pub fn routing_rules(&self) -> &RoutingRules {
        &self.rules
    }

    /// Every queue, in id order.
    pub fn queues(&self) -> impl Iterator<Item = &Queue> {
        self.queues.values()
    }

    /// The fallback queue.
    pub fn fallback(&self) -> &Queue {
        &self.fallback
    }

    /// The queue with this id; the fallback for `None` (a conversation stored before queues
    /// existed) or an id no queue has (a queue since removed, or a host rule's mistake).
    pub fn queue(&self, id: Option<&QueueId>) -> &Queue {
        id.and_then(|id| self.queues.get(id))
            .unwrap_or(&self.fallback)
    }

    /// The queue a new conversation goes to: the rules' choice when it is a known queue,
    /// otherwise the fallback.
    pub fn classify(&self, facts: &StartFacts<'_>) -> &Queue {
        let id = self.rules.classify(facts);
        self.queue(Some(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{PageId, UserId};
    use crate::routing::{Condition, DEFAULT_QUEUE, DistributionMode};

    #[test]
    fn the_default_is_one_push_queue() {
        let r = Routing::default();
        assert_eq!(r.queues().count(), 1);
        assert_eq!(r.fallback().id, DEFAULT_QUEUE);
        assert_eq!(r.fallback().mode, DistributionMode::Push);
        let (p, c) = (PageId::from("p"), UserId::from("c"));
        assert_eq!(r.classify(&StartFacts::new(&p, &c)).id, DEFAULT_QUEUE);
        assert!(r.routing_rules().rules().is_empty());
    }

    #[test]
    fn unknown_queues_fall_back_and_rules_bring_their_fallback() {
        let r = Routing::new(Queue::push(QueueId::from("a")))
            .add_queue(Queue::pick(QueueId::from("b")))
            .rules(
                RoutingRules::new(QueueId::from("z"))
                    .when(Condition::Page(PageId::from("pb")), QueueId::from("b"))
                    .when(
                        Condition::Page(PageId::from("px")),
                        QueueId::from("missing"),
                    ),
            );
        assert_eq!(r.queues().count(), 3);
        assert_eq!(r.fallback().id, "z");
        assert_eq!(r.queue(Some(&QueueId::from("a"))).id, "a");
        let c = UserId::from("c");
        for (page, queue) in [("pb", "b"), ("px", "z"), ("pa", "z")] {
            let page = PageId::from(page);
            assert_eq!(r.classify(&StartFacts::new(&page, &c)).id, queue);
        }
        // A queue added under the fallback's id replaces it.
        let r =
            Routing::default().add_queue(Queue::pick(QueueId::from(crate::routing::DEFAULT_QUEUE)));
        assert_eq!(r.fallback().mode, DistributionMode::Pick);
        assert_eq!(r.queue(None).mode, DistributionMode::Pick);
        // Rules whose fallback is a known queue keep it as it was.
        let r = Routing::new(Queue::push(QueueId::from("a")))
            .add_queue(Queue::pick(QueueId::from("b")))
            .rules(RoutingRules::new(QueueId::from("b")));
        assert_eq!(r.fallback().mode, DistributionMode::Pick);
    }
}
