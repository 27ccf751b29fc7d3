//! What can go wrong in the engine, and the HTTP status a webhook answer takes from it.

use crate::attachment::Violation;
use crate::conversation::TransitionError;
use crate::ids::ConversationId;
use crate::send::SendError;
use crate::store::StoreError;
use crate::webhook::WebhookError;
use crate::window::WindowDenial;

use super::Undelivered;

/// What went wrong in the engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The request is not an authentic webhook.
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// The input is not possible in the conversation's state.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A send failed (the state change was saved; the transcript records the failure).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The messaging window does not allow the send. Nothing was sent.
    #[error(transparent)]
    Window(#[from] WindowDenial),
    /// The agent's message was committed (it is in the transcript) but cannot be delivered;
    /// the transcript shows why.
    #[error(transparent)]
    Undelivered(#[from] Undelivered),
    /// The attachment policy refuses the agent's file. Nothing was sent.
    #[error("{0}")]
    Attachment(Violation),
    /// No such conversation.
    #[error("no conversation {0}")]
    NotFound(ConversationId),
    /// The store kept reporting conflicts.
    #[error("the conversation kept changing concurrently; gave up after {0} attempts")]
    Contention(u32),
    /// The agent may not pick the conversation (Pick mode, [`Engine::pick`](super::Engine::pick)).
    #[error(transparent)]
    Pick(#[from] crate::routing::PickRefusal),
    /// Files need a media store, and none is configured.
    #[error("sending files needs a media store")]
    NoMediaStore,
    /// An agent's reaction names no message of the customer's in the conversation.
    #[error("no message {0} of the customer in this conversation")]
    UnknownMessage(String),
    /// A transfer names a queue the engine's routing does not have
    /// ([`Engine::transfer_to_queue`](super::Engine::transfer_to_queue)).
    #[error("no queue {0}")]
    UnknownQueue(crate::ids::QueueId),
    /// A customer record id the engine does not accept
    /// ([`Engine::link_customer_record`](super::Engine::link_customer_record)): why.
    #[error("the customer record id is not accepted: {0}")]
    InvalidCustomerRecord(&'static str),
    /// An internal note (or a transfer's note) longer than
    /// [`NOTE_MAX_CHARS`](super::NOTE_MAX_CHARS): nothing is changed.
    #[error("a note holds at most {max} characters (this one has {chars})")]
    NoteTooLong {
        /// The note's length, in characters.
        chars: usize,
        /// The most it may have.
        max: usize,
    },
}

impl EngineError {
    /// The HTTP status to answer a webhook POST with when [`Engine::handle_webhook`](super::Engine::handle_webhook) or
    /// [`Engine::receive`](super::Engine::receive) fails: the webhook's own 4xx for a request that is not an authentic
    /// webhook, 503 when the events could not be recorded (Meta delivers the body again), 500
    /// otherwise.
    pub fn status(&self) -> u16 {
        match self {
            Self::Webhook(e) => e.status(),
            Self::Store(_) | Self::Contention(_) => 503,
            _ => 500,
        }
    }
}
