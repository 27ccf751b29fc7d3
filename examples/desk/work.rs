//! Working together: Pick (the Pick queues' open conversations, and picking one), transfer
//! (to an agent or a queue, with a note), consult (inviting an agent, who writes internal
//! notes only, and leaves), and internal notes. Who acts is always the session's agent; every
//! id a browser sends is checked before it reaches the engine.

use std::time::SystemTime;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use messenger_channel::agents::Presence;
use messenger_channel::conversation::Conversation;
use messenger_channel::engine::EngineError;
use messenger_channel::ids::{AgentId, ConversationId, QueueId};
use messenger_channel::routing::{AgentStatus, DistributionMode};
use messenger_channel::texts::Language;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::agent::{conversation_json, presence_name, summary};
use crate::auth::SignedIn;
use crate::errors::engine_error;
use crate::web::{JsonBody, error_response};
use crate::{Desk, Shared, auth, unix_ms};

/// The longest conversation id a browser may name (the engine's are 24 hex digits).
const ID_MAX_CHARS: usize = 64;
/// The longest internal note, or transfer note.
pub(crate) const NOTE_MAX_CHARS: usize = 2000;

/// What a browser names for the actions of this module; who acts comes from the session.
#[derive(Deserialize)]
pub(crate) struct WorkAction {
    pub(crate) conversation: Option<String>,
    /// The agent transferred to, consulted, or assigned.
    pub(crate) agent: Option<String>,
    /// The queue transferred to.
    pub(crate) queue: Option<String>,
    /// A note (internal, or the transfer's).
    pub(crate) text: Option<String>,
}

/// A request refused before it reaches the engine: the status, and the words for the agent.
pub(crate) struct Refused(StatusCode, String);

impl Refused {
    pub(crate) fn new(status: StatusCode, words: impl Into<String>) -> Self {
        Self(status, words.into())
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        error_response(self.0, self.1)
    }
}

/// The conversation a request names, if it is a well-formed id.
pub(crate) fn conversation_id(name: Option<&str>) -> Result<ConversationId, Refused> {
    match name {
        Some(id)
            if !id.is_empty()
                && id.len() <= ID_MAX_CHARS
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
        {
            Ok(ConversationId::from(id))
        }
        _ => Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "Say which conversation.",
        )),
    }
}

/// The agent a request names: one with an account on this desk.
pub(crate) fn agent_id(desk: &Desk, name: Option<&str>) -> Result<AgentId, Refused> {
    match name {
        Some(name) if auth::valid_name(name) && desk.auth.accounts.get(name).is_some() => {
            Ok(AgentId::from(name))
        }
        Some(_) => Err(Refused::new(
            StatusCode::NOT_FOUND,
            "There is no such agent.",
        )),
        None => Err(Refused::new(StatusCode::BAD_REQUEST, "Say which agent.")),
    }
}

/// A note's words, if any: not too long; `None` when there are none.
pub(crate) fn note_text(text: Option<&str>) -> Result<Option<String>, Refused> {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) if t.chars().count() > NOTE_MAX_CHARS => Err(Refused::new(
            StatusCode::BAD_REQUEST,
            format!("A note holds at most {NOTE_MAX_CHARS} characters."),
        )),
        Some(t) => Ok(Some(t.to_owned())),
    }
}

/// A note's words, which must be there.
pub(crate) fn required_note(text: Option<&str>) -> Result<String, Refused> {
    note_text(text)?.ok_or_else(|| Refused::new(StatusCode::BAD_REQUEST, "Write a note first."))
}

/// `{"ok": true}`, or the engine's refusal in the agent's words.
pub(crate) fn done(result: Result<(), EngineError>, who: &SignedIn) -> Response {
    match result {
        Ok(()) => axum::Json(json!({"ok": true})).into_response(),
        Err(e) => engine_error(&e, &who.lang),
    }
}

/// `POST /agent/pick {conversation}`: the agent picks a conversation waiting in a Pick queue
/// (of agents picking one at once, exactly one gets it).
pub(crate) async fn pick(
    State(desk): State<Shared>,
    who: SignedIn,
    JsonBody(a): JsonBody<WorkAction>,
) -> Result<Response, Refused> {
    let id = conversation_id(a.conversation.as_deref())?;
    let result = desk.engine.pick(&id, &who.agent, SystemTime::now()).await;
    Ok(done(result, &who))
}

/// `POST /agent/transfer {conversation, agent | queue, text}`: the holder transfers the
/// conversation to another agent (who gets the transfer notification) or to a queue, with a
/// note for whoever takes it.
pub(crate) async fn transfer(
    State(desk): State<Shared>,
    who: SignedIn,
    JsonBody(a): JsonBody<WorkAction>,
) -> Result<Response, Refused> {
    let id = conversation_id(a.conversation.as_deref())?;
    let note = note_text(a.text.as_deref())?;
    let now = SystemTime::now();
    let result = match (a.agent.as_deref(), a.queue.as_deref()) {
        (Some(_), None) => {
            let target = agent_id(&desk, a.agent.as_deref())?;
            desk.engine
                .transfer_to_agent(&id, &who.agent, &target, note.as_deref(), now)
                .await
        }
        (None, Some(queue)) => {
            let Some(queue) = desk
                .engine
                .routing()
                .queues()
                .find(|q| q.id.as_str() == queue)
                .map(|q| q.id.clone())
            else {
                return Err(Refused::new(
                    StatusCode::NOT_FOUND,
                    "There is no such queue.",
                ));
            };
            desk.engine
                .transfer_to_queue(&id, &who.agent, &queue, note.as_deref(), now)
                .await
        }
        _ => {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "Say whom to transfer to: an agent or a queue.",
            ));
        }
    };
    Ok(done(result, &who))
}

/// `POST /agent/consult {conversation, agent}`: the holder invites an agent to consult.
pub(crate) async fn consult(
    State(desk): State<Shared>,
    who: SignedIn,
    JsonBody(a): JsonBody<WorkAction>,
) -> Result<Response, Refused> {
    let id = conversation_id(a.conversation.as_deref())?;
    let consultant = agent_id(&desk, a.agent.as_deref())?;
    let result = desk
        .engine
        .consult(&id, &who.agent, &consultant, SystemTime::now())
        .await;
    Ok(done(result, &who))
}

/// `POST /agent/leave {conversation}`: a consulted agent leaves the consult.
pub(crate) async fn leave(
    State(desk): State<Shared>,
    who: SignedIn,
    JsonBody(a): JsonBody<WorkAction>,
) -> Result<Response, Refused> {
    let id = conversation_id(a.conversation.as_deref())?;
    let result = desk
        .engine
        .leave_consult(&id, &who.agent, SystemTime::now())
        .await;
    Ok(done(result, &who))
}

/// `POST /agent/note {conversation, text}`: an internal note by an agent who takes part in
/// the conversation (holds it, or is consulted): for agents and supervisors, never sent.
pub(crate) async fn note(
    State(desk): State<Shared>,
    who: SignedIn,
    JsonBody(a): JsonBody<WorkAction>,
) -> Result<Response, Refused> {
    let id = conversation_id(a.conversation.as_deref())?;
    let text = required_note(a.text.as_deref())?;
    let result = desk
        .engine
        .add_note(&id, &who.agent, &text, SystemTime::now())
        .await;
    Ok(done(result, &who))
}

/// The queues, for the transfer dialog: id, name, Push or Pick.
pub(crate) fn queues_json(desk: &Desk) -> Value {
    Value::Array(
        desk.engine
            .routing()
            .queues()
            .map(|q| {
                json!({
                    "id": q.id.as_str(),
                    "name": q.name,
                    "mode": if q.mode == DistributionMode::Pick { "pick" } else { "push" },
                })
            })
            .collect(),
    )
}

/// Whom the transfer and consult dialogs list: every agent the router knows who has an
/// account (transfer and consult need one), `me` aside, each with their display name,
/// presence, and capacity free of their total as the router counts them. Those ready to
/// take work (available, with at least one unit free) come first, the others after them
/// with `ready: false`; a transfer to any of them is still allowed (the holder chose them).
/// Within each part: by presence (available, busy, busy - DND, away, offline), then
/// display name, then id.
pub(crate) fn transfer_targets(
    statuses: &[AgentStatus],
    me: &AgentId,
    display_name: impl Fn(&AgentId) -> Option<String>,
) -> Vec<Value> {
    let mut targets: Vec<(bool, u8, String, &AgentStatus)> = statuses
        .iter()
        .filter(|s| s.id() != me)
        .filter_map(|s| {
            let name = display_name(s.id())?;
            let ready = s.presence.takes_offers() && s.free() > 0;
            Some((!ready, presence_rank(s.presence), name, s))
        })
        .collect();
    targets.sort_by(|a, b| (a.0, a.1, &a.2, a.3.id()).cmp(&(b.0, b.1, &b.2, b.3.id())));
    targets
        .into_iter()
        .map(|(not_ready, _, name, s)| {
            json!({
                "agent": s.id().as_str(),
                "display_name": name,
                "presence": presence_name(s.presence),
                "free": s.free(),
                "capacity": s.profile.capacity,
                "ready": !not_ready,
            })
        })
        .collect()
}

/// The order presences are listed in: the most reachable first.
fn presence_rank(p: Presence) -> u8 {
    match p {
        Presence::Available => 0,
        Presence::Busy => 1,
        Presence::DoNotDisturb => 2,
        Presence::Away => 3,
        _ => 4,
    }
}

/// The name of a conversation's queue.
pub(crate) fn queue_name(desk: &Desk, c: &Conversation) -> String {
    desk.engine.routing().queue(c.queue()).name.clone()
}

/// What `agent` may pick now: the Pick queues' open conversations, the longest waiting first,
/// with their queue and how long they have waited (since they joined the queue).
pub(crate) async fn pick_list(
    desk: &Desk,
    agent: &AgentId,
    now: SystemTime,
) -> Result<Vec<Value>, EngineError> {
    let mut work = desk.engine.open_work(agent, now).await?;
    work.sort_by(|a, b| (a.queued_since(), a.id()).cmp(&(b.queued_since(), b.id())));
    let mut out = Vec::with_capacity(work.len());
    for c in work.iter().take(crate::agent::QUEUE_SHOWN) {
        let mut v = summary(desk, c, now).await;
        v["queue"] = json!(c.queue().map(QueueId::as_str));
        v["queue_name"] = json!(queue_name(desk, c));
        v["queued_since"] = json!(unix_ms(c.queued_since()));
        out.push(v);
    }
    Ok(out)
}

/// What the agent's list adds for working together: `consulting`, the conversations
/// (of the open ones) the agent is consulted in, with their transcripts; `pick`, what the
/// agent may pick ([`pick_list`]); `queues`, where a conversation can be transferred to.
pub(crate) async fn together(
    desk: &Desk,
    open: &[Conversation],
    agent: &AgentId,
    now: SystemTime,
    lang: &Language,
) -> Result<Value, EngineError> {
    let mut consulting = Vec::new();
    for c in open.iter().filter(|c| c.consultants().contains(agent)) {
        consulting.push(conversation_json(desk, c, now, lang).await?);
    }
    let pick = pick_list(desk, agent, now).await?;
    Ok(json!({"consulting": consulting, "pick": pick, "queues": queues_json(desk)}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use messenger_channel::routing::AgentProfile;

    fn status(name: &str, presence: Presence, used: u32) -> AgentStatus {
        AgentStatus::new(AgentProfile::new(AgentId::from(name)).capacity(2), presence).used(used)
    }

    #[test]
    fn the_dialogs_list_available_agents_with_capacity_first_and_mark_the_others() {
        let statuses = [
            status("ann", Presence::Away, 0),
            status("bob", Presence::Available, 2),
            status("cy", Presence::Available, 1),
            status("di", Presence::DoNotDisturb, 0),
            status("ed", Presence::Available, 0),
            status("me", Presence::Available, 0),
            status("gone", Presence::Available, 0),
            status("fay", Presence::Offline, 0),
            status("gus", Presence::Busy, 0),
        ];
        // "gone" has no account any more; display names sort within each part.
        let names = |id: &AgentId| match id.as_str() {
            "gone" => None,
            "cy" => Some("Zoe <b>".to_owned()),
            other => Some(other.to_uppercase()),
        };
        let targets = transfer_targets(&statuses, &AgentId::from("me"), names);
        let shown: Vec<String> = targets
            .iter()
            .map(|t| {
                format!(
                    "{} {} {} {}/{} {}",
                    t["agent"].as_str().unwrap(),
                    t["display_name"].as_str().unwrap(),
                    t["presence"].as_str().unwrap(),
                    t["free"],
                    t["capacity"],
                    t["ready"]
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                "ed ED available 2/2 true",
                "cy Zoe <b> available 1/2 true",
                // Available but at capacity: listed, not ready.
                "bob BOB available 0/2 false",
                "gus GUS busy 2/2 false",
                "di DI dnd 2/2 false",
                "ann ANN away 2/2 false",
                "fay FAY offline 2/2 false",
            ]
        );
    }
}
