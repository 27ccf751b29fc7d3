//! The host's record of the customer: a conversation linked to a contact or account in the
//! host's own system (its CRM), as Omnichannel links a conversation to a customer record.
//! The rule (who may link, in which states) is the state machine's ([`Input::LinkRecord`]).
//! And who is writing: a new conversation's customer profile, fetched in the background
//! ([`super::EngineBuilder::profiles`]).

use std::time::SystemTime;

use super::{Engine, EngineError};
use crate::conversation::Input;
use crate::ids::{AgentId, ConversationId, CustomerRecordId};

/// The longest customer record id accepted, in bytes.
pub const CUSTOMER_RECORD_MAX_BYTES: usize = 256;

impl Engine {
    /// Links the conversation to the host's record of the customer (`None` unlinks it): by
    /// the host itself (`by` is `None`: a hook of the host's that found the customer in its
    /// system when the conversation started, or later), or by an agent who holds the
    /// conversation or consults in it. A change is recorded as an internal line;
    /// [`crate::conversation::Conversation::customer_record`] reads it, and
    /// [`crate::store::ConversationStore::history`] finds the customer's earlier
    /// conversations with theirs.
    ///
    /// # Errors
    /// [`EngineError::InvalidCustomerRecord`] for an empty id, one longer than
    /// [`CUSTOMER_RECORD_MAX_BYTES`] or one with control characters (nothing is changed);
    /// [`EngineError::Transition`] when the agent takes no part in the conversation or it is
    /// closed; [`EngineError::NotFound`].
    pub async fn link_customer_record(
        &self,
        id: &ConversationId,
        by: Option<&AgentId>,
        record: Option<CustomerRecordId>,
        now: SystemTime,
    ) -> Result<(), EngineError> {
        if let Some(record) = &record {
            check_record(record).map_err(EngineError::InvalidCustomerRecord)?;
        }
        let input = Input::LinkRecord {
            by: by.cloned(),
            record,
        };
        self.run(id.clone(), input, now).await.map(drop)
    }
}

/// Why the engine refuses a record id, if it does.
fn check_record(record: &CustomerRecordId) -> Result<(), &'static str> {
    let id = record.as_str();
    let reason = if id.trim().is_empty() {
        "it is empty"
    } else if id.len() > CUSTOMER_RECORD_MAX_BYTES {
        "it is longer than 256 bytes"
    } else if id.chars().any(char::is_control) {
        "it holds control characters"
    } else {
        return Ok(());
    };
    Err(reason)
}

impl super::Engine {
    /// Fetches a new conversation's customer profile in the background when the host gave
    /// [`crate::engine::EngineBuilder::profiles`] (with the `worker` feature); the answer is
    /// kept in the profile store, and its failures are `Profiles`' to log and retry later.
    pub(super) fn fetch_profile_in_background(
        &self,
        page: &crate::ids::PageId<'_>,
        customer: &crate::ids::UserId<'_>,
        now: SystemTime,
    ) {
        #[cfg(feature = "worker")]
        if let Some(profiles) = self.profiles.clone() {
            let (page, customer) = (page.clone().into_owned(), customer.clone().into_owned());
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = profiles.get(&page, &customer, now).await {
                        tracing::warn!(error = %e, "a new conversation's customer profile could not be kept");
                    }
                });
            }
        }
        #[cfg(not(feature = "worker"))]
        let _ = (page, customer, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ids_are_checked() {
        assert!(check_record(&CustomerRecordId::from("contact-42")).is_ok());
        assert!(check_record(&CustomerRecordId::new("x".repeat(256))).is_ok());
        for bad in [String::new(), "  ".into(), "x".repeat(257), "a\nb".into()] {
            assert!(
                check_record(&CustomerRecordId::new(bad.clone())).is_err(),
                "{bad:?}"
            );
        }
    }
}
