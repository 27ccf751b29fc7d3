//! Secrets the channel holds: the app secret and the webhook verify token.
//!
//! Neither type implements `Display`, and `Debug` prints `[redacted]`, so a secret cannot reach a
//! log line by accident. Both refuse to be empty: a missing secret is a configuration error at
//! construction, never a check silently skipped.

use std::fmt;

/// An empty secret was given where one is required.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {what} is empty; set it from the app's settings")]
pub struct EmptySecret {
    /// Which secret: `"app secret"`, `"page access token"` or `"verify token"`.
    pub what: &'static str,
}

macro_rules! secret {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(std::sync::Arc<[u8]>);

        impl $name {
            /// Wraps the secret.
            ///
            /// # Errors
            /// [`EmptySecret`] when `secret` is empty.
            pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, EmptySecret> {
                let secret = secret.as_ref();
                if secret.is_empty() {
                    return Err(EmptySecret { what: $what });
                }
                Ok(Self(secret.into()))
            }

            /// The secret's bytes. Keep them out of logs.
            pub fn expose(&self) -> &[u8] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }
    };
}

secret!(
    /// The app secret (Meta app → Settings → Basic): the key of the webhook signatures.
    AppSecret,
    "app secret"
);
secret!(
    /// A page access token: the credential of every Graph call made for a page.
    PageAccessToken,
    "page access token"
);
secret!(
    /// The verify token entered in the app dashboard's webhook settings.
    VerifyToken,
    "verify token"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted_and_empty_is_refused() {
        let s = AppSecret::new("hunter2").unwrap();
        assert_eq!(format!("{s:?}"), "AppSecret([redacted])");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert_eq!(AppSecret::new("").unwrap_err().what, "app secret");
        assert_eq!(VerifyToken::new(b"").unwrap_err().what, "verify token");
    }
}
