//! Queues: where conversations wait, how their work is distributed, what they require of
//! agents.

use serde::{Deserialize, Serialize};

use super::automated::{AutomatedMessages, OutsideHours};
use super::hours::OperatingHours;
use crate::ids::{QueueId, SkillId};

/// The id of the queue an engine uses when the host configures none, and the queue of
/// conversations stored before queues existed when the host keeps this name for its fallback.
pub const DEFAULT_QUEUE: &str = "default";

/// The capacity a conversation takes from an agent unless its queue says otherwise
/// (Omnichannel's unit-based capacity).
pub const DEFAULT_CAPACITY_UNITS: u32 = 1;

/// How a queue's conversations reach agents (Omnichannel's work distribution mode, which a
/// workstream cannot change once created).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DistributionMode {
    /// The channel offers each conversation to the best available agent, who accepts or
    /// rejects it ([`crate::routing::choose_agent`]).
    #[default]
    Push,
    /// No offer is made: conversations wait in the queue, and eligible agents pick them
    /// ([`crate::routing::may_pick`]); the first to pick one gets it.
    Pick,
}

/// How a queue's required skills select agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SkillMatching {
    /// Only agents with every required skill, each at its level or above.
    Exact,
    /// Every agent may get the work; the closest match first: the fewest required skills
    /// missing, then the smallest total shortfall of levels (an exact match has neither).
    Closest,
    /// Skills are not looked at.
    #[default]
    None,
}

/// A skill a queue requires, at a level or above.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SkillRequirement {
    /// The skill.
    pub skill: SkillId,
    /// The lowest level that meets it.
    pub level: u8,
}

/// A queue: its distribution mode, the skills it requires and how they match, and the
/// capacity each of its conversations takes from an agent.
///
/// ```
/// use messenger_channel::ids::{QueueId, SkillId};
/// use messenger_channel::routing::{DistributionMode, Queue, SkillMatching};
///
/// let billing = Queue::push(QueueId::from("billing"))
///     .name("Billing (French)")
///     .skill(SkillId::from("billing"), 3)
///     .skill(SkillId::from("fr"), 1)
///     .matching(SkillMatching::Exact)
///     .capacity_units(2);
/// assert_eq!(billing.mode, DistributionMode::Push);
/// assert_eq!(billing.skills.len(), 2);
/// assert_eq!(Queue::pick(QueueId::from("returns")).mode, DistributionMode::Pick);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Queue {
    /// Its id.
    pub id: QueueId,
    /// A name to show (the id unless set).
    pub name: String,
    /// Push or Pick.
    pub mode: DistributionMode,
    /// The skills it requires, each at a level.
    pub skills: Vec<SkillRequirement>,
    /// How those skills select agents.
    pub matching: SkillMatching,
    /// The capacity one of its conversations takes from an agent.
    pub capacity_units: u32,
    /// Its automated messages (none unless set).
    #[serde(default)]
    pub messages: AutomatedMessages,
    /// When it is open; `None` (the default): always.
    #[serde(default)]
    pub hours: Option<OperatingHours>,
    /// What becomes of a conversation that starts while it is closed.
    #[serde(default)]
    pub outside_hours: OutsideHours,
    /// Whether [`Queue::matching`] set the matching mode: [`Queue::skill`] then leaves it.
    #[serde(skip)]
    matching_chosen: bool,
}

/// Queues are equal when their configuration is (however their matching mode was set).
impl PartialEq for Queue {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.name == other.name
            && self.mode == other.mode
            && self.skills == other.skills
            && self.matching == other.matching
            && self.capacity_units == other.capacity_units
            && self.messages == other.messages
            && self.hours == other.hours
            && self.outside_hours == other.outside_hours
    }
}

impl Eq for Queue {}

impl Queue {
    /// A queue with `mode`, no skills required, taking [`DEFAULT_CAPACITY_UNITS`].
    pub fn new(id: QueueId, mode: DistributionMode) -> Self {
        Self {
            name: id.as_str().to_owned(),
            id,
            mode,
            skills: Vec::new(),
            matching: SkillMatching::None,
            capacity_units: DEFAULT_CAPACITY_UNITS,
            messages: AutomatedMessages::default(),
            hours: None,
            outside_hours: OutsideHours::Wait,
            matching_chosen: false,
        }
    }

    /// A Push queue.
    pub fn push(id: QueueId) -> Self {
        Self::new(id, DistributionMode::Push)
    }

    /// A Pick queue.
    pub fn pick(id: QueueId) -> Self {
        Self::new(id, DistributionMode::Pick)
    }

    /// The queue an engine uses when the host configures none: [`DEFAULT_QUEUE`], Push, no
    /// skills.
    pub fn fallback() -> Self {
        Self::push(QueueId::from(DEFAULT_QUEUE))
    }

    /// Sets the name to show.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Requires a skill at `level` or above (set again, the level is replaced). Unless a
    /// matching mode was chosen ([`Queue::matching`], before or after), the queue matches
    /// [`SkillMatching::Exact`].
    #[must_use]
    pub fn skill(mut self, skill: SkillId, level: u8) -> Self {
        match self.skills.iter_mut().find(|r| r.skill == skill) {
            Some(r) => r.level = level,
            None => self.skills.push(SkillRequirement { skill, level }),
        }
        if !self.matching_chosen {
            self.matching = SkillMatching::Exact;
        }
        self
    }

    /// Sets how skills select agents.
    #[must_use]
    pub fn matching(mut self, matching: SkillMatching) -> Self {
        self.matching = matching;
        self.matching_chosen = true;
        self
    }

    /// Sets its automated messages.
    #[must_use]
    pub fn messages(mut self, messages: AutomatedMessages) -> Self {
        self.messages = messages;
        self
    }

    /// Sets its operating hours, and what becomes of a conversation that starts outside
    /// them.
    #[must_use]
    pub fn hours(mut self, hours: OperatingHours, outside: OutsideHours) -> Self {
        self.hours = Some(hours);
        self.outside_hours = outside;
        self
    }

    /// Whether it is open at `now`: always, with no operating hours.
    pub fn is_open(&self, now: std::time::SystemTime) -> bool {
        self.hours.as_ref().is_none_or(|h| h.is_open(now))
    }

    /// Sets the capacity one conversation takes (at least 1).
    #[must_use]
    pub fn capacity_units(mut self, units: u32) -> Self {
        self.capacity_units = units.max(1);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_what_they_name() {
        let q = Queue::pick(QueueId::from("q"));
        assert_eq!(q.name, "q");
        assert_eq!(q.matching, SkillMatching::None);
        assert_eq!(q.capacity_units, DEFAULT_CAPACITY_UNITS);
        let q = q
            .skill(SkillId::from("a"), 2)
            .skill(SkillId::from("a"), 4)
            .capacity_units(0);
        assert_eq!(q.matching, SkillMatching::Exact);
        assert_eq!(
            q.skills,
            [SkillRequirement {
                skill: SkillId::from("a"),
                level: 4
            }]
        );
        assert_eq!(q.capacity_units, 1);
        let q = q
            .matching(SkillMatching::Closest)
            .skill(SkillId::from("b"), 1);
        assert_eq!(q.matching, SkillMatching::Closest);
        assert_eq!(q.skills.len(), 2);
        // A mode chosen first is kept when skills come after (None stays None).
        let none = Queue::push(QueueId::from("n"))
            .matching(SkillMatching::None)
            .skill(SkillId::from("a"), 1);
        assert_eq!(none.matching, SkillMatching::None);
        let closest = Queue::push(QueueId::from("c"))
            .matching(SkillMatching::Closest)
            .skill(SkillId::from("a"), 1);
        assert_eq!(closest.matching, SkillMatching::Closest);
        // Equal whether the mode was chosen or followed from a skill.
        let chosen = Queue::push(QueueId::from("e"))
            .matching(SkillMatching::Exact)
            .skill(SkillId::from("a"), 1);
        let followed = Queue::push(QueueId::from("e")).skill(SkillId::from("a"), 1);
        assert_eq!(chosen, followed);
        assert_ne!(chosen, none);
        assert_eq!(Queue::fallback().id, DEFAULT_QUEUE);
        assert_eq!(Queue::fallback().mode, DistributionMode::Push);
        assert_eq!(Queue::push(QueueId::from("x")).name("X").name, "X");
        assert_eq!(DistributionMode::default(), DistributionMode::Push);
    }
}
