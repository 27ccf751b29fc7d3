//! Raw body → typed events, every entry and every item of `messaging` and `standby`.

use std::fmt;

use super::event::{
    AccountLinking, AppRoles, Attachment, AttachmentKind, Coordinates, Delivery, Echo, Event,
    EventKind, Message, MessageEdit, Optin, PolicyEnforcement, Postback, Reaction, ReactionAction,
    Read, Referral, ThreadControl, Unknown,
};
use super::json::{Fail, JsonStr, Problem, RawJson, Reader, Shape, shape};
use crate::ids::{AppId, MessageId, PageId, UserId};

/// Default for [`Limits::max_body_bytes`]: 4 MiB. Meta batches at most 1,000 events, which is
/// about 0.5 MiB in practice.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Default for [`Limits::max_depth`]. Webhook bodies nest about eight levels deep.
pub const DEFAULT_MAX_DEPTH: u32 = 64;
/// The deepest nesting read whatever [`Limits::max_depth`] says: the reader recurses once per
/// level, and an unbounded limit would let a body of nested brackets overflow the stack.
pub const MAX_DEPTH_CEILING: u32 = 256;

/// Bounds on what a webhook body may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The deepest nesting of arrays and objects accepted; values above
    /// [`MAX_DEPTH_CEILING`] count as it.
    pub max_depth: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

/// A body that is not a usable webhook at all. Answer it with 400 (413 for
/// [`ParseError::TooLarge`]); nothing in it can be trusted to be an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The body is larger than [`Limits::max_body_bytes`].
    #[error("the body has {size} bytes; at most {max} are accepted")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not UTF-8, so it is not JSON.
    #[error("the body is not UTF-8 (invalid byte at offset {valid_up_to})")]
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The body is not valid JSON.
    #[error("the body is not valid JSON: {reason} at byte {offset}")]
    Syntax {
        /// Byte offset of the problem.
        offset: usize,
        /// What is wrong there.
        reason: &'static str,
    },
    /// Valid JSON, but not shaped like a webhook (not an object, `entry` not an array…).
    #[error("the body is not a webhook: {} {problem}", if field.is_empty() { "the body".to_owned() } else { format!("field `{field}`") })]
    NotAWebhook {
        /// The offending field (empty for the body itself).
        field: &'static str,
        /// What is wrong with it.
        problem: ItemProblem,
    },
    /// The body has no `object` field.
    #[error("the body has no `object` field; a Messenger webhook has \"object\":\"page\"")]
    MissingObject,
    /// `object` is `instagram`: an Instagram Messaging webhook. Its events differ from
    /// Messenger's (`messaging_seen`, story mentions, Instagram-scoped ids), and this crate
    /// handles Messenger only; route Instagram subscriptions elsewhere.
    #[error(
        "this is an Instagram webhook (\"object\":\"instagram\"); this crate handles Messenger (\"page\") only"
    )]
    Instagram,
    /// `object` is neither `page` nor `instagram` (`whatsapp_business_account`, `user`…).
    #[error("the webhook is for object \"{object}\", not \"page\"")]
    UnsupportedObject {
        /// The `object` value.
        object: String,
    },
    /// The body has no `entry` array.
    #[error("the body has no `entry` array")]
    MissingEntry,
}

/// What is wrong with one field of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ItemProblem {
    /// A required field is absent.
    Missing,
    /// The field has another JSON type.
    WrongType {
        /// The type required.
        expected: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// The field has the right type but an unusable value.
    Invalid(&'static str),
}

impl fmt::Display for ItemProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("is missing"),
            Self::WrongType { expected, found } => write!(f, "is {found}, expected {expected}"),
            Self::Invalid(why) => write!(f, "is invalid: {why}"),
        }
    }
}

impl From<Problem> for ItemProblem {
    fn from(p: Problem) -> Self {
        match p {
            Problem::Missing => Self::Missing,
            Problem::WrongType { expected, found } => Self::WrongType { expected, found },
            Problem::Invalid(why) => Self::Invalid(why),
        }
    }
}

/// One item (or a whole entry) that could not be read. Its neighbours are not affected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: field `{field}` {problem}", self.position())]
pub struct ItemError {
    /// Index of the entry in `entry[]`.
    pub entry: usize,
    /// Index of the item in its array; `None` when the entry itself is malformed.
    pub index: Option<usize>,
    /// Whether the item is in `standby` rather than `messaging`.
    pub standby: bool,
    /// The offending field, as a dotted path inside the item (or entry).
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: ItemProblem,
}

impl ItemError {
    fn position(&self) -> String {
        let array = if self.standby { "standby" } else { "messaging" };
        match self.index {
            Some(i) => format!("entry[{}].{array}[{i}]", self.entry),
            None => format!("entry[{}]", self.entry),
        }
    }
}

/// The events of one webhook body, in body order, each read or failed on its own.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch<'a> {
    items: Vec<Result<Event<'a>, ItemError>>,
}

impl<'a> Batch<'a> {
    /// Every item in body order: an event, or why that item could not be read.
    pub fn items(&self) -> &[Result<Event<'a>, ItemError>] {
        &self.items
    }

    /// The items, by value.
    pub fn into_items(self) -> Vec<Result<Event<'a>, ItemError>> {
        self.items
    }

    /// The events that were read, in body order.
    pub fn events(&self) -> impl Iterator<Item = &Event<'a>> {
        self.items.iter().filter_map(|r| r.as_ref().ok())
    }

    /// The items that could not be read.
    pub fn errors(&self) -> impl Iterator<Item = &ItemError> {
        self.items.iter().filter_map(|r| r.as_ref().err())
    }

    /// Number of items, read or not.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the body held no item.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<'a> IntoIterator for Batch<'a> {
    type Item = Result<Event<'a>, ItemError>;
    type IntoIter = std::vec::IntoIter<Self::Item>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

/// Parses a body without checking its signature.
///
/// Use this only where the signature was checked elsewhere (a gateway) or for tools; a
/// receiver facing the internet uses [`super::Webhook::verify_and_parse`].
///
/// # Errors
/// A [`ParseError`] when the body is not a Messenger webhook at all. A malformed item is not
/// an error here: it is an `Err` item of the [`Batch`].
pub fn parse_unverified(body: &[u8]) -> Result<Batch<'_>, ParseError> {
    parse_with_limits(body, &Limits::default())
}

/// [`parse_unverified`] with explicit [`Limits`].
///
/// # Errors
/// As [`parse_unverified`].
pub fn parse_with_limits<'a>(body: &'a [u8], limits: &Limits) -> Result<Batch<'a>, ParseError> {
    if body.len() > limits.max_body_bytes {
        return Err(ParseError::TooLarge {
            size: body.len(),
            max: limits.max_body_bytes,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| ParseError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let mut r = Reader::new(text, limits.max_depth.min(MAX_DEPTH_CEILING));
    let mut object: Option<JsonStr<'a>> = None;
    let mut saw_entry = false;
    // Meta's events take 300 to 500 bytes each; reserving up front saves the copies of growth.
    let mut items = Vec::with_capacity((text.len() / 384 + 1).min(1024));
    r.object("", |r, key| match key {
        "object" => {
            object = Some(r.str("object")?);
            Ok(())
        }
        "entry" => {
            saw_entry = true;
            r.array("entry", |r, j| parse_entry(r, j, &mut items))
        }
        _ => r.skip().map(drop),
    })
    .and_then(|()| r.end())
    .or_else(|fail| match fail {
        // Valid JSON of the wrong shape is `NotAWebhook`, but only once the rest of the body
        // is known to be JSON at all.
        Fail::Shape(_) => {
            r.reset((0, 0));
            r.skip().and_then(|_| r.end()).and(Err(fail))
        }
        syntax @ Fail::Syntax(_) => Err(syntax),
    })
    .map_err(|fail| match fail {
        Fail::Syntax(s) => ParseError::Syntax {
            offset: s.at,
            reason: s.what,
        },
        Fail::Shape(s) => ParseError::NotAWebhook {
            field: s.field,
            problem: s.problem.into(),
        },
    })?;
    match object {
        None => return Err(ParseError::MissingObject),
        Some(o) if o.eq_str("page") => {}
        Some(o) if o.eq_str("instagram") => return Err(ParseError::Instagram),
        Some(o) => {
            return Err(ParseError::UnsupportedObject {
                object: o.decode().chars().take(64).collect(),
            });
        }
    }
    if !saw_entry {
        return Err(ParseError::MissingEntry);
    }
    Ok(Batch { items })
}

type Items<'a> = Vec<Result<Event<'a>, ItemError>>;

fn entry_error(entry: usize, index: Option<usize>, standby: bool, s: Shape) -> ItemError {
    ItemError {
        entry,
        index,
        standby,
        field: s.field,
        problem: s.problem.into(),
    }
}

fn parse_entry<'a>(r: &mut Reader<'a>, j: usize, items: &mut Items<'a>) -> Result<(), Fail> {
    let mark = r.mark();
    let first = items.len();
    let mut page_id: Option<JsonStr<'a>> = None;
    // `Err(())`: absent, null or unusable.
    let mut time: Result<u64, ()> = Err(());
    let result = r.object("entry", |r, key| match key {
        "id" => {
            page_id = Some(r.id("entry.id")?);
            Ok(())
        }
        "time" => {
            // Only needed for items without a timestamp of their own: a malformed `time` is
            // dropped rather than a reason to lose the entry.
            time = lenient(r, |r| r.millis("entry.time").map(Some))?.ok_or(());
            Ok(())
        }
        "messaging" | "standby" => {
            let standby = key == "standby";
            let field = if standby { "standby" } else { "messaging" };
            let at = r.mark();
            match r.array(field, |r, i| parse_item(r, j, i, standby, items)) {
                Err(Fail::Shape(s)) => {
                    // The array itself is not an array: report it, keep the rest of the entry.
                    r.reset(at);
                    r.skip()?;
                    items.push(Err(entry_error(j, None, standby, *s)));
                    Ok(())
                }
                other => other,
            }
        }
        _ => r.skip().map(drop),
    });
    let failure = match result {
        Ok(()) => match page_id {
            Some(id) => {
                let id = PageId::new(id.decode());
                for item in &mut items[first..] {
                    let Ok(event) = item else { continue };
                    event.page_id = id.clone();
                    if event.timestamp_from_entry {
                        match time {
                            Ok(time) => event.timestamp = time,
                            Err(()) => {
                                *item = Err(ItemError {
                                    entry: event.entry,
                                    index: Some(event.index),
                                    standby: event.standby,
                                    field: "timestamp",
                                    problem: ItemProblem::Missing,
                                });
                            }
                        }
                    }
                }
                return Ok(());
            }
            None => Shape {
                field: "entry.id",
                problem: Problem::Missing,
            },
        },
        Err(Fail::Shape(s)) => {
            r.reset(mark);
            r.skip()?;
            *s
        }
        Err(syntax) => return Err(syntax),
    };
    // Events cannot be attributed to a page: the whole entry fails, once.
    items.truncate(first);
    items.push(Err(entry_error(j, None, false, failure)));
    Ok(())
}

fn parse_item<'a>(
    r: &mut Reader<'a>,
    j: usize,
    i: usize,
    standby: bool,
    items: &mut Items<'a>,
) -> Result<(), Fail> {
    let mark = r.mark();
    match read_item(r, j, i, standby, items) {
        Ok(()) => {}
        Err(Fail::Shape(s)) => {
            // Skip the whole item (checking its syntax) and report it alone.
            r.reset(mark);
            r.skip()?;
            items.push(Err(entry_error(j, Some(i), standby, *s)));
        }
        Err(syntax) => return Err(syntax),
    }
    Ok(())
}

fn several_kinds() -> Fail {
    shape(
        "",
        Problem::Invalid("the item holds more than one event kind"),
    )
}

fn set_kind<'a>(slot: &mut Option<EventKind<'a>>, kind: EventKind<'a>) -> Result<(), Fail> {
    if slot.is_some() {
        return Err(several_kinds());
    }
    *slot = Some(kind);
    Ok(())
}

// One arm per event key: a dispatch table reads best as one function.
#[allow(clippy::too_many_lines)]
fn read_item<'a>(
    r: &mut Reader<'a>,
    j: usize,
    i: usize,
    standby: bool,
    items: &mut Items<'a>,
) -> Result<(), Fail> {
    r.peek()?;
    let start = r.pos();
    let mut sender = None;
    let mut sender_user_ref = None;
    let mut recipient = None;
    let mut timestamp = None;
    let mut kind: Option<EventKind<'a>> = None;
    let mut unknown_key: Option<String> = None;
    r.object("", |r, key| {
        match key {
            "sender" => r.object("sender", |r, k| match k {
                "id" => {
                    sender = Some(UserId::new(r.id("sender.id")?.decode()));
                    Ok(())
                }
                "user_ref" => {
                    sender_user_ref = lenient_str(r, "sender.user_ref")?;
                    Ok(())
                }
                _ => r.skip().map(drop),
            })?,
            "recipient" => r.object("recipient", |r, k| match k {
                "id" => {
                    recipient = Some(UserId::new(r.id("recipient.id")?.decode()));
                    Ok(())
                }
                _ => r.skip().map(drop),
            })?,
            "timestamp" => timestamp = Some(r.millis("timestamp")?),
            "message" => set_kind(&mut kind, read_message(r)?)?,
            "message_edit" => set_kind(&mut kind, EventKind::MessageEdit(read_edit(r)?))?,
            "postback" => set_kind(&mut kind, EventKind::Postback(read_postback(r)?))?,
            "delivery" => set_kind(&mut kind, EventKind::Delivery(read_delivery(r)?))?,
            "read" => {
                let mut watermark = None;
                r.object("read", |r, k| match k {
                    "watermark" => {
                        watermark = Some(r.millis("read.watermark")?);
                        Ok(())
                    }
                    _ => r.skip().map(drop),
                })?;
                let watermark =
                    watermark.ok_or_else(|| shape("read.watermark", Problem::Missing))?;
                set_kind(&mut kind, EventKind::Read(Read { watermark }))?;
            }
            "reaction" => set_kind(&mut kind, EventKind::Reaction(read_reaction(r)?))?,
            "referral" => set_kind(
                &mut kind,
                EventKind::Referral(read_referral(r, "referral")?),
            )?,
            "optin" => set_kind(&mut kind, EventKind::Optin(Box::new(read_optin(r)?)))?,
            "pass_thread_control" => set_kind(
                &mut kind,
                EventKind::PassThreadControl(read_thread_control(r, "pass_thread_control")?),
            )?,
            "take_thread_control" => set_kind(
                &mut kind,
                EventKind::TakeThreadControl(read_thread_control(r, "take_thread_control")?),
            )?,
            "request_thread_control" => set_kind(
                &mut kind,
                EventKind::RequestThreadControl(read_thread_control(r, "request_thread_control")?),
            )?,
            "app_roles" => set_kind(&mut kind, EventKind::AppRoles(read_app_roles(r)?))?,
            // Meta's reference spells it with a hyphen; older payloads with an underscore.
            "policy_enforcement" | "policy-enforcement" => set_kind(
                &mut kind,
                EventKind::PolicyEnforcement(read_policy_enforcement(r)?),
            )?,
            "account_linking" => set_kind(
                &mut kind,
                EventKind::AccountLinking(read_account_linking(r)?),
            )?,
            _ => {
                // An event is an object, or (`message_request: "accept"`) a string.
                if unknown_key.is_none() && matches!(r.peek()?, b'{' | b'"') {
                    unknown_key = Some(key.to_owned());
                }
                r.skip()?;
            }
        }
        Ok(())
    })?;
    // Meta's reference shows delivery and read events without one: for those, the entry's
    // `time` is used instead, once the entry has been read (or the item fails if it has no
    // usable one). Any other kind needs its own.
    let timestamp_from_entry = timestamp.is_none();
    if timestamp_from_entry && !matches!(kind, Some(EventKind::Delivery(_) | EventKind::Read(_))) {
        return Err(shape("timestamp", Problem::Missing));
    }
    let kind = match kind {
        Some(kind) => kind,
        None => EventKind::Unknown(Unknown {
            key: unknown_key,
            raw: RawJson::new(r.slice(start, r.pos())),
        }),
    };
    // Pushed here rather than returned, so the event is written once, in place.
    items.push(Ok(Event {
        entry: j,
        index: i,
        standby,
        page_id: PageId::from(""),
        sender,
        sender_user_ref,
        recipient,
        timestamp: timestamp.unwrap_or(0),
        timestamp_from_entry,
        kind,
    }));
    Ok(())
}

/// Reads an optional field; a value of an unexpected shape is dropped (skipped, after checking
/// that it is JSON), never a reason to lose the event around it.
fn lenient<'a, T>(
    r: &mut Reader<'a>,
    read: impl FnOnce(&mut Reader<'a>) -> Result<Option<T>, Fail>,
) -> Result<Option<T>, Fail> {
    if r.null()? {
        return Ok(None);
    }
    let at = r.mark();
    match read(r) {
        Err(Fail::Shape(_)) => {
            r.reset(at);
            r.skip()?;
            Ok(None)
        }
        other => other,
    }
}

/// An optional string field, read leniently.
fn lenient_str<'a>(r: &mut Reader<'a>, field: &'static str) -> Result<Option<JsonStr<'a>>, Fail> {
    lenient(r, |r| r.opt_str(field))
}

fn mid(s: JsonStr<'_>) -> MessageId<'_> {
    MessageId::new(s.decode())
}

fn app_id(r: &mut Reader<'_>, field: &'static str) -> Result<Option<AppId>, Fail> {
    if r.null()? {
        return Ok(None);
    }
    let id = r.id(field)?;
    if id.is_escaped() {
        return Err(shape(
            field,
            Problem::Invalid("an app id is a decimal integer"),
        ));
    }
    id.raw()
        .parse()
        .map(|n| Some(AppId(n)))
        .map_err(|_| shape(field, Problem::Invalid("an app id is a decimal integer")))
}

fn read_message<'a>(r: &mut Reader<'a>) -> Result<EventKind<'a>, Fail> {
    let mut id = None;
    let mut text = None;
    let mut quick_reply = None;
    let mut reply_to = None;
    let mut attachments = Vec::new();
    let mut referral = None;
    let mut is_echo = false;
    let mut is_deleted = false;
    let mut app = None;
    let mut metadata = None;
    r.object("message", |r, key| {
        match key {
            "mid" => id = Some(r.str("message.mid")?),
            // The message itself: a text of another shape fails the item (it is reported, not
            // recorded as an empty message).
            "text" => text = r.opt_str("message.text")?,
            "quick_reply" => r.object("message.quick_reply", |r, k| match k {
                "payload" => {
                    quick_reply = lenient_str(r, "message.quick_reply.payload")?;
                    Ok(())
                }
                _ => r.skip().map(drop),
            })?,
            "reply_to" => r.object("message.reply_to", |r, k| match k {
                "mid" => {
                    reply_to = Some(mid(r.str("message.reply_to.mid")?));
                    Ok(())
                }
                _ => r.skip().map(drop),
            })?,
            "attachments" => {
                if !r.null()? {
                    r.array("message.attachments", |r, _| {
                        // An empty object (`[{}]`, as tock's tests send) says nothing: no
                        // attachment. One with fields but no `type` stays an error.
                        if let Some(a) = read_attachment(r)? {
                            attachments.push(a);
                        }
                        Ok(())
                    })?;
                }
            }
            "is_echo" => is_echo = r.bool("message.is_echo")?,
            "is_deleted" => {
                is_deleted =
                    lenient(r, |r| r.bool("message.is_deleted").map(Some))?.unwrap_or(false);
            }
            "app_id" => app = lenient(r, |r| app_id(r, "message.app_id"))?,
            "metadata" => metadata = lenient_str(r, "message.metadata")?,
            "referral" => {
                if !r.null()? {
                    referral = Some(r.raw()?);
                }
            }
            _ => {
                r.skip()?;
            }
        }
        Ok(())
    })?;
    let id = id.ok_or_else(|| shape("message.mid", Problem::Missing))?;
    let message = Message {
        mid: mid(id),
        text,
        quick_reply,
        reply_to,
        attachments,
        referral,
        is_deleted,
    };
    Ok(if is_echo {
        EventKind::Echo(Echo {
            message,
            app_id: app,
            metadata,
        })
    } else {
        EventKind::Message(message)
    })
}

fn attachment_kind(s: JsonStr<'_>) -> AttachmentKind<'_> {
    match s.raw() {
        "image" => AttachmentKind::Image,
        "video" => AttachmentKind::Video,
        "audio" => AttachmentKind::Audio,
        "file" => AttachmentKind::File,
        "sticker" => AttachmentKind::Sticker,
        "fallback" => AttachmentKind::Fallback,
        "template" => AttachmentKind::Template,
        "reel" => AttachmentKind::Reel,
        "ig_reel" => AttachmentKind::IgReel,
        "post" => AttachmentKind::Post,
        "ig_post" => AttachmentKind::IgPost,
        "appointment_booking" => AttachmentKind::AppointmentBooking,
        "location" => AttachmentKind::Location,
        _ => AttachmentKind::Other(s),
    }
}

fn read_attachment<'a>(r: &mut Reader<'a>) -> Result<Option<Attachment<'a>>, Fail> {
    let mut kind = None;
    let mut empty = true;
    let mut a = Attachment {
        kind: AttachmentKind::File,
        url: None,
        title: None,
        sticker_id: None,
        coordinates: None,
        payload: None,
    };
    r.object("message.attachments[]", |r, key| {
        empty = false;
        match key {
            "type" => kind = Some(attachment_kind(r.str("message.attachments[].type")?)),
            // `URL`: the fallback shape of Meta's older reference, which messenger4j's and
            // bottender's tests keep (`"URL": …, "payload": null`).
            "url" | "URL" => {
                if let Some(url) = lenient_str(r, "message.attachments[].url")? {
                    a.url.get_or_insert(url);
                }
            }
            "title" => a.title = lenient_str(r, "message.attachments[].title")?,
            "payload" => {
                if r.null()? {
                    return Ok(());
                }
                r.peek()?;
                let start = r.pos();
                if r.peek()? == b'{' {
                    r.object("message.attachments[].payload", |r, k| {
                        match k {
                            "url" => {
                                if let Some(url) =
                                    lenient_str(r, "message.attachments[].payload.url")?
                                {
                                    a.url = Some(url);
                                }
                            }
                            "title" => {
                                if let Some(title) =
                                    lenient_str(r, "message.attachments[].payload.title")?
                                {
                                    a.title = Some(title);
                                }
                            }
                            "sticker_id" => {
                                a.sticker_id = lenient(r, |r| {
                                    r.u64("message.attachments[].payload.sticker_id").map(Some)
                                })?;
                            }
                            "coordinates" => {
                                a.coordinates = lenient(r, |r| read_coordinates(r).map(Some))?;
                            }
                            _ => {
                                r.skip()?;
                            }
                        }
                        Ok(())
                    })?;
                } else {
                    r.skip()?;
                }
                a.payload = Some(RawJson::new(r.slice(start, r.pos())));
            }
            _ => {
                r.skip()?;
            }
        }
        Ok(())
    })?;
    if empty {
        return Ok(None);
    }
    a.kind = kind.ok_or_else(|| shape("message.attachments[].type", Problem::Missing))?;
    Ok(Some(a))
}

fn read_coordinates(r: &mut Reader<'_>) -> Result<Coordinates, Fail> {
    const FIELD: &str = "message.attachments[].payload.coordinates";
    let (mut lat, mut long) = (None, None);
    r.object(FIELD, |r, k| {
        match k {
            "lat" => lat = Some(r.f64("message.attachments[].payload.coordinates.lat")?),
            "long" => long = Some(r.f64("message.attachments[].payload.coordinates.long")?),
            _ => {
                r.skip()?;
            }
        }
        Ok(())
    })?;
    match (lat, long) {
        (Some(lat), Some(long)) => Ok(Coordinates { lat, long }),
        _ => Err(shape(
            FIELD,
            Problem::Invalid("needs both `lat` and `long`"),
        )),
    }
}

fn read_edit<'a>(r: &mut Reader<'a>) -> Result<MessageEdit<'a>, Fail> {
    let (mut id, mut text, mut num_edit) = (None, None, 0);
    r.object("message_edit", |r, k| {
        match k {
            "mid" => id = Some(r.str("message_edit.mid")?),
            "text" => text = r.opt_str("message_edit.text")?,
            "num_edit" => {
                num_edit = lenient(r, |r| r.u64("message_edit.num_edit").map(Some))?.unwrap_or(0);
            }
            _ => {
                r.skip()?;
            }
        }
        Ok(())
    })?;
    let id = id.ok_or_else(|| shape("message_edit.mid", Problem::Missing))?;
    Ok(MessageEdit {
        mid: mid(id),
        text,
        num_edit,
    })
}

fn read_postback<'a>(r: &mut Reader<'a>) -> Result<Postback<'a>, Fail> {
    let mut p = Postback {
        mid: None,
        title: None,
        payload: None,
        referral: None,
    };
    r.object("postback", |r, k| {
        match k {
            "mid" => p.mid = lenient_str(r, "postback.mid")?.map(mid),
            "title" => p.title = lenient_str(r, "postback.title")?,
            "payload" => p.payload = lenient_str(r, "postback.payload")?,
            "referral" => {
                if !r.null()? {
                    p.referral = Some(read_referral(r, "postback.referral")?);
                }
            }
            _ => {
                r.skip()?;
            }
        }
        Ok(())
    })?;
    Ok(p)
}

fn read_delivery<'a>(r: &mut Reader<'a>) -> Result<Delivery<'a>, Fail> {
    let mut mids = Vec::new();
    let mut watermark = None;
    r.object("delivery", |r, k| {
        match k {
            "mids" => {
                if !r.null()? {
                    r.array("delivery.mids", |r, _| {
                        mids.push(mid(r.str("delivery.mids[]")?));
                        Ok(())
                    })?;
                }
            }
            "watermark" => watermark = Some(r.millis("delivery.watermark")?),
            _ => {
                r.skip()?;
            }
        }
        Ok(())
    })?;
    let watermark = watermark.ok_or_else(|| shape("delivery.watermark", Problem::Missing))?;
    Ok(Delivery { mids, watermark })
}

fn read_reaction<'a>(r: &mut Reader<'a>) -> Result<Reaction<'a>, Fail> {
    let (mut id, mut action, mut emoji, mut reaction) = (None, None, None, None);
    r.object("reaction", |r, k| {
        match k {
            "mid" => id = Some(r.str("reaction.mid")?),
            "action" => {
                let a = r.str("reaction.action")?;
                action = Some(if a.eq_str("react") {
                    ReactionAction::React
                } else if a.eq_str("unreact") {
                    ReactionAction::Unreact
                } else {
                    return Err(shape(
                        "reaction.action",
                        Problem::Invalid("expected `react` or `unreact`"),
                    ));
                });
            }
            "emoji" => emoji = lenient_str(r, "reaction.emoji")?,
            "reaction" => reaction = lenient_str(r, "reaction.reaction")?,
            _ => {
                r.skip()?;
            }
        }
        Ok(())
    })?;
    Ok(Reaction {
        mid: id.map(mid),
        action: action.ok_or_else(|| shape("reaction.action", Problem::Missing))?,
        emoji,
        reaction,
    })
}

fn read_referral<'a>(r: &mut Reader<'a>, field: &'static str) -> Result<Referral<'a>, Fail> {
    r.peek()?;
    let start = r.pos();
    let (mut ref_, mut source, mut type_, mut ad_id, mut referer_uri) =
        (None, None, None, None, None);
    r.object(field, |r, k| {
        match k {
            "ref" => ref_ = lenient_str(r, "referral.ref")?,
            "source" => source = lenient_str(r, "referral.source")?,
            "type" => type_ = lenient_str(r, "referral.type")?,
            "ad_id" => {
                if !r.null()? {
                    ad_id = Some(r.id("referral.ad_id")?);
                }
            }
            "referer_uri" => referer_uri = lenient_str(r, "referral.referer_uri")?,
            _ => {
                r.skip()?;
            }
        }
        Ok(())
    })?;
    Ok(Referral {
        ref_,
        source,
        type_,
        ad_id,
        referer_uri,
        raw: RawJson::new(r.slice(start, r.pos())),
    })
}

fn read_optin<'a>(r: &mut Reader<'a>) -> Result<Optin<'a>, Fail> {
    r.peek()?;
    let start = r.pos();
    let mut o = Optin {
        type_: None,
        ref_: None,
        user_ref: None,
        payload: None,
        title: None,
        notification_messages_token: None,
        notification_messages_frequency: None,
        notification_messages_timezone: None,
        notification_messages_status: None,
        token_expiry_timestamp: None,
        user_token_status: None,
        raw: RawJson::new(""),
    };
    r.object("optin", |r, k| {
        match k {
            "type" => o.type_ = lenient_str(r, "optin.type")?,
            "ref" => o.ref_ = lenient_str(r, "optin.ref")?,
            "user_ref" => o.user_ref = lenient_str(r, "optin.user_ref")?,
            "payload" => o.payload = lenient_str(r, "optin.payload")?,
            "title" => o.title = lenient_str(r, "optin.title")?,
            "notification_messages_token" => {
                o.notification_messages_token =
                    lenient_str(r, "optin.notification_messages_token")?;
            }
            "notification_messages_frequency" => {
                o.notification_messages_frequency =
                    lenient_str(r, "optin.notification_messages_frequency")?;
            }
            "notification_messages_timezone" => {
                o.notification_messages_timezone =
                    lenient_str(r, "optin.notification_messages_timezone")?;
            }
            "notification_messages_status" => {
                o.notification_messages_status =
                    lenient_str(r, "optin.notification_messages_status")?;
            }
            "token_expiry_timestamp" => {
                o.token_expiry_timestamp =
                    lenient(r, |r| r.millis("optin.token_expiry_timestamp").map(Some))?;
            }
            "user_token_status" => o.user_token_status = lenient_str(r, "optin.user_token_status")?,
            _ => {
                r.skip()?;
            }
        }
        Ok(())
    })?;
    o.raw = RawJson::new(r.slice(start, r.pos()));
    Ok(o)
}

fn read_thread_control<'a>(
    r: &mut Reader<'a>,
    field: &'static str,
) -> Result<ThreadControl<'a>, Fail> {
    let mut t = ThreadControl {
        previous_owner_app_id: None,
        new_owner_app_id: None,
        requested_owner_app_id: None,
        metadata: None,
    };
    r.object(field, |r, k| {
        match k {
            "previous_owner_app_id" => {
                t.previous_owner_app_id =
                    lenient(r, |r| app_id(r, "thread_control.previous_owner_app_id"))?;
            }
            "new_owner_app_id" => {
                t.new_owner_app_id = lenient(r, |r| app_id(r, "thread_control.new_owner_app_id"))?;
            }
            "requested_owner_app_id" => {
                t.requested_owner_app_id =
                    lenient(r, |r| app_id(r, "thread_control.requested_owner_app_id"))?;
            }
            "metadata" => t.metadata = lenient_str(r, "thread_control.metadata")?,
            _ => {
                r.skip()?;
            }
        }
        Ok(())
    })?;
    Ok(t)
}

fn read_app_roles<'a>(r: &mut Reader<'a>) -> Result<AppRoles<'a>, Fail> {
    let mut roles = Vec::new();
    r.object("app_roles", |r, app| {
        let app = app
            .parse()
            .map(AppId)
            .map_err(|_| shape("app_roles", Problem::Invalid("keys must be app ids")))?;
        let mut list = Vec::new();
        r.array("app_roles[]", |r, _| {
            list.push(r.str("app_roles[][]")?);
            Ok(())
        })?;
        roles.push((app, list));
        Ok(())
    })?;
    Ok(AppRoles { roles })
}

fn read_policy_enforcement<'a>(r: &mut Reader<'a>) -> Result<PolicyEnforcement<'a>, Fail> {
    let (mut action, mut reason) = (None, None);
    r.object("policy_enforcement", |r, k| {
        match k {
            "action" => action = Some(r.str("policy_enforcement.action")?),
            "reason" => reason = lenient_str(r, "policy_enforcement.reason")?,
            _ => {
                r.skip()?;
            }
        }
        Ok(())
    })?;
    Ok(PolicyEnforcement {
        action: action.ok_or_else(|| shape("policy_enforcement.action", Problem::Missing))?,
        reason,
    })
}

fn read_account_linking<'a>(r: &mut Reader<'a>) -> Result<AccountLinking<'a>, Fail> {
    let (mut status, mut authorization_code) = (None, None);
    r.object("account_linking", |r, k| {
        match k {
            "status" => status = Some(r.str("account_linking.status")?),
            "authorization_code" => {
                authorization_code = lenient_str(r, "account_linking.authorization_code")?;
            }
            _ => {
                r.skip()?;
            }
        }
        Ok(())
    })?;
    Ok(AccountLinking {
        status: status.ok_or_else(|| shape("account_linking.status", Problem::Missing))?,
        authorization_code,
    })
}
