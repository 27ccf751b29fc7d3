//! A `ConversationStore` wrapper that injects one fault at the k-th call: fail before the
//! call, fail after it (the change happened, the caller is told it did not), or hang after it
//! (the change happened, the caller never hears back).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use messenger_channel::conversation::{FileLine, TranscriptLine};
use messenger_channel::ids::{AgentId, ConversationId, PageId, QueueId, UserId};
use messenger_channel::store::{
    Commit, ConversationStore, InboxEvent, Lease, NewInboxEvent, OutboxStats, PendingEffect,
    QueuePlace, Queued, RecordedWebhook, Retry, StoreError, Stored,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    FailBefore,
    FailAfter,
    HangAfter,
}

pub const FAULTS: [Fault; 3] = [Fault::FailBefore, Fault::FailAfter, Fault::HangAfter];

pub struct FaultyStore<S> {
    inner: Arc<S>,
    calls: AtomicU64,
    /// The call (1-based) that faults; 0 for none.
    at: AtomicU64,
    fault: Fault,
    /// `unpack_webhook` of this recorded body fails (0: none).
    failing_unpack: AtomicU64,
    /// What `list_queued` answers instead of the store's list, when set: a snapshot read
    /// earlier, as an instance whose tick read the queue before another instance's offer.
    pub stale_queue: std::sync::Mutex<Option<Vec<Stored>>>,
    /// How many times the waiting conversations were read: `list_queued`, or a page of them
    /// (`list_queued_after`).
    pub list_queued_calls: AtomicU64,
    /// How many waiting conversations those reads returned.
    pub queued_read: AtomicU64,
    /// How many times `list_queue` was called (a queue's conversations, with their bodies).
    pub list_queue_calls: AtomicU64,
    /// How many times `queued_ahead` was called.
    pub queued_ahead_calls: AtomicU64,
}

impl<S> FaultyStore<S> {
    pub fn new(inner: Arc<S>, at: u64, fault: Fault) -> Self {
        Self {
            inner,
            calls: AtomicU64::new(0),
            at: AtomicU64::new(at),
            fault,
            failing_unpack: AtomicU64::new(0),
            stale_queue: std::sync::Mutex::new(None),
            list_queued_calls: AtomicU64::new(0),
            queued_read: AtomicU64::new(0),
            list_queue_calls: AtomicU64::new(0),
            queued_ahead_calls: AtomicU64::new(0),
        }
    }

    /// Makes `unpack_webhook` of the body `seq` fail (0: none), whatever the call count.
    pub fn fail_unpack_of(&self, seq: u64) {
        self.failing_unpack.store(seq, Ordering::SeqCst);
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// No more faults.
    pub fn heal(&self) {
        self.at.store(0, Ordering::SeqCst);
    }

    fn injected() -> StoreError {
        StoreError::Backend("injected fault".into())
    }

    /// Whether this call is the faulty one.
    fn this_one(&self) -> Option<Fault> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        (n == self.at.load(Ordering::SeqCst)).then_some(self.fault)
    }

    async fn around<T, F>(&self, call: F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        match self.this_one() {
            None => call.await,
            Some(Fault::FailBefore) => Err(Self::injected()),
            Some(Fault::FailAfter) => {
                let _ = call.await;
                Err(Self::injected())
            }
            Some(Fault::HangAfter) => {
                let _ = call.await;
                std::future::pending().await
            }
        }
    }
}

#[async_trait::async_trait]
impl<S: ConversationStore + 'static> ConversationStore for FaultyStore<S> {
    async fn find_open(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<Stored>, StoreError> {
        self.around(self.inner.find_open(page, customer)).await
    }
    async fn find_latest(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<Stored>, StoreError> {
        self.around(self.inner.find_latest(page, customer)).await
    }
    async fn load(&self, id: &ConversationId) -> Result<Option<Stored>, StoreError> {
        self.around(self.inner.load(id)).await
    }
    async fn load_all(&self, ids: &[ConversationId]) -> Result<Vec<Stored>, StoreError> {
        self.around(self.inner.load_all(ids)).await
    }
    async fn complete_all(&self, keys: &[String]) -> Result<(), StoreError> {
        self.around(self.inner.complete_all(keys)).await
    }
    async fn commit(&self, commit: &Commit) -> Result<(u64, Vec<PendingEffect>), StoreError> {
        self.around(self.inner.commit(commit)).await
    }
    async fn append(
        &self,
        id: &ConversationId,
        lines: Vec<TranscriptLine>,
    ) -> Result<(), StoreError> {
        self.around(self.inner.append(id, lines)).await
    }
    async fn transcript(&self, id: &ConversationId) -> Result<Vec<TranscriptLine>, StoreError> {
        self.around(self.inner.transcript(id)).await
    }
    async fn update_file(
        &self,
        id: &ConversationId,
        url: &str,
        file: &FileLine,
    ) -> Result<Vec<TranscriptLine>, StoreError> {
        self.around(self.inner.update_file(id, url, file)).await
    }
    async fn forget_message(
        &self,
        id: &ConversationId,
        mid: &str,
    ) -> Result<Vec<TranscriptLine>, StoreError> {
        self.around(self.inner.forget_message(id, mid)).await
    }
    async fn complete_sent(
        &self,
        sent: &[messenger_channel::store::SentMessage],
    ) -> Result<(), StoreError> {
        self.around(self.inner.complete_sent(sent)).await
    }
    async fn list_for_agent(&self, agent: &AgentId) -> Result<Vec<Stored>, StoreError> {
        self.around(self.inner.list_for_agent(agent)).await
    }
    async fn list_open(&self) -> Result<Vec<Stored>, StoreError> {
        self.around(self.inner.list_open()).await
    }
    async fn list_queued(&self) -> Result<Vec<Stored>, StoreError> {
        self.list_queued_calls.fetch_add(1, Ordering::SeqCst);
        let stale = self.stale_queue.lock().unwrap().clone();
        let all = match stale {
            Some(stale) => stale,
            None => self.around(self.inner.list_queued()).await?,
        };
        self.queued_read
            .fetch_add(all.len() as u64, Ordering::SeqCst);
        Ok(all)
    }
    async fn list_queued_after(
        &self,
        after: Option<&QueuePlace>,
        limit: usize,
    ) -> Result<Vec<Queued>, StoreError> {
        self.list_queued_calls.fetch_add(1, Ordering::SeqCst);
        let stale = self.stale_queue.lock().unwrap().clone();
        let page = match stale {
            // The page of the old list, in the order of places.
            Some(mut stale) => {
                stale.retain(|s| after.is_none_or(|a| QueuePlace::of(&s.conversation) > *a));
                stale.sort_by_key(|s| QueuePlace::of(&s.conversation));
                stale.truncate(limit);
                stale.into_iter().map(Queued::new).collect()
            }
            None => {
                self.around(self.inner.list_queued_after(after, limit))
                    .await?
            }
        };
        self.queued_read
            .fetch_add(page.len() as u64, Ordering::SeqCst);
        Ok(page)
    }
    async fn list_queue(
        &self,
        queue: Option<&QueueId>,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        self.list_queue_calls.fetch_add(1, Ordering::SeqCst);
        self.around(self.inner.list_queue(queue, limit)).await
    }
    async fn queued_ahead(
        &self,
        queue: Option<&QueueId>,
        place: &QueuePlace,
    ) -> Result<usize, StoreError> {
        self.queued_ahead_calls.fetch_add(1, Ordering::SeqCst);
        self.around(self.inner.queued_ahead(queue, place)).await
    }
    async fn due(&self, now: SystemTime) -> Result<Vec<ConversationId>, StoreError> {
        self.around(self.inner.due(now)).await
    }
    async fn pending(&self, limit: usize) -> Result<Vec<PendingEffect>, StoreError> {
        self.around(self.inner.pending(limit)).await
    }
    async fn claim_effects(
        &self,
        lease: &Lease,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<PendingEffect>, StoreError> {
        self.around(self.inner.claim_effects(lease, now, limit))
            .await
    }
    async fn renew_claims(
        &self,
        lease: &Lease,
        keys: &[String],
    ) -> Result<Vec<String>, StoreError> {
        self.around(self.inner.renew_claims(lease, keys)).await
    }
    async fn drop_claims(&self, owner: &str) -> Result<u64, StoreError> {
        self.around(self.inner.drop_claims(owner)).await
    }
    async fn complete(&self, key: &str) -> Result<(), StoreError> {
        self.around(self.inner.complete(key)).await
    }
    async fn reschedule(
        &self,
        key: &str,
        owner: &str,
        retry: &Retry,
    ) -> Result<Option<u32>, StoreError> {
        self.around(self.inner.reschedule(key, owner, retry)).await
    }
    async fn fail_effect(
        &self,
        key: &str,
        owner: &str,
        error: &str,
        lines: &[TranscriptLine],
    ) -> Result<bool, StoreError> {
        self.around(self.inner.fail_effect(key, owner, error, lines))
            .await
    }
    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        self.around(self.inner.outbox_stats()).await
    }
    async fn receive(
        &self,
        events: &[NewInboxEvent],
        now: SystemTime,
        keep: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        self.around(self.inner.receive(events, now, keep)).await
    }
    async fn record_webhook(&self, body: &[u8], now: SystemTime) -> Result<(), StoreError> {
        self.around(self.inner.record_webhook(body, now)).await
    }
    async fn webhooks(&self, after: u64, limit: usize) -> Result<Vec<RecordedWebhook>, StoreError> {
        self.around(self.inner.webhooks(after, limit)).await
    }
    async fn unpack_webhook(
        &self,
        seq: u64,
        events: &[NewInboxEvent],
        now: SystemTime,
        keep: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        if seq == self.failing_unpack.load(Ordering::SeqCst) {
            return Err(Self::injected());
        }
        self.around(self.inner.unpack_webhook(seq, events, now, keep))
            .await
    }
    async fn inbox(&self, thread: &str, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        self.around(self.inner.inbox(thread, limit)).await
    }
    async fn inbox_pending(&self, from: u64, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        self.around(self.inner.inbox_pending(from, limit)).await
    }
    async fn inbox_threads(
        &self,
        received_by: SystemTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.around(self.inner.inbox_threads(received_by, limit))
            .await
    }
    async fn inbox_done(&self, seq: u64) -> Result<bool, StoreError> {
        self.around(self.inner.inbox_done(seq)).await
    }
    async fn inbox_failed(
        &self,
        seq: u64,
        error: &str,
        retry_at: SystemTime,
    ) -> Result<u32, StoreError> {
        self.around(self.inner.inbox_failed(seq, error, retry_at))
            .await
    }
    async fn inbox_dead(&self, seq: u64, error: &str) -> Result<bool, StoreError> {
        self.around(self.inner.inbox_dead(seq, error)).await
    }
    async fn purge_inbox(&self, received_before: SystemTime) -> Result<u64, StoreError> {
        self.around(self.inner.purge_inbox(received_before)).await
    }
}
