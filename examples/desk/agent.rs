//! The agent's routes: the page, sign-in and sign-out, presence, the actions on a conversation
//! (accept, reject, send, react, end, close, reopen, seen, typing), files, the conversation
//! list and the event stream. Who acts is always the session's agent (`auth::SignedIn`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use messenger_channel::agents::{AgentRouter, Presence};
use messenger_channel::conversation::{
    Author, Conversation, LineBody, SendRefusal, State as ConversationState, StateKind,
    TranscriptLine, TransferTarget,
};
use messenger_channel::engine::{Delivery, REACTION_MID_MAX_BYTES};
use messenger_channel::ids::{AgentId, ConversationId};
use messenger_channel::profile::Profiles;
use messenger_channel::routing::AgentProfile;
use messenger_channel::send::{PageApi, SenderAction, TEXT_MAX_CHARS};
use messenger_channel::store::{ConversationStore, SqliteStore, StoreError};
use messenger_channel::texts::{Catalogue, Language};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::auth::SignedIn;
use crate::errors::engine_error;
use crate::web::{JsonBody, error_response};
use crate::{Desk, Shared, auth, errors, unix_ms, web, work};

/// The most waiting conversations the queue view lists (it says how many there are).
pub(crate) const QUEUE_SHOWN: usize = 200;

/// At most one typing indicator per conversation this often.
pub(crate) const TYPING_EVERY: Duration = Duration::from_secs(5);

/// At most one seen mark per conversation this often (a looping browser cannot spend the
/// page's Graph budget).
pub(crate) const SEEN_EVERY: Duration = Duration::from_secs(30);

/// What an agent's action names; who acts comes from the session.
#[derive(Deserialize)]
pub(crate) struct AgentAction {
    conversation: Option<String>,
    text: Option<String>,
    /// The message reacted to (`react`, `unreact`).
    mid: Option<String>,
    /// The emoji (`react`).
    reaction: Option<String>,
}

pub(crate) async fn agent_page() -> Response {
    web::page(include_str!("agent.html"))
}

/// What the page needs before anyone signs in: whether this is a simulation.
pub(crate) async fn desk_info(State(desk): State<Shared>) -> Response {
    let demo: Vec<_> = if desk.simulation.is_some() {
        auth::DEMO_ACCOUNTS.iter().map(|(name, ..)| *name).collect()
    } else {
        Vec::new()
    };
    axum::Json(json!({"simulation": desk.simulation.is_some(), "demo_accounts": demo}))
        .into_response()
}

#[derive(Deserialize)]
pub(crate) struct SignIn {
    name: String,
    password: String,
}

/// `POST /agent/signin {name, password}`: a session cookie, and the account.
pub(crate) async fn sign_in(
    State(desk): State<Shared>,
    headers: HeaderMap,
    JsonBody(s): JsonBody<SignIn>,
) -> Response {
    let (account, token) = match desk.auth.sign_in(&s.name, &s.password).await {
        Ok(signed) => signed,
        Err(e) => return e.response(),
    };
    // The agent's capacity is the account's (their presence, kept in the store, stays).
    if let Err(e) = register(&desk, &account).await {
        return store_error(&e);
    }
    let mut response = me_json(&desk, &account).await;
    response.headers_mut().insert(
        header::SET_COOKIE,
        auth::session_cookie(&token, served_over_https(&headers)),
    );
    response
}

/// Whether the page is served over HTTPS (behind a proxy that terminates TLS): the browser's
/// `Origin` says so. The session cookie is then `Secure`.
pub(crate) fn served_over_https(headers: &HeaderMap) -> bool {
    headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| o.starts_with("https://"))
}

/// `POST /agent/signout`: ends the session; an agent with no other session goes offline.
pub(crate) async fn sign_out(
    State(desk): State<Shared>,
    who: SignedIn,
    headers: HeaderMap,
) -> Response {
    match desk.auth.sessions.remove(&who.token, &who.account.name) {
        Ok(others) => {
            if !others {
                if let Err(e) = desk
                    .store
                    .update_presence(&who.agent, Presence::Offline)
                    .await
                {
                    eprintln!("desk: could not save the presence: {e}");
                }
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

pub(crate) fn presence_name(p: Presence) -> &'static str {
    match p {
        Presence::Available => "available",
        Presence::Busy => "busy",
        Presence::Away => "away",
        Presence::DoNotDisturb => "dnd",
        _ => "offline",
    }
}

/// Adds the account's agent to the router (kept in the store), or updates their capacity;
/// their presence stays what it was.
pub(crate) async fn register(desk: &Desk, account: &auth::Account) -> Result<(), StoreError> {
    let profile =
        AgentProfile::new(AgentId::from(account.name.as_str())).capacity(account.capacity);
    desk.store.upsert_agent(&profile).await
}

/// The signed-in agent, with the presence the store keeps.
pub(crate) async fn me_json(desk: &Desk, account: &auth::Account) -> Response {
    let agent = AgentId::from(account.name.as_str());
    let presence = match desk.store.agent_status(&agent, SystemTime::now()).await {
        Ok(status) => status.map_or("offline", |s| presence_name(s.presence)),
        Err(e) => return store_error(&e),
    };
    axum::Json(json!({
        "name": account.name,
        "display_name": account.display_name,
        "role": account.role.as_str(),
        "capacity": account.capacity,
        "presence": presence,
        "simulation": desk.simulation.is_some(),
    }))
    .into_response()
}

/// `GET /agent/me`: the signed-in agent.
pub(crate) async fn me(State(desk): State<Shared>, who: SignedIn) -> Response {
    me_json(&desk, &who.account).await
}

#[derive(Deserialize)]
pub(crate) struct PresenceChange {
    presence: String,
}

/// `POST /agent/presence {presence}`: available, busy, away, dnd or offline.
pub(crate) async fn presence(
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
    if let Err(e) = register(&desk, &who.account).await {
        return store_error(&e);
    }
    if let Err(e) = desk.store.update_presence(&who.agent, presence).await {
        return store_error(&e);
    }
    // A new arrival may take what waits in the queue.
    let _ = desk.engine.tick(SystemTime::now()).await;
    me_json(&desk, &who.account).await
}

pub(crate) async fn act(
    State(desk): State<Shared>,
    who: SignedIn,
    Path(action): Path<String>,
    JsonBody(a): JsonBody<AgentAction>,
) -> Response {
    let agent = who.agent;
    let id = match work::conversation_id(a.conversation.as_deref()) {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
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
        "react" | "unreact" => {
            return react(&desk, &id, &agent, &a, action == "react", &who.lang).await;
        }
        "seen" => {
            return sender_action(&desk, &id, &agent, SenderAction::MarkSeen, &who.lang).await;
        }
        "typing" => {
            return sender_action(&desk, &id, &agent, SenderAction::TypingOn, &who.lang).await;
        }
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
        Ok(Some(delivery)) => delivery_response(&delivery, &who.lang),
        Err(e) => engine_error(&e, &who.lang),
    }
}

/// The agent reacts to a customer's message of the conversation (or removes the reaction).
/// The engine checks, in this order, that the agent holds the conversation, that the message
/// is the customer's in it, and the emoji's length.
pub(crate) async fn react(
    desk: &Desk,
    id: &ConversationId,
    agent: &AgentId,
    a: &AgentAction,
    add: bool,
    lang: &Language,
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
        Ok(delivery) => delivery_response(&delivery, lang),
        Err(e) => engine_error(&e, lang),
    }
}

/// Marks the conversation seen, or shows the typing bubble, when configured, for the agent
/// who holds it (per conversation, typing at most once every [`TYPING_EVERY`], seen once
/// every [`SEEN_EVERY`]).
pub(crate) async fn sender_action(
    desk: &Desk,
    id: &ConversationId,
    agent: &AgentId,
    action: SenderAction,
    lang: &Language,
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
            other => errors::capitalised(&other.text(lang)),
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
pub(crate) fn store_error(e: &StoreError) -> Response {
    if let StoreError::NotFound(_) = e {
        return error_response(StatusCode::NOT_FOUND, "There is no such conversation.");
    }
    eprintln!("desk: the store failed: {e}");
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "The desk could not read or save this just now. Try again.",
    )
}

/// What became of an agent's message, for the page (why it is not sent yet, in the agent's
/// language).
pub(crate) fn delivery_response(delivery: &Delivery, lang: &Language) -> Response {
    match delivery {
        Delivery::Sent { message_id } => {
            axum::Json(json!({"ok": true, "delivery": "sent", "message_id": message_id}))
                .into_response()
        }
        Delivery::Retrying { reason, .. } => {
            let reason = crate::i18n::tr(lang, reason);
            axum::Json(json!({"ok": true, "delivery": "retrying", "reason": reason}))
                .into_response()
        }
        _ => axum::Json(json!({"ok": true})).into_response(),
    }
}

/// The longest file name an agent's upload may have (it is stored in the transcript and
/// sent in headers).
pub(crate) const FILE_NAME_MAX_CHARS: usize = 255;

/// The longest media type an agent's upload may name.
pub(crate) const FILE_TYPE_MAX_CHARS: usize = 127;

#[derive(Deserialize)]
pub(crate) struct FileQuery {
    conversation: String,
    name: String,
    mime: Option<String>,
}

/// `POST /agent/file?conversation=&name=&mime=` with the file's bytes as the body (and the
/// desk's upload header, checked with the origin in `web::check_writes`).
pub(crate) async fn send_file(
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
    let id = match work::conversation_id(Some(&q.conversation)) {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    if q.name.trim().is_empty() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "Say which conversation and the file's name.",
        );
    }
    if q.name.chars().count() > FILE_NAME_MAX_CHARS {
        return error_response(
            StatusCode::BAD_REQUEST,
            format!("A file's name holds at most {FILE_NAME_MAX_CHARS} characters."),
        );
    }
    if q.mime
        .as_ref()
        .is_some_and(|m| m.chars().count() > FILE_TYPE_MAX_CHARS)
    {
        return error_response(
            StatusCode::BAD_REQUEST,
            format!("A file's type holds at most {FILE_TYPE_MAX_CHARS} characters."),
        );
    }
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
        .send_file(&id, &who.agent, &q.name, &mime, body, SystemTime::now())
        .await;
    match result {
        Ok(delivery) => delivery_response(&delivery, &who.lang),
        Err(e) => engine_error(&e, &who.lang),
    }
}

/// The most closed conversations, and of a customer's earlier ones, listed.
pub(crate) const HISTORY_MAX: usize = 50;

/// The refusal of a conversation (or a file of one) the agent does not work on.
pub(crate) const NOT_YOURS: &str =
    "You can open only conversations you work on, or their customer's earlier ones.";

/// What the page shows of a customer without a name (the page lacks the permission, or the
/// profile is not in yet): the last digits of their id ("Facebook user ·1234", worded by the
/// page).
pub(crate) fn customer_tail(c: &Conversation) -> String {
    let id = c.customer().as_str();
    let digits: Vec<char> = id.chars().rev().take(4).collect();
    digits.into_iter().rev().collect()
}

/// A transfer under way: who transferred it, their note, and to which queue (none: to an
/// agent); `null` when none.
pub(crate) fn transfer_json(c: &Conversation) -> Value {
    c.transfer().map_or(Value::Null, |t| {
        let queue = match &t.to {
            TransferTarget::Queue(q) => Some(q.as_str()),
            _ => None,
        };
        json!({"from": t.from.as_str(), "note": t.note, "queue": queue})
    })
}

/// A conversation's summary for lists: id, customer, state, times, the offer outstanding,
/// the transfer under way and the agents consulted.
pub(crate) fn summary_json(c: &Conversation, now: SystemTime) -> Value {
    let (offer, holder) = match c.state() {
        ConversationState::Open { offer: Some(o) } => (
            json!({"agent": o.agent.as_str(), "expires_at": unix_ms(o.expires_at)}),
            None,
        ),
        ConversationState::Waiting { agent } => (Value::Null, Some(agent.as_str())),
        state => (Value::Null, state.session_agent().map(AgentId::as_str)),
    };
    json!({
        "id": c.id().as_str(),
        "customer": c.customer().as_str(),
        "customer_tail": customer_tail(c),
        "state": format!("{:?}", c.state().kind()),
        "paused": c.is_paused(),
        "created_at": unix_ms(c.created_at()),
        "last_activity_at": unix_ms(c.last_activity_at()),
        "waiting_seconds": now.duration_since(c.created_at()).map_or(0, |d| d.as_secs()),
        "offer": offer,
        "holder": holder,
        "previous_agent": c.previous_agent().map(AgentId::as_str),
        "transfer": transfer_json(c),
        "consultants": c.consultants().iter().map(AgentId::as_str).collect::<Vec<_>>(),
    })
}

/// Fetches the customer's profile in the background when it is missing or stale, and tells
/// the pages when what is kept changed (a failure that may pass changes nothing, so it tells
/// nothing and is asked again later).
pub(crate) fn fetch_profile(profiles: &Arc<Profiles>, bus: &crate::Bus, c: &Conversation) {
    let (profiles, bus) = (profiles.clone(), bus.clone());
    let page = c.page().clone().into_owned();
    let customer = c.customer().clone().into_owned();
    let id = c.id().clone();
    tokio::spawn(async move {
        let now = SystemTime::now();
        let Ok(before) = profiles.cached(&page, &customer).await else {
            return;
        };
        if !profiles.needs_fetch(before.as_ref(), now) {
            return;
        }
        if profiles.get(&page, &customer, now).await.is_err() {
            return;
        }
        if profiles.cached(&page, &customer).await.ok().flatten() != before {
            let event = json!({"type": "updated", "conversation": id.as_str()});
            let _ = bus.send((None, event.to_string()));
        }
    });
}

/// A conversation's summary with who is writing: the customer's name and picture as kept
/// (`customer_name`, `customer_picture`: `null` when unknown); a profile missing or stale is
/// fetched in the background.
pub(crate) async fn summary(desk: &Desk, c: &Conversation, now: SystemTime) -> Value {
    let mut v = summary_json(c, now);
    let kept = desk
        .profiles
        .cached(c.page(), c.customer())
        .await
        .ok()
        .flatten();
    if desk.profiles.needs_fetch(kept.as_ref(), now) {
        fetch_profile(&desk.profiles, &desk.bus, c);
    }
    v["customer_name"] = json!(kept.as_ref().and_then(|p| p.name.as_deref()));
    v["customer_picture"] = json!(kept.as_ref().and_then(|p| p.picture_url.as_deref()));
    v
}

/// A conversation with its transcript, for the page.
pub(crate) async fn conversation_json(
    desk: &Desk,
    c: &Conversation,
    now: SystemTime,
    lang: &Language,
) -> Result<Value, StoreError> {
    let lines = desk.store.transcript(c.id()).await?;
    let mut v = summary(desk, c, now).await;
    v["lines"] = Value::Array(lines_json(c, &lines, lang));
    Ok(v)
}

/// The index the desk adds to the store's `conversations` table (SQLite), so that an agent's
/// closed conversations ([`closed_for_agent`]) are found by it rather than by reading every
/// conversation: closed ones, by the agent who held them last, newest first. The crate's
/// stores have no call for this list; the index is the desk's, made at start if missing.
pub(crate) const CLOSED_BY_AGENT_INDEX: &str = "CREATE INDEX IF NOT EXISTS desk_closed_by_agent ON conversations (json_extract(body, '$.previous_agent'), created_ms) WHERE closed <> 0";

/// An agent's latest closed conversations: those they held last.
const CLOSED_BY_AGENT: &str = "SELECT id FROM conversations WHERE closed <> 0 AND json_extract(body, '$.previous_agent') = $1 ORDER BY created_ms DESC LIMIT $2";

/// Makes [`CLOSED_BY_AGENT_INDEX`].
pub(crate) async fn index_closed(store: &SqliteStore) -> Result<(), StoreError> {
    sqlx::query(CLOSED_BY_AGENT_INDEX)
        .execute(store.pool())
        .await
        .map_err(|e| StoreError::Backend(Box::new(e)))?;
    Ok(())
}

/// The latest `limit` closed conversations `agent` held last, newest first (through
/// [`CLOSED_BY_AGENT_INDEX`]).
pub(crate) async fn closed_for_agent(
    store: &SqliteStore,
    agent: &AgentId,
    limit: usize,
) -> Result<Vec<Conversation>, StoreError> {
    let rows = sqlx::query_as::<_, (String,)>(CLOSED_BY_AGENT)
        .bind(agent.as_str())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(store.pool())
        .await
        .map_err(|e| StoreError::Backend(Box::new(e)))?;
    let mut out = Vec::with_capacity(rows.len());
    for (id,) in rows {
        if let Some(stored) = store.load(&ConversationId::from(id.as_str())).await? {
            out.push(stored.conversation);
        }
    }
    Ok(out)
}

/// `GET /agent/conversations`: the agent's conversations (offered, active, waiting,
/// wrap-up) with their transcripts; the queue (waiting conversations and for how long);
/// the agent's recently closed conversations; the agents, and whom the agent may transfer
/// to or consult ([`work::transfer_targets`]); the channel's health.
pub(crate) async fn conversations(State(desk): State<Shared>, who: SignedIn) -> Response {
    let agent = who.agent.clone();
    let now = SystemTime::now();
    let listed = match desk.store.list_for_agent(&agent).await {
        Ok(l) => l,
        Err(e) => return store_error(&e),
    };
    let mut out = Vec::new();
    for stored in listed {
        match conversation_json(&desk, &stored.conversation, now, &who.lang).await {
            Ok(v) => out.push(v),
            Err(e) => return store_error(&e),
        }
    }
    let open: Vec<Conversation> = match desk.store.list_open().await {
        Ok(open) => open.into_iter().map(|s| s.conversation).collect(),
        Err(e) => return store_error(&e),
    };
    // Consults, Pick and the queues to transfer to.
    let together = match work::together(&desk, &open, &agent, now, &who.lang).await {
        Ok(v) => v,
        Err(e) => return engine_error(&e, &who.lang),
    };
    // The queue: every conversation waiting for an agent, offered or not, oldest first.
    let mut queue: Vec<Conversation> = open
        .into_iter()
        .filter(|c| c.state().kind() == StateKind::Open)
        .collect();
    queue.sort_by_key(Conversation::created_at);
    let queue_count = queue.len();
    let mut shown = Vec::new();
    for c in queue.iter().take(QUEUE_SHOWN) {
        shown.push(summary(&desk, c, now).await);
    }
    let queue = shown;
    // Closed: the agent's latest.
    let closed = match closed_for_agent(&desk.store, &agent, HISTORY_MAX).await {
        Ok(closed) => closed,
        Err(e) => return store_error(&e),
    };
    let mut shown = Vec::new();
    for c in &closed {
        shown.push(summary(&desk, c, now).await);
    }
    let closed = shown;
    // The agents as the engine's router (the store) counts them: for the agents' line, and
    // whom the transfer and consult dialogs offer.
    let statuses = match desk.store.agent_statuses(now).await {
        Ok(all) => all,
        Err(e) => return store_error(&e),
    };
    let agents: Vec<_> = statuses
        .iter()
        .map(|a| {
            json!({"agent": a.id().as_str(), "presence": presence_name(a.presence), "load": a.used, "capacity": a.profile.capacity})
        })
        .collect();
    let targets = work::transfer_targets(&statuses, &agent, |id| {
        desk.auth.accounts.get(id.as_str()).map(|a| a.display_name)
    });
    // Channel health: pages whose sends are stopped, and the outbox at a glance.
    let attention: Vec<_> = desk
        .engine
        .pages_needing_attention()
        .into_iter()
        .map(|p| {
            // In the agent's language: the desk's catalogue has the reasons.
            let text = crate::i18n::tr(&who.lang, &p.reason);
            json!({"page": p.page, "reason": p.reason, "reason_text": text})
        })
        .collect();
    let outbox = match desk.store.outbox_stats().await {
        Ok(stats) => json!({
            "pending": stats.pending,
            "failed": stats.failed,
            "oldest_pending_seconds": stats
                .oldest_pending
                .and_then(|t| now.duration_since(t).ok())
                .map_or(0, |d| d.as_secs()),
        }),
        Err(_) => serde_json::Value::Null,
    };
    axum::Json(json!({
        "conversations": out,
        "consulting": together["consulting"],
        "pick": together["pick"],
        "queues": together["queues"],
        "queue": queue,
        "queue_count": queue_count,
        "closed": closed,
        "agents": agents,
        "targets": targets,
        "attention": attention,
        "outbox": outbox,
        "now": unix_ms(now),
    }))
    .into_response()
}

#[derive(Deserialize)]
pub(crate) struct ConversationQuery {
    id: String,
}

/// `GET /agent/conversation?id=`: one conversation, closed or not, with its transcript, and
/// the customer's other conversations (newest first), for reading.
pub(crate) async fn conversation(
    State(desk): State<Shared>,
    who: SignedIn,
    q: Result<Query<ConversationQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error_response(StatusCode::BAD_REQUEST, "Say which conversation.");
    };
    let id = match work::conversation_id(Some(&q.id)) {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    let now = SystemTime::now();
    let c = match desk.store.load(&id).await {
        Ok(Some(stored)) => stored.conversation,
        Ok(None) => return error_response(StatusCode::NOT_FOUND, "There is no such conversation."),
        Err(e) => return store_error(&e),
    };
    let readable = match desk.store.transcript(c.id()).await {
        Ok(lines) => crate::access::may_read(&desk, &who, &c, &lines).await,
        Err(e) => Err(e),
    };
    match readable {
        Ok(true) => {}
        Ok(false) => return error_response(StatusCode::FORBIDDEN, NOT_YOURS),
        Err(e) => return store_error(&e),
    }
    let mut v = match conversation_json(&desk, &c, now, &who.lang).await {
        Ok(v) => v,
        Err(e) => return store_error(&e),
    };
    // The customer's other conversations on the page, newest first.
    let history = match desk
        .store
        .history(c.page(), c.customer(), HISTORY_MAX + 1)
        .await
    {
        Ok(h) => h
            .iter()
            .map(|s| &s.conversation)
            .filter(|o| o.id() != c.id())
            .take(HISTORY_MAX)
            .map(|o| summary_json(o, now))
            .collect::<Vec<_>>(),
        Err(e) => return store_error(&e),
    };
    v["history"] = Value::Array(history);
    axum::Json(v).into_response()
}

/// A transcript for the page: each line with its time in milliseconds; an agent's message
/// says how far it got: sent, delivered, read (from the conversation's watermarks), failed
/// (a "Not delivered" notice answers it), or still sending (no id yet).
pub(crate) fn lines_json(
    c: &Conversation,
    lines: &[TranscriptLine],
    lang: &Language,
) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(lines.len());
    // Agent messages not sent yet, oldest first: a failure notice answers the oldest.
    let mut unsent: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    for line in lines {
        let mut v = serde_json::to_value(line).unwrap_or(Value::Null);
        v["at_ms"] = json!(unix_ms(line.at));
        // The crate's notices and refusals are stored in English: in the agent's language.
        match &line.body {
            LineBody::Notice(n) if *lang != Language::ENGLISH => {
                v["notice"] = json!(Catalogue::builtin().translate(n, lang));
            }
            LineBody::File(f) => {
                if let Some(r) = &f.rejected {
                    v["rejected_text"] = json!(r.text(lang));
                }
            }
            _ => {}
        }
        // Internal lines are never sent: no receipt.
        if matches!(line.author, Author::Agent(_)) && !is_reaction(line) && !line.body.is_internal()
        {
            if line.mid.is_some() {
                v["receipt"] = json!(c.message_status(line.sent_at));
            } else {
                v["receipt"] = json!("sending");
                unsent.push_back(out.len());
            }
        }
        if line.author == Author::System
            && matches!(&line.body, LineBody::Notice(n) if n.starts_with("Not delivered"))
        {
            if let Some(i) = unsent.pop_front() {
                out[i]["receipt"] = json!("failed");
            }
        }
        out.push(v);
    }
    out
}

fn is_reaction(line: &TranscriptLine) -> bool {
    matches!(line.body, LineBody::Reaction(_))
}

pub(crate) async fn events(State(desk): State<Shared>, who: SignedIn) -> impl IntoResponse {
    let rx = desk.bus.subscribe();
    let agent = who.account.name;
    let state = (rx, agent, desk, who.token);
    let stream = futures_util::stream::unfold(state, |(mut rx, agent, desk, token)| async move {
        loop {
            match rx.recv().await {
                Ok((to, data)) if to.as_deref().is_none_or(|t| t == agent) => {
                    // Signed out, or the session expired: the stream ends with it.
                    if desk.auth.sessions.agent(&token).as_deref() != Some(agent.as_str()) {
                        return None;
                    }
                    return Some((
                        Ok::<_, std::convert::Infallible>(SseEvent::default().data(data)),
                        (rx, agent, desk, token),
                    ));
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use messenger_channel::conversation::{ConversationConfig, Inbound, Input};
    use messenger_channel::ids::{PageId, UserId};
    use messenger_channel::store::Commit;

    use super::*;

    /// Saves a conversation of customer `n`, made at second `n`, that `agent` accepted, ended
    /// and closed.
    async fn closed_by(store: &SqliteStore, n: u64, agent: &str) {
        let config = ConversationConfig::default();
        let at = UNIX_EPOCH + Duration::from_secs(n);
        let agent = AgentId::from(agent);
        let (mut c, _) = Conversation::start(
            ConversationId::from(format!("c{n}").as_str()),
            PageId::from("page"),
            UserId::from(format!("customer{n}").as_str()).into_owned(),
            Inbound::new(Some(format!("m_{n}")), vec![LineBody::Text("hi".into())]),
            at,
            &config,
        );
        for input in [
            Input::OfferTo(agent.clone()),
            Input::Accept(agent.clone()),
            Input::End(agent.clone()),
            Input::CloseSession(agent.clone()),
        ] {
            c.apply(input, at, &config).unwrap();
        }
        assert!(c.is_closed());
        let commit = Commit {
            conversation: c,
            expected_version: None,
            transcript: Vec::new(),
            effects: Vec::new(),
            deadline: None,
            applies: None,
            at,
            claim: None,
        };
        store.commit(&commit).await.unwrap();
    }

    #[tokio::test]
    async fn an_agents_closed_conversations_are_found_by_the_index_and_by_exact_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("desk.db")).await.unwrap();
        index_closed(&store).await.unwrap();
        // Made again at the next start: nothing changes.
        index_closed(&store).await.unwrap();
        // `a_b` closed one conversation long ago; `axb` (whom `a_b` matches as a LIKE
        // pattern) closed more than a page of them since.
        closed_by(&store, 1, "a_b").await;
        for n in 2..=(2 + HISTORY_MAX as u64) {
            closed_by(&store, n, "axb").await;
        }
        let ids = |list: Vec<Conversation>| -> Vec<String> {
            list.iter().map(|c| c.id().as_str().to_owned()).collect()
        };
        let a_b = closed_for_agent(&store, &AgentId::from("a_b"), HISTORY_MAX)
            .await
            .unwrap();
        assert_eq!(ids(a_b), ["c1"]);
        let axb = closed_for_agent(&store, &AgentId::from("axb"), 3)
            .await
            .unwrap();
        assert_eq!(
            ids(axb),
            [
                format!("c{}", 2 + HISTORY_MAX),
                format!("c{}", 1 + HISTORY_MAX),
                format!("c{HISTORY_MAX}"),
            ],
            "newest first"
        );
        // Through the desk's index: not a scan of every conversation, nor a sort.
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {CLOSED_BY_AGENT}"))
                .bind("a_b")
                .bind(50_i64)
                .fetch_all(store.pool())
                .await
                .unwrap();
        let plan: Vec<&str> = plan.iter().map(|(.., detail)| detail.as_str()).collect();
        assert!(
            plan.iter()
                .any(|d| d.contains("USING INDEX desk_closed_by_agent")),
            "{plan:?}"
        );
        assert!(
            !plan
                .iter()
                .any(|d| d.starts_with("SCAN conversations") || d.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }
}
