//! Outgoing messages, built and checked against the platform's limits before any network call.
//!
//! Every constructor that takes text or a list checks it and returns a [`BuildError`] stating
//! the limit, so a message that Meta would refuse (or silently truncate) never leaves.
//!
//! ```
//! use messenger_channel::send::{Button, Message, QuickReply, SendRequest};
//!
//! let message = Message::text("Which size?")?
//!     .with_quick_replies(vec![QuickReply::text("Small", "SIZE_S")?, QuickReply::text("Large", "SIZE_L")?])?;
//! let request = SendRequest::new("24012345678901234", message);
//! let body = request.to_json();
//! assert_eq!(body["messaging_type"], "RESPONSE");
//! assert_eq!(body["message"]["quick_replies"][1]["payload"], "SIZE_L");
//!
//! let too_many = vec![Button::postback("a", "A")?; 4];
//! assert!(Message::buttons("Pick one", too_many).is_err());
//! # Ok::<(), messenger_channel::send::BuildError>(())
//! ```

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::ids::UserId;
use crate::window::{MessageTag, MessagingType, SendMarking};

/// Longest text message, in characters.
pub const TEXT_MAX_CHARS: usize = 2000;
/// Most quick replies on one message.
pub const QUICK_REPLIES_MAX: usize = 13;
/// Longest quick-reply title, in characters (Meta truncates longer ones; this crate refuses them).
pub const QUICK_REPLY_TITLE_MAX_CHARS: usize = 20;
/// Longest postback or quick-reply payload, in characters.
pub const PAYLOAD_MAX_CHARS: usize = 1000;
/// Most buttons on a button template or a generic-template element.
pub const BUTTONS_MAX: usize = 3;
/// Longest button title, in characters.
pub const BUTTON_TITLE_MAX_CHARS: usize = 20;
/// Longest text of a button template, in characters.
pub const BUTTON_TEMPLATE_TEXT_MAX_CHARS: usize = 640;
/// Most elements of a generic template (carousel).
pub const GENERIC_ELEMENTS_MAX: usize = 10;
/// Longest title or subtitle of a generic-template element, in characters.
pub const ELEMENT_TEXT_MAX_CHARS: usize = 80;
/// Longest `metadata`, in characters.
pub const METADATA_MAX_CHARS: usize = 1000;
/// Largest file Messenger carries (25 MB).
pub const ATTACHMENT_MAX_BYTES: usize = 25 * 1024 * 1024;
/// The longest reaction this crate sends, in characters: one emoji, with its modifiers and
/// joiners (a family or a flag with skin tones runs to about ten).
pub const REACTION_MAX_CHARS: usize = 16;

/// A message that cannot be sent as built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A text is empty where text is required.
    #[error("{field} is empty")]
    Empty {
        /// Which text.
        field: &'static str,
    },
    /// A text is longer than the platform allows.
    #[error("{field} has {chars} characters; at most {max} are allowed")]
    TooLong {
        /// Which text.
        field: &'static str,
        /// Its length in characters.
        chars: usize,
        /// The limit.
        max: usize,
    },
    /// A list has more items than the platform allows.
    #[error("{field} has {count} items; at most {max} are allowed")]
    TooMany {
        /// Which list.
        field: &'static str,
        /// Its length.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A list that needs at least one item has none.
    #[error("{field} needs at least one item")]
    NoItems {
        /// Which list.
        field: &'static str,
    },
    /// A URL that is not `http(s)://`.
    #[error("{field} is not an http(s) URL")]
    NotAUrl {
        /// Which field.
        field: &'static str,
    },
    /// A file larger than Messenger carries.
    #[error("the file has {size} bytes; Messenger carries at most {max}")]
    FileTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A MIME type that does not parse.
    #[error("the upload's MIME type is not of the form type/subtype")]
    BadMimeType,
    /// An id with characters an id cannot hold.
    #[error("{field} must be letters, digits and _ only")]
    BadId {
        /// Which id.
        field: &'static str,
    },
    /// A call button's number is not `+` followed by digits.
    #[error("a call button needs a number written as + and digits")]
    BadPhoneNumber,
}

fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), BuildError> {
    if text.trim().is_empty() {
        return Err(BuildError::Empty { field });
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(BuildError::TooLong { field, chars, max });
    }
    Ok(())
}

fn check_count(field: &'static str, count: usize, max: usize) -> Result<(), BuildError> {
    if count == 0 {
        return Err(BuildError::NoItems { field });
    }
    if count > max {
        return Err(BuildError::TooMany { field, count, max });
    }
    Ok(())
}

fn check_url(field: &'static str, url: &str) -> Result<(), BuildError> {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        Ok(())
    } else {
        Err(BuildError::NotAUrl { field })
    }
}

/// The kind of a media attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `image`.
    Image,
    /// `video`.
    Video,
    /// `audio`.
    Audio,
    /// `file`.
    File,
}

impl MediaKind {
    /// The kind for a MIME type, by its top-level type: `image/*`, `video/*` and `audio/*`
    /// are themselves, anything else is a [`MediaKind::File`].
    ///
    /// ```
    /// use messenger_channel::send::MediaKind;
    ///
    /// assert_eq!(MediaKind::from_mime("image/png"), MediaKind::Image);
    /// assert_eq!(MediaKind::from_mime("application/pdf"), MediaKind::File);
    /// ```
    pub fn from_mime(mime: &str) -> Self {
        match mime.split('/').next() {
            Some("image") => Self::Image,
            Some("video") => Self::Video,
            Some("audio") => Self::Audio,
            _ => Self::File,
        }
    }

    /// The `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::File => "file",
        }
    }
}

/// Bytes to upload, with the name and type the customer will see.
#[derive(Clone, PartialEq, Eq)]
pub struct Upload {
    pub(crate) bytes: Bytes,
    pub(crate) file_name: String,
    pub(crate) mime: String,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("bytes", &self.bytes.len())
            .field("file_name", &self.file_name)
            .field("mime", &self.mime)
            .finish()
    }
}

impl Upload {
    /// A file to upload. The name is sanitised (see [`crate::attachment::sanitize_file_name`]).
    ///
    /// # Errors
    /// [`BuildError::FileTooLarge`] above [`ATTACHMENT_MAX_BYTES`].
    pub fn new(bytes: impl Into<Bytes>, file_name: &str, mime: &str) -> Result<Self, BuildError> {
        let bytes = bytes.into();
        if bytes.len() > ATTACHMENT_MAX_BYTES {
            return Err(BuildError::FileTooLarge {
                size: bytes.len(),
                max: ATTACHMENT_MAX_BYTES,
            });
        }
        Ok(Self {
            bytes,
            file_name: crate::attachment::sanitize_file_name(file_name),
            mime: mime.to_owned(),
        })
    }

    /// The bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The (sanitised) file name.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The MIME type.
    pub fn mime(&self) -> &str {
        &self.mime
    }
}

/// Where an attachment's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentSource {
    /// Fetched by Meta from a URL; `reusable` asks for an `attachment_id` in the response.
    Url {
        /// The URL.
        url: String,
        /// Whether to keep it for reuse (90 days).
        reusable: bool,
    },
    /// An id from an earlier upload.
    AttachmentId(String),
    /// Uploaded with the request (multipart).
    Upload(Upload),
}

/// A button of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Button {
    /// Sends a postback with `payload` when pressed.
    Postback {
        /// The label.
        title: String,
        /// The postback payload.
        payload: String,
    },
    /// Opens `url`.
    WebUrl {
        /// The label.
        title: String,
        /// The URL.
        url: String,
    },
    /// Calls `phone_number` (`+` and digits).
    Call {
        /// The label.
        title: String,
        /// The number.
        phone_number: String,
    },
}

impl Button {
    /// A postback button.
    ///
    /// # Errors
    /// [`BuildError`] when the title or payload is empty or too long.
    pub fn postback(title: &str, payload: &str) -> Result<Self, BuildError> {
        check_text("button title", title, BUTTON_TITLE_MAX_CHARS)?;
        check_text("button payload", payload, PAYLOAD_MAX_CHARS)?;
        Ok(Self::Postback {
            title: title.to_owned(),
            payload: payload.to_owned(),
        })
    }

    /// A link button.
    ///
    /// # Errors
    /// [`BuildError`] when the title is empty or too long, or the URL is not http(s).
    pub fn web_url(title: &str, url: &str) -> Result<Self, BuildError> {
        check_text("button title", title, BUTTON_TITLE_MAX_CHARS)?;
        check_url("button url", url)?;
        Ok(Self::WebUrl {
            title: title.to_owned(),
            url: url.to_owned(),
        })
    }

    /// A call button.
    ///
    /// # Errors
    /// [`BuildError`] when the title is empty or too long, or the number is not `+` and digits.
    pub fn call(title: &str, phone_number: &str) -> Result<Self, BuildError> {
        check_text("button title", title, BUTTON_TITLE_MAX_CHARS)?;
        let digits = phone_number.strip_prefix('+').unwrap_or("");
        if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BuildError::BadPhoneNumber);
        }
        Ok(Self::Call {
            title: title.to_owned(),
            phone_number: phone_number.to_owned(),
        })
    }

    fn to_json(&self) -> Value {
        match self {
            Self::Postback { title, payload } => {
                json!({"type": "postback", "title": title, "payload": payload})
            }
            Self::WebUrl { title, url } => json!({"type": "web_url", "title": title, "url": url}),
            Self::Call {
                title,
                phone_number,
            } => {
                json!({"type": "phone_number", "title": title, "payload": phone_number})
            }
        }
    }
}

/// A quick reply offered under a message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuickReply {
    /// A text chip that sends `payload` back.
    Text {
        /// The chip's label.
        title: String,
        /// Sent back in the webhook's `quick_reply.payload`.
        payload: String,
        /// An optional icon.
        image_url: Option<String>,
    },
    /// Offers the customer's phone number.
    UserPhoneNumber,
    /// Offers the customer's e-mail address.
    UserEmail,
}

impl QuickReply {
    /// A text quick reply.
    ///
    /// # Errors
    /// [`BuildError`] when the title or payload is empty or too long.
    pub fn text(title: &str, payload: &str) -> Result<Self, BuildError> {
        check_text("quick reply title", title, QUICK_REPLY_TITLE_MAX_CHARS)?;
        check_text("quick reply payload", payload, PAYLOAD_MAX_CHARS)?;
        Ok(Self::Text {
            title: title.to_owned(),
            payload: payload.to_owned(),
            image_url: None,
        })
    }

    /// Adds an icon to a text quick reply.
    ///
    /// # Errors
    /// [`BuildError::NotAUrl`] for a URL that is not http(s).
    pub fn with_image(self, url: &str) -> Result<Self, BuildError> {
        check_url("quick reply image_url", url)?;
        Ok(match self {
            Self::Text { title, payload, .. } => Self::Text {
                title,
                payload,
                image_url: Some(url.to_owned()),
            },
            other => other,
        })
    }

    fn to_json(&self) -> Value {
        match self {
            Self::Text {
                title,
                payload,
                image_url,
            } => {
                let mut v = json!({"content_type": "text", "title": title, "payload": payload});
                if let Some(url) = image_url {
                    v["image_url"] = json!(url);
                }
                v
            }
            Self::UserPhoneNumber => json!({"content_type": "user_phone_number"}),
            Self::UserEmail => json!({"content_type": "user_email"}),
        }
    }
}

/// One card of a generic template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    title: String,
    subtitle: Option<String>,
    image_url: Option<String>,
    buttons: Vec<Button>,
}

impl Element {
    /// A card with a title.
    ///
    /// # Errors
    /// [`BuildError`] when the title is empty or longer than [`ELEMENT_TEXT_MAX_CHARS`].
    pub fn new(title: &str) -> Result<Self, BuildError> {
        check_text("element title", title, ELEMENT_TEXT_MAX_CHARS)?;
        Ok(Self {
            title: title.to_owned(),
            subtitle: None,
            image_url: None,
            buttons: Vec::new(),
        })
    }

    /// Adds a subtitle.
    ///
    /// # Errors
    /// [`BuildError`] when it is empty or too long.
    pub fn subtitle(mut self, subtitle: &str) -> Result<Self, BuildError> {
        check_text("element subtitle", subtitle, ELEMENT_TEXT_MAX_CHARS)?;
        self.subtitle = Some(subtitle.to_owned());
        Ok(self)
    }

    /// Adds an image.
    ///
    /// # Errors
    /// [`BuildError::NotAUrl`].
    pub fn image_url(mut self, url: &str) -> Result<Self, BuildError> {
        check_url("element image_url", url)?;
        self.image_url = Some(url.to_owned());
        Ok(self)
    }

    /// Sets the buttons (1 to 3).
    ///
    /// # Errors
    /// [`BuildError`] for none or more than [`BUTTONS_MAX`].
    pub fn buttons(mut self, buttons: Vec<Button>) -> Result<Self, BuildError> {
        check_count("element buttons", buttons.len(), BUTTONS_MAX)?;
        self.buttons = buttons;
        Ok(self)
    }

    fn to_json(&self) -> Value {
        let mut v = json!({"title": self.title});
        if let Some(s) = &self.subtitle {
            v["subtitle"] = json!(s);
        }
        if let Some(u) = &self.image_url {
            v["image_url"] = json!(u);
        }
        if !self.buttons.is_empty() {
            v["buttons"] = Value::Array(self.buttons.iter().map(Button::to_json).collect());
        }
        v
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    Text(String),
    Attachment {
        kind: MediaKind,
        source: AttachmentSource,
    },
    ButtonTemplate {
        text: String,
        buttons: Vec<Button>,
    },
    GenericTemplate {
        elements: Vec<Element>,
    },
}

/// The content of a message: text, an attachment or a template, with optional quick replies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    body: Body,
    quick_replies: Vec<QuickReply>,
    metadata: Option<String>,
}

impl Message {
    fn new(body: Body) -> Self {
        Self {
            body,
            quick_replies: Vec::new(),
            metadata: None,
        }
    }

    /// A text message (1 to [`TEXT_MAX_CHARS`] characters).
    ///
    /// # Errors
    /// [`BuildError`] when the text is empty or too long.
    pub fn text(text: &str) -> Result<Self, BuildError> {
        check_text("text", text, TEXT_MAX_CHARS)?;
        Ok(Self::new(Body::Text(text.to_owned())))
    }

    /// An attachment.
    ///
    /// # Errors
    /// [`BuildError::NotAUrl`] for a URL source that is not http(s).
    pub fn attachment(kind: MediaKind, source: AttachmentSource) -> Result<Self, BuildError> {
        if let AttachmentSource::Url { url, .. } = &source {
            check_url("attachment url", url)?;
        }
        if let AttachmentSource::AttachmentId(id) = &source {
            check_text("attachment_id", id, 64)?;
        }
        Ok(Self::new(Body::Attachment { kind, source }))
    }

    /// A button template: text with 1 to 3 buttons.
    ///
    /// # Errors
    /// [`BuildError`] when the text is empty or longer than 640 characters, or the buttons
    /// number 0 or more than 3.
    pub fn buttons(text: &str, buttons: Vec<Button>) -> Result<Self, BuildError> {
        check_text("button template text", text, BUTTON_TEMPLATE_TEXT_MAX_CHARS)?;
        check_count("buttons", buttons.len(), BUTTONS_MAX)?;
        Ok(Self::new(Body::ButtonTemplate {
            text: text.to_owned(),
            buttons,
        }))
    }

    /// A generic template (carousel) of 1 to 10 elements.
    ///
    /// # Errors
    /// [`BuildError`] for none or more than [`GENERIC_ELEMENTS_MAX`] elements.
    pub fn generic(elements: Vec<Element>) -> Result<Self, BuildError> {
        check_count(
            "generic template elements",
            elements.len(),
            GENERIC_ELEMENTS_MAX,
        )?;
        Ok(Self::new(Body::GenericTemplate { elements }))
    }

    /// Adds quick replies (1 to 13).
    ///
    /// # Errors
    /// [`BuildError`] for none or more than [`QUICK_REPLIES_MAX`].
    pub fn with_quick_replies(
        mut self,
        quick_replies: Vec<QuickReply>,
    ) -> Result<Self, BuildError> {
        check_count("quick_replies", quick_replies.len(), QUICK_REPLIES_MAX)?;
        self.quick_replies = quick_replies;
        Ok(self)
    }

    /// Adds `metadata`, returned as it is in the echo of this message.
    ///
    /// # Errors
    /// [`BuildError`] when it is empty or longer than [`METADATA_MAX_CHARS`].
    pub fn with_metadata(mut self, metadata: &str) -> Result<Self, BuildError> {
        check_text("metadata", metadata, METADATA_MAX_CHARS)?;
        self.metadata = Some(metadata.to_owned());
        Ok(self)
    }

    /// The media kind, for an attachment message.
    pub fn media_kind(&self) -> Option<MediaKind> {
        match &self.body {
            Body::Attachment { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The file to upload with the message, if it carries one.
    pub fn upload(&self) -> Option<&Upload> {
        match &self.body {
            Body::Attachment {
                source: AttachmentSource::Upload(u),
                ..
            } => Some(u),
            _ => None,
        }
    }

    /// The `message` object of the Send API body.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        match &self.body {
            Body::Text(text) => {
                m.insert("text".into(), json!(text));
            }
            Body::Attachment { kind, source } => {
                let payload = match source {
                    AttachmentSource::Url { url, reusable } => {
                        let mut p = json!({"url": url});
                        if *reusable {
                            p["is_reusable"] = json!(true);
                        }
                        p
                    }
                    AttachmentSource::AttachmentId(id) => json!({"attachment_id": id}),
                    AttachmentSource::Upload(_) => json!({"is_reusable": true}),
                };
                m.insert(
                    "attachment".into(),
                    json!({"type": kind.as_str(), "payload": payload}),
                );
            }
            Body::ButtonTemplate { text, buttons } => {
                m.insert(
                    "attachment".into(),
                    json!({"type": "template", "payload": {
                        "template_type": "button",
                        "text": text,
                        "buttons": buttons.iter().map(Button::to_json).collect::<Vec<_>>(),
                    }}),
                );
            }
            Body::GenericTemplate { elements } => {
                m.insert(
                    "attachment".into(),
                    json!({"type": "template", "payload": {
                        "template_type": "generic",
                        "elements": elements.iter().map(Element::to_json).collect::<Vec<_>>(),
                    }}),
                );
            }
        }
        if !self.quick_replies.is_empty() {
            m.insert(
                "quick_replies".into(),
                Value::Array(self.quick_replies.iter().map(QuickReply::to_json).collect()),
            );
        }
        if let Some(meta) = &self.metadata {
            m.insert("metadata".into(), json!(meta));
        }
        Value::Object(m)
    }
}

/// How the customer's phone announces the message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum NotificationType {
    /// Sound and vibration (the platform's default).
    #[default]
    Regular,
    /// A notification without sound.
    SilentPush,
    /// No notification.
    NoPush,
}

impl NotificationType {
    /// `REGULAR`, `SILENT_PUSH` or `NO_PUSH`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Regular => "REGULAR",
            Self::SilentPush => "SILENT_PUSH",
            Self::NoPush => "NO_PUSH",
        }
    }
}

/// The Send API body of a reaction to a message (`sender_action` `react`, with
/// `payload.message_id` and `payload.reaction`), or of its removal (`unreact`, with the
/// message id only), as Meta's "React or unreact to a message" reference shows it.
///
/// ```
/// use messenger_channel::ids::{MessageId, UserId};
/// use messenger_channel::send::reaction_body;
///
/// let body = reaction_body(&UserId::from("psid"), &MessageId::from("m_1"), Some("👍")).unwrap();
/// assert_eq!(body["sender_action"], "react");
/// assert_eq!(body["payload"]["message_id"], "m_1");
/// assert_eq!(body["payload"]["reaction"], "👍");
/// let body = reaction_body(&UserId::from("psid"), &MessageId::from("m_1"), None).unwrap();
/// assert_eq!(body["sender_action"], "unreact");
/// assert!(body["payload"].get("reaction").is_none());
/// ```
///
/// # Errors
/// [`BuildError::Empty`] for an empty message id or reaction; [`BuildError::TooLong`] for a
/// reaction over [`REACTION_MAX_CHARS`].
pub fn reaction_body(
    recipient: &UserId<'_>,
    message_id: &crate::ids::MessageId<'_>,
    reaction: Option<&str>,
) -> Result<Value, BuildError> {
    if message_id.as_str().is_empty() {
        return Err(BuildError::Empty {
            field: "payload.message_id",
        });
    }
    let mut payload = json!({ "message_id": message_id.as_str() });
    if let Some(reaction) = reaction {
        check_reaction(reaction)?;
        payload["reaction"] = json!(reaction);
    }
    Ok(json!({
        "recipient": { "id": recipient.as_str() },
        "sender_action": if reaction.is_some() { "react" } else { "unreact" },
        "payload": payload,
    }))
}

/// Checks a reaction: not empty, at most [`REACTION_MAX_CHARS`].
///
/// # Errors
/// As [`reaction_body`].
pub fn check_reaction(reaction: &str) -> Result<(), BuildError> {
    let chars = reaction.chars().count();
    if reaction.trim().is_empty() {
        return Err(BuildError::Empty {
            field: "payload.reaction",
        });
    }
    if chars > REACTION_MAX_CHARS {
        return Err(BuildError::TooLong {
            field: "payload.reaction",
            chars,
            max: REACTION_MAX_CHARS,
        });
    }
    Ok(())
}

/// A typing indicator or read mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SenderAction {
    /// Shows the typing bubble.
    TypingOn,
    /// Hides it.
    TypingOff,
    /// Marks the customer's messages as seen.
    MarkSeen,
}

impl SenderAction {
    /// `typing_on`, `typing_off` or `mark_seen`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TypingOn => "typing_on",
            Self::TypingOff => "typing_off",
            Self::MarkSeen => "mark_seen",
        }
    }
}

/// A message to one customer, with how it is marked (`messaging_type`, tag).
///
/// The marking is a [`SendMarking`], so `MESSAGE_TAG` without a tag, or a tag on a `RESPONSE`,
/// cannot be built. Take it from [`crate::window::check_window`] to stay inside the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequest {
    recipient: UserId<'static>,
    message: Message,
    marking: SendMarking,
    persona_id: Option<String>,
    notification: Option<NotificationType>,
}

impl SendRequest {
    /// A `RESPONSE` to the customer with page-scoped id `psid` (a [`UserId`], or its text).
    pub fn new<'a>(psid: impl Into<UserId<'a>>, message: Message) -> Self {
        Self {
            recipient: psid.into().into_owned(),
            message,
            marking: SendMarking::response(),
            persona_id: None,
            notification: None,
        }
    }

    /// Sets how the message is marked.
    #[must_use]
    pub fn marking(mut self, marking: SendMarking) -> Self {
        self.marking = marking;
        self
    }

    /// Sends as the persona `id`.
    #[must_use]
    pub fn persona(mut self, id: impl Into<String>) -> Self {
        self.persona_id = Some(id.into());
        self
    }

    /// Sets the notification type.
    #[must_use]
    pub fn notification(mut self, notification: NotificationType) -> Self {
        self.notification = Some(notification);
        self
    }

    /// The customer's PSID.
    pub fn recipient(&self) -> &UserId<'static> {
        &self.recipient
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The marking.
    pub fn get_marking(&self) -> SendMarking {
        self.marking
    }

    fn wire(&self) -> Wire<'_> {
        let message = match &self.message.body {
            Body::Text(text) => WireMessage::Text {
                text,
                quick_replies: (!self.message.quick_replies.is_empty()).then(|| {
                    Value::Array(
                        self.message
                            .quick_replies
                            .iter()
                            .map(QuickReply::to_json)
                            .collect(),
                    )
                }),
                metadata: self.message.metadata.as_deref(),
            },
            _ => WireMessage::Other(self.message.to_json()),
        };
        Wire {
            recipient: WireRecipient {
                id: self.recipient.as_str(),
            },
            messaging_type: self.marking.messaging_type().as_str(),
            tag: self.marking.tag().map(MessageTag::as_str),
            persona_id: self.persona_id.as_deref(),
            notification_type: self.notification.map(NotificationType::as_str),
            message,
        }
    }

    /// The Send API request body (without the uploaded file, which goes in a multipart part).
    ///
    /// # Panics
    /// Never: the body holds only strings, booleans and objects with string keys.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.wire()).expect("the body serialises")
    }

    /// The request body as JSON bytes, written straight from the request (no intermediate
    /// `Value` for text messages, the common case).
    ///
    /// # Panics
    /// Never, as [`SendRequest::to_json`].
    pub fn to_body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.wire()).expect("the body serialises")
    }
}

#[derive(serde::Serialize)]
struct Wire<'a> {
    recipient: WireRecipient<'a>,
    messaging_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    persona_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notification_type: Option<&'static str>,
    message: WireMessage<'a>,
}

#[derive(serde::Serialize)]
struct WireRecipient<'a> {
    id: &'a str,
}

#[derive(serde::Serialize)]
#[serde(untagged)]
enum WireMessage<'a> {
    Text {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        quick_replies: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        metadata: Option<&'a str>,
    },
    Other(Value),
}

impl SendMarking {
    /// `RESPONSE`, no tag: a reply inside the 24-hour window.
    pub fn response() -> Self {
        Self::new(MessagingType::Response, None)
    }

    /// `UPDATE`, no tag: a proactive message inside the 24-hour window.
    pub fn update() -> Self {
        Self::new(MessagingType::Update, None)
    }

    /// `MESSAGE_TAG` with `tag`. Prefer [`crate::window::check_window`], which never tags inside
    /// the window and never tags automation as a human agent.
    pub fn tagged(tag: MessageTag) -> Self {
        Self::new(MessagingType::MessageTag, Some(tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced_and_stated() {
        assert_eq!(
            Message::text(&"x".repeat(2001)).unwrap_err(),
            BuildError::TooLong {
                field: "text",
                chars: 2001,
                max: 2000
            }
        );
        assert!(
            Message::text(&"é".repeat(2000)).is_ok(),
            "characters, not bytes"
        );
        assert_eq!(
            Message::text("  ").unwrap_err(),
            BuildError::Empty { field: "text" }
        );
        let qr = QuickReply::text("a", "A").unwrap();
        assert!(
            Message::text("x")
                .unwrap()
                .with_quick_replies(vec![qr.clone(); 13])
                .is_ok()
        );
        assert_eq!(
            Message::text("x")
                .unwrap()
                .with_quick_replies(vec![qr; 14])
                .unwrap_err(),
            BuildError::TooMany {
                field: "quick_replies",
                count: 14,
                max: 13
            }
        );
        assert!(QuickReply::text(&"t".repeat(21), "P").is_err());
        let b = Button::postback("b", "B").unwrap();
        assert!(Message::buttons("t", vec![b.clone(); 3]).is_ok());
        assert!(Message::buttons("t", vec![]).is_err());
        assert!(Message::buttons(&"t".repeat(641), vec![b]).is_err());
        let e = Element::new("card").unwrap();
        assert!(Message::generic(vec![e.clone(); 10]).is_ok());
        assert!(Message::generic(vec![e; 11]).is_err());
        assert!(Element::new(&"t".repeat(81)).is_err());
        assert!(Button::web_url("site", "javascript:alert(1)").is_err());
        assert!(Button::call("call", "+33123456789").is_ok());
        assert!(Button::call("call", "0123").is_err());
        assert!(
            Message::text("x")
                .unwrap()
                .with_metadata(&"m".repeat(1001))
                .is_err()
        );
        let err = BuildError::TooLong {
            field: "text",
            chars: 2001,
            max: 2000,
        };
        assert_eq!(
            err.to_string(),
            "text has 2001 characters; at most 2000 are allowed"
        );
    }

    #[test]
    fn body_bytes_match_the_json_view() {
        let text = Message::text("hé \"quoted\"")
            .unwrap()
            .with_metadata("m")
            .unwrap();
        let r = SendRequest::new("1", text)
            .persona("7")
            .notification(NotificationType::NoPush);
        assert_eq!(
            serde_json::from_slice::<Value>(&r.to_body()).unwrap(),
            r.to_json()
        );
        let card = Message::generic(vec![Element::new("c").unwrap()]).unwrap();
        let r = SendRequest::new("1", card).marking(SendMarking::tagged(MessageTag::HumanAgent));
        assert_eq!(
            serde_json::from_slice::<Value>(&r.to_body()).unwrap(),
            r.to_json()
        );
        assert_eq!(
            r.to_json()["message"]["attachment"]["payload"]["template_type"],
            "generic"
        );
    }

    #[test]
    fn marking_is_coherent() {
        let r = SendRequest::new("1", Message::text("x").unwrap());
        assert_eq!(r.to_json()["messaging_type"], "RESPONSE");
        assert!(r.to_json().get("tag").is_none());
        let t = r
            .marking(SendMarking::tagged(MessageTag::HumanAgent))
            .to_json();
        assert_eq!(
            (t["messaging_type"].as_str(), t["tag"].as_str()),
            (Some("MESSAGE_TAG"), Some("HUMAN_AGENT"))
        );
    }
}
