//! A customer's locale (`fr_FR`, `en_US`), as the host knows it: checked when made, written
//! one way (`fr-fr` and `fr_FR` are the same locale), and matched by language (`fr` holds
//! for `fr_CA`).
//!
//! The webhook carries no locale: the host gives it when a conversation starts
//! ([`crate::engine::CustomerLocale`]). The engine keeps it on the conversation, routes by it
//! ([`crate::routing::Condition::Locale`]) and picks the automated messages of that locale
//! ([`crate::routing::AutomatedMessages::locale`]).
//!
//! ```
//! use messenger_channel::locale::Locale;
//!
//! let locale = Locale::new("fr-ca").unwrap();
//! assert_eq!(locale.as_str(), "fr_CA");
//! assert_eq!(locale.language(), "fr");
//! assert!(locale.is_within(&Locale::new("fr").unwrap()));
//! assert!(!Locale::new("fr").unwrap().is_within(&locale));
//! assert!(Locale::new("fr; DROP TABLE").is_err());
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest locale accepted, in bytes (BCP 47 tags of the languages people write in are
/// far shorter).
pub const LOCALE_MAX_LEN: usize = 35;

/// A checked locale: a language of 2 to 8 ASCII letters, then parts of 1 to 8 ASCII letters
/// or digits, joined by `_` or `-`; at most [`LOCALE_MAX_LEN`] bytes. It is kept with `_`,
/// its language in lower case, a two-letter region in upper case (`fr_CA`) and a four-letter
/// script with a capital (`zh_Hant_TW`), so that two ways of writing one locale compare
/// equal.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Locale(String);

/// Why a text is not a [`Locale`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a locale (a language such as `fr`, then parts such as `CA`, joined by `_`)")]
pub struct InvalidLocale;

impl Locale {
    /// Checks and writes `locale` the one way.
    ///
    /// # Errors
    /// [`InvalidLocale`] when it is not a locale (empty, too long, other characters).
    pub fn new(locale: &str) -> Result<Self, InvalidLocale> {
        if locale.len() > LOCALE_MAX_LEN {
            return Err(InvalidLocale);
        }
        let mut out = String::with_capacity(locale.len());
        for (i, part) in locale.split(['_', '-']).enumerate() {
            let letters = part.bytes().all(|b| b.is_ascii_alphabetic());
            let fits = if i == 0 {
                (2..=8).contains(&part.len()) && letters
            } else {
                (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_alphanumeric())
            };
            if !fits {
                return Err(InvalidLocale);
            }
            if i == 0 {
                out.push_str(&part.to_ascii_lowercase());
            } else {
                out.push('_');
                if part.len() == 2 && letters {
                    out.push_str(&part.to_ascii_uppercase());
                } else if part.len() == 4 && letters {
                    // A script (`Hant`): its first letter in upper case.
                    out.push_str(&part[..1].to_ascii_uppercase());
                    out.push_str(&part[1..].to_ascii_lowercase());
                } else {
                    out.push_str(&part.to_ascii_lowercase());
                }
            }
        }
        Ok(Self(out))
    }

    /// The locale, written the one way (`fr_CA`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its language (`fr` for `fr_CA`).
    pub fn language(&self) -> &str {
        self.0.split('_').next().unwrap_or(&self.0)
    }

    /// Whether this locale is `other` or of `other`'s language when `other` names only a
    /// language: `fr_CA` is within `fr` and `fr_CA`, not within `fr_FR`.
    pub fn is_within(&self, other: &Locale) -> bool {
        self == other || (!other.0.contains('_') && self.language() == other.0)
    }
}

impl TryFrom<String> for Locale {
    type Error = InvalidLocale;

    fn try_from(locale: String) -> Result<Self, Self::Error> {
        Self::new(&locale)
    }
}

impl std::str::FromStr for Locale {
    type Err = InvalidLocale;

    fn from_str(locale: &str) -> Result<Self, Self::Err> {
        Self::new(locale)
    }
}

impl From<Locale> for String {
    fn from(locale: Locale) -> Self {
        locale.0
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Locale({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(s: &str) -> Locale {
        Locale::new(s).unwrap()
    }

    #[test]
    fn locales_are_written_one_way() {
        for (given, kept) in [
            ("fr_FR", "fr_FR"),
            ("fr-fr", "fr_FR"),
            ("FR_fr", "fr_FR"),
            ("en", "en"),
            ("zh-Hant-TW", "zh_Hant_TW"),
            ("zh_hant_tw", "zh_Hant_TW"),
            ("es_419", "es_419"),
            ("tlh", "tlh"),
        ] {
            assert_eq!(l(given).as_str(), kept, "{given}");
            assert_eq!(l(given).to_string(), kept, "{given}");
        }
        assert_eq!(l("fr-fr"), l("fr_FR"));
        assert_eq!(l("zh-Hant-TW").language(), "zh");
        assert_eq!(l("en").language(), "en");
    }

    #[test]
    fn what_is_not_a_locale_is_refused() {
        for bad in [
            "",
            "f",
            "_FR",
            "fr_",
            "fr__FR",
            "fr FR",
            "12",
            "fr_FR;",
            "français",
            "abcdefghi",
            "fr_abcdefghi",
        ] {
            assert_eq!(Locale::new(bad), Err(InvalidLocale), "{bad:?}");
        }
        assert_eq!(
            Locale::new(&"fr_ab".repeat(8)),
            Err(InvalidLocale),
            "too long"
        );
        // The longest accepted.
        let longest = "abcdefgh_12345678_12345678_1234567";
        assert_eq!(longest.len(), LOCALE_MAX_LEN - 1);
        assert!(Locale::new(longest).is_ok());
        assert!(Locale::new(&format!("{longest}8")).is_ok());
        assert!(Locale::new(&format!("{longest}_8")).is_err(), "36 bytes");
    }

    #[test]
    fn a_locale_is_within_itself_and_its_language() {
        assert!(l("fr_CA").is_within(&l("fr_CA")));
        assert!(l("fr_CA").is_within(&l("fr")));
        assert!(l("fr").is_within(&l("fr")));
        assert!(!l("fr_CA").is_within(&l("fr_FR")));
        assert!(!l("fr").is_within(&l("fr_FR")));
        assert!(!l("en_US").is_within(&l("fr")));
        assert!(!l("frr").is_within(&l("fr")), "another language");
    }

    #[test]
    fn locales_round_trip_through_serde_and_refuse_bad_text() {
        let json = serde_json::to_string(&l("fr-ca")).unwrap();
        assert_eq!(json, "\"fr_CA\"");
        assert_eq!(serde_json::from_str::<Locale>(&json).unwrap(), l("fr_CA"));
        assert!(serde_json::from_str::<Locale>("\"fr CA\"").is_err());
        assert_eq!(format!("{:?}", l("fr")), "Locale(fr)");
        assert_eq!("en_us".parse::<Locale>(), Ok(l("en_US")));
    }
}
