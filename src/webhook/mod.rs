//! Webhook ingest: signature verification, the subscription handshake, and typed events.
//!
//! ```
//! use messenger_channel::secret::AppSecret;
//! use messenger_channel::webhook::{signature::sign_sha256, EventKind, Webhook};
//!
//! let body = br#"{"object":"page","entry":[{"id":"PAGE","time":1,"messaging":[
//!   {"sender":{"id":"PSID"},"recipient":{"id":"PAGE"},"timestamp":1718000000000,
//!    "message":{"mid":"m_1","text":"caf\u00e9 at 10?"}}]}]}"#;
//! let header = sign_sha256(&AppSecret::new("secret")?, body);
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-hub-signature-256", header.parse()?);
//!
//! let webhook = Webhook::new(&AppSecret::new("secret")?);
//! let batch = webhook.verify_and_parse(&headers, body)?;
//! for event in batch.events() {
//!     if let EventKind::Message(m) = &event.kind {
//!         assert_eq!(m.text.unwrap().decode(), "café at 10?");
//!         assert_eq!(event.sender.as_ref().unwrap().as_str(), "PSID");
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod body;
pub mod challenge;
mod event;
mod json;
mod parse;
pub mod signature;

pub use body::{SignedBody, WebhookBody};
pub use event::{
    AccountLinking, AppRoles, Attachment, AttachmentKind, Coordinates, Delivery, Echo, Event,
    EventKind, Message, MessageEdit, Optin, PolicyEnforcement, Postback, Reaction, ReactionAction,
    Read, Referral, ThreadControl, Unknown,
};
pub use json::{JsonStr, RawJson};
pub use parse::{
    Batch, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_DEPTH, ItemError, ItemProblem, Limits,
    MAX_DEPTH_CEILING, ParseError, parse_unverified, parse_with_limits,
};

use crate::secret::AppSecret;
use signature::{SignatureError, SignatureVerifier};

/// A webhook request that was refused: not authentic, or not a webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The signature is missing, malformed or wrong. Nothing was parsed.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The body is authentic but not a usable webhook (or too large to check).
    #[error(transparent)]
    Parse(#[from] ParseError),
}

impl WebhookError {
    /// The HTTP status to answer with: 401 for a missing signature, 403 for a wrong one, 413
    /// for a body over the size limit, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Self::Signature(SignatureError::Missing) => 401,
            Self::Signature(_) => 403,
            Self::Parse(ParseError::TooLarge { .. }) => 413,
            Self::Parse(_) => 400,
        }
    }
}

/// A webhook receiver: the signature check and the parser's limits, ready to take requests.
#[derive(Debug, Clone)]
pub struct Webhook {
    verifier: SignatureVerifier,
    limits: Limits,
}

impl Webhook {
    /// A receiver for one app secret, with default [`Limits`].
    pub fn new(secret: &AppSecret) -> Self {
        Self::with_verifier(SignatureVerifier::new(secret))
    }

    /// A receiver with a configured verifier (several secrets, legacy SHA-1).
    pub fn with_verifier(verifier: SignatureVerifier) -> Self {
        Self {
            verifier,
            limits: Limits::default(),
        }
    }

    /// Replaces the parser's limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The parser's limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The signature verifier.
    pub fn verifier(&self) -> &SignatureVerifier {
        &self.verifier
    }

    /// Checks the size, then the signature over the raw bytes, then parses.
    ///
    /// # Errors
    /// [`WebhookError::Signature`] before anything is parsed; [`WebhookError::Parse`] when
    /// the body is not a webhook. Malformed items are `Err` items in the [`Batch`].
    pub fn verify_and_parse<'a>(
        &self,
        headers: &http::HeaderMap,
        body: &'a [u8],
    ) -> Result<Batch<'a>, WebhookError> {
        self.run(body, || self.verifier.verify(headers, body))
    }

    /// As [`Webhook::verify_and_parse`], with the signature header's value given directly.
    ///
    /// # Errors
    /// As [`Webhook::verify_and_parse`].
    pub fn verify_and_parse_value<'a>(
        &self,
        signature: &str,
        body: &'a [u8],
    ) -> Result<Batch<'a>, WebhookError> {
        self.run(body, || self.verifier.verify_header_value(signature, body))
    }

    fn run<'a, F>(&self, body: &'a [u8], verify: F) -> Result<Batch<'a>, WebhookError>
    where
        F: FnOnce() -> Result<signature::Algorithm, SignatureError>,
    {
        let span = tracing::debug_span!(
            "webhook",
            body_len = body.len(),
            events = tracing::field::Empty,
            malformed = tracing::field::Empty
        );
        let _guard = span.enter();
        if body.len() > self.limits.max_body_bytes {
            let error = ParseError::TooLarge {
                size: body.len(),
                max: self.limits.max_body_bytes,
            };
            tracing::warn!(%error, "webhook refused");
            return Err(error.into());
        }
        verify().inspect_err(|error| tracing::warn!(%error, "webhook refused"))?;
        let batch = parse_with_limits(body, &self.limits)
            .inspect_err(|error| tracing::warn!(%error, "webhook refused"))?;
        let malformed = batch.errors().count();
        span.record("events", batch.len() - malformed);
        span.record("malformed", malformed);
        for error in batch.errors() {
            tracing::warn!(%error, "webhook item skipped");
        }
        Ok(batch)
    }
}
