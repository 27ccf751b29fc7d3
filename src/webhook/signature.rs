//! `X-Hub-Signature-256` verification over the raw body bytes.
//!
//! Meta signs the body exactly as it sends it (non-ASCII escaped as `\u00e9`, `/` as `\/`), so
//! the check must run on those bytes: parsing and re-serialising first is the classic bug. This
//! API takes only `&[u8]`, so that bug cannot be written with it.
//!
//! ```
//! use messenger_channel::secret::AppSecret;
//! use messenger_channel::webhook::signature::{sign_sha256, SignatureVerifier};
//!
//! let secret = AppSecret::new("app-secret")?;
//! let body = br#"{"object":"page","entry":[]}"#;
//! let header = sign_sha256(&secret, body); // what Meta would send
//!
//! let verifier = SignatureVerifier::new(&secret);
//! let mut headers = http::HeaderMap::new();
//! headers.insert("X-Hub-Signature-256", header.parse()?);
//! verifier.verify(&headers, body)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

use crate::secret::AppSecret;

/// Name of the SHA-256 signature header (compared case-insensitively).
pub const SHA256_HEADER: &str = "x-hub-signature-256";
/// Name of the legacy SHA-1 signature header (compared case-insensitively).
pub const SHA1_HEADER: &str = "x-hub-signature";

/// A signature algorithm Meta uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `X-Hub-Signature-256: sha256=<64 hex digits>`.
    Sha256,
    /// `X-Hub-Signature: sha1=<40 hex digits>`, legacy, only when enabled.
    Sha1,
}

impl Algorithm {
    fn prefix(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256=",
            Self::Sha1 => "sha1=",
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Self::Sha256 => 32,
            Self::Sha1 => 20,
        }
    }

    fn header(self) -> &'static str {
        match self {
            Self::Sha256 => SHA256_HEADER,
            Self::Sha1 => SHA1_HEADER,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sha256 => "HMAC-SHA256",
            Self::Sha1 => "HMAC-SHA1",
        })
    }
}

/// Why a signature header is malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Malformed {
    /// The value does not start with `sha256=` (or `sha1=`).
    Prefix,
    /// The digest holds a character that is not a hexadecimal digit.
    NotHex,
    /// The digest has the wrong number of hexadecimal digits.
    Length {
        /// Digits expected (64 for SHA-256, 40 for SHA-1).
        expected: usize,
        /// Digits found.
        found: usize,
    },
    /// The header appears more than once.
    Repeated,
    /// The header value is not visible ASCII.
    NotAscii,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Prefix => f.write_str("the value lacks its algorithm prefix"),
            Self::NotHex => f.write_str("the digest is not hexadecimal"),
            Self::Length { expected, found } => {
                write!(f, "the digest has {found} hex digits, expected {expected}")
            }
            Self::Repeated => f.write_str("the header is present more than once"),
            Self::NotAscii => f.write_str("the value is not visible ASCII"),
        }
    }
}

/// A webhook signature that did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No signature header at all.
    #[error("the request has no X-Hub-Signature-256 header")]
    Missing,
    /// The header is present but unusable.
    #[error("the {header} header is malformed: {reason}")]
    Malformed {
        /// The header's name.
        header: &'static str,
        /// What is wrong with it.
        reason: Malformed,
    },
    /// Only a signature of an algorithm the host did not enable was sent (legacy SHA-1).
    #[error("the request is signed with {algorithm} only, which is not enabled")]
    AlgorithmNotEnabled {
        /// The algorithm of the signature sent.
        algorithm: Algorithm,
    },
    /// The signature does not match the body under any configured app secret.
    #[error("the {algorithm} signature does not match the body under any configured app secret")]
    Mismatch {
        /// The algorithm checked.
        algorithm: Algorithm,
    },
}

/// Checks webhook signatures against one or more app secrets.
///
/// Several secrets are accepted during a rotation: a signature matching any of them passes.
/// The keyed hash state of each secret is computed once, at construction.
#[derive(Clone)]
pub struct SignatureVerifier {
    sha256: Vec<Hmac<Sha256>>,
    sha1: Vec<Hmac<Sha1>>,
    allow_sha1: bool,
}

impl fmt::Debug for SignatureVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureVerifier")
            .field("secrets", &self.sha256.len())
            .field("allow_sha1", &self.allow_sha1)
            .finish_non_exhaustive()
    }
}

impl SignatureVerifier {
    /// A verifier for one app secret, SHA-256 only.
    pub fn new(secret: &AppSecret) -> Self {
        Self {
            sha256: vec![mac256(secret.expose())],
            sha1: vec![mac1(secret.expose())],
            allow_sha1: false,
        }
    }

    /// A verifier accepting any of `secrets` (key rotation).
    ///
    /// # Errors
    /// [`NoSecret`] when `secrets` is empty: a verifier without a key would accept nothing, and a
    /// caller who meant to skip verification must say so with [`crate::webhook::parse_unverified`].
    pub fn with_secrets<I>(secrets: I) -> Result<Self, NoSecret>
    where
        I: IntoIterator<Item = AppSecret>,
    {
        let mut sha256 = Vec::new();
        let mut sha1 = Vec::new();
        for secret in secrets {
            sha256.push(mac256(secret.expose()));
            sha1.push(mac1(secret.expose()));
        }
        if sha256.is_empty() {
            return Err(NoSecret);
        }
        Ok(Self {
            sha256,
            sha1,
            allow_sha1: false,
        })
    }

    /// Also accepts the legacy `X-Hub-Signature: sha1=…` header when no SHA-256 header is sent.
    ///
    /// Meta sends both headers; enable this only for a proxy that strips the SHA-256 one.
    #[must_use]
    pub fn allow_legacy_sha1(mut self) -> Self {
        self.allow_sha1 = true;
        self
    }

    /// Whether the legacy SHA-1 header is accepted.
    pub fn legacy_sha1_allowed(&self) -> bool {
        self.allow_sha1
    }

    /// Verifies `body` against the signature headers in `headers`.
    ///
    /// # Errors
    /// A [`SignatureError`] saying why the request is not authentic.
    pub fn verify(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Result<Algorithm, SignatureError> {
        let one = |name: &'static str| -> Result<Option<&[u8]>, SignatureError> {
            let mut all = headers.get_all(name).iter();
            let first = all.next().map(http::HeaderValue::as_bytes);
            if all.next().is_some() {
                return Err(SignatureError::Malformed {
                    header: name,
                    reason: Malformed::Repeated,
                });
            }
            Ok(first)
        };
        self.verify_values(one(SHA256_HEADER)?, one(SHA1_HEADER)?, body)
    }

    /// Verifies `body` against headers given as `(name, value)` pairs from any HTTP library.
    /// Names are compared case-insensitively.
    ///
    /// # Errors
    /// A [`SignatureError`] saying why the request is not authentic.
    pub fn verify_pairs<'h, I>(&self, headers: I, body: &[u8]) -> Result<Algorithm, SignatureError>
    where
        I: IntoIterator<Item = (&'h str, &'h [u8])>,
    {
        let mut sha256 = None;
        let mut sha1 = None;
        for (name, value) in headers {
            for (slot, wanted) in [(&mut sha256, SHA256_HEADER), (&mut sha1, SHA1_HEADER)] {
                if name.eq_ignore_ascii_case(wanted) {
                    if slot.is_some() {
                        return Err(SignatureError::Malformed {
                            header: wanted,
                            reason: Malformed::Repeated,
                        });
                    }
                    *slot = Some(value);
                }
            }
        }
        self.verify_values(sha256, sha1, body)
    }

    /// Verifies `body` against one header value, `sha256=…` or (when enabled) `sha1=…`.
    ///
    /// # Errors
    /// A [`SignatureError`] saying why the value does not authenticate `body`.
    pub fn verify_header_value(
        &self,
        value: &str,
        body: &[u8],
    ) -> Result<Algorithm, SignatureError> {
        // Bytes, not `str` slicing: `value` comes from outside and may hold multi-byte
        // characters, where `&value[..5]` would panic. Anything not visible ASCII is then
        // refused by `decode` as `Malformed::NotAscii`.
        let trimmed = value.as_bytes().trim_ascii();
        let is_sha1 = trimmed
            .get(..5)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"sha1="));
        if is_sha1 {
            self.verify_values(None, Some(value.as_bytes()), body)
        } else {
            self.verify_values(Some(value.as_bytes()), None, body)
        }
    }

    fn verify_values(
        &self,
        sha256: Option<&[u8]>,
        sha1: Option<&[u8]>,
        body: &[u8],
    ) -> Result<Algorithm, SignatureError> {
        let result = match (sha256, sha1) {
            (Some(value), _) => {
                let digest = decode::<32>(Algorithm::Sha256, value)?;
                let ok = self
                    .sha256
                    .iter()
                    .any(|key| key.clone().chain_update(body).verify_slice(&digest).is_ok());
                if ok {
                    Ok(Algorithm::Sha256)
                } else {
                    Err(SignatureError::Mismatch {
                        algorithm: Algorithm::Sha256,
                    })
                }
            }
            (None, Some(value)) => {
                if !self.allow_sha1 {
                    return Err(SignatureError::AlgorithmNotEnabled {
                        algorithm: Algorithm::Sha1,
                    });
                }
                let digest = decode::<20>(Algorithm::Sha1, value)?;
                let ok = self
                    .sha1
                    .iter()
                    .any(|key| key.clone().chain_update(body).verify_slice(&digest).is_ok());
                if ok {
                    Ok(Algorithm::Sha1)
                } else {
                    Err(SignatureError::Mismatch {
                        algorithm: Algorithm::Sha1,
                    })
                }
            }
            (None, None) => Err(SignatureError::Missing),
        };
        if let Err(error) = &result {
            tracing::debug!(%error, body_len = body.len(), "webhook signature rejected");
        }
        result
    }
}

/// [`SignatureVerifier::with_secrets`] was given no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no app secret configured: a signature verifier needs at least one")]
pub struct NoSecret;

fn decode<const N: usize>(algorithm: Algorithm, value: &[u8]) -> Result<[u8; N], SignatureError> {
    debug_assert_eq!(N, algorithm.digest_len());
    let malformed = |reason| SignatureError::Malformed {
        header: algorithm.header(),
        reason,
    };
    if !value
        .iter()
        .all(|c| c.is_ascii_graphic() || *c == b' ' || *c == b'\t')
    {
        return Err(malformed(Malformed::NotAscii));
    }
    let value = value.trim_ascii();
    let prefix = algorithm.prefix().as_bytes();
    if value.len() < prefix.len() || !value[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return Err(malformed(Malformed::Prefix));
    }
    let hex = &value[prefix.len()..];
    if hex.len() != 2 * N {
        return Err(malformed(Malformed::Length {
            expected: 2 * N,
            found: hex.len(),
        }));
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (nibble(pair[0]), nibble(pair[1])) else {
            return Err(malformed(Malformed::NotHex));
        };
        *byte = (hi << 4) | lo;
    }
    Ok(out)
}

fn mac256(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn mac1(key: &[u8]) -> Hmac<Sha1> {
    Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// The `X-Hub-Signature-256` value Meta would send for `body`: `sha256=<lowercase hex>`.
///
/// For tests, simulators and proxies that re-sign.
pub fn sign_sha256(secret: &AppSecret, body: &[u8]) -> String {
    format!("sha256={}", hmac_sha256_hex(secret.expose(), body))
}

/// The legacy `X-Hub-Signature` value for `body`: `sha1=<lowercase hex>`.
pub fn sign_sha1(secret: &AppSecret, body: &[u8]) -> String {
    let mut mac = mac1(secret.expose());
    mac.update(body);
    format!("sha1={}", to_hex(&mac.finalize().into_bytes()))
}

/// Lowercase hex of HMAC-SHA256(`key`, `message`): the digest of a webhook signature, and the
/// Graph API's `appsecret_proof` (keyed by the app secret, over the access token).
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = mac256(key);
    mac.update(message);
    to_hex(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> AppSecret {
        AppSecret::new(s).unwrap()
    }

    const BODY: &[u8] = br#"{"object":"page","entry":[{"id":"1","time":1,"messaging":[]}]}"#;

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn accepts_own_signature_and_uppercase_hex() {
        let v = SignatureVerifier::new(&secret("s"));
        let sig = sign_sha256(&secret("s"), BODY);
        assert_eq!(v.verify_header_value(&sig, BODY), Ok(Algorithm::Sha256));
        let upper = format!("sha256={}", sig[7..].to_ascii_uppercase());
        assert_eq!(v.verify_header_value(&upper, BODY), Ok(Algorithm::Sha256));
    }

    #[test]
    fn rejects_tampering_and_other_secret() {
        let v = SignatureVerifier::new(&secret("s"));
        let sig = sign_sha256(&secret("s"), BODY);
        let mut tampered = BODY.to_vec();
        tampered[10] ^= 1;
        let mismatch = Err(SignatureError::Mismatch {
            algorithm: Algorithm::Sha256,
        });
        assert_eq!(v.verify_header_value(&sig, &tampered), mismatch);
        assert_eq!(
            v.verify_header_value(&sign_sha256(&secret("t"), BODY), BODY),
            mismatch
        );
    }

    #[test]
    fn rotation_accepts_any_secret() {
        let v = SignatureVerifier::with_secrets([secret("old"), secret("new")]).unwrap();
        for s in ["old", "new"] {
            assert!(
                v.verify_header_value(&sign_sha256(&secret(s), BODY), BODY)
                    .is_ok()
            );
        }
        assert!(
            v.verify_header_value(&sign_sha256(&secret("other"), BODY), BODY)
                .is_err()
        );
        assert_eq!(SignatureVerifier::with_secrets([]).unwrap_err(), NoSecret);
    }

    #[test]
    fn malformed_values() {
        let v = SignatureVerifier::new(&secret("s"));
        let m = |reason| {
            Err(SignatureError::Malformed {
                header: SHA256_HEADER,
                reason,
            })
        };
        let hex64 = "a".repeat(64);
        assert_eq!(
            v.verify_header_value(&format!("md5={hex64}"), BODY),
            m(Malformed::Prefix)
        );
        assert_eq!(v.verify_header_value(&hex64, BODY), m(Malformed::Prefix));
        assert_eq!(
            v.verify_header_value(&format!("sha256={}", "g".repeat(64)), BODY),
            m(Malformed::NotHex)
        );
        assert_eq!(
            v.verify_header_value("sha256=abcd", BODY),
            m(Malformed::Length {
                expected: 64,
                found: 4
            })
        );
        assert_eq!(
            v.verify_header_value(&format!("sha256={}", "a".repeat(66)), BODY),
            m(Malformed::Length {
                expected: 64,
                found: 66
            })
        );
    }

    #[test]
    fn sha1_only_when_enabled() {
        let sig1 = sign_sha1(&secret("s"), BODY);
        let v = SignatureVerifier::new(&secret("s"));
        assert_eq!(
            v.verify_header_value(&sig1, BODY),
            Err(SignatureError::AlgorithmNotEnabled {
                algorithm: Algorithm::Sha1
            })
        );
        let v = v.allow_legacy_sha1();
        assert_eq!(v.verify_header_value(&sig1, BODY), Ok(Algorithm::Sha1));
        let mut bad = BODY.to_vec();
        bad[0] = b' ';
        assert_eq!(
            v.verify_header_value(&sig1, &bad),
            Err(SignatureError::Mismatch {
                algorithm: Algorithm::Sha1
            })
        );
    }

    #[test]
    fn header_map_lookup_is_case_insensitive_and_prefers_sha256() {
        let v = SignatureVerifier::new(&secret("s")).allow_legacy_sha1();
        let mut h = http::HeaderMap::new();
        assert_eq!(v.verify(&h, BODY), Err(SignatureError::Missing));
        h.insert(
            "X-HUB-SIGNATURE",
            sign_sha1(&secret("wrong"), BODY).parse().unwrap(),
        );
        h.insert(
            "X-Hub-Signature-256",
            sign_sha256(&secret("s"), BODY).parse().unwrap(),
        );
        assert_eq!(v.verify(&h, BODY), Ok(Algorithm::Sha256));
        h.append(
            "x-hub-signature-256",
            sign_sha256(&secret("s"), BODY).parse().unwrap(),
        );
        assert_eq!(
            v.verify(&h, BODY),
            Err(SignatureError::Malformed {
                header: SHA256_HEADER,
                reason: Malformed::Repeated
            })
        );
    }

    #[test]
    fn pairs_lookup() {
        let v = SignatureVerifier::new(&secret("s"));
        let sig = sign_sha256(&secret("s"), BODY);
        let pairs = [
            ("Content-Type", &b"application/json"[..]),
            ("X-Hub-Signature-256", sig.as_bytes()),
        ];
        assert_eq!(v.verify_pairs(pairs, BODY), Ok(Algorithm::Sha256));
        assert_eq!(v.verify_pairs([], BODY), Err(SignatureError::Missing));
        assert_eq!(
            SignatureVerifier::new(&secret("s"))
                .verify_pairs([("x-hub-signature", &b"sha1=00"[..])], BODY),
            Err(SignatureError::AlgorithmNotEnabled {
                algorithm: Algorithm::Sha1
            })
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let v = SignatureVerifier::new(&secret("topsecret"));
        assert!(!format!("{v:?}").contains("topsecret"));
    }
}
