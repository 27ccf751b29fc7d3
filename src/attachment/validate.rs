//! Checking one attachment, or all of a message's, against the policy.

use std::fmt;

use super::name::{
    FALLBACK_NAME, extension, has_deceptive_characters, inner_extensions, sanitize_file_name,
};
use super::policy::{AttachmentPolicy, Direction, DirectionPolicy};
use super::sniff::markup;
use crate::texts::{Catalogue, Language, Text, TextId};

/// What the Omnichannel agent panel shows when a customer's attachment is refused.
pub const UNSUPPORTED_INBOUND_NOTICE: &str = "Error: Customer sent an unsupported message type";

/// What is known about an attachment when it is checked.
///
/// Every field is optional: Messenger often hides the real name (or gives a random number),
/// declares no MIME type, and the size is known only after download. Check again once more is
/// known; [`Verdict::needs_size_check`] says when that matters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachmentInfo<'a> {
    /// The file name as given.
    pub name: Option<&'a str>,
    /// The declared MIME type (`Content-Type`, or the agent's browser).
    pub mime: Option<&'a str>,
    /// The size in bytes, when known.
    pub size: Option<u64>,
    /// The first bytes of the content (a few KB are enough), when available.
    pub head: Option<&'a [u8]>,
    /// The platform's kind for it (`image`, `file`, `fallback`, …), for webhook attachments.
    pub platform_kind: Option<&'a str>,
}

impl<'a> AttachmentInfo<'a> {
    /// Nothing known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the file name.
    #[must_use]
    pub fn name(mut self, name: &'a str) -> Self {
        self.name = Some(name);
        self
    }

    /// Sets the declared MIME type.
    #[must_use]
    pub fn mime(mut self, mime: &'a str) -> Self {
        self.mime = Some(mime);
        self
    }

    /// Sets the size in bytes.
    #[must_use]
    pub fn size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    /// Sets the first bytes of the content.
    #[must_use]
    pub fn head(mut self, head: &'a [u8]) -> Self {
        self.head = Some(head);
        self
    }

    /// Sets the platform's kind.
    #[must_use]
    pub fn platform_kind(mut self, kind: &'a str) -> Self {
        self.platform_kind = Some(kind);
        self
    }
}

/// A rule an attachment breaks.
///
/// `code()` is stable (snake case, for programs and logs); `Display` is a sentence an agent
/// panel can show as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Violation {
    /// Attachments are turned off in this direction.
    DirectionDisabled {
        /// The direction.
        direction: Direction,
    },
    /// The platform kind is not a file (a share, a location, a template…).
    UnsupportedType {
        /// The platform's kind.
        kind: String,
    },
    /// The file is larger than allowed.
    TooLarge {
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        max: u64,
    },
    /// The extension is blocked.
    ExtensionBlocked {
        /// The extension, lower case, no dot.
        extension: String,
    },
    /// The extension is not in the allowed list (or the file has none).
    ExtensionNotAllowed {
        /// The extension, if there is one.
        extension: Option<String>,
        /// The allowed extensions.
        allowed: Vec<String>,
    },
    /// The MIME type is not allowed (or was not declared where the policy requires one).
    MimeNotAllowed {
        /// The declared type, if any.
        mime: Option<String>,
    },
    /// The name hides what the file is: bidirectional overrides or invisible characters, or a
    /// blocked extension before the last one (`invoice.exe.pdf`).
    DeceptiveName {
        /// Why the name is deceptive.
        reason: &'static str,
    },
    /// The content is of a blocked type, whatever its name says (an `.exe` renamed `.jpg`).
    ContentBlocked {
        /// The type found in the content.
        detected: String,
        /// Its usual extension.
        extension: String,
    },
    /// The content contradicts the name or declared type.
    ContentMismatch {
        /// What the name or declared type says.
        claimed: String,
        /// What the content is.
        detected: String,
    },
}

impl Violation {
    /// A stable machine code: `direction_disabled`, `unsupported_type`, `too_large`,
    /// `extension_blocked`, `extension_not_allowed`, `mime_not_allowed`, `deceptive_name`,
    /// `content_blocked`, `content_mismatch`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::DirectionDisabled { .. } => "direction_disabled",
            Self::UnsupportedType { .. } => "unsupported_type",
            Self::TooLarge { .. } => "too_large",
            Self::ExtensionBlocked { .. } => "extension_blocked",
            Self::ExtensionNotAllowed { .. } => "extension_not_allowed",
            Self::MimeNotAllowed { .. } => "mime_not_allowed",
            Self::DeceptiveName { .. } => "deceptive_name",
            Self::ContentBlocked { .. } => "content_blocked",
            Self::ContentMismatch { .. } => "content_mismatch",
        }
    }
}

impl Violation {
    /// The sentence, with its facts, for a [`crate::texts::Catalogue`]. Rendered in English
    /// it is this violation's `Display`.
    pub fn to_text(&self) -> Text {
        match self {
            Self::DirectionDisabled {
                direction: Direction::Inbound,
            } => Text::new(TextId::AttachmentsOffInbound),
            Self::DirectionDisabled {
                direction: Direction::Outbound,
            } => Text::new(TextId::AttachmentsOffOutbound),
            Self::UnsupportedType { kind } => Text::new(TextId::UnsupportedKind).arg("kind", kind),
            Self::TooLarge { size, max } => Text::new(TextId::TooLarge)
                .arg("size", human_size(*size))
                .arg("max", human_size(*max)),
            Self::ExtensionBlocked { extension } => {
                Text::new(TextId::ExtensionBlocked).arg("extension", extension)
            }
            Self::ExtensionNotAllowed { extension, allowed } => {
                let list = allowed
                    .iter()
                    .map(|e| format!(".{e}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                match extension {
                    Some(ext) => Text::new(TextId::ExtensionNotAllowed)
                        .arg("extension", ext)
                        .arg("allowed", list),
                    None => Text::new(TextId::NoExtensionNotAllowed).arg("allowed", list),
                }
            }
            Self::MimeNotAllowed { mime: Some(mime) } => {
                Text::new(TextId::MimeNotAllowed).arg("mime", mime)
            }
            Self::MimeNotAllowed { mime: None } => Text::new(TextId::MimeUnknown),
            Self::DeceptiveName { reason } => Text::recognise(&self.to_string())
                .filter(|t| t.id() != TextId::DeceptiveName)
                .unwrap_or_else(|| Text::new(TextId::DeceptiveName).arg("reason", *reason)),
            Self::ContentBlocked {
                detected,
                extension,
            } => Text::new(TextId::ContentBlocked)
                .arg("detected", detected)
                .arg("extension", extension),
            Self::ContentMismatch { claimed, detected } => Text::new(TextId::ContentMismatch)
                .arg("claimed", claimed)
                .arg("detected", detected),
        }
    }

    /// What an agent reads, in `language` (the built-in catalogue; English is `Display`).
    pub fn text(&self, language: &Language) -> String {
        Catalogue::builtin().render(&self.to_text(), language)
    }
}

/// `5 MB`, `7.2 MB`, `800 KB`, `12 bytes`.
fn human_size(bytes: u64) -> String {
    const KB: u128 = 1024;
    const MB: u128 = 1024 * 1024;
    let b = u128::from(bytes);
    if b >= MB {
        let tenths = (b * 10 + MB / 2) / MB;
        if tenths % 10 == 0 {
            format!("{} MB", tenths / 10)
        } else {
            format!("{}.{} MB", tenths / 10, tenths % 10)
        }
    } else if b >= KB {
        format!("{} KB", (b + KB / 2) / KB)
    } else if b == 1 {
        "1 byte".to_owned()
    } else {
        format!("{b} bytes")
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DirectionDisabled {
                direction: Direction::Inbound,
            } => f.write_str("File attachments from customers are turned off for this channel."),
            Self::DirectionDisabled {
                direction: Direction::Outbound,
            } => {
                f.write_str("Sending file attachments to customers is turned off for this channel.")
            }
            Self::UnsupportedType { kind } => {
                write!(
                    f,
                    "This kind of message ({kind}) is not supported as an attachment."
                )
            }
            Self::TooLarge { size, max } => write!(
                f,
                "The file is {}; the largest file allowed is {}.",
                human_size(*size),
                human_size(*max)
            ),
            Self::ExtensionBlocked { extension } => {
                write!(f, "Files of type .{extension} are blocked.")
            }
            Self::ExtensionNotAllowed { extension, allowed } => {
                let list = allowed
                    .iter()
                    .map(|e| format!(".{e}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                match extension {
                    Some(ext) => write!(
                        f,
                        "Files of type .{ext} can't be sent. Allowed types: {list}."
                    ),
                    None => write!(
                        f,
                        "Files without a type can't be sent. Allowed types: {list}."
                    ),
                }
            }
            Self::MimeNotAllowed { mime: Some(mime) } => {
                write!(f, "Files of type {mime} are not allowed.")
            }
            Self::MimeNotAllowed { mime: None } => {
                f.write_str("The file's type is unknown, and only some types are allowed.")
            }
            Self::DeceptiveName { reason } => write!(f, "The file name is misleading: {reason}."),
            Self::ContentBlocked {
                detected,
                extension,
            } => write!(
                f,
                "The file's content is of a blocked type ({detected}, .{extension}), whatever its name says."
            ),
            Self::ContentMismatch { claimed, detected } => write!(
                f,
                "The file's content ({detected}) does not match its name or type ({claimed})."
            ),
        }
    }
}

/// A file the attachment policy refused, as the transcript keeps it
/// ([`crate::conversation::FileLine::rejected`]): the rule's stable code, and the sentence an
/// agent panel shows.
///
/// Serialised as `{"code": …, "message": …}`; the `["code", "message"]` pair that transcripts
/// held before is read too.
///
/// ```
/// use messenger_channel::attachment::{Rejection, Violation};
///
/// let v = Violation::ExtensionBlocked { extension: "exe".into() };
/// let r = Rejection::from(&v);
/// assert_eq!(r.code, "extension_blocked");
/// assert_eq!(r.message, "Files of type .exe are blocked.");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(from = "RejectionRepr")]
#[non_exhaustive]
pub struct Rejection {
    /// The broken rule's stable machine code ([`Violation::code`]: `too_large`,
    /// `extension_blocked`…), for programs and logs.
    pub code: String,
    /// What an agent reads ([`Violation`]'s `Display`): "Files of type .exe are blocked."
    pub message: String,
}

impl Rejection {
    /// A refusal with a code and the words to show.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<&Violation> for Rejection {
    fn from(v: &Violation) -> Self {
        Self::new(v.code(), v.to_string())
    }
}

impl Rejection {
    /// What an agent reads, in `language`: the stored English sentence, translated when it is
    /// one of the crate's ([`crate::texts::Catalogue::translate`]).
    pub fn text(&self, language: &Language) -> String {
        Catalogue::builtin().translate(&self.message, language)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The forms a [`Rejection`] is read from: the fields, or the pair earlier versions stored.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum RejectionRepr {
    Fields { code: String, message: String },
    Pair(String, String),
}

impl From<RejectionRepr> for Rejection {
    fn from(r: RejectionRepr) -> Self {
        match r {
            RejectionRepr::Fields { code, message } | RejectionRepr::Pair(code, message) => {
                Self { code, message }
            }
        }
    }
}

/// The outcome of checking one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    direction: Direction,
    safe_name: String,
    violations: Vec<Violation>,
    size_unknown: bool,
}

impl Verdict {
    /// Whether the attachment passes every rule checked.
    pub fn is_allowed(&self) -> bool {
        self.violations.is_empty()
    }

    /// Every rule it breaks, most serious first.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// The most serious violation.
    pub fn first(&self) -> Option<&Violation> {
        self.violations.first()
    }

    /// A name safe to show and store (see [`super::sanitize_file_name`]); when Messenger gave no
    /// name or a random number without an extension, one is made from the declared type.
    pub fn safe_name(&self) -> &str {
        &self.safe_name
    }

    /// Whether the size was unknown: check again once it is (after download).
    pub fn needs_size_check(&self) -> bool {
        self.size_unknown
    }

    /// For a refused inbound attachment, the notice the agent panel shows in its place:
    /// [`UNSUPPORTED_INBOUND_NOTICE`].
    pub fn agent_notice(&self) -> Option<&'static str> {
        (self.direction == Direction::Inbound && !self.is_allowed())
            .then_some(UNSUPPORTED_INBOUND_NOTICE)
    }
}

/// Platform kinds that carry a file.
const FILE_KINDS: [&str; 5] = ["image", "video", "audio", "file", "sticker"];

impl DirectionPolicy {
    /// Checks one attachment against these rules. Pure: no I/O, no clock.
    pub fn check(&self, direction: Direction, info: &AttachmentInfo<'_>) -> Verdict {
        let declared = info.mime.and_then(|m| m.trim().parse::<mime::Mime>().ok());
        let mut verdict = Verdict {
            direction,
            safe_name: display_name(info.name, declared.as_ref()),
            violations: Vec::new(),
            size_unknown: info.size.is_none(),
        };
        let violations = &mut verdict.violations;
        if !self.enabled {
            violations.push(Violation::DirectionDisabled { direction });
            return verdict;
        }
        if let Some(kind) = info.platform_kind.filter(|k| !FILE_KINDS.contains(k)) {
            violations.push(Violation::UnsupportedType {
                kind: kind.to_owned(),
            });
            return verdict;
        }
        // The extension that decides: the name's, else one implied by the declared type.
        let named = info.name.map(sanitize_file_name);
        let name_ext = named.as_deref().and_then(extension);
        let ext = name_ext
            .clone()
            .or_else(|| declared.as_ref().and_then(extension_for_mime));

        self.check_name(info.name, named.as_deref(), ext.as_deref(), violations);
        self.check_extension(ext, violations);
        if let Some(patterns) = &self.allowed_mime_types {
            if !declared
                .as_ref()
                .is_some_and(|m| patterns.iter().any(|p| p.matches(m)))
            {
                violations.push(Violation::MimeNotAllowed {
                    mime: info.mime.map(|m| m.trim().chars().take(100).collect()),
                });
            }
        }
        if self.check_content {
            if let Some(found) = info.head.and_then(Found::in_head) {
                let claimed = claimed_type(name_ext.as_deref(), declared.as_ref());
                self.check_content(found, name_ext.as_deref(), claimed, violations);
            }
        }
        if let Some(size) = info.size.filter(|&size| size > self.max_bytes) {
            violations.push(Violation::TooLarge {
                size,
                max: self.max_bytes,
            });
        }
        verdict
    }

    /// Bidirectional tricks, and a blocked extension hidden before an innocent one.
    fn check_name(
        &self,
        raw: Option<&str>,
        named: Option<&str>,
        ext: Option<&str>,
        violations: &mut Vec<Violation>,
    ) {
        if raw.is_some_and(has_deceptive_characters) {
            violations.push(Violation::DeceptiveName {
                reason: "it holds characters that reorder or hide text",
            });
        }
        let hidden = named
            .into_iter()
            .flat_map(inner_extensions)
            .find(|e| self.blocked_extensions.contains(e));
        let last_is_innocent = ext.is_some_and(|e| !self.blocked_extensions.contains(e));
        if let (Some(hidden), true) = (hidden, last_is_innocent) {
            violations.push(Violation::DeceptiveName {
                reason: if hidden == "exe" {
                    "it hides an .exe extension before the last one"
                } else {
                    "it hides a blocked extension before the last one"
                },
            });
        }
    }

    fn check_extension(&self, ext: Option<String>, violations: &mut Vec<Violation>) {
        if let Some(e) = ext
            .as_ref()
            .filter(|e| self.blocked_extensions.contains(*e))
        {
            violations.push(Violation::ExtensionBlocked {
                extension: e.clone(),
            });
        } else if let Some(allowed) = &self.allowed_extensions {
            if !ext.as_ref().is_some_and(|e| allowed.contains(e)) {
                violations.push(Violation::ExtensionNotAllowed {
                    extension: ext,
                    allowed: allowed.iter().cloned().collect(),
                });
            }
        }
    }

    /// Content of a blocked or executable type, or content that contradicts its claim.
    fn check_content(
        &self,
        found: Found,
        name_ext: Option<&str>,
        claimed: Option<mime::Mime>,
        violations: &mut Vec<Violation>,
    ) {
        if self.blocked_extensions.contains(found.extension)
            || (found.executable && name_ext != Some(found.extension))
        {
            violations.push(Violation::ContentBlocked {
                detected: found.mime.to_owned(),
                extension: found.extension.to_owned(),
            });
        } else if let Some(claimed) = claimed.filter(|c| !compatible(c, found.mime, found.active)) {
            violations.push(Violation::ContentMismatch {
                claimed: claimed.essence_str().to_owned(),
                detected: found.mime.to_owned(),
            });
        }
    }
}

impl AttachmentPolicy {
    /// Checks one attachment.
    pub fn check(&self, direction: Direction, info: &AttachmentInfo<'_>) -> Verdict {
        let verdict = self.direction(direction).check(direction, info);
        if let Some(v) = verdict.first() {
            tracing::debug!(%direction, code = v.code(), name = %verdict.safe_name, "attachment refused");
        }
        verdict
    }

    /// Checks every attachment of a message: one verdict each, in order, not only the first
    /// failure.
    pub fn check_all(&self, direction: Direction, infos: &[AttachmentInfo<'_>]) -> Vec<Verdict> {
        infos
            .iter()
            .map(|info| self.check(direction, info))
            .collect()
    }
}

/// The extension usually used for a MIME type (`image/jpeg` → `jpg`).
fn extension_for_mime(m: &mime::Mime) -> Option<String> {
    let preferred = match m.essence_str() {
        "image/jpeg" => Some("jpg"),
        "text/plain" => Some("txt"),
        "audio/mpeg" => Some("mp3"),
        "video/mp4" => Some("mp4"),
        "application/octet-stream" => None,
        _ => {
            return mime_guess::get_mime_extensions(m)
                .and_then(|e| e.first())
                .map(|e| (*e).to_owned());
        }
    };
    preferred.map(str::to_owned)
}

/// The type the name (first) or the declared MIME type claims.
fn claimed_type(name_ext: Option<&str>, declared: Option<&mime::Mime>) -> Option<mime::Mime> {
    name_ext
        .and_then(|e| mime_guess::from_ext(e).first())
        .or_else(|| {
            declared
                .filter(|m| *m != &mime::APPLICATION_OCTET_STREAM)
                .cloned()
        })
}

/// What a file's first bytes are.
#[derive(Debug, Clone, Copy)]
struct Found {
    mime: &'static str,
    extension: &'static str,
    /// A program (an executable, a script).
    executable: bool,
    /// Content a browser runs scripts in (SVG, HTML, XML): it matches only its own type.
    active: bool,
}

impl Found {
    /// Markup and scripts first (`infer` knows no SVG), then `infer`'s magic numbers.
    fn in_head(head: &[u8]) -> Option<Self> {
        if let Some(m) = markup(head) {
            return Some(Self {
                mime: m.mime,
                extension: m.extension,
                executable: m.mime == "text/x-shellscript",
                active: true,
            });
        }
        infer::get(head).map(|t| Self {
            mime: t.mime_type(),
            extension: t.extension(),
            executable: t.matcher_type() == infer::MatcherType::App,
            active: t.matcher_type() == infer::MatcherType::Text,
        })
    }
}

/// Whether content of type `detected` may honestly be called `claimed`. Active content (SVG,
/// HTML, XML) may only be called what it is: an SVG is an image a browser runs scripts in.
fn compatible(claimed: &mime::Mime, detected: &str, active: bool) -> bool {
    let Ok(found) = detected.parse::<mime::Mime>() else {
        return true;
    };
    if claimed.essence_str() == found.essence_str() {
        return true;
    }
    if active {
        return false;
    }
    let (c, d) = (claimed.type_(), found.type_());
    // A PNG called .jpg is mislabelled, not dangerous.
    let both_images = c == mime::IMAGE && d == mime::IMAGE;
    // Audio and video share containers (MP4, Ogg, WebM).
    let audio_or_video = |t: mime::Name<'_>| t == mime::AUDIO || t == mime::VIDEO;
    let both_media = audio_or_video(c) && audio_or_video(d);
    // Office Open XML, OpenDocument and EPUB files are ZIP archives.
    let zip_based = found.essence_str() == "application/zip"
        && (claimed.subtype().as_str().contains("openxmlformats")
            || claimed
                .subtype()
                .as_str()
                .starts_with("vnd.oasis.opendocument")
            || claimed.essence_str() == "application/epub+zip"
            || claimed.essence_str() == "application/java-archive");
    both_images || both_media || zip_based
}

/// The name to show: the sanitised name, given an extension from the declared type when it
/// has none; `attachment.<ext>` when there is no name.
fn display_name(name: Option<&str>, declared: Option<&mime::Mime>) -> String {
    let implied = declared.and_then(extension_for_mime);
    match name.map(sanitize_file_name) {
        Some(n) if n != FALLBACK_NAME && (extension(&n).is_some() || implied.is_none()) => n,
        Some(n) if n != FALLBACK_NAME => {
            let ext = implied.unwrap_or_default();
            sanitize_file_name(&format!("{n}.{ext}"))
        }
        _ => match implied {
            Some(ext) => format!("{FALLBACK_NAME}.{ext}"),
            None => FALLBACK_NAME.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn english_text_is_display_and_spanish_differs() {
        use crate::texts::Language;
        let all = [
            Violation::DirectionDisabled {
                direction: Direction::Inbound,
            },
            Violation::DirectionDisabled {
                direction: Direction::Outbound,
            },
            Violation::UnsupportedType {
                kind: "template".into(),
            },
            Violation::TooLarge {
                size: 30 * 1024 * 1024,
                max: 25 * 1024 * 1024,
            },
            Violation::ExtensionBlocked {
                extension: "exe".into(),
            },
            Violation::ExtensionNotAllowed {
                extension: Some("zip".into()),
                allowed: vec!["pdf".into(), "png".into()],
            },
            Violation::ExtensionNotAllowed {
                extension: None,
                allowed: vec!["pdf".into()],
            },
            Violation::MimeNotAllowed {
                mime: Some("text/html".into()),
            },
            Violation::MimeNotAllowed { mime: None },
            Violation::DeceptiveName {
                reason: "it holds characters that reorder or hide text",
            },
            Violation::DeceptiveName {
                reason: "it hides an .exe extension before the last one",
            },
            Violation::DeceptiveName {
                reason: "it hides a blocked extension before the last one",
            },
            Violation::DeceptiveName {
                reason: "something else",
            },
            Violation::ContentBlocked {
                detected: "application/x-msdownload".into(),
                extension: "exe".into(),
            },
            Violation::ContentMismatch {
                claimed: "image/png".into(),
                detected: "image/svg+xml".into(),
            },
        ];
        for v in &all {
            assert_eq!(v.text(&Language::ENGLISH), v.to_string(), "{v:?}");
            assert_ne!(v.text(&Language::SPANISH), v.to_string(), "{v:?}");
            let r = Rejection::from(v);
            assert_eq!(r.text(&Language::ENGLISH), r.message);
            assert_eq!(
                r.text(&Language::SPANISH),
                v.text(&Language::SPANISH),
                "{v:?}"
            );
        }
    }

    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(5 * 1024 * 1024), "5 MB");
        assert_eq!(human_size(7_549_747), "7.2 MB");
        assert_eq!(human_size(800 * 1024), "800 KB");
        assert_eq!(human_size(12), "12 bytes");
        assert_eq!(human_size(1), "1 byte");
        assert_eq!(human_size(u64::MAX), "17592186044416 MB");
    }

    #[test]
    fn display_names() {
        let jpeg: mime::Mime = "image/jpeg".parse().unwrap();
        assert_eq!(
            display_name(Some("1234567890123"), Some(&jpeg)),
            "1234567890123.jpg"
        );
        assert_eq!(display_name(None, Some(&jpeg)), "attachment.jpg");
        assert_eq!(display_name(None, None), "attachment");
        assert_eq!(display_name(Some("photo.png"), Some(&jpeg)), "photo.png");
        assert_eq!(display_name(Some("...."), None), "attachment");
    }

    #[test]
    fn compatibility() {
        let m = |s: &str| s.parse::<mime::Mime>().unwrap();
        assert!(compatible(&m("image/jpeg"), "image/png", false));
        assert!(compatible(&m("audio/mp4"), "video/mp4", false));
        assert!(compatible(
            &m("application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            "application/zip",
            false
        ));
        assert!(!compatible(&m("image/jpeg"), "application/pdf", false));
        assert!(!compatible(&m("application/pdf"), "application/zip", false));
        assert!(!compatible(&m("text/plain"), "image/png", false));
        assert!(!compatible(&m("image/png"), "video/mp4", false));
        // Active content matches only its own type, not even another image.
        assert!(!compatible(&m("image/png"), "image/svg+xml", true));
        assert!(compatible(&m("image/svg+xml"), "image/svg+xml", true));
        assert!(!compatible(&m("text/plain"), "text/html", true));
    }

    #[test]
    fn a_rejection_is_written_with_its_fields_and_read_in_either_form() {
        let r = Rejection::new(
            "too_large",
            "The file is 6 MB; the largest file allowed is 5 MB.",
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code": "too_large", "message": "The file is 6 MB; the largest file allowed is 5 MB."})
        );
        assert_eq!(serde_json::from_value::<Rejection>(json).unwrap(), r);
        // Transcripts written before kept the pair.
        let old = serde_json::json!([
            "too_large",
            "The file is 6 MB; the largest file allowed is 5 MB."
        ]);
        assert_eq!(serde_json::from_value::<Rejection>(old).unwrap(), r);
        assert!(serde_json::from_value::<Rejection>(serde_json::json!({"code": "x"})).is_err());
    }
}
