//! The administrator's attachment policy, per direction, and its configuration format.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Default largest file, as in Omnichannel when nothing is configured: 5 MB (5,120 KB).
pub const DEFAULT_MAX_BYTES: u64 = 5 * 1024 * 1024;

/// The size Omnichannel recommends for the Facebook channel: 25 MB (25,600 KB), Messenger's limit.
pub const RECOMMENDED_MESSENGER_MAX_BYTES: u64 = 25 * 1024 * 1024;

/// Messenger's ceiling for one file (25 MB). A policy may not allow more: such files could not
/// cross the platform anyway.
pub const PLATFORM_MAX_BYTES: u64 = RECOMMENDED_MESSENGER_MAX_BYTES;

/// The extensions Dynamics 365 blocks by default (System Settings → "Set blocked file
/// extensions for attachments", `organization.blockedattachments`). Microsoft's documentation
/// calls it a 96-extension list; the published value holds these 97 distinct entries, all kept.
pub const DEFAULT_BLOCKED_EXTENSIONS: [&str; 97] = [
    "ade", "adp", "app", "asa", "ashx", "asmx", "asp", "bas", "bat", "cdx", "cer", "chm", "class",
    "cmd", "com", "config", "cpl", "crt", "csh", "dll", "exe", "fxp", "hlp", "hta", "htr", "htw",
    "ida", "idc", "idq", "inf", "ins", "isp", "its", "jar", "js", "jse", "ksh", "lnk", "mad",
    "maf", "mag", "mam", "maq", "mar", "mas", "mat", "mau", "mav", "maw", "mda", "mdb", "mde",
    "mdt", "mdw", "mdz", "msc", "msh", "msh1", "msh1xml", "msh2", "msh2xml", "mshxml", "msi",
    "msp", "mst", "ops", "pcd", "pif", "prf", "prg", "printer", "pst", "reg", "rem", "scf", "scr",
    "sct", "shb", "shs", "shtm", "shtml", "soap", "stm", "tmp", "url", "vb", "vbe", "vbs",
    "vsmacros", "vss", "vst", "vsw", "ws", "wsc", "wsf", "wsh", "svg",
];

/// The extensions Omnichannel lets agents send on the Facebook channel.
pub const DEFAULT_OUTBOUND_EXTENSIONS: [&str; 14] = [
    "jpg", "jpeg", "png", "mp3", "oga", "ogg", "amr", "mp4", "pdf", "docx", "txt", "gif", "xlsx",
    "xls",
];

/// Who sends the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the customer to the agent.
    Inbound,
    /// From an agent to the customer.
    Outbound,
}

impl Direction {
    /// `inbound` or `outbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Direction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "inbound" => Ok(Self::Inbound),
            "outbound" => Ok(Self::Outbound),
            other => Err(format!(
                "`{other}` is not a direction: use inbound or outbound"
            )),
        }
    }
}

/// A MIME type pattern: `image/png`, `image/*` or `*/*`. Parameters are not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MimePattern(mime::Mime);

impl MimePattern {
    /// Whether `mime` (its type and subtype; parameters are ignored) matches the pattern.
    pub fn matches(&self, mime: &mime::Mime) -> bool {
        let p = &self.0;
        (p.type_() == mime::STAR || p.type_() == mime.type_())
            && (p.subtype() == mime::STAR || p.subtype() == mime.subtype())
    }
}

impl FromStr for MimePattern {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let m: mime::Mime = s
            .trim()
            .parse()
            .map_err(|_| "not a MIME type of the form type/subtype")?;
        if m.params().next().is_some() {
            return Err("parameters are not allowed in a MIME pattern");
        }
        if m.type_() == mime::STAR && m.subtype() != mime::STAR {
            return Err("a wildcard type needs a wildcard subtype (`*/*`)");
        }
        Ok(Self(m))
    }
}

impl fmt::Display for MimePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.essence_str())
    }
}

/// The rules for one direction. Build it from [`DirectionConfig`] (validated) or take a
/// default from [`DirectionPolicy::default_for`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectionPolicy {
    pub(crate) enabled: bool,
    pub(crate) max_bytes: u64,
    /// `None`: every extension not blocked is allowed.
    pub(crate) allowed_extensions: Option<BTreeSet<String>>,
    pub(crate) blocked_extensions: BTreeSet<String>,
    /// `None`: every MIME type is allowed.
    pub(crate) allowed_mime_types: Option<Vec<MimePattern>>,
    pub(crate) check_content: bool,
}

impl DirectionPolicy {
    /// Omnichannel's defaults: enabled, 5 MB, the default blocked extensions, content checked; for
    /// outbound also the list of extensions agents may send.
    pub fn default_for(direction: Direction) -> Self {
        Self {
            enabled: true,
            max_bytes: DEFAULT_MAX_BYTES,
            allowed_extensions: match direction {
                Direction::Inbound => None,
                Direction::Outbound => Some(
                    DEFAULT_OUTBOUND_EXTENSIONS
                        .iter()
                        .map(|&e| e.to_owned())
                        .collect(),
                ),
            },
            blocked_extensions: DEFAULT_BLOCKED_EXTENSIONS
                .iter()
                .map(|&e| e.to_owned())
                .collect(),
            allowed_mime_types: None,
            check_content: true,
        }
    }

    /// Whether files may be sent in this direction at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The largest file, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The allowed extensions (lower case, no dot), or `None` when any unblocked one is.
    pub fn allowed_extensions(&self) -> Option<&BTreeSet<String>> {
        self.allowed_extensions.as_ref()
    }

    /// The blocked extensions (lower case, no dot).
    pub fn blocked_extensions(&self) -> &BTreeSet<String> {
        &self.blocked_extensions
    }

    /// The allowed MIME patterns, or `None` when any type is.
    pub fn allowed_mime_types(&self) -> Option<&[MimePattern]> {
        self.allowed_mime_types.as_deref()
    }

    /// Whether the first bytes of a file are checked against its name and type.
    pub fn checks_content(&self) -> bool {
        self.check_content
    }

    fn to_config(&self) -> DirectionConfig {
        DirectionConfig {
            enabled: Some(self.enabled),
            max_bytes: Some(self.max_bytes),
            allowed_extensions: Some(
                self.allowed_extensions
                    .as_ref()
                    .map_or_else(|| vec!["*".to_owned()], |s| s.iter().cloned().collect()),
            ),
            blocked_extensions: Some(self.blocked_extensions.iter().cloned().collect()),
            allowed_mime_types: Some(self.allowed_mime_types.as_ref().map_or_else(
                || vec!["*/*".to_owned()],
                |v| v.iter().map(ToString::to_string).collect(),
            )),
            check_content: Some(self.check_content),
        }
    }

    fn from_config(
        direction: Direction,
        config: DirectionConfig,
    ) -> Result<Self, PolicyConfigError> {
        let defaults = Self::default_for(direction);
        let field = |name: &str| format!("{direction}.{name}");
        let max_bytes = config.max_bytes.unwrap_or(defaults.max_bytes);
        if max_bytes == 0 {
            return Err(PolicyConfigError {
                field: field("max_bytes"),
                problem: ConfigProblem::ZeroSize,
            });
        }
        if max_bytes > PLATFORM_MAX_BYTES {
            return Err(PolicyConfigError {
                field: field("max_bytes"),
                problem: ConfigProblem::AboveCeiling {
                    max_bytes,
                    ceiling: PLATFORM_MAX_BYTES,
                },
            });
        }
        let allowed_extensions = match config.allowed_extensions {
            None => defaults.allowed_extensions,
            Some(list) if list.iter().any(|e| e.trim() == "*") => {
                if list.len() > 1 {
                    return Err(PolicyConfigError {
                        field: field("allowed_extensions"),
                        problem: ConfigProblem::WildcardWithOthers,
                    });
                }
                None
            }
            Some(list) if list.is_empty() => {
                return Err(PolicyConfigError {
                    field: field("allowed_extensions"),
                    problem: ConfigProblem::EmptyAllowList,
                });
            }
            Some(list) => Some(normalize_extensions(&list, &field("allowed_extensions"))?),
        };
        let blocked_extensions = match config.blocked_extensions {
            None => defaults.blocked_extensions,
            Some(list) => normalize_extensions(&list, &field("blocked_extensions"))?,
        };
        if let Some(allowed) = &allowed_extensions {
            if let Some(both) = allowed.intersection(&blocked_extensions).next() {
                return Err(PolicyConfigError {
                    field: field("allowed_extensions"),
                    problem: ConfigProblem::AllowedAndBlocked {
                        extension: both.clone(),
                    },
                });
            }
        }
        let allowed_mime_types = match config.allowed_mime_types {
            None => defaults.allowed_mime_types,
            Some(list) if list.is_empty() => {
                return Err(PolicyConfigError {
                    field: field("allowed_mime_types"),
                    problem: ConfigProblem::EmptyAllowList,
                });
            }
            Some(list) => {
                let mut patterns = Vec::with_capacity(list.len());
                for (i, text) in list.iter().enumerate() {
                    let pattern: MimePattern = text.parse().map_err(|why| PolicyConfigError {
                        field: format!("{direction}.allowed_mime_types[{i}]"),
                        problem: ConfigProblem::BadMimePattern {
                            value: text.clone(),
                            why,
                        },
                    })?;
                    patterns.push(pattern);
                }
                if patterns.iter().any(|p| p.0 == mime::STAR_STAR) {
                    None
                } else {
                    Some(patterns)
                }
            }
        };
        Ok(Self {
            enabled: config.enabled.unwrap_or(defaults.enabled),
            max_bytes,
            allowed_extensions,
            blocked_extensions,
            allowed_mime_types,
            check_content: config.check_content.unwrap_or(defaults.check_content),
        })
    }
}

fn normalize_extensions(
    list: &[String],
    field: &str,
) -> Result<BTreeSet<String>, PolicyConfigError> {
    let mut set = BTreeSet::new();
    for (i, raw) in list.iter().enumerate() {
        let ext = raw.trim().trim_start_matches('.').to_lowercase();
        let valid = !ext.is_empty()
            && ext.len() <= 32
            && ext
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
            && !ext.ends_with('.');
        if !valid {
            return Err(PolicyConfigError {
                field: format!("{field}[{i}]"),
                problem: ConfigProblem::BadExtension { value: raw.clone() },
            });
        }
        set.insert(ext);
    }
    Ok(set)
}

/// The attachment policy for both directions.
///
/// Load it from the administrator's file with any serde format; it is validated while loading:
///
/// ```
/// use messenger_channel::attachment::{AttachmentInfo, AttachmentPolicy, Direction};
///
/// let policy: AttachmentPolicy = toml::from_str(r#"
///     [inbound]
///     max_bytes = 26214400              # 25 MB, Messenger's limit
///
///     [outbound]
///     allowed_extensions = ["pdf", ".PNG", "jpg"]
/// "#)?;
///
/// let verdict = policy.check(Direction::Outbound, &AttachmentInfo::new().name("quote.docx").size(1_000));
/// assert_eq!(verdict.violations()[0].code(), "extension_not_allowed");
/// assert!(policy.check(Direction::Outbound, &AttachmentInfo::new().name("Scan.png").size(1_000)).is_allowed());
/// # Ok::<(), toml::de::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PolicyConfig", into = "PolicyConfig")]
pub struct AttachmentPolicy {
    inbound: DirectionPolicy,
    outbound: DirectionPolicy,
}

impl Default for AttachmentPolicy {
    /// Omnichannel's defaults for both directions (see [`DirectionPolicy::default_for`]).
    fn default() -> Self {
        Self {
            inbound: DirectionPolicy::default_for(Direction::Inbound),
            outbound: DirectionPolicy::default_for(Direction::Outbound),
        }
    }
}

impl AttachmentPolicy {
    /// Validates a configuration.
    ///
    /// # Errors
    /// A [`PolicyConfigError`] naming the offending field.
    pub fn from_config(config: PolicyConfig) -> Result<Self, PolicyConfigError> {
        Ok(Self {
            inbound: DirectionPolicy::from_config(
                Direction::Inbound,
                config.inbound.unwrap_or_default(),
            )?,
            outbound: DirectionPolicy::from_config(
                Direction::Outbound,
                config.outbound.unwrap_or_default(),
            )?,
        })
    }

    /// The rules for one direction.
    pub fn direction(&self, direction: Direction) -> &DirectionPolicy {
        match direction {
            Direction::Inbound => &self.inbound,
            Direction::Outbound => &self.outbound,
        }
    }

    /// Replaces the rules for one direction.
    #[must_use]
    pub fn with_direction(mut self, direction: Direction, policy: DirectionPolicy) -> Self {
        match direction {
            Direction::Inbound => self.inbound = policy,
            Direction::Outbound => self.outbound = policy,
        }
        self
    }

    /// The policy as an explicit configuration (every field set), for saving.
    pub fn to_config(&self) -> PolicyConfig {
        PolicyConfig {
            inbound: Some(self.inbound.to_config()),
            outbound: Some(self.outbound.to_config()),
        }
    }
}

impl TryFrom<PolicyConfig> for AttachmentPolicy {
    type Error = PolicyConfigError;

    fn try_from(config: PolicyConfig) -> Result<Self, Self::Error> {
        Self::from_config(config)
    }
}

impl From<AttachmentPolicy> for PolicyConfig {
    fn from(policy: AttachmentPolicy) -> Self {
        policy.to_config()
    }
}

/// The policy file as an administrator writes it. Every field is optional; an absent one takes
/// Omnichannel's default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Files from customers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<DirectionConfig>,
    /// Files from agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<DirectionConfig>,
}

/// One direction of [`PolicyConfig`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectionConfig {
    /// Whether files may be sent this way (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Largest file in bytes (default [`DEFAULT_MAX_BYTES`], at most [`PLATFORM_MAX_BYTES`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Extensions allowed, case-insensitive, dot optional; `["*"]` for any (the inbound
    /// default); outbound defaults to [`DEFAULT_OUTBOUND_EXTENSIONS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_extensions: Option<Vec<String>>,
    /// Extensions refused (default [`DEFAULT_BLOCKED_EXTENSIONS`]; `[]` blocks none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_extensions: Option<Vec<String>>,
    /// MIME patterns allowed (`image/*`); `["*/*"]` for any (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_mime_types: Option<Vec<String>>,
    /// Whether the first bytes are checked against the name and type (default `true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_content: Option<bool>,
}

/// A policy configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attachment policy: `{field}` {problem}")]
pub struct PolicyConfigError {
    /// The field, as a path: `outbound.allowed_extensions[2]`.
    pub field: String,
    /// What is wrong with it.
    pub problem: ConfigProblem,
}

/// What is wrong with a policy field.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// A size above what Messenger carries.
    AboveCeiling {
        /// The size configured.
        max_bytes: u64,
        /// [`PLATFORM_MAX_BYTES`].
        ceiling: u64,
    },
    /// A size of zero (to refuse files, set `enabled = false`).
    ZeroSize,
    /// An extension in both the allowed and the blocked list.
    AllowedAndBlocked {
        /// The extension.
        extension: String,
    },
    /// An extension that is empty or holds characters an extension cannot.
    BadExtension {
        /// The value as written.
        value: String,
    },
    /// A MIME pattern that does not parse.
    BadMimePattern {
        /// The value as written.
        value: String,
        /// Why.
        why: &'static str,
    },
    /// An empty allow-list (to refuse files, set `enabled = false`).
    EmptyAllowList,
    /// `*` listed with other extensions.
    WildcardWithOthers,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AboveCeiling { max_bytes, ceiling } => write!(
                f,
                "is {max_bytes} bytes, above Messenger's limit of {ceiling} bytes (25 MB)"
            ),
            Self::ZeroSize => f.write_str("is 0; to refuse every file set `enabled = false`"),
            Self::AllowedAndBlocked { extension } => {
                write!(f, "lists `{extension}`, which is also blocked")
            }
            Self::BadExtension { value } => {
                write!(f, "holds `{value}`, which is not a file extension")
            }
            Self::BadMimePattern { value, why } => write!(f, "holds `{value}`: {why}"),
            Self::EmptyAllowList => {
                f.write_str("is empty; to refuse every file set `enabled = false`")
            }
            Self::WildcardWithOthers => f.write_str("mixes `*` with other entries"),
        }
    }
}
