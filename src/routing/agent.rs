//! Agents as routing sees them: presence, skills with levels, capacity and what of it is in
//! use.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::ids::{AgentId, SkillId};

/// Omnichannel's default cap on an agent's capacity: 10 units (10 conversations of one unit).
pub const DEFAULT_AGENT_CAPACITY: u32 = 10;

/// An agent's presence (Omnichannel's base presences).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Presence {
    /// Takes new work.
    Available,
    /// Working; takes no new offers.
    Busy,
    /// Busy, do not disturb (Omnichannel's "Busy - DND"): takes no new offers.
    DoNotDisturb,
    /// Away.
    Away,
    /// Signed out.
    Offline,
}

impl Presence {
    /// Whether Push offers new work to an agent with this presence: only when Available.
    pub fn takes_offers(self) -> bool {
        self == Self::Available
    }

    /// Its name in storage: `available`, `busy`, `dnd`, `away`, `offline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Busy => "busy",
            Self::DoNotDisturb => "dnd",
            Self::Away => "away",
            Self::Offline => "offline",
        }
    }

    /// The presence [`Presence::as_str`] names; `None` for another name.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Available,
            Self::Busy,
            Self::DoNotDisturb,
            Self::Away,
            Self::Offline,
        ]
        .into_iter()
        .find(|p| p.as_str() == name)
    }
}

/// What the host says of an agent: skills with levels, and capacity.
///
/// ```
/// use messenger_channel::ids::{AgentId, SkillId};
/// use messenger_channel::routing::AgentProfile;
///
/// let ada = AgentProfile::new(AgentId::from("ada"))
///     .skill(SkillId::from("billing"), 5)
///     .capacity(4);
/// assert_eq!(ada.skills[&SkillId::from("billing")], 5);
/// assert_eq!(ada.capacity, 4);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentProfile {
    /// The agent.
    pub id: AgentId,
    /// Skills and their levels.
    pub skills: BTreeMap<SkillId, u8>,
    /// Capacity, in units ([`crate::routing::Queue::capacity_units`]).
    pub capacity: u32,
}

impl AgentProfile {
    /// An agent with no skills and [`DEFAULT_AGENT_CAPACITY`].
    pub fn new(id: AgentId) -> Self {
        Self {
            id,
            skills: BTreeMap::new(),
            capacity: DEFAULT_AGENT_CAPACITY,
        }
    }

    /// Adds (or re-levels) a skill.
    #[must_use]
    pub fn skill(mut self, skill: SkillId, level: u8) -> Self {
        self.skills.insert(skill, level);
        self
    }

    /// Sets the capacity.
    #[must_use]
    pub fn capacity(mut self, capacity: u32) -> Self {
        self.capacity = capacity;
        self
    }
}

/// An agent at a moment: profile, presence, and capacity in use. Routing decisions
/// ([`crate::routing::choose_agent`]) read these.
///
/// ```
/// use std::time::SystemTime;
/// use messenger_channel::ids::AgentId;
/// use messenger_channel::routing::{AgentProfile, AgentStatus, Presence};
///
/// let status = AgentStatus::new(AgentProfile::new(AgentId::from("ada")).capacity(3), Presence::Available)
///     .used(2)
///     .last_assigned(Some(SystemTime::UNIX_EPOCH));
/// assert_eq!(status.free(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AgentStatus {
    /// Skills and capacity.
    pub profile: AgentProfile,
    /// Presence.
    pub presence: Presence,
    /// Units in use: sessions held and offers or picks outstanding.
    pub used: u32,
    /// Units of sessions held (the agent's load), a part of `used`.
    pub sessions: u32,
    /// When the agent was last given work (an offer, a pick, a session); `None`: never.
    pub last_assigned: Option<SystemTime>,
}

impl AgentStatus {
    /// An agent with nothing in use, never given work.
    pub fn new(profile: AgentProfile, presence: Presence) -> Self {
        Self {
            profile,
            presence,
            used: 0,
            sessions: 0,
            last_assigned: None,
        }
    }

    /// The agent's id.
    pub fn id(&self) -> &AgentId {
        &self.profile.id
    }

    /// Sets the units in use.
    #[must_use]
    pub fn used(mut self, used: u32) -> Self {
        self.used = used;
        self
    }

    /// Sets the units of sessions held.
    #[must_use]
    pub fn sessions(mut self, sessions: u32) -> Self {
        self.sessions = sessions;
        self
    }

    /// Sets when the agent was last given work.
    #[must_use]
    pub fn last_assigned(mut self, at: Option<SystemTime>) -> Self {
        self.last_assigned = at;
        self
    }

    /// Capacity not in use.
    pub fn free(&self) -> u32 {
        self.profile.capacity.saturating_sub(self.used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presences_round_trip_their_names() {
        for p in [
            Presence::Available,
            Presence::Busy,
            Presence::DoNotDisturb,
            Presence::Away,
            Presence::Offline,
        ] {
            assert_eq!(Presence::parse(p.as_str()), Some(p));
            assert_eq!(p.takes_offers(), p == Presence::Available);
        }
        assert_eq!(Presence::parse("sleeping"), None);
    }

    #[test]
    fn status_counts_free_capacity() {
        let s = AgentStatus::new(AgentProfile::new(AgentId::from("a")), Presence::Busy);
        assert_eq!(s.free(), DEFAULT_AGENT_CAPACITY);
        assert_eq!(s.id(), &AgentId::from("a"));
        let s = s.used(12).sessions(3);
        assert_eq!((s.free(), s.sessions), (0, 3));
    }
}
