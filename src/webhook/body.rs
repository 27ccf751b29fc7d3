//! Webhook bodies as Meta sends them, signed: for simulators (the desk's customer), tools and
//! tests ([`crate::testing`] re-exports them).

use std::time::SystemTime;

use serde_json::{Value, json};

use crate::ids::AppId;
use crate::secret::AppSecret;
use crate::send::MediaKind;
use crate::webhook::signature::{SHA256_HEADER, sign_sha256};

/// A webhook POST body for one page, built event by event, then signed with
/// [`WebhookBody::sign`].
///
/// Each event is one item of its own entry (`entry[].messaging[0]`), as Meta delivers them;
/// [`WebhookBody::standby`] moves the last one to the entry's `standby` array. Times are the
/// events' `timestamp`s (and their entries' `time`), in milliseconds. The body is
/// `serde_json`'s output, not escaped as Meta escapes (`\/`, `\u00e9`); the signature is over
/// the exact bytes, so either verifies.
///
/// ```
/// use std::time::Duration;
/// use messenger_channel::ids::AppId;
/// use messenger_channel::secret::AppSecret;
/// use messenger_channel::send::MediaKind;
/// use messenger_channel::webhook::{Webhook, WebhookBody};
///
/// let secret = AppSecret::new("test-app-secret")?;
/// let t0 = std::time::UNIX_EPOCH + Duration::from_secs(1_718_000_000);
/// let later = t0 + Duration::from_secs(1);
/// let post = WebhookBody::new("104987654321098")
///     .message("24012345678901234", "m_1", "Hello", t0)
///     .attachment("24012345678901234", "m_2", MediaKind::File, "https://cdn.example/a.pdf", t0)
///     .postback("24012345678901234", "m_3", "Talk to a person", "HUMAN", later)
///     .standby() // the postback came while another app held the thread
///     .pass_thread_control("24012345678901234", AppId(1), None, later)
///     .sign(&secret);
///
/// let batch = Webhook::new(&secret).verify_and_parse(&post.headers(), post.body())?;
/// assert_eq!(batch.events().count(), 4);
/// assert_eq!(post.signature(), post.headers()["x-hub-signature-256"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct WebhookBody {
    page: String,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    time: u64,
    item: Value,
    standby: bool,
}

impl WebhookBody {
    /// An empty body (`"entry": []`) for the page `page`.
    pub fn new(page: &str) -> Self {
        Self {
            page: page.to_owned(),
            entries: Vec::new(),
        }
    }

    /// A customer's text message, `mid` `mid`, sent at `at`.
    pub fn message(self, customer: &str, mid: &str, text: &str, at: SystemTime) -> Self {
        self.customer_event(customer, at, "message", json!({"mid": mid, "text": text}))
    }

    /// A customer's file: one attachment of `kind` at `url` (Meta's CDN link).
    pub fn attachment(
        self,
        customer: &str,
        mid: &str,
        kind: MediaKind,
        url: &str,
        at: SystemTime,
    ) -> Self {
        let attachment = json!({"type": kind.as_str(), "payload": {"url": url}});
        self.customer_event(
            customer,
            at,
            "message",
            json!({"mid": mid, "attachments": [attachment]}),
        )
    }

    /// A customer's tap on a button (`postback`), with its title and payload.
    pub fn postback(
        self,
        customer: &str,
        mid: &str,
        title: &str,
        payload: &str,
        at: SystemTime,
    ) -> Self {
        self.customer_event(
            customer,
            at,
            "postback",
            json!({"mid": mid, "title": title, "payload": payload}),
        )
    }

    /// The echo of a message the page sent to `customer` through the app `app`, with the
    /// `metadata` it was sent with (the engine marks its sends with
    /// [`ECHO_KEY_PREFIX`](crate::engine::ECHO_KEY_PREFIX) and the effect's key) and its text
    /// (`None` for a file).
    pub fn echo(
        self,
        customer: &str,
        mid: &str,
        app: AppId,
        metadata: Option<&str>,
        text: Option<&str>,
        at: SystemTime,
    ) -> Self {
        let mut message = json!({"mid": mid, "is_echo": true, "app_id": app.0});
        if let Some(metadata) = metadata {
            message["metadata"] = json!(metadata);
        }
        if let Some(text) = text {
            message["text"] = json!(text);
        }
        let item = json!({
            "sender": {"id": self.page},
            "recipient": {"id": customer},
            "timestamp": millis(at),
            "message": message,
        });
        self.item(item, at)
    }

    /// Thread control passed to the app `new_owner` (this app, when the thread comes back).
    pub fn pass_thread_control(
        self,
        customer: &str,
        new_owner: AppId,
        metadata: Option<&str>,
        at: SystemTime,
    ) -> Self {
        let mut control = json!({"new_owner_app_id": new_owner.to_string()});
        if let Some(metadata) = metadata {
            control["metadata"] = json!(metadata);
        }
        self.customer_event(customer, at, "pass_thread_control", control)
    }

    /// Thread control taken from `previous_owner` by `new_owner` (another app, or the Page
    /// inbox).
    pub fn take_thread_control(
        self,
        customer: &str,
        previous_owner: AppId,
        new_owner: AppId,
        at: SystemTime,
    ) -> Self {
        self.customer_event(
            customer,
            at,
            "take_thread_control",
            json!({
                "previous_owner_app_id": previous_owner.to_string(),
                "new_owner_app_id": new_owner.to_string(),
            }),
        )
    }

    /// Any other event: `item` is the whole `messaging` item as Meta's JSON (`sender`,
    /// `recipient`, `timestamp` and the event), in an entry of time `at`.
    pub fn item(mut self, item: Value, at: SystemTime) -> Self {
        self.entries.push(Entry {
            time: millis(at),
            item,
            standby: false,
        });
        self
    }

    /// Moves the event added last to its entry's `standby` array: delivered while another app
    /// (or the Page inbox) holds the thread.
    ///
    /// # Panics
    ///
    /// If no event was added yet.
    pub fn standby(mut self) -> Self {
        self.entries
            .last_mut()
            .expect("WebhookBody::standby: add the event first, then call standby()")
            .standby = true;
        self
    }

    /// How many events the body holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the body holds no event.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The body as JSON.
    pub fn to_json(&self) -> Value {
        let entries: Vec<Value> = self
            .entries
            .iter()
            .map(|e| {
                let array = if e.standby { "standby" } else { "messaging" };
                json!({"id": self.page, "time": e.time, array: [e.item]})
            })
            .collect();
        json!({"object": "page", "entry": entries})
    }

    /// The body's bytes, as they are posted and signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_json().to_string().into_bytes()
    }

    /// The body signed with the app secret, as Meta signs it.
    pub fn sign(&self, secret: &AppSecret) -> SignedBody {
        SignedBody::new(secret, self.to_bytes())
    }

    fn customer_event(self, customer: &str, at: SystemTime, kind: &str, event: Value) -> Self {
        let mut item = json!({
            "sender": {"id": customer},
            "recipient": {"id": self.page},
            "timestamp": millis(at),
        });
        item[kind] = event;
        self.item(item, at)
    }
}

/// A signed webhook body: the bytes and their `X-Hub-Signature-256` value, ready for
/// [`Engine::handle_webhook`](crate::engine::Engine::handle_webhook), the axum route, or an
/// HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedBody {
    body: Vec<u8>,
    signature: String,
}

impl SignedBody {
    /// Signs any bytes (a body built by hand, a fixture file, a malformed one).
    pub fn new(secret: &AppSecret, body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        let signature = sign_sha256(secret, &body);
        Self { body, signature }
    }

    /// The bytes.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The `X-Hub-Signature-256` header's value: `sha256=<hex>`.
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// The headers Meta sends with it: `X-Hub-Signature-256` and
    /// `Content-Type: application/json`.
    ///
    /// # Panics
    ///
    /// Never: the signature is `sha256=` and hex digits.
    pub fn headers(&self) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            SHA256_HEADER,
            http::HeaderValue::from_str(&self.signature).expect("hex is a valid header value"),
        );
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        headers
    }

    /// The headers and the bytes, for `engine.handle_webhook(&headers, &body, now)`.
    pub fn into_parts(self) -> (http::HeaderMap, Vec<u8>) {
        (self.headers(), self.body)
    }
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{EventKind, Webhook};

    fn secret() -> AppSecret {
        AppSecret::new("kit-secret").unwrap()
    }

    #[test]
    fn every_event_parses_back_and_verifies() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_718_000_000);
        let post = WebhookBody::new("P")
            .message("U", "m_1", "hi", t)
            .attachment("U", "m_2", MediaKind::Image, "https://cdn.example/p.png", t)
            .postback("U", "m_3", "Yes", "YES", t)
            .standby()
            .echo("U", "m_4", AppId(7), Some("mc-effect:k"), Some("reply"), t)
            .take_thread_control("U", AppId(1), AppId(2), t)
            .pass_thread_control("U", AppId(1), Some("back"), t)
            .sign(&secret());
        let batch = Webhook::new(&secret())
            .verify_and_parse(&post.headers(), post.body())
            .unwrap();
        assert_eq!(batch.errors().count(), 0, "{batch:?}");
        let events: Vec<_> = batch.events().collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind_name()).collect();
        assert_eq!(
            kinds,
            [
                "message",
                "message",
                "postback",
                "echo",
                "take_thread_control",
                "pass_thread_control"
            ]
        );
        assert!(events[2].standby && !events[1].standby);
        assert_eq!(events[2].time(), t);
        let EventKind::Echo(echo) = &events[3].kind else {
            panic!("an echo: {:?}", events[3]);
        };
        assert_eq!(echo.app_id, Some(AppId(7)));
    }

    #[test]
    fn the_envelope_is_meta_s() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_500);
        let body = WebhookBody::new("P").message("U", "m", "x", t);
        assert_eq!(body.len(), 1);
        assert_eq!(
            body.to_json(),
            json!({"object": "page", "entry": [{"id": "P", "time": 1500, "messaging": [
                {"sender": {"id": "U"}, "recipient": {"id": "P"}, "timestamp": 1500,
                 "message": {"mid": "m", "text": "x"}}
            ]}]})
        );
        assert!(WebhookBody::new("P").is_empty());
        let signed = SignedBody::new(&secret(), b"{}".to_vec());
        assert_eq!(signed.signature(), sign_sha256(&secret(), b"{}"));
        let (headers, bytes) = signed.into_parts();
        assert_eq!(bytes, b"{}");
        assert_eq!(headers["content-type"], "application/json");
    }
}
