//! Work distribution, as pure decisions: queues, routing rules, agents' skills and
//! presence, and who gets a conversation.
//!
//! Nothing here does I/O or reads a clock. The engine classifies a new conversation into a
//! queue ([`Routing::classify`], from [`StartFacts`]); for a Push queue it asks the
//! [`crate::agents::AgentRouter`] (in memory, or in the shared store so that several
//! instances agree) to reserve the agent [`choose_agent`] decides on; for a Pick queue it
//! makes no offer, and agents who [`may_pick`] the queue pick its conversations.
//!
//! ```
//! use messenger_channel::ids::{AgentId, PageId, QueueId, SkillId, UserId};
//! use messenger_channel::routing::{
//!     AgentProfile, AgentStatus, Condition, Presence, Queue, Routing, RoutingRules, StartFacts,
//!     choose_agent,
//! };
//!
//! // A French queue needing the `fr` skill, chosen for French speakers.
//! let routing = Routing::new(Queue::push(QueueId::from("general")))
//!     .add_queue(Queue::push(QueueId::from("french")).skill(SkillId::from("fr"), 1))
//!     .rules(
//!         RoutingRules::new(QueueId::from("general"))
//!             .when(Condition::Locale("fr".into()), QueueId::from("french")),
//!     );
//! let (page, customer) = (PageId::from("104987654321098"), UserId::from("2401234"));
//! let queue = routing.classify(&StartFacts::new(&page, &customer).locale(Some("fr_CA")));
//! assert_eq!(queue.id, "french");
//!
//! // Of the agents available, only Zoé speaks French.
//! let agents = [
//!     AgentStatus::new(AgentProfile::new(AgentId::from("ada")), Presence::Available),
//!     AgentStatus::new(
//!         AgentProfile::new(AgentId::from("zoé")).skill(SkillId::from("fr"), 4),
//!         Presence::Available,
//!     )
//!     .used(3),
//! ];
//! let chosen = choose_agent(queue, &agents, &[], None).unwrap();
//! assert_eq!(chosen.id().as_str(), "zoé");
//! ```
//!
//! | concept | file |
//! |---|---|
//! | [`Queue`], [`DistributionMode`], [`SkillMatching`] | `queue.rs` |
//! | [`RoutingRules`], [`Condition`], [`Rule`], [`Classify`], [`StartFacts`] | `rules.rs` |
//! | [`Routing`]: queues and rules together | `config.rs` |
//! | [`Presence`], [`AgentProfile`], [`AgentStatus`] | `agent.rs` |
//! | [`choose_agent`] (Push), [`may_pick`] (Pick), [`skill_distance`] | `decide.rs` |
//! | [`OperatingHours`]: is a queue open at `t` | `hours.rs` |
//! | [`AutomatedMessages`], [`on_start`], [`after_transition`]: which automated message a step calls for | `automated.rs` |

mod agent;
mod automated;
mod config;
mod decide;
mod hours;
mod queue;
mod rules;

pub use agent::{AgentProfile, AgentStatus, DEFAULT_AGENT_CAPACITY, Presence};
pub use automated::{
    AGENT_NAME, AutomatedMessages, OutsideHours, QUEUE_POSITION, after_transition, on_start,
};
pub use config::Routing;
pub use decide::{
    PickRefusal, SkillDistance, choose_agent, may_offer, may_pick, skill_distance, skills_allow,
};
pub use hours::{HoursError, OperatingHours, Shift};
/// The calendar types [`OperatingHours`] takes (from `jiff`).
pub use jiff::civil::{Date, Time, Weekday};
pub use queue::{
    DEFAULT_CAPACITY_UNITS, DEFAULT_QUEUE, DistributionMode, Queue, SkillMatching, SkillRequirement,
};
pub use rules::{Classify, Condition, RoutingRules, Rule, StartFacts, ThreadReferral};
