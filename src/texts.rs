//! What the crate says to agents, in their language: one catalogue of templates with English
//! and Spanish built in, and a way for hosts to add a language.
//!
//! The crate's sentences for agents (attachment policy refusals, the notices it writes into
//! transcripts, delivery failures, Omnichannel's "the customer sent an unsupported message
//! type") each have a [`TextId`]; a [`Text`] is one of them with its facts (`{extension}`,
//! `{agent}`…), rendered by a [`Catalogue`] in a [`Language`]. English renders exactly as the
//! crate's `Display` and stored texts read, so a host that shows English changes nothing.
//!
//! Typed refusals give their text directly ([`crate::attachment::Violation::text`],
//! [`crate::conversation::SendRefusal::text`]); a sentence the crate stored in a transcript in
//! English (a notice, a delivery failure, [`crate::attachment::Rejection::message`]) is read
//! back with [`Text::recognise`].
//!
//! ```
//! use messenger_channel::attachment::Violation;
//! use messenger_channel::texts::{Catalogue, Language, Text, TextId};
//!
//! let v = Violation::ExtensionBlocked { extension: "exe".into() };
//! assert_eq!(v.text(&Language::ENGLISH), "Files of type .exe are blocked.");
//! assert_eq!(v.text(&Language::SPANISH), "Los archivos de tipo .exe están bloqueados.");
//!
//! // A sentence stored in English, shown in Spanish.
//! let notice = Text::recognise("alice ended the conversation").unwrap();
//! assert_eq!(notice.id(), TextId::AgentEnded);
//! assert_eq!(Catalogue::builtin().render(&notice, &Language::SPANISH), "alice finalizó la conversación");
//!
//! // A host adds a language; what it leaves out is said in English.
//! let mut catalogue = Catalogue::new();
//! let french = Language::new("fr");
//! catalogue.set(&french, TextId::ExtensionBlocked, "Les fichiers .{extension} sont bloqués.");
//! assert_eq!(catalogue.render(&v.to_text(), &french), "Les fichiers .exe sont bloqués.");
//! assert_eq!(catalogue.render(&notice, &french), "alice ended the conversation");
//! ```

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

/// A language, by its primary subtag (`en`, `es`), lower case: `es-MX` is Spanish.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Language(Cow<'static, str>);

impl Language {
    /// English, the crate's own language and every catalogue's fallback.
    pub const ENGLISH: Self = Self(Cow::Borrowed("en"));
    /// Spanish.
    pub const SPANISH: Self = Self(Cow::Borrowed("es"));

    /// The language of a tag (`es`, `es-MX`, `ES_es`): its primary subtag, lower case.
    pub fn new(tag: &str) -> Self {
        let primary = tag
            .trim()
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        match primary.as_str() {
            "en" => Self::ENGLISH,
            "es" => Self::SPANISH,
            _ => Self(Cow::Owned(primary)),
        }
    }

    /// The primary subtag.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The language an `Accept-Language` header prefers among `available`: the highest
    /// weight first (`q`, default 1; `q=0` refuses), then the header's order. `None` when
    /// none is available.
    ///
    /// ```
    /// use messenger_channel::texts::Language;
    ///
    /// let available = [Language::ENGLISH, Language::SPANISH];
    /// let chosen = Language::negotiate("fr-FR, es-ES;q=0.8, en;q=0.5", &available);
    /// assert_eq!(chosen, Some(Language::SPANISH));
    /// assert_eq!(Language::negotiate("de", &available), None);
    /// ```
    pub fn negotiate(accept_language: &str, available: &[Self]) -> Option<Self> {
        let mut best: Option<(u32, Self)> = None;
        for part in accept_language.split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("").trim();
            if tag.is_empty() || tag == "*" {
                continue;
            }
            let weight = pieces
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            // Thousandths: a weight has at most three decimals.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "clamped to 0..=1000 first"
            )]
            let weight = (weight.clamp(0.0, 1.0) * 1000.0).round() as u32;
            let language = Self::new(tag);
            if weight == 0 || !available.contains(&language) {
                continue;
            }
            if best.as_ref().is_none_or(|(w, _)| weight > *w) {
                best = Some((weight, language));
            }
        }
        best.map(|(_, l)| l)
    }
}

impl Default for Language {
    fn default() -> Self {
        Self::ENGLISH
    }
}

/// Which sentence a [`Text`] is. Each has a stable [`TextId::key`] and names its facts in
/// its templates (`{extension}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TextId {
    /// Customers' files are turned off.
    AttachmentsOffInbound,
    /// Sending files is turned off.
    AttachmentsOffOutbound,
    /// `{kind}`: a kind of message that is not a file.
    UnsupportedKind,
    /// `{size}`, `{max}`: the file is too large.
    TooLarge,
    /// `{extension}`: blocked.
    ExtensionBlocked,
    /// `{extension}`, `{allowed}`: not in the allowed list.
    ExtensionNotAllowed,
    /// `{allowed}`: a file without an extension, where only some are allowed.
    NoExtensionNotAllowed,
    /// `{mime}`: the type is not allowed.
    MimeNotAllowed,
    /// The type is unknown, where only some are allowed.
    MimeUnknown,
    /// The name holds characters that reorder or hide text.
    DeceptiveNameHidden,
    /// The name hides `.exe` before its last extension.
    DeceptiveNameExe,
    /// The name hides a blocked extension before its last one.
    DeceptiveNameBlocked,
    /// `{reason}`: another misleading name.
    DeceptiveName,
    /// `{detected}`, `{extension}`: the content is of a blocked type.
    ContentBlocked,
    /// `{detected}`, `{claimed}`: the content does not match the name or type.
    ContentMismatch,
    /// Omnichannel's error for a customer's message the channel cannot take (the start of
    /// the notice, [`crate::attachment::UNSUPPORTED_INBOUND_NOTICE`]).
    UnsupportedMessageType,
    /// `{kind}`: the customer sent something that is not a file.
    UnsupportedMessageKind,
    /// `{reason}`: the customer's file was refused by the policy.
    UnsupportedMessageRefused,
    /// The conversation is closed: nothing is sent.
    SendClosed,
    /// In the queue: accept before writing.
    SendInQueue,
    /// Waiting: reopen before writing.
    SendWaiting,
    /// Wrap-up: nothing more is sent.
    SendWrapUp,
    /// No session is active.
    SendNoSession,
    /// `{holder}`, `{agent}`: another agent holds the conversation.
    SendNotHolder,
    /// Another app holds the thread.
    SendThreadPaused,
    /// `{agent}` accepted.
    AgentAccepted,
    /// `{agent}` declined.
    AgentDeclined,
    /// `{agent}` picked.
    AgentPicked,
    /// `{agent}` ended the conversation (wrap-up).
    AgentEnded,
    /// `{agent}` closed the session (waiting).
    AgentClosedSession,
    /// `{agent}` closed the conversation.
    AgentClosedConversation,
    /// `{agent}` reopened the session.
    AgentReopened,
    /// `{agent}`: the offer timed out.
    OfferTimedOut,
    /// Closed after inactivity.
    ClosedInactive,
    /// The customer wrote again: back in the queue.
    BackInQueue,
    /// Another app took the thread: paused.
    ThreadTaken,
    /// `{kind}`: the Page sent something the channel cannot show.
    PageSentUnshowable,
    /// `{error}`: something the customer sent could not be recorded.
    NotRecorded,
    /// Not delivered: outside the 24-hour window.
    NotDeliveredOutsideWindow,
    /// Not delivered: the customer cannot receive messages.
    NotDeliveredRecipientUnavailable,
    /// `{code}`: not delivered, refused as invalid.
    NotDeliveredInvalid,
    /// Not delivered: the token is invalid or expired.
    NotDeliveredToken,
    /// `{code}`: not delivered, a permission is missing.
    NotDeliveredPermission,
    /// `{code}`: not delivered, refused.
    NotDeliveredRefused,
    /// Not delivered: closed before it could be sent.
    NotDeliveredClosed,
    /// `{reason}`: not delivered, for another reason.
    NotDelivered,
}

impl TextId {
    /// Every id, in the order [`Text::recognise`] tries them (the most specific first).
    pub const ALL: &'static [Self] = &[
        Self::AttachmentsOffInbound,
        Self::AttachmentsOffOutbound,
        Self::UnsupportedKind,
        Self::TooLarge,
        Self::ExtensionBlocked,
        Self::ExtensionNotAllowed,
        Self::NoExtensionNotAllowed,
        Self::MimeUnknown,
        Self::MimeNotAllowed,
        Self::DeceptiveNameHidden,
        Self::DeceptiveNameExe,
        Self::DeceptiveNameBlocked,
        Self::DeceptiveName,
        Self::ContentBlocked,
        Self::ContentMismatch,
        Self::UnsupportedMessageKind,
        Self::UnsupportedMessageRefused,
        Self::UnsupportedMessageType,
        Self::SendClosed,
        Self::SendInQueue,
        Self::SendWaiting,
        Self::SendWrapUp,
        Self::SendNoSession,
        Self::SendNotHolder,
        Self::SendThreadPaused,
        Self::AgentAccepted,
        Self::AgentDeclined,
        Self::AgentPicked,
        Self::AgentEnded,
        Self::AgentClosedSession,
        Self::AgentClosedConversation,
        Self::AgentReopened,
        Self::OfferTimedOut,
        Self::ClosedInactive,
        Self::BackInQueue,
        Self::ThreadTaken,
        Self::PageSentUnshowable,
        Self::NotRecorded,
        Self::NotDeliveredOutsideWindow,
        Self::NotDeliveredRecipientUnavailable,
        Self::NotDeliveredToken,
        Self::NotDeliveredClosed,
        Self::NotDeliveredInvalid,
        Self::NotDeliveredPermission,
        Self::NotDeliveredRefused,
        Self::NotDelivered,
    ];

    /// Its stable key (snake case), for hosts' translation files.
    pub fn key(self) -> &'static str {
        ENTRIES
            .iter()
            .find(|e| e.0 == self)
            .map_or("unknown", |e| e.1)
    }

    /// The id of a key ([`TextId::key`]).
    pub fn from_key(key: &str) -> Option<Self> {
        ENTRIES.iter().find(|e| e.1 == key).map(|e| e.0)
    }
}

/// Id, key, English, Spanish. English is what the crate writes (its `Display`s, its
/// notices): a test checks them against each other.
const ENTRIES: &[(TextId, &str, &str, &str)] = &[
    (
        TextId::AttachmentsOffInbound,
        "attachments_off_inbound",
        "File attachments from customers are turned off for this channel.",
        "Los archivos adjuntos de los clientes están desactivados en este canal.",
    ),
    (
        TextId::AttachmentsOffOutbound,
        "attachments_off_outbound",
        "Sending file attachments to customers is turned off for this channel.",
        "El envío de archivos adjuntos a los clientes está desactivado en este canal.",
    ),
    (
        TextId::UnsupportedKind,
        "unsupported_kind",
        "This kind of message ({kind}) is not supported as an attachment.",
        "Este tipo de mensaje ({kind}) no se admite como archivo adjunto.",
    ),
    (
        TextId::TooLarge,
        "too_large",
        "The file is {size}; the largest file allowed is {max}.",
        "El archivo ocupa {size}; el máximo permitido es {max}.",
    ),
    (
        TextId::ExtensionBlocked,
        "extension_blocked",
        "Files of type .{extension} are blocked.",
        "Los archivos de tipo .{extension} están bloqueados.",
    ),
    (
        TextId::ExtensionNotAllowed,
        "extension_not_allowed",
        "Files of type .{extension} can't be sent. Allowed types: {allowed}.",
        "No se pueden enviar archivos de tipo .{extension}. Tipos permitidos: {allowed}.",
    ),
    (
        TextId::NoExtensionNotAllowed,
        "no_extension_not_allowed",
        "Files without a type can't be sent. Allowed types: {allowed}.",
        "No se pueden enviar archivos sin tipo. Tipos permitidos: {allowed}.",
    ),
    (
        TextId::MimeNotAllowed,
        "mime_not_allowed",
        "Files of type {mime} are not allowed.",
        "No se permiten archivos de tipo {mime}.",
    ),
    (
        TextId::MimeUnknown,
        "mime_unknown",
        "The file's type is unknown, and only some types are allowed.",
        "El tipo del archivo es desconocido y solo se permiten algunos tipos.",
    ),
    (
        TextId::DeceptiveNameHidden,
        "deceptive_name_hidden",
        "The file name is misleading: it holds characters that reorder or hide text.",
        "El nombre del archivo es engañoso: contiene caracteres que reordenan u ocultan texto.",
    ),
    (
        TextId::DeceptiveNameExe,
        "deceptive_name_exe",
        "The file name is misleading: it hides an .exe extension before the last one.",
        "El nombre del archivo es engañoso: oculta una extensión .exe antes de la última.",
    ),
    (
        TextId::DeceptiveNameBlocked,
        "deceptive_name_blocked",
        "The file name is misleading: it hides a blocked extension before the last one.",
        "El nombre del archivo es engañoso: oculta una extensión bloqueada antes de la última.",
    ),
    (
        TextId::DeceptiveName,
        "deceptive_name",
        "The file name is misleading: {reason}.",
        "El nombre del archivo es engañoso: {reason}.",
    ),
    (
        TextId::ContentBlocked,
        "content_blocked",
        "The file's content is of a blocked type ({detected}, .{extension}), whatever its name says.",
        "El contenido del archivo es de un tipo bloqueado ({detected}, .{extension}), diga lo que diga su nombre.",
    ),
    (
        TextId::ContentMismatch,
        "content_mismatch",
        "The file's content ({detected}) does not match its name or type ({claimed}).",
        "El contenido del archivo ({detected}) no coincide con su nombre o tipo ({claimed}).",
    ),
    (
        TextId::UnsupportedMessageType,
        "unsupported_message_type",
        "Error: Customer sent an unsupported message type",
        "Error: el cliente envió un tipo de mensaje no admitido",
    ),
    (
        TextId::UnsupportedMessageKind,
        "unsupported_message_kind",
        "Error: Customer sent an unsupported message type ({kind}).",
        "Error: el cliente envió un tipo de mensaje no admitido ({kind}).",
    ),
    (
        TextId::UnsupportedMessageRefused,
        "unsupported_message_refused",
        "Error: Customer sent an unsupported message type. {reason}",
        "Error: el cliente envió un tipo de mensaje no admitido. {reason}",
    ),
    (
        TextId::SendClosed,
        "send_closed",
        "the conversation is closed: the customer's next message starts a new one",
        "la conversación está cerrada: el próximo mensaje del cliente inicia una nueva",
    ),
    (
        TextId::SendInQueue,
        "send_in_queue",
        "the conversation is in the queue: accept it before writing",
        "la conversación está en la cola: acéptela antes de escribir",
    ),
    (
        TextId::SendWaiting,
        "send_waiting",
        "the session is closed: reopen it before writing",
        "la sesión está cerrada: vuelva a abrirla antes de escribir",
    ),
    (
        TextId::SendWrapUp,
        "send_wrap_up",
        "the conversation has ended and is in wrap-up: nothing more is sent",
        "la conversación ha finalizado y está en cierre: no se envía nada más",
    ),
    (
        TextId::SendNoSession,
        "send_no_session",
        "no session is active in this conversation",
        "no hay ninguna sesión activa en esta conversación",
    ),
    (
        TextId::SendNotHolder,
        "send_not_holder",
        "agent {holder} holds this conversation, not {agent}",
        "el agente {holder} tiene esta conversación, no {agent}",
    ),
    (
        TextId::SendThreadPaused,
        "send_thread_paused",
        "another app holds the Messenger thread; sending is paused until it is passed back",
        "otra aplicación tiene el hilo de Messenger; el envío está en pausa hasta que lo devuelva",
    ),
    (
        TextId::AgentAccepted,
        "agent_accepted",
        "{agent} accepted the conversation",
        "{agent} aceptó la conversación",
    ),
    (
        TextId::AgentDeclined,
        "agent_declined",
        "{agent} declined the conversation",
        "{agent} rechazó la conversación",
    ),
    (
        TextId::AgentPicked,
        "agent_picked",
        "{agent} picked the conversation",
        "{agent} tomó la conversación",
    ),
    (
        TextId::AgentEnded,
        "agent_ended",
        "{agent} ended the conversation",
        "{agent} finalizó la conversación",
    ),
    (
        TextId::AgentClosedSession,
        "agent_closed_session",
        "{agent} closed the session; the conversation is waiting",
        "{agent} cerró la sesión; la conversación está en espera",
    ),
    (
        TextId::AgentClosedConversation,
        "agent_closed_conversation",
        "{agent} closed the conversation",
        "{agent} cerró la conversación",
    ),
    (
        TextId::AgentReopened,
        "agent_reopened",
        "{agent} reopened the session",
        "{agent} volvió a abrir la sesión",
    ),
    (
        TextId::OfferTimedOut,
        "offer_timed_out",
        "the offer to {agent} timed out",
        "la oferta a {agent} caducó",
    ),
    (
        TextId::ClosedInactive,
        "closed_inactive",
        "closed after inactivity",
        "cerrada por inactividad",
    ),
    (
        TextId::BackInQueue,
        "back_in_queue",
        "the customer wrote again; the conversation is back in the queue",
        "el cliente volvió a escribir; la conversación vuelve a estar en la cola",
    ),
    (
        TextId::ThreadTaken,
        "thread_taken",
        "another app or the Page inbox took the thread; sending is paused",
        "otra aplicación o la bandeja de entrada de la página tomó el hilo; el envío está en pausa",
    ),
    (
        TextId::PageSentUnshowable,
        "page_sent_unshowable",
        "The Page sent a message this channel cannot show ({kind}).",
        "La página envió un mensaje que este canal no puede mostrar ({kind}).",
    ),
    (
        TextId::NotRecorded,
        "not_recorded",
        "Something the customer sent could not be recorded ({error}); it is kept for the administrator.",
        "No se pudo registrar algo que envió el cliente ({error}); se guarda para el administrador.",
    ),
    (
        TextId::NotDeliveredOutsideWindow,
        "not_delivered_outside_window",
        "Not delivered: the customer's last message is more than 24 hours old. Use a message tag or wait for the customer.",
        "No entregado: el último mensaje del cliente tiene más de 24 horas. Use una etiqueta de mensaje o espere al cliente.",
    ),
    (
        TextId::NotDeliveredRecipientUnavailable,
        "not_delivered_recipient_unavailable",
        "Not delivered: the customer cannot receive messages from this page right now (they may have blocked it, or their account is unavailable).",
        "No entregado: el cliente no puede recibir mensajes de esta página ahora (puede haberla bloqueado o su cuenta no está disponible).",
    ),
    (
        TextId::NotDeliveredInvalid,
        "not_delivered_invalid",
        "Not delivered: Messenger refused the message as invalid{code}.",
        "No entregado: Messenger rechazó el mensaje por no ser válido{code}.",
    ),
    (
        TextId::NotDeliveredToken,
        "not_delivered_token",
        "Not delivered: the page's access token is invalid or expired; an administrator must renew it.",
        "No entregado: el token de acceso de la página no es válido o ha caducado; un administrador debe renovarlo.",
    ),
    (
        TextId::NotDeliveredPermission,
        "not_delivered_permission",
        "Not delivered: this page may not send this message to this customer (a permission is missing, or the page is restricted){code}.",
        "No entregado: esta página no puede enviar este mensaje a este cliente (falta un permiso o la página está restringida){code}.",
    ),
    (
        TextId::NotDeliveredRefused,
        "not_delivered_refused",
        "Not delivered: Messenger refused the message{code}.",
        "No entregado: Messenger rechazó el mensaje{code}.",
    ),
    (
        TextId::NotDeliveredClosed,
        "not_delivered_closed",
        "Not delivered: the conversation was closed before the message could be sent.",
        "No entregado: la conversación se cerró antes de poder enviar el mensaje.",
    ),
    (
        TextId::NotDelivered,
        "not_delivered",
        "Not delivered: {reason}.",
        "No entregado: {reason}.",
    ),
];

/// One sentence with its facts: a [`TextId`] and the values of its placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    id: TextId,
    args: Vec<(Cow<'static, str>, String)>,
}

impl Text {
    /// The sentence `id` with no facts yet.
    pub fn new(id: TextId) -> Self {
        Self {
            id,
            args: Vec::new(),
        }
    }

    /// Adds the value of the placeholder `{name}`.
    #[must_use]
    pub fn arg(mut self, name: impl Into<Cow<'static, str>>, value: impl Into<String>) -> Self {
        self.args.push((name.into(), value.into()));
        self
    }

    /// Which sentence.
    pub fn id(&self) -> TextId {
        self.id
    }

    /// The value of `{name}`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// In English, as the crate writes it.
    pub fn english(&self) -> String {
        Catalogue::builtin().render(self, &Language::ENGLISH)
    }

    /// The crate's sentence that `english` is (as the crate wrote it, in a transcript or an
    /// error), with its facts; `None` for any other text. Lets a host show, in another
    /// language, what was stored in English.
    pub fn recognise(english: &str) -> Option<Self> {
        TextId::ALL.iter().find_map(|&id| {
            let template = english_template(id);
            let mut args = Vec::new();
            matches(template, english, &mut args).then(|| Self {
                id,
                args: args
                    .into_iter()
                    .map(|(n, v)| (Cow::Owned(n.to_owned()), v.to_owned()))
                    .collect(),
            })
        })
    }
}

fn english_template(id: TextId) -> &'static str {
    ENTRIES.iter().find(|e| e.0 == id).map_or("", |e| e.2)
}

/// Whether `text` is `template` with its placeholders filled; fills `args` (the first
/// placeholder takes the shortest value that lets the rest match).
fn matches<'t, 's>(template: &'t str, text: &'s str, args: &mut Vec<(&'t str, &'s str)>) -> bool {
    let Some((literal, after)) = template.split_once('{') else {
        return template == text;
    };
    let Some((name, rest)) = after.split_once('}') else {
        return template == text;
    };
    let Some(text) = text.strip_prefix(literal) else {
        return false;
    };
    for (end, _) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        args.push((name, &text[..end]));
        if matches(rest, &text[end..], args) {
            return true;
        }
        args.pop();
    }
    false
}

/// Templates by language and sentence: English and Spanish built in, more added by the host.
/// A sentence missing in a language is rendered in English.
#[derive(Debug, Clone)]
pub struct Catalogue {
    languages: BTreeMap<Language, HashMap<TextId, Cow<'static, str>>>,
}

impl Default for Catalogue {
    fn default() -> Self {
        Self::new()
    }
}

impl Catalogue {
    /// English and Spanish.
    pub fn new() -> Self {
        let mut languages = BTreeMap::new();
        languages.insert(
            Language::ENGLISH,
            ENTRIES
                .iter()
                .map(|e| (e.0, Cow::Borrowed(e.2)))
                .collect::<HashMap<_, _>>(),
        );
        languages.insert(
            Language::SPANISH,
            ENTRIES
                .iter()
                .map(|e| (e.0, Cow::Borrowed(e.3)))
                .collect::<HashMap<_, _>>(),
        );
        Self { languages }
    }

    /// The built-in catalogue (English and Spanish), shared.
    pub fn builtin() -> &'static Self {
        static BUILTIN: OnceLock<Catalogue> = OnceLock::new();
        BUILTIN.get_or_init(Self::new)
    }

    /// Sets the template of `id` in `language` (adding the language if new). Placeholders
    /// are the English template's (`{extension}`); one not given is left as written.
    pub fn set(
        &mut self,
        language: &Language,
        id: TextId,
        template: impl Into<Cow<'static, str>>,
    ) -> &mut Self {
        self.languages
            .entry(language.clone())
            .or_default()
            .insert(id, template.into());
        self
    }

    /// The languages it has templates in.
    pub fn languages(&self) -> impl Iterator<Item = &Language> {
        self.languages.keys()
    }

    /// The template of `id` in `language`, or in English.
    pub fn template(&self, id: TextId, language: &Language) -> &str {
        self.languages
            .get(language)
            .and_then(|t| t.get(&id))
            .or_else(|| {
                self.languages
                    .get(&Language::ENGLISH)
                    .and_then(|t| t.get(&id))
            })
            .map_or_else(|| english_template(id), |t| t.as_ref())
    }

    /// `text` in `language`.
    pub fn render(&self, text: &Text, language: &Language) -> String {
        let template = self.template(text.id, language);
        let mut out = String::with_capacity(template.len() + 16);
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}').map(|c| open + c) else {
                break;
            };
            out.push_str(&rest[..open]);
            let name = &rest[open + 1..close];
            match text.get(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(&rest[open..=close]),
            }
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        out
    }

    /// A sentence the crate stored in English, in `language`; the sentence itself when it is
    /// not one of the crate's ([`Text::recognise`]).
    pub fn translate(&self, english: &str, language: &Language) -> String {
        if *language == Language::ENGLISH {
            return english.to_owned();
        }
        match Text::recognise(english) {
            // Its facts may be the crate's sentences too (a refusal's reason in a notice).
            Some(mut text) => {
                for (_, value) in &mut text.args {
                    if Text::recognise(value).is_some() {
                        *value = self.translate(value, language);
                    }
                }
                self.render(&text, language)
            }
            None => english.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_has_one_entry_and_a_unique_key() {
        for id in TextId::ALL {
            assert_eq!(ENTRIES.iter().filter(|e| e.0 == *id).count(), 1, "{id:?}");
            assert_eq!(TextId::from_key(id.key()), Some(*id));
        }
        assert_eq!(ENTRIES.len(), TextId::ALL.len());
    }

    #[test]
    fn spanish_has_the_placeholders_of_english() {
        let names = |t: &str| {
            let mut v: Vec<String> = t
                .split('{')
                .skip(1)
                .filter_map(|p| p.split_once('}').map(|(n, _)| n.to_owned()))
                .collect();
            v.sort();
            v
        };
        for e in ENTRIES {
            assert_eq!(names(e.2), names(e.3), "{:?}", e.0);
        }
    }

    #[test]
    fn sentences_are_recognised_with_their_facts() {
        let t = Text::recognise("alice closed the session; the conversation is waiting").unwrap();
        assert_eq!(t.id(), TextId::AgentClosedSession);
        assert_eq!(t.get("agent"), Some("alice"));
        let t = Text::recognise("Files of type .exe can't be sent. Allowed types: .pdf, .png.")
            .unwrap();
        assert_eq!(t.id(), TextId::ExtensionNotAllowed);
        assert_eq!(t.get("allowed"), Some(".pdf, .png"));
        let t =
            Text::recognise("Not delivered: Messenger refused the message (error 100/2018001).")
                .unwrap();
        assert_eq!(t.id(), TextId::NotDeliveredRefused);
        assert_eq!(t.get("code"), Some(" (error 100/2018001)"));
        let t = Text::recognise("Not delivered: Messenger refused the message.").unwrap();
        assert_eq!(
            (t.id(), t.get("code")),
            (TextId::NotDeliveredRefused, Some(""))
        );
        assert_eq!(Text::recognise("Hello there"), None);
        for e in ENTRIES.iter().filter(|e| !e.2.contains('{')) {
            assert_eq!(Text::recognise(e.2).map(|t| t.id()), Some(e.0), "{:?}", e.0);
        }
    }

    #[test]
    fn translating_and_rendering_round_trip() {
        let c = Catalogue::builtin();
        let english = "bob ended the conversation";
        assert_eq!(c.translate(english, &Language::ENGLISH), english);
        assert_eq!(
            c.translate(english, &Language::SPANISH),
            "bob finalizó la conversación"
        );
        assert_eq!(c.translate("free text", &Language::SPANISH), "free text");
        assert_eq!(
            c.translate(
                "Error: Customer sent an unsupported message type. Files of type .exe are blocked.",
                &Language::SPANISH
            ),
            "Error: el cliente envió un tipo de mensaje no admitido. Los archivos de tipo .exe están bloqueados."
        );
        let t = Text::recognise(english).unwrap();
        assert_eq!(t.english(), english);
    }

    #[test]
    fn send_refusals_in_english_are_their_display() {
        use crate::conversation::{SendRefusal, StateKind};
        use crate::ids::AgentId;
        let all = [
            SendRefusal::Closed,
            SendRefusal::NoSession {
                state: StateKind::Open,
            },
            SendRefusal::NoSession {
                state: StateKind::Waiting,
            },
            SendRefusal::NoSession {
                state: StateKind::WrapUp,
            },
            SendRefusal::NoSession {
                state: StateKind::Active,
            },
            SendRefusal::NotHolder {
                agent: AgentId::from("bob"),
                holder: AgentId::from("alice"),
            },
            SendRefusal::ThreadPaused,
        ];
        for r in &all {
            assert_eq!(r.text(&Language::ENGLISH), r.to_string(), "{r:?}");
            assert_ne!(r.text(&Language::SPANISH), r.to_string(), "{r:?}");
        }
    }

    #[test]
    fn languages_are_primary_subtags() {
        assert_eq!(Language::new("es-MX"), Language::SPANISH);
        assert_eq!(Language::new(" EN_gb "), Language::ENGLISH);
        assert_eq!(Language::new("fr").as_str(), "fr");
        let both = [Language::ENGLISH, Language::SPANISH];
        assert_eq!(
            Language::negotiate("es-ES,es;q=0.9,en;q=0.8", &both),
            Some(Language::SPANISH)
        );
        assert_eq!(
            Language::negotiate("es;q=0, en", &both),
            Some(Language::ENGLISH)
        );
        assert_eq!(Language::negotiate("", &both), None);
    }
}
