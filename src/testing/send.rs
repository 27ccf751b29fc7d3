//! A fake `SendApi` that records what it is asked to do.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::Value;

use crate::ids::{AppId, MessageId, PageId, UserId};
use crate::send::{
    AttachmentSource, GraphError, Media, MediaKind, PageApi, SendApi, SendError, SendRequest,
    SendResponse, SenderAction, Upload, UserProfile, reaction_body,
};

/// One message [`FakeSend`] accepted.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Sent {
    /// The page it was sent from.
    pub page: PageId<'static>,
    /// The request as the engine made it.
    pub request: SendRequest,
    /// The Send API body it stands for ([`SendRequest::to_json`]), to assert on as the Graph
    /// API would see it: `body["message"]["metadata"]`, `body["messaging_type"]`, …
    pub body: Value,
}

impl Sent {
    /// The message's text, if it is a text message.
    pub fn text(&self) -> Option<&str> {
        self.body["message"]["text"].as_str()
    }

    /// The file it carries, if it was sent with one.
    pub fn upload(&self) -> Option<&Upload> {
        self.request.message().upload()
    }
}

/// When [`FakeSend::send`](SendApi::send) stops answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Hang {
    /// It always answers (the default).
    #[default]
    Never,
    /// Before the message reaches the platform: a process dying mid-send, nothing sent.
    BeforeSending,
    /// After the platform accepted the message (it is recorded): a process dying before it
    /// heard back.
    AfterSending,
}

/// A [`SendApi`] that sends nothing: it records every message and answers with sequential
/// message ids (`m_out_0`, `m_out_1`, …), serves downloads from files given to it, and fails
/// or hangs when told to.
///
/// ```
/// # async fn demo() {
/// use messenger_channel::ids::PageId;
/// use messenger_channel::send::{Media, Message, SendApi, SendError, SendRequest};
/// use messenger_channel::testing::FakeSend;
///
/// let send = FakeSend::new();
/// let page = PageId::from("104987654321098");
/// let hello = SendRequest::new("24012345678901234", Message::text("Hello").unwrap());
/// let answer = send.send(&page, &hello).await.unwrap();
/// assert_eq!(answer.message_id, "m_out_0");
/// assert_eq!(send.texts(), ["Hello"]);
///
/// // The platform refuses from now on; the refusal is counted, nothing is recorded.
/// send.fail_sends(Some(SendError::TooLarge { max: 1 }));
/// assert!(send.send(&page, &hello).await.is_err());
/// assert_eq!((send.attempts(), send.sent().len()), (2, 1));
///
/// // Downloads come from the files it serves; others answer 404.
/// send.serve("https://cdn.example/a.txt", Media {
///     bytes: "hi".into(),
///     content_type: Some("text/plain".into()),
///     file_name: None,
/// });
/// assert_eq!(send.download("https://cdn.example/a.txt", 100).await.unwrap().bytes, "hi");
/// assert!(send.download("https://cdn.example/gone", 100).await.is_err());
/// assert_eq!(send.downloads().len(), 2);
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo());
/// ```
#[derive(Debug, Default)]
pub struct FakeSend {
    sent: Mutex<Vec<Sent>>,
    reactions: Mutex<Vec<Value>>,
    /// Calls to `send`, failed ones included.
    attempts: AtomicU64,
    send_error: Mutex<Option<SendError>>,
    hang: Mutex<Hang>,
    hung: tokio::sync::Notify,
    files: Mutex<HashMap<String, Media>>,
    download_error: Mutex<Option<SendError>>,
    downloads: Mutex<Vec<String>>,
    profiles: Mutex<HashMap<String, UserProfile>>,
    profile_error: Mutex<Option<SendError>>,
    /// The [`PageApi`] calls, in order, as words.
    page_calls: Mutex<Vec<String>>,
}

impl FakeSend {
    /// A fake that accepts every message and serves no file.
    pub fn new() -> Self {
        Self::default()
    }

    /// The messages accepted so far, in order.
    pub fn sent(&self) -> Vec<Sent> {
        lock(&self.sent).clone()
    }

    /// The texts of the text messages accepted so far, in order.
    pub fn texts(&self) -> Vec<String> {
        lock(&self.sent)
            .iter()
            .filter_map(|s| s.text().map(str::to_owned))
            .collect()
    }

    /// The reactions sent so far (and their removals), in order, as Send API bodies
    /// ([`reaction_body`]): `body["sender_action"]`, `body["payload"]["message_id"]`, …
    pub fn reactions(&self) -> Vec<Value> {
        lock(&self.reactions).clone()
    }

    /// Calls to `send` so far, failed and hanging ones included.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }

    /// With `Some(error)`, every send fails with it (and records nothing) until called again
    /// with `None`.
    pub fn fail_sends(&self, error: Option<SendError>) {
        *lock(&self.send_error) = error;
    }

    /// Makes the sends from now on hang ([`Hang`]); [`FakeSend::hung`] waits for the first.
    pub fn hang(&self, hang: Hang) {
        *lock(&self.hang) = hang;
    }

    /// Waits until a send hangs (returns at once if one hung since the last call).
    pub async fn hung(&self) {
        self.hung.notified().await;
    }

    /// Serves `media` for downloads of `url` (a URL not served answers 404).
    pub fn serve(&self, url: &str, media: Media) {
        lock(&self.files).insert(url.to_owned(), media);
    }

    /// With `Some(error)`, every download fails with it until called again with `None`.
    pub fn fail_downloads(&self, error: Option<SendError>) {
        *lock(&self.download_error) = error;
    }

    /// The URLs asked for so far, in order, failed downloads included.
    pub fn downloads(&self) -> Vec<String> {
        lock(&self.downloads).clone()
    }

    /// Serves `profile` as the user profile of `user` ([`PageApi::user_profile`]). A user
    /// without one is refused as a page without the permission would be (Graph code 230).
    pub fn serve_profile(&self, user: &str, profile: UserProfile) {
        lock(&self.profiles).insert(user.to_owned(), profile);
    }

    /// With `Some(error)`, every [`PageApi::user_profile`] call fails with it until called
    /// again with `None`.
    pub fn fail_profiles(&self, error: Option<SendError>) {
        *lock(&self.profile_error) = error;
    }

    /// The [`PageApi`] calls so far, in order, as words: `user_profile 2401…`,
    /// `sender_action typing_on 2401…`, `upload image`, `pass_thread_control 2401… 263902037430900`,
    /// `take_thread_control 2401…`, `request_thread_control 2401…`,
    /// `release_thread_control 2401…`, `thread_owner 2401…`.
    pub fn page_calls(&self) -> Vec<String> {
        lock(&self.page_calls).clone()
    }

    /// How many times the profile of `user` was asked for.
    pub fn profile_requests(&self, user: &str) -> usize {
        let call = format!("user_profile {user}");
        lock(&self.page_calls)
            .iter()
            .filter(|c| **c == call)
            .count()
    }

    fn page_call(&self, call: String) {
        lock(&self.page_calls).push(call);
    }

    async fn hang_now(&self) {
        self.hung.notify_one();
        std::future::pending::<()>().await;
    }
}

#[async_trait::async_trait]
impl SendApi for FakeSend {
    async fn send(
        &self,
        page: &PageId<'_>,
        request: &SendRequest,
    ) -> Result<SendResponse, SendError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = lock(&self.send_error).clone() {
            return Err(e);
        }
        let hang = *lock(&self.hang);
        if hang == Hang::BeforeSending {
            self.hang_now().await;
        }
        let n = {
            let mut sent = lock(&self.sent);
            sent.push(Sent {
                page: page.clone().into_owned(),
                request: request.clone(),
                body: request.to_json(),
            });
            sent.len() - 1
        };
        if hang == Hang::AfterSending {
            self.hang_now().await;
        }
        Ok(SendResponse {
            recipient_id: Some(request.recipient().clone()),
            message_id: MessageId::from(format!("m_out_{n}")),
            attachment_id: None,
        })
    }

    /// Records the reaction; fails as sends do ([`FakeSend::fail_sends`]).
    async fn react(
        &self,
        _page: &PageId<'_>,
        user: &UserId<'_>,
        message_id: &MessageId<'_>,
        reaction: Option<&str>,
    ) -> Result<(), SendError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = lock(&self.send_error).clone() {
            return Err(e);
        }
        lock(&self.reactions).push(reaction_body(user, message_id, reaction)?);
        Ok(())
    }

    async fn download(&self, url: &str, max_bytes: u64) -> Result<Media, SendError> {
        lock(&self.downloads).push(url.to_owned());
        if let Some(e) = lock(&self.download_error).clone() {
            return Err(e);
        }
        let file = lock(&self.files).get(url).cloned();
        match file {
            Some(media) if media.bytes.len() as u64 > max_bytes => {
                Err(SendError::TooLarge { max: max_bytes })
            }
            Some(media) => Ok(media),
            None => Err(SendError::UnexpectedResponse {
                status: 404,
                snippet: "no such file".into(),
            }),
        }
    }
}

/// The page's other calls, recorded ([`FakeSend::page_calls`]); user profiles come from
/// [`FakeSend::serve_profile`].
#[async_trait::async_trait]
impl PageApi for FakeSend {
    async fn sender_action(
        &self,
        _page: &PageId<'_>,
        user: &UserId<'_>,
        action: SenderAction,
    ) -> Result<(), SendError> {
        self.page_call(format!(
            "sender_action {} {}",
            action.as_str(),
            user.as_str()
        ));
        Ok(())
    }

    async fn upload_attachment(
        &self,
        _page: &PageId<'_>,
        kind: MediaKind,
        _source: &AttachmentSource,
    ) -> Result<String, SendError> {
        let kind = kind.as_str();
        let n = {
            let mut calls = lock(&self.page_calls);
            calls.push(format!("upload {kind}"));
            calls.iter().filter(|c| c.starts_with("upload ")).count()
        };
        Ok(format!("attachment_{n}"))
    }

    async fn pass_thread_control(
        &self,
        _page: &PageId<'_>,
        user: &UserId<'_>,
        target_app: AppId,
        _metadata: Option<&str>,
    ) -> Result<(), SendError> {
        self.page_call(format!(
            "pass_thread_control {} {target_app}",
            user.as_str()
        ));
        Ok(())
    }

    async fn take_thread_control(
        &self,
        _page: &PageId<'_>,
        user: &UserId<'_>,
        _metadata: Option<&str>,
    ) -> Result<(), SendError> {
        self.page_call(format!("take_thread_control {}", user.as_str()));
        Ok(())
    }

    async fn request_thread_control(
        &self,
        _page: &PageId<'_>,
        user: &UserId<'_>,
        _metadata: Option<&str>,
    ) -> Result<(), SendError> {
        self.page_call(format!("request_thread_control {}", user.as_str()));
        Ok(())
    }

    async fn release_thread_control(
        &self,
        _page: &PageId<'_>,
        user: &UserId<'_>,
    ) -> Result<(), SendError> {
        self.page_call(format!("release_thread_control {}", user.as_str()));
        Ok(())
    }

    /// No app owns a thread in the fake.
    async fn thread_owner(
        &self,
        _page: &PageId<'_>,
        user: &UserId<'_>,
    ) -> Result<Option<AppId>, SendError> {
        self.page_call(format!("thread_owner {}", user.as_str()));
        Ok(None)
    }

    async fn user_profile(
        &self,
        _page: &PageId<'_>,
        user: &UserId<'_>,
    ) -> Result<UserProfile, SendError> {
        self.page_call(format!("user_profile {}", user.as_str()));
        if let Some(e) = lock(&self.profile_error).clone() {
            return Err(e);
        }
        let profile = lock(&self.profiles).get(user.as_str()).cloned();
        profile.ok_or_else(|| {
            let body = serde_json::json!({"error": {
                "message": "(#230) Requires pages_messaging permission to manage the object",
                "type": "OAuthException",
                "code": 230,
            }});
            GraphError::from_value(400, &body).map_or(
                SendError::UnexpectedResponse {
                    status: 400,
                    snippet: "no profile".into(),
                },
                SendError::Graph,
            )
        })
    }
}

/// A test double is read after a failed assertion elsewhere: a poisoned lock still holds
/// what was recorded.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_impl_all!(FakeSend: Send, Sync, SendApi, PageApi);
}
