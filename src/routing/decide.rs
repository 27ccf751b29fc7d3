//! The Push decision (which agent gets an offer) and Pick eligibility, as pure functions.

use super::agent::AgentStatus;
use super::queue::{Queue, SkillMatching};
use crate::ids::AgentId;

/// How far an agent's skills are from a queue's requirements: required skills missing, then
/// the total shortfall of levels of the skills held below their level. `(0, 0)` meets every
/// requirement.
///
/// ```
/// use messenger_channel::ids::{AgentId, QueueId, SkillId};
/// use messenger_channel::routing::{AgentProfile, Queue, SkillDistance, skill_distance};
///
/// let queue = Queue::push(QueueId::from("q")).skill(SkillId::from("billing"), 5).skill(SkillId::from("fr"), 2);
/// let ada = AgentProfile::new(AgentId::from("ada")).skill(SkillId::from("billing"), 3);
/// assert_eq!(skill_distance(&queue, &ada), SkillDistance { missing: 1, shortfall: 2 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SkillDistance {
    /// Required skills the agent lacks.
    pub missing: usize,
    /// Levels lacking in the required skills the agent has.
    pub shortfall: u32,
}

impl SkillDistance {
    /// Whether every requirement is met.
    pub fn is_exact(self) -> bool {
        self == Self::default()
    }
}

/// How far `agent`'s skills are from `queue`'s requirements.
pub fn skill_distance(queue: &Queue, agent: &super::AgentProfile) -> SkillDistance {
    queue
        .skills
        .iter()
        .fold(SkillDistance::default(), |mut d, required| {
            match agent.skills.get(&required.skill) {
                None => d.missing += 1,
                Some(&level) => {
                    d.shortfall += u32::from(required.level.saturating_sub(level));
                }
            }
            d
        })
}

/// Whether the queue's skills allow `agent` its work: under [`SkillMatching::Exact`] only
/// with every requirement met; under `Closest` and `None`, always.
pub fn skills_allow(queue: &Queue, agent: &super::AgentProfile) -> bool {
    match queue.matching {
        SkillMatching::Exact => skill_distance(queue, agent).is_exact(),
        SkillMatching::Closest | SkillMatching::None => true,
    }
}

/// Whether `agent` may pick conversations of `queue` (Pick mode): whether its skills allow
/// it ([`skills_allow`]). Presence is not looked at (the agent is at the desk, choosing), and
/// capacity is reserved atomically by the store when the agent picks.
pub fn may_pick(queue: &Queue, agent: &super::AgentProfile) -> bool {
    skills_allow(queue, agent)
}

/// Whether `agent` may be offered a conversation of `queue` now: available, with capacity
/// free for the queue's units, not excluded (declined within the re-offer interval), and
/// allowed by the queue's skills.
pub fn may_offer(queue: &Queue, agent: &AgentStatus, exclude: &[AgentId]) -> bool {
    agent.presence.takes_offers()
        && agent.free() >= queue.capacity_units
        && !exclude.contains(agent.id())
        && skills_allow(queue, &agent.profile)
}

/// The Push decision: the agent of `agents` to offer a conversation of `queue`, or `None`
/// when nobody may be offered it ([`may_offer`]).
///
/// `prefer` (agent affinity: the agent who held the conversation before it was revived) gets
/// it whenever they may be offered it. Otherwise the best of the others: under
/// [`SkillMatching::Closest`] the closest skills first ([`skill_distance`]); then the least
/// capacity in use; then the longest since last given work (never first); then the smallest
/// id, so that the decision is deterministic.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use messenger_channel::ids::{AgentId, QueueId};
/// use messenger_channel::routing::{AgentProfile, AgentStatus, Presence, Queue, choose_agent};
///
/// let queue = Queue::push(QueueId::from("support"));
/// let at = |s| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
/// let agents = [
///     AgentStatus::new(AgentProfile::new(AgentId::from("ada")), Presence::Available).used(1),
///     AgentStatus::new(AgentProfile::new(AgentId::from("bob")), Presence::Available).last_assigned(at(20)),
///     AgentStatus::new(AgentProfile::new(AgentId::from("cy")), Presence::Available).last_assigned(at(10)),
///     AgentStatus::new(AgentProfile::new(AgentId::from("di")), Presence::Away),
/// ];
/// // bob and cy are the least loaded; cy has waited longer.
/// assert_eq!(choose_agent(&queue, &agents, &[], None).map(|a| a.id().as_str()), Some("cy"));
/// // Affinity: ada handled it before and may still take it.
/// let ada = AgentId::from("ada");
/// assert_eq!(choose_agent(&queue, &agents, &[], Some(&ada)).map(|a| a.id().as_str()), Some("ada"));
/// // cy declined it recently.
/// let cy = AgentId::from("cy");
/// assert_eq!(choose_agent(&queue, &agents, &[cy], None).map(|a| a.id().as_str()), Some("bob"));
/// ```
pub fn choose_agent<'a>(
    queue: &Queue,
    agents: &'a [AgentStatus],
    exclude: &[AgentId],
    prefer: Option<&AgentId>,
) -> Option<&'a AgentStatus> {
    // One pass: each agent's skills are measured once, for eligibility and order alike
    // (the same rule as `may_offer`, then the order above).
    let closest = queue.matching == SkillMatching::Closest;
    let mut best = None;
    for a in agents {
        if !a.presence.takes_offers() || a.free() < queue.capacity_units || exclude.contains(a.id())
        {
            continue;
        }
        let distance = match queue.matching {
            SkillMatching::None => None,
            SkillMatching::Exact | SkillMatching::Closest => {
                Some(skill_distance(queue, &a.profile))
            }
        };
        if queue.matching == SkillMatching::Exact && !distance.is_some_and(SkillDistance::is_exact)
        {
            continue;
        }
        if prefer == Some(a.id()) {
            return Some(a);
        }
        let key = (
            distance.filter(|_| closest),
            a.used,
            // Never given work sorts first (`None` < `Some`); then the earliest.
            a.last_assigned,
            a.id(),
        );
        if best.as_ref().is_none_or(|(k, _)| key < *k) {
            best = Some((key, a));
        }
    }
    best.map(|(_, a)| a)
}

/// Why an agent may not pick a conversation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PickRefusal {
    /// The conversation's queue is a Push queue: it is offered, not picked.
    #[error("queue {queue} offers its conversations (Push); they cannot be picked")]
    NotAPickQueue {
        /// The queue.
        queue: crate::ids::QueueId,
    },
    /// The agent has not the skills the queue requires (exact matching).
    #[error("agent {agent} has not the skills queue {queue} requires")]
    SkillsMissing {
        /// The agent.
        agent: AgentId,
        /// The queue.
        queue: crate::ids::QueueId,
    },
    /// Another agent picked it first (or holds it).
    #[error("another agent took this conversation first")]
    Taken,
    /// The agent's capacity is in use.
    #[error("agent {agent} has no capacity free for this conversation")]
    AtCapacity {
        /// The agent.
        agent: AgentId,
    },
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::ids::{QueueId, SkillId};
    use crate::routing::{AgentProfile, Presence};

    #[allow(clippy::unnecessary_wraps)] // as `last_assigned` takes it
    fn at(s: u64) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s))
    }

    fn agent(id: &str) -> AgentStatus {
        AgentStatus::new(AgentProfile::new(AgentId::from(id)), Presence::Available)
    }

    fn skilled(id: &str, skills: &[(&str, u8)]) -> AgentStatus {
        let mut p = AgentProfile::new(AgentId::from(id));
        for (s, l) in skills {
            p = p.skill(SkillId::from(*s), *l);
        }
        AgentStatus::new(p, Presence::Available)
    }

    fn chosen(
        queue: &Queue,
        agents: &[AgentStatus],
        exclude: &[&str],
        prefer: Option<&str>,
    ) -> Option<String> {
        let exclude: Vec<AgentId> = exclude.iter().map(|a| AgentId::from(*a)).collect();
        let prefer = prefer.map(AgentId::from);
        choose_agent(queue, agents, &exclude, prefer.as_ref()).map(|a| a.id().as_str().to_owned())
    }

    fn push() -> Queue {
        Queue::push(QueueId::from("q"))
    }

    fn billing(matching: SkillMatching) -> Queue {
        push()
            .skill(SkillId::from("billing"), 3)
            .skill(SkillId::from("fr"), 2)
            .matching(matching)
    }

    #[test]
    fn only_available_agents_are_offered_work() {
        for p in [
            Presence::Busy,
            Presence::DoNotDisturb,
            Presence::Away,
            Presence::Offline,
        ] {
            let mut a = agent("a");
            a.presence = p;
            assert_eq!(chosen(&push(), &[a], &[], None), None, "{p:?}");
        }
        assert_eq!(
            chosen(&push(), &[agent("a")], &[], None).as_deref(),
            Some("a")
        );
        assert_eq!(chosen(&push(), &[], &[], None), None);
    }

    #[test]
    fn free_capacity_must_cover_the_queues_units() {
        let a = || {
            AgentStatus::new(
                AgentProfile::new(AgentId::from("a")).capacity(3),
                Presence::Available,
            )
        };
        assert_eq!(
            chosen(&push(), &[a().used(2)], &[], None).as_deref(),
            Some("a")
        );
        assert_eq!(chosen(&push(), &[a().used(3)], &[], None), None);
        let heavy = push().capacity_units(2);
        assert_eq!(
            chosen(&heavy, &[a().used(1)], &[], None).as_deref(),
            Some("a")
        );
        assert_eq!(chosen(&heavy, &[a().used(2)], &[], None), None);
    }

    #[test]
    fn excluded_agents_are_left_out_even_when_preferred() {
        let agents = [agent("a"), agent("b")];
        assert_eq!(chosen(&push(), &agents, &["a"], None).as_deref(), Some("b"));
        assert_eq!(
            chosen(&push(), &agents, &["a"], Some("a")).as_deref(),
            Some("b")
        );
        assert_eq!(chosen(&push(), &agents, &["a", "b"], None), None);
    }

    #[test]
    fn affinity_prefers_the_previous_agent_while_they_qualify() {
        let agents = [agent("a"), agent("b").used(5)];
        assert_eq!(
            chosen(&push(), &agents, &[], Some("b")).as_deref(),
            Some("b")
        );
        // Not eligible (busy), or unknown: the usual choice.
        let mut busy = agent("b");
        busy.presence = Presence::Busy;
        assert_eq!(
            chosen(&push(), &[agent("a"), busy], &[], Some("b")).as_deref(),
            Some("a")
        );
        assert_eq!(
            chosen(&push(), &agents, &[], Some("zed")).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn ties_break_on_load_then_idle_time_then_id() {
        // Least loaded wins over idle time and id.
        let agents = [
            agent("a").used(2).last_assigned(at(1)),
            agent("b").used(1).last_assigned(at(9)),
        ];
        assert_eq!(chosen(&push(), &agents, &[], None).as_deref(), Some("b"));
        // Equal load: the longest idle, never assigned first.
        let agents = [
            agent("a").last_assigned(at(5)),
            agent("b").last_assigned(at(3)),
        ];
        assert_eq!(chosen(&push(), &agents, &[], None).as_deref(), Some("b"));
        let agents = [agent("a").last_assigned(at(5)), agent("b")];
        assert_eq!(chosen(&push(), &agents, &[], None).as_deref(), Some("b"));
        // All equal: the smallest id, whatever the order given.
        assert_eq!(
            chosen(&push(), &[agent("b"), agent("a"), agent("c")], &[], None).as_deref(),
            Some("a")
        );
        assert_eq!(
            chosen(&push(), &[agent("c"), agent("b")], &[], None).as_deref(),
            Some("b")
        );
    }

    #[test]
    fn exact_matching_needs_every_skill_at_its_level() {
        let q = billing(SkillMatching::Exact);
        let agents = [
            skilled("a", &[("billing", 2), ("fr", 5)]),
            skilled("b", &[("billing", 3)]),
            skilled("c", &[("billing", 3), ("fr", 2)]),
            skilled("d", &[("billing", 9), ("fr", 9), ("de", 1)]).used(1),
        ];
        assert_eq!(chosen(&q, &agents, &[], None).as_deref(), Some("c"));
        assert_eq!(chosen(&q, &agents, &["c"], None).as_deref(), Some("d"));
        assert_eq!(chosen(&q, &agents[..2], &[], None), None);
        // Affinity does not override the skills an exact queue requires.
        assert_eq!(chosen(&q, &agents, &[], Some("a")).as_deref(), Some("c"));
        assert!(may_pick(&q, &agents[2].profile));
        assert!(!may_pick(&q, &agents[1].profile));
    }

    #[test]
    fn closest_matching_ranks_by_missing_skills_then_shortfall_before_load() {
        let q = billing(SkillMatching::Closest);
        let agents = [
            skilled("a", &[]),
            skilled("b", &[("billing", 1)]),
            skilled("c", &[("billing", 1), ("fr", 1)]).used(3),
            skilled("d", &[("billing", 2), ("fr", 2)]).used(4),
        ];
        // d misses nothing and is one level short; c is three short; b misses fr.
        assert_eq!(chosen(&q, &agents, &[], None).as_deref(), Some("d"));
        assert_eq!(chosen(&q, &agents, &["d"], None).as_deref(), Some("c"));
        assert_eq!(chosen(&q, &agents, &["d", "c"], None).as_deref(), Some("b"));
        // Nobody with a skill still gets the work.
        assert_eq!(chosen(&q, &agents[..1], &[], None).as_deref(), Some("a"));
        assert!(may_pick(&q, &agents[0].profile));
    }

    #[test]
    fn no_matching_ignores_skills() {
        let q = billing(SkillMatching::None);
        let agents = [
            skilled("a", &[("billing", 9), ("fr", 9)]).used(1),
            skilled("b", &[]),
        ];
        assert_eq!(chosen(&q, &agents, &[], None).as_deref(), Some("b"));
        assert!(may_pick(&q, &agents[1].profile));
    }

    #[test]
    fn skill_distance_counts_missing_skills_and_levels_short() {
        let q = billing(SkillMatching::Exact);
        let d = |skills: &[(&str, u8)]| skill_distance(&q, &skilled("x", skills).profile);
        assert_eq!(
            d(&[]),
            SkillDistance {
                missing: 2,
                shortfall: 0
            }
        );
        assert_eq!(
            d(&[("billing", 1)]),
            SkillDistance {
                missing: 1,
                shortfall: 2
            }
        );
        assert_eq!(
            d(&[("billing", 5), ("fr", 1)]),
            SkillDistance {
                missing: 0,
                shortfall: 1
            }
        );
        assert!(d(&[("billing", 3), ("fr", 2)]).is_exact());
        assert!(!d(&[("billing", 3)]).is_exact());
        assert!(skill_distance(&push(), &skilled("x", &[]).profile).is_exact());
    }
}
