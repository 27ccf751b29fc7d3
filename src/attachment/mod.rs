//! The administrator's attachment policy: who may send files, how large, of which types.
//!
//! Pure and synchronous: no I/O and no clock. In the Omnichannel model the administrator turns
//! file attachments on or off for customers and for agents, sets the largest file, and blocks
//! extensions. A customer's refused file does not reach the agent, whose panel shows
//! [`UNSUPPORTED_INBOUND_NOTICE`] instead; an agent's refused file is explained before anything
//! is sent.
//!
//! | setting | inbound (customer → agent) | outbound (agent → customer) |
//! |---|---|---|
//! | enabled | yes | yes |
//! | largest file | [`DEFAULT_MAX_BYTES`] (5 MB) | 5 MB |
//! | allowed extensions | any not blocked | [`DEFAULT_OUTBOUND_EXTENSIONS`] |
//! | blocked extensions | [`DEFAULT_BLOCKED_EXTENSIONS`] (97) | the same |
//! | allowed MIME types | any | any |
//! | content checked against name and type | yes | yes |
//!
//! Omnichannel recommends 25 MB ([`RECOMMENDED_MESSENGER_MAX_BYTES`]) for Messenger, which is
//! also the most a policy may allow ([`PLATFORM_MAX_BYTES`]).
//!
//! ```
//! use messenger_channel::attachment::{AttachmentInfo, AttachmentPolicy, Direction};
//!
//! let policy = AttachmentPolicy::default();
//! // An executable renamed to look like a photo, from a customer.
//! let head = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00";
//! let verdict = policy.check(
//!     Direction::Inbound,
//!     &AttachmentInfo::new().name("holiday.jpg").mime("image/jpeg").size(48_000).head(head),
//! );
//! assert!(!verdict.is_allowed());
//! assert_eq!(verdict.violations()[0].code(), "content_blocked");
//! assert_eq!(verdict.agent_notice(), Some("Error: Customer sent an unsupported message type"));
//! ```
//!
//! A policy loaded from the administrator's TOML file and checked against a file on disk:
//!
//! ```
//! use messenger_channel::attachment::{AttachmentInfo, AttachmentPolicy, Direction};
//!
//! let policy: AttachmentPolicy = toml::from_str(&std::fs::read_to_string("examples/policy.sample.toml")?)?;
//! let bytes = std::fs::read("examples/sample/logo.png")?;
//! let info = AttachmentInfo::new()
//!     .name("logo.png")
//!     .mime("image/png")
//!     .size(bytes.len() as u64)
//!     .head(&bytes[..bytes.len().min(8192)]);
//! assert!(policy.check(Direction::Outbound, &info).is_allowed());
//! // The same bytes offered as a PDF contradict their name.
//! let renamed = AttachmentInfo { name: Some("logo.pdf"), ..info };
//! assert_eq!(policy.check(Direction::Outbound, &renamed).violations()[0].code(), "content_mismatch");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod name;
mod policy;
mod sniff;
mod validate;

pub use name::{
    FALLBACK_NAME, MAX_FILE_NAME_BYTES, extension, has_deceptive_characters, inner_extensions,
    is_invisible_or_bidi, sanitize_file_name,
};
pub use policy::{
    AttachmentPolicy, ConfigProblem, DEFAULT_BLOCKED_EXTENSIONS, DEFAULT_MAX_BYTES,
    DEFAULT_OUTBOUND_EXTENSIONS, Direction, DirectionConfig, DirectionPolicy, MimePattern,
    PLATFORM_MAX_BYTES, PolicyConfig, PolicyConfigError, RECOMMENDED_MESSENGER_MAX_BYTES,
};
pub use validate::{AttachmentInfo, Rejection, UNSUPPORTED_INBOUND_NOTICE, Verdict, Violation};

use crate::webhook::{Attachment, AttachmentKind};

impl<'a> From<&Attachment<'a>> for AttachmentInfo<'a> {
    /// What a webhook says of an attachment: its platform kind, and a name from the last
    /// segment of its URL when that segment needs no unescaping (percent-encoding is kept).
    /// The size is unknown until download: check again with [`AttachmentInfo::size`] and
    /// [`AttachmentInfo::head`] once the file is fetched.
    fn from(a: &Attachment<'a>) -> Self {
        let kind: &'a str = match a.kind {
            AttachmentKind::Image => "image",
            AttachmentKind::Video => "video",
            AttachmentKind::Audio => "audio",
            AttachmentKind::File => "file",
            AttachmentKind::Sticker => "sticker",
            AttachmentKind::Fallback => "fallback",
            AttachmentKind::Template => "template",
            AttachmentKind::Reel => "reel",
            AttachmentKind::IgReel => "ig_reel",
            AttachmentKind::Post => "post",
            AttachmentKind::IgPost => "ig_post",
            AttachmentKind::AppointmentBooking => "appointment_booking",
            AttachmentKind::Location => "location",
            AttachmentKind::Other(name) => name.raw(),
        };
        let mut info = AttachmentInfo::new().platform_kind(kind);
        if let Some(name) = a.url.and_then(|u| file_name_from_raw_url(u.raw())) {
            info = info.name(name);
        }
        info
    }
}

/// The last path segment of a URL as it appears, escaped, in a webhook body
/// (`https:\/\/cdn\/a\/invoice.pdf?x=1` → `invoice.pdf`).
fn file_name_from_raw_url(raw: &str) -> Option<&str> {
    let path = raw.split(['?', '#']).next()?;
    let segment = path.rsplit('/').next()?;
    let segment = segment.strip_suffix('\\').unwrap_or(segment);
    (!segment.is_empty() && !segment.contains('\\') && !segment.ends_with(':')).then_some(segment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::{EventKind, parse_unverified};

    #[test]
    fn from_webhook_attachments() {
        let body = br#"{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":3,"message":{"mid":"m","attachments":[
            {"type":"file","payload":{"url":"https:\/\/cdn.fbsbx.com\/v\/t59\/invoice.pdf?_nc=1&oe=2"}},
            {"type":"image","payload":{"url":"https:\/\/scontent.xx.fbcdn.net\/v\/4421_n.jpg"}},
            {"type":"fallback","payload":{"url":"https:\/\/example.com\/"}},
            {"type":"video","payload":{"url":"https:\/\/x\/caf\u00e9.mp4"}}]}}]}]}"#;
        let batch = parse_unverified(body).unwrap();
        let EventKind::Message(m) = &batch.events().next().unwrap().kind else {
            panic!()
        };
        let infos: Vec<AttachmentInfo<'_>> =
            m.attachments.iter().map(AttachmentInfo::from).collect();
        assert_eq!(infos[0].name, Some("invoice.pdf"));
        assert_eq!(infos[0].platform_kind, Some("file"));
        assert_eq!(infos[1].name, Some("4421_n.jpg"));
        assert_eq!(infos[2].name, None);
        assert_eq!(
            infos[3].name, None,
            "escaped name is not borrowed half-decoded"
        );
        let policy = AttachmentPolicy::default();
        let verdicts = policy.check_all(Direction::Inbound, &infos);
        assert!(verdicts[0].is_allowed() && verdicts[0].needs_size_check());
        assert_eq!(verdicts[2].first().unwrap().code(), "unsupported_type");
        assert_eq!(verdicts.len(), 4);
    }
}
