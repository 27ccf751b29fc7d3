//! Who is writing: the customer's name and picture, fetched once from the Graph user profile
//! ([`PageApi::user_profile`]), kept in the store ([`ProfileStore`]) and refreshed when older
//! than a configurable age, with a fallback name ("Facebook user ·1234", the last digits of
//! the customer's id) when the page lacks the permission or the call fails.
//!
//! The engine never fetches profiles: a webhook's acknowledgement never waits on the Graph
//! API. A host asks [`Profiles`] when it shows a conversation (an offer, a list, a header):
//! [`Profiles::cached`] reads the store only; [`Profiles::get`] fetches a profile that is
//! missing or stale, once, and keeps what it got.
//!
//! ```
//! # #[cfg(feature = "test-util")]
//! # fn main() {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(demo()).unwrap();
//! # }
//! # #[cfg(not(feature = "test-util"))]
//! # fn main() {}
//! # #[cfg(feature = "test-util")]
//! # async fn demo() -> Result<(), messenger_channel::store::StoreError> {
//! use std::sync::Arc;
//! use std::time::SystemTime;
//! use messenger_channel::ids::{PageId, UserId};
//! use messenger_channel::profile::{Profiles, fallback_name};
//! use messenger_channel::send::UserProfile;
//! use messenger_channel::store::InMemoryStore;
//! use messenger_channel::testing::FakeSend;
//!
//! let api = Arc::new(FakeSend::new());
//! let profiles = Profiles::new(api.clone(), Arc::new(InMemoryStore::new()));
//! let page = PageId::from("104987654321098");
//! let (ada, bob) = (UserId::from("24012345678901234"), UserId::from("24012345678905678"));
//! api.serve_profile(ada.as_str(), UserProfile { name: Some("Ada Lovelace".into()), ..UserProfile::default() });
//!
//! // Fetched once, then kept.
//! let profile = profiles.get(&page, &ada, SystemTime::now()).await?;
//! assert_eq!(profile.display_name(&ada), "Ada Lovelace");
//! assert!(profiles.cached(&page, &ada).await?.is_some());
//!
//! // No profile for bob: the page "lacks the permission", so the fallback is shown.
//! let profile = profiles.get(&page, &bob, SystemTime::now()).await?;
//! assert_eq!(profile.display_name(&bob), "Facebook user ·5678");
//! assert_eq!(fallback_name(&bob), "Facebook user ·5678");
//! # Ok(())
//! # }
//! ```
//!
//! What a profile holds is customer data from the platform: a name is trimmed, stripped of
//! control characters and cut to [`PROFILE_NAME_MAX_CHARS`]; a picture URL is kept only when it
//! is `https` and at most [`PROFILE_PICTURE_URL_MAX_CHARS`] long. Failures are logged with the
//! page and the error's class, never with a URL or a token.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::ids::{PageId, UserId};
use crate::send::{ErrorKind, PageApi, SendError, UserProfile};
use crate::store::StoreError;

/// The longest name kept, in characters; longer names are cut.
pub const PROFILE_NAME_MAX_CHARS: usize = 256;

/// The longest picture URL kept, in characters; a longer one is dropped.
pub const PROFILE_PICTURE_URL_MAX_CHARS: usize = 2048;

/// How old a kept profile may be before [`Profiles::get`] fetches it again: 7 days.
pub const DEFAULT_PROFILE_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// How long [`Profiles::get`] waits before asking again after a failure that may pass (a rate
/// limit, a network failure, a broken token): 10 minutes. Such failures are not kept in the
/// store; a refusal (no permission, an unknown user) is, like a profile.
pub const DEFAULT_PROFILE_RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10 * 60);

/// A customer's name and picture as kept, and when they were fetched. Both are `None` when
/// the platform refused them (the page lacks the permission): show [`fallback_name`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CustomerProfile {
    /// The name, at most [`PROFILE_NAME_MAX_CHARS`] characters, never empty.
    pub name: Option<String>,
    /// The picture, an `https` URL of at most [`PROFILE_PICTURE_URL_MAX_CHARS`] characters.
    /// The platform's picture URLs expire: refresh the profile to show it again.
    pub picture_url: Option<String>,
    /// When the platform was asked.
    pub fetched_at: SystemTime,
}

impl CustomerProfile {
    /// A profile from what the platform said, within the limits: the name trimmed, without
    /// control characters and cut to [`PROFILE_NAME_MAX_CHARS`] (an empty one is `None`); the
    /// picture kept only if [`is_safe_picture_url`].
    pub fn new(name: Option<&str>, picture_url: Option<&str>, fetched_at: SystemTime) -> Self {
        Self {
            name: name.and_then(clean_name),
            picture_url: picture_url
                .filter(|u| is_safe_picture_url(u))
                .map(str::to_owned),
            fetched_at,
        }
    }

    /// A profile from the Graph user profile ([`UserProfile::display_name`] and
    /// `profile_pic`), within the limits.
    pub fn from_user_profile(profile: &UserProfile, fetched_at: SystemTime) -> Self {
        Self::new(
            profile.display_name().as_deref(),
            profile.profile_pic.as_deref(),
            fetched_at,
        )
    }

    /// What the platform refused to tell, at `fetched_at`: no name, no picture.
    pub fn refused(fetched_at: SystemTime) -> Self {
        Self {
            name: None,
            picture_url: None,
            fetched_at,
        }
    }

    /// The name to show: the profile's, or [`fallback_name`].
    pub fn display_name(&self, customer: &UserId<'_>) -> String {
        self.name.clone().unwrap_or_else(|| fallback_name(customer))
    }

    /// Whether the profile is older than `max_age` at `now` (a profile from the future is
    /// not).
    pub fn is_stale(&self, now: SystemTime, max_age: Duration) -> bool {
        now.duration_since(self.fetched_at)
            .is_ok_and(|age| age > max_age)
    }
}

/// The name shown for a customer whose profile is unknown: "Facebook user ·1234", the last
/// four characters of the page-scoped id.
pub fn fallback_name(customer: &UserId<'_>) -> String {
    let id = customer.as_str();
    let tail: Vec<char> = id.chars().rev().take(4).collect();
    let tail: String = tail.into_iter().rev().collect();
    format!("Facebook user ·{tail}")
}

/// Whether `url` may be shown as a picture: `https`, with a host, no whitespace or control
/// characters, at most [`PROFILE_PICTURE_URL_MAX_CHARS`] characters.
pub fn is_safe_picture_url(url: &str) -> bool {
    let Some(rest) = url
        .get(..8)
        .filter(|s| s.eq_ignore_ascii_case("https://"))
        .map(|_| &url[8..])
    else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    url.chars().count() <= PROFILE_PICTURE_URL_MAX_CHARS
        && !host.is_empty()
        && !host.contains('@')
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn clean_name(name: &str) -> Option<String> {
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cut: String = cleaned
        .trim()
        .chars()
        .take(PROFILE_NAME_MAX_CHARS)
        .collect();
    let cut = cut.trim_end();
    (!cut.is_empty()).then(|| cut.to_owned())
}

/// Where customers' profiles are kept, by page and customer. The crate's stores implement it
/// ([`InMemoryStore`](crate::store::InMemoryStore), `SqliteStore`, `PostgresStore`), each in
/// the same place as its conversations.
///
/// The contract (checked by `testing::conformance::run_profiles`): `profile` returns what
/// `save_profile` kept for that page and customer, and nothing for another; `save_profile`
/// replaces a kept profile unless the kept one was fetched later (of two racing saves, the
/// newer fetch stays).
#[async_trait::async_trait]
pub trait ProfileStore: Send + Sync {
    /// The profile kept for `customer` on `page`, if any.
    async fn profile(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<CustomerProfile>, StoreError>;

    /// Keeps `profile` for `customer` on `page`, unless the one kept was fetched later.
    async fn save_profile(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
        profile: &CustomerProfile,
    ) -> Result<(), StoreError>;
}

#[async_trait::async_trait]
impl<T: ProfileStore + ?Sized> ProfileStore for Arc<T> {
    async fn profile(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<CustomerProfile>, StoreError> {
        (**self).profile(page, customer).await
    }

    async fn save_profile(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
        profile: &CustomerProfile,
    ) -> Result<(), StoreError> {
        (**self).save_profile(page, customer, profile).await
    }
}

/// Customers' profiles for a host's screens: from the store, fetched from the platform when
/// missing or older than [`Profiles::max_age`], with the fallback when the platform refuses.
pub struct Profiles {
    api: Arc<dyn PageApi>,
    store: Arc<dyn ProfileStore>,
    max_age: Duration,
    retry_after_failure: Duration,
    /// Fetches under way (by page and customer), so concurrent callers ask once; and the
    /// time of the last failure that may pass, so it is not asked again at once.
    state: Mutex<FetchState>,
}

#[derive(Default)]
struct FetchState {
    running: HashSet<(String, String)>,
    failed: HashMap<(String, String), SystemTime>,
}

impl std::fmt::Debug for Profiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profiles")
            .field("max_age", &self.max_age)
            .field("retry_after_failure", &self.retry_after_failure)
            .finish_non_exhaustive()
    }
}

impl Profiles {
    /// Profiles fetched with `api` and kept in `store`, refreshed after
    /// [`DEFAULT_PROFILE_MAX_AGE`].
    pub fn new(api: Arc<dyn PageApi>, store: Arc<dyn ProfileStore>) -> Self {
        Self {
            api,
            store,
            max_age: DEFAULT_PROFILE_MAX_AGE,
            retry_after_failure: DEFAULT_PROFILE_RETRY_AFTER_FAILURE,
            state: Mutex::new(FetchState::default()),
        }
    }

    /// How old a kept profile may be before it is fetched again.
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// How long to wait after a failure that may pass before asking again.
    #[must_use]
    pub fn retry_after_failure(mut self, wait: Duration) -> Self {
        self.retry_after_failure = wait;
        self
    }

    /// The kept profile, without asking the platform.
    ///
    /// # Errors
    /// The store's.
    pub async fn cached(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<CustomerProfile>, StoreError> {
        self.store.profile(page, customer).await
    }

    /// Whether `profile` (the kept one, if any) should be fetched again at `now`.
    pub fn needs_fetch(&self, profile: Option<&CustomerProfile>, now: SystemTime) -> bool {
        profile.is_none_or(|p| p.is_stale(now, self.max_age))
    }

    /// The profile: the kept one while it is fresh; else fetched from the platform and kept.
    /// When the platform refuses (no permission, unknown user), that is kept as a profile
    /// without name or picture (shown with [`fallback_name`]) until it is stale. When the
    /// call fails otherwise (rate limit, network, token), the profile kept before is
    /// returned (or the refusal, at `now`, if none) and nothing is kept; the platform is
    /// asked again after [`Profiles::retry_after_failure`]. While another caller is
    /// fetching the same profile, this one returns what is kept, without asking.
    ///
    /// # Errors
    /// The store's.
    pub async fn get(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
        now: SystemTime,
    ) -> Result<CustomerProfile, StoreError> {
        let kept = self.store.profile(page, customer).await?;
        if !self.needs_fetch(kept.as_ref(), now) {
            if let Some(kept) = kept {
                return Ok(kept);
            }
        }
        let key = (page.as_str().to_owned(), customer.as_str().to_owned());
        let fallback =
            |kept: Option<CustomerProfile>| kept.unwrap_or(CustomerProfile::refused(now));
        {
            let mut state = self.lock();
            let recently_failed = state.failed.get(&key).is_some_and(|at| {
                now.duration_since(*at)
                    .map_or(true, |d| d < self.retry_after_failure)
            });
            if recently_failed || state.running.contains(&key) {
                return Ok(fallback(kept));
            }
            state.running.insert(key.clone());
        }
        // Whatever becomes of this call (a host's timeout, a dropped request), the fetch is
        // no longer running once it ends: the next call may fetch again.
        let mut running = Running {
            profiles: self,
            key: Some(key),
        };
        let fetched = self.api.user_profile(page, customer).await;
        let outcome = match fetched {
            Ok(profile) => Ok(CustomerProfile::from_user_profile(&profile, now)),
            Err(e) if is_refusal(&e) => {
                tracing::debug!(page = page.as_str(), kind = %e.kind(), "the platform refused a customer's profile");
                Ok(CustomerProfile::refused(now))
            }
            Err(e) => {
                tracing::warn!(page = page.as_str(), kind = %e.kind(), "fetching a customer's profile failed");
                Err(())
            }
        };
        if let Ok(profile) = outcome {
            let saved = self.store.save_profile(page, customer, &profile).await;
            running.finish(None);
            saved.map(|()| profile)
        } else {
            running.finish(Some(now));
            Ok(fallback(kept))
        }
    }

    fn finish(&self, key: &(String, String), failed_at: Option<SystemTime>) {
        let mut state = self.lock();
        state.running.remove(key);
        match failed_at {
            Some(at) => {
                // Failures whose wait is over are forgotten, so the map stays small.
                let wait = self.retry_after_failure;
                state
                    .failed
                    .retain(|_, t| at.duration_since(*t).is_ok_and(|d| d < wait));
                state.failed.insert(key.clone(), at);
            }
            None => {
                state.failed.remove(key);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FetchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fetch under way ([`Profiles::get`]): finished by the call, or, when the call is dropped
/// before it ends, forgotten as running (without counting as a failure).
struct Running<'a> {
    profiles: &'a Profiles,
    key: Option<(String, String)>,
}

impl Running<'_> {
    fn finish(&mut self, failed_at: Option<SystemTime>) {
        if let Some(key) = self.key.take() {
            self.profiles.finish(&key, failed_at);
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.profiles.lock().running.remove(&key);
        }
    }
}

/// Whether the platform refused the profile for good (until the page's permissions change):
/// no permission, or a parameter it rejects (an unknown user).
fn is_refusal(e: &SendError) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Permission | ErrorKind::InvalidParameter
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_obj_safe!(ProfileStore);

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn fallback_names_the_last_digits() {
        assert_eq!(
            fallback_name(&UserId::from("24012345678901234")),
            "Facebook user ·1234"
        );
        assert_eq!(fallback_name(&UserId::from("42")), "Facebook user ·42");
        let p = CustomerProfile::refused(at(1));
        assert_eq!(
            p.display_name(&UserId::from("5550000000000001")),
            "Facebook user ·0001"
        );
    }

    #[test]
    fn names_are_cleaned_and_cut() {
        let p = CustomerProfile::new(Some("  Ada\u{0}\nLovelace  "), None, at(1));
        assert_eq!(p.name.as_deref(), Some("Ada  Lovelace"));
        assert_eq!(CustomerProfile::new(Some(" \t "), None, at(1)).name, None);
        let long = "é".repeat(PROFILE_NAME_MAX_CHARS + 10);
        let p = CustomerProfile::new(Some(&long), None, at(1));
        assert_eq!(p.name.unwrap().chars().count(), PROFILE_NAME_MAX_CHARS);
    }

    #[test]
    fn pictures_only_over_https() {
        for ok in [
            "https://platform-lookaside.fbsbx.com/platform/profilepic/?psid=1&height=50",
            "HTTPS://scontent.xx.fbcdn.net/a.jpg",
        ] {
            assert!(is_safe_picture_url(ok), "{ok}");
        }
        let long = format!(
            "https://a.example/{}",
            "x".repeat(PROFILE_PICTURE_URL_MAX_CHARS)
        );
        for bad in [
            "http://platform-lookaside.fbsbx.com/a.jpg",
            "javascript:alert(1)",
            "data:image/png;base64,AAAA",
            "https://",
            "https:///path",
            "https://user@evil.example/a.jpg",
            "https://a.example/a b.jpg",
            "https://a.example/\u{7}",
            "//a.example/a.jpg",
            long.as_str(),
        ] {
            assert!(!is_safe_picture_url(bad), "{bad}");
        }
        let p = CustomerProfile::new(Some("Ada"), Some("http://x.example/a.jpg"), at(1));
        assert_eq!(p.picture_url, None);
    }

    #[test]
    fn staleness() {
        let p = CustomerProfile::refused(at(100));
        let day = Duration::from_secs(86_400);
        assert!(!p.is_stale(at(100) + day, day));
        assert!(p.is_stale(at(101) + day, day));
        assert!(
            !p.is_stale(at(50), day),
            "a profile from the future is fresh"
        );
    }

    #[test]
    fn from_user_profile_prefers_the_full_name() {
        let p = CustomerProfile::from_user_profile(
            &UserProfile {
                first_name: Some("Ada".into()),
                last_name: Some("Lovelace".into()),
                profile_pic: Some("https://a.example/p.jpg".into()),
                ..UserProfile::default()
            },
            at(3),
        );
        assert_eq!(p.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(p.picture_url.as_deref(), Some("https://a.example/p.jpg"));
        assert_eq!(p.fetched_at, at(3));
    }
}
