//! The conversation lifecycle on the Omnichannel model, as a pure state machine.
//!
//! [`transition`] (or [`Conversation::apply`], in place) maps `(conversation, input, now)` to
//! the next conversation and a [`Transition`]: the lines it adds to the transcript and the
//! [`Effect`]s for the host (or the [`crate::engine::Engine`]) to carry out. Nothing here does
//! I/O or reads a clock. A [`Conversation`]'s fields are private: it starts with
//! [`Conversation::start`] and changes only through a transition.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use messenger_channel::conversation::{
//!     Author, Conversation, ConversationConfig, Effect, Inbound, Input, LineBody, Outgoing,
//!     SendRefusal, State,
//! };
//! use messenger_channel::ids::{AgentId, ConversationId, PageId, UserId};
//!
//! let config = ConversationConfig::default();
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let alice = AgentId::from("alice");
//!
//! // The customer's first message opens a conversation and asks for an offer.
//! let (mut c, started) = Conversation::start(
//!     ConversationId::from("c1"),
//!     PageId::from("104987654321098"),
//!     UserId::from("24012345678901234"),
//!     Inbound::new(Some("m_1".into()), vec![LineBody::Text("where is my parcel?".into())]),
//!     now,
//!     &config,
//! );
//! assert_eq!(started.lines[0].author, Author::Customer);
//! assert!(matches!(started.effects[..], [Effect::RequestOffer { .. }]));
//! assert_eq!(c.may_send(&alice), Err(SendRefusal::NoSession { state: c.state().kind() }));
//!
//! // Offered to Alice, who accepts: she holds the session and may write.
//! c.apply(Input::OfferTo(alice.clone()), now, &config)?;
//! assert_eq!(c.next_deadline(&config), Some(now + config.offer_timeout));
//! c.apply(Input::Accept(alice.clone()), now, &config)?;
//! assert_eq!(c.state(), &State::Active { agent: alice.clone() });
//! assert_eq!(c.may_send(&alice), Ok(()));
//!
//! // Her message is recorded and sent.
//! let sent = c.apply(
//!     Input::AgentSend { agent: alice.clone(), message: Outgoing::Text("on its way".into()) },
//!     now,
//!     &config,
//! )?;
//! assert_eq!(sent.lines[0].body, LineBody::Text("on its way".into()));
//! assert!(matches!(&sent.effects[..], [Effect::Send { agent: Some(a), .. }] if *a == alice));
//! # Ok::<(), messenger_channel::conversation::TransitionError>(())
//! ```
//!
//! # States
//!
//! | state | meaning |
//! |---|---|
//! | **Open** | Queued, no agent holds it. At most one outstanding offer to one agent, with a deadline. |
//! | **Active** | An agent accepted and holds the session (capacity consumed). |
//! | **Waiting** | The agent closed the session without ending the conversation; capacity released. |
//! | **Wrap-up** | The agent pressed End; the agent finishes notes, then closes. |
//! | **Closed** | Final. It never reopens: the customer's next message starts a new conversation. |
//!
//! # Transitions
//!
//! The last column lists what the [`Transition`] holds: transcript lines and effects.
//!
//! | from | input | to | lines and effects |
//! |---|---|---|---|
//! | (none) | customer message ([`Conversation::start`]) | Open | transcript line; privacy notice (if configured, sent and recorded); request an offer |
//! | (none) | customer message on `standby` | Open, paused | transcript line; notice; no privacy notice and no offer until the thread is passed back |
//! | Open | customer message | Open | transcript line; request an offer if none is outstanding and the thread is not held by another app |
//! | Open, no offer | offer to agent A | Open, offer to A | notify A with the deadline (default 120 s). Refused if A declined within the re-offer interval |
//! | Open, offer to A | A accepts before the deadline | Active (A) | session started (capacity; the offer's reservation becomes the session); offer ended; notice |
//! | Open, no offer, not paused | A picks it (Pick mode) | Active (A) | session started (capacity); notice |
//! | Open, offer to A | A rejects | Open | offer ended; notice; request an offer excluding A |
//! | Open, offer to A | tick past the deadline | Open | withdraw the offer; offer ended; notice; request an offer excluding A |
//! | Open | tick past auto-close | Closed | withdraw any offer (offer ended); notice |
//! | Active (A) | customer message | Active | transcript line |
//! | Active (A) | A sends ([`Conversation::may_send`]) | Active | A's line; send |
//! | Active (A) | A ends | Wrap-up (A) | notice |
//! | Active (A) | A closes the session | Waiting (A) | session released; notice |
//! | Active | tick past auto-close | Closed | session released; notice |
//! | Waiting (A) | customer message | Open | transcript line; notice; request an offer (to A first when agent affinity is on) |
//! | Waiting (A) | A revives it | Active (A) | session started; notice |
//! | Waiting | tick past inactivity | Closed | notice |
//! | Wrap-up (A) | customer message | Wrap-up | transcript line |
//! | Wrap-up (A) | A closes the session | Closed | session released; notice |
//! | Wrap-up | tick past auto-close (1 d) | Closed | session released; notice |
//! | any but Closed | another app (or the Page inbox) takes the thread | same, paused | notice; agents cannot send while paused |
//! | any but Closed | the thread is passed back | same, resumed | notice; the privacy notice if it was never sent; in Open with no offer, request an offer |
//! | Active (A) | A transfers to agent B, with a note | Open, offer to B | session released; internal line; notify B (the transfer: [`Conversation::transfer`]) with the offer's countdown |
//! | Active (A) | A transfers to queue Q, with a note | Open in Q | session released; internal line; request an offer excluding A |
//! | Open, transfer offered to B | B declines, or the offer lapses | Open | as any offer; the transfer is over (notice); request an offer in its queue |
//! | Active (A) | A invites C to consult | Active | internal line; tell C |
//! | any but Closed | C leaves the consult | same | internal line |
//! | any but Closed | an internal note (the holder, a consultant, a supervisor) | same | internal line |
//! | Active (A) | A's session ends (End, close, transfer, auto-close) | … | the consult ends too (notice) |
//! | Open | a supervisor assigns it to A | Active (A) | session started; any offer withdrawn (offer ended); internal line |
//! | any but Closed | a supervisor force-closes it | Closed | withdraw any offer, release any session; internal line |
//! | Open | it started outside its queue's operating hours, in a queue that closes then | Closed | notice |
//! | any but Closed | an automated message | same | sent (no agent) and recorded |
//! | Closed | anything | — | error: closed conversations never change |
//!
//! Any other pair is a [`TransitionError`] naming the state and the input.
//!
//! **Thread control.** Meta's Conversation Routing lets another app, or a person answering from
//! the Page inbox, take the thread. The conversation then *pauses*: its state is kept, inbound
//! messages are still recorded, but agent sends are refused ([`SendRefusal::ThreadPaused`];
//! [`TransitionError::ThreadPaused`] from the machine), as the platform would refuse them too.
//! No offer is requested while paused. When the thread is passed back, it resumes where it was.
//!
//! **Internal lines.** Transfers, consults, notes and supervisors' actions are written as
//! [`LineBody::Internal`] lines: for agents and supervisors only. No [`Outgoing`] message
//! reads as one, so nothing internal is ever sent to the customer.
//!
//! # Deadlines
//!
//! A conversation's timers are not effects: [`Conversation::next_deadline`] derives the next one
//! from the state, and a host (the engine, through the store's due index) feeds
//! [`Input::Tick`] at or after it. It is the one source of truth for timers: saved in the same
//! commit as the state it comes from, it cannot disagree with it, and nothing has to be set,
//! moved or cancelled when the state changes.
//!
//! | state | next deadline |
//! |---|---|
//! | Open, offer to A | the offer's deadline or auto-close, whichever comes first |
//! | Open, no offer | auto-close: last activity + [`ConversationConfig::auto_close_open_active`] (30 d) |
//! | Active | auto-close: last activity + [`ConversationConfig::auto_close_open_active`] (30 d) |
//! | Waiting | inactivity: last activity + [`ConversationConfig::waiting_inactivity`] (1 d) |
//! | Wrap-up | auto-close: last activity + [`ConversationConfig::auto_close_wrap_up`] (1 d) |
//! | Closed | none |
//!
//! # Decisions hosts share
//!
//! The rules the machine applies are public, so that a host asks instead of copying them:
//! [`Conversation::may_send`] (whether an agent may send now, with a [`SendRefusal`] to show
//! them), [`Conversation::excluded_agents`] (who is not offered the conversation again yet) and
//! [`Conversation::awaits_offer`] (whether it waits in the queue for an offer).
//!
//! ```mermaid
//! stateDiagram-v2
//!     [*] --> Open: customer writes
//!     Open --> Open: offer / reject / offer timeout
//!     Open --> Active: offered agent accepts
//!     Active --> WrapUp: End
//!     Active --> Waiting: close session
//!     Waiting --> Open: customer writes
//!     Waiting --> Active: agent revives
//!     WrapUp --> Closed: close session
//!     Open --> Closed: auto-close 30 d
//!     Active --> Closed: auto-close 30 d
//!     WrapUp --> Closed: auto-close 1 d
//!     Waiting --> Closed: inactivity
//!     Closed --> [*]
//! ```

mod machine;

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

pub use machine::{SendRefusal, TransitionError, transition};

use crate::attachment::Rejection;
use crate::ids::{AgentId, AppId, ConversationId, CustomerRecordId, PageId, QueueId, UserId};
use crate::locale::Locale;
use crate::routing::Presence;
use crate::send::MediaKind;
use crate::time::saturating_add;

/// Default offer countdown: 120 s, as Omnichannel's notification templates.
pub const DEFAULT_OFFER_TIMEOUT: Duration = Duration::from_secs(120);
/// Default interval before a declined (or missed) conversation may go to the same agent again.
pub const DEFAULT_REOFFER_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Omnichannel's auto-close for social channels in Open and Active: 30 days.
pub const DEFAULT_AUTO_CLOSE_OPEN_ACTIVE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Omnichannel's auto-close in Wrap-up: 1 day.
pub const DEFAULT_AUTO_CLOSE_WRAP_UP: Duration = Duration::from_secs(24 * 3600);
/// Default inactivity before a Waiting conversation closes: 1 day (Omnichannel leaves it to the
/// workstream; this crate's choice).
pub const DEFAULT_WAITING_INACTIVITY: Duration = Duration::from_secs(24 * 3600);

/// The lifecycle's settings: [`ConversationConfig::default`], then a setter per setting to
/// change (the type is `#[non_exhaustive]`, so that settings can be added without breaking
/// hosts).
///
/// ```
/// use std::time::Duration;
/// use messenger_channel::conversation::ConversationConfig;
///
/// let config = ConversationConfig::default()
///     .offer_timeout(Duration::from_secs(30))
///     .keep_unsent(false);
/// assert!(!config.keep_unsent);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ConversationConfig {
    /// How long an agent has to accept an offer.
    pub offer_timeout: Duration,
    /// How long before a conversation an agent declined (or let expire) may be offered to them
    /// again.
    pub reoffer_interval: Duration,
    /// Auto-close after this long in Open or Active without activity.
    pub auto_close_open_active: Duration,
    /// Auto-close after this long in Wrap-up.
    pub auto_close_wrap_up: Duration,
    /// Close a Waiting conversation after this long without activity.
    pub waiting_inactivity: Duration,
    /// Offer a revived conversation to its previous agent first ("keep same agent"), when
    /// they may be offered it (Available, with room). Omnichannel's affinity reassigns to them
    /// regardless of capacity and presence; this channel never pushes past capacity.
    pub agent_affinity: bool,
    /// The presence an agent who lets an offer lapse is set to (Omnichannel's option for a
    /// missed notification, which sets them inactive: [`Presence::Away`] is the nearest
    /// here), so that the next conversation is not offered to someone who is not there.
    /// Applied only while the agent is [`Presence::Available`] (an agent who meanwhile chose
    /// another presence, or signed out, keeps it); they set it back by hand. `None` (the
    /// default): presence does not change.
    pub presence_after_missed_offer: Option<Presence>,
    /// The presence an agent who rejects an offer is set to (Omnichannel's option:
    /// [`Presence::DoNotDisturb`]), on the same terms as
    /// [`Self::presence_after_missed_offer`]. `None` (the default): presence does not change.
    pub presence_after_rejected_offer: Option<Presence>,
    /// Text sent to the customer when a conversation starts, and recorded in the transcript
    /// (that the conversation may be monitored, recorded and stored).
    pub privacy_notice: Option<String>,
    /// Whether the text of a message the customer removes (unsends) is kept in the record.
    /// Kept (the default), agents see it marked "removed by the customer"; not kept, its
    /// lines (and its edits') are replaced by the notice that it was removed, in whichever
    /// conversation holds them (the open one, the customer's most recent one, or one of the
    /// customer's 50 most recent: [`crate::store::ConversationStore::history`]), and the
    /// files kept for it are deleted from the media store
    /// ([`crate::store::MediaStore::delete`]), also when their download ends after the
    /// removal.
    ///
    /// What is not forgotten at once: the webhook events themselves, which the inbox keeps
    /// (their bodies included) until they are purged, the dedup window after their receipt
    /// ([`crate::engine::DEFAULT_DEDUP_TTL`], 48 hours); a message in a conversation older
    /// than the customer's 50 most recent; and, in transcripts recorded by
    /// earlier versions of this crate (whose messages carried their id on their first line
    /// only), a message's lines after its first (a file sent with words).
    pub keep_unsent: bool,
}

impl ConversationConfig {
    /// Sets [`Self::offer_timeout`]: How long an agent has to accept an offer.
    #[must_use]
    pub fn offer_timeout(mut self, offer_timeout: Duration) -> Self {
        self.offer_timeout = offer_timeout;
        self
    }

    /// Sets [`Self::reoffer_interval`]: How long before a declined conversation may be offered to the same agent again.
    #[must_use]
    pub fn reoffer_interval(mut self, reoffer_interval: Duration) -> Self {
        self.reoffer_interval = reoffer_interval;
        self
    }

    /// Sets [`Self::auto_close_open_active`]: Auto-close after this long in Open or Active without activity.
    #[must_use]
    pub fn auto_close_open_active(mut self, auto_close_open_active: Duration) -> Self {
        self.auto_close_open_active = auto_close_open_active;
        self
    }

    /// Sets [`Self::auto_close_wrap_up`]: Auto-close after this long in Wrap-up.
    #[must_use]
    pub fn auto_close_wrap_up(mut self, auto_close_wrap_up: Duration) -> Self {
        self.auto_close_wrap_up = auto_close_wrap_up;
        self
    }

    /// Sets [`Self::waiting_inactivity`]: Close a Waiting conversation after this long without activity.
    #[must_use]
    pub fn waiting_inactivity(mut self, waiting_inactivity: Duration) -> Self {
        self.waiting_inactivity = waiting_inactivity;
        self
    }

    /// Sets [`Self::agent_affinity`]: Offer a revived conversation to its previous agent first.
    #[must_use]
    pub fn agent_affinity(mut self, agent_affinity: bool) -> Self {
        self.agent_affinity = agent_affinity;
        self
    }

    /// Sets [`Self::presence_after_missed_offer`]: the presence an agent who lets an offer
    /// lapse is set to (`None`: unchanged).
    #[must_use]
    pub fn presence_after_missed_offer(mut self, presence: Option<Presence>) -> Self {
        self.presence_after_missed_offer = presence;
        self
    }

    /// Sets [`Self::presence_after_rejected_offer`]: the presence an agent who rejects an
    /// offer is set to (`None`: unchanged).
    #[must_use]
    pub fn presence_after_rejected_offer(mut self, presence: Option<Presence>) -> Self {
        self.presence_after_rejected_offer = presence;
        self
    }

    /// Sets [`Self::privacy_notice`]: The privacy notice sent and recorded when a conversation starts (`None`: none).
    #[must_use]
    pub fn privacy_notice(mut self, privacy_notice: Option<String>) -> Self {
        self.privacy_notice = privacy_notice;
        self
    }

    /// Sets [`Self::keep_unsent`]: Whether a removed message's text is kept in the record.
    #[must_use]
    pub fn keep_unsent(mut self, keep_unsent: bool) -> Self {
        self.keep_unsent = keep_unsent;
        self
    }
}

impl Default for ConversationConfig {
    fn default() -> Self {
        Self {
            offer_timeout: DEFAULT_OFFER_TIMEOUT,
            reoffer_interval: DEFAULT_REOFFER_INTERVAL,
            auto_close_open_active: DEFAULT_AUTO_CLOSE_OPEN_ACTIVE,
            auto_close_wrap_up: DEFAULT_AUTO_CLOSE_WRAP_UP,
            waiting_inactivity: DEFAULT_WAITING_INACTIVITY,
            agent_affinity: false,
            presence_after_missed_offer: None,
            presence_after_rejected_offer: None,
            privacy_notice: None,
            keep_unsent: true,
        }
    }
}

/// An offer of the conversation to one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The agent offered.
    pub agent: AgentId,
    /// When the offer was made.
    pub offered_at: SystemTime,
    /// When it lapses.
    pub expires_at: SystemTime,
}

/// Why a conversation closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CloseReason {
    /// The agent closed it after Wrap-up.
    Agent,
    /// Auto-closed after the configured time in its state.
    AutoClose,
    /// Waiting without activity for the configured time.
    Inactivity,
    /// A supervisor force-closed it ([`Input::ForceClose`]).
    Supervisor,
    /// It started outside its queue's operating hours, in a queue that closes such
    /// conversations ([`Input::CloseOutsideHours`]).
    OutsideHours,
}

/// Where a conversation is in its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum State {
    /// Queued; at most one outstanding offer.
    Open {
        /// The outstanding offer.
        offer: Option<Offer>,
    },
    /// An agent holds the session.
    Active {
        /// The agent.
        agent: AgentId,
    },
    /// The agent closed the session without ending the conversation.
    Waiting {
        /// The agent who held it.
        agent: AgentId,
    },
    /// The agent ended the conversation and is wrapping up.
    WrapUp {
        /// The agent.
        agent: AgentId,
    },
    /// Final.
    Closed {
        /// Why.
        reason: CloseReason,
    },
}

/// The state's name, for errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum StateKind {
    /// [`State::Open`].
    Open,
    /// [`State::Active`].
    Active,
    /// [`State::Waiting`].
    Waiting,
    /// [`State::WrapUp`].
    WrapUp,
    /// [`State::Closed`].
    Closed,
}

impl State {
    /// The state's name.
    pub fn kind(&self) -> StateKind {
        match self {
            Self::Open { .. } => StateKind::Open,
            Self::Active { .. } => StateKind::Active,
            Self::Waiting { .. } => StateKind::Waiting,
            Self::WrapUp { .. } => StateKind::WrapUp,
            Self::Closed { .. } => StateKind::Closed,
        }
    }

    /// The agent holding a session (Active or Wrap-up), whose capacity it uses.
    pub fn session_agent(&self) -> Option<&AgentId> {
        match self {
            Self::Active { agent } | Self::WrapUp { agent } => Some(agent),
            _ => None,
        }
    }
}

/// An agent who declined (or let expire) an offer, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Declined {
    /// The agent.
    pub agent: AgentId,
    /// When.
    pub at: SystemTime,
}

/// One conversation (an Omnichannel work item) between a page and a customer.
///
/// Its fields are private: a conversation starts with [`Conversation::start`] and changes only
/// through [`Conversation::apply`] (or [`transition`]), so that every change is one the
/// machine allows. Stores keep it with serde; the getters below read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    id: ConversationId,
    page: PageId<'static>,
    customer: UserId<'static>,
    state: State,
    created_at: SystemTime,
    last_customer_message_at: Option<SystemTime>,
    last_activity_at: SystemTime,
    paused: bool,
    declined: Vec<Declined>,
    previous_agent: Option<AgentId>,
    /// Conversations saved before the field existed sent their notice at the start.
    #[serde(default = "sent_by_default")]
    privacy_notice_sent: bool,
    /// The latest delivery watermark (saved before the field existed: none).
    #[serde(default)]
    delivered_until: Option<SystemTime>,
    /// The latest read watermark.
    #[serde(default)]
    read_until: Option<SystemTime>,
    /// Digests of the latest reactions, edits and removals recorded
    /// ([`RECENT_THREAD_EVENTS`] at most): one delivered again after the inbox forgot it (a
    /// redelivery past the dedup window) is not recorded twice.
    #[serde(default, skip_serializing_if = "std::collections::VecDeque::is_empty")]
    recent_events: std::collections::VecDeque<String>,
    /// The queue it was classified into (saved before queues existed: none, the fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queue: Option<QueueId>,
    /// The transfer under way, from when an agent transfers it until someone accepts it (or,
    /// for a transfer to an agent, until that agent declines or lets it lapse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transfer: Option<Transfer>,
    /// Agents consulted by the session's holder: internal notes only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    consultants: Vec<AgentId>,
    /// When it last went (back) to the queue; saved before the field existed: its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queued_at: Option<SystemTime>,
    /// Whether the customer was told that no agent is available yet (once per conversation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    told_no_agent: bool,
    /// The host's record of the customer this conversation is linked to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    customer_record: Option<CustomerRecordId>,
    /// The customer's locale when the conversation started, as the host gave it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "locale_or_none"
    )]
    customer_locale: Option<Locale>,
    /// The agent to offer it to first while it waits (agent affinity: the agent who held it
    /// when the customer revived it), until an offer of it is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    affinity: Option<AgentId>,
}

/// A kept locale that is no longer a [`Locale`] (written by hand, by another version) is
/// dropped rather than making its conversation unreadable.
fn locale_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Locale>, D::Error> {
    let kept = Option::<String>::deserialize(d)?;
    Ok(kept.and_then(|l| Locale::new(&l).ok()))
}

/// How many reactions, edits and removals a conversation remembers, so that one delivered
/// again long after (past the inbox's dedup window) is recorded once.
pub const RECENT_THREAD_EVENTS: usize = 32;

/// Conversations saved before the field existed sent their notice at the start.
fn sent_by_default() -> bool {
    true
}

impl Conversation {
    /// Its id.
    pub fn id(&self) -> &ConversationId {
        &self.id
    }

    /// The page.
    pub fn page(&self) -> &PageId<'static> {
        &self.page
    }

    /// The customer's PSID.
    pub fn customer(&self) -> &UserId<'static> {
        &self.customer
    }

    /// The queue it was classified into when it started
    /// ([`Conversation::start_in_queue`]); `None` for a conversation started with
    /// [`Conversation::start`] or saved before queues existed, which belongs to the fallback
    /// queue ([`crate::routing::Routing::queue`]).
    pub fn queue(&self) -> Option<&QueueId> {
        self.queue.as_ref()
    }

    /// The transfer under way: set when the holder transfers the conversation
    /// ([`Input::Transfer`]), until an agent takes it (accepts, picks, is assigned it), or, for
    /// a transfer to an agent, until that agent declines it or lets it lapse. A notifier shows
    /// an offer of a transferred conversation as a transfer (with its note).
    pub fn transfer(&self) -> Option<&Transfer> {
        self.transfer.as_ref()
    }

    /// The agents consulted in the session ([`Input::Consult`]): they read the conversation
    /// and write internal notes; the customer sees nothing of them. The consult ends when
    /// the session does (the conversation leaves Active).
    pub fn consultants(&self) -> &[AgentId] {
        &self.consultants
    }

    /// The host's record of the customer (a contact or account in its CRM) the conversation
    /// is linked to ([`Input::LinkRecord`]); `None` until one is linked.
    pub fn customer_record(&self) -> Option<&CustomerRecordId> {
        self.customer_record.as_ref()
    }

    /// The conversation linked to the host's record of the customer from its start: the
    /// engine carries the record of the customer's previous conversation over to the next
    /// one (as Omnichannel links a customer's later conversations to the record), which
    /// [`Input::LinkRecord`] may change.
    #[must_use]
    pub fn with_customer_record(mut self, record: Option<CustomerRecordId>) -> Self {
        self.customer_record = record;
        self
    }

    /// The customer's locale, as the host gave it when the conversation started
    /// ([`Conversation::with_customer_locale`]); `None` when it did not know it.
    pub fn customer_locale(&self) -> Option<&Locale> {
        self.customer_locale.as_ref()
    }

    /// The conversation with the customer's locale, a fact of its start like its queue: set
    /// it before the first automated message is chosen, since those follow it
    /// ([`crate::routing::AutomatedMessages::locale`]). The engine sets it from
    /// [`crate::engine::CustomerLocale`].
    #[must_use]
    pub fn with_customer_locale(mut self, locale: Option<Locale>) -> Self {
        self.customer_locale = locale;
        self
    }

    /// When the conversation last went to the queue (started, came back from Waiting, was
    /// transferred): what a queue's wait times count from.
    pub fn queued_since(&self) -> SystemTime {
        self.queued_at.unwrap_or(self.created_at)
    }

    /// Whether the customer was told that no agent is available yet
    /// ([`AutomatedTrigger::NoAgentAvailable`]; once per conversation).
    pub fn told_no_agent(&self) -> bool {
        self.told_no_agent
    }

    /// The lifecycle state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// When it started.
    pub fn created_at(&self) -> SystemTime {
        self.created_at
    }

    /// When the customer last wrote (for the messaging window).
    pub fn last_customer_message_at(&self) -> Option<SystemTime> {
        self.last_customer_message_at
    }

    /// When anything last happened (for auto-close and inactivity).
    pub fn last_activity_at(&self) -> SystemTime {
        self.last_activity_at
    }

    /// Whether another app (or the Page inbox) holds the thread: agents cannot send, and no
    /// offer is made, until it is passed back.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The agents who declined an offer of it (or let one lapse), and when. It may hold
    /// declines older than the re-offer interval; [`Conversation::excluded_agents`] gives the
    /// ones that still count.
    pub fn declined(&self) -> &[Declined] {
        &self.declined
    }

    /// The last agent who held a session (for affinity).
    pub fn previous_agent(&self) -> Option<&AgentId> {
        self.previous_agent.as_ref()
    }

    /// The agent to offer it to first ([`Effect::RequestOffer`]'s `prefer`) while it waits
    /// for an offer: with [`ConversationConfig::agent_affinity`], the agent who held it when
    /// the customer wrote again, until an offer of it is made (to them or, when they could
    /// not take it, to another). A host asking again for an offer (the engine's tick) passes
    /// it, so that affinity holds when no agent was free at the revive.
    pub fn preferred_agent(&self) -> Option<&AgentId> {
        self.affinity.as_ref().filter(|_| self.awaits_offer())
    }

    /// Whether the privacy notice was sent (a conversation started while another app held
    /// the thread sends it when the thread is passed back).
    pub fn privacy_notice_sent(&self) -> bool {
        self.privacy_notice_sent
    }

    /// Messenger's delivery watermark: the page's messages sent before it reached the
    /// customer. With [`Conversation::read_until`], it gives each agent line its status
    /// ([`Conversation::message_status`]); no line is written per receipt.
    pub fn delivered_until(&self) -> Option<SystemTime> {
        self.delivered_until
    }

    /// Messenger's read watermark: the customer read the page's messages sent before it.
    pub fn read_until(&self) -> Option<SystemTime> {
        self.read_until
    }

    /// What the customer's side says of a message the page sent at `sent_at`
    /// ([`TranscriptLine::sent_at`]: when the platform took it, not when it was written): read,
    /// delivered or only sent. A read message was delivered, whatever the delivery watermark
    /// says. With no send time (`None`) it is "sent" at most: a watermark cannot be compared.
    pub fn message_status(&self, sent_at: Option<SystemTime>) -> MessageStatus {
        let Some(sent_at) = sent_at else {
            return MessageStatus::Sent;
        };
        if self.read_until.is_some_and(|w| sent_at <= w) {
            MessageStatus::Read
        } else if self.delivered_until.is_some_and(|w| sent_at <= w) {
            MessageStatus::Delivered
        } else {
            MessageStatus::Sent
        }
    }

    /// Whether the conversation is closed (final).
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed { .. })
    }

    /// The next time something is due (offer deadline, auto-close, inactivity), for the host's
    /// timer or the store's "due" index: the one source of the conversation's timers (see
    /// [the module docs](self#deadlines)). `None` once closed.
    pub fn next_deadline(&self, config: &ConversationConfig) -> Option<SystemTime> {
        let auto_close = |after: Duration| saturating_add(self.last_activity_at, after);
        match &self.state {
            State::Open { offer } => {
                let close = auto_close(config.auto_close_open_active);
                Some(offer.as_ref().map_or(close, |o| o.expires_at.min(close)))
            }
            State::Active { .. } => Some(auto_close(config.auto_close_open_active)),
            State::Waiting { .. } => Some(auto_close(config.waiting_inactivity)),
            State::WrapUp { .. } => Some(auto_close(config.auto_close_wrap_up)),
            State::Closed { .. } => None,
        }
    }
}

/// How far a message the page sent got, from Messenger's watermarks
/// ([`Conversation::message_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MessageStatus {
    /// Sent (or queued); no receipt covers it yet.
    Sent,
    /// Delivered to the customer's device.
    Delivered,
    /// Read by the customer.
    Read,
}

/// Who wrote a transcript line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Author {
    /// The customer.
    Customer,
    /// An agent.
    Agent(AgentId),
    /// The channel itself (notices, the privacy notice).
    System,
    /// A person answering from the Page inbox or the Business Suite, outside the channel
    /// (an echo with no app id, or the Page inbox's, [`PAGE_INBOX_APP_ID`]).
    PageInbox,
    /// Another app that sent on the page, outside the channel (its echo's app id).
    App(AppId),
    /// A supervisor (an internal note, an assignment, a forced close).
    Supervisor(AgentId),
}

/// The app id Meta gives the Page inbox (and the Business Suite inbox) in echoes and thread
/// control events.
pub const PAGE_INBOX_APP_ID: AppId = AppId(263_902_037_430_900);

impl Author {
    /// Who sent an echo the channel did not send: the Page inbox when it has no app id or the
    /// Page inbox's, the app otherwise.
    pub fn outside(app: Option<AppId>) -> Self {
        match app {
            None | Some(PAGE_INBOX_APP_ID) => Self::PageInbox,
            Some(app) => Self::App(app),
        }
    }
}

/// A file in the transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileLine {
    /// A safe name to show.
    pub name: String,
    /// The platform kind (`image`, `file`…).
    pub kind: String,
    /// The CDN URL it came from (expires).
    pub url: Option<String>,
    /// The key of the stored copy, when it was saved.
    pub media_key: Option<String>,
    /// Its size, when known.
    pub size: Option<u64>,
    /// When refused by the attachment policy: the rule's code and the words an agent reads.
    pub rejected: Option<Rejection>,
    /// Whether the channel keeps a copy of it, and how far it got.
    #[serde(default)]
    pub media: MediaState,
}

/// Whether the channel keeps a copy of an inbound file: Messenger's links expire, so an
/// accepted file is fetched into the media store after its message is recorded, and fetched
/// again after a failure while its link can still work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MediaState {
    /// The channel does not keep it (downloads are off, the policy refused it, or it is an
    /// agent's file, kept under its key from the start).
    #[default]
    NotKept,
    /// Being fetched; shown to agents as "receiving the file…".
    Pending,
    /// Kept in the media store, under [`FileLine::media_key`].
    Stored,
    /// It could not be fetched before its link stopped working: why, in words an agent can
    /// read.
    Unavailable(String),
}

/// What a transcript line holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LineBody {
    /// Text.
    Text(String),
    /// A postback (button title and payload).
    Postback {
        /// The button's title.
        title: Option<String>,
        /// Its payload.
        payload: Option<String>,
    },
    /// A file (accepted or refused).
    File(FileLine),
    /// A notice from the channel.
    Notice(String),
    /// A reaction to a message of the conversation, or its removal. It is shown on the
    /// message it reacts to, by [`ReactionLine::to`].
    Reaction(ReactionLine),
    /// A new version of an earlier message: the earlier line is kept as it was, and this line
    /// holds the text it has now.
    Edit {
        /// The edited message's id.
        of: String,
        /// Its text now.
        text: String,
        /// How many times it has been edited (Messenger allows five).
        edit_count: u64,
    },
    /// The customer removed (unsent) an earlier message. Whether its text is still kept in
    /// the record is [`ConversationConfig::keep_unsent`]'s choice.
    Unsent {
        /// The removed message's id.
        of: String,
    },
    /// A sticker, shown as its image.
    Sticker {
        /// The sticker's image (a CDN URL).
        url: Option<String>,
        /// Messenger's sticker id.
        sticker_id: Option<u64>,
    },
    /// A shared link, post, reel, template or fallback: what an agent can read of it.
    Link {
        /// Messenger's attachment type (`fallback`, `share`, `ig_reel`, `template`…).
        kind: String,
        /// Its title, when it has one.
        title: Option<String>,
        /// Where it leads, when known.
        url: Option<String>,
    },
    /// A location, as a link to a map.
    Location {
        /// Its title (a place's name), when it has one.
        title: Option<String>,
        /// A map link: `https://www.openstreetmap.org/?mlat=…&mlon=…`.
        map_url: String,
    },
    /// For agents and supervisors only: a note, a transfer, a consult. Never sent to the
    /// customer (no [`Outgoing`] reads as one).
    Internal(Internal),
}

impl LineBody {
    /// Whether the line is internal ([`LineBody::Internal`]): shown to agents and
    /// supervisors, never to the customer.
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Internal(_))
    }
}

/// An internal line: agents and supervisors read it; the customer never does.
///
/// ```
/// use messenger_channel::conversation::{Internal, TransferTarget};
/// use messenger_channel::ids::{AgentId, QueueId};
///
/// let line = Internal::Transferred {
///     to: TransferTarget::Queue(QueueId::from("billing")),
///     note: Some("asks for a refund".into()),
/// };
/// assert_eq!(line.to_string(), "transferred to queue billing: asks for a refund");
/// assert_eq!(Internal::Note("VIP".into()).to_string(), "VIP");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Internal {
    /// A note by an agent or a supervisor (its line's author).
    Note(String),
    /// The holder (its line's author) transferred the conversation.
    Transferred {
        /// Where to.
        to: TransferTarget,
        /// The note for whoever takes it.
        note: Option<String>,
    },
    /// The holder (its line's author) invited an agent to consult.
    ConsultInvited {
        /// The agent consulted.
        consultant: AgentId,
    },
    /// The consulted agent (its line's author) left the consult.
    ConsultLeft,
    /// A supervisor (its line's author) assigned the conversation to an agent.
    Assigned {
        /// The agent.
        agent: AgentId,
    },
    /// A supervisor (its line's author) closed the conversation.
    ForceClosed,
    /// The conversation was linked to the host's record of the customer (`None`: unlinked),
    /// by its line's author (the channel itself for the host).
    RecordLinked {
        /// The record.
        record: Option<CustomerRecordId>,
    },
}

impl std::fmt::Display for Internal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Note(text) => f.write_str(text),
            Self::Transferred { to, note } => {
                write!(f, "transferred to {to}")?;
                match note {
                    Some(note) => write!(f, ": {note}"),
                    None => Ok(()),
                }
            }
            Self::ConsultInvited { consultant } => write!(f, "invited {consultant} to consult"),
            Self::ConsultLeft => f.write_str("left the consult"),
            Self::Assigned { agent } => write!(f, "assigned the conversation to {agent}"),
            Self::ForceClosed => f.write_str("closed the conversation"),
            Self::RecordLinked { record: Some(r) } => write!(f, "linked the customer record {r}"),
            Self::RecordLinked { record: None } => f.write_str("unlinked the customer record"),
        }
    }
}

/// Where a transfer goes ([`Input::Transfer`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TransferTarget {
    /// To one agent, who is offered it (with the offer's countdown).
    Agent(AgentId),
    /// To a queue, which routes it as a new conversation of its own.
    Queue(QueueId),
}

impl std::fmt::Display for TransferTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Agent(agent) => write!(f, "{agent}"),
            Self::Queue(queue) => write!(f, "queue {queue}"),
        }
    }
}

/// A transfer under way ([`Conversation::transfer`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Transfer {
    /// The agent who transferred it.
    pub from: AgentId,
    /// Where to.
    pub to: TransferTarget,
    /// The note for whoever takes it.
    pub note: Option<String>,
    /// When.
    pub at: SystemTime,
}

/// Who writes an internal note ([`Input::Note`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NoteAuthor {
    /// An agent: the one who holds (or held) the session, or one consulted.
    Agent(AgentId),
    /// A supervisor, on any conversation.
    Supervisor(AgentId),
}

impl From<NoteAuthor> for Author {
    fn from(author: NoteAuthor) -> Self {
        match author {
            NoteAuthor::Agent(agent) => Self::Agent(agent),
            NoteAuthor::Supervisor(agent) => Self::Supervisor(agent),
        }
    }
}

/// What an automated message answers (Omnichannel's automated-message triggers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AutomatedTrigger {
    /// A new conversation.
    Greeting,
    /// An agent took the conversation (accepted, picked, was assigned it).
    AgentJoined,
    /// The agent ended the conversation.
    AgentEnded,
    /// The conversation was transferred.
    Transferred,
    /// No agent is available yet; the customer's place in the queue.
    NoAgentAvailable,
    /// The conversation started outside its queue's operating hours.
    OutsideOperatingHours,
    /// The conversation closed: the post-conversation survey link.
    Survey,
}

/// A reaction in the transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReactionLine {
    /// The message reacted to (absent in older payloads).
    pub to: Option<String>,
    /// The emoji.
    pub emoji: Option<String>,
    /// Messenger's name for it (`love`, `smile`, …, `other`).
    pub name: Option<String>,
    /// Whether the reaction was removed (`unreact`) rather than added.
    pub removed: bool,
}

impl ReactionLine {
    /// A reaction (or its removal, when `removed`) to the message `to`.
    pub fn new(to: Option<String>, emoji: Option<String>, removed: bool) -> Self {
        Self {
            to,
            emoji,
            name: None,
            removed,
        }
    }

    /// Sets Messenger's name for the reaction.
    #[must_use]
    pub fn name(mut self, name: Option<String>) -> Self {
        self.name = name;
        self
    }
}

/// A map link for a point: OpenStreetMap, which needs no key.
pub fn map_url(lat: f64, long: f64) -> String {
    format!("https://www.openstreetmap.org/?mlat={lat}&mlon={long}#map=17/{lat}/{long}")
}

/// One line of a conversation's transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptLine {
    /// When.
    pub at: SystemTime,
    /// Who.
    pub author: Author,
    /// What.
    pub body: LineBody,
    /// The platform message id, for messages: on every line of a message (its text and each
    /// attachment; transcripts written before this version have it on the first only).
    pub mid: Option<String>,
    /// The message this one answers (Messenger's `reply_to`), the customer's or the page's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// When the platform took the page's message (an agent line: the delivery that got its
    /// `mid`), which may be long after it was written (`at`). Receipts are compared with it
    /// ([`Conversation::message_status`]); `None`: not known to be sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<SystemTime>,
}

impl TranscriptLine {
    /// What this line becomes when the customer's message `mid` is forgotten (they removed
    /// it, and [`ConversationConfig::keep_unsent`] is off): the removal
    /// ([`LineBody::Unsent`]), with its time, author and ids, when it is one of that
    /// message's lines (by the customer, with that `mid`) or one of its edits; `None` for any
    /// other line, for a reaction, and for a line already forgotten. This is the rule of
    /// [`crate::store::ConversationStore::forget_message`], for stores to apply.
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use messenger_channel::conversation::{Author, LineBody, TranscriptLine};
    ///
    /// let line = TranscriptLine {
    ///     at: SystemTime::UNIX_EPOCH,
    ///     author: Author::Customer,
    ///     body: LineBody::Text("my card is 4111".into()),
    ///     mid: Some("m_1".into()),
    ///     reply_to: None,
    ///     sent_at: None,
    /// };
    /// let forgotten = line.forgotten_by("m_1").unwrap();
    /// assert_eq!(forgotten.body, LineBody::Unsent { of: "m_1".into() });
    /// assert_eq!(forgotten.forgotten_by("m_1"), None, "once");
    /// assert_eq!(line.forgotten_by("m_2"), None);
    /// ```
    #[must_use]
    pub fn forgotten_by(&self, mid: &str) -> Option<TranscriptLine> {
        let of_it = match &self.body {
            LineBody::Unsent { .. } | LineBody::Reaction(_) => false,
            LineBody::Edit { of, .. } => of == mid,
            _ => self.author == Author::Customer && self.mid.as_deref() == Some(mid),
        };
        of_it.then(|| TranscriptLine {
            body: LineBody::Unsent { of: mid.to_owned() },
            ..self.clone()
        })
    }
}

/// A customer's message (or postback), as the state machine takes it.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use messenger_channel::conversation::{Inbound, LineBody};
///
/// let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// let inbound = Inbound::new(Some("m_1".into()), vec![LineBody::Text("hi".into())]).sent_at(sent);
/// assert_eq!(inbound.sent_at, Some(sent));
/// assert!(!inbound.standby);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Inbound {
    /// The platform message id.
    pub mid: Option<String>,
    /// The lines it adds to the transcript (text, files, postback), in order.
    pub lines: Vec<LineBody>,
    /// When the customer sent it (the event's timestamp). The machine uses
    /// `min(now, sent_at)` for every customer time it keeps (the messaging window, inactivity,
    /// auto-close, the transcript line), so a message redelivered late does not reopen the
    /// window. `None`: the time of handling.
    #[serde(default)]
    pub sent_at: Option<SystemTime>,
    /// It arrived on `standby`: another app (or the Page inbox) owns the thread. It is
    /// recorded, and the conversation is paused until the thread is passed back.
    #[serde(default)]
    pub standby: bool,
    /// The message it answers (`reply_to`), recorded on its first line.
    #[serde(default)]
    pub reply_to: Option<String>,
}

impl Inbound {
    /// A message with its id and lines, handled as sent now, on the primary channel.
    pub fn new(mid: Option<String>, lines: Vec<LineBody>) -> Self {
        Self {
            mid,
            lines,
            sent_at: None,
            standby: false,
            reply_to: None,
        }
    }

    /// Sets the message it answers.
    #[must_use]
    pub fn reply_to(mut self, mid: Option<String>) -> Self {
        self.reply_to = mid;
        self
    }

    /// Sets when the customer sent it (the event's timestamp).
    #[must_use]
    pub fn sent_at(mut self, at: SystemTime) -> Self {
        self.sent_at = Some(at);
        self
    }

    /// Marks it as received on `standby`.
    #[must_use]
    pub fn on_standby(mut self, standby: bool) -> Self {
        self.standby = standby;
        self
    }

    /// The customer's time for it: `min(now, sent_at)`.
    pub fn time(&self, now: SystemTime) -> SystemTime {
        self.sent_at.map_or(now, |at| at.min(now))
    }
}

/// Something for the channel to send to the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Outgoing {
    /// Text from an agent.
    Text(String),
    /// A file from an agent, by media key (already checked against the policy).
    File {
        /// The stored file's key.
        media_key: String,
        /// Its safe name.
        name: String,
        /// Its MIME type.
        mime: String,
    },
    /// The privacy notice (automated).
    PrivacyNotice(String),
    /// An automated message of the conversation's queue (never `HUMAN_AGENT`).
    Automated {
        /// What it answers.
        trigger: AutomatedTrigger,
        /// Its text.
        text: String,
    },
    /// An agent's reaction to a message (`sender_action` `react`), or its removal
    /// (`unreact`, when `reaction` is `None`).
    Reaction {
        /// The message reacted to.
        mid: String,
        /// The emoji; `None` removes the page's reaction.
        reaction: Option<String>,
    },
}

impl Outgoing {
    /// How it reads in the transcript: text as text, the privacy notice as a notice, a file
    /// as a stored file under its media key, a reaction as a reaction.
    pub fn line_body(&self) -> LineBody {
        match self {
            Self::Text(text) => LineBody::Text(text.clone()),
            Self::PrivacyNotice(text) | Self::Automated { text, .. } => {
                LineBody::Notice(text.clone())
            }
            Self::Reaction { mid, reaction } => LineBody::Reaction(ReactionLine::new(
                Some(mid.clone()),
                reaction.clone(),
                reaction.is_none(),
            )),
            Self::File {
                media_key,
                name,
                mime,
            } => LineBody::File(FileLine {
                name: name.clone(),
                kind: MediaKind::from_mime(mime).as_str().to_owned(),
                url: None,
                media_key: Some(media_key.clone()),
                size: None,
                rejected: None,
                media: MediaState::Stored,
            }),
        }
    }
}

/// What a transition produced: the lines it adds to the transcript and the effects for the
/// host to carry out, both after the new state is saved (in the same commit, for the
/// [`crate::engine::Engine`]).
///
/// Timers are not among them: they follow from the state, through
/// [`Conversation::next_deadline`] (see [the module docs](self#deadlines)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition {
    /// Lines for the transcript, in order: the customer's message, notices from the channel,
    /// the privacy notice, an agent's message (recorded when it is committed, whatever
    /// becomes of its delivery).
    pub lines: Vec<TranscriptLine>,
    /// What the host carries out: sends, offers, notifications to agents, capacity changes,
    /// media fetches.
    pub effects: Vec<Effect>,
}

/// What a transition asks the host to do. Plain data, delivered after the new state is saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Effect {
    /// Send to the customer (`agent` is `None` for automated messages).
    Send {
        /// Who sends.
        agent: Option<AgentId>,
        /// What.
        message: Outgoing,
    },
    /// Find an agent and offer the conversation (feed back [`Input::OfferTo`]).
    RequestOffer {
        /// Agents not to offer it to.
        exclude: Vec<AgentId>,
        /// An agent to try first (affinity).
        prefer: Option<AgentId>,
    },
    /// Notify the agent of the offer, with its countdown.
    NotifyOffer(Offer),
    /// The offer to the agent is over (accepted, rejected, lapsed or withdrawn): the capacity
    /// it reserved is free again.
    OfferEnded {
        /// The agent.
        agent: AgentId,
        /// When the offer would have lapsed: the reservation made for it holds until then
        /// ([`crate::agents::Hold::until`]), and only a reservation lapsing no later is
        /// ended, so that one renewed since for a new offer to the same agent stays. `None`
        /// (an effect recorded before it was kept) ends the reservation whatever its hold.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<SystemTime>,
    },
    /// Remove an offer from the agent's screen (expired).
    WithdrawOffer {
        /// The agent.
        agent: AgentId,
    },
    /// The agent now holds a session: capacity consumed.
    SessionStarted {
        /// The agent.
        agent: AgentId,
    },
    /// The agent's session ended: capacity released.
    SessionReleased {
        /// The agent.
        agent: AgentId,
    },
    /// Set the agent's presence, if they are still [`Presence::Available`]: they let an offer
    /// lapse or rejected it ([`ConversationConfig::presence_after_missed_offer`],
    /// [`ConversationConfig::presence_after_rejected_offer`]).
    SetPresence {
        /// The agent.
        agent: AgentId,
        /// Their new presence.
        presence: Presence,
        /// When they missed or rejected the offer: the presence is set only for an offer that
        /// ended after the last one that set it, so that this effect delivered again, or an
        /// older one delivered late, after the agent set themselves Available changes nothing.
        /// (Recorded before it was kept: the epoch, which sets it only for an agent never set
        /// so; `offered_at`, the name it had for a while, is read as it.)
        #[serde(default = "crate::time::epoch", alias = "offered_at")]
        ended_at: SystemTime,
    },
    /// Tell an agent they were invited to consult ([`Input::Consult`]).
    ConsultInvited {
        /// The agent consulted.
        agent: AgentId,
    },
    /// Forget what the customer wrote in a message they removed
    /// ([`ConversationConfig::keep_unsent`] off): its lines (and its edits') are replaced in
    /// the transcript by the notice that it was removed.
    ForgetMessage {
        /// The removed message's id.
        mid: String,
    },
    /// Fetch a customer's file into the media store (its line is [`MediaState::Pending`]).
    FetchMedia {
        /// The file's URL, which names its line.
        url: String,
        /// When the customer sent it: the link is tried until it expires.
        sent_at: SystemTime,
    },
}

impl Effect {
    /// [`Effect::OfferEnded`] of `agent`'s offer that lapses at `until`.
    pub fn offer_ended(agent: AgentId, until: SystemTime) -> Self {
        Self::OfferEnded {
            agent,
            until: Some(until),
        }
    }
}

/// What happens to a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Input {
    /// The customer wrote (text, files, postback).
    CustomerMessage(Inbound),
    /// Offer the conversation to an agent (after [`Effect::RequestOffer`]).
    OfferTo(AgentId),
    /// The agent accepts the offer.
    Accept(AgentId),
    /// The agent rejects the offer.
    Reject(AgentId),
    /// The agent picks the conversation from its queue (Pick mode): it must wait in the
    /// queue ([`Conversation::awaits_offer`]); the agent holds its session at once.
    Pick(AgentId),
    /// The agent sends something: its line is written now, except a reaction's, which the
    /// engine writes once it is sent.
    AgentSend {
        /// The agent.
        agent: AgentId,
        /// What.
        message: Outgoing,
    },
    /// The agent presses End.
    End(AgentId),
    /// The agent closes the session.
    CloseSession(AgentId),
    /// The agent revives a Waiting conversation.
    Revive(AgentId),
    /// The holder transfers the Active conversation, with a note: their session ends, and
    /// it is offered to the agent named (whatever their presence and capacity: the holder
    /// chose them), or goes to the queue named, which routes it as its own.
    Transfer {
        /// The agent who holds it.
        agent: AgentId,
        /// Where to.
        to: TransferTarget,
        /// The note for whoever takes it.
        note: Option<String>,
    },
    /// The holder invites another agent to consult: internal notes only.
    Consult {
        /// The agent who holds it.
        agent: AgentId,
        /// The agent invited.
        consultant: AgentId,
    },
    /// A consulted agent leaves the consult.
    LeaveConsult(AgentId),
    /// An internal note, for agents and supervisors only.
    Note {
        /// Who writes it.
        author: NoteAuthor,
        /// What.
        text: String,
    },
    /// Links the conversation to the host's record of the customer (or unlinks it, with
    /// `None`): by the host, or by an agent who holds it or consults in it. Allowed in every
    /// state but Closed; a change is recorded as an internal line.
    LinkRecord {
        /// Who links it: `None` for the host itself.
        by: Option<AgentId>,
        /// The record, or `None` to unlink.
        record: Option<CustomerRecordId>,
    },
    /// A supervisor assigns the Open conversation to an agent: the agent holds its session
    /// at once (any outstanding offer is withdrawn).
    Assign {
        /// The supervisor.
        supervisor: AgentId,
        /// The agent.
        agent: AgentId,
    },
    /// A supervisor closes the conversation, whatever its state.
    ForceClose {
        /// The supervisor.
        supervisor: AgentId,
    },
    /// The conversation started outside its queue's operating hours, in a queue that closes
    /// such conversations: it closes (it must be Open).
    CloseOutsideHours,
    /// An automated message of the conversation's queue: sent (never `HUMAN_AGENT`) and
    /// recorded.
    Automated {
        /// What it answers.
        trigger: AutomatedTrigger,
        /// Its text.
        text: String,
    },
    /// Time passed: fire whatever is due.
    Tick,
    /// Another app or the Page inbox took the thread.
    ThreadTaken,
    /// The thread was passed back to this app.
    ThreadReturned,
    /// Something else happened in the thread (a reaction, an edit, a removal, a reply from
    /// outside the channel, a receipt): recorded, without changing the lifecycle.
    Thread {
        /// What.
        event: ThreadEvent,
        /// When it happened (the event's time); the machine uses `min(now, at)`.
        at: SystemTime,
    },
}

/// Something in the thread besides a customer's message ([`Input::Thread`]). Recorded in the
/// transcript (receipts: in the conversation), it changes neither the lifecycle nor the
/// messaging window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ThreadEvent {
    /// The customer reacted to a message, or removed a reaction.
    Reaction(ReactionLine),
    /// The customer edited a message.
    Edit {
        /// The message.
        mid: String,
        /// Its new text.
        text: String,
        /// How many times it has been edited.
        edit_count: u64,
    },
    /// The customer removed (unsent) a message.
    Unsent {
        /// The message.
        mid: String,
    },
    /// A message the page sent from outside the channel (the Page inbox, another app).
    Outside {
        /// Who sent it: [`Author::PageInbox`] or [`Author::App`].
        author: Author,
        /// Its id.
        mid: Option<String>,
        /// What it holds.
        lines: Vec<LineBody>,
        /// The message it answers.
        reply_to: Option<String>,
    },
    /// Messages sent before the watermark were delivered.
    Delivered {
        /// The watermark.
        watermark: SystemTime,
    },
    /// The customer read the messages sent before the watermark.
    Read {
        /// The watermark.
        watermark: SystemTime,
    },
}

impl ThreadEvent {
    /// Whether it is recorded in a closed conversation, the customer's most recent, when
    /// none is open: a reaction, an edit, a removal or an outside reply (not a receipt).
    pub fn is_recorded_after_close(&self) -> bool {
        !matches!(self, Self::Delivered { .. } | Self::Read { .. })
    }
}

/// The input's name, for errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InputKind {
    /// [`Input::CustomerMessage`].
    CustomerMessage,
    /// [`Input::OfferTo`].
    OfferTo,
    /// [`Input::Accept`].
    Accept,
    /// [`Input::Reject`].
    Reject,
    /// [`Input::Pick`].
    Pick,
    /// [`Input::AgentSend`].
    AgentSend,
    /// [`Input::End`].
    End,
    /// [`Input::CloseSession`].
    CloseSession,
    /// [`Input::Revive`].
    Revive,
    /// [`Input::Transfer`].
    Transfer,
    /// [`Input::Consult`].
    Consult,
    /// [`Input::LeaveConsult`].
    LeaveConsult,
    /// [`Input::Note`].
    Note,
    /// [`Input::LinkRecord`].
    LinkRecord,
    /// [`Input::Assign`].
    Assign,
    /// [`Input::ForceClose`].
    ForceClose,
    /// [`Input::CloseOutsideHours`].
    CloseOutsideHours,
    /// [`Input::Automated`].
    Automated,
    /// [`Input::Tick`].
    Tick,
    /// [`Input::ThreadTaken`].
    ThreadTaken,
    /// [`Input::ThreadReturned`].
    ThreadReturned,
    /// [`Input::Thread`].
    Thread,
}

impl Input {
    /// The input's name.
    pub fn kind(&self) -> InputKind {
        match self {
            Self::CustomerMessage(_) => InputKind::CustomerMessage,
            Self::OfferTo(_) => InputKind::OfferTo,
            Self::Accept(_) => InputKind::Accept,
            Self::Reject(_) => InputKind::Reject,
            Self::Pick(_) => InputKind::Pick,
            Self::AgentSend { .. } => InputKind::AgentSend,
            Self::End(_) => InputKind::End,
            Self::CloseSession(_) => InputKind::CloseSession,
            Self::Revive(_) => InputKind::Revive,
            Self::Transfer { .. } => InputKind::Transfer,
            Self::Consult { .. } => InputKind::Consult,
            Self::LeaveConsult(_) => InputKind::LeaveConsult,
            Self::Note { .. } => InputKind::Note,
            Self::LinkRecord { .. } => InputKind::LinkRecord,
            Self::Assign { .. } => InputKind::Assign,
            Self::ForceClose { .. } => InputKind::ForceClose,
            Self::CloseOutsideHours => InputKind::CloseOutsideHours,
            Self::Automated { .. } => InputKind::Automated,
            Self::Tick => InputKind::Tick,
            Self::ThreadTaken => InputKind::ThreadTaken,
            Self::ThreadReturned => InputKind::ThreadReturned,
            Self::Thread { .. } => InputKind::Thread,
        }
    }
}
