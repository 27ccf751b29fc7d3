//! Who is writing (`profile::Profiles`): a customer's name and picture fetched once through
//! `PageApi::user_profile` (here `FakeSend`), kept in the store, refreshed when stale, with the
//! fallback name when the page lacks the permission or the call fails.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use messenger_channel::ids::{PageId, UserId};
use messenger_channel::profile::{
    CustomerProfile, DEFAULT_PROFILE_MAX_AGE, PROFILE_NAME_MAX_CHARS, ProfileStore, Profiles,
};
use messenger_channel::send::{GraphError, SendError, UserProfile};
use messenger_channel::store::InMemoryStore;
use messenger_channel::testing::{FakeSend, t0};
use serde_json::json;

const ADA: &str = "24012345678901234";

fn at(secs: u64) -> SystemTime {
    t0() + Duration::from_secs(secs)
}

fn setup() -> (Arc<FakeSend>, Arc<InMemoryStore>, Profiles) {
    let api = Arc::new(FakeSend::new());
    let store = Arc::new(InMemoryStore::new());
    let profiles = Profiles::new(api.clone(), store.clone());
    (api, store, profiles)
}

fn ada_profile() -> UserProfile {
    UserProfile {
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
        profile_pic: Some(
            "https://platform-lookaside.fbsbx.com/platform/profilepic/?psid=1".into(),
        ),
        ..UserProfile::default()
    }
}

fn page() -> PageId<'static> {
    PageId::from("104987654321098")
}

#[tokio::test]
async fn fetched_once_kept_and_refreshed_when_stale() {
    let (api, store, profiles) = setup();
    api.serve_profile(ADA, ada_profile());
    let ada = UserId::from(ADA);
    assert_eq!(profiles.cached(&page(), &ada).await.unwrap(), None);
    assert!(profiles.needs_fetch(None, at(0)));

    let first = profiles.get(&page(), &ada, at(0)).await.unwrap();
    assert_eq!(first.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(
        first.picture_url.as_deref(),
        Some("https://platform-lookaside.fbsbx.com/platform/profilepic/?psid=1")
    );
    assert_eq!(first.display_name(&ada), "Ada Lovelace");
    // Kept in the store.
    assert_eq!(
        store.profile(&page(), &ada).await.unwrap(),
        Some(first.clone())
    );

    // Asked again within the age: from the store, the platform is not asked.
    let again = profiles
        .get(&page(), &ada, at(0) + DEFAULT_PROFILE_MAX_AGE)
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(api.profile_requests(ADA), 1);

    // Older than the age (7 days by default): asked again, and the new one kept.
    api.serve_profile(
        ADA,
        UserProfile {
            name: Some("Ada King".into()),
            ..UserProfile::default()
        },
    );
    let later = at(1) + DEFAULT_PROFILE_MAX_AGE;
    let refreshed = profiles.get(&page(), &ada, later).await.unwrap();
    assert_eq!(refreshed.name.as_deref(), Some("Ada King"));
    assert_eq!(refreshed.picture_url, None);
    assert_eq!(refreshed.fetched_at, later);
    assert_eq!(api.profile_requests(ADA), 2);
    assert_eq!(
        profiles.cached(&page(), &ada).await.unwrap(),
        Some(refreshed)
    );
}

#[tokio::test]
async fn the_age_is_configurable() {
    let (api, _store, profiles) = setup();
    let profiles = profiles.max_age(Duration::from_secs(60));
    api.serve_profile(ADA, ada_profile());
    let ada = UserId::from(ADA);
    profiles.get(&page(), &ada, at(0)).await.unwrap();
    profiles.get(&page(), &ada, at(60)).await.unwrap();
    assert_eq!(api.profile_requests(ADA), 1);
    profiles.get(&page(), &ada, at(61)).await.unwrap();
    assert_eq!(api.profile_requests(ADA), 2);
}

#[tokio::test]
async fn without_the_permission_the_fallback_is_kept() {
    let (api, store, profiles) = setup();
    // FakeSend refuses a profile it does not serve as Graph does a page without the
    // permission (code 230).
    let ada = UserId::from(ADA);
    let p = profiles.get(&page(), &ada, at(0)).await.unwrap();
    assert_eq!(p, CustomerProfile::refused(at(0)));
    assert_eq!(p.display_name(&ada), "Facebook user ·1234");
    // The refusal is kept: not asked again until it is stale.
    assert_eq!(store.profile(&page(), &ada).await.unwrap(), Some(p));
    profiles.get(&page(), &ada, at(3_600)).await.unwrap();
    assert_eq!(api.profile_requests(ADA), 1);
}

#[tokio::test]
async fn a_failure_that_may_pass_is_not_kept_and_is_retried_later() {
    let (api, store, profiles) = setup();
    let profiles = profiles.retry_after_failure(Duration::from_secs(600));
    api.serve_profile(ADA, ada_profile());
    let temporary = GraphError::from_value(
        503,
        &json!({"error": {"message": "(#2) Service temporarily unavailable", "type": "OAuthException", "code": 2, "is_transient": true}}),
    )
    .unwrap();
    api.fail_profiles(Some(SendError::Graph(temporary)));
    let ada = UserId::from(ADA);
    let p = profiles.get(&page(), &ada, at(0)).await.unwrap();
    assert_eq!(
        p.display_name(&ada),
        "Facebook user ·1234",
        "the fallback meanwhile"
    );
    assert_eq!(
        store.profile(&page(), &ada).await.unwrap(),
        None,
        "nothing kept"
    );
    // Not asked again at once.
    profiles.get(&page(), &ada, at(599)).await.unwrap();
    assert_eq!(api.profile_requests(ADA), 1);
    // After the wait, asked again; it works now.
    api.fail_profiles(None);
    let p = profiles.get(&page(), &ada, at(600)).await.unwrap();
    assert_eq!(p.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(api.profile_requests(ADA), 2);

    // A failure when a profile is kept: the kept one (stale) is shown, and stays kept.
    api.fail_profiles(Some(SendError::Transport {
        kind: messenger_channel::send::TransportKind::Connect,
        outcome_unknown: false,
        message: "connection refused".into(),
    }));
    let stale = at(601) + DEFAULT_PROFILE_MAX_AGE;
    let p = profiles.get(&page(), &ada, stale).await.unwrap();
    assert_eq!(p.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(p.fetched_at, at(600));
    assert_eq!(api.profile_requests(ADA), 3);
}

#[tokio::test]
async fn what_the_platform_says_is_held_to_the_limits() {
    let (api, _store, profiles) = setup();
    api.serve_profile(
        ADA,
        UserProfile {
            name: Some(format!("A{}", "x".repeat(1_000))),
            profile_pic: Some("http://insecure.example/a.jpg".into()),
            ..UserProfile::default()
        },
    );
    let p = profiles
        .get(&page(), &UserId::from(ADA), at(0))
        .await
        .unwrap();
    assert_eq!(p.name.unwrap().chars().count(), PROFILE_NAME_MAX_CHARS);
    assert_eq!(p.picture_url, None, "only https pictures are kept");
}

#[tokio::test]
async fn concurrent_callers_ask_once() {
    let (api, _store, profiles) = setup();
    api.serve_profile(ADA, ada_profile());
    let profiles = Arc::new(profiles);
    let ada = UserId::from(ADA);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (profiles, ada) = (profiles.clone(), ada.clone());
            tokio::spawn(async move { profiles.get(&page(), &ada, at(0)).await.unwrap() })
        })
        .collect();
    for c in calls {
        c.await.unwrap();
    }
    assert_eq!(api.profile_requests(ADA), 1);
    assert_eq!(
        profiles
            .get(&page(), &ada, at(1))
            .await
            .unwrap()
            .name
            .as_deref(),
        Some("Ada Lovelace")
    );
}

/// A store whose next `save_profile` never answers, as a stalled database.
struct Stalling {
    inner: InMemoryStore,
    stall: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl ProfileStore for Stalling {
    async fn profile(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<CustomerProfile>, messenger_channel::store::StoreError> {
        self.inner.profile(page, customer).await
    }

    async fn save_profile(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
        profile: &CustomerProfile,
    ) -> Result<(), messenger_channel::store::StoreError> {
        if self.stall.swap(false, std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        self.inner.save_profile(page, customer, profile).await
    }
}

/// A call the host gives up on (its own timeout, a dropped request) does not leave the fetch
/// marked as running: the next call fetches, instead of showing the fallback name for good.
#[tokio::test]
async fn a_call_given_up_mid_fetch_does_not_pin_the_fallback() {
    let api = Arc::new(FakeSend::new());
    api.serve_profile(ADA, ada_profile());
    let store = Arc::new(Stalling {
        inner: InMemoryStore::new(),
        stall: std::sync::atomic::AtomicBool::new(true),
    });
    let profiles = Profiles::new(api.clone(), store);
    let ada = UserId::from(ADA);
    let given_up = tokio::time::timeout(
        Duration::from_millis(50),
        profiles.get(&page(), &ada, at(0)),
    )
    .await;
    assert!(given_up.is_err(), "the first call stalled and was dropped");
    let profile = profiles.get(&page(), &ada, at(1)).await.unwrap();
    assert_eq!(profile.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(api.profile_requests(ADA), 2, "fetched again");
}

/// With `EngineBuilder::profiles`, a conversation that starts through the webhook has its
/// customer's profile fetched once, in the background, and kept; later messages fetch
/// nothing more.
#[cfg(feature = "worker")]
#[tokio::test]
async fn a_new_conversation_fetches_its_customers_profile_once() {
    use messenger_channel::engine::Engine;
    use messenger_channel::testing::WebhookBody;
    use messenger_channel::webhook::Webhook;

    let api = Arc::new(FakeSend::new());
    api.serve_profile(ADA, ada_profile());
    let store = Arc::new(InMemoryStore::new());
    let profiles = Arc::new(Profiles::new(api.clone(), store.clone()));
    let secret = messenger_channel::secret::AppSecret::new("app-secret").unwrap();
    let engine = Engine::builder(Webhook::new(&secret), api.clone())
        .store(store.clone())
        .profiles(profiles.clone())
        .build();
    for (i, text) in ["hello", "anyone?"].into_iter().enumerate() {
        let at = at(i as u64);
        let body = WebhookBody::new(page().as_str()).message(ADA, &format!("m{i}"), text, at);
        let (headers, bytes) = body.sign(&secret).into_parts();
        engine.handle_webhook(&headers, &bytes, at).await.unwrap();
        // Wait, with a deadline, for the background fetch to be kept.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while profiles
            .cached(&page(), &UserId::from(ADA))
            .await
            .unwrap()
            .is_none()
        {
            assert!(std::time::Instant::now() < deadline, "never fetched");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let kept = profiles
        .cached(&page(), &UserId::from(ADA))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(api.profile_requests(ADA), 1);
}
