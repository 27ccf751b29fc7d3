//! The [`ProfileStore`] contract as one suite ([`run_profiles`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{check_in, unique};
use crate::ids::{PageId, UserId};
use crate::profile::{CustomerProfile, ProfileStore};
use crate::testing::t0;

/// Each check's name and the contract it holds the store to.
const CHECKS: [(&str, &str); 3] = [
    (
        "profiles_round_trip",
        "`profile` returns what `save_profile` kept for the page and customer (name, https picture, fetch time to the millisecond; a refusal with neither), and nothing for another page or customer",
    ),
    (
        "newer_fetches_replace_older_ones",
        "`save_profile` replaces a kept profile fetched at the same time or earlier, never one fetched later",
    ),
    (
        "concurrent_saves_keep_the_newest",
        "of concurrent saves for one page and customer, the profile fetched last stays",
    ),
];

/// Runs every check of the [`ProfileStore`] contract against a backend.
///
/// The checks use pages and customers named uniquely for the run, so the database may hold
/// other profiles, and other runs may share it at the same time.
///
/// ```
/// use std::sync::Arc;
/// use messenger_channel::profile::ProfileStore;
/// use messenger_channel::store::InMemoryStore;
/// use messenger_channel::testing::conformance;
///
/// #[tokio::main]
/// async fn main() {
///     let store: Arc<dyn ProfileStore> = Arc::new(InMemoryStore::new());
///     conformance::run_profiles(store).await;
/// }
/// ```
///
/// | check | the contract |
/// |---|---|
/// | `profiles_round_trip` | `profile` returns what `save_profile` kept for the page and customer (name, https picture, fetch time to the millisecond; a refusal with neither), and nothing for another page or customer |
/// | `newer_fetches_replace_older_ones` | `save_profile` replaces a kept profile fetched at the same time or earlier, never one fetched later |
/// | `concurrent_saves_keep_the_newest` | of concurrent saves for one page and customer, the profile fetched last stays |
///
/// # Panics
///
/// At the first contract broken, naming the check and the contract (`profile store
/// conformance: <check> failed ...`); if the store returns an error; outside a tokio runtime.
pub async fn run_profiles<S>(store: Arc<S>)
where
    S: ProfileStore + ?Sized + 'static,
{
    macro_rules! checks {
        ($($check:ident($($arg:expr),*)),* $(,)?) => {$(
            check_in(&CHECKS, "profile store", stringify!($check), $check($($arg),*)).await;
        )*};
    }
    checks!(
        profiles_round_trip(&*store),
        newer_fetches_replace_older_ones(&*store),
        concurrent_saves_keep_the_newest(store.clone()),
    );
}

fn at(millis: u64) -> SystemTime {
    t0() + Duration::from_millis(millis)
}

fn named(name: &str, millis: u64) -> CustomerProfile {
    CustomerProfile::new(
        Some(name),
        Some(&format!("https://cdn.example/{name}.jpg")),
        at(millis),
    )
}

async fn profiles_round_trip<S: ProfileStore + ?Sized>(s: &S) {
    let page = PageId::from(unique("page-"));
    let other_page = PageId::from(unique("page-"));
    let (ada, bob) = (UserId::from(unique("ada-")), UserId::from(unique("bob-")));
    assert_eq!(
        s.profile(&page, &ada).await.unwrap(),
        None,
        "nothing kept yet"
    );
    let profile = named("Ada Lovelace", 1_234);
    s.save_profile(&page, &ada, &profile).await.unwrap();
    assert_eq!(s.profile(&page, &ada).await.unwrap(), Some(profile));
    assert_eq!(
        s.profile(&page, &bob).await.unwrap(),
        None,
        "another customer"
    );
    assert_eq!(
        s.profile(&other_page, &ada).await.unwrap(),
        None,
        "another page"
    );
    let refused = CustomerProfile::refused(at(5_000));
    s.save_profile(&page, &bob, &refused).await.unwrap();
    assert_eq!(s.profile(&page, &bob).await.unwrap(), Some(refused));
}

async fn newer_fetches_replace_older_ones<S: ProfileStore + ?Sized>(s: &S) {
    let page = PageId::from(unique("page-"));
    let ada = UserId::from(unique("ada-"));
    s.save_profile(&page, &ada, &named("First", 2_000))
        .await
        .unwrap();
    s.save_profile(&page, &ada, &named("Older", 1_000))
        .await
        .unwrap();
    assert_eq!(
        s.profile(&page, &ada).await.unwrap(),
        Some(named("First", 2_000)),
        "an older fetch never replaces a newer one"
    );
    s.save_profile(&page, &ada, &named("Same time", 2_000))
        .await
        .unwrap();
    assert_eq!(
        s.profile(&page, &ada).await.unwrap(),
        Some(named("Same time", 2_000))
    );
    let refused = CustomerProfile::refused(at(3_000));
    s.save_profile(&page, &ada, &refused).await.unwrap();
    assert_eq!(
        s.profile(&page, &ada).await.unwrap(),
        Some(refused),
        "a newer refusal replaces the name and picture"
    );
}

async fn concurrent_saves_keep_the_newest<S: ProfileStore + ?Sized + 'static>(s: Arc<S>) {
    let page = PageId::from(unique("page-"));
    let ada = UserId::from(unique("ada-"));
    let tasks: Vec<_> = (0..8u64)
        .map(|i| {
            let (s, page, ada) = (s.clone(), page.clone(), ada.clone());
            tokio::spawn(async move {
                s.save_profile(&page, &ada, &named(&format!("v{i}"), 1_000 + i))
                    .await
                    .unwrap();
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        s.profile(&page, &ada).await.unwrap(),
        Some(named("v7", 1_007))
    );
}
