//! The conformance suite (`testing::conformance`, what hosts run on their own backends)
//! against every backend of the crate: memory, SQLite, PostgreSQL; and the file media store.
//!
//! PostgreSQL's URL comes from `MESSENGER_CHANNEL_TEST_POSTGRES`. `.ci/run` always sets it;
//! elsewhere, when it is unset, the PostgreSQL tests print a loud skip message.

mod support;

use std::sync::Arc;

use messenger_channel::store::{ConversationStore, InMemoryMediaStore, InMemoryStore};
use messenger_channel::testing::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend() {
    // As a host holds it: behind `dyn`.
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let media = InMemoryMediaStore::new();
    conformance::run(store, &media).await;
    deletes(&media).await;
}

/// A host's store written before `queued_ahead` and `list_queued_after` existed keeps the
/// contract with the trait's defaults for them (over memory and SQLite).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_without_the_queue_reads_conforms_by_the_defaults() {
    use support::older_store::OlderStore;
    let media = InMemoryMediaStore::new();
    conformance::run(Arc::new(OlderStore(InMemoryStore::new())), &media).await;
    #[cfg(feature = "sqlite")]
    {
        let dir = tempfile::tempdir().unwrap();
        let store = messenger_channel::store::SqliteStore::open(dir.path().join("older.db"))
            .await
            .unwrap();
        conformance::run(Arc::new(OlderStore(store)), &media).await;
    }
}

/// The built-in media stores delete (the suite accepts a store that cannot, as the trait's
/// default): a conversation's file, once; the same bytes of another conversation stay.
async fn deletes(media: &dyn messenger_channel::store::MediaStore) {
    use messenger_channel::ids::ConversationId;
    let bytes = bytes::Bytes::from_static(b"deleted once");
    let (one, two) = (ConversationId::from("del-1"), ConversationId::from("del-2"));
    let key = media.put(&one, bytes.clone(), None).await.unwrap();
    let other = media.put(&two, bytes.clone(), None).await.unwrap();
    assert!(
        media.delete(&key).await.unwrap(),
        "a built-in store deletes"
    );
    assert_eq!(media.get(&key).await.unwrap(), None);
    assert!(!media.delete(&key).await.unwrap(), "once");
    assert_eq!(
        media.get(&other).await.unwrap().map(|(b, _)| b),
        Some(bytes)
    );
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    let store = messenger_channel::store::SqliteStore::open(dir.path().join("channel.db"))
        .await
        .unwrap();
    let store = Arc::new(store);
    conformance::run(store.clone(), &*store).await;
    deletes(&*store).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filesystem_media_store() {
    use messenger_channel::store::MediaStore;
    let dir = tempfile::tempdir().unwrap();
    let media = messenger_channel::store::FsMediaStore::open(dir.path().join("media"))
        .await
        .unwrap();
    let bytes = bytes::Bytes::from_static(b"%PDF-1.7 hello");
    let id = messenger_channel::ids::ConversationId::from("c-1");
    let key = media
        .put(&id, bytes.clone(), Some("application/pdf"))
        .await
        .unwrap();
    assert_eq!(media.put(&id, bytes.clone(), None).await.unwrap(), key);
    // Reopened: still there.
    let again = messenger_channel::store::FsMediaStore::open(dir.path().join("media"))
        .await
        .unwrap();
    assert_eq!(
        again.get(&key).await.unwrap(),
        Some((bytes, Some("application/pdf".into())))
    );
    // Keys that are not digests name nothing, whatever they try.
    assert_eq!(again.get("../../etc/passwd").await.unwrap(), None);
    // No temporary file is left behind.
    let leftovers: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(".tmp"))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    deletes(&again).await;
}

#[cfg(feature = "sqlite")]
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend() {
    let Some(url) = support::postgres::postgres_url() else {
        return;
    };
    let store = messenger_channel::store::PostgresStore::connect(&url)
        .await
        .unwrap();
    let store = Arc::new(store);
    conformance::run(store.clone(), &*store).await;
    deletes(&*store).await;
}

/// The router contract (`conformance::run_router`): in memory, one router as both handles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_router() {
    use messenger_channel::agents::{AgentRouter, InMemoryRouter};
    let router: Arc<dyn AgentRouter> = Arc::new(InMemoryRouter::new());
    conformance::run_router(router.clone(), router).await;
}

/// On SQLite: two stores (two pools) opened on one file.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_router() {
    use messenger_channel::store::SqliteStore;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("channel.db");
    let a = Arc::new(SqliteStore::open(&path).await.unwrap());
    let b = Arc::new(SqliteStore::open(&path).await.unwrap());
    conformance::run_router(a, b).await;
}

/// On PostgreSQL: two stores (two pools) connected to one database.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_router() {
    use messenger_channel::store::PostgresStore;
    let Some(url) = support::postgres::postgres_url() else {
        return;
    };
    let a = Arc::new(PostgresStore::connect(&url).await.unwrap());
    let b = Arc::new(PostgresStore::connect(&url).await.unwrap());
    conformance::run_router(a, b).await;
}

/// The profile store contract (`conformance::run_profiles`): customers' names and pictures,
/// in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_profiles() {
    use messenger_channel::profile::ProfileStore;
    let store: Arc<dyn ProfileStore> = Arc::new(InMemoryStore::new());
    conformance::run_profiles(store).await;
}

/// On SQLite.
#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let store = messenger_channel::store::SqliteStore::open(dir.path().join("channel.db"))
        .await
        .unwrap();
    conformance::run_profiles(Arc::new(store)).await;
}

/// On PostgreSQL.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_profiles() {
    let Some(url) = support::postgres::postgres_url() else {
        return;
    };
    let store = messenger_channel::store::PostgresStore::connect(&url)
        .await
        .unwrap();
    conformance::run_profiles(Arc::new(store)).await;
}

/// A recorded body that a stalled transaction holds (its row locked) does not hold its
/// unpacker forever: after PostgreSQL's `lock_timeout` (5 s, the store's setting) the unpack
/// fails and records nothing; once the holder is gone the body unpacks, all of it.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_holder_of_a_recorded_body_makes_its_unpacker_fail_not_hang() {
    use messenger_channel::store::{ConversationStore, NewInboxEvent, PostgresStore};
    use std::time::{Duration, Instant, SystemTime};

    let Some(url) = support::postgres::postgres_url() else {
        return;
    };
    let url = support::postgres::fresh_postgres_database(&url, "mc_unpack_lock").await;
    let store = PostgresStore::connect(&url).await.unwrap();
    let now = SystemTime::now();
    store.record_webhook(b"{\"entry\":[]}", now).await.unwrap();
    let seq = store.webhooks(0, 10).await.unwrap()[0].seq;
    let events = [NewInboxEvent {
        key: "k1".into(),
        thread: "p:c".into(),
        body: "{}".into(),
    }];
    let keep = Duration::from_secs(3600);

    // Another connection holds the body's row, as a stalled unpacker would.
    let other = sqlx::PgPool::connect(&url).await.unwrap();
    let mut holder = other.begin().await.unwrap();
    sqlx::query("SELECT seq FROM webhooks WHERE seq = $1 FOR UPDATE")
        .bind(i64::try_from(seq).unwrap())
        .execute(&mut *holder)
        .await
        .unwrap();
    let started = Instant::now();
    let failed = tokio::time::timeout(
        Duration::from_secs(60),
        store.unpack_webhook(seq, &events, now, keep),
    )
    .await
    .expect("the unpacker gave up instead of waiting for ever");
    assert!(failed.is_err(), "{failed:?}");
    assert!(started.elapsed() >= Duration::from_secs(5));
    assert_eq!(store.webhooks(0, 10).await.unwrap().len(), 1, "kept");
    assert!(
        store.inbox("p:c", 10).await.unwrap().is_empty(),
        "nothing recorded"
    );

    holder.rollback().await.unwrap();
    let fresh = store.unpack_webhook(seq, &events, now, keep).await.unwrap();
    assert_eq!(fresh, [true]);
    assert!(store.webhooks(0, 10).await.unwrap().is_empty());
    assert_eq!(store.inbox("p:c", 10).await.unwrap().len(), 1);
}
