//! [`GraphClient`]: the Graph API client on `reqwest`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use serde_json::{Value, json};

use super::error::{ErrorBody, SendError, TransportKind};
use super::message::{
    AttachmentSource, BuildError, MediaKind, SendRequest, SenderAction, Upload, reaction_body,
};
use super::retry::{RetryDecision, RetryPolicy};
use super::{Media, PageApi, SendApi, SendResponse, TokenSource, UserProfile};
use crate::ids::{AppId, MessageId, PageId, UserId};
use crate::secret::{AppSecret, PageAccessToken};
use crate::webhook::signature::hmac_sha256_hex;

/// The Graph API's address.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";
/// The Graph API version used unless configured (v26.0, released 2026-07-29).
pub const DEFAULT_GRAPH_VERSION: &str = "v26.0";
/// Largest response body read from a Graph call (not a download).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Configures a [`GraphClient`].
pub struct GraphClientBuilder {
    tokens: Arc<dyn TokenSource>,
    app_secret: Option<AppSecret>,
    base_url: String,
    version: String,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    http: Option<reqwest::Client>,
    #[cfg(feature = "rate-limit")]
    rate_limit: bool,
}

impl std::fmt::Debug for GraphClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClientBuilder")
            .field("base_url", &self.base_url)
            .field("version", &self.version)
            .field("app_secret", &self.app_secret.is_some())
            .finish_non_exhaustive()
    }
}

impl GraphClientBuilder {
    /// Sets the app secret: every call then carries `appsecret_proof`.
    #[must_use]
    pub fn app_secret(mut self, secret: AppSecret) -> Self {
        self.app_secret = Some(secret);
        self
    }

    /// Sets the base URL (a mock in tests, or a proxy). Default [`DEFAULT_BASE_URL`].
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        let mut url = url.into();
        url.truncate(url.trim_end_matches('/').len());
        self.base_url = url;
        self
    }

    /// Sets the Graph API version, such as `v25.0`. Default [`DEFAULT_GRAPH_VERSION`].
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Sets the timeout of one request, connection included (default 30 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the connection timeout (default 10 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the retry policy (default [`RetryPolicy::default`]: on, 3 attempts).
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Uses an existing `reqwest` client (its pool, proxy and TLS settings); the timeouts set
    /// here are then not applied.
    #[must_use]
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Keeps sends under the platform's per-page rates (300/s for text, 10/s for audio and
    /// video) by waiting before a call that would exceed them.
    #[cfg(feature = "rate-limit")]
    #[must_use]
    pub fn rate_limit(mut self, on: bool) -> Self {
        self.rate_limit = on;
        self
    }

    /// Builds the client.
    ///
    /// # Errors
    /// [`SendError::Transport`] when the HTTP client cannot be set up (TLS roots).
    pub fn build(self) -> Result<GraphClient, SendError> {
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .timeout(self.timeout)
                .connect_timeout(self.connect_timeout)
                .pool_max_idle_per_host(256)
                .user_agent(concat!("messenger-channel/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(transport_error)?,
        };
        Ok(GraphClient {
            inner: Arc::new(Inner {
                http,
                api: format!("{}/{}", self.base_url, self.version),
                tokens: self.tokens,
                app_secret: self.app_secret,
                retry: self.retry,
                #[cfg(feature = "rate-limit")]
                limiter: self.rate_limit.then(limiter::Limiter::new),
            }),
        })
    }
}

struct Inner {
    http: reqwest::Client,
    api: String,
    tokens: Arc<dyn TokenSource>,
    app_secret: Option<AppSecret>,
    retry: RetryPolicy,
    #[cfg(feature = "rate-limit")]
    limiter: Option<limiter::Limiter>,
}

/// A Graph API client for the Messenger Platform. Cheap to clone: clones share one connection
/// pool and configuration.
///
/// Tokens travel in the `Authorization` header, never in URLs, and appear in no log, error or
/// `Debug` output.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("api", &self.inner.api)
            .field("appsecret_proof", &self.inner.app_secret.is_some())
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

/// The body of one Graph call, rebuilt for each attempt.
enum CallBody<'a> {
    None,
    Json(Bytes),
    Multipart {
        fields: Vec<(&'static str, String)>,
        upload: &'a Upload,
    },
}

fn transport_error(e: reqwest::Error) -> SendError {
    let kind = if e.is_connect() {
        TransportKind::Connect
    } else if e.is_timeout() {
        TransportKind::Timeout
    } else {
        TransportKind::Other
    };
    // Only a failed connection (or a request that could not be built) proves it never
    // reached Meta.
    let outcome_unknown = kind != TransportKind::Connect && !e.is_builder();
    // The URL is dropped from the message: it is not secret here, but a proxy's could be.
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    SendError::Transport {
        kind,
        outcome_unknown,
        message,
    }
}

/// The longest wait taken from a usage header: a day. Graph's estimates are minutes; a larger
/// (or absurd) value is read as "a long time", not multiplied into an overflow.
const MAX_REGAIN_ACCESS_MINUTES: u64 = 24 * 60;

/// Seconds to wait from `X-Business-Use-Case-Usage` (`estimated_time_to_regain_access`,
/// minutes), when the header says; at most [`MAX_REGAIN_ACCESS_MINUTES`].
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let raw = headers.get("x-business-use-case-usage")?.to_str().ok()?;
    let usage: Value = serde_json::from_str(raw).ok()?;
    let minutes = usage
        .as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|u| u.get("estimated_time_to_regain_access")?.as_u64())
        .max()?;
    (minutes > 0).then(|| Duration::from_secs(minutes.min(MAX_REGAIN_ACCESS_MINUTES) * 60))
}

impl GraphClient {
    /// A builder with the token source: one [`PageAccessToken`] for every page, a
    /// `HashMap<PageId, PageAccessToken>`, or a host's own [`TokenSource`].
    pub fn builder(tokens: impl TokenSource + 'static) -> GraphClientBuilder {
        GraphClientBuilder {
            tokens: Arc::new(tokens),
            app_secret: None,
            base_url: DEFAULT_BASE_URL.to_owned(),
            version: DEFAULT_GRAPH_VERSION.to_owned(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            http: None,
            #[cfg(feature = "rate-limit")]
            rate_limit: false,
        }
    }

    async fn token(&self, page: &PageId<'_>) -> Result<PageAccessToken, SendError> {
        self.inner
            .tokens
            .token(page)
            .await
            .ok_or_else(|| SendError::NoToken {
                page: page.as_str().to_owned(),
            })
    }

    /// One Graph call with retries. `path` is relative to the versioned API root.
    async fn call<T: Reply>(
        &self,
        page: &PageId<'_>,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: CallBody<'_>,
        endpoint: &'static str,
    ) -> Result<T, SendError> {
        let span = tracing::debug_span!("graph_call", page = %page, endpoint, attempts = tracing::field::Empty);
        let _enter = span.enter();
        check_id("page id", page.as_str())?;
        let token = self.token(page).await?;
        let proof = self
            .inner
            .app_secret
            .as_ref()
            .map(|s| hmac_sha256_hex(s.expose(), token.expose()));
        let token_text = std::str::from_utf8(token.expose()).map_err(|_| SendError::NoToken {
            page: page.as_str().to_owned(),
        })?;
        let url = format!("{}/{path}", self.inner.api);
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .inner
                .http
                .request(method.clone(), &url)
                .bearer_auth(token_text);
            if !query.is_empty() {
                request = request.query(query);
            }
            if let Some(proof) = &proof {
                request = request.query(&[("appsecret_proof", proof)]);
            }
            request = match &body {
                CallBody::None => request,
                CallBody::Json(bytes) => request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(bytes.clone()),
                CallBody::Multipart { fields, upload } => {
                    let mut form = reqwest::multipart::Form::new();
                    for (name, value) in fields {
                        form = form.text(*name, value.clone());
                    }
                    let part =
                        reqwest::multipart::Part::stream(reqwest::Body::from(upload.bytes.clone()))
                            .file_name(upload.file_name.clone())
                            .mime_str(&upload.mime)
                            .map_err(|_| SendError::Invalid(BuildError::BadMimeType))?;
                    request.multipart(form.part("filedata", part))
                }
            };
            let error = match request.send().await {
                Ok(response) => match read_response(response).await {
                    Ok(value) => {
                        span.record("attempts", attempt);
                        return Ok(value);
                    }
                    Err(e) => e,
                },
                Err(e) => transport_error(e),
            };
            let decision =
                self.inner
                    .retry
                    .decide(&error, attempt, started.elapsed(), fastrand::f64());
            tracing::debug!(
                attempt,
                kind = %error.kind(),
                code = error.code(),
                subcode = error.subcode(),
                fbtrace_id = error.fbtrace_id(),
                ?decision,
                "graph call failed"
            );
            match decision {
                RetryDecision::RetryAfter(wait) => tokio::time::sleep(wait).await,
                RetryDecision::GiveUp => {
                    span.record("attempts", attempt);
                    return Err(error);
                }
            }
        }
    }

    async fn post(
        &self,
        page: &PageId<'_>,
        path: &str,
        body: &Value,
        endpoint: &'static str,
    ) -> Result<Value, SendError> {
        self.call(
            page,
            reqwest::Method::POST,
            path,
            &[],
            CallBody::Json(Bytes::from(
                serde_json::to_vec(body).expect("JSON values serialise"),
            )),
            endpoint,
        )
        .await
    }

    /// One Conversation Routing call: `POST /{page}/{endpoint}` with `metadata` when given.
    /// One handover call: `endpoint` for `user`, with the target app (passing) and metadata
    /// when given.
    async fn thread_control(
        &self,
        page: &PageId<'_>,
        endpoint: &'static str,
        user: &UserId<'_>,
        target_app: Option<AppId>,
        metadata: Option<&str>,
    ) -> Result<(), SendError> {
        let mut body = json!({"recipient": recipient(user)});
        if let Some(app) = target_app {
            body["target_app_id"] = json!(app.0);
        }
        if let Some(m) = metadata {
            body["metadata"] = json!(m);
        }
        self.post(page, &format!("{page}/{endpoint}"), &body, endpoint)
            .await
            .map(drop)
    }

    #[cfg(feature = "rate-limit")]
    async fn pace(&self, page: &PageId<'_>, heavy: bool) {
        if let Some(limiter) = &self.inner.limiter {
            limiter.wait(page.as_str(), heavy).await;
        }
    }

    #[cfg(not(feature = "rate-limit"))]
    #[allow(clippy::unused_async)]
    async fn pace(&self, _page: &PageId<'_>, _heavy: bool) {}
}

async fn read_response<T: Reply>(mut response: reqwest::Response) -> Result<T, SendError> {
    let status = response.status().as_u16();
    let wait = retry_after(response.headers());
    let too_large = || SendError::UnexpectedResponse {
        status,
        snippet: "response body over 1 MiB".into(),
    };
    let body: Bytes = match response.content_length() {
        // A declared, small length: take the body as it comes (no copy for one chunk).
        Some(len) if len <= MAX_RESPONSE_BYTES as u64 => {
            response.bytes().await.map_err(transport_error)?
        }
        Some(_) => return Err(too_large()),
        None => {
            let mut body = BytesMut::new();
            while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            body.freeze()
        }
    };
    // One parse serves both outcomes: the reply type carries the `error` object too.
    let graph_error = |e: ErrorBody| {
        let mut error = e.into_graph(status);
        error.retry_after = wait;
        SendError::Graph(error)
    };
    match serde_json::from_slice::<T>(&body) {
        Ok(mut reply) => {
            if let Some(e) = reply.take_error() {
                return Err(graph_error(e));
            }
            if (200..300).contains(&status) {
                return Ok(reply);
            }
        }
        Err(_) => {
            if let Some(e) = serde_json::from_slice::<ErrorEnvelope>(&body)
                .ok()
                .and_then(|e| e.error)
            {
                return Err(graph_error(e));
            }
        }
    }
    Err(SendError::UnexpectedResponse {
        status,
        snippet: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    })
}

/// A response type that may carry Graph's `error` object instead of a result.
trait Reply: serde::de::DeserializeOwned + Send {
    fn take_error(&mut self) -> Option<ErrorBody>;
}

impl Reply for Value {
    fn take_error(&mut self) -> Option<ErrorBody> {
        let e = self.as_object_mut()?.remove("error")?;
        Some(serde_json::from_value(e).unwrap_or_default())
    }
}

#[derive(serde::Deserialize)]
struct ErrorEnvelope {
    error: Option<ErrorBody>,
}

/// The Send API's answer.
#[derive(serde::Deserialize)]
struct SendReply {
    #[serde(default)]
    error: Option<ErrorBody>,
    #[serde(default)]
    message_id: Option<String>,
    #[serde(default)]
    recipient_id: Option<String>,
    #[serde(default)]
    attachment_id: Option<String>,
}

impl Reply for SendReply {
    fn take_error(&mut self) -> Option<ErrorBody> {
        self.error.take()
    }
}

fn string_field(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Ids go into URL paths: only letters, digits and `_` are accepted.
fn check_id(field: &'static str, id: &str) -> Result<(), SendError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(SendError::Invalid(BuildError::BadId { field }));
    }
    Ok(())
}

fn recipient(user: &UserId<'_>) -> Value {
    json!({ "id": user.as_str() })
}

fn content_disposition_name(value: &str) -> Option<String> {
    let at = value.find("filename=")?;
    let rest = value[at + "filename=".len()..].trim();
    let name = if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next()?
    } else {
        rest.split(';').next()?.trim()
    };
    (!name.is_empty()).then(|| crate::attachment::sanitize_file_name(name))
}

#[async_trait::async_trait]
impl SendApi for GraphClient {
    async fn react(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
        message_id: &MessageId<'_>,
        reaction: Option<&str>,
    ) -> Result<(), SendError> {
        let body = reaction_body(user, message_id, reaction)?;
        self.pace(page, false).await;
        self.post(page, &format!("{page}/messages"), &body, "react")
            .await
            .map(drop)
    }

    async fn send(
        &self,
        page: &PageId<'_>,
        request: &SendRequest,
    ) -> Result<SendResponse, SendError> {
        let heavy = matches!(
            request.message().media_kind(),
            Some(MediaKind::Audio | MediaKind::Video)
        );
        self.pace(page, heavy).await;
        let reply: SendReply = match request.message().upload() {
            None => {
                let body = CallBody::Json(Bytes::from(request.to_body()));
                self.call(
                    page,
                    reqwest::Method::POST,
                    &format!("{page}/messages"),
                    &[],
                    body,
                    "send",
                )
                .await?
            }
            Some(upload) => {
                let mut fields = Vec::new();
                if let Value::Object(map) = request.to_json() {
                    for (key, value) in map {
                        let key: &'static str = match key.as_str() {
                            "recipient" => "recipient",
                            "messaging_type" => "messaging_type",
                            "message" => "message",
                            "tag" => "tag",
                            "persona_id" => "persona_id",
                            "notification_type" => "notification_type",
                            _ => continue,
                        };
                        let text = match value {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        fields.push((key, text));
                    }
                }
                let body = CallBody::Multipart { fields, upload };
                self.call(
                    page,
                    reqwest::Method::POST,
                    &format!("{page}/messages"),
                    &[],
                    body,
                    "send",
                )
                .await?
            }
        };
        let message_id = reply
            .message_id
            .ok_or_else(|| SendError::UnexpectedResponse {
                status: 200,
                snippet: "no message_id in the response".into(),
            })?;
        tracing::debug!(page = %page, message_id, "message sent");
        Ok(SendResponse {
            recipient_id: reply.recipient_id.map(UserId::from),
            message_id: MessageId::from(message_id),
            attachment_id: reply.attachment_id,
        })
    }

    async fn download(&self, url: &str, max_bytes: u64) -> Result<Media, SendError> {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        if !(lower.starts_with("https://") || lower.starts_with("http://")) {
            return Err(SendError::Invalid(BuildError::NotAUrl {
                field: "download url",
            }));
        }
        let span = tracing::debug_span!("download", max_bytes, bytes = tracing::field::Empty);
        let _enter = span.enter();
        let mut response = self
            .inner
            .http
            .get(url)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status().as_u16();
        if !response.status().is_success() {
            return Err(SendError::UnexpectedResponse {
                status,
                snippet: "download failed".into(),
            });
        }
        if response.content_length().is_some_and(|len| len > max_bytes) {
            return Err(SendError::TooLarge { max: max_bytes });
        }
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let file_name =
            header(reqwest::header::CONTENT_DISPOSITION).and_then(|v| content_disposition_name(&v));
        let capacity =
            usize::try_from(response.content_length().unwrap_or(0).min(max_bytes)).unwrap_or(0);
        let mut bytes = BytesMut::with_capacity(capacity);
        while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
            if bytes.len() as u64 + chunk.len() as u64 > max_bytes {
                // Dropping the response here closes the connection: nothing more is read.
                return Err(SendError::TooLarge { max: max_bytes });
            }
            bytes.extend_from_slice(&chunk);
        }
        span.record("bytes", bytes.len());
        Ok(Media {
            bytes: Bytes::from(bytes),
            content_type,
            file_name,
        })
    }
}

#[async_trait::async_trait]
impl PageApi for GraphClient {
    async fn sender_action(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
        action: SenderAction,
    ) -> Result<(), SendError> {
        self.pace(page, false).await;
        self.post(
            page,
            &format!("{page}/messages"),
            &json!({"recipient": recipient(user), "sender_action": action.as_str()}),
            "sender_action",
        )
        .await
        .map(drop)
    }

    async fn upload_attachment(
        &self,
        page: &PageId<'_>,
        kind: MediaKind,
        source: &AttachmentSource,
    ) -> Result<String, SendError> {
        self.pace(page, matches!(kind, MediaKind::Audio | MediaKind::Video))
            .await;
        let value: Value = match source {
            AttachmentSource::Url { url, .. } => {
                let body = json!({"message": {"attachment": {"type": kind.as_str(), "payload": {"url": url, "is_reusable": true}}}});
                self.post(
                    page,
                    &format!("{page}/message_attachments"),
                    &body,
                    "upload",
                )
                .await?
            }
            AttachmentSource::Upload(upload) => {
                let message = json!({"attachment": {"type": kind.as_str(), "payload": {"is_reusable": true}}});
                let fields = vec![("message", message.to_string())];
                self.call(
                    page,
                    reqwest::Method::POST,
                    &format!("{page}/message_attachments"),
                    &[],
                    CallBody::Multipart { fields, upload },
                    "upload",
                )
                .await?
            }
            AttachmentSource::AttachmentId(id) => return Ok(id.clone()),
        };
        string_field(&value, "attachment_id").ok_or_else(|| SendError::UnexpectedResponse {
            status: 200,
            snippet: "no attachment_id in the response".into(),
        })
    }

    async fn pass_thread_control(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
        target_app: AppId,
        metadata: Option<&str>,
    ) -> Result<(), SendError> {
        self.thread_control(
            page,
            "pass_thread_control",
            user,
            Some(target_app),
            metadata,
        )
        .await
    }

    async fn take_thread_control(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
        metadata: Option<&str>,
    ) -> Result<(), SendError> {
        self.thread_control(page, "take_thread_control", user, None, metadata)
            .await
    }

    async fn request_thread_control(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
        metadata: Option<&str>,
    ) -> Result<(), SendError> {
        self.thread_control(page, "request_thread_control", user, None, metadata)
            .await
    }

    async fn release_thread_control(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
    ) -> Result<(), SendError> {
        self.thread_control(page, "release_thread_control", user, None, None)
            .await
    }

    async fn thread_owner(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
    ) -> Result<Option<AppId>, SendError> {
        let value: Value = self
            .call(
                page,
                reqwest::Method::GET,
                &format!("{page}/thread_owner"),
                &[("recipient", user.as_str())],
                CallBody::None,
                "thread_owner",
            )
            .await?;
        let owner = value["data"]
            .as_array()
            .and_then(|d| d.first())
            .and_then(|d| string_field(&d["thread_owner"], "app_id"));
        Ok(owner.and_then(|id| id.parse().ok()).map(AppId))
    }

    async fn user_profile(
        &self,
        page: &PageId<'_>,
        user: &UserId<'_>,
    ) -> Result<UserProfile, SendError> {
        check_id("psid", user.as_str())?;
        let value: Value = self
            .call(
                page,
                reqwest::Method::GET,
                user.as_str(),
                &[("fields", "first_name,last_name,name,profile_pic")],
                CallBody::None,
                "user_profile",
            )
            .await?;
        Ok(UserProfile {
            first_name: string_field(&value, "first_name"),
            last_name: string_field(&value, "last_name"),
            name: string_field(&value, "name"),
            profile_pic: string_field(&value, "profile_pic"),
        })
    }
}

#[cfg(feature = "rate-limit")]
mod limiter {
    use std::num::NonZeroU32;

    use governor::{DefaultKeyedRateLimiter, Quota};

    /// Per-page limiters: 300 calls/s for text and most calls, 10/s for audio and video.
    pub(super) struct Limiter {
        light: DefaultKeyedRateLimiter<String>,
        heavy: DefaultKeyedRateLimiter<String>,
    }

    impl Limiter {
        pub(super) fn new() -> Self {
            let per_second = |n: u32| Quota::per_second(NonZeroU32::new(n).expect("non-zero rate"));
            Self {
                light: DefaultKeyedRateLimiter::keyed(per_second(300)),
                heavy: DefaultKeyedRateLimiter::keyed(per_second(10)),
            }
        }

        pub(super) async fn wait(&self, page: &str, heavy: bool) {
            let key = page.to_owned();
            if heavy {
                self.heavy.until_key_ready(&key).await;
            }
            self.light.until_key_ready(&key).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition() {
        assert_eq!(
            content_disposition_name("attachment; filename=\"invoice.pdf\"").as_deref(),
            Some("invoice.pdf")
        );
        assert_eq!(
            content_disposition_name("inline; filename=a.png; size=3").as_deref(),
            Some("a.png")
        );
        assert_eq!(
            content_disposition_name("attachment; filename=\"../../x.exe\"").as_deref(),
            Some("x.exe")
        );
        assert_eq!(content_disposition_name("inline"), None);
    }

    #[test]
    fn usage_header() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "x-business-use-case-usage",
            r#"{"112233":[{"type":"messenger","call_count":100,"total_cputime":10,"total_time":10,"estimated_time_to_regain_access":3}]}"#
                .parse()
                .unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs(180)));
        assert_eq!(retry_after(&reqwest::header::HeaderMap::new()), None);
    }

    #[test]
    fn usage_header_beyond_a_day_is_capped_not_an_overflow() {
        let header = |minutes: &str| {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(
                "x-business-use-case-usage",
                format!(r#"{{"1":[{{"type":"messenger","estimated_time_to_regain_access":{minutes}}}]}}"#)
                    .parse()
                    .unwrap(),
            );
            h
        };
        let day = Some(Duration::from_secs(24 * 3600));
        // `u64::MAX * 60` overflowed (a panic in debug builds, a wrapped wait in release).
        assert_eq!(retry_after(&header(&u64::MAX.to_string())), day);
        assert_eq!(retry_after(&header(&(u64::MAX / 60 + 1).to_string())), day);
        assert_eq!(retry_after(&header("1441")), day);
        assert_eq!(retry_after(&header("1440")), day);
        assert_eq!(
            retry_after(&header("1439")),
            Some(Duration::from_secs(1439 * 60))
        );
        // Not a minute count Graph would send: no wait from the header.
        for odd in ["-5", "1.5e300", "1e400", "\"NaN\"", "null", "0"] {
            assert_eq!(retry_after(&header(odd)), None, "{odd}");
        }
        // Not JSON, or not visible ASCII: ignored.
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "x-business-use-case-usage",
            reqwest::header::HeaderValue::from_bytes(b"{\"1\":[\xff]}").unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
