//! Identifier newtypes, so that a customer's PSID can never be passed where a page id is expected.
//!
//! Identifiers borrow from the webhook body where they can (`'a`) and become owned with
//! [`PageId::into_owned`] and friends when they must outlive it.

use std::borrow::Cow;
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name<'a>(Cow<'a, str>);

        impl<'a> $name<'a> {
            /// Wraps an identifier.
            pub fn new(id: impl Into<Cow<'a, str>>) -> Self {
                Self(id.into())
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// An owned copy that no longer borrows from the webhook body.
            pub fn into_owned(self) -> $name<'static> {
                $name(Cow::Owned(self.0.into_owned()))
            }
        }

        impl fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl fmt::Display for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        // Hash and Eq of the newtype are those of the text, so maps keyed by an id can be
        // searched with a `&str`.
        impl std::borrow::Borrow<str> for $name<'_> {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name<'_> {
            fn eq(&self, other: &str) -> bool {
                *self.0 == *other
            }
        }

        impl PartialEq<&str> for $name<'_> {
            fn eq(&self, other: &&str) -> bool {
                *self.0 == **other
            }
        }

        impl AsRef<str> for $name<'_> {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'a> From<&'a str> for $name<'a> {
            fn from(id: &'a str) -> Self {
                Self(Cow::Borrowed(id))
            }
        }

        impl From<String> for $name<'static> {
            fn from(id: String) -> Self {
                Self(Cow::Owned(id))
            }
        }

        impl serde::Serialize for $name<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name<'static> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map(Self::from)
            }
        }
    };
}

string_id!(
    /// A Facebook Page id: `entry[].id` of a webhook, and the `recipient` of a customer's message.
    PageId
);
string_id!(
    /// The id of a participant in a Messenger thread: a customer's page-scoped id (PSID) or, on
    /// echoes, the page itself.
    UserId
);
string_id!(
    /// A message id (`mid`): the key by which redelivered messages are recognised.
    MessageId
);

/// A Meta app id (thread-control events, echoes).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize,
)]
pub struct AppId(pub u64);

macro_rules! owned_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an identifier.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }
    };
}

owned_id!(
    /// An agent of the desk (the host's own identifier).
    AgentId
);
owned_id!(
    /// A conversation (work item), stable across restarts.
    ConversationId
);
owned_id!(
    /// A queue of the work distribution ([`crate::routing::Queue`]): where a conversation
    /// waits for an agent.
    QueueId
);
owned_id!(
    /// The host's record of a customer (a contact or account in its CRM), linked to a
    /// conversation ([`crate::engine::Engine::link_customer_record`]).
    CustomerRecordId
);
owned_id!(
    /// A skill agents have and queues require ([`crate::routing`]), such as `billing` or `fr`.
    SkillId
);

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_borrow_display_and_own() {
        let body = String::from("1234");
        let id = PageId::from(body.as_str());
        assert_eq!(id.to_string(), "1234");
        assert_eq!(format!("{id:?}"), "PageId(1234)");
        let owned: PageId<'static> = id.into_owned();
        drop(body);
        assert_eq!(owned.as_str(), "1234");
        assert_eq!(owned, "1234");
        let mid = MessageId::from(String::from("m_1"));
        assert!(mid == "m_1" && mid != "m_2" && mid == *"m_1");
    }
}
