//! The customer's locale, from the host, when a conversation starts.

use std::time::Duration;

use crate::ids::{PageId, UserId};
use crate::locale::Locale;

/// How long the engine waits for the host's [`CustomerLocale`] before starting the
/// conversation without a locale: 2 seconds.
pub const DEFAULT_LOCALE_TIMEOUT: Duration = Duration::from_secs(2);

/// A failure of the host's [`CustomerLocale`]: the conversation starts without a locale.
pub type LocaleLookupError = Box<dyn std::error::Error + Send + Sync>;

/// The host's answer to "which locale does this customer write in?", asked once when a
/// customer's message starts a conversation, before it is classified: the webhook carries no
/// locale. A host may read its CRM, its own cache of the Graph user profile's `locale` (which
/// needs the page's permission for it), or a language detector.
///
/// The answer is kept on the conversation ([`crate::conversation::Conversation::customer_locale`]),
/// is a routing fact ([`crate::routing::Condition::Locale`], [`crate::routing::StartFacts::locale`])
/// and chooses the automated messages' texts ([`crate::routing::AutomatedMessages::locale`]).
///
/// It is asked while the customer's message is applied (after the webhook was answered), so
/// it delays that message's conversation, never the acknowledgement: an error, or (with the
/// `worker` feature, on tokio) an answer that takes longer than the engine's limit
/// ([`crate::engine::EngineBuilder::customer_locale_timeout`], [`DEFAULT_LOCALE_TIMEOUT`]),
/// starts the conversation without a locale, logged and counted
/// (`messenger_channel_locale_lookups_failed_total`); the message is applied all the same.
/// Without the `worker` feature the engine has no timer: the hook must bound its own time. It may be asked more than once for one conversation (when two instances apply
/// the same message at once); the answer of the one that commits is kept.
///
/// ```
/// use messenger_channel::engine::{CustomerLocale, LocaleLookupError};
/// use messenger_channel::ids::{PageId, UserId};
/// use messenger_channel::locale::Locale;
///
/// /// Customers the host's CRM knows, by PSID.
/// struct Crm(std::collections::HashMap<String, String>);
///
/// #[async_trait::async_trait]
/// impl CustomerLocale for Crm {
///     async fn locale(
///         &self,
///         _page: &PageId<'_>,
///         customer: &UserId<'_>,
///     ) -> Result<Option<Locale>, LocaleLookupError> {
///         Ok(match self.0.get(customer.as_str()) {
///             Some(locale) => Some(Locale::new(locale)?),
///             None => None,
///         })
///     }
/// }
/// // Engine::builder(webhook, send).customer_locale(Arc::new(Crm(known))).build()
/// ```
#[async_trait::async_trait]
pub trait CustomerLocale: Send + Sync {
    /// The locale of `customer` writing to `page`, `None` when unknown.
    ///
    /// # Errors
    /// Any failure of the host's lookup: the conversation starts without a locale.
    async fn locale(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<Locale>, LocaleLookupError>;
}

impl super::Engine {
    /// The host's answer for a new conversation's customer, within the time limit; `None`
    /// without a hook, on an error or past the limit (logged and counted).
    pub(super) async fn customer_locale(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Option<Locale> {
        let hook = self.customer_locale.as_ref()?;
        #[cfg(feature = "worker")]
        let answer =
            tokio::time::timeout(self.customer_locale_timeout, hook.locale(page, customer))
                .await
                .map_err(|_| {
                    format!(
                        "the host's lookup did not answer within {} ms",
                        self.customer_locale_timeout.as_millis()
                    )
                });
        #[cfg(not(feature = "worker"))]
        let answer: Result<_, String> = Ok(hook.locale(page, customer).await);
        let failure = match answer {
            Ok(Ok(locale)) => return locale,
            Ok(Err(e)) => format!("the host's lookup failed: {e}"),
            Err(timeout) => timeout,
        };
        metrics::counter!("messenger_channel_locale_lookups_failed_total").increment(1);
        tracing::warn!(
            page = %page,
            reason = %failure,
            "the customer's locale is unknown: the conversation starts without one"
        );
        None
    }
}
