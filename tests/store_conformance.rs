//! The conformance suite against every backend: memory, SQLite, PostgreSQL.
//!
//! PostgreSQL's URL comes from `MESSENGER_CHANNEL_TEST_POSTGRES`. `.ci/run` always sets it;
//! elsewhere, when it is unset, the PostgreSQL tests print a loud skip message.

#[path = "support/conformance.rs"]
#[allow(dead_code, unreachable_pub)]
mod conformance;

use std::sync::Arc;

use messenger_channel::store::{InMemoryDedup, InMemoryMediaStore, InMemoryStore};

/// The three in-memory stores as one value, so the suite can take them together.
#[derive(Default)]
struct Memory {
    store: InMemoryStore,
    dedup: InMemoryDedup,
    media: InMemoryMediaStore,
}

mod delegate {
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use messenger_channel::conversation::TranscriptLine;
    use messenger_channel::ids::{AgentId, ConversationId, PageId, UserId};
    use messenger_channel::store::*;

    use super::Memory;

    #[async_trait::async_trait]
    impl ConversationStore for Memory {
        async fn find_open(
            &self,
            p: &PageId<'_>,
            c: &UserId<'_>,
        ) -> Result<Option<Stored>, StoreError> {
            self.store.find_open(p, c).await
        }
        async fn load(&self, id: &ConversationId) -> Result<Option<Stored>, StoreError> {
            self.store.load(id).await
        }
        async fn commit(&self, c: &Commit) -> Result<(u64, Vec<PendingEffect>), StoreError> {
            self.store.commit(c).await
        }
        async fn append(
            &self,
            id: &ConversationId,
            l: Vec<TranscriptLine>,
        ) -> Result<(), StoreError> {
            self.store.append(id, l).await
        }
        async fn transcript(&self, id: &ConversationId) -> Result<Vec<TranscriptLine>, StoreError> {
            self.store.transcript(id).await
        }
        async fn list_for_agent(&self, a: &AgentId) -> Result<Vec<Stored>, StoreError> {
            self.store.list_for_agent(a).await
        }
        async fn list_open(&self) -> Result<Vec<Stored>, StoreError> {
            self.store.list_open().await
        }
        async fn due(&self, now: SystemTime) -> Result<Vec<ConversationId>, StoreError> {
            self.store.due(now).await
        }
        async fn pending(&self, limit: usize) -> Result<Vec<PendingEffect>, StoreError> {
            self.store.pending(limit).await
        }
        async fn complete(&self, key: &str) -> Result<(), StoreError> {
            self.store.complete(key).await
        }
    }

    #[async_trait::async_trait]
    impl DedupStore for Memory {
        async fn first_seen(
            &self,
            k: &str,
            now: SystemTime,
            ttl: Duration,
        ) -> Result<bool, StoreError> {
            self.dedup.first_seen(k, now, ttl).await
        }
        async fn forget(&self, k: &str) -> Result<(), StoreError> {
            self.dedup.forget(k).await
        }
    }

    #[async_trait::async_trait]
    impl MediaStore for Memory {
        async fn put(&self, b: Bytes, t: Option<&str>) -> Result<String, StoreError> {
            self.media.put(b, t).await
        }
        async fn get(&self, k: &str) -> Result<Option<(Bytes, Option<String>)>, StoreError> {
            self.media.get(k).await
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend() {
    conformance::run(Arc::new(Memory::default())).await;
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backend() {
    let dir = tempfile::tempdir().unwrap();
    let store = messenger_channel::store::SqliteStore::open(dir.path().join("channel.db"))
        .await
        .unwrap();
    conformance::run(Arc::new(store)).await;
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
    let key = media
        .put(bytes.clone(), Some("application/pdf"))
        .await
        .unwrap();
    assert_eq!(media.put(bytes.clone(), None).await.unwrap(), key);
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

/// The PostgreSQL URL, or `None` (with a loud message) outside CI when it is not configured.
#[cfg(feature = "postgres")]
pub(crate) fn postgres_url() -> Option<String> {
    match std::env::var("MESSENGER_CHANNEL_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set MESSENGER_CHANNEL_TEST_POSTGRES"
            );
            eprintln!(
                "\n*** SKIPPED: PostgreSQL tests need MESSENGER_CHANNEL_TEST_POSTGRES (see README) ***\n"
            );
            None
        }
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backend() {
    let Some(url) = postgres_url() else { return };
    let store = messenger_channel::store::PostgresStore::connect(&url)
        .await
        .unwrap();
    conformance::run(Arc::new(store)).await;
}
