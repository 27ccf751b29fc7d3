//! The subscription handshake: Meta's `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`.
//!
//! Answer with status 200 and the challenge as the body when [`verify_subscription`] returns it;
//! answer 403 otherwise.
//!
//! ```
//! use messenger_channel::secret::VerifyToken;
//! use messenger_channel::webhook::challenge::verify_subscription;
//!
//! let token = VerifyToken::new("my-verify-token")?;
//! let query = "hub.mode=subscribe&hub.verify_token=my-verify-token&hub.challenge=1158201444";
//! assert_eq!(verify_subscription(query, &token)?, "1158201444");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use hmac::digest::{FixedOutput, Update};
use sha2::Sha256;

use crate::secret::VerifyToken;

/// Longest challenge accepted. Meta sends a decimal integer of about ten digits.
pub const MAX_CHALLENGE_LEN: usize = 128;
/// Longest query string accepted.
pub const MAX_QUERY_LEN: usize = 4096;

/// Why a subscription request was refused. Answer it with 403 (or 400 for a malformed query).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// A required parameter is absent.
    #[error("the query has no {0} parameter")]
    Missing(&'static str),
    /// `hub.mode` is not `subscribe`.
    #[error("hub.mode is not `subscribe`")]
    WrongMode,
    /// The verify token does not match the configured one.
    #[error("hub.verify_token does not match the configured verify token")]
    TokenMismatch,
    /// The challenge is empty.
    #[error("hub.challenge is empty")]
    EmptyChallenge,
    /// The challenge is longer than [`MAX_CHALLENGE_LEN`].
    #[error("hub.challenge has {len} bytes; at most {max} are accepted")]
    ChallengeTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The challenge holds a character other than letters, digits and `-._~`. Meta sends digits;
    /// anything else (control characters, markup) is refused rather than echoed.
    #[error("hub.challenge holds characters other than letters, digits and -._~")]
    ChallengeCharacters,
    /// The query string is longer than [`MAX_QUERY_LEN`].
    #[error("the query string has {len} bytes; at most {max} are accepted")]
    QueryTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A parameter is given more than once.
    #[error("the query repeats the {0} parameter")]
    Repeated(&'static str),
}

/// The three `hub.*` parameters of a subscription request, already percent-decoded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionQuery {
    /// `hub.mode`.
    pub mode: Option<String>,
    /// `hub.verify_token`.
    pub verify_token: Option<String>,
    /// `hub.challenge`.
    pub challenge: Option<String>,
}

impl SubscriptionQuery {
    /// Reads the parameters from a raw query string (without the leading `?`).
    ///
    /// # Errors
    /// [`HandshakeError::QueryTooLong`] or [`HandshakeError::Repeated`].
    pub fn parse(query: &str) -> Result<Self, HandshakeError> {
        if query.len() > MAX_QUERY_LEN {
            return Err(HandshakeError::QueryTooLong {
                len: query.len(),
                max: MAX_QUERY_LEN,
            });
        }
        let mut q = Self::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let (slot, name) = match &*key {
                "hub.mode" => (&mut q.mode, "hub.mode"),
                "hub.verify_token" => (&mut q.verify_token, "hub.verify_token"),
                "hub.challenge" => (&mut q.challenge, "hub.challenge"),
                _ => continue,
            };
            if slot.is_some() {
                return Err(HandshakeError::Repeated(name));
            }
            *slot = Some(value.into_owned());
        }
        Ok(q)
    }

    /// Checks the request; returns the challenge to send back as the response body.
    ///
    /// # Errors
    /// A [`HandshakeError`] naming what is wrong.
    pub fn verify(&self, expected: &VerifyToken) -> Result<&str, HandshakeError> {
        let mode = self
            .mode
            .as_deref()
            .ok_or(HandshakeError::Missing("hub.mode"))?;
        if mode != "subscribe" {
            return Err(HandshakeError::WrongMode);
        }
        let token = self
            .verify_token
            .as_deref()
            .ok_or(HandshakeError::Missing("hub.verify_token"))?;
        if !constant_time_eq(token.as_bytes(), expected.expose()) {
            tracing::warn!("webhook subscription refused: verify token mismatch");
            return Err(HandshakeError::TokenMismatch);
        }
        let challenge = self
            .challenge
            .as_deref()
            .ok_or(HandshakeError::Missing("hub.challenge"))?;
        check_challenge(challenge)?;
        Ok(challenge)
    }
}

/// Checks a subscription query string; returns the challenge to echo with status 200.
///
/// # Errors
/// A [`HandshakeError`]: answer 403.
pub fn verify_subscription(query: &str, expected: &VerifyToken) -> Result<String, HandshakeError> {
    let parsed = SubscriptionQuery::parse(query)?;
    parsed.verify(expected)?;
    Ok(parsed.challenge.unwrap_or_default())
}

fn check_challenge(challenge: &str) -> Result<(), HandshakeError> {
    if challenge.is_empty() {
        return Err(HandshakeError::EmptyChallenge);
    }
    if challenge.len() > MAX_CHALLENGE_LEN {
        return Err(HandshakeError::ChallengeTooLong {
            len: challenge.len(),
            max: MAX_CHALLENGE_LEN,
        });
    }
    if !challenge
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~'))
    {
        return Err(HandshakeError::ChallengeCharacters);
    }
    Ok(())
}

/// Compares two secrets without a data-dependent early exit. Both sides are hashed first, so
/// neither the content nor the length of the expected token leaks through timing.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let digest = |x: &[u8]| {
        let mut h = Sha256::default();
        Update::update(&mut h, x);
        h.finalize_fixed()
    };
    let (da, db) = (digest(a), digest(b));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> VerifyToken {
        VerifyToken::new("tok").unwrap()
    }

    #[test]
    fn accepts_valid_request() {
        let q = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=tok";
        assert_eq!(verify_subscription(q, &token()).unwrap(), "1158201444");
    }

    #[test]
    fn percent_encoded_token_is_decoded() {
        let t = VerifyToken::new("a b&c").unwrap();
        let q = "hub.mode=subscribe&hub.verify_token=a%20b%26c&hub.challenge=42";
        assert_eq!(verify_subscription(q, &t).unwrap(), "42");
    }

    #[test]
    fn rejections() {
        let check = |q: &str| verify_subscription(q, &token()).unwrap_err();
        assert_eq!(
            check("hub.verify_token=tok&hub.challenge=1"),
            HandshakeError::Missing("hub.mode")
        );
        assert_eq!(
            check("hub.mode=unsubscribe&hub.verify_token=tok&hub.challenge=1"),
            HandshakeError::WrongMode
        );
        assert_eq!(
            check("hub.mode=subscribe&hub.verify_token=tik&hub.challenge=1"),
            HandshakeError::TokenMismatch
        );
        assert_eq!(
            check("hub.mode=subscribe&hub.verify_token=tokk&hub.challenge=1"),
            HandshakeError::TokenMismatch
        );
        assert_eq!(
            check("hub.mode=subscribe&hub.challenge=1"),
            HandshakeError::Missing("hub.verify_token")
        );
        assert_eq!(
            check("hub.mode=subscribe&hub.verify_token=tok"),
            HandshakeError::Missing("hub.challenge")
        );
        assert_eq!(
            check("hub.mode=subscribe&hub.verify_token=tok&hub.challenge="),
            HandshakeError::EmptyChallenge
        );
        assert_eq!(
            check("hub.mode=subscribe&hub.verify_token=tok&hub.challenge=a%0Ab"),
            HandshakeError::ChallengeCharacters
        );
        assert_eq!(
            check("hub.mode=subscribe&hub.verify_token=tok&hub.challenge=%3Cscript%3E"),
            HandshakeError::ChallengeCharacters
        );
        let long = format!(
            "hub.mode=subscribe&hub.verify_token=tok&hub.challenge={}",
            "1".repeat(129)
        );
        assert_eq!(
            check(&long),
            HandshakeError::ChallengeTooLong { len: 129, max: 128 }
        );
        assert_eq!(
            check("hub.mode=subscribe&hub.verify_token=tok&hub.verify_token=x&hub.challenge=1"),
            HandshakeError::Repeated("hub.verify_token")
        );
        let huge = "x".repeat(MAX_QUERY_LEN + 1);
        assert!(matches!(check(&huge), HandshakeError::QueryTooLong { .. }));
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
