//! The desk's words in English and Spanish: one catalogue for the page (`PAGE`, sent to it by
//! `GET /desk/texts`) and for the desk's own errors (`ERRORS`, by their English words), chosen
//! per agent: the account's `language`, else the browser's `Accept-Language`. What the crate
//! says (policy refusals, notices, delivery failures) comes from its own catalogue,
//! `messenger_channel::texts`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use messenger_channel::texts::{Catalogue, Language};
use serde_json::{Map, Value, json};

use crate::Shared;
use crate::auth::{self, Account};

/// The languages the desk speaks.
pub(crate) const LANGUAGES: [Language; 2] = [Language::ENGLISH, Language::SPANISH];

/// The language for an agent: their account's, else the browser's, else English.
pub(crate) fn language(account: Option<&Account>, headers: &HeaderMap) -> Language {
    if let Some(lang) = account
        .and_then(|a| a.language.as_deref())
        .map(Language::new)
        .filter(|l| LANGUAGES.contains(l))
    {
        return lang;
    }
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Language::negotiate(v, &LANGUAGES))
        .unwrap_or(Language::ENGLISH)
}

/// The language of a request: the signed-in agent's, or the browser's.
pub(crate) fn request_language(desk: &crate::Desk, headers: &HeaderMap) -> Language {
    let account = auth::session_token(headers)
        .and_then(|t| desk.auth.sessions.agent(&t))
        .and_then(|name| desk.auth.accounts.get(&name));
    language(account.as_ref(), headers)
}

/// `GET /desk/texts`: the page's words in the request's language.
pub(crate) async fn texts(State(desk): State<Shared>, headers: HeaderMap) -> Response {
    let lang = request_language(&desk, &headers);
    let spanish = lang == Language::SPANISH;
    let texts: Map<String, Value> = PAGE
        .iter()
        .map(|(key, en, es)| ((*key).to_owned(), json!(if spanish { es } else { en })))
        .collect();
    axum::Json(json!({"language": lang.as_str(), "texts": texts})).into_response()
}

/// The desk's own error words in `lang` (they are written in English).
pub(crate) fn tr(lang: &Language, english: &str) -> String {
    if *lang == Language::SPANISH {
        if let Some((_, es)) = ERRORS.iter().find(|(en, _)| *en == english) {
            return (*es).to_owned();
        }
        // "A message holds at most N characters." and the like.
        for (en, es) in ERRORS.iter().filter(|(en, _)| en.contains("{}")) {
            let (before, after) = en.split_once("{}").unwrap_or((en, ""));
            if let Some(middle) = english
                .strip_prefix(before)
                .and_then(|rest| rest.strip_suffix(after))
            {
                return es.replacen("{}", middle, 1);
            }
        }
    }
    Catalogue::builtin().translate(english, lang)
}

/// Every JSON error the desk answers (`{"error": …}`) in the request's language: the
/// desk's own words from [`ERRORS`], the crate's from its catalogue.
pub(crate) async fn localise(State(desk): State<Shared>, request: Request, next: Next) -> Response {
    let headers = request.headers().clone();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let lang = request_language(&desk, &headers);
    if lang == Language::ENGLISH {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (parts.status, "").into_response();
    };
    let mut out = bytes.clone();
    if let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) {
        if let Some(words) = v.get("error").and_then(Value::as_str) {
            v["error"] = json!(tr(&lang, words));
            out = serde_json::to_vec(&v).unwrap_or_default().into();
            parts.headers.remove(header::CONTENT_LENGTH);
        }
    }
    Response::from_parts(parts, Body::from(out))
}

/// The page's words: key, English, Spanish. `{name}` is filled in by the page.
pub(crate) const PAGE: &[(&str, &str, &str)] = &[
    ("desk_title", "Agent desk", "Escritorio del agente"),
    ("name", "Name", "Nombre"),
    ("password", "Password", "Contraseña"),
    ("sign_in", "Sign in", "Iniciar sesión"),
    ("sign_out", "Sign out", "Cerrar sesión"),
    ("presence", "Presence", "Presencia"),
    ("presence_available", "Available", "Disponible"),
    ("presence_busy", "Busy", "Ocupado"),
    ("presence_dnd", "Do not disturb", "No molestar"),
    ("presence_away", "Away", "Ausente"),
    ("presence_offline", "Offline", "Desconectado"),
    ("incoming", "Incoming", "Entrantes"),
    ("my_conversations", "My conversations", "Mis conversaciones"),
    ("queue", "Queue", "Cola"),
    ("queue_count", "Queue ({n} waiting)", "Cola ({n} en espera)"),
    (
        "queue_empty",
        "Nobody is waiting.",
        "No hay nadie esperando.",
    ),
    ("waiting_for", "waiting {time}", "esperando {time}"),
    ("offered_to", "offered to {agent}", "ofrecida a {agent}"),
    (
        "closed_conversations",
        "Closed conversations",
        "Conversaciones cerradas",
    ),
    ("agents", "Agents", "Agentes"),
    (
        "no_conversation",
        "No conversation selected",
        "Ninguna conversación seleccionada",
    ),
    (
        "read_only",
        "Read only: this conversation is not yours to act on.",
        "Solo lectura: esta conversación no es suya.",
    ),
    ("reply_placeholder", "Type a reply", "Escriba una respuesta"),
    ("send", "Send", "Enviar"),
    ("attach", "Attach file", "Adjuntar archivo"),
    ("end", "End", "Finalizar"),
    ("close", "Close", "Cerrar"),
    ("reopen", "Reopen", "Reabrir"),
    (
        "earlier_conversations",
        "The customer's earlier conversations",
        "Conversaciones anteriores del cliente",
    ),
    ("no_earlier", "None.", "Ninguna."),
    ("nothing", "None yet.", "Ninguna todavía."),
    (
        "saved_not_sent",
        "Saved, not sent yet: {reason}",
        "Guardado, aún no enviado: {reason}",
    ),
    (
        "http_status",
        "The desk answered {status}.",
        "El escritorio respondió {status}.",
    ),
    (
        "customer_fallback",
        "Facebook user ·{digits}",
        "Usuario de Facebook ·{digits}",
    ),
    ("state_Open", "In queue", "En cola"),
    ("state_Active", "Active", "Activa"),
    ("state_Waiting", "Waiting", "En espera"),
    ("state_WrapUp", "Wrap-up", "Cierre"),
    ("state_Closed", "Closed", "Cerrada"),
    ("paused", "(paused)", "(en pausa)"),
    ("seconds", "{n} s", "{n} s"),
    ("minutes", "{n} min", "{n} min"),
    ("hours", "{n} h {m} min", "{n} h {m} min"),
    ("author_customer", "Customer", "Cliente"),
    ("author_system", "System", "Sistema"),
    ("author_page_inbox", "Page inbox", "Bandeja de la página"),
    ("author_agent", "Agent {name}", "Agente {name}"),
    ("author_app", "App {name}", "Aplicación {name}"),
    ("file", "file", "archivo"),
    ("sticker", "(sticker)", "(sticker)"),
    ("location", "Location", "Ubicación"),
    ("map", "(map)", "(mapa)"),
    (
        "removed_paren",
        "(removed by the customer)",
        "(eliminado por el cliente)",
    ),
    ("button_prefix", "[button]", "[botón]"),
    (
        "message_removed",
        "Message removed by the customer",
        "Mensaje eliminado por el cliente",
    ),
    (
        "removed_by_customer",
        "removed by the customer",
        "eliminado por el cliente",
    ),
    (
        "unsupported_type",
        "Error: Customer sent an unsupported message type ({name}): {reason}",
        "Error: el cliente envió un tipo de mensaje no admitido ({name}): {reason}",
    ),
    (
        "receiving_file",
        "(receiving the file…)",
        "(recibiendo el archivo…)",
    ),
    (
        "file_unavailable",
        "(not available: {reason})",
        "(no disponible: {reason})",
    ),
    (
        "earlier_message",
        "an earlier message",
        "un mensaje anterior",
    ),
    (
        "earlier_versions",
        "Earlier versions:",
        "Versiones anteriores:",
    ),
    ("edited", "edited ({n})", "editado ({n})"),
    (
        "reaction_added",
        "reacted {emoji} to an earlier message",
        "reaccionó {emoji} a un mensaje anterior",
    ),
    (
        "reaction_removed",
        "removed a reaction {emoji}",
        "quitó una reacción {emoji}",
    ),
    (
        "edited_earlier",
        "edited an earlier message: {text}",
        "editó un mensaje anterior: {text}",
    ),
    ("receipt_sending", "… sending", "… enviando"),
    ("receipt_sent", "✓", "✓"),
    ("receipt_delivered", "✓✓", "✓✓"),
    ("receipt_read", "✓✓ Read", "✓✓ Leído"),
    ("receipt_failed", "✗ Not delivered", "✗ No entregado"),
    (
        "conversation_with",
        "Conversation with {customer} — {state}",
        "Conversación con {customer} — {state}",
    ),
    (
        "page_attention",
        "Page {page} needs attention: {reason} Messages wait until it is fixed.",
        "La página {page} necesita atención: {reason} Los mensajes esperan hasta que se resuelva.",
    ),
    (
        "outbox",
        "Outbox: {pending} waiting, {failed} not delivered",
        "Bandeja de salida: {pending} en espera, {failed} no entregados",
    ),
    ("outbox_oldest", "(oldest {s} s)", "(el más antiguo, {s} s)"),
    (
        "offer_from",
        "New conversation from",
        "Nueva conversación de",
    ),
    ("accept_within", "Accept within", "Acepte en"),
    ("seconds_short", "s", "s"),
    ("accept", "Accept", "Aceptar"),
    ("reject", "Reject", "Rechazar"),
    (
        "disconnected",
        "Connection to the desk lost. Reconnecting… (what you see may be out of date)",
        "Se perdió la conexión con el escritorio. Reconectando… (lo que ve puede estar desactualizado)",
    ),
    (
        "signed_in_as",
        "Signed in as {display} ({name}, {role})",
        "Sesión iniciada como {display} ({name}, {role})",
    ),
    ("role_agent", "agent", "agente"),
    ("role_supervisor", "supervisor", "supervisor"),
    ("signed_out", "Signed out.", "Sesión cerrada."),
    (
        "select_first",
        "Select a conversation first.",
        "Seleccione primero una conversación.",
    ),
    (
        "choose_file",
        "Choose a file first.",
        "Elija primero un archivo.",
    ),
    (
        "simulation_banner",
        "Simulation: no messages reach Messenger. Sign in as {accounts} with the password the desk printed when it started; the simulated customer is at /customer.",
        "Simulación: ningún mensaje llega a Messenger. Inicie sesión como {accounts} con la contraseña que el escritorio mostró al arrancar; el cliente simulado está en /customer.",
    ),
];

/// The desk's own error words, English and Spanish (`{}`: a value kept as it is).
const ERRORS: &[(&str, &str)] = &[
    (
        "Another agent holds this conversation.",
        "Otro agente tiene esta conversación.",
    ),
    (
        "Another app or the Page inbox holds the Messenger thread: sending is paused until it is passed back.",
        "Otra aplicación o la bandeja de la página tiene el hilo de Messenger: el envío está en pausa hasta que lo devuelva.",
    ),
    (
        "Files are sent from the desk's own page.",
        "Los archivos se envían desde la propia página del escritorio.",
    ),
    ("Messenger did not take it.", "Messenger no lo aceptó."),
    (
        "Messenger did not take the message; the conversation shows what happened.",
        "Messenger no aceptó el mensaje; la conversación muestra lo ocurrido.",
    ),
    (
        "Presence is available, busy, away, dnd or offline.",
        "La presencia es available, busy, away, dnd u offline.",
    ),
    (
        "Say which conversation and the file's name.",
        "Indique la conversación y el nombre del archivo.",
    ),
    ("Say which conversation.", "Indique la conversación."),
    (
        "Say which message to react to.",
        "Indique a qué mensaje reaccionar.",
    ),
    ("Sign in first.", "Inicie sesión primero."),
    (
        "Something went wrong in the desk. Try again.",
        "Algo falló en el escritorio. Inténtelo de nuevo.",
    ),
    (
        "That is not possible in this conversation now.",
        "Eso no es posible ahora en esta conversación.",
    ),
    (
        "That name and password do not match an account.",
        "Ese nombre y esa contraseña no coinciden con ninguna cuenta.",
    ),
    (
        "The desk could not read or save this just now. Try again.",
        "El escritorio no pudo leer ni guardar esto ahora. Inténtelo de nuevo.",
    ),
    (
        "The desk could not read this conversation. Try again.",
        "El escritorio no pudo leer esta conversación. Inténtelo de nuevo.",
    ),
    (
        "The desk could not read this file. Try again.",
        "El escritorio no pudo leer este archivo. Inténtelo de nuevo.",
    ),
    (
        "The desk could not save this just now. Try again.",
        "El escritorio no pudo guardar esto ahora. Inténtelo de nuevo.",
    ),
    (
        "The desk could not start your session. Try again.",
        "El escritorio no pudo iniciar su sesión. Inténtelo de nuevo.",
    ),
    (
        "The desk could not understand the request.",
        "El escritorio no entendió la solicitud.",
    ),
    (
        "The desk has no such action.",
        "El escritorio no tiene esa acción.",
    ),
    (
        "The desk no longer has this file.",
        "El escritorio ya no tiene este archivo.",
    ),
    (
        "The desk takes JSON (Content-Type: application/json).",
        "El escritorio acepta JSON (Content-Type: application/json).",
    ),
    ("The file is empty.", "El archivo está vacío."),
    (
        "The offer ran out before you accepted it.",
        "La oferta caducó antes de que la aceptara.",
    ),
    (
        "The request is not valid JSON.",
        "La solicitud no es JSON válido.",
    ),
    (
        "The request is too large.",
        "La solicitud es demasiado grande.",
    ),
    (
        "The request names no host.",
        "La solicitud no indica ningún host.",
    ),
    (
        "There is no such conversation.",
        "No existe esa conversación.",
    ),
    (
        "There is nothing at this address.",
        "No hay nada en esta dirección.",
    ),
    (
        "This address does not take that kind of request.",
        "Esta dirección no acepta ese tipo de solicitud.",
    ),
    (
        "This conversation is being offered to an agent right now.",
        "Esta conversación se está ofreciendo a un agente en este momento.",
    ),
    (
        "This conversation is closed. The customer's next message starts a new one.",
        "Esta conversación está cerrada. El próximo mensaje del cliente inicia una nueva.",
    ),
    (
        "This conversation is not offered to you (any more).",
        "Esta conversación no se le ofrece (ya).",
    ),
    (
        "This desk cannot send files.",
        "Este escritorio no puede enviar archivos.",
    ),
    (
        "This file is not in that conversation.",
        "Este archivo no está en esa conversación.",
    ),
    ("This is not allowed.", "Esto no está permitido."),
    (
        "This request did not come from the desk's own page, so it was refused.",
        "Esta solicitud no vino de la propia página del escritorio, así que se rechazó.",
    ),
    (
        "Write a message before sending.",
        "Escriba un mensaje antes de enviar.",
    ),
    (
        "You are not signed in, or your session has ended. Sign in again.",
        "No ha iniciado sesión o su sesión terminó. Inicie sesión de nuevo.",
    ),
    (
        "You declined this conversation a moment ago.",
        "Rechazó esta conversación hace un momento.",
    ),
    (
        "You do not hold this conversation.",
        "Usted no tiene esta conversación.",
    ),
    (
        "A message holds at most {} characters.",
        "Un mensaje admite como máximo {} caracteres.",
    ),
    (
        "Too many failed sign-ins. Try again in {} minute(s).",
        "Demasiados intentos fallidos. Inténtelo de nuevo en {} minuto(s).",
    ),
    (
        "A field is missing or has the wrong type: {}",
        "Falta un campo o tiene un tipo incorrecto: {}",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_text_has_both_languages_and_one_key() {
        for (key, en, es) in PAGE {
            assert!(!en.is_empty() && !es.is_empty(), "{key}");
            assert_eq!(PAGE.iter().filter(|(k, ..)| k == key).count(), 1, "{key}");
        }
    }

    #[test]
    fn errors_translate_with_their_values() {
        let es = Language::SPANISH;
        assert_eq!(
            tr(&es, "Write a message before sending."),
            "Escriba un mensaje antes de enviar."
        );
        assert_eq!(
            tr(&es, "A message holds at most 2000 characters."),
            "Un mensaje admite como máximo 2000 caracteres."
        );
        assert_eq!(
            tr(&es, "Files of type .exe are blocked."),
            "Los archivos de tipo .exe están bloqueados."
        );
        assert_eq!(tr(&Language::ENGLISH, "Sign in first."), "Sign in first.");
    }

    #[test]
    fn the_account_language_wins_over_the_browser() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, "es-ES,es;q=0.9".parse().unwrap());
        assert_eq!(language(None, &headers), Language::SPANISH);
        let account = Account {
            name: "a".into(),
            display_name: "A".into(),
            role: auth::Role::Agent,
            capacity: 1,
            password_hash: String::new(),
            language: Some("en".into()),
        };
        assert_eq!(language(Some(&account), &headers), Language::ENGLISH);
        assert_eq!(language(None, &HeaderMap::new()), Language::ENGLISH);
    }
}
