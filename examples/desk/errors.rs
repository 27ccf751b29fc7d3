//! The engine's errors in words an agent understands, with the HTTP status that fits: no
//! internal name (`AgentSend`, `WrapUp`) reaches the page. The full error goes to standard
//! error for whoever runs the desk.

use axum::http::StatusCode;
use axum::response::Response;
use messenger_channel::conversation::{InputKind, StateKind, TransitionError};
use messenger_channel::engine::EngineError;
use messenger_channel::routing::PickRefusal;
use messenger_channel::texts::{Catalogue, Language};

use crate::web::error_response;

/// What the conversation is doing, as an agent says it.
fn state_words(state: StateKind, lang: &Language) -> &'static str {
    if *lang == Language::SPANISH {
        return match state {
            StateKind::Open => "está esperando en la cola",
            StateKind::Active => "está en curso",
            StateKind::Waiting => "su sesión está cerrada",
            StateKind::WrapUp => "ha finalizado y está en cierre",
            StateKind::Closed => "está cerrada",
            _ => "por su estado",
        };
    }
    match state {
        StateKind::Open => "it is waiting in the queue",
        StateKind::Active => "it is in progress",
        StateKind::Waiting => "its session is closed",
        StateKind::WrapUp => "it has ended and is in wrap-up",
        StateKind::Closed => "it is closed",
        _ => "of its state",
    }
}

/// What the agent tried, as an agent says it.
fn action_words(input: InputKind, lang: &Language) -> &'static str {
    if *lang == Language::SPANISH {
        return match input {
            InputKind::Accept => "aceptar esta conversación",
            InputKind::Reject => "rechazar esta conversación",
            InputKind::AgentSend => "escribir en esta conversación",
            InputKind::End => "finalizar esta conversación",
            InputKind::CloseSession => "cerrar esta conversación",
            InputKind::Revive => "reabrir esta conversación",
            InputKind::Pick => "tomar esta conversación",
            InputKind::Transfer => "transferir esta conversación",
            InputKind::Consult => "consultar a otro agente en esta conversación",
            InputKind::LeaveConsult => "dejar la consulta",
            InputKind::Note => "escribir una nota interna aquí",
            InputKind::Assign => "asignar esta conversación",
            InputKind::ForceClose => "forzar el cierre de esta conversación",
            _ => "hacer eso",
        };
    }
    match input {
        InputKind::Accept => "accept this conversation",
        InputKind::Reject => "decline this conversation",
        InputKind::AgentSend => "write in this conversation",
        InputKind::End => "end this conversation",
        InputKind::CloseSession => "close this conversation",
        InputKind::Revive => "reopen this conversation",
        InputKind::Pick => "pick this conversation",
        InputKind::Transfer => "transfer this conversation",
        InputKind::Consult => "consult another agent in this conversation",
        InputKind::LeaveConsult => "leave the consult",
        InputKind::Note => "write an internal note here",
        InputKind::Assign => "assign this conversation",
        InputKind::ForceClose => "force-close this conversation",
        _ => "do that",
    }
}

fn transition_words(e: &TransitionError, lang: &Language) -> (StatusCode, String) {
    let conflict = StatusCode::CONFLICT;
    match e {
        TransitionError::Illegal { state, input } if *lang == Language::SPANISH => (
            conflict,
            format!(
                "No puede {} ahora: {}.",
                action_words(*input, lang),
                state_words(*state, lang)
            ),
        ),
        TransitionError::Illegal { state, input } => (
            conflict,
            format!(
                "You cannot {} now: {}.",
                action_words(*input, lang),
                state_words(*state, lang)
            ),
        ),
        TransitionError::Closed { .. } => (
            conflict,
            "This conversation is closed. The customer's next message starts a new one.".into(),
        ),
        TransitionError::NotOfferedTo { .. } => (
            conflict,
            "This conversation is not offered to you (any more).".into(),
        ),
        TransitionError::OfferExpired { .. } => (
            conflict,
            "The offer ran out before you accepted it.".into(),
        ),
        TransitionError::OfferOutstanding { .. } => (
            conflict,
            "This conversation is being offered to an agent right now.".into(),
        ),
        TransitionError::RecentlyDeclined { .. } => (
            conflict,
            "You declined this conversation a moment ago.".into(),
        ),
        TransitionError::NotHolder { holder, .. } => (
            StatusCode::FORBIDDEN,
            match holder {
                Some(_) => "Another agent holds this conversation.".into(),
                None => "You do not hold this conversation.".into(),
            },
        ),
        TransitionError::AlreadyTakesPart { .. } => (
            conflict,
            "That agent already takes part in this conversation.".into(),
        ),
        TransitionError::NotConsulted { .. } => (
            StatusCode::FORBIDDEN,
            "You are not consulted in this conversation.".into(),
        ),
        TransitionError::ThreadPaused => (
            conflict,
            "Another app or the Page inbox holds the Messenger thread: sending is paused until it is passed back.".into(),
        ),
        _ => (conflict, "That is not possible in this conversation now.".into()),
    }
}

/// The response for an engine error, in the agent's language (the desk's own words are
/// translated on the way out, `i18n::localise`; the crate's come from its catalogue here).
pub(crate) fn engine_error(e: &EngineError, lang: &Language) -> Response {
    eprintln!("desk: {e}");
    let (status, words) = match e {
        EngineError::Transition(t) => transition_words(t, lang),
        EngineError::NotFound(_) => (
            StatusCode::NOT_FOUND,
            "There is no such conversation.".into(),
        ),
        // These are written for agents already (in English: the desk's catalogue has them
        // in Spanish, `i18n::ERRORS`).
        EngineError::Window(w) => (StatusCode::CONFLICT, capitalised(&w.to_string())),
        EngineError::Pick(p) => pick_words(p),
        EngineError::UnknownQueue(_) => (StatusCode::NOT_FOUND, "There is no such queue.".into()),
        EngineError::Attachment(v) => {
            (StatusCode::UNPROCESSABLE_ENTITY, capitalised(&v.text(lang)))
        }
        EngineError::Undelivered(u) => (
            StatusCode::BAD_GATEWAY,
            capitalised(&Catalogue::builtin().translate(&u.reason, lang)),
        ),
        EngineError::Send(_) => (
            StatusCode::BAD_GATEWAY,
            "Messenger did not take the message; the conversation shows what happened.".into(),
        ),
        EngineError::Store(_) | EngineError::Contention(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The desk could not save this just now. Try again.".into(),
        ),
        EngineError::NoMediaStore => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "This desk cannot send files.".into(),
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong in the desk. Try again.".into(),
        ),
    };
    error_response(status, words)
}

/// Why the agent may not pick the conversation.
fn pick_words(p: &PickRefusal) -> (StatusCode, String) {
    match p {
        PickRefusal::NotAPickQueue { .. } => (
            StatusCode::CONFLICT,
            "This conversation's queue offers its conversations; it cannot be picked.".into(),
        ),
        PickRefusal::SkillsMissing { .. } => (
            StatusCode::FORBIDDEN,
            "You do not have the skills this queue requires.".into(),
        ),
        PickRefusal::Taken => (
            StatusCode::CONFLICT,
            "Another agent took this conversation first.".into(),
        ),
        PickRefusal::AtCapacity { .. } => (
            StatusCode::CONFLICT,
            "You have no capacity free for another conversation.".into(),
        ),
        _ => (
            StatusCode::CONFLICT,
            "That is not possible in this conversation now.".into(),
        ),
    }
}

/// `words` with a capital first letter.
pub(crate) fn capitalised(words: &str) -> String {
    let mut chars = words.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_internal_name_reaches_the_agent() {
        let (status, words) = transition_words(
            &TransitionError::Illegal {
                state: StateKind::Open,
                input: InputKind::AgentSend,
            },
            &Language::ENGLISH,
        );
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            words,
            "You cannot write in this conversation now: it is waiting in the queue."
        );
        let (_, words) = transition_words(
            &TransitionError::Illegal {
                state: StateKind::WrapUp,
                input: InputKind::Revive,
            },
            &Language::SPANISH,
        );
        assert_eq!(
            words,
            "No puede reabrir esta conversación ahora: ha finalizado y está en cierre."
        );
        let (_, words) = transition_words(
            &TransitionError::Illegal {
                state: StateKind::WrapUp,
                input: InputKind::Revive,
            },
            &Language::ENGLISH,
        );
        assert!(
            !words.contains("WrapUp") && !words.contains("Revive"),
            "{words}"
        );
    }
}
