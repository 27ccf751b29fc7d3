//! The messaging window and message tags, as pure functions of the time passed in.
//!
//! Messenger lets a page answer freely for 24 hours after the customer's last message
//! (`messaging_type: RESPONSE`). After that, a human agent may still answer for up to 7 days
//! with the `HUMAN_AGENT` tag, when the page has that permission (Meta's Human Agent feature,
//! and Omnichannel's "Facebook message tag" setting). Nothing else may be sent.
//!
//! | time since the customer's last message | human agent, tag enabled | human agent, tag disabled | automation |
//! |---|---|---|---|
//! | `0 ≤ t < 24 h` | `RESPONSE`, no tag | `RESPONSE`, no tag | `RESPONSE`, no tag |
//! | `24 h ≤ t < 7 days` | `MESSAGE_TAG` + `HUMAN_AGENT` | denied | denied |
//! | `t ≥ 7 days` | denied | denied | denied |
//!
//! Both windows are half-open: at exactly 24 h the standard window is closed, and at exactly 7
//! days the human-agent window is. A `now` earlier than the last message (clock skew between
//! hosts) counts as `t = 0`. Automated replies are never tagged `HUMAN_AGENT`, and nothing is
//! tagged inside the 24-hour window.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use messenger_channel::window::{check_window, MessageTag, MessagingType, Sender, WindowConfig};
//!
//! let last = SystemTime::UNIX_EPOCH + Duration::from_secs(1_718_000_000);
//! let config = WindowConfig { human_agent_tag: true };
//!
//! let soon = check_window(Some(last), last + Duration::from_secs(3600), Sender::HumanAgent, &config)?;
//! assert_eq!((soon.messaging_type(), soon.tag()), (MessagingType::Response, None));
//!
//! let two_days = last + Duration::from_secs(48 * 3600);
//! let late = check_window(Some(last), two_days, Sender::HumanAgent, &config)?;
//! assert_eq!(late.tag(), Some(MessageTag::HumanAgent));
//! assert!(check_window(Some(last), two_days, Sender::Automation, &config).is_err());
//! # Ok::<(), messenger_channel::window::WindowDenial>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use crate::time::saturating_add;

/// The standard messaging window: 24 hours after the customer's last message.
pub const STANDARD_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// The human-agent window: 7 days after the customer's last message, with `HUMAN_AGENT`.
pub const HUMAN_AGENT_WINDOW: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Who is sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sender {
    /// A person, answering through the agent desk.
    HumanAgent,
    /// A bot, an auto-reply, a notification: anything not typed by a person.
    Automation,
}

/// The page's messaging permissions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowConfig {
    /// Whether the page may use the `HUMAN_AGENT` tag (approved by Meta and turned on by the
    /// administrator). Off by default.
    pub human_agent_tag: bool,
}

/// The Send API's `messaging_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessagingType {
    /// A reply inside the standard window.
    Response,
    /// A proactive update inside the standard window.
    Update,
    /// A tagged message, outside the standard window.
    MessageTag,
}

impl MessagingType {
    /// `RESPONSE`, `UPDATE` or `MESSAGE_TAG`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Response => "RESPONSE",
            Self::Update => "UPDATE",
            Self::MessageTag => "MESSAGE_TAG",
        }
    }
}

impl fmt::Display for MessagingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message tag the platform accepts today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageTag {
    /// `HUMAN_AGENT`: a person answering up to 7 days after the customer's last message.
    HumanAgent,
}

impl MessageTag {
    /// The tag as the Send API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HumanAgent => "HUMAN_AGENT",
        }
    }
}

impl fmt::Display for MessageTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tags the platform retired on 2026-04-27; requests carrying them fail with error 100.
pub const RETIRED_TAGS: [&str; 3] = [
    "ACCOUNT_UPDATE",
    "CONFIRMED_EVENT_UPDATE",
    "POST_PURCHASE_UPDATE",
];

/// A tag that cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagError {
    /// The tag was retired; Meta answers error 100 to any request carrying it.
    #[error(
        "the {tag} message tag was retired on 2026-04-27; outside the 24-hour window only HUMAN_AGENT remains"
    )]
    Retired {
        /// The tag.
        tag: &'static str,
    },
    /// Not a tag the platform knows.
    #[error("`{tag}` is not a Messenger message tag")]
    Unknown {
        /// The text given (shortened).
        tag: String,
    },
}

impl FromStr for MessageTag {
    type Err = TagError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("HUMAN_AGENT") {
            return Ok(Self::HumanAgent);
        }
        if let Some(tag) = RETIRED_TAGS.iter().find(|t| t.eq_ignore_ascii_case(s)) {
            return Err(TagError::Retired { tag });
        }
        Err(TagError::Unknown {
            tag: s.chars().take(64).collect(),
        })
    }
}

/// How a send that the window allows must be marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SendMarking {
    messaging_type: MessagingType,
    tag: Option<MessageTag>,
}

impl SendMarking {
    pub(crate) fn new(messaging_type: MessagingType, tag: Option<MessageTag>) -> Self {
        Self {
            messaging_type,
            tag,
        }
    }

    /// The `messaging_type` to send.
    pub fn messaging_type(&self) -> MessagingType {
        self.messaging_type
    }

    /// The `tag` to send, if any.
    pub fn tag(&self) -> Option<MessageTag> {
        self.tag
    }
}

/// Why the window does not allow a send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WindowDenial {
    /// The customer has never written, so there is no window.
    #[error("the customer has not written to the page, so no messaging window is open")]
    NoCustomerMessage,
    /// More than 24 hours passed, and the sender is automation.
    #[error("the 24-hour window closed {} ago; automated messages can only be sent within 24 hours of the customer's last message", human_duration(*since))]
    WindowClosed {
        /// When the 24-hour window closed.
        closed_at: SystemTime,
        /// How long ago.
        since: Duration,
    },
    /// More than 24 hours passed, and the page may not use the `HUMAN_AGENT` tag.
    #[error("the 24-hour window closed {} ago, and this page is not allowed to use the HUMAN_AGENT tag; wait for the customer to write again", human_duration(*since))]
    HumanAgentTagNotEnabled {
        /// When the 24-hour window closed.
        closed_at: SystemTime,
        /// How long ago.
        since: Duration,
    },
    /// More than 7 days passed.
    #[error("the 7-day human-agent window closed {} ago; wait for the customer to write again", human_duration(*since))]
    HumanAgentWindowClosed {
        /// When the 7-day window closed.
        closed_at: SystemTime,
        /// How long ago.
        since: Duration,
    },
}

impl WindowDenial {
    /// A stable machine code: `no_customer_message`, `window_closed`,
    /// `human_agent_tag_not_enabled`, `human_agent_window_closed`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoCustomerMessage => "no_customer_message",
            Self::WindowClosed { .. } => "window_closed",
            Self::HumanAgentTagNotEnabled { .. } => "human_agent_tag_not_enabled",
            Self::HumanAgentWindowClosed { .. } => "human_agent_window_closed",
        }
    }
}

/// `3 d 4 h`, `5 h 12 min`, `40 s`.
fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (days, hours, mins) = (secs / 86_400, secs % 86_400 / 3600, secs % 3600 / 60);
    if days > 0 {
        format!("{days} d {hours} h")
    } else if hours > 0 {
        format!("{hours} h {mins} min")
    } else if mins > 0 {
        format!("{mins} min")
    } else {
        format!("{secs} s")
    }
}

/// Decides whether a message may be sent now, and how it must be marked.
///
/// `last_customer_message` is the time of the customer's last inbound message (not an echo,
/// not a delivery or read receipt).
///
/// # Errors
/// A [`WindowDenial`] saying when the window closed and why.
pub fn check_window(
    last_customer_message: Option<SystemTime>,
    now: SystemTime,
    sender: Sender,
    config: &WindowConfig,
) -> Result<SendMarking, WindowDenial> {
    let last = last_customer_message.ok_or(WindowDenial::NoCustomerMessage)?;
    let elapsed = now.duration_since(last).unwrap_or(Duration::ZERO);
    if elapsed < STANDARD_WINDOW {
        return Ok(SendMarking {
            messaging_type: MessagingType::Response,
            tag: None,
        });
    }
    let standard_closed = saturating_add(last, STANDARD_WINDOW);
    let since_standard = elapsed.saturating_sub(STANDARD_WINDOW);
    match sender {
        Sender::Automation => Err(WindowDenial::WindowClosed {
            closed_at: standard_closed,
            since: since_standard,
        }),
        Sender::HumanAgent if !config.human_agent_tag => {
            Err(WindowDenial::HumanAgentTagNotEnabled {
                closed_at: standard_closed,
                since: since_standard,
            })
        }
        Sender::HumanAgent if elapsed >= HUMAN_AGENT_WINDOW => {
            Err(WindowDenial::HumanAgentWindowClosed {
                closed_at: saturating_add(last, HUMAN_AGENT_WINDOW),
                since: elapsed.saturating_sub(HUMAN_AGENT_WINDOW),
            })
        }
        Sender::HumanAgent => Ok(SendMarking {
            messaging_type: MessagingType::MessageTag,
            tag: Some(MessageTag::HumanAgent),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;
    const MS: Duration = Duration::from_millis(1);

    fn at(d: Duration) -> SystemTime {
        T0 + Duration::from_secs(1_700_000_000) + d
    }

    fn check(elapsed: Duration, sender: Sender, tag: bool) -> Result<SendMarking, WindowDenial> {
        check_window(
            Some(at(Duration::ZERO)),
            at(elapsed),
            sender,
            &WindowConfig {
                human_agent_tag: tag,
            },
        )
    }

    fn response() -> SendMarking {
        SendMarking {
            messaging_type: MessagingType::Response,
            tag: None,
        }
    }

    fn human() -> SendMarking {
        SendMarking {
            messaging_type: MessagingType::MessageTag,
            tag: Some(MessageTag::HumanAgent),
        }
    }

    #[test]
    fn boundaries_table() {
        use Sender::{Automation, HumanAgent};
        let h24 = STANDARD_WINDOW;
        let d7 = HUMAN_AGENT_WINDOW;
        // Just under each boundary, one millisecond before it.
        let (h24_ms, d7_ms) = (
            Duration::from_millis(86_399_999),
            Duration::from_millis(604_799_999),
        );
        let cases: &[(Duration, Sender, bool, Result<SendMarking, &str>)] = &[
            (Duration::ZERO, HumanAgent, true, Ok(response())),
            (Duration::ZERO, Automation, false, Ok(response())),
            (h24_ms, HumanAgent, true, Ok(response())),
            (h24_ms, Automation, true, Ok(response())),
            (h24_ms, HumanAgent, false, Ok(response())),
            (h24, HumanAgent, true, Ok(human())),
            (h24, HumanAgent, false, Err("human_agent_tag_not_enabled")),
            (h24, Automation, true, Err("window_closed")),
            (h24 + MS, Automation, true, Err("window_closed")),
            (d7_ms, HumanAgent, true, Ok(human())),
            (d7_ms, Automation, true, Err("window_closed")),
            (d7, HumanAgent, true, Err("human_agent_window_closed")),
            (d7, HumanAgent, false, Err("human_agent_tag_not_enabled")),
            (d7 + MS, HumanAgent, true, Err("human_agent_window_closed")),
        ];
        for (elapsed, sender, tag, expected) in cases {
            let got = check(*elapsed, *sender, *tag).map_err(|d| d.code());
            assert_eq!(&got, expected, "{elapsed:?} {sender:?} tag={tag}");
        }
    }

    #[test]
    fn denials_say_when_and_why() {
        let err = check(
            STANDARD_WINDOW + Duration::from_secs(2 * 3600 + 300),
            Sender::Automation,
            true,
        )
        .unwrap_err();
        assert_eq!(
            err,
            WindowDenial::WindowClosed {
                closed_at: at(STANDARD_WINDOW),
                since: Duration::from_secs(2 * 3600 + 300)
            }
        );
        assert!(err.to_string().contains("closed 2 h 5 min ago"), "{err}");
        let err = check(
            HUMAN_AGENT_WINDOW + Duration::from_secs(86_400),
            Sender::HumanAgent,
            true,
        )
        .unwrap_err();
        assert_eq!(
            err,
            WindowDenial::HumanAgentWindowClosed {
                closed_at: at(HUMAN_AGENT_WINDOW),
                since: Duration::from_secs(86_400)
            }
        );
        assert!(err.to_string().contains("7-day"), "{err}");
    }

    #[test]
    fn no_message_and_clock_skew() {
        let config = WindowConfig::default();
        assert_eq!(
            check_window(None, at(Duration::ZERO), Sender::HumanAgent, &config),
            Err(WindowDenial::NoCustomerMessage)
        );
        // `now` before the last message: treated as just now.
        assert_eq!(
            check_window(
                Some(at(Duration::from_secs(60))),
                at(Duration::ZERO),
                Sender::Automation,
                &config
            ),
            Ok(response())
        );
    }

    #[test]
    fn automation_is_never_tagged_human_agent() {
        for hours in 0..24 * 8 {
            let r = check(Duration::from_secs(hours * 3600), Sender::Automation, true);
            assert!(r.map_or(true, |m| m.tag().is_none()), "hour {hours}");
        }
    }

    #[test]
    fn tags() {
        assert_eq!(
            "HUMAN_AGENT".parse::<MessageTag>(),
            Ok(MessageTag::HumanAgent)
        );
        assert_eq!(MessageTag::HumanAgent.as_str(), "HUMAN_AGENT");
        for retired in RETIRED_TAGS {
            let err = retired.parse::<MessageTag>().unwrap_err();
            assert_eq!(err, TagError::Retired { tag: retired });
            assert!(err.to_string().contains("retired on 2026-04-27"));
        }
        assert_eq!(
            "SHIPPING_UPDATE".parse::<MessageTag>(),
            Err(TagError::Unknown {
                tag: "SHIPPING_UPDATE".into()
            })
        );
        assert_eq!(MessagingType::MessageTag.as_str(), "MESSAGE_TAG");
    }
}
