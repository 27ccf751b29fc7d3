//! Graph API errors as data, and everything else a send can fail with.

use std::fmt;
use std::time::Duration;

use super::message::BuildError;

/// The class of a failure: what a host should do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Too many calls (codes 4, 17, 32, 613, 80001, 80006): back off and retry.
    RateLimited,
    /// The access token is invalid or expired (190): re-authenticate; never retry as is.
    TokenInvalid,
    /// A permission is missing (10, 200–299), or the page is restricted.
    Permission,
    /// Outside the messaging window (10 / 2018278): wait for the customer to write.
    OutsideWindow,
    /// The person cannot be messaged now (551, 1545041, 2018108): blocked or unavailable.
    RecipientUnavailable,
    /// The request is invalid (100 and its subcodes, including retired tags).
    InvalidParameter,
    /// A temporary or server failure (1, 2, 1200, HTTP 5xx): retry with backoff.
    Temporary,
    /// The network failed (timeout, connection).
    Transport,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// `rate_limited`, `token_invalid`, `permission`, `outside_window`,
    /// `recipient_unavailable`, `invalid_parameter`, `temporary`, `transport` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimited => "rate_limited",
            Self::TokenInvalid => "token_invalid",
            Self::Permission => "permission",
            Self::OutsideWindow => "outside_window",
            Self::RecipientUnavailable => "recipient_unavailable",
            Self::InvalidParameter => "invalid_parameter",
            Self::Temporary => "temporary",
            Self::Transport => "transport",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answered by the Graph API: `{"error":{"message","type","code","error_subcode","fbtrace_id"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    /// The HTTP status.
    pub status: u16,
    /// `code`.
    pub code: i64,
    /// `error_subcode`.
    pub subcode: Option<i64>,
    /// `message`, as Graph wrote it.
    pub message: String,
    /// `type` (`OAuthException`…).
    pub error_type: Option<String>,
    /// `fbtrace_id`: quote it in support tickets.
    pub fbtrace_id: Option<String>,
    /// How long Meta says to wait, when it says (`X-Business-Use-Case-Usage`).
    pub retry_after: Option<Duration>,
}

/// The `error` object of a Graph response, as sent.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(crate) struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(rename = "type", default)]
    error_type: Option<String>,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    fbtrace_id: Option<String>,
}

impl ErrorBody {
    pub(crate) fn into_graph(self, status: u16) -> GraphError {
        GraphError {
            status,
            code: self.code.unwrap_or(0),
            subcode: self.error_subcode,
            message: self
                .message
                .unwrap_or_default()
                .chars()
                .take(1000)
                .collect(),
            error_type: self.error_type,
            fbtrace_id: self.fbtrace_id,
            retry_after: None,
        }
    }
}

/// Subcodes of code 10 that mean "outside the messaging window".
const OUTSIDE_WINDOW_SUBCODES: [i64; 2] = [2_018_278, 2_534_022];

impl GraphError {
    /// Parses a Graph error body. `None` when the body holds no `error` object.
    pub fn from_body(status: u16, body: &[u8]) -> Option<Self> {
        Self::from_value(status, &serde_json::from_slice(body).ok()?)
    }

    /// Reads the `error` object of a parsed body. `None` when there is none.
    pub fn from_value(status: u16, body: &serde_json::Value) -> Option<Self> {
        let e: ErrorBody = serde_json::from_value(body.get("error")?.clone()).ok()?;
        Some(e.into_graph(status))
    }

    /// The class of the error.
    pub fn kind(&self) -> ErrorKind {
        let sub = self.subcode;
        match self.code {
            4 | 17 | 32 | 613 | 80_001 | 80_006 => ErrorKind::RateLimited,
            190 => ErrorKind::TokenInvalid,
            10 if sub.is_some_and(|s| OUTSIDE_WINDOW_SUBCODES.contains(&s)) => {
                ErrorKind::OutsideWindow
            }
            10 if sub == Some(2_018_108) => ErrorKind::RecipientUnavailable,
            551 => ErrorKind::RecipientUnavailable,
            _ if sub == Some(1_545_041) => ErrorKind::RecipientUnavailable,
            10 | 200..=299 => ErrorKind::Permission,
            100 => ErrorKind::InvalidParameter,
            1 if matches!(sub, Some(99 | 1_357_046)) => ErrorKind::Other,
            1 | 2 | 1200 => ErrorKind::Temporary,
            _ if self.status >= 500 => ErrorKind::Temporary,
            _ => ErrorKind::Other,
        }
    }

    /// Whether sending again later can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::RateLimited | ErrorKind::Temporary)
    }
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Graph API error {}", self.code)?;
        if let Some(sub) = self.subcode {
            write!(f, "/{sub}")?;
        }
        write!(
            f,
            " ({}, HTTP {}): {}",
            self.kind(),
            self.status,
            self.message
        )?;
        if let Some(trace) = &self.fbtrace_id {
            write!(f, " [fbtrace_id {trace}]")?;
        }
        Ok(())
    }
}

/// How a request failed on the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// No connection could be made: the request was not sent.
    Connect,
    /// The request timed out.
    Timeout,
    /// Another failure while sending or receiving.
    Other,
}

/// Why a send (or another Graph call) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Refused before any network call.
    #[error("the message cannot be sent: {0}")]
    Invalid(#[from] BuildError),
    /// The Graph API answered with an error.
    #[error("{0}")]
    Graph(GraphError),
    /// The network failed. `outcome_unknown` is true when the request may have reached Meta
    /// (a timeout after it was written): sending again may deliver it twice.
    #[error("network failure ({kind:?}{}): {message}", if *outcome_unknown { ", the request may have been delivered" } else { "" })]
    Transport {
        /// What failed.
        kind: TransportKind,
        /// Whether the request may have been processed.
        outcome_unknown: bool,
        /// A description, without the URL (which may carry a token).
        message: String,
    },
    /// No access token is known for the page.
    #[error("no page access token for page {page}")]
    NoToken {
        /// The page.
        page: String,
    },
    /// A download went past its size cap; it was aborted there.
    #[error("the download exceeds the {max}-byte cap")]
    TooLarge {
        /// The cap.
        max: u64,
    },
    /// The server answered something that is neither a result nor a Graph error.
    #[error("unexpected response (HTTP {status}): {snippet}")]
    UnexpectedResponse {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        snippet: String,
    },
}

impl SendError {
    /// The class of the failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::InvalidParameter,
            Self::Graph(g) => g.kind(),
            Self::Transport { .. } => ErrorKind::Transport,
            Self::NoToken { .. } => ErrorKind::TokenInvalid,
            Self::TooLarge { .. } | Self::UnexpectedResponse { .. } => ErrorKind::Other,
        }
    }

    /// Whether trying again can help: rate limits, temporary failures, and network failures
    /// where the request certainly did not arrive. A network failure with an unknown outcome is
    /// not retryable by default (Graph has no idempotency key); see
    /// [`super::RetryPolicy::retry_unknown_outcome`].
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Graph(g) => g.is_retryable(),
            Self::Transport {
                outcome_unknown, ..
            } => !outcome_unknown,
            Self::UnexpectedResponse { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// The Graph error code, if Graph answered.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Graph(g) => Some(g.code),
            _ => None,
        }
    }

    /// The Graph error subcode, if any.
    pub fn subcode(&self) -> Option<i64> {
        match self {
            Self::Graph(g) => g.subcode,
            _ => None,
        }
    }

    /// The `fbtrace_id` for support tickets, if Graph gave one.
    pub fn fbtrace_id(&self) -> Option<&str> {
        match self {
            Self::Graph(g) => g.fbtrace_id.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, code: i64, sub: Option<i64>) -> GraphError {
        GraphError {
            status,
            code,
            subcode: sub,
            message: String::new(),
            error_type: None,
            fbtrace_id: None,
            retry_after: None,
        }
    }

    #[test]
    fn classification() {
        let cases = [
            (400, 4, None, ErrorKind::RateLimited, true),
            (400, 17, None, ErrorKind::RateLimited, true),
            (400, 32, None, ErrorKind::RateLimited, true),
            (400, 613, None, ErrorKind::RateLimited, true),
            (400, 80_006, None, ErrorKind::RateLimited, true),
            (400, 190, Some(463), ErrorKind::TokenInvalid, false),
            (400, 190, Some(460), ErrorKind::TokenInvalid, false),
            (400, 10, Some(2_018_278), ErrorKind::OutsideWindow, false),
            (
                400,
                10,
                Some(2_018_108),
                ErrorKind::RecipientUnavailable,
                false,
            ),
            (400, 10, None, ErrorKind::Permission, false),
            (400, 10, Some(1_893_063), ErrorKind::Permission, false),
            (403, 200, Some(2_018_028), ErrorKind::Permission, false),
            (
                400,
                200,
                Some(1_545_041),
                ErrorKind::RecipientUnavailable,
                false,
            ),
            (
                400,
                551,
                Some(1_545_041),
                ErrorKind::RecipientUnavailable,
                false,
            ),
            (400, 551, None, ErrorKind::RecipientUnavailable, false),
            (400, 230, None, ErrorKind::Permission, false),
            (
                400,
                100,
                Some(2_018_001),
                ErrorKind::InvalidParameter,
                false,
            ),
            (
                400,
                100,
                Some(1_893_061),
                ErrorKind::InvalidParameter,
                false,
            ),
            (500, 1, None, ErrorKind::Temporary, true),
            (400, 1, Some(99), ErrorKind::Other, false),
            (500, 2, None, ErrorKind::Temporary, true),
            (400, 1200, None, ErrorKind::Temporary, true),
            (503, 0, None, ErrorKind::Temporary, true),
            (400, 12_345, None, ErrorKind::Other, false),
        ];
        for (status, code, sub, kind, retry) in cases {
            let e = err(status, code, sub);
            assert_eq!(
                (e.kind(), e.is_retryable()),
                (kind, retry),
                "{code}/{sub:?}"
            );
        }
    }

    #[test]
    fn parses_graph_bodies() {
        let body = br#"{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","code":10,"error_subcode":2018278,"fbtrace_id":"AbCdEf123"}}"#;
        let e = GraphError::from_body(400, body).unwrap();
        assert_eq!(e.kind(), ErrorKind::OutsideWindow);
        assert_eq!(e.fbtrace_id.as_deref(), Some("AbCdEf123"));
        assert_eq!(
            e.to_string(),
            "Graph API error 10/2018278 (outside_window, HTTP 400): (#10) This message is sent outside of allowed window. [fbtrace_id AbCdEf123]"
        );
        assert!(GraphError::from_body(502, b"<html>Bad gateway</html>").is_none());
        assert!(GraphError::from_body(200, br#"{"recipient_id":"1","message_id":"m"}"#).is_none());
    }

    #[test]
    fn transport_outcome() {
        let unsent = SendError::Transport {
            kind: TransportKind::Connect,
            outcome_unknown: false,
            message: "refused".into(),
        };
        assert!(unsent.is_retryable());
        let unknown = SendError::Transport {
            kind: TransportKind::Timeout,
            outcome_unknown: true,
            message: "timed out".into(),
        };
        assert!(!unknown.is_retryable());
        assert!(unknown.to_string().contains("may have been delivered"));
        assert_eq!(unknown.kind(), ErrorKind::Transport);
    }
}
