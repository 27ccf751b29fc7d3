//! Automated messages per queue (Omnichannel's triggers), and which of them a step of a
//! conversation calls for: pure decisions, which the engine sends (never `HUMAN_AGENT`,
//! through the messaging window and the outbox) and records.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::queue::Queue;
use crate::conversation::{AutomatedTrigger, CloseReason, Conversation, Input, State};
use crate::locale::Locale;

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
    /// The texts for customers of a locale or a language ([`AutomatedMessages::locale`]);
    /// the fields above are the texts for everyone else. A table's own `locales` are not
    /// looked at.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub locales: BTreeMap<Locale, AutomatedMessages>,
}

impl AutomatedMessages {
    /// Sets the text for `trigger`.
    #[must_use]
    pub fn set(mut self, trigger: AutomatedTrigger, text: impl Into<String>) -> Self {
        *self.slot(trigger) = Some(text.into());
        self
    }

    /// Sets the texts for customers of `locale` (`fr_CA`) or of a language (`fr`): a
    /// customer whose locale is known ([`Conversation::customer_locale`]) gets, for each
    /// trigger, their locale's text, else their language's, else the default one (these
    /// fields). A trigger the locale's table leaves unset falls back the same way; to send
    /// nothing in a locale, leave the trigger unset everywhere.
    ///
    /// ```
    /// use messenger_channel::conversation::AutomatedTrigger::{Greeting, Survey};
    /// use messenger_channel::locale::Locale;
    /// use messenger_channel::routing::AutomatedMessages;
    ///
    /// let fr = Locale::new("fr").unwrap();
    /// let messages = AutomatedMessages::default()
    ///     .set(Greeting, "Hello!")
    ///     .set(Survey, "How did we do? https://example.com/survey")
    ///     .locale(fr, AutomatedMessages::default().set(Greeting, "Bonjour !"));
    /// let fr_ca = Locale::new("fr_CA").unwrap();
    /// assert_eq!(messages.get_in(Greeting, Some(&fr_ca)), Some("Bonjour !"));
    /// assert_eq!(messages.get_in(Greeting, None), Some("Hello!"));
    /// // No French survey: the default one.
    /// assert_eq!(messages.get_in(Survey, Some(&fr_ca)), messages.get(Survey));
    /// ```
    #[must_use]
    pub fn locale(mut self, locale: Locale, mut texts: AutomatedMessages) -> Self {
        texts.locales.clear();
        self.locales.insert(locale, texts);
        self
    }

    /// The text for `trigger` for a customer of `locale` (see [`AutomatedMessages::locale`]),
    /// with its placeholders.
    pub fn get_in(&self, trigger: AutomatedTrigger, locale: Option<&Locale>) -> Option<&str> {
        let Some(locale) = locale else {
            return self.get(trigger);
        };
        let exact = self.locales.get(locale);
        let language = self
            .locales
            .iter()
            .find(|(l, _)| *l != locale && locale.is_within(l))
            .map(|(_, texts)| texts);
        exact
            .into_iter()
            .chain(language)
            .find_map(|texts| texts.get(trigger))
            .or_else(|| self.get(trigger))
    }

    /// The default text for `trigger` (for a customer of no particular locale), with its
    /// placeholders.
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

    /// The default text to send for `trigger`, its placeholders filled ([`AGENT_NAME`] with
    /// `agent`, [`QUEUE_POSITION`] with `position`); `None` when the queue has none.
    pub fn render(
        &self,
        trigger: AutomatedTrigger,
        agent: Option<&str>,
        position: Option<usize>,
    ) -> Option<String> {
        self.render_in(None, trigger, agent, position)
    }

    /// As [`AutomatedMessages::render`], in the text for a customer of `locale`
    /// ([`AutomatedMessages::get_in`]).
    pub fn render_in(
        &self,
        locale: Option<&Locale>,
        trigger: AutomatedTrigger,
        agent: Option<&str>,
        position: Option<usize>,
    ) -> Option<String> {
        let mut text = self.get_in(trigger, locale)?.to_owned();
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
    let locale = started.customer_locale();
    if queue.is_open(now) {
        let greeting = queue
            .messages
            .render_in(locale, AutomatedTrigger::Greeting, None, None);
        (greeting.map(|t| (AutomatedTrigger::Greeting, t)), false)
    } else {
        let text =
            queue
                .messages
                .render_in(locale, AutomatedTrigger::OutsideOperatingHours, None, None);
        (
            text.map(|t| (AutomatedTrigger::OutsideOperatingHours, t)),
            queue.outside_hours == OutsideHours::Close,
        )
    }
}

/// The automated messages a transition calls for, in order: `before` is the state it left,
/// `input` what moved it, `after` the conversation now; `from` the queue it was in, `to` the
/// queue it is in (they differ after a transfer to a queue). The transfer message is the
/// queue's it leaves; the others are the queue's it is in. `agent_name` names an agent to
/// the customer (the `{AgentName}` placeholder).
///
/// | step | trigger |
/// |---|---|
/// | transferred (to an agent or a queue) | [`AutomatedTrigger::Transferred`] |
/// | an agent takes it: accepts, picks, is assigned it | [`AutomatedTrigger::AgentJoined`] |
/// | the agent presses End | [`AutomatedTrigger::AgentEnded`] |
/// | it closes, unless it started outside operating hours | [`AutomatedTrigger::Survey`] |
///
/// None while another app holds the thread ([`Conversation::is_paused`]): nothing is sent
/// over a thread this app does not control.
pub fn after_transition(
    from: &Queue,
    to: &Queue,
    before: &State,
    input: &Input,
    after: &Conversation,
    agent_name: &dyn Fn(&crate::ids::AgentId) -> String,
) -> Vec<(AutomatedTrigger, String)> {
    let mut out = Vec::new();
    if after.is_paused() {
        // Another app (a bot, the Page inbox) holds the thread: nothing is sent over it.
        return out;
    }
    let mut push = |queue: &Queue, trigger, agent: Option<&str>| {
        if let Some(text) = queue
            .messages
            .render_in(after.customer_locale(), trigger, agent, None)
        {
            out.push((trigger, text));
        }
    };
    match (input, after.state()) {
        (Input::Transfer { .. }, _) => push(from, AutomatedTrigger::Transferred, None),
        (Input::Accept(_) | Input::Pick(_) | Input::Assign { .. }, State::Active { agent })
            if !matches!(before, State::Active { .. }) =>
        {
            push(to, AutomatedTrigger::AgentJoined, Some(&agent_name(agent)));
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::conversation::{ConversationConfig, Inbound, LineBody, TransferTarget};
    use crate::ids::{AgentId, ConversationId, PageId, QueueId, UserId};
    use crate::routing::{OperatingHours, Time, Weekday};

    fn t0() -> SystemTime {
        // Monday 10 June 2024, 06:13:20 UTC.
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_718_000_000)
    }

    fn all() -> AutomatedMessages {
        [
            (AutomatedTrigger::Greeting, "hello"),
            (AutomatedTrigger::AgentJoined, "{AgentName} joined"),
            (AutomatedTrigger::AgentEnded, "ended"),
            (AutomatedTrigger::Transferred, "transferred"),
            (AutomatedTrigger::NoAgentAvailable, "number {QueuePosition}"),
            (AutomatedTrigger::OutsideOperatingHours, "closed"),
            (AutomatedTrigger::Survey, "survey"),
        ]
        .into_iter()
        .fold(AutomatedMessages::default(), |m, (t, text)| m.set(t, text))
    }

    fn queue() -> Queue {
        Queue::push(QueueId::from("q")).messages(all())
    }

    fn start(standby: bool) -> Conversation {
        Conversation::start(
            ConversationId::from("c"),
            PageId::from("p"),
            UserId::from("u"),
            Inbound::new(None, vec![LineBody::Text("hi".into())]).on_standby(standby),
            t0(),
            &ConversationConfig::default(),
        )
        .0
    }

    fn step(c: &Conversation, input: Input) -> (State, Conversation) {
        let before = c.state().clone();
        let mut next = c.clone();
        next.apply(input, t0(), &ConversationConfig::default())
            .unwrap();
        (before, next)
    }

    fn triggers(from: &Queue, before: &State, input: &Input, after: &Conversation) -> Vec<String> {
        after_transition(from, &queue(), before, input, after, &|a| {
            a.as_str().to_owned()
        })
        .into_iter()
        .map(|(_, text)| text)
        .collect()
    }

    #[test]
    fn texts_are_set_got_and_filled() {
        let m = all();
        for (t, text) in [
            (AutomatedTrigger::Greeting, "hello"),
            (AutomatedTrigger::AgentJoined, "{AgentName} joined"),
            (AutomatedTrigger::AgentEnded, "ended"),
            (AutomatedTrigger::Transferred, "transferred"),
            (AutomatedTrigger::NoAgentAvailable, "number {QueuePosition}"),
            (AutomatedTrigger::OutsideOperatingHours, "closed"),
            (AutomatedTrigger::Survey, "survey"),
        ] {
            assert_eq!(m.get(t), Some(text));
            assert_eq!(AutomatedMessages::default().get(t), None);
            assert_eq!(
                AutomatedMessages::default().render(t, Some("a"), Some(1)),
                None
            );
        }
        assert_eq!(
            m.render(AutomatedTrigger::AgentJoined, Some("Ada"), None)
                .unwrap(),
            "Ada joined"
        );
        assert_eq!(
            m.render(AutomatedTrigger::AgentJoined, None, None).unwrap(),
            "{AgentName} joined"
        );
        assert_eq!(
            m.render(AutomatedTrigger::NoAgentAvailable, None, Some(3))
                .unwrap(),
            "number 3"
        );
        assert_eq!(
            m.render(AutomatedTrigger::NoAgentAvailable, Some("x"), None)
                .unwrap(),
            "number {QueuePosition}"
        );
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(
            serde_json::from_value::<AutomatedMessages>(json).unwrap(),
            m
        );
        assert_eq!(OutsideHours::default(), OutsideHours::Wait);
    }

    #[test]
    fn a_start_greets_or_says_it_is_closed() {
        let c = start(false);
        assert_eq!(
            on_start(&queue(), &c, t0()),
            (
                Some((AutomatedTrigger::Greeting, "hello".to_owned())),
                false
            )
        );
        // Nothing over a thread another app holds; nothing when not configured.
        assert_eq!(on_start(&queue(), &start(true), t0()), (None, false));
        assert_eq!(
            on_start(&Queue::push(QueueId::from("q")), &c, t0()),
            (None, false)
        );
        // Closed on Mondays at 06:13 UTC (08:13 in Paris): wait, or close.
        let hours = OperatingHours::new("Europe/Paris").unwrap().shift(
            Weekday::Monday,
            Time::constant(9, 0, 0, 0),
            Time::constant(17, 0, 0, 0),
        );
        let waits = queue().hours(hours.clone(), OutsideHours::Wait);
        let message = Some((AutomatedTrigger::OutsideOperatingHours, "closed".to_owned()));
        assert_eq!(on_start(&waits, &c, t0()), (message.clone(), false));
        let closes = queue().hours(hours.clone(), OutsideHours::Close);
        assert_eq!(on_start(&closes, &c, t0()), (message, true));
        // A closing queue with no message closes all the same.
        let silent = Queue::push(QueueId::from("q")).hours(hours, OutsideHours::Close);
        assert_eq!(on_start(&silent, &c, t0()), (None, true));
        // An hour later it is open: the greeting.
        let open_at = t0() + Duration::from_secs(3600);
        assert!(!on_start(&closes, &c, open_at).1);
        assert!(closes.is_open(open_at) && !closes.is_open(t0()));
        assert!(queue().is_open(t0()));
    }

    #[test]
    fn each_step_calls_for_its_trigger() {
        let q = queue();
        let (ada, bob) = (AgentId::from("ada"), AgentId::from("bob"));
        let open = start(false);
        // An offer: nothing. Accepted: joined, by name.
        let (before, offered) = step(&open, Input::OfferTo(ada.clone()));
        assert!(triggers(&q, &before, &Input::OfferTo(ada.clone()), &offered).is_empty());
        let accept = Input::Accept(ada.clone());
        let (before, active) = step(&offered, accept.clone());
        assert_eq!(triggers(&q, &before, &accept, &active), ["ada joined"]);
        // Picked, assigned: joined.
        let pick = Input::Pick(bob.clone());
        let (before, picked) = step(&open, pick.clone());
        assert_eq!(triggers(&q, &before, &pick, &picked), ["bob joined"]);
        let assign = Input::Assign {
            supervisor: bob.clone(),
            agent: ada.clone(),
        };
        let (before, assigned) = step(&open, assign.clone());
        assert_eq!(triggers(&q, &before, &assign, &assigned), ["ada joined"]);
        // Revived (the same agent, back): nothing.
        let (_, waiting) = step(&active, Input::CloseSession(ada.clone()));
        let revive = Input::Revive(ada.clone());
        let (before, revived) = step(&waiting, revive.clone());
        assert!(triggers(&q, &before, &revive, &revived).is_empty());
        // Accept when already Active cannot happen; joined needs a state that was not Active.
        assert!(triggers(&q, active.state(), &accept, &active).is_empty());
        // Transferred: the queue it leaves says it.
        let leaving = Queue::push(QueueId::from("from")).messages(
            AutomatedMessages::default().set(AutomatedTrigger::Transferred, "bye from q1"),
        );
        let to_bob = Input::Transfer {
            agent: ada.clone(),
            to: TransferTarget::Agent(bob.clone()),
            note: None,
        };
        let (before, moved) = step(&active, to_bob.clone());
        assert_eq!(
            triggers(&leaving, &before, &to_bob, &moved),
            ["bye from q1"]
        );
        assert_eq!(triggers(&q, &before, &to_bob, &moved), ["transferred"]);
        // Ended; closed: the survey.
        let end = Input::End(ada.clone());
        let (before, wrap_up) = step(&active, end.clone());
        assert_eq!(triggers(&q, &before, &end, &wrap_up), ["ended"]);
        let close = Input::CloseSession(ada.clone());
        let (before, closed) = step(&wrap_up, close.clone());
        assert_eq!(triggers(&q, &before, &close, &closed), ["survey"]);
        let force = Input::ForceClose {
            supervisor: bob.clone(),
        };
        let (before, forced) = step(&open, force.clone());
        assert_eq!(triggers(&q, &before, &force, &forced), ["survey"]);
        // Not after an outside-hours close, nor for a conversation closed before.
        let (before, outside) = step(&open, Input::CloseOutsideHours);
        assert!(triggers(&q, &before, &Input::CloseOutsideHours, &outside).is_empty());
        assert!(triggers(&q, closed.state(), &Input::Tick, &closed).is_empty());
        // Nothing configured: nothing.
        let bare = Queue::push(QueueId::from("q"));
        assert!(
            after_transition(&bare, &bare, &before, &force, &forced, &|a| a
                .as_str()
                .to_owned())
            .is_empty()
        );
    }

    fn loc(s: &str) -> Locale {
        Locale::new(s).unwrap()
    }

    #[test]
    fn a_locale_gets_its_text_then_its_languages_then_the_default() {
        use AutomatedTrigger::{AgentEnded, Greeting, Survey};
        let m = AutomatedMessages::default()
            .set(Greeting, "hello")
            .set(Survey, "survey")
            .locale(
                loc("fr"),
                AutomatedMessages::default()
                    .set(Greeting, "bonjour")
                    .set(Survey, "sondage"),
            )
            .locale(
                loc("fr_CA"),
                AutomatedMessages::default().set(Greeting, "allo"),
            )
            .locale(
                loc("de_AT"),
                AutomatedMessages::default().set(Greeting, "servus"),
            );
        let get = |t, l: Option<&str>| m.get_in(t, l.map(loc).as_ref()).map(str::to_owned);
        // The locale's own text, before its language's.
        assert_eq!(get(Greeting, Some("fr_CA")).as_deref(), Some("allo"));
        assert_eq!(get(Greeting, Some("fr-ca")).as_deref(), Some("allo"));
        // Its language's, for a trigger the locale leaves unset or a locale without a table.
        assert_eq!(get(Survey, Some("fr_CA")).as_deref(), Some("sondage"));
        assert_eq!(get(Greeting, Some("fr_BE")).as_deref(), Some("bonjour"));
        assert_eq!(get(Greeting, Some("fr")).as_deref(), Some("bonjour"));
        // A region's table does not speak for its language, nor for another region.
        assert_eq!(get(Greeting, Some("de")).as_deref(), Some("hello"));
        assert_eq!(get(Greeting, Some("de_DE")).as_deref(), Some("hello"));
        assert_eq!(get(Greeting, Some("de_AT")).as_deref(), Some("servus"));
        // No locale, or one without a table: the default; unset everywhere: nothing.
        assert_eq!(get(Greeting, None).as_deref(), Some("hello"));
        assert_eq!(get(Greeting, Some("en_US")).as_deref(), Some("hello"));
        assert_eq!(get(AgentEnded, Some("fr_CA")), None);
        assert_eq!(
            m.render_in(Some(&loc("fr_CA")), Greeting, None, None)
                .as_deref(),
            Some("allo")
        );
        assert_eq!(m.render(Greeting, None, None).as_deref(), Some("hello"));
    }

    #[test]
    fn a_locales_own_locales_are_dropped_and_tables_round_trip() {
        let nested = AutomatedMessages::default()
            .set(AutomatedTrigger::Greeting, "bonjour")
            .locale(
                loc("fr_CA"),
                AutomatedMessages::default().set(AutomatedTrigger::Greeting, "allo"),
            );
        let m = AutomatedMessages::default().locale(loc("fr"), nested);
        assert!(m.locales[&loc("fr")].locales.is_empty());
        assert_eq!(
            m.get_in(AutomatedTrigger::Greeting, Some(&loc("fr_CA"))),
            Some("bonjour")
        );
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["locales"]["fr"]["greeting"], "bonjour");
        let back: AutomatedMessages = serde_json::from_value(json).unwrap();
        assert_eq!(back, m);
        // Written by hand: a key that is no locale is refused with the config.
        let bad = serde_json::json!({"locales": {"fr FR": {"greeting": "x"}}});
        assert!(serde_json::from_value::<AutomatedMessages>(bad).is_err());
        // No locales: none written.
        let plain = serde_json::to_value(AutomatedMessages::default()).unwrap();
        assert!(plain.get("locales").is_none());
    }

    #[test]
    fn nothing_is_said_over_a_thread_another_app_holds() {
        let q = queue();
        let force = Input::ForceClose {
            supervisor: AgentId::from("sue"),
        };
        let name = |a: &AgentId| a.as_str().to_owned();
        // Held by another app from the start, then closed by a supervisor: no survey.
        let paused = start(true);
        assert!(paused.is_paused());
        let (before, closed) = step(&paused, force.clone());
        assert!(after_transition(&q, &q, &before, &force, &closed, &name).is_empty());
        // The same close over a thread this app holds: the survey.
        let (before, closed) = step(&start(false), force.clone());
        assert_eq!(
            after_transition(&q, &q, &before, &force, &closed, &name).len(),
            1
        );
    }

    #[test]
    fn steps_speak_the_conversations_locale() {
        let fr = AutomatedMessages::default()
            .set(AutomatedTrigger::Greeting, "bonjour")
            .set(AutomatedTrigger::OutsideOperatingHours, "fermé")
            .set(AutomatedTrigger::AgentJoined, "{AgentName} est là");
        let q = Queue::push(QueueId::from("q")).messages(all().locale(loc("fr"), fr));
        let c = start(false).with_customer_locale(Some(loc("fr_FR")));
        assert_eq!(
            on_start(&q, &c, t0()).0,
            Some((AutomatedTrigger::Greeting, "bonjour".to_owned()))
        );
        let hours = OperatingHours::new("Europe/Paris").unwrap().shift(
            Weekday::Monday,
            Time::constant(9, 0, 0, 0),
            Time::constant(17, 0, 0, 0),
        );
        let closed = q.clone().hours(hours, OutsideHours::Wait);
        assert_eq!(
            on_start(&closed, &c, t0()).0,
            Some((AutomatedTrigger::OutsideOperatingHours, "fermé".to_owned()))
        );
        let ada = AgentId::from("ada");
        let (_, offered) = step(&c, Input::OfferTo(ada.clone()));
        let accept = Input::Accept(ada);
        let (before, active) = step(&offered, accept.clone());
        let name = |a: &AgentId| a.as_str().to_owned();
        let said: Vec<_> = after_transition(&q, &q, &before, &accept, &active, &name)
            .into_iter()
            .map(|(_, text)| text)
            .collect();
        assert_eq!(said, ["ada est là"]);
        // The survey has no French text: the default.
        let close = Input::ForceClose {
            supervisor: AgentId::from("sue"),
        };
        let (before, closed) = step(&active, close.clone());
        let said: Vec<_> = after_transition(&q, &q, &before, &close, &closed, &name)
            .into_iter()
            .map(|(_, text)| text)
            .collect();
        assert_eq!(said, ["survey"]);
    }
}
