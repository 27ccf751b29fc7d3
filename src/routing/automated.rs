//! Automated messages per queue (Omnichannel's triggers), and which of them a step of a
//! conversation calls for: pure decisions, which the engine sends (never `HUMAN_AGENT`,
//! through the messaging window and the outbox) and records.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::queue::Queue;
use crate::conversation::{AutomatedTrigger, CloseReason, Conversation, Input, State};

/// The placeholder for the agent's name in [`AutomatedTrigger::AgentJoined`]'s text.
pub const AGENT_NAME: &str = "{AgentName}";
/// The placeholder for the customer's place in the queue in
/// [`AutomatedTrigger::NoAgentAvailable`]'s text.
pub const QUEUE_POSITION: &str = "{QueuePosition}";

/// A queue's automated messages, one text per trigger; a trigger with none sends nothing
/// (the default: none at all).
///
/// ```
/// use messenger_channel::conversation::AutomatedTrigger;
/// use messenger_channel::routing::AutomatedMessages;
///
/// let messages = AutomatedMessages::default()
///     .set(AutomatedTrigger::Greeting, "Hello! An agent will be with you shortly.")
///     .set(AutomatedTrigger::AgentJoined, "{AgentName} joined the conversation.");
/// assert_eq!(
///     messages.render(AutomatedTrigger::AgentJoined, Some("Ada"), None).as_deref(),
///     Some("Ada joined the conversation.")
/// );
/// assert_eq!(messages.get(AutomatedTrigger::Survey), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AutomatedMessages {
    /// Sent when a conversation starts (inside operating hours).
    pub greeting: Option<String>,
    /// Sent when an agent takes the conversation; [`AGENT_NAME`] is replaced by their name.
    pub agent_joined: Option<String>,
    /// Sent when the agent ends the conversation.
    pub agent_ended: Option<String>,
    /// Sent when the conversation is transferred (the queue it leaves says it).
    pub transferred: Option<String>,
    /// Sent once when no agent is available for a new conversation; [`QUEUE_POSITION`] is
    /// replaced by its place in the queue (1: next).
    pub no_agent_available: Option<String>,
    /// Sent, instead of the greeting, when a conversation starts outside the queue's
    /// operating hours.
    pub outside_hours: Option<String>,
    /// Sent when the conversation closes: the post-conversation survey link (not for one
    /// closed because it started outside operating hours).
    pub survey: Option<String>,
}

impl AutomatedMessages {
    /// Sets the text for `trigger`.
    #[must_use]
    pub fn set(mut self, trigger: AutomatedTrigger, text: impl Into<String>) -> Self {
        *self.slot(trigger) = Some(text.into());
        self
    }

    /// The text for `trigger`, with its placeholders.
    pub fn get(&self, trigger: AutomatedTrigger) -> Option<&str> {
        match trigger {
            AutomatedTrigger::Greeting => self.greeting.as_deref(),
            AutomatedTrigger::AgentJoined => self.agent_joined.as_deref(),
            AutomatedTrigger::AgentEnded => self.agent_ended.as_deref(),
            AutomatedTrigger::Transferred => self.transferred.as_deref(),
            AutomatedTrigger::NoAgentAvailable => self.no_agent_available.as_deref(),
            AutomatedTrigger::OutsideOperatingHours => self.outside_hours.as_deref(),
            AutomatedTrigger::Survey => self.survey.as_deref(),
        }
    }

    fn slot(&mut self, trigger: AutomatedTrigger) -> &mut Option<String> {
        match trigger {
            AutomatedTrigger::Greeting => &mut self.greeting,
            AutomatedTrigger::AgentJoined => &mut self.agent_joined,
            AutomatedTrigger::AgentEnded => &mut self.agent_ended,
            AutomatedTrigger::Transferred => &mut self.transferred,
            AutomatedTrigger::NoAgentAvailable => &mut self.no_agent_available,
            AutomatedTrigger::OutsideOperatingHours => &mut self.outside_hours,
            AutomatedTrigger::Survey => &mut self.survey,
        }
    }

    /// The text to send for `trigger`, its placeholders filled ([`AGENT_NAME`] with `agent`,
    /// [`QUEUE_POSITION`] with `position`); `None` when the queue has none.
    pub fn render(
        &self,
        trigger: AutomatedTrigger,
        agent: Option<&str>,
        position: Option<usize>,
    ) -> Option<String> {
        let mut text = self.get(trigger)?.to_owned();
        if let Some(agent) = agent {
            text = text.replace(AGENT_NAME, agent);
        }
        if let Some(position) = position {
            text = text.replace(QUEUE_POSITION, &position.to_string());
        }
        Some(text)
    }
}

/// What a queue does with a conversation that starts outside its operating hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OutsideHours {
    /// It waits in the queue; offers are made once the queue opens.
    #[default]
    Wait,
    /// It closes at once, after the outside-hours message.
    Close,
}

/// What the start of a conversation in `queue` at `now` calls for: the automated message
/// (the greeting, or outside operating hours the outside-hours message; none while another
/// app holds the thread, over which nothing is sent), and whether the conversation closes
/// ([`OutsideHours::Close`]).
pub fn on_start(
    queue: &Queue,
    started: &Conversation,
    now: SystemTime,
) -> (Option<(AutomatedTrigger, String)>, bool) {
    if started.is_paused() {
        return (None, false);
    }
    if queue.is_open(now) {
        let greeting = queue.messages.render(AutomatedTrigger::Greeting, None, None);
        (greeting.map(|t| (AutomatedTrigger::Greeting, t)), false)
    } else {
        let text = queue
            .messages
            .render(AutomatedTrigger::OutsideOperatingHours, None, None);
        (
            text.map(|t| (AutomatedTrigger::OutsideOperatingHours, t)),
            queue.outside_hours == OutsideHours::Close,
        )
    }
}

/// The automated messages a transition calls for, in order: `before` is the state it left,
/// `input` what moved it, `after` the conversation now; `from` the queue it was in, `to` the
/// queue it is in (they differ after a transfer to a queue). The transfer message is the
/// queue's it leaves; the others are the queue's it is in.
///
/// | step | trigger |
/// |---|---|
/// | transferred (to an agent or a queue) | [`AutomatedTrigger::Transferred`] |
/// | an agent takes it: accepts, picks, is assigned it | [`AutomatedTrigger::AgentJoined`] |
/// | the agent presses End | [`AutomatedTrigger::AgentEnded`] |
/// | it closes, unless it started outside operating hours | [`AutomatedTrigger::Survey`] |
pub fn after_transition(
    from: &Queue,
    to: &Queue,
    before: &State,
    input: &Input,
    after: &Conversation,
) -> Vec<(AutomatedTrigger, String)> {
    let mut out = Vec::new();
    let mut push = |queue: &Queue, trigger, agent: Option<&str>| {
        if let Some(text) = queue.messages.render(trigger, agent, None) {
            out.push((trigger, text));
        }
    };
    match (input, after.state()) {
        (Input::Transfer { .. }, _) => push(from, AutomatedTrigger::Transferred, None),
        (Input::Accept(_) | Input::Pick(_) | Input::Assign { .. }, State::Active { agent })
            if !matches!(before, State::Active { .. }) =>
        {
            push(to, AutomatedTrigger::AgentJoined, Some(agent.as_str()));
        }
        (Input::End(_), State::WrapUp { .. }) => push(to, AutomatedTrigger::AgentEnded, None),
        _ => {}
    }
    if let State::Closed { reason } = after.state() {
        if !matches!(before, State::Closed { .. }) && *reason != CloseReason::OutsideHours {
            push(to, AutomatedTrigger::Survey, None);
        }
    }
    out
}
