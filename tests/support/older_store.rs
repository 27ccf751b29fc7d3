//! A `ConversationStore` as a host wrote it before `queued_ahead` and `list_queued_after`
//! existed: it forwards every other method to the store it wraps, and leaves those two to the
//! trait's defaults (which must keep the contract on their own).

use std::time::{Duration, SystemTime};

use messenger_channel::conversation::{FileLine, TranscriptLine};
use messenger_channel::ids::{AgentId, ConversationId, PageId, QueueId, UserId};
use messenger_channel::store::{
    Commit, ConversationStore, InboxEvent, Lease, NewInboxEvent, OutboxStats, PendingEffect,
    RecordedWebhook, Retry, StoreError, Stored,
};

pub struct OlderStore<S>(pub S);

#[async_trait::async_trait]
impl<S: ConversationStore> ConversationStore for OlderStore<S> {
    async fn find_open(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<Stored>, StoreError> {
        self.0.find_open(page, customer).await
    }
    async fn find_latest(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
    ) -> Result<Option<Stored>, StoreError> {
        self.0.find_latest(page, customer).await
    }
    async fn history(
        &self,
        page: &PageId<'_>,
        customer: &UserId<'_>,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        self.0.history(page, customer, limit).await
    }
    async fn load(&self, id: &ConversationId) -> Result<Option<Stored>, StoreError> {
        self.0.load(id).await
    }
    async fn load_all(&self, ids: &[ConversationId]) -> Result<Vec<Stored>, StoreError> {
        self.0.load_all(ids).await
    }
    async fn complete_all(&self, keys: &[String]) -> Result<(), StoreError> {
        self.0.complete_all(keys).await
    }
    async fn commit(&self, commit: &Commit) -> Result<(u64, Vec<PendingEffect>), StoreError> {
        self.0.commit(commit).await
    }
    async fn append(
        &self,
        id: &ConversationId,
        lines: Vec<TranscriptLine>,
    ) -> Result<(), StoreError> {
        self.0.append(id, lines).await
    }
    async fn transcript(&self, id: &ConversationId) -> Result<Vec<TranscriptLine>, StoreError> {
        self.0.transcript(id).await
    }
    async fn update_file(
        &self,
        id: &ConversationId,
        url: &str,
        file: &FileLine,
    ) -> Result<Vec<TranscriptLine>, StoreError> {
        self.0.update_file(id, url, file).await
    }
    async fn forget_message(
        &self,
        id: &ConversationId,
        mid: &str,
    ) -> Result<Vec<TranscriptLine>, StoreError> {
        self.0.forget_message(id, mid).await
    }
    async fn complete_sent(
        &self,
        sent: &[messenger_channel::store::SentMessage],
    ) -> Result<(), StoreError> {
        self.0.complete_sent(sent).await
    }
    async fn list_for_agent(&self, agent: &AgentId) -> Result<Vec<Stored>, StoreError> {
        self.0.list_for_agent(agent).await
    }
    async fn list_open(&self) -> Result<Vec<Stored>, StoreError> {
        self.0.list_open().await
    }
    async fn list_queued(&self) -> Result<Vec<Stored>, StoreError> {
        self.0.list_queued().await
    }
    async fn list_queue(
        &self,
        queue: Option<&QueueId>,
        limit: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        self.0.list_queue(queue, limit).await
    }
    async fn due(&self, now: SystemTime) -> Result<Vec<ConversationId>, StoreError> {
        self.0.due(now).await
    }
    async fn pending(&self, limit: usize) -> Result<Vec<PendingEffect>, StoreError> {
        self.0.pending(limit).await
    }
    async fn claim_effects(
        &self,
        lease: &Lease,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<PendingEffect>, StoreError> {
        self.0.claim_effects(lease, now, limit).await
    }
    async fn renew_claims(
        &self,
        lease: &Lease,
        keys: &[String],
    ) -> Result<Vec<String>, StoreError> {
        self.0.renew_claims(lease, keys).await
    }
    async fn drop_claims(&self, owner: &str) -> Result<u64, StoreError> {
        self.0.drop_claims(owner).await
    }
    async fn complete(&self, key: &str) -> Result<(), StoreError> {
        self.0.complete(key).await
    }
    async fn reschedule(
        &self,
        key: &str,
        owner: &str,
        retry: &Retry,
    ) -> Result<Option<u32>, StoreError> {
        self.0.reschedule(key, owner, retry).await
    }
    async fn fail_effect(
        &self,
        key: &str,
        owner: &str,
        error: &str,
        lines: &[TranscriptLine],
    ) -> Result<bool, StoreError> {
        self.0.fail_effect(key, owner, error, lines).await
    }
    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        self.0.outbox_stats().await
    }
    async fn receive(
        &self,
        events: &[NewInboxEvent],
        now: SystemTime,
        keep: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        self.0.receive(events, now, keep).await
    }
    async fn record_webhook(&self, body: &[u8], now: SystemTime) -> Result<(), StoreError> {
        self.0.record_webhook(body, now).await
    }
    async fn webhooks(&self, after: u64, limit: usize) -> Result<Vec<RecordedWebhook>, StoreError> {
        self.0.webhooks(after, limit).await
    }
    async fn unpack_webhook(
        &self,
        seq: u64,
        events: &[NewInboxEvent],
        now: SystemTime,
        keep: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        self.0.unpack_webhook(seq, events, now, keep).await
    }
    async fn inbox(&self, thread: &str, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        self.0.inbox(thread, limit).await
    }
    async fn inbox_pending(&self, from: u64, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        self.0.inbox_pending(from, limit).await
    }
    async fn inbox_threads(
        &self,
        received_by: SystemTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.0.inbox_threads(received_by, limit).await
    }
    async fn inbox_done(&self, seq: u64) -> Result<bool, StoreError> {
        self.0.inbox_done(seq).await
    }
    async fn inbox_failed(
        &self,
        seq: u64,
        error: &str,
        retry_at: SystemTime,
    ) -> Result<u32, StoreError> {
        self.0.inbox_failed(seq, error, retry_at).await
    }
    async fn inbox_dead(&self, seq: u64, error: &str) -> Result<bool, StoreError> {
        self.0.inbox_dead(seq, error).await
    }
    async fn purge_inbox(&self, received_before: SystemTime) -> Result<u64, StoreError> {
        self.0.purge_inbox(received_before).await
    }
}
