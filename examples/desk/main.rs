//! Run with: `cargo run --example desk`
//!
//! The agent desk: one process with the webhook endpoints, a web page for agents (sign in,
//! presence, offers with their countdown, Accept and Reject, the transcript, text and files
//! both ways, End and Close, the conversation list), on embedded defaults (SQLite in a data
//! directory).
//!
//! Without `--real` it runs in simulation mode (the page says so in a banner): a simulated
//! customer page sends correctly signed webhooks to this server (text, a picture, a file, an
//! unsupported file, a redelivered duplicate), and a local fake Graph endpoint receives the
//! agents' sends and shows them to the simulated customer. Simulation has three demo
//! accounts, agents `alice` and `bob` and supervisor `sam`, whose password is printed at
//! start. With `--real` it runs against the real Messenger Platform and needs
//! `PAGE_ACCESS_TOKEN`, `APP_SECRET` and `VERIFY_TOKEN` (it refuses to start without them,
//! naming what is missing); its agents are the accounts of `agents.toml` in the data
//! directory, made with `cargo run --example desk -- add-agent NAME --role agent --capacity
//! 3` (the password is read from standard input).
//!
//! The panel shows everything the customer does: reactions on the message they react to,
//! quoted replies, edits (the current text, "edited", the earlier versions on hover), removed
//! messages (kept and marked "removed by the customer", the default), replies from the Page
//! inbox or another app with their author, stickers, links and locations, and on each agent
//! message whether it was sent (✓), delivered (✓✓) or read. Agents react to the customer's
//! messages with the buttons beside them.
//!
//! Safe against the web: sessions in an `HttpOnly`, `SameSite=Strict` cookie, every agent
//! route answers 401 without one, writes come from the desk's own origin as JSON, the Host
//! header must name the desk, files are served as attachments under a sandbox policy, and the
//! page has a strict Content Security Policy (see `web.rs`, `auth.rs`, `media.rs`).
//!
//! Options: `--real`; `--port N` (default 8080; 0 picks a free port) or `--agent-bind ADDR`
//! (default `127.0.0.1:8080`) for the agent page; `--webhook-bind ADDR` to serve `/webhook`
//! on a listener of its own (public, say, while the agent page stays on loopback);
//! `--origin URL` (repeatable: the public address of the agent page behind a proxy, such as
//! `https://desk.example.com`) and `--host NAME` (repeatable: another Host header value to
//! answer to); `--data DIR` (default `desk-data`); `--accounts FILE` (default
//! `DIR/agents.toml`); `--policy FILE.toml` (the attachment policy; see
//! `examples/policy.sample.toml`); `--mark-seen on|off` (default on: opening a conversation
//! marks the customer's messages seen, `sender_action` `mark_seen`); `--typing on|off`
//! (default on: the customer sees the typing bubble while the agent types, `typing_on`, at
//! most once every 5 s per conversation).

mod auth;
mod errors;
mod media;
mod web;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use messenger_channel::agents::{AgentNotifier, InMemoryRouter, Presence};
use messenger_channel::attachment::{AttachmentPolicy, PolicyConfig};
use messenger_channel::axum::WebhookRoutes;
use messenger_channel::conversation::{
    Author, Conversation, ConversationConfig, Offer, SendRefusal, TranscriptLine,
};
use messenger_channel::engine::{Delivery, Engine, REACTION_MID_MAX_BYTES};
use messenger_channel::ids::{AgentId, AppId, ConversationId, PageId};
use messenger_channel::secret::{AppSecret, PageAccessToken, VerifyToken};
use messenger_channel::send::{GraphClient, MediaKind, PageApi, SenderAction, TEXT_MAX_CHARS};
use messenger_channel::store::{ConversationStore, SqliteStore, StoreError};
use messenger_channel::webhook::Webhook;
use messenger_channel::webhook::WebhookBody;
use messenger_channel::window::WindowConfig;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::auth::SignedIn;
use crate::errors::engine_error;
use crate::web::{JsonBody, error_response};

const SIM_PAGE: &str = "100000000000001";
const SIM_CUSTOMER: &str = "5550000000000001";
const SIM_SECRET: &str = "desk-simulation-secret";
const SIM_VERIFY: &str = "desk-simulation";
/// The largest file an agent uploads (Messenger takes 25 MB; the attachment policy may say
/// less).
const FILE_MAX_BYTES: usize = 26 * 1024 * 1024;
/// At most one typing indicator per conversation this often.
const TYPING_EVERY: Duration = Duration::from_secs(5);
/// At most one seen mark per conversation this often (a looping browser cannot spend the
/// page's Graph budget).
const SEEN_EVERY: Duration = Duration::from_secs(30);
const PRIVACY_NOTICE: &str =
    "Hello! This conversation may be monitored, recorded and stored to help us serve you.";

/// Milliseconds since the Unix epoch.
fn unix_ms(t: SystemTime) -> u64 {
    u64::try_from(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

/// Events pushed to agents' pages: `(agent or everyone, JSON)`.
type Bus = broadcast::Sender<(Option<String>, String)>;

/// Tells agents' pages what changed.
struct DeskNotifier {
    bus: Bus,
}

#[async_trait::async_trait]
impl AgentNotifier for DeskNotifier {
    async fn offer(&self, conversation: &Conversation, offer: &Offer) {
        let expires = unix_ms(offer.expires_at);
        let event = json!({"type": "offer", "conversation": conversation.id().as_str(), "customer": conversation.customer().as_str(), "expires_at": expires});
        let _ = self
            .bus
            .send((Some(offer.agent.as_str().to_owned()), event.to_string()));
    }

    async fn withdraw(&self, conversation: &ConversationId, agent: &AgentId) {
        let event = json!({"type": "withdraw", "conversation": conversation.as_str()});
        let _ = self
            .bus
            .send((Some(agent.as_str().to_owned()), event.to_string()));
    }

    async fn updated(&self, conversation: &Conversation, _lines: &[TranscriptLine]) {
        let event = json!({"type": "updated", "conversation": conversation.id().as_str()});
        let _ = self.bus.send((None, event.to_string()));
    }
}

/// What the simulated customer sees and can send.
#[derive(Default)]
struct Simulation {
    /// Messages the page sent to the customer (through the fake Graph endpoint).
    inbox: Vec<Value>,
    /// Files the page sent, by number.
    files: Vec<(String, String, Vec<u8>)>,
    /// The last webhook body, for redelivery.
    last_body: Option<WebhookBody>,
    next: u64,
    /// How the simulated Graph API answers sends: `ok`, `down` (HTTP 503, retried) or
    /// `token` (error 190: the page needs attention), to try the desk under failures.
    graph: String,
    /// Sender actions the page sent (reactions, seen marks, typing), as the Graph API got them.
    actions: Vec<Value>,
    /// The id of the customer's last simulated message.
    last_in: Option<String>,
    /// Loads of `/sim/canary`: a hostile file's script ran somewhere (never, we hope).
    canary: Vec<String>,
}

struct Desk {
    engine: Arc<Engine>,
    /// Accounts, sessions and failed sign-ins.
    auth: Arc<auth::Auth>,
    store: Arc<SqliteStore>,
    router: Arc<InMemoryRouter>,
    bus: Bus,
    /// `Some` in simulation mode.
    simulation: Option<Mutex<Simulation>>,
    /// Where this desk's own `/webhook` is (the simulated customer posts there).
    webhook_base: String,
    /// The agent page's address (the simulated customer's files are there).
    base: String,
    secret: AppSecret,
    http: reqwest::Client,
    /// The Graph client, for sender actions (seen marks, typing).
    pages: Arc<GraphClient>,
    /// Whether opening a conversation marks it seen.
    mark_seen: bool,
    /// Whether the customer sees the agent typing.
    typing: bool,
    /// When a sender action (typing, seen) was last sent, by conversation and action.
    actions_sent: Mutex<HashMap<(String, bool), Instant>>,
}

type Shared = Arc<Desk>;

/// What an agent's action names; who acts comes from the session.
#[derive(Deserialize)]
struct AgentAction {
    conversation: Option<String>,
    text: Option<String>,
    /// The message reacted to (`react`, `unreact`).
    mid: Option<String>,
    /// The emoji (`react`).
    reaction: Option<String>,
}

async fn agent_page() -> Response {
    web::page(include_str!("agent.html"))
}

async fn customer_page() -> Response {
    web::page(include_str!("customer.html"))
}

/// What the page needs before anyone signs in: whether this is a simulation.
async fn desk_info(State(desk): State<Shared>) -> Response {
    let demo: Vec<_> = if desk.simulation.is_some() {
        auth::DEMO_ACCOUNTS.iter().map(|(name, ..)| *name).collect()
    } else {
        Vec::new()
    };
    axum::Json(json!({"simulation": desk.simulation.is_some(), "demo_accounts": demo}))
        .into_response()
}

#[derive(Deserialize)]
struct SignIn {
    name: String,
    password: String,
}

/// `POST /agent/signin {name, password}`: a session cookie, and the account.
async fn sign_in(
    State(desk): State<Shared>,
    headers: HeaderMap,
    JsonBody(s): JsonBody<SignIn>,
) -> Response {
    let (account, token) = match desk.auth.sign_in(&s.name, &s.password).await {
        Ok(signed) => signed,
        Err(e) => return e.response(),
    };
    let agent = AgentId::from(account.name.as_str());
    desk.router.set_capacity(&agent, account.capacity);
    let mut response = me_json(&desk, &account).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        auth::session_cookie(&token, served_over_https(&headers)),
    );
    response
}

/// Whether the page is served over HTTPS (behind a proxy that terminates TLS): the browser's
/// `Origin` says so. The session cookie is then `Secure`.
fn served_over_https(headers: &HeaderMap) -> bool {
    headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| o.starts_with("https://"))
}

/// `POST /agent/signout`: ends the session; an agent with no other session goes offline.
async fn sign_out(State(desk): State<Shared>, who: SignedIn, headers: HeaderMap) -> Response {
    match desk.auth.sessions.remove(&who.token, &who.account.name) {
        Ok(others) => {
            if !others {
                desk.router.set_presence(&who.agent, Presence::Offline);
            }
        }
        Err(e) => eprintln!("desk: could not save the sessions: {e}"),
    }
    let mut response = axum::Json(json!({"ok": true})).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        auth::expired_cookie(served_over_https(&headers)),
    );
    response
}

fn presence_name(p: Presence) -> &'static str {
    match p {
        Presence::Available => "available",
        Presence::Busy => "busy",
        Presence::Away => "away",
        Presence::DoNotDisturb => "dnd",
        _ => "offline",
    }
}

fn me_json(desk: &Desk, account: &auth::Account) -> axum::Json<Value> {
    let agent = AgentId::from(account.name.as_str());
    let presence = desk
        .router
        .agents()
        .into_iter()
        .find(|(id, ..)| *id == agent)
        .map_or("offline", |(_, p, ..)| presence_name(p));
    axum::Json(json!({
        "name": account.name,
        "display_name": account.display_name,
        "role": account.role.as_str(),
        "capacity": account.capacity,
        "presence": presence,
        "simulation": desk.simulation.is_some(),
    }))
}

/// `GET /agent/me`: the signed-in agent.
async fn me(State(desk): State<Shared>, who: SignedIn) -> Response {
    me_json(&desk, &who.account).into_response()
}

#[derive(Deserialize)]
struct PresenceChange {
    presence: String,
}

/// `POST /agent/presence {presence}`: available, busy, away, dnd or offline.
async fn presence(
    State(desk): State<Shared>,
    who: SignedIn,
    JsonBody(p): JsonBody<PresenceChange>,
) -> Response {
    let presence = match p.presence.as_str() {
        "available" => Presence::Available,
        "busy" => Presence::Busy,
        "away" => Presence::Away,
        "dnd" => Presence::DoNotDisturb,
        "offline" => Presence::Offline,
        _ => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "Presence is available, busy, away, dnd or offline.",
            );
        }
    };
    desk.router.set_capacity(&who.agent, who.account.capacity);
    desk.router.set_presence(&who.agent, presence);
    // A new arrival may take what waits in the queue.
    let _ = desk.engine.tick(SystemTime::now()).await;
    me_json(&desk, &who.account).into_response()
}

async fn act(
    State(desk): State<Shared>,
    who: SignedIn,
    Path(action): Path<String>,
    JsonBody(a): JsonBody<AgentAction>,
) -> Response {
    let agent = who.agent;
    let Some(id) = a.conversation.as_deref().map(ConversationId::from) else {
        return error_response(StatusCode::BAD_REQUEST, "Say which conversation.");
    };
    let now = SystemTime::now();
    let result = match action.as_str() {
        "accept" => desk.engine.accept(&id, &agent, now).await.map(|()| None),
        "reject" => desk.engine.reject(&id, &agent, now).await.map(|()| None),
        "end" => desk.engine.end(&id, &agent, now).await.map(|()| None),
        "close" => desk
            .engine
            .close_session(&id, &agent, now)
            .await
            .map(|()| None),
        "revive" => desk.engine.revive(&id, &agent, now).await.map(|()| None),
        "react" | "unreact" => return react(&desk, &id, &agent, &a, action == "react").await,
        "seen" => return sender_action(&desk, &id, &agent, SenderAction::MarkSeen).await,
        "typing" => return sender_action(&desk, &id, &agent, SenderAction::TypingOn).await,
        "send" => {
            let text = a.text.as_deref().unwrap_or("");
            if text.trim().is_empty() {
                return error_response(StatusCode::BAD_REQUEST, "Write a message before sending.");
            }
            if text.chars().count() > TEXT_MAX_CHARS {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    format!("A message holds at most {TEXT_MAX_CHARS} characters."),
                );
            }
            desk.engine
                .send_text(&id, &agent, text, now)
                .await
                .map(Some)
        }
        _ => return error_response(StatusCode::NOT_FOUND, "The desk has no such action."),
    };
    match result {
        Ok(None) => axum::Json(json!({"ok": true})).into_response(),
        Ok(Some(delivery)) => delivery_response(&delivery),
        Err(e) => engine_error(&e),
    }
}

/// The agent reacts to a customer's message of the conversation (or removes the reaction).
/// The engine checks, in this order, that the agent holds the conversation, that the message
/// is the customer's in it, and the emoji's length.
async fn react(
    desk: &Desk,
    id: &ConversationId,
    agent: &AgentId,
    a: &AgentAction,
    add: bool,
) -> Response {
    let Some(mid) = a
        .mid
        .as_deref()
        .filter(|m| !m.is_empty() && m.len() <= REACTION_MID_MAX_BYTES)
    else {
        return error_response(StatusCode::BAD_REQUEST, "Say which message to react to.");
    };
    let reaction = if add {
        Some(a.reaction.as_deref().unwrap_or(""))
    } else {
        None
    };
    match desk
        .engine
        .react(id, agent, mid, reaction, SystemTime::now())
        .await
    {
        Ok(delivery) => delivery_response(&delivery),
        Err(e) => engine_error(&e),
    }
}

/// Marks the conversation seen, or shows the typing bubble, when configured, for the agent
/// who holds it (per conversation, typing at most once every [`TYPING_EVERY`], seen once
/// every [`SEEN_EVERY`]).
async fn sender_action(
    desk: &Desk,
    id: &ConversationId,
    agent: &AgentId,
    action: SenderAction,
) -> Response {
    let enabled = match action {
        SenderAction::MarkSeen => desk.mark_seen,
        _ => desk.typing,
    };
    if !enabled {
        return axum::Json(json!({"ok": true, "sent": false})).into_response();
    }
    let conversation = match desk.store.load(id).await {
        Ok(Some(stored)) => stored.conversation,
        Ok(None) => return error_response(StatusCode::NOT_FOUND, "There is no such conversation."),
        Err(e) => return store_error(&e),
    };
    if let Err(refusal) = conversation.may_send(agent) {
        let words = match refusal {
            SendRefusal::NotHolder { .. } => "Another agent holds this conversation.".to_owned(),
            other => errors::capitalised(&other.to_string()),
        };
        return error_response(StatusCode::FORBIDDEN, words);
    }
    {
        let typing = action == SenderAction::TypingOn;
        let every = if typing { TYPING_EVERY } else { SEEN_EVERY };
        let key = (id.as_str().to_owned(), typing);
        let mut sent = desk.actions_sent.lock().unwrap();
        let now = Instant::now();
        if sent
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < every)
        {
            return axum::Json(json!({"ok": true, "sent": false})).into_response();
        }
        sent.retain(|(_, t), at| {
            now.duration_since(*at) < if *t { TYPING_EVERY } else { SEEN_EVERY }
        });
        sent.insert(key, now);
    }
    match desk
        .pages
        .sender_action(conversation.page(), conversation.customer(), action)
        .await
    {
        Ok(()) => axum::Json(json!({"ok": true, "sent": true})).into_response(),
        Err(e) => {
            eprintln!("desk: a sender action failed: {e}");
            error_response(StatusCode::BAD_GATEWAY, "Messenger did not take it.")
        }
    }
}

/// A store failure, logged; the agent reads that it may try again (or that there is no such
/// conversation).
fn store_error(e: &StoreError) -> Response {
    if let StoreError::NotFound(_) = e {
        return error_response(StatusCode::NOT_FOUND, "There is no such conversation.");
    }
    eprintln!("desk: the store failed: {e}");
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "The desk could not read or save this just now. Try again.",
    )
}

/// What became of an agent's message, for the page.
fn delivery_response(delivery: &Delivery) -> Response {
    match delivery {
        Delivery::Sent { message_id } => {
            axum::Json(json!({"ok": true, "delivery": "sent", "message_id": message_id}))
                .into_response()
        }
        Delivery::Retrying { reason, .. } => {
            axum::Json(json!({"ok": true, "delivery": "retrying", "reason": reason}))
                .into_response()
        }
        _ => axum::Json(json!({"ok": true})).into_response(),
    }
}

#[derive(Deserialize)]
struct FileQuery {
    conversation: String,
    name: String,
    mime: Option<String>,
}

/// `POST /agent/file?conversation=&name=&mime=` with the file's bytes as the body (and the
/// desk's upload header, checked with the origin in `web::check_writes`).
async fn send_file(
    State(desk): State<Shared>,
    who: SignedIn,
    q: Result<Query<FileQuery>, axum::extract::rejection::QueryRejection>,
    body: Bytes,
) -> Response {
    let Ok(Query(q)) = q else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "Say which conversation and the file's name.",
        );
    };
    if body.is_empty() {
        return error_response(StatusCode::BAD_REQUEST, "The file is empty.");
    }
    let mime = q.mime.filter(|m| !m.is_empty()).unwrap_or_else(|| {
        mime_guess::from_path(&q.name)
            .first_or_octet_stream()
            .essence_str()
            .to_owned()
    });
    let result = desk
        .engine
        .send_file(
            &ConversationId::from(q.conversation.as_str()),
            &who.agent,
            &q.name,
            &mime,
            body,
            SystemTime::now(),
        )
        .await;
    match result {
        Ok(delivery) => delivery_response(&delivery),
        Err(e) => engine_error(&e),
    }
}

/// The agent's conversations (offered, active, waiting, wrap-up) with their transcripts.
async fn conversations(State(desk): State<Shared>, who: SignedIn) -> Response {
    let agent = who.agent;
    let listed = match desk.store.list_for_agent(&agent).await {
        Ok(l) => l,
        Err(e) => return store_error(&e),
    };
    let mut out = Vec::new();
    for stored in listed {
        let c = stored.conversation;
        let lines: Vec<Value> = desk
            .store
            .transcript(c.id())
            .await
            .unwrap_or_default()
            .iter()
            .map(|l| line_json(&c, l))
            .collect();
        out.push(json!({
            "id": c.id().as_str(),
            "customer": c.customer().as_str(),
            "state": format!("{:?}", c.state().kind()),
            "paused": c.is_paused(),
            "lines": lines,
        }));
    }
    let agents: Vec<_> = desk
        .router
        .agents()
        .into_iter()
        .map(|(id, presence, load, capacity)| json!({"agent": id.as_str(), "presence": format!("{presence:?}"), "load": load, "capacity": capacity}))
        .collect();
    // Channel health: pages whose sends are stopped, and the outbox at a glance.
    let attention: Vec<_> = desk
        .engine
        .pages_needing_attention()
        .into_iter()
        .map(|p| json!({"page": p.page, "reason": p.reason}))
        .collect();
    let outbox = match desk.store.outbox_stats().await {
        Ok(stats) => json!({
            "pending": stats.pending,
            "failed": stats.failed,
            "oldest_pending_seconds": stats
                .oldest_pending
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .map_or(0, |d| d.as_secs()),
        }),
        Err(_) => serde_json::Value::Null,
    };
    axum::Json(
        json!({"conversations": out, "agents": agents, "attention": attention, "outbox": outbox}),
    )
    .into_response()
}

/// A transcript line for the page; an agent's sent message says how far it got (sent,
/// delivered, read), from the conversation's watermarks.
fn line_json(c: &Conversation, line: &TranscriptLine) -> Value {
    let mut v = serde_json::to_value(line).unwrap_or(Value::Null);
    if matches!(line.author, Author::Agent(_)) && line.mid.is_some() {
        v["receipt"] = json!(c.message_status(line.sent_at));
    }
    v
}

async fn events(State(desk): State<Shared>, who: SignedIn) -> impl IntoResponse {
    let rx = desk.bus.subscribe();
    let agent = who.account.name;
    let stream = futures_util::stream::unfold((rx, agent), |(mut rx, agent)| async move {
        loop {
            match rx.recv().await {
                Ok((to, data)) if to.as_deref().is_none_or(|t| t == agent) => {
                    return Some((
                        Ok::<_, std::convert::Infallible>(SseEvent::default().data(data)),
                        (rx, agent),
                    ));
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

// ---- Simulation: the customer's side and the fake Graph API ----

fn sim_files() -> HashMap<&'static str, (&'static str, &'static [u8])> {
    HashMap::from([
        ("photo.png", ("image/png", &include_bytes!("../sample/logo.png")[..])),
        ("invoice.pdf", ("application/pdf", &b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"[..])),
        ("setup.exe", ("application/octet-stream", &b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00\x00\x00"[..])),
        // Hostile files: were they ever run in the desk's origin, they would alert and load
        // the canary (`/sim/canary`), which the simulation records.
        ("drawing.svg", ("image/svg+xml", &b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert('svg')\"><script>alert('svg');new Image().src='/sim/canary?from=svg'</script><circle r=\"9\"/></svg>"[..])),
        ("page.html", ("text/html", &b"<!doctype html><html><body><script>alert('html');new Image().src='/sim/canary?from=html'</script>Hello</body></html>"[..])),
    ])
}

async fn sim_file(Path(name): Path<String>) -> Response {
    match sim_files().get(name.as_str()) {
        Some((mime, bytes)) => ([(header::CONTENT_TYPE, *mime)], *bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(Deserialize)]
struct SimSend {
    kind: String,
    text: Option<String>,
    /// The message a reaction, reply, edit or removal is about.
    mid: Option<String>,
    /// A shared link's URL (`link`).
    url: Option<String>,
}

/// Posts a webhook body, signed, to this server's own `/webhook`, as Meta would.
async fn deliver(desk: &Desk, body: &WebhookBody) -> Result<u16, String> {
    let signed = body.sign(&desk.secret);
    let response = desk
        .http
        .post(format!("{}/webhook", desk.webhook_base))
        .headers(signed.headers())
        .body(signed.body().to_vec())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

#[derive(Deserialize)]
struct SimGraph {
    mode: String,
}

/// Sets how the simulated Graph API answers (`ok`, `down`, `token`); after `token`, the page
/// resumes once the mode is `ok` again (as a host does after renewing a token).
async fn sim_graph(State(desk): State<Shared>, JsonBody(g): JsonBody<SimGraph>) -> Response {
    let Some(sim) = &desk.simulation else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !matches!(g.mode.as_str(), "ok" | "down" | "token") {
        return error_response(StatusCode::BAD_REQUEST, "mode is ok, down or token");
    }
    sim.lock().unwrap().graph.clone_from(&g.mode);
    if g.mode == "ok" {
        for page in desk.engine.pages_needing_attention() {
            desk.engine.resume_page(&PageId::from(page.page.as_str()));
        }
    }
    axum::Json(json!({"ok": true, "mode": g.mode})).into_response()
}

/// The webhook body of what the simulated customer does (`kind`), as `mid` at `now`; `None`
/// for a kind it cannot do.
fn sim_body(desk: &Desk, s: &SimSend, mid: &str, now: SystemTime) -> Option<WebhookBody> {
    let now_ms = unix_ms(now);
    let about = s.mid.clone().unwrap_or_default();
    let text = s.text.clone();
    let body = WebhookBody::new(SIM_PAGE);
    // The customer's other events, as Meta's JSON.
    let from_customer = |key: &str, value: Value| {
        let mut item = json!({"sender": {"id": SIM_CUSTOMER}, "recipient": {"id": SIM_PAGE}, "timestamp": now_ms});
        item[key] = value;
        item
    };
    Some(match s.kind.as_str() {
        "text" => body.message(
            SIM_CUSTOMER,
            mid,
            text.as_deref().unwrap_or("Hello!"),
            now,
        ),
        "picture" | "file" | "unsupported" | "svg" | "html" => {
            let (kind, name) = match s.kind.as_str() {
                "picture" => (MediaKind::Image, "photo.png"),
                "file" => (MediaKind::File, "invoice.pdf"),
                "svg" => (MediaKind::Image, "drawing.svg"),
                "html" => (MediaKind::File, "page.html"),
                _ => (MediaKind::File, "setup.exe"),
            };
            let url = format!("{}/sim/files/{name}", desk.base);
            body.attachment(SIM_CUSTOMER, mid, kind, &url, now)
        }
        "sticker" => body.item(
            from_customer(
                "message",
                json!({"mid": mid, "attachments": [{"type": "image", "payload": {"url": format!("{}/sim/files/photo.png", desk.base), "sticker_id": 369_239_263_222_822_u64}}]}),
            ),
            now,
        ),
        "location" => body.item(
            from_customer(
                "message",
                json!({"mid": mid, "attachments": [{"type": "location", "title": "Pinned location", "payload": {"coordinates": {"lat": 48.8584, "long": 2.2945}}}]}),
            ),
            now,
        ),
        "link" => body.item(
            from_customer(
                "message",
                json!({"mid": mid, "attachments": [{"type": "fallback",
                    "title": text.unwrap_or_else(|| "Our shop".into()),
                    "url": s.url.clone().unwrap_or_else(|| "https://shop.example/item".into()), "payload": null}]}),
            ),
            now,
        ),
        "reply" => body.item(
            from_customer(
                "message",
                json!({"mid": mid, "text": text.unwrap_or_else(|| "This one".into()), "reply_to": {"mid": about}}),
            ),
            now,
        ),
        "reaction" => body.item(
            from_customer(
                "reaction",
                json!({"mid": about, "action": "react", "emoji": text.unwrap_or_else(|| "\u{1F44D}".into()), "reaction": "like"}),
            ),
            now,
        ),
        "edit" => body.item(
            from_customer(
                "message_edit",
                json!({"mid": about, "text": text.unwrap_or_default(), "num_edit": 1}),
            ),
            now,
        ),
        "unsend" => body.item(
            from_customer("message", json!({"mid": about, "is_deleted": true})),
            now,
        ),
        "read" => body.item(from_customer("read", json!({"watermark": now_ms})), now),
        // A person answering from the Page inbox: an echo with no app id.
        "inbox" => body.item(
            json!({"sender": {"id": SIM_PAGE}, "recipient": {"id": SIM_CUSTOMER}, "timestamp": now_ms,
                "message": {"mid": mid, "is_echo": true, "text": text.unwrap_or_else(|| "Hi, this is the shop".into())}}),
            now,
        ),
        _ => return None,
    })
}

async fn sim_send(State(desk): State<Shared>, JsonBody(s): JsonBody<SimSend>) -> Response {
    let Some(sim) = &desk.simulation else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body = if s.kind == "redeliver" {
        match sim.lock().unwrap().last_body.clone() {
            Some(b) => b,
            None => return error_response(StatusCode::BAD_REQUEST, "nothing to redeliver yet"),
        }
    } else {
        let n = {
            let mut sim = sim.lock().unwrap();
            sim.next += 1;
            sim.next
        };
        let now = SystemTime::now();
        let mid = format!("m_sim_in_{n}_{}", unix_ms(now));
        let Some(body) = sim_body(&desk, &s, &mid, now) else {
            return error_response(
                StatusCode::BAD_REQUEST,
                "kind is text, picture, file, unsupported, svg, html, sticker, location, link, reply, reaction, edit, unsend, read, inbox or redeliver",
            );
        };
        let mut sim = sim.lock().unwrap();
        sim.last_body = Some(body.clone());
        sim.last_in = Some(mid);
        body
    };
    let mid = sim.lock().unwrap().last_in.clone();
    match deliver(&desk, &body).await {
        Ok(status) => {
            axum::Json(json!({"ok": status == 200, "status": status, "mid": mid})).into_response()
        }
        Err(e) => error_response(StatusCode::BAD_GATEWAY, e),
    }
}

/// `GET /sim/canary?from=…`: what a hostile sample file's script would load, had it run.
async fn sim_canary(
    State(desk): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(sim) = &desk.simulation {
        let from = q.get("from").cloned().unwrap_or_default();
        eprintln!("desk: the canary was loaded (from {from}): a hostile file's script ran");
        sim.lock().unwrap().canary.push(from);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn sim_inbox(State(desk): State<Shared>) -> Response {
    match &desk.simulation {
        Some(sim) => {
            let sim = sim.lock().unwrap();
            axum::Json(json!({"messages": sim.inbox.clone(), "actions": sim.actions.clone(), "canary": sim.canary.clone()}))
                .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn sim_outbox_file(State(desk): State<Shared>, Path(n): Path<usize>) -> Response {
    let Some(sim) = &desk.simulation else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let sim = sim.lock().unwrap();
    match sim.files.get(n) {
        Some((_, mime, bytes)) => {
            ([(header::CONTENT_TYPE, mime.clone())], bytes.clone()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The part of a multipart body named `name`: `(filename, content type, bytes)`.
fn multipart_part(
    content_type: &str,
    body: &[u8],
    name: &str,
) -> Option<(Option<String>, Option<String>, Vec<u8>)> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut rest = body;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let content = &rest[head_end + 4..];
        let end = find(content, delimiter.as_bytes())?;
        if head.contains(&format!("name=\"{name}\"")) {
            let filename = head
                .split("filename=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .map(str::to_owned);
            let ctype = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Content-Type: ")
                        .or_else(|| l.strip_prefix("content-type: "))
                })
                .map(|s| s.trim().to_owned());
            return Some((filename, ctype, content[..end.saturating_sub(2)].to_vec()));
        }
    }
    None
}

/// The fake Graph API: records what the page sends and echoes it back as Meta does.
async fn fake_graph_messages(
    State(desk): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(sim) = &desk.simulation else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mode = sim.lock().unwrap().graph.clone();
    match mode.as_str() {
        "down" => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"error": {"message": "(#2) Service temporarily unavailable", "type": "OAuthException", "code": 2, "is_transient": true}})),
            )
                .into_response();
        }
        "token" => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {"message": "Error validating access token: Session has expired.", "type": "OAuthException", "code": 190, "error_subcode": 463}})),
            )
                .into_response();
        }
        _ => {}
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if !content_type.starts_with("multipart/form-data") {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if v.get("sender_action").is_some() {
            // Reactions, seen marks and typing: recorded; Meta echoes none of them.
            sim.lock().unwrap().actions.push(v);
            return axum::Json(json!({"recipient_id": SIM_CUSTOMER})).into_response();
        }
    }
    let (message, file) = if content_type.starts_with("multipart/form-data") {
        let message = multipart_part(&content_type, &body, "message")
            .and_then(|(_, _, m)| serde_json::from_slice::<Value>(&m).ok())
            .unwrap_or(Value::Null);
        (message, multipart_part(&content_type, &body, "filedata"))
    } else {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (v["message"].clone(), None)
    };
    let mid = {
        let mut sim = sim.lock().unwrap();
        sim.next += 1;
        let mid = format!("m_sim_out_{}", sim.next);
        let mut entry = json!({"mid": mid, "text": message["text"]});
        if let Some((name, mime, bytes)) = file {
            let n = sim.files.len();
            entry["file"] =
                json!({"name": name, "url": format!("/sim/outbox/{n}"), "size": bytes.len()});
            sim.files
                .push((name.unwrap_or_default(), mime.unwrap_or_default(), bytes));
        }
        sim.inbox.push(entry);
        mid
    };
    // The echo, with the metadata that marks the engine's effect delivered.
    let echo = WebhookBody::new(SIM_PAGE).echo(
        SIM_CUSTOMER,
        &mid,
        AppId(1),
        message["metadata"].as_str(),
        message["text"].as_str(),
        SystemTime::now(),
    );
    let desk2 = desk.clone();
    tokio::spawn(async move {
        let _ = deliver(&desk2, &echo).await;
    });
    axum::Json(json!({"recipient_id": SIM_CUSTOMER, "message_id": mid})).into_response()
}

// ---- Start-up ----

struct Options {
    /// `--real`: the real Messenger Platform (credentials required).
    real: bool,
    agent_bind: String,
    webhook_bind: Option<String>,
    origins: Vec<String>,
    hosts: Vec<String>,
    data: std::path::PathBuf,
    accounts: Option<std::path::PathBuf>,
    policy: Option<String>,
    mark_seen: bool,
    typing: bool,
}

const USAGE: &str = "usage: desk [--real] [--port N | --agent-bind ADDR] [--webhook-bind ADDR] [--origin URL]... [--host NAME]... [--data DIR] [--accounts FILE] [--policy FILE.toml] [--mark-seen on|off] [--typing on|off]
       desk add-agent NAME [--role agent|supervisor] [--capacity N] [--display-name TEXT] [--data DIR | --accounts FILE]   (password on standard input)";

fn on_off(arg: &str, value: &str) -> Result<bool, String> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{arg} takes on or off")),
    }
}

fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        real: false,
        agent_bind: "127.0.0.1:8080".into(),
        webhook_bind: None,
        origins: Vec::new(),
        hosts: Vec::new(),
        data: "desk-data".into(),
        accounts: None,
        policy: None,
        mark_seen: true,
        typing: true,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--real" => o.real = true,
            "--port" => {
                let port: u16 = value()?
                    .parse()
                    .map_err(|_| "--port takes a number".to_owned())?;
                o.agent_bind = format!("127.0.0.1:{port}");
            }
            "--agent-bind" => o.agent_bind = value()?,
            "--webhook-bind" => o.webhook_bind = Some(value()?),
            "--origin" => {
                let origin = value()?;
                if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                    return Err(format!(
                        "--origin takes a URL such as https://desk.example.com, not `{origin}`"
                    ));
                }
                o.origins.push(origin);
            }
            "--host" => o.hosts.push(value()?),
            "--data" => o.data = value()?.into(),
            "--accounts" => o.accounts = Some(value()?.into()),
            "--policy" => o.policy = Some(value()?),
            "--mark-seen" => o.mark_seen = on_off(arg, &value()?)?,
            "--typing" => o.typing = on_off(arg, &value()?)?,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unexpected argument `{other}`\n{USAGE}")),
        }
    }
    Ok(o)
}

/// The real mode's credentials, or what is missing.
fn credentials() -> Result<(String, String, String), String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        env("PAGE_ACCESS_TOKEN"),
        env("APP_SECRET"),
        env("VERIFY_TOKEN"),
    ) {
        (Some(token), Some(secret), Some(verify)) => Ok((token, secret, verify)),
        (token, secret, verify) => {
            let missing: Vec<_> = [
                ("PAGE_ACCESS_TOKEN", token.is_none()),
                ("APP_SECRET", secret.is_none()),
                ("VERIFY_TOKEN", verify.is_none()),
            ]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(k, _)| *k)
            .collect();
            Err(format!(
                "--real needs {} in the environment ({} not set)",
                "PAGE_ACCESS_TOKEN, APP_SECRET and VERIFY_TOKEN",
                missing.join(", ")
            ))
        }
    }
}

fn fail(message: &str) -> ! {
    eprintln!("desk: {message}");
    std::process::exit(2);
}

// Start-up reads top to bottom: options, stores, accounts, client, engine, routes, timer.
#[allow(clippy::too_many_lines)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("add-agent") {
        if let Err(e) = auth::add_agent(&args[1..]) {
            fail(&e);
        }
        return Ok(());
    }
    let options = options(&args).unwrap_or_else(|e| fail(&e));
    let real = if options.real {
        Some(credentials().unwrap_or_else(|e| fail(&e)))
    } else {
        if std::env::var_os("PAGE_ACCESS_TOKEN").is_some() {
            eprintln!(
                "desk: PAGE_ACCESS_TOKEN is set but --real is not given: running in simulation mode"
            );
        }
        None
    };
    let policy = match &options.policy {
        None => AttachmentPolicy::default(),
        Some(path) => {
            let config: PolicyConfig = toml::from_str(&std::fs::read_to_string(path)?)?;
            AttachmentPolicy::from_config(config)?
        }
    };

    std::fs::create_dir_all(&options.data)?;
    let store = Arc::new(SqliteStore::open(options.data.join("desk.db")).await?);

    // Accounts: the file's; in simulation also the demo accounts, with a password made now.
    let accounts_path = options
        .accounts
        .clone()
        .unwrap_or_else(|| options.data.join("agents.toml"));
    let demo_password = match real {
        Some(_) => None,
        None => Some(auth::random_password(12)?),
    };
    let demo = match &demo_password {
        Some(p) => auth::demo_accounts(p)?,
        None => Vec::new(),
    };
    let accounts = auth::Accounts::open(accounts_path.clone(), demo).unwrap_or_else(|e| fail(&e));
    if real.is_some() && accounts.count() == 0 {
        fail(&format!(
            "no agent accounts in {}: add one with `cargo run --example desk -- add-agent NAME` (the password is read from standard input)",
            accounts_path.display()
        ));
    }
    // Sessions of simulation and real mode are kept apart.
    let sessions_file = if real.is_some() {
        "sessions.json"
    } else {
        "sessions-simulation.json"
    };
    let sessions =
        auth::Sessions::open(options.data.join(sessions_file)).unwrap_or_else(|e| fail(&e));
    let auth = Arc::new(auth::Auth {
        accounts,
        sessions,
        limiter: auth::Limiter::default(),
    });

    let listener = tokio::net::TcpListener::bind(&options.agent_bind).await?;
    let agent_addr = listener.local_addr()?;
    let base = format!("http://{agent_addr}");
    let webhook_listener = match &options.webhook_bind {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await?),
        None => None,
    };
    let webhook_base = match &webhook_listener {
        Some(l) => format!("http://{}", l.local_addr()?),
        None => base.clone(),
    };
    let allowed = Arc::new(web::Allowed::new(
        agent_addr,
        &options.origins,
        &options.hosts,
    ));

    let (secret, verify, client) = if let Some((token, secret, verify)) = &real {
        let secret = AppSecret::new(secret)?;
        let client = GraphClient::builder(PageAccessToken::new(token)?)
            .app_secret(secret.clone())
            .build()?;
        (secret, VerifyToken::new(verify)?, client)
    } else {
        let client = GraphClient::builder(PageAccessToken::new("simulation-token")?)
            .base_url(format!("{base}/fake-graph"))
            .build()?;
        (
            AppSecret::new(SIM_SECRET)?,
            VerifyToken::new(SIM_VERIFY)?,
            client,
        )
    };
    let client = Arc::new(client);
    let (bus, _) = broadcast::channel(1024);
    let router = Arc::new(InMemoryRouter::new());
    let engine = Arc::new(
        Engine::builder(Webhook::new(&secret), client.clone())
            .store(store.clone())
            .media(store.clone())
            .router(router.clone())
            .notifier(Arc::new(DeskNotifier { bus: bus.clone() }))
            .attachment_policy(policy)
            .window(WindowConfig {
                human_agent_tag: true,
            })
            .config(ConversationConfig::default().privacy_notice(Some(PRIVACY_NOTICE.into())))
            .download_inbound(true)
            // One desk per data directory: after a restart it takes back at once what it
            // was delivering when it stopped.
            .instance("desk")
            .build(),
    );
    let desk = Arc::new(Desk {
        engine: engine.clone(),
        auth,
        store,
        router,
        bus,
        simulation: real.is_none().then(|| Mutex::new(Simulation::default())),
        webhook_base: webhook_base.clone(),
        base: base.clone(),
        secret,
        http: reqwest::Client::new(),
        pages: client,
        mark_seen: options.mark_seen,
        typing: options.typing,
        actions_sent: Mutex::new(HashMap::new()),
    });

    // Routes browsers write to take small JSON bodies; the file upload and the simulated
    // Graph API (which receives the agents' files) take files.
    let json_limit = axum::extract::DefaultBodyLimit::max(web::JSON_MAX_BYTES);
    let file_limit = axum::extract::DefaultBodyLimit::max(FILE_MAX_BYTES);
    let mut app = Router::new()
        .route("/", get(agent_page))
        .route("/desk/info", get(desk_info))
        .route("/agent/signin", post(sign_in).layer(json_limit))
        .route("/agent/signout", post(sign_out).layer(json_limit))
        .route("/agent/me", get(me))
        .route("/agent/presence", post(presence).layer(json_limit))
        .route("/agent/file", post(send_file).layer(file_limit))
        .route("/agent/conversations", get(conversations))
        .route("/agent/events", get(events))
        .route("/agent/{action}", post(act).layer(json_limit))
        .route("/media/{key}", get(media::media));
    if real.is_none() {
        app = app
            .route("/customer", get(customer_page))
            .route("/sim/send", post(sim_send).layer(json_limit))
            .route("/sim/graph", post(sim_graph).layer(json_limit))
            .route("/sim/inbox", get(sim_inbox))
            .route("/sim/canary", get(sim_canary))
            .route("/sim/files/{name}", get(sim_file))
            .route("/sim/outbox/{n}", get(sim_outbox_file))
            .route(
                "/fake-graph/{version}/{page}/messages",
                post(fake_graph_messages).layer(file_limit),
            );
    }
    let webhook = WebhookRoutes::new(engine.clone(), verify).router();
    let mut app = app.with_state(desk);
    let webhook_app = if webhook_listener.is_some() {
        Some(
            Router::new()
                .nest("/webhook", webhook)
                .layer(axum::middleware::from_fn(web::json_errors)),
        )
    } else {
        app = app.nest("/webhook", webhook);
        None
    };
    let app = app
        .layer(axum::middleware::from_fn_with_state(
            allowed.clone(),
            web::check_writes,
        ))
        .layer(axum::middleware::from_fn_with_state(
            allowed.clone(),
            web::check_host,
        ))
        .layer(axum::middleware::from_fn(web::json_errors));

    // The worker: deliveries from the outbox, retries, offers timing out, auto-close.
    let _worker = engine.start();

    println!("Agent desk: {base}/");
    if let Some(password) = &demo_password {
        println!(
            "Simulated customer: {base}/customer   (simulation mode; start with --real for Messenger)"
        );
        println!(
            "Simulation accounts: alice and bob (agents), sam (supervisor); password: {password}"
        );
    }
    println!("Webhook: {webhook_base}/webhook (put a public HTTPS URL in front of it)");
    println!(
        "Accounts: {}   Data: {}   Stop with Ctrl-C.",
        accounts_path.display(),
        options.data.display()
    );
    if let (Some(listener), Some(webhook_app)) = (webhook_listener, webhook_app) {
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, webhook_app).await {
                eprintln!("desk: the webhook listener stopped: {e}");
            }
        });
    }
    axum::serve(listener, app).await?;
    Ok(())
}
