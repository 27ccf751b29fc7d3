//! Typed webhook events.
//!
//! Every event carries what all events share (page, sender, recipient, timestamp, the standby
//! flag, its place in the body) in [`Event`], and what is specific to its kind in
//! [`EventKind`]. Strings are [`JsonStr`]s that borrow the body's still-escaped text: call
//! [`JsonStr::decode`] to read them.

use super::json::{JsonStr, RawJson};
use crate::ids::{AppId, MessageId, PageId, UserId};

/// One event of a webhook body: an item of an entry's `messaging` or `standby` array.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event<'a> {
    /// Index of the entry in `entry[]`.
    pub entry: usize,
    /// Index of the item in its entry's `messaging` (or `standby`) array.
    pub index: usize,
    /// Whether the item came from `standby`: another app owns the thread, so this app is
    /// only watching and must not answer.
    pub standby: bool,
    /// The page the entry is about (`entry[].id`).
    pub page_id: PageId<'a>,
    /// `sender.id`: the customer, or the page on echoes. Absent on `policy_enforcement` and on
    /// plugin opt-ins that identify the person by `user_ref` only.
    pub sender: Option<UserId<'a>>,
    /// `sender.user_ref`, for people known through the checkbox or chat plugin only.
    pub sender_user_ref: Option<JsonStr<'a>>,
    /// `recipient.id`: the page, or the customer on echoes.
    pub recipient: Option<UserId<'a>>,
    /// `timestamp`, in milliseconds since the Unix epoch (a fraction, in older payloads, is
    /// dropped). When the item has none, the entry's `time`: see
    /// [`Event::timestamp_from_entry`].
    pub timestamp: u64,
    /// Whether [`Event::timestamp`] is the entry's `time`, because the item had no
    /// `timestamp` of its own (Meta's reference shows delivery and read events so).
    pub timestamp_from_entry: bool,
    /// What happened.
    pub kind: EventKind<'a>,
}

impl<'a> Event<'a> {
    /// The kind's name, as used by the `inspect` tool and in logs: `message`, `echo`, …, `unknown`.
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }

    /// The message id the event is about, where it has one: the message, echo, edit, postback
    /// or reaction's `mid`.
    pub fn mid(&self) -> Option<&MessageId<'a>> {
        match &self.kind {
            EventKind::Message(m) => Some(&m.mid),
            EventKind::Echo(e) => Some(&e.message.mid),
            EventKind::MessageEdit(e) => Some(&e.mid),
            EventKind::Postback(p) => p.mid.as_ref(),
            EventKind::Reaction(r) => r.mid.as_ref(),
            _ => None,
        }
    }

    /// `timestamp` as a [`std::time::SystemTime`], for the messaging-window policy.
    pub fn time(&self) -> std::time::SystemTime {
        crate::time::saturating_add(
            std::time::UNIX_EPOCH,
            std::time::Duration::from_millis(self.timestamp),
        )
    }

    /// The customer's id: the recipient of an echo, the sender of anything else.
    pub fn customer(&self) -> Option<&UserId<'a>> {
        match self.kind {
            EventKind::Echo(_) => self.recipient.as_ref(),
            _ => self.sender.as_ref(),
        }
    }

    /// A key that identifies this event across redeliveries, for deduplication.
    ///
    /// Meta redelivers the same bytes, so the key is built from what the event says, not from
    /// where it sits in the body: kind, page, standby flag, and the `mid` when there is one;
    /// otherwise sender, timestamp and the kind's own distinguishing values. An unsend
    /// (`is_deleted`) adds `:deleted`, so it never passes for the message it removes.
    pub fn dedup_key(&self) -> String {
        use std::fmt::Write as _;
        let mut key = String::with_capacity(96);
        let _ = write!(
            key,
            "{}:{}:{}:",
            self.kind_name(),
            self.page_id,
            if self.standby { "s" } else { "m" }
        );
        match &self.kind {
            EventKind::MessageEdit(e) => {
                let _ = write!(key, "{}:{}", e.mid, e.num_edit);
            }
            EventKind::Reaction(r) => {
                // Keys as before for reactions with a `mid`; without one (older payloads),
                // the sender tells two people's reactions at one time apart.
                if let Some(mid) = &r.mid {
                    let _ = write!(key, "{mid}:{}:{}", r.action.as_str(), self.timestamp);
                } else {
                    let sender = self.sender.as_ref().map_or("", UserId::as_str);
                    let _ = write!(
                        key,
                        "sender {sender}:{}:{}",
                        r.action.as_str(),
                        self.timestamp
                    );
                }
            }
            _ => {
                if let Some(mid) = self.mid() {
                    key.push_str(mid.as_str());
                    // An unsend carries the removed message's `mid`: it must not pass for a
                    // redelivery of that message.
                    if matches!(&self.kind, EventKind::Message(m) if m.is_deleted) {
                        key.push_str(":deleted");
                    }
                } else {
                    let sender = self.sender.as_ref().map_or("", UserId::as_str);
                    let recipient = self.recipient.as_ref().map_or("", UserId::as_str);
                    let _ = write!(key, "{sender}:{recipient}:{}", self.timestamp);
                    match &self.kind {
                        EventKind::Delivery(d) => {
                            let _ = write!(key, ":{}", d.watermark);
                        }
                        EventKind::Read(r) => {
                            let _ = write!(key, ":{}", r.watermark);
                        }
                        EventKind::Unknown(u) => {
                            let _ = write!(key, ":{}", u.key.as_deref().unwrap_or(""));
                        }
                        _ => {}
                    }
                }
            }
        }
        key
    }
}

/// What an event is about: one variant per event key Meta sends, and [`EventKind::Unknown`]
/// for keys this crate does not know (kept, never an error).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind<'a> {
    /// A message from the customer (`message` without `is_echo`).
    Message(Message<'a>),
    /// A message the page sent, echoed back (`message` with `is_echo: true`).
    Echo(Echo<'a>),
    /// The customer edited a message (`message_edit`).
    MessageEdit(MessageEdit<'a>),
    /// The customer pressed a button, Get Started or a persistent-menu item (`postback`).
    Postback(Postback<'a>),
    /// Messages from the page were delivered (`delivery`).
    Delivery(Delivery<'a>),
    /// The customer read the thread up to a point (`read`).
    Read(Read),
    /// The customer reacted to a message, or removed a reaction (`reaction`).
    Reaction(Reaction<'a>),
    /// The customer came through an m.me link, an ad or a plugin (`referral`).
    Referral(Referral<'a>),
    /// The customer opted in (`optin`), for example to marketing messages.
    Optin(Box<Optin<'a>>),
    /// Another app passed thread control to this app (`pass_thread_control`).
    PassThreadControl(ThreadControl<'a>),
    /// Another app (or the Page inbox) took thread control from this app (`take_thread_control`).
    TakeThreadControl(ThreadControl<'a>),
    /// Another app asks this app for thread control (`request_thread_control`).
    RequestThreadControl(ThreadControl<'a>),
    /// The apps' roles on the page changed (`app_roles`).
    AppRoles(AppRoles<'a>),
    /// Meta warned, blocked or unblocked the page (`policy_enforcement`); it has no sender.
    PolicyEnforcement(PolicyEnforcement<'a>),
    /// The customer linked or unlinked an account (`account_linking`).
    AccountLinking(AccountLinking<'a>),
    /// An event key this crate does not know, kept whole.
    Unknown(Unknown<'a>),
}

impl EventKind<'_> {
    /// The kind's name: `message echo message_edit postback delivery read reaction referral
    /// optin pass_thread_control take_thread_control request_thread_control app_roles
    /// policy_enforcement account_linking unknown`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Message(_) => "message",
            Self::Echo(_) => "echo",
            Self::MessageEdit(_) => "message_edit",
            Self::Postback(_) => "postback",
            Self::Delivery(_) => "delivery",
            Self::Read(_) => "read",
            Self::Reaction(_) => "reaction",
            Self::Referral(_) => "referral",
            Self::Optin(_) => "optin",
            Self::PassThreadControl(_) => "pass_thread_control",
            Self::TakeThreadControl(_) => "take_thread_control",
            Self::RequestThreadControl(_) => "request_thread_control",
            Self::AppRoles(_) => "app_roles",
            Self::PolicyEnforcement(_) => "policy_enforcement",
            Self::AccountLinking(_) => "account_linking",
            Self::Unknown(_) => "unknown",
        }
    }
}

/// A message: text, attachments, or both.
#[derive(Debug, Clone, PartialEq)]
pub struct Message<'a> {
    /// `mid`: the message id, the key for deduplication.
    pub mid: MessageId<'a>,
    /// `text`, when the message has text.
    pub text: Option<JsonStr<'a>>,
    /// `quick_reply.payload`, when the customer tapped a quick reply.
    pub quick_reply: Option<JsonStr<'a>>,
    /// `reply_to.mid`, when the message answers an earlier one.
    pub reply_to: Option<MessageId<'a>>,
    /// `attachments`, in order; empty for a text message.
    pub attachments: Vec<Attachment<'a>>,
    /// `referral`, when the message came from an ad or a shop.
    pub referral: Option<RawJson<'a>>,
    /// `is_deleted`: the customer removed (unsent) the message `mid`. Meta's reference for
    /// Instagram messaging on the Messenger Platform documents an unsend as a `message` event
    /// with the removed message's `mid` and `is_deleted: true`, and no text.
    pub is_deleted: bool,
}

/// An echo of a message the page sent (by this app, another app, or the Page inbox).
#[derive(Debug, Clone, PartialEq)]
pub struct Echo<'a> {
    /// The message as sent.
    pub message: Message<'a>,
    /// `app_id` of the app that sent it (the Page inbox has its own app id).
    pub app_id: Option<AppId>,
    /// `metadata` given to the Send API, returned as it was.
    pub metadata: Option<JsonStr<'a>>,
}

/// One attachment of a message.
///
/// Meta's shapes differ by type and have changed over the years; every attachment keeps its
/// `type`, the common `payload` fields, and the raw `payload` for the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment<'a> {
    /// `type`.
    pub kind: AttachmentKind<'a>,
    /// `payload.url` (or a `url` beside the payload, as older fallbacks have it): a CDN URL that
    /// expires; download it on receipt.
    pub url: Option<JsonStr<'a>>,
    /// `title` (beside or inside the payload), for fallbacks, locations and shares.
    pub title: Option<JsonStr<'a>>,
    /// `payload.sticker_id`, on stickers, also when they arrive as an `image`.
    pub sticker_id: Option<u64>,
    /// `payload.coordinates`, on locations from older payloads.
    pub coordinates: Option<Coordinates>,
    /// The whole `payload` object, for what the fields above do not cover (templates, reels,
    /// appointment bookings).
    pub payload: Option<RawJson<'a>>,
}

impl Attachment<'_> {
    /// Whether this is a sticker: a `sticker` attachment, or an `image` carrying a `sticker_id`.
    pub fn is_sticker(&self) -> bool {
        self.kind == AttachmentKind::Sticker || self.sticker_id.is_some()
    }
}

/// The `type` of an attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AttachmentKind<'a> {
    /// `image`.
    Image,
    /// `video`.
    Video,
    /// `audio`.
    Audio,
    /// `file`.
    File,
    /// `sticker`.
    Sticker,
    /// `fallback`: a link share, or a share Messenger cannot describe.
    Fallback,
    /// `template` (echoes of templates the page sent).
    Template,
    /// `reel`.
    Reel,
    /// `ig_reel`.
    IgReel,
    /// `post`.
    Post,
    /// `ig_post`.
    IgPost,
    /// `appointment_booking`.
    AppointmentBooking,
    /// `location`, from older payloads.
    Location,
    /// Any other type, kept by name.
    Other(JsonStr<'a>),
}

impl AttachmentKind<'_> {
    /// The `type` string as Meta sends it.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        std::borrow::Cow::Borrowed(match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::File => "file",
            Self::Sticker => "sticker",
            Self::Fallback => "fallback",
            Self::Template => "template",
            Self::Reel => "reel",
            Self::IgReel => "ig_reel",
            Self::Post => "post",
            Self::IgPost => "ig_post",
            Self::AppointmentBooking => "appointment_booking",
            Self::Location => "location",
            Self::Other(name) => return name.decode(),
        })
    }
}

/// A point on Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coordinates {
    /// Latitude.
    pub lat: f64,
    /// Longitude.
    pub long: f64,
}

/// `message_edit`: the customer changed the text of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageEdit<'a> {
    /// The edited message.
    pub mid: MessageId<'a>,
    /// The new text.
    pub text: Option<JsonStr<'a>>,
    /// How many times it has been edited (Messenger allows five).
    pub num_edit: u64,
}

/// `postback`.
#[derive(Debug, Clone, PartialEq)]
pub struct Postback<'a> {
    /// `mid` (sent since Graph v11).
    pub mid: Option<MessageId<'a>>,
    /// The button's title.
    pub title: Option<JsonStr<'a>>,
    /// The button's payload. Standby postbacks carry none.
    pub payload: Option<JsonStr<'a>>,
    /// `referral`, when the postback came with one (Get Started from an m.me link).
    pub referral: Option<Referral<'a>>,
}

/// `delivery`: the page's messages up to `watermark` were delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery<'a> {
    /// `mids` of the delivered messages, when listed.
    pub mids: Vec<MessageId<'a>>,
    /// Every message sent before this time (ms) was delivered.
    pub watermark: u64,
}

/// `read`: the customer read every message sent before `watermark`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// Time (ms) up to which messages were read.
    pub watermark: u64,
}

/// `reaction`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Reaction<'a> {
    /// The message reacted to; absent in older payloads.
    pub mid: Option<MessageId<'a>>,
    /// React or unreact.
    pub action: ReactionAction,
    /// The emoji.
    pub emoji: Option<JsonStr<'a>>,
    /// The reaction's name (`smile`, `love`, …, `other`).
    pub reaction: Option<JsonStr<'a>>,
}

/// Whether a reaction was added or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReactionAction {
    /// `react`.
    React,
    /// `unreact`.
    Unreact,
}

impl ReactionAction {
    /// `react` or `unreact`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::React => "react",
            Self::Unreact => "unreact",
        }
    }
}

/// `referral`: how the customer came to the thread.
#[derive(Debug, Clone, PartialEq)]
pub struct Referral<'a> {
    /// `ref`: the parameter of the m.me link, ad or plugin.
    pub ref_: Option<JsonStr<'a>>,
    /// `source`: `SHORTLINK`, `ADS`, `CUSTOMER_CHAT_PLUGIN`, …
    pub source: Option<JsonStr<'a>>,
    /// `type`: `OPEN_THREAD`.
    pub type_: Option<JsonStr<'a>>,
    /// `ad_id`, for ads.
    pub ad_id: Option<JsonStr<'a>>,
    /// `referer_uri`, for the chat plugin.
    pub referer_uri: Option<JsonStr<'a>>,
    /// The whole object.
    pub raw: RawJson<'a>,
}

/// `optin`.
#[derive(Debug, Clone, PartialEq)]
pub struct Optin<'a> {
    /// `type`, e.g. `notification_messages`.
    pub type_: Option<JsonStr<'a>>,
    /// `ref` (Send to Messenger and checkbox plugins).
    pub ref_: Option<JsonStr<'a>>,
    /// `user_ref` (checkbox plugin).
    pub user_ref: Option<JsonStr<'a>>,
    /// `payload`.
    pub payload: Option<JsonStr<'a>>,
    /// `title`.
    pub title: Option<JsonStr<'a>>,
    /// `notification_messages_token`: the token for sending marketing messages. A credential:
    /// keep it out of logs.
    pub notification_messages_token: Option<JsonStr<'a>>,
    /// `notification_messages_frequency`.
    pub notification_messages_frequency: Option<JsonStr<'a>>,
    /// `notification_messages_timezone`.
    pub notification_messages_timezone: Option<JsonStr<'a>>,
    /// `notification_messages_status`: `STOP NOTIFICATIONS` or `RESUME NOTIFICATIONS`.
    pub notification_messages_status: Option<JsonStr<'a>>,
    /// `token_expiry_timestamp` (ms).
    pub token_expiry_timestamp: Option<u64>,
    /// `user_token_status`.
    pub user_token_status: Option<JsonStr<'a>>,
    /// The whole object.
    pub raw: RawJson<'a>,
}

/// `pass_thread_control`, `take_thread_control` or `request_thread_control`.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadControl<'a> {
    /// The app that held control (`previous_owner_app_id`); `None` when the thread was idle.
    pub previous_owner_app_id: Option<AppId>,
    /// The app that holds control now (`new_owner_app_id`).
    pub new_owner_app_id: Option<AppId>,
    /// The app that asks for control (`requested_owner_app_id`).
    pub requested_owner_app_id: Option<AppId>,
    /// `metadata` given by the app that acted.
    pub metadata: Option<JsonStr<'a>>,
}

/// `app_roles`: app id → roles.
#[derive(Debug, Clone, PartialEq)]
pub struct AppRoles<'a> {
    /// Each app and its roles, in body order.
    pub roles: Vec<(AppId, Vec<JsonStr<'a>>)>,
}

/// `policy_enforcement`.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyEnforcement<'a> {
    /// `warning`, `block` or `unblock`.
    pub action: JsonStr<'a>,
    /// Why, when Meta says.
    pub reason: Option<JsonStr<'a>>,
}

/// `account_linking`.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountLinking<'a> {
    /// `linked` or `unlinked`.
    pub status: JsonStr<'a>,
    /// `authorization_code`, on linking.
    pub authorization_code: Option<JsonStr<'a>>,
}

/// An event of a kind this crate does not know, kept whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Unknown<'a> {
    /// The key that names the event (`game_play`, `messaging_seen`…), when the item had one.
    pub key: Option<String>,
    /// The whole item, as it is in the body.
    pub raw: RawJson<'a>,
}
