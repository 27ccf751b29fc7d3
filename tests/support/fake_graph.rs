//! A fake Graph **Send API** on 127.0.0.1 (port 0) for the durable delivery tests: it plays a
//! script of failure [`Pattern`]s against successive requests, logs what Meta would have
//! received and delivered, and writes the echoes Meta would send back to the webhook.
//!
//! ```ignore
//! let fake = FakeGraph::start().await;
//! let client = GraphClient::builder(PageAccessToken::new("token").unwrap())
//!     .base_url(fake.base_url())
//!     .http_client(fake.http_client(Duration::from_millis(500)))
//!     .retry(RetryPolicy::never())
//!     .build()
//!     .unwrap();
//! fake.fail_next(2, Pattern::ServerError(500));
//! ```
//!
//! # Which pattern is played
//!
//! For each request, the first that applies of: [`FakeGraph::fail_until_healed`] (until
//! [`FakeGraph::heal`]), [`FakeGraph::fail_next`] (while its count lasts), the script
//! ([`FakeGraph::push`], [`FakeGraph::script`]), in order, then the default
//! ([`FakeGraph::set_default`], initially [`Pattern::Ok`]).
//!
//! # `Refuse` and the fake's HTTP client
//!
//! [`Pattern::Refuse`] is played when a connection is made, the others once the request has
//! been read. Every answer carries `Connection: close`, so each request opens its own
//! connection and a refusal hits exactly one request.
//!
//! * With [`FakeGraph::http_client`] (recommended), the refusal happens in the client's DNS
//!   resolver, which the fake provides: no connection is made and nothing is sent, and
//!   `GraphClient` reports `SendError::Transport { kind: Connect, outcome_unknown: false }`
//!   (retryable) — the class of a real "connection refused". Logged as [`Stage::Connect`].
//! * With any other client, the fake can only accept the TCP connection and close it before
//!   reading anything. The client cannot tell that from a request lost after it was written:
//!   `GraphClient` reports `Transport { kind: Other, outcome_unknown: true }` (not
//!   retryable). Logged as [`Stage::Accept`].
//!
//! A server cannot refuse a TCP connection its kernel has already accepted, hence the client
//! hook. The same "accept then close" can happen with the fake's client when a `Refuse` comes
//! to the head of the script while another connection is between its resolution and its
//! accept (concurrent sends only).
//!
//! # What else it answers
//!
//! Every request, whatever its path, is logged and plays the next pattern. Only a
//! `/messages` request with a `message` counts as delivered (and gets a `mid`); a sender
//! action is answered `{"recipient_id"}`, any other path `{"success": true}`. Hung requests
//! end (with a 503) when the [`FakeGraph`] is dropped.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use messenger_channel::engine::ECHO_KEY_PREFIX;
use messenger_channel::testing::WebhookBody;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The `app_id` echoes carry (the one in Meta's `message_echoes` reference example).
pub const FAKE_APP_ID: u64 = 1_517_776_481_860_111;

/// Where fake CDN URLs of uploaded files point (never fetched).
const CDN: &str = "https://fake-graph.invalid/cdn";

/// What the fake does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Accept: the message is delivered; answer `{"recipient_id", "message_id": "m_<n>"}`.
    Ok,
    /// Fail the connection before the request is read (see the module docs for what the
    /// client sees). Never delivered.
    Refuse,
    /// This HTTP status with a Graph error body: code 2, `is_transient` ("An unexpected
    /// error has occurred. Please retry your request later."). `GraphClient`: `Temporary`.
    ServerError(u16),
    /// This HTTP status with an HTML body, as a proxy in front of Graph answers.
    /// `GraphClient`: `UnexpectedResponse` (kind `Other`, but retryable since ≥ 500).
    ServerErrorHtml(u16),
    /// HTTP 400, code 613 "(#613) Calls to this api have exceeded the rate limit.", with an
    /// `X-Business-Use-Case-Usage` header carrying `estimated_time_to_regain_access` (minutes)
    /// when `Some`.
    RateLimited {
        /// `estimated_time_to_regain_access`, in minutes; `None`: no usage header.
        regain_minutes: Option<u32>,
    },
    /// HTTP 400, `OAuthException` code 190 subcode 463 (session expired).
    TokenInvalid,
    /// HTTP 400, code 551 subcode 1545041 "This person isn't available right now."
    Unavailable,
    /// HTTP 400, code 10 subcode 2018278 "This message is sent outside of allowed window."
    OutsideWindow,
    /// Read the request and deliver the message (Meta got it), then never answer: the client
    /// times out with an unknown outcome.
    HangAfterRead,
    /// Read the request, deliver nothing, never answer.
    HangBeforeRecord,
    /// Deliver at once, answer (as `Ok`) after this delay.
    Slow(Duration),
}

impl Pattern {
    /// Whether Meta keeps the message (when the request is a message).
    pub fn delivers(&self) -> bool {
        matches!(self, Self::Ok | Self::HangAfterRead | Self::Slow(_))
    }
}

/// How far an attempt got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Refused by the fake's resolver ([`FakeGraph::http_client`]): no connection was made.
    Connect,
    /// Accepted at the TCP level and closed before anything was read.
    Accept,
    /// The request was read.
    Request,
}

/// One attempt, as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// Position in the log, from 0.
    pub seq: usize,
    /// How far it got.
    pub stage: Stage,
    /// The pattern played.
    pub pattern: Pattern,
    /// Whether Meta accepted a message: the echo will come.
    pub delivered: bool,
    /// `POST`… (empty when nothing was read).
    pub method: String,
    /// `/v26.0/104987654321098/messages`… (empty when nothing was read).
    pub path: String,
    /// The page, from the path `/{version}/{page}/messages`.
    pub page: Option<String>,
    /// `recipient.id`.
    pub psid: Option<String>,
    /// `message.metadata` as sent.
    pub metadata: Option<String>,
    /// The effect key: `metadata` without its `mc-effect:` prefix (`None` without the prefix).
    pub key: Option<String>,
    /// The `mid` given to a delivered message.
    pub message_id: Option<String>,
    /// Whether the body was `multipart/form-data` (an upload).
    pub multipart: bool,
    /// The body as JSON. A multipart body becomes an object of its fields (JSON fields
    /// parsed), the file as `"filedata": {"file_name", "content_type", "len"}`. `Null` when
    /// nothing was read.
    pub body: Value,
    /// When it arrived (milliseconds since the epoch): the echo's timestamp.
    pub at_ms: u64,
}

impl LogEntry {
    /// The `messaging` item of the echo Meta sends for this message, if it was delivered.
    pub fn echo_item(&self) -> Option<Value> {
        let mid = self.message_id.as_deref()?;
        let page = self.page.as_deref()?;
        let psid = self.psid.as_deref()?;
        let sent = &self.body["message"];
        let mut message = json!({"is_echo": true, "app_id": FAKE_APP_ID, "mid": mid});
        if let Some(m) = &self.metadata {
            message["metadata"] = json!(m);
        }
        if let Some(text) = sent.get("text") {
            message["text"] = text.clone();
        }
        if let Some(attachment) = sent.get("attachment") {
            let kind = attachment["type"].as_str().unwrap_or("file");
            let payload = if kind == "template" {
                attachment["payload"].clone()
            } else {
                let url = attachment["payload"]["url"]
                    .as_str()
                    .map_or_else(|| format!("{CDN}/{mid}"), str::to_owned);
                json!({ "url": url })
            };
            message["attachments"] = json!([{ "type": kind, "payload": payload }]);
        }
        Some(json!({
            "sender": {"id": page},
            "recipient": {"id": psid},
            "timestamp": self.at_ms,
            "message": message,
        }))
    }
}

/// The `messaging` item of the echo of a message sent with `metadata` `mc-effect:<key>`
/// (no text: pass it through [`LogEntry::echo_item`] for that).
pub fn echo_item(page: &str, psid: &str, key: &str, mid: &str, time_ms: u64) -> Value {
    json!({
        "sender": {"id": page},
        "recipient": {"id": psid},
        "timestamp": time_ms,
        "message": {
            "is_echo": true,
            "app_id": FAKE_APP_ID,
            "mid": mid,
            "metadata": format!("{ECHO_KEY_PREFIX}{key}"),
        },
    })
}

/// The whole webhook body (one entry) carrying [`echo_item`].
pub fn echo_body(page: &str, psid: &str, key: &str, mid: &str, time_ms: u64) -> WebhookBody {
    WebhookBody::new(page).item(
        echo_item(page, psid, key, mid, time_ms),
        from_millis(time_ms),
    )
}

fn from_millis(ms: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
}

#[derive(Debug)]
struct Script {
    queue: VecDeque<Pattern>,
    default: Pattern,
    fail_next: Option<(usize, Pattern)>,
    until_healed: Option<Pattern>,
    log: Vec<LogEntry>,
    delivered: usize,
}

impl Script {
    /// At a connection: whether to refuse it, consuming a counted `Refuse`.
    fn refuse_connection(&mut self) -> bool {
        if let Some(p) = &self.until_healed {
            return *p == Pattern::Refuse;
        }
        if let Some((n, p)) = &mut self.fail_next {
            if *p != Pattern::Refuse {
                return false;
            }
            *n -= 1;
            if *n == 0 {
                self.fail_next = None;
            }
            return true;
        }
        if let Some(p) = self.queue.front() {
            if *p != Pattern::Refuse {
                return false;
            }
            self.queue.pop_front();
            return true;
        }
        self.default == Pattern::Refuse
    }

    /// For a request that was read: the pattern, consumed. A `Refuse` is not played here (the
    /// connection is made): such entries are left for the next connection.
    fn request_pattern(&mut self) -> Pattern {
        if let Some(p) = &self.until_healed {
            if *p != Pattern::Refuse {
                return p.clone();
            }
        }
        if let Some((n, p)) = &mut self.fail_next {
            if *p != Pattern::Refuse {
                let p = p.clone();
                *n -= 1;
                if *n == 0 {
                    self.fail_next = None;
                }
                return p;
            }
        }
        if let Some(at) = self.queue.iter().position(|p| *p != Pattern::Refuse) {
            return self.queue.remove(at).expect("position is in the queue");
        }
        if self.default == Pattern::Refuse {
            Pattern::Ok
        } else {
            self.default.clone()
        }
    }
}

/// Counts the waiters watch: (log entries, delivered messages).
type Counts = (usize, usize);

#[derive(Debug)]
struct Shared {
    script: Mutex<Script>,
    counts: watch::Sender<Counts>,
    /// Closed when the [`FakeGraph`] is dropped: hung requests then end.
    shutdown: watch::Receiver<()>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Script> {
        // A panicking test thread must not hide the log from the others.
        self.script
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends to the log (under the lock) and wakes the waiters.
    fn append(&self, script: &mut Script, mut entry: LogEntry) -> LogEntry {
        entry.seq = script.log.len();
        if entry.delivered {
            script.delivered += 1;
            entry.message_id = Some(format!("m_{}", script.delivered));
        }
        script.log.push(entry.clone());
        self.counts
            .send_replace((script.log.len(), script.delivered));
        entry
    }

    /// Decides on a new connection, logging a refusal.
    fn refuse_connection(&self, stage: Stage) -> bool {
        let mut script = self.lock();
        if !script.refuse_connection() {
            return false;
        }
        let entry = LogEntry {
            seq: 0,
            stage,
            pattern: Pattern::Refuse,
            delivered: false,
            method: String::new(),
            path: String::new(),
            page: None,
            psid: None,
            metadata: None,
            key: None,
            message_id: None,
            multipart: false,
            body: Value::Null,
            at_ms: now_ms(),
        };
        self.append(&mut script, entry);
        true
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fake Graph Send API server. Dropping it stops the server and ends hung requests.
#[derive(Debug)]
pub struct FakeGraph {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
    _shutdown: watch::Sender<()>,
}

impl Drop for FakeGraph {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeGraph {
    /// Starts the server on 127.0.0.1, port 0.
    pub async fn start() -> Self {
        let (shutdown, shutdown_rx) = watch::channel(());
        let shared = Arc::new(Shared {
            script: Mutex::new(Script {
                queue: VecDeque::new(),
                default: Pattern::Ok,
                fail_next: None,
                until_healed: None,
                log: Vec::new(),
                delivered: 0,
            }),
            counts: watch::Sender::new((0, 0)),
            shutdown: shutdown_rx,
        });
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let gate = Gate {
            listener,
            shared: shared.clone(),
        };
        let server = tokio::spawn(async move {
            axum::serve(gate, app).await.expect("fake Graph server");
        });
        Self {
            addr,
            shared,
            server,
            _shutdown: shutdown,
        }
    }

    /// The server's address (127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://localhost:<port>`: a host name, so that the client from
    /// [`FakeGraph::http_client`] resolves it through the fake. Other clients resolve
    /// `localhost` themselves (with `Refuse` degraded, see the module docs).
    pub fn base_url(&self) -> String {
        format!("http://localhost:{}", self.addr.port())
    }

    /// A `reqwest` builder wired to the fake: its resolver plays `Refuse` as a failed
    /// connection, and no connection is pooled (each request resolves anew).
    pub fn http_client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .dns_resolver(Arc::new(Resolver {
                shared: self.shared.clone(),
                addr: self.addr,
            }))
            .pool_max_idle_per_host(0)
    }

    /// The client to give `GraphClientBuilder::http_client`, with this timeout per request
    /// (the builder's own `timeout` does not apply to a client given this way).
    pub fn http_client(&self, timeout: Duration) -> reqwest::Client {
        self.http_client_builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .expect("reqwest client")
    }

    /// Appends a pattern to the script.
    pub fn push(&self, pattern: Pattern) {
        self.shared.lock().queue.push_back(pattern);
    }

    /// Appends patterns to the script, played in order by successive requests.
    pub fn script(&self, patterns: impl IntoIterator<Item = Pattern>) {
        self.shared.lock().queue.extend(patterns);
    }

    /// The pattern once the script is played out (initially [`Pattern::Ok`]).
    pub fn set_default(&self, pattern: Pattern) {
        self.shared.lock().default = pattern;
    }

    /// Plays `pattern` for the next `n` requests, ahead of the script (replacing an earlier
    /// `fail_next`; `n = 0` cancels it).
    pub fn fail_next(&self, n: usize, pattern: Pattern) {
        self.shared.lock().fail_next = (n > 0).then_some((n, pattern));
    }

    /// Plays `pattern` for every request until [`FakeGraph::heal`].
    pub fn fail_until_healed(&self, pattern: Pattern) {
        self.shared.lock().until_healed = Some(pattern);
    }

    /// Ends [`FakeGraph::fail_until_healed`] (a `fail_next` count and the script stay).
    pub fn heal(&self) {
        self.shared.lock().until_healed = None;
    }

    /// Every attempt so far, in order, refused connections included.
    pub fn requests(&self) -> Vec<LogEntry> {
        self.shared.lock().log.clone()
    }

    /// The delivered messages, in order.
    pub fn delivered(&self) -> Vec<LogEntry> {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|e| e.delivered)
            .cloned()
            .collect()
    }

    /// The effect keys of the delivered messages, in order (a key twice: delivered twice).
    /// Messages without an `mc-effect:` metadata are left out.
    pub fn delivered_keys(&self) -> Vec<String> {
        self.delivered().into_iter().filter_map(|e| e.key).collect()
    }

    /// How many times the message with this effect key was delivered.
    pub fn delivered_count(&self, key: &str) -> usize {
        self.shared
            .lock()
            .log
            .iter()
            .filter(|e| e.delivered && e.key.as_deref() == Some(key))
            .count()
    }

    /// Waits until the log holds at least `n` attempts, and returns it.
    ///
    /// # Panics
    /// After `timeout`, with the log.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<LogEntry> {
        self.wait(timeout, |(requests, _)| requests >= n, "requests", n)
            .await;
        self.requests()
    }

    /// Waits until at least `n` messages were delivered, and returns their keys.
    ///
    /// # Panics
    /// After `timeout`, with the log.
    pub async fn wait_for_delivered(&self, n: usize, timeout: Duration) -> Vec<String> {
        self.wait(timeout, |(_, delivered)| delivered >= n, "deliveries", n)
            .await;
        self.delivered_keys()
    }

    async fn wait(&self, timeout: Duration, done: impl Fn(Counts) -> bool, what: &str, n: usize) {
        let mut counts = self.shared.counts.subscribe();
        let reached = tokio::time::timeout(timeout, counts.wait_for(|c| done(*c))).await;
        assert!(
            matches!(reached, Ok(Ok(_))),
            "timed out after {timeout:?} waiting for {n} {what}; log: {:#?}",
            self.requests()
        );
    }

    /// The webhook bodies Meta sends for the messages delivered so far, one per message, in
    /// order: sign one and post it to the webhook to play Meta.
    pub fn echoes(&self) -> Vec<WebhookBody> {
        self.delivered()
            .iter()
            .filter_map(|e| {
                let item = e.echo_item()?;
                Some(WebhookBody::new(e.page.as_deref()?).item(item, from_millis(e.at_ms)))
            })
            .collect()
    }

    /// The `messaging` items of [`FakeGraph::echoes`] (for helpers that wrap items in entries).
    pub fn echo_items(&self) -> Vec<Value> {
        self.delivered()
            .iter()
            .filter_map(LogEntry::echo_item)
            .collect()
    }
}

/// The client-side hook: resolves every name to the fake, or fails the connection.
struct Resolver {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, _name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        // Decided now, in call order: one resolution per connection, one connection per request.
        let refused = self.shared.refuse_connection(Stage::Connect);
        let addr = self.addr;
        Box::pin(async move {
            if refused {
                Err("connection refused (FakeGraph: Pattern::Refuse)".into())
            } else {
                let addrs: reqwest::dns::Addrs = Box::new(std::iter::once(addr));
                Ok(addrs)
            }
        })
    }
}

/// The listener: closes a connection at once when `Refuse` is due.
struct Gate {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl axum::serve::Listener for Gate {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.listener.accept().await else {
                // Out of descriptors and the like: try again shortly.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            };
            if self.shared.refuse_connection(Stage::Accept) {
                drop(stream);
                continue;
            }
            return (stream, addr);
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// What a request says, as far as the fake cares.
struct Parsed {
    page: Option<String>,
    body: Value,
    multipart: bool,
}

impl Parsed {
    fn read(path: &str, headers: &HeaderMap, bytes: &[u8]) -> Self {
        // `/{version}/{page}/messages`
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let page = match segments.as_slice() {
            [_, page, ..] => Some((*page).to_owned()),
            _ => None,
        };
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if content_type.starts_with("multipart/form-data") {
            Self {
                page,
                body: multipart_json(content_type, bytes),
                multipart: true,
            }
        } else {
            Self {
                page,
                body: serde_json::from_slice(bytes).unwrap_or(Value::Null),
                multipart: false,
            }
        }
    }
}

/// A multipart body as a JSON object of its fields.
fn multipart_json(content_type: &str, body: &[u8]) -> Value {
    let mut fields = serde_json::Map::new();
    for part in multipart_parts(content_type, body) {
        let value = if let Some(file_name) = part.file_name {
            json!({
                "file_name": file_name,
                "content_type": part.content_type,
                "len": part.data.len(),
            })
        } else {
            let text = String::from_utf8_lossy(part.data).into_owned();
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        fields.insert(part.name, value);
    }
    Value::Object(fields)
}

struct Part<'a> {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: &'a [u8],
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The parts of a `multipart/form-data` body (RFC 7578), enough for what reqwest writes.
fn multipart_parts<'a>(content_type: &str, body: &'a [u8]) -> Vec<Part<'a>> {
    let Some(boundary) = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .next()
    else {
        return Vec::new();
    };
    let open = format!("--{boundary}");
    let between = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    let Some(start) = find(body, open.as_bytes()) else {
        return parts;
    };
    let mut rest = &body[start + open.len()..];
    // After each delimiter: `--` (the end) or CRLF, headers, a blank line, the content.
    while let Some(after) = rest.strip_prefix(b"\r\n") {
        let Some(head_end) = find(after, b"\r\n\r\n") else {
            break;
        };
        let head = String::from_utf8_lossy(&after[..head_end]);
        let content = &after[head_end + 4..];
        let Some(end) = find(content, between.as_bytes()) else {
            break;
        };
        let mut part = Part {
            name: String::new(),
            file_name: None,
            content_type: None,
            data: &content[..end],
        };
        for line in head.split("\r\n") {
            let Some((header, value)) = line.split_once(':') else {
                continue;
            };
            if header.eq_ignore_ascii_case("content-disposition") {
                part.name = disposition_param(value, "name").unwrap_or_default();
                part.file_name = disposition_param(value, "filename");
            } else if header.eq_ignore_ascii_case("content-type") {
                part.content_type = Some(value.trim().to_owned());
            }
        }
        parts.push(part);
        rest = &content[end + between.len()..];
    }
    parts
}

/// `name="value"` (or unquoted) from a `Content-Disposition` value.
fn disposition_param(value: &str, param: &str) -> Option<String> {
    value.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        (k.trim() == param).then(|| v.trim().trim_matches('"').to_owned())
    })
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let parsed = Parsed::read(&path, &parts.headers, &bytes);
    let is_message = path.ends_with("/messages") && parsed.body.get("message").is_some();
    let psid = parsed.body["recipient"]["id"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            parsed.body["recipient"]["id"]
                .as_u64()
                .map(|n| n.to_string())
        });
    let metadata = parsed.body["message"]["metadata"]
        .as_str()
        .map(str::to_owned);
    let key = metadata
        .as_deref()
        .and_then(|m| m.strip_prefix(ECHO_KEY_PREFIX))
        .map(str::to_owned);
    let entry = {
        let mut script = shared.lock();
        let pattern = script.request_pattern();
        let entry = LogEntry {
            seq: 0,
            stage: Stage::Request,
            delivered: is_message && pattern.delivers(),
            pattern,
            method: parts.method.to_string(),
            path: path.clone(),
            page: parsed.page,
            psid,
            metadata,
            key,
            message_id: None,
            multipart: parsed.multipart,
            body: parsed.body,
            at_ms: now_ms(),
        };
        shared.append(&mut script, entry)
    };
    answer(&shared, &entry).await
}

fn fbtrace_id(entry: &LogEntry) -> String {
    format!("FakeTrace{}", entry.seq)
}

fn graph_error(entry: &LogEntry, status: u16, error: Value) -> Response {
    let mut error = error;
    error["fbtrace_id"] = json!(fbtrace_id(entry));
    respond(
        status,
        "application/json",
        json!({ "error": error }).to_string(),
    )
}

fn respond(status: u16, content_type: &str, body: String) -> Response {
    Response::builder()
        .status(StatusCode::from_u16(status).expect("a valid HTTP status"))
        .header("content-type", content_type)
        // One request per connection: each request meets the connection-level patterns.
        .header("connection", "close")
        .body(Body::from(body))
        .expect("a valid response")
}

/// Never answers (until the fake is dropped).
async fn hang(shared: &Shared) -> Response {
    let mut shutdown = shared.shutdown.clone();
    while shutdown.changed().await.is_ok() {}
    respond(503, "text/plain", "FakeGraph stopped".into())
}

async fn answer(shared: &Shared, entry: &LogEntry) -> Response {
    match &entry.pattern {
        Pattern::Ok => success(entry),
        Pattern::Slow(delay) => {
            tokio::time::sleep(*delay).await;
            success(entry)
        }
        Pattern::HangAfterRead | Pattern::HangBeforeRecord => hang(shared).await,
        Pattern::ServerError(status) => graph_error(
            entry,
            *status,
            json!({
                "message": "An unexpected error has occurred. Please retry your request later.",
                "type": "OAuthException",
                "is_transient": true,
                "code": 2,
            }),
        ),
        Pattern::ServerErrorHtml(status) => {
            let reason = StatusCode::from_u16(*status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error");
            let html = format!(
                "<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>"
            );
            respond(*status, "text/html; charset=utf-8", html)
        }
        Pattern::RateLimited { regain_minutes } => {
            let mut response = graph_error(
                entry,
                400,
                json!({
                    "message": "(#613) Calls to this api have exceeded the rate limit.",
                    "type": "OAuthException",
                    "code": 613,
                }),
            );
            if let Some(minutes) = regain_minutes {
                let page = entry.page.clone().unwrap_or_default();
                let usage = json!({ page: [{
                    "type": "messenger",
                    "call_count": 100,
                    "total_cputime": 1,
                    "total_time": 1,
                    "estimated_time_to_regain_access": minutes,
                }]});
                response.headers_mut().insert(
                    "x-business-use-case-usage",
                    usage.to_string().parse().expect("a header value"),
                );
            }
            response
        }
        Pattern::TokenInvalid => graph_error(
            entry,
            400,
            json!({
                "message": "Error validating access token: Session has expired on Tuesday, 01-Jul-25 10:00:00 PDT. The current time is Tuesday, 01-Jul-25 11:00:00 PDT.",
                "type": "OAuthException",
                "code": 190,
                "error_subcode": 463,
            }),
        ),
        Pattern::Unavailable => graph_error(
            entry,
            400,
            json!({
                "message": "(#551) This person isn't available right now.",
                "type": "OAuthException",
                "code": 551,
                "error_subcode": 1_545_041,
            }),
        ),
        Pattern::OutsideWindow => graph_error(
            entry,
            400,
            json!({
                "message": "(#10) This message is sent outside of allowed window. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview",
                "type": "OAuthException",
                "code": 10,
                "error_subcode": 2_018_278,
            }),
        ),
        // Played at the connection; `request_pattern` never returns it.
        Pattern::Refuse => unreachable!("Refuse is played when connecting"),
    }
}

fn success(entry: &LogEntry) -> Response {
    let body = match (&entry.message_id, entry.path.ends_with("/messages")) {
        (Some(mid), _) => json!({"recipient_id": entry.psid, "message_id": mid}),
        // A sender action (typing, seen).
        (None, true) => json!({"recipient_id": entry.psid}),
        (None, false) => json!({"success": true}),
    };
    respond(200, "application/json", body.to_string())
}
