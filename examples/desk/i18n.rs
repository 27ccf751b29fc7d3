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
                // What fills the gap may be words of the catalogue too ("Waiting: {reason}").
                return es.replacen("{}", &tr(lang, middle), 1);
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
    ("presence_dnd", "Busy - DND", "Ocupado - No molestar"),
    ("presence_away", "Away", "Ausente"),
    ("presence_offline", "Offline", "Desconectado"),
    (
        "notice_presence_set",
        "Your presence was set to {presence} after a missed or declined offer.",
        "Su presencia se cambió a {presence} tras una oferta perdida o rechazada.",
    ),
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
    ("pick", "Pick", "Tomar"),
    (
        "pick_count",
        "Open work items ({n})",
        "Elementos de trabajo abiertos ({n})",
    ),
    ("pick_empty", "Nothing to pick.", "Nada que tomar."),
    ("in_queue", "in {queue}", "en {queue}"),
    ("transfer", "Transfer", "Transferir"),
    ("transfer_title", "Transfer to", "Transferir a"),
    (
        "target_agent",
        "{name} — {presence}, {free} of {capacity} free",
        "{name} — {presence}, {free} de {capacity} libres",
    ),
    (
        "targets_ready",
        "Available, with capacity free",
        "Disponibles, con capacidad libre",
    ),
    (
        "targets_other",
        "Not available now (transfer still possible)",
        "No disponibles ahora (aún se puede transferir)",
    ),
    ("targets_queues", "Queues", "Colas"),
    ("target_queue", "Queue {name}", "Cola {name}"),
    (
        "transfer_note",
        "Note for whoever takes it",
        "Nota para quien la tome",
    ),
    ("cancel", "Cancel", "Cancelar"),
    (
        "transfer_from",
        "Transferred to you by {agent}",
        "Transferida a usted por {agent}",
    ),
    ("transfer_note_is", "Note: {note}", "Nota: {note}"),
    (
        "transferred_mark",
        "(transferred by {agent})",
        "(transferida por {agent})",
    ),
    ("consult", "Consult", "Consultar"),
    ("consult_title", "Invite to consult", "Invitar a consultar"),
    ("invite", "Invite", "Invitar"),
    ("consulting", "Consulting", "En consulta"),
    ("leave_consult", "Leave consult", "Dejar la consulta"),
    (
        "consult_only_notes",
        "You are consulted: you write internal notes only; the customer sees nothing of them.",
        "Le han consultado: solo escribe notas internas; el cliente no ve nada de ellas.",
    ),
    ("consulted", "consulted: {agents}", "consultados: {agents}"),
    (
        "note_placeholder",
        "Internal note (agents and supervisors only)",
        "Nota interna (solo agentes y supervisores)",
    ),
    ("add_note", "Add note", "Añadir nota"),
    ("internal", "Internal", "Interno"),
    (
        "author_supervisor",
        "Supervisor {name}",
        "Supervisor {name}",
    ),
    (
        "internal_transferred_agent",
        "transferred the conversation to {to}",
        "transfirió la conversación a {to}",
    ),
    (
        "internal_transferred_queue",
        "transferred the conversation to queue {to}",
        "transfirió la conversación a la cola {to}",
    ),
    (
        "internal_with_note",
        "{text} — note: {note}",
        "{text} — nota: {note}",
    ),
    (
        "internal_consult_invited",
        "invited {agent} to consult",
        "invitó a {agent} a consultar",
    ),
    (
        "internal_consult_left",
        "left the consult",
        "dejó la consulta",
    ),
    (
        "internal_assigned",
        "assigned the conversation to {agent}",
        "asignó la conversación a {agent}",
    ),
    (
        "internal_force_closed",
        "closed the conversation",
        "cerró la conversación",
    ),
    (
        "internal_record_linked",
        "linked the customer record {record}",
        "vinculó el registro de cliente {record}",
    ),
    (
        "internal_record_unlinked",
        "unlinked the customer record",
        "desvinculó el registro de cliente",
    ),
    ("supervisor_view", "Supervisor: queues", "Supervisor: colas"),
    (
        "sup_queue",
        "{name}: {waiting} waiting, {active} active",
        "{name}: {waiting} en espera, {active} activas",
    ),
    ("held_by", "with {agent}", "con {agent}"),
    ("watch", "Watch", "Observar"),
    ("assign", "Assign", "Asignar"),
    ("choose_agent", "Agent…", "Agente…"),
    ("force_close", "Force close", "Forzar cierre"),
    (
        "watching",
        "Watching live, read only: internal notes only.",
        "Observando en directo, solo lectura: solo notas internas.",
    ),
    (
        "simulation_banner",
        "Simulation: no messages reach Messenger. Sign in as {accounts} with the password the desk printed when it started; the simulated customer is at /customer.",
        "Simulación: ningún mensaje llega a Messenger. Inicie sesión como {accounts} con la contraseña que el escritorio mostró al arrancar; el cliente simulado está en /customer.",
    ),
];

/// The desk's own error words, English and Spanish (`{}`: a value kept as it is).
pub(crate) const ERRORS: &[(&str, &str)] = &[
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
        "This desk does not answer to that host name. Open it at the address it printed, or start it with --origin.",
        "Este escritorio no responde a ese nombre de host. Ábralo en la dirección que mostró al arrancar, o inícielo con --origin.",
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
    ("Say which agent.", "Indique el agente."),
    ("There is no such agent.", "No existe ese agente."),
    ("There is no such queue.", "No existe esa cola."),
    ("Write a note first.", "Escriba primero una nota."),
    (
        "Say whom to transfer to: an agent or a queue.",
        "Indique a quién transferir: un agente o una cola.",
    ),
    (
        "Only supervisors can do this.",
        "Solo los supervisores pueden hacer esto.",
    ),
    (
        "You can open only conversations you work on, or their customer's earlier ones.",
        "Solo puede abrir las conversaciones en las que trabaja, o las anteriores de su cliente.",
    ),
    (
        "That agent already takes part in this conversation.",
        "Ese agente ya participa en esta conversación.",
    ),
    (
        "You are not consulted in this conversation.",
        "No le han consultado en esta conversación.",
    ),
    (
        "This conversation's queue offers its conversations; it cannot be picked.",
        "La cola de esta conversación la ofrece a los agentes; no se puede tomar.",
    ),
    (
        "You do not have the skills this queue requires.",
        "No tiene las habilidades que requiere esta cola.",
    ),
    (
        "Another agent took this conversation first.",
        "Otro agente tomó esta conversación antes.",
    ),
    (
        "You have no capacity free for another conversation.",
        "No tiene capacidad libre para otra conversación.",
    ),
    // The messaging window's refusals (`messenger_channel::window::WindowDenial`), as the
    // desk shows them (capitalised).
    (
        "The customer has not written to the page, so no messaging window is open",
        "El cliente no ha escrito a la página, así que no hay ninguna ventana de mensajería abierta",
    ),
    // Why a message is not sent yet (`Delivery::Retrying`).
    (
        "The message is saved and will be sent shortly.",
        "El mensaje está guardado y se enviará en breve.",
    ),
    (
        "Messenger is limiting this page's sends; it will be sent again shortly.",
        "Messenger está limitando los envíos de esta página; se enviará de nuevo en breve.",
    ),
    (
        "Messenger could not be reached; it will be sent again shortly.",
        "No se pudo contactar con Messenger; se enviará de nuevo en breve.",
    ),
    (
        "Messenger failed for now; it will be sent again shortly.",
        "Messenger falló por ahora; se enviará de nuevo en breve.",
    ),
    (
        "the previous attempt was interrupted",
        "el intento anterior se interrumpió",
    ),
    (
        "Messenger did not answer in time",
        "Messenger no respondió a tiempo",
    ),
    // The page-health reasons (`PageAttention::reason`).
    (
        "the page's access token is invalid or expired; an administrator must renew it.",
        "el token de acceso de la página no es válido o caducó; un administrador debe renovarlo.",
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
    (
        "A note holds at most {} characters.",
        "Una nota admite como máximo {} caracteres.",
    ),
    (
        "A file's name holds at most {} characters.",
        "El nombre de un archivo admite como máximo {} caracteres.",
    ),
    (
        "A file's type holds at most {} characters.",
        "El tipo de un archivo admite como máximo {} caracteres.",
    ),
    (
        "The 24-hour window closed {} ago; automated messages can only be sent within 24 hours of the customer's last message",
        "La ventana de 24 horas se cerró hace {}; los mensajes automáticos solo se pueden enviar en las 24 horas siguientes al último mensaje del cliente",
    ),
    (
        "The 24-hour window closed {} ago, and this page is not allowed to use the HUMAN_AGENT tag; wait for the customer to write again",
        "La ventana de 24 horas se cerró hace {} y esta página no puede usar la etiqueta HUMAN_AGENT; espere a que el cliente vuelva a escribir",
    ),
    (
        "The 7-day human-agent window closed {} ago; wait for the customer to write again",
        "La ventana de 7 días para agentes humanos se cerró hace {}; espere a que el cliente vuelva a escribir",
    ),
    (
        "Waiting: {} Messages are sent once it is fixed.",
        "En espera: {} Los mensajes se envían cuando se resuelva.",
    ),
    (
        "Waiting: {} Reactions are sent once it is fixed.",
        "En espera: {} Las reacciones se envían cuando se resuelva.",
    ),
    (
        "Checking: {}; waiting for Messenger to confirm the message.",
        "Comprobando: {}; esperando a que Messenger confirme el mensaje.",
    ),
    ("Waiting: {}", "En espera: {}"),
    (
        "the page or app lacks a permission Messenger requires; an administrator must grant it{}.",
        "a la página o a la aplicación le falta un permiso que Messenger exige; un administrador debe concederlo{}.",
    ),
    (
        "Messenger has restricted the page; an administrator must check the page's quality and policy status{}.",
        "Messenger ha restringido la página; un administrador debe revisar la calidad y el estado de cumplimiento de la página{}.",
    ),
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The page, whose words are looked up by key.
    const HTML: &str = include_str!("agent.html");
    /// The desk's Rust files that write words for agents (this one's tests aside), and the
    /// crate's files whose words the desk shows as they are (window refusals, page health).
    const SOURCES: &[(&str, &str)] = &[
        ("agent.rs", include_str!("agent.rs")),
        ("auth.rs", include_str!("auth.rs")),
        ("errors.rs", include_str!("errors.rs")),
        ("main.rs", include_str!("main.rs")),
        ("media.rs", include_str!("media.rs")),
        ("options.rs", include_str!("options.rs")),
        ("sim.rs", include_str!("sim.rs")),
        ("supervise.rs", include_str!("supervise.rs")),
        ("web.rs", include_str!("web.rs")),
        ("work.rs", include_str!("work.rs")),
    ];
    const CRATE_SOURCES: &[(&str, &str)] = &[
        ("window.rs", include_str!("../../src/window.rs")),
        ("delivery.rs", include_str!("../../src/engine/delivery.rs")),
    ];
    /// Sentences not for agents, which need no translation: what the desk prints for whoever
    /// runs it, the privacy notice the customer gets, the simulated Graph API's own error.
    const NOT_FOR_AGENTS: &[&str] = &[
        "Error validating access token: Session has expired.",
        "Accounts: {}   Data: {}   Stop with Ctrl-C.",
        "Hello! This conversation may be monitored, recorded and stored to help us serve you.",
    ];

    /// Sentences `errors.rs` composes from parts in each language itself.
    const COMPOSED: &[&str] = &["You cannot {} now: {}.", "No puede {} ahora: {}."];

    /// The string literals of Rust source (comments and char literals skipped), with each
    /// `{name}` or `{}` of a format string as `{}`, up to its tests.
    fn literals(source: &str) -> Vec<String> {
        let source = source.split("#[cfg(test)]").next().unwrap_or(source);
        let chars: Vec<char> = source.chars().collect();
        let (mut out, mut i) = (Vec::new(), 0);
        while i < chars.len() {
            match chars[i] {
                '/' if chars.get(i + 1) == Some(&'/') => {
                    while i < chars.len() && chars[i] != '\n' {
                        i += 1;
                    }
                }
                '\'' if chars.get(i + 1) == Some(&'\\') => {
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                }
                '\'' if chars.get(i + 2) == Some(&'\'') => i += 3,
                '"' => {
                    let mut text = String::new();
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        if chars[i] == '\\' {
                            i += 1;
                            match chars.get(i) {
                                Some('n') => text.push('\n'),
                                // A line continuation: the next line's leading spaces go.
                                Some('\n') => {
                                    while chars.get(i + 1).is_some_and(|c| c.is_whitespace()) {
                                        i += 1;
                                    }
                                }
                                Some(c) => text.push(*c),
                                None => {}
                            }
                        } else {
                            text.push(chars[i]);
                        }
                        i += 1;
                    }
                    out.push(placeholders(&text));
                    i += 1;
                }
                _ => i += 1,
            }
        }
        out
    }

    /// `{name}` (a format argument) as `{}`.
    fn placeholders(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            match rest[start..].find('}') {
                Some(end)
                    if rest[start + 1..start + end]
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_') =>
                {
                    out.push_str("{}");
                    rest = &rest[start + end + 1..];
                }
                _ => {
                    out.push('{');
                    rest = &rest[start + 1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Whether `words` are in [`ERRORS`] (exactly, or as a pattern with a `{}`), first letter
    /// case aside.
    fn in_errors(words: &str) -> bool {
        let capital = crate::errors::capitalised(words);
        ERRORS.iter().any(|(en, _)| *en == words || *en == capital)
    }

    /// What the page looks up: keys (`data-t="key"`, `t("key")`) and key prefixes
    /// (`t("state_" + c.state)`).
    fn page_keys() -> (BTreeSet<String>, BTreeSet<String>) {
        let (mut keys, mut prefixes) = (BTreeSet::new(), BTreeSet::new());
        // Its script's comment lines aside.
        let html: String = HTML
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let html = html.as_str();
        for attribute in ["data-t=\"", "data-t-placeholder=\""] {
            for (at, _) in html.match_indices(attribute) {
                let rest = &html[at + attribute.len()..];
                keys.insert(rest[..rest.find('"').unwrap()].to_owned());
            }
        }
        for (at, _) in html.match_indices("t(") {
            let before = html[..at].chars().next_back().unwrap_or(' ');
            if before.is_ascii_alphanumeric() || before == '_' || before == '.' {
                continue;
            }
            // The first argument: up to the call's first comma or closing parenthesis.
            let rest = &html[at + 2..];
            let end = rest.find([',', ')']).unwrap_or(rest.len());
            let argument = &rest[..end];
            let mut parts = argument.split('"');
            parts.next();
            while let (Some(literal), Some(after)) = (parts.next(), parts.next()) {
                if after.trim_start().starts_with('+') {
                    prefixes.insert(literal.to_owned());
                } else {
                    keys.insert(literal.to_owned());
                }
            }
        }
        (keys, prefixes)
    }

    #[test]
    fn every_text_the_page_uses_is_in_the_catalogue_and_none_is_unused() {
        let (keys, prefixes) = page_keys();
        assert!(keys.len() > 50, "the page's keys were not found: {keys:?}");
        let known: BTreeSet<&str> = PAGE.iter().map(|(k, ..)| *k).collect();
        let missing: Vec<&String> = keys
            .iter()
            .filter(|k| !known.contains(k.as_str()))
            .chain(
                prefixes
                    .iter()
                    .filter(|p| !known.iter().any(|k| k.starts_with(p.as_str()))),
            )
            .collect();
        assert!(
            missing.is_empty(),
            "the page uses these, which the catalogue lacks: {missing:?}"
        );
        let unused: Vec<&str> = known
            .into_iter()
            .filter(|k| !keys.contains(*k) && !prefixes.iter().any(|p| k.starts_with(p.as_str())))
            .collect();
        assert!(
            unused.is_empty(),
            "in the catalogue, never used by the page: {unused:?}"
        );
    }

    #[test]
    fn every_page_text_has_the_same_placeholders_in_both_languages() {
        let names = |s: &str| -> BTreeSet<String> {
            s.split('{')
                .skip(1)
                .filter_map(|p| p.split_once('}').map(|(n, _)| n.to_owned()))
                .collect()
        };
        for (key, en, es) in PAGE {
            assert_eq!(names(en), names(es), "{key}");
        }
        for (en, es) in ERRORS {
            assert_eq!(en.matches("{}").count(), es.matches("{}").count(), "{en}");
            assert!(!es.is_empty(), "{en}");
        }
    }

    #[test]
    fn every_error_the_desk_writes_is_in_the_catalogue_and_none_is_unused() {
        let desk: Vec<(&str, String)> = SOURCES
            .iter()
            .flat_map(|(file, source)| literals(source).into_iter().map(move |l| (*file, l)))
            .collect();
        // A sentence for agents: a capital, a space, a full stop; not a doc test or a path.
        let english_only: Vec<String> = desk
            .iter()
            .filter(|(_, words)| {
                words.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                    && words.contains(' ')
                    && words.ends_with('.')
                    && !NOT_FOR_AGENTS.contains(&words.as_str())
                    && !COMPOSED.contains(&words.as_str())
                    && !in_errors(words)
                    && Catalogue::builtin().translate(words, &Language::SPANISH) == *words
            })
            .map(|(file, words)| format!("{file}: {words}"))
            .collect();
        assert!(
            english_only.is_empty(),
            "the desk writes these, which the catalogue has in English only: {english_only:#?}"
        );
        let crate_words: Vec<String> = CRATE_SOURCES
            .iter()
            .flat_map(|(_, source)| literals(source))
            .collect();
        let unused: Vec<&str> = ERRORS
            .iter()
            .map(|(en, _)| *en)
            .filter(|en| {
                !desk
                    .iter()
                    .map(|(_, l)| l)
                    .chain(&crate_words)
                    .any(|l| l == en || crate::errors::capitalised(l) == *en)
            })
            .collect();
        assert!(
            unused.is_empty(),
            "in the catalogue, written by nothing: {unused:#?}"
        );
    }

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
        assert_eq!(
            tr(
                &es,
                "Waiting: the page's access token is invalid or expired; an administrator must renew it. Messages are sent once it is fixed."
            ),
            "En espera: el token de acceso de la página no es válido o caducó; un administrador debe renovarlo. Los mensajes se envían cuando se resuelva."
        );
        assert_eq!(
            tr(
                &es,
                "The 24-hour window closed 3 d 4 h ago, and this page is not allowed to use the HUMAN_AGENT tag; wait for the customer to write again"
            ),
            "La ventana de 24 horas se cerró hace 3 d 4 h y esta página no puede usar la etiqueta HUMAN_AGENT; espere a que el cliente vuelva a escribir"
        );
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
