//! The supervisor's routes: every queue's waiting and active conversations with their wait
//! times, any conversation read live, assigning an Open conversation to an agent, closing
//! one, and internal notes. Only an account whose role is supervisor reaches them (403 for an
//! agent, 401 without a session): the role comes from the session, never from the request.

use std::time::SystemTime;

use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use messenger_channel::engine::Supervisor;
use messenger_channel::ids::ConversationId;
use messenger_channel::store::ConversationStore;
use serde::Deserialize;
use serde_json::json;

use crate::agent::{conversation_json, store_error, summary};
use crate::auth::{Role, SignedIn};
use crate::errors::engine_error;
use crate::web::{JsonBody, error_response};
use crate::work::{Refused, WorkAction, agent_id, conversation_id, done, required_note};
use crate::{Shared, unix_ms};

/// The signed-in supervisor of a request: a session whose account is a supervisor's.
pub(crate) struct Supervising {
    pub(crate) who: SignedIn,
    pub(crate) supervisor: Supervisor,
}

impl FromRequestParts<Shared> for Supervising {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, desk: &Shared) -> Result<Self, Self::Rejection> {
        let who = SignedIn::from_request_parts(parts, desk).await?;
        if who.account.role != Role::Supervisor {
            return Err(error_response(
                StatusCode::FORBIDDEN,
                "Only supervisors can do this.",
            ));
        }
        // The desk's own check of the role, above, is what makes this a supervisor.
        let supervisor = Supervisor::new(who.agent.clone());
        Ok(Self { who, supervisor })
    }
}

/// `GET /supervisor/overview`: every queue's waiting conversations (the longest waiting
/// first, how long, offered to whom) and active ones (who holds them, consulted agents), and
/// the agents.
pub(crate) async fn overview(State(desk): State<Shared>, s: Supervising) -> Response {
    let now = SystemTime::now();
    let queues = match desk.engine.queue_overview(now).await {
        Ok(queues) => queues,
        Err(e) => return engine_error(&e, &s.who.lang),
    };
    let mut out = Vec::with_capacity(queues.len());
    for q in queues {
        let mut waiting = Vec::new();
        for w in q.waiting.iter().take(crate::agent::QUEUE_SHOWN) {
            let Some(c) = load(&desk, &w.conversation).await else {
                continue;
            };
            let mut v = summary(&desk, &c, now).await;
            v["waited_seconds"] = json!(w.waited.as_secs());
            v["queued_since"] = json!(unix_ms(w.since));
            v["transferred"] = json!(w.transferred);
            waiting.push(v);
        }
        let mut active = Vec::new();
        for a in q.active.iter().take(crate::agent::QUEUE_SHOWN) {
            let Some(c) = load(&desk, &a.conversation).await else {
                continue;
            };
            let mut v = summary(&desk, &c, now).await;
            v["consultants"] = json!(
                a.consultants
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect::<Vec<_>>()
            );
            active.push(v);
        }
        out.push(json!({
            "queue": q.queue.as_str(),
            "name": q.name,
            "waiting_count": q.waiting.len(),
            "waiting": waiting,
            "active_count": q.active.len(),
            "active": active,
        }));
    }
    axum::Json(json!({"queues": out, "now": unix_ms(now)})).into_response()
}

/// A conversation the overview names (gone meanwhile: left out).
async fn load(
    desk: &crate::Desk,
    id: &ConversationId,
) -> Option<messenger_channel::conversation::Conversation> {
    match desk.store.load(id).await {
        Ok(stored) => stored.map(|s| s.conversation),
        Err(e) => {
            eprintln!("desk: the store failed: {e}");
            None
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Watched {
    id: String,
}

/// `GET /supervisor/conversation?id=`: any conversation with its transcript, internal lines
/// included, to watch live (the page reads it again whenever it changes).
pub(crate) async fn watch(
    State(desk): State<Shared>,
    s: Supervising,
    q: Result<Query<Watched>, QueryRejection>,
) -> Result<Response, Refused> {
    let Ok(Query(q)) = q else {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "Say which conversation.",
        ));
    };
    let id = conversation_id(Some(&q.id))?;
    let c = match desk.store.load(&id).await {
        Ok(Some(stored)) => stored.conversation,
        Ok(None) => {
            return Err(Refused::new(
                StatusCode::NOT_FOUND,
                "There is no such conversation.",
            ));
        }
        Err(e) => return Ok(store_error(&e)),
    };
    let now = SystemTime::now();
    Ok(match conversation_json(&desk, &c, now, &s.who.lang).await {
        Ok(mut v) => {
            v["queue_name"] = json!(crate::work::queue_name(&desk, &c));
            axum::Json(v).into_response()
        }
        Err(e) => store_error(&e),
    })
}

/// `POST /supervisor/assign {conversation, agent}`: an Open conversation goes to the agent.
pub(crate) async fn assign(
    State(desk): State<Shared>,
    s: Supervising,
    JsonBody(a): JsonBody<WorkAction>,
) -> Result<Response, Refused> {
    let id = conversation_id(a.conversation.as_deref())?;
    let agent = agent_id(&desk, a.agent.as_deref())?;
    let result = desk
        .engine
        .assign(&s.supervisor, &id, &agent, SystemTime::now())
        .await;
    Ok(done(result, &s.who))
}

/// `POST /supervisor/close {conversation}`: closes the conversation, whatever its state.
pub(crate) async fn force_close(
    State(desk): State<Shared>,
    s: Supervising,
    JsonBody(a): JsonBody<WorkAction>,
) -> Result<Response, Refused> {
    let id = conversation_id(a.conversation.as_deref())?;
    let result = desk
        .engine
        .force_close(&s.supervisor, &id, SystemTime::now())
        .await;
    Ok(done(result, &s.who))
}

/// `POST /supervisor/note {conversation, text}`: a supervisor's internal note.
pub(crate) async fn note(
    State(desk): State<Shared>,
    s: Supervising,
    JsonBody(a): JsonBody<WorkAction>,
) -> Result<Response, Refused> {
    let id = conversation_id(a.conversation.as_deref())?;
    let text = required_note(a.text.as_deref())?;
    let result = desk
        .engine
        .supervisor_note(&s.supervisor, &id, &text, SystemTime::now())
        .await;
    Ok(done(result, &s.who))
}
