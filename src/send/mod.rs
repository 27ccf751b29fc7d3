//! The outbound half of the channel: the [`SendApi`] trait (what the engine needs: send and
//! download) and its extension [`PageApi`] (sender actions, uploads, thread control,
//! profiles), message builders, typed Graph errors and retries, and (feature `graph`, on by
//! default) [`GraphClient`], a Graph API client on `reqwest` that implements both.
//!
//! Hosts depend on `SendApi` (an object-safe `async-trait`), so a test double, a wrapper that
//! records or throttles, or another transport can stand in for the real client with two
//! methods.
//!
//! ```no_run
//! # #[cfg(feature = "graph")]
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use messenger_channel::ids::PageId;
//! use messenger_channel::secret::{AppSecret, PageAccessToken};
//! use messenger_channel::send::{GraphClient, Message, SendApi, SendRequest};
//!
//! let client = GraphClient::builder(PageAccessToken::new(std::env::var("PAGE_ACCESS_TOKEN")?)?)
//!     .app_secret(AppSecret::new(std::env::var("APP_SECRET")?)?)
//!     .build()?;
//! let sent = client
//!     .send(&PageId::from("104987654321098"), &SendRequest::new("24012345678901234", Message::text("Hello!")?))
//!     .await?;
//! println!("sent {}", sent.message_id);
//! # Ok(())
//! # }
//! ```

mod error;
#[cfg(feature = "graph")]
mod graph;
mod message;
mod retry;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

pub use error::{ErrorKind, GraphError, SendError, TransportKind};
#[cfg(feature = "graph")]
pub use graph::{DEFAULT_BASE_URL, DEFAULT_GRAPH_VERSION, GraphClient, GraphClientBuilder};
pub use message::{
    ATTACHMENT_MAX_BYTES, AttachmentSource, BUTTON_TEMPLATE_TEXT_MAX_CHARS, BUTTON_TITLE_MAX_CHARS,
    BUTTONS_MAX, BuildError, Button, ELEMENT_TEXT_MAX_CHARS, Element, GENERIC_ELEMENTS_MAX,
    METADATA_MAX_CHARS, MediaKind, Message, NotificationType, PAYLOAD_MAX_CHARS, QUICK_REPLIES_MAX,
    QUICK_REPLY_TITLE_MAX_CHARS, QuickReply, REACTION_MAX_CHARS, SendRequest, SenderAction,
    TEXT_MAX_CHARS, Upload, check_reaction, reaction_body,
};
pub use retry::{RetryDecision, RetryPolicy};

use crate::ids::{AppId, MessageId, PageId, UserId};
use crate::secret::PageAccessToken;

/// What the Send API answered for a sent message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResponse {
    /// `recipient_id`: the customer's page-scoped id.
    pub recipient_id: Option<UserId<'static>>,
    /// `message_id`: the `mid` the echo will carry.
    pub message_id: MessageId<'static>,
    /// `attachment_id`, when an attachment was sent as reusable.
    pub attachment_id: Option<String>,
}

/// A customer's public profile, for the agent's panel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserProfile {
    /// `first_name`.
    pub first_name: Option<String>,
    /// `last_name`.
    pub last_name: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// `profile_pic`: a URL that expires.
    pub profile_pic: Option<String>,
}

impl UserProfile {
    /// The name to show: `name`, or first and last name, or `None`.
    pub fn display_name(&self) -> Option<String> {
        self.name.clone().or_else(|| {
            match (self.first_name.as_deref(), self.last_name.as_deref()) {
                (Some(f), Some(l)) => Some(format!("{f} {l}")),
                (Some(n), None) | (None, Some(n)) => Some(n.to_owned()),
                (None, None) => None,
            }
        })
    }
}

/// Downloaded media.
#[derive(Clone, PartialEq, Eq)]
pub struct Media {
    /// The content.
    pub bytes: Bytes,
    /// The `Content-Type` the server gave.
    pub content_type: Option<String>,
    /// The file name from `Content-Disposition`, if any.
    pub file_name: Option<String>,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media")
            .field("bytes", &self.bytes.len())
            .field("content_type", &self.content_type)
            .field("file_name", &self.file_name)
            .finish()
    }
}

/// What the engine needs from the Messenger Platform: sending a message, and fetching a
/// customer's file.
///
/// Every method is one Graph call (with the client's retries); errors are [`SendError`]s that
/// say whether a retry can help. The platform's other calls (typing indicators, uploads,
/// thread control, profiles) are in [`PageApi`].
#[async_trait::async_trait]
pub trait SendApi: Send + Sync {
    /// Sends a message (uploading its file first-hand when it carries one) to
    /// [`SendRequest::recipient`]; returns the platform's id for it.
    async fn send(
        &self,
        page: &PageId<'_>,
        request: &SendRequest,
    ) -> Result<SendResponse, SendError>;

    /// Downloads a webhook attachment URL, aborting as soon as `max_bytes` is passed.
    async fn download(&self, url: &str, max_bytes: u64) -> Result<Media, SendError>;

    /// Reacts to the message `message_id` with `reaction` (an emoji), or removes the page's
    /// reaction to it (`None`): `sender_action` `react` or `unreact` ([`reaction_body`]).
    /// Reacting again with another emoji replaces the reaction.
    async fn react(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
        message_id: &MessageId<'_>,
        reaction: Option<&str>,
    ) -> Result<(), SendError>;
}

/// The page's other Messenger Platform calls, beyond what the engine needs ([`SendApi`]):
/// sender actions, reusable uploads, thread control (the handover protocol) and user
/// profiles. [`GraphClient`] implements it; the engine never calls it, so a test double of
/// [`SendApi`] need not.
#[async_trait::async_trait]
pub trait PageApi: SendApi {
    /// Shows or hides the typing indicator, or marks the thread as seen.
    async fn sender_action(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
        action: SenderAction,
    ) -> Result<(), SendError>;

    /// Uploads a reusable attachment (Attachment Upload API); returns its `attachment_id`.
    async fn upload_attachment(
        &self,
        page: &PageId<'_>,
        kind: MediaKind,
        source: &AttachmentSource,
    ) -> Result<String, SendError>;

    /// Passes thread control to another app (Conversation Routing).
    async fn pass_thread_control(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
        target_app: AppId,
        metadata: Option<&str>,
    ) -> Result<(), SendError>;

    /// Takes thread control.
    async fn take_thread_control(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
        metadata: Option<&str>,
    ) -> Result<(), SendError>;

    /// Asks the thread owner for control.
    async fn request_thread_control(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
        metadata: Option<&str>,
    ) -> Result<(), SendError>;

    /// Releases thread control.
    async fn release_thread_control(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
    ) -> Result<(), SendError>;

    /// The app that owns the thread, if any.
    async fn thread_owner(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
    ) -> Result<Option<AppId>, SendError>;

    /// The customer's name and picture.
    async fn user_profile(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
    ) -> Result<UserProfile, SendError>;
}

macro_rules! forward {
    ($($ty:ty),*) => {$(
        #[async_trait::async_trait]
        impl<T: SendApi + ?Sized> SendApi for $ty {
            async fn send(&self, page: &PageId<'_>, request: &SendRequest) -> Result<SendResponse, SendError> {
                (**self).send(page, request).await
            }
            async fn download(&self, url: &str, max_bytes: u64) -> Result<Media, SendError> {
                (**self).download(url, max_bytes).await
            }
            async fn react(&self, page: &PageId<'_>, user: &UserId<'_>, message_id: &MessageId<'_>, reaction: Option<&str>) -> Result<(), SendError> {
                (**self).react(page, user, message_id, reaction).await
            }
        }

        #[async_trait::async_trait]
        impl<T: PageApi + ?Sized> PageApi for $ty {
            async fn sender_action(&self, page: &PageId<'_>, user: &UserId<'_>, action: SenderAction) -> Result<(), SendError> {
                (**self).sender_action(page, user, action).await
            }
            async fn upload_attachment(&self, page: &PageId<'_>, kind: MediaKind, source: &AttachmentSource) -> Result<String, SendError> {
                (**self).upload_attachment(page, kind, source).await
            }
            async fn pass_thread_control(&self, page: &PageId<'_>, user: &UserId<'_>, target_app: AppId, metadata: Option<&str>) -> Result<(), SendError> {
                (**self).pass_thread_control(page, user, target_app, metadata).await
            }
            async fn take_thread_control(&self, page: &PageId<'_>, user: &UserId<'_>, metadata: Option<&str>) -> Result<(), SendError> {
                (**self).take_thread_control(page, user, metadata).await
            }
            async fn request_thread_control(&self, page: &PageId<'_>, user: &UserId<'_>, metadata: Option<&str>) -> Result<(), SendError> {
                (**self).request_thread_control(page, user, metadata).await
            }
            async fn release_thread_control(&self, page: &PageId<'_>, user: &UserId<'_>) -> Result<(), SendError> {
                (**self).release_thread_control(page, user).await
            }
            async fn thread_owner(&self, page: &PageId<'_>, user: &UserId<'_>) -> Result<Option<AppId>, SendError> {
                (**self).thread_owner(page, user).await
            }
            async fn user_profile(&self, page: &PageId<'_>, user: &UserId<'_>) -> Result<UserProfile, SendError> {
                (**self).user_profile(page, user).await
            }
        }
    )*};
}

forward!(Arc<T>, Box<T>, &T);

/// Where the client finds a page's access token: one token for every page, a map, or a
/// host's own store (a vault, a database).
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    /// The token for `page`, or `None` when the page is unknown.
    async fn token(&self, page: &PageId<'_>) -> Option<PageAccessToken>;
}

#[async_trait::async_trait]
impl TokenSource for PageAccessToken {
    async fn token(&self, _page: &PageId<'_>) -> Option<PageAccessToken> {
        Some(self.clone())
    }
}

#[async_trait::async_trait]
impl<S> TokenSource for HashMap<PageId<'static>, PageAccessToken, S>
where
    S: std::hash::BuildHasher + Send + Sync,
{
    async fn token(&self, page: &PageId<'_>) -> Option<PageAccessToken> {
        self.get(page.as_str()).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_obj_safe!(SendApi, PageApi, TokenSource);

    #[test]
    fn profile_names() {
        let p = UserProfile {
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            ..UserProfile::default()
        };
        assert_eq!(p.display_name().as_deref(), Some("Ada Lovelace"));
        assert_eq!(UserProfile::default().display_name(), None);
    }
}
