//! Regressions found by review: a short store outage with a chatty customer, the same file
//! sent twice, standby messages in Waiting, and the privacy notice of a standby start.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use messenger_channel::agents::{InMemoryRouter, Presence, RecordingNotifier};
use messenger_channel::conversation::{
    Conversation, ConversationConfig, Effect, FileLine, Inbound, Input, LineBody, MediaState,
    TranscriptLine,
};
use messenger_channel::engine::Engine;
use messenger_channel::ids::{AgentId, ConversationId, PageId, UserId};
use messenger_channel::send::{Media, MediaKind};
use messenger_channel::store::{
    Commit, ConversationStore, InMemoryStore, InboxEvent, Lease, NewInboxEvent, OutboxStats,
    PendingEffect, Retry, StoreError, Stored,
};
use messenger_channel::testing::{FakeSend, t0};
use messenger_channel::webhook::Webhook;
use support::channel::{CUSTOMER, Channel, PAGE, secret, signed, webhook};

/// A store whose commits fail while `down` (a partial outage: the inbox still answers).
struct Outage {
    inner: Arc<InMemoryStore>,
    down: AtomicBool,
}

#[async_trait::async_trait]
impl ConversationStore for Outage {
    async fn find_open(
        &self,
        p: &PageId<'_>,
        c: &UserId<'_>,
    ) -> Result<Option<Stored>, StoreError> {
        self.inner.find_open(p, c).await
    }
    async fn load(&self, id: &ConversationId) -> Result<Option<Stored>, StoreError> {
        self.inner.load(id).await
    }
    async fn load_all(&self, ids: &[ConversationId]) -> Result<Vec<Stored>, StoreError> {
        self.inner.load_all(ids).await
    }
    async fn complete_all(&self, keys: &[String]) -> Result<(), StoreError> {
        self.inner.complete_all(keys).await
    }
    async fn commit(&self, commit: &Commit) -> Result<(u64, Vec<PendingEffect>), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("connection reset".into()));
        }
        self.inner.commit(commit).await
    }
    async fn append(&self, id: &ConversationId, l: Vec<TranscriptLine>) -> Result<(), StoreError> {
        self.inner.append(id, l).await
    }
    async fn transcript(&self, id: &ConversationId) -> Result<Vec<TranscriptLine>, StoreError> {
        self.inner.transcript(id).await
    }
    async fn update_file(
        &self,
        id: &ConversationId,
        url: &str,
        f: &FileLine,
    ) -> Result<Vec<TranscriptLine>, StoreError> {
        self.inner.update_file(id, url, f).await
    }
    async fn forget_message(
        &self,
        id: &ConversationId,
        mid: &str,
    ) -> Result<Vec<TranscriptLine>, StoreError> {
        self.inner.forget_message(id, mid).await
    }
    async fn complete_sent(
        &self,
        sent: &[messenger_channel::store::SentMessage],
    ) -> Result<(), StoreError> {
        self.inner.complete_sent(sent).await
    }
    async fn list_for_agent(&self, a: &AgentId) -> Result<Vec<Stored>, StoreError> {
        self.inner.list_for_agent(a).await
    }
    async fn list_open(&self) -> Result<Vec<Stored>, StoreError> {
        self.inner.list_open().await
    }
    async fn list_queued(&self) -> Result<Vec<Stored>, StoreError> {
        self.inner.list_queued().await
    }
    async fn due(&self, now: SystemTime) -> Result<Vec<ConversationId>, StoreError> {
        self.inner.due(now).await
    }
    async fn pending(&self, limit: usize) -> Result<Vec<PendingEffect>, StoreError> {
        self.inner.pending(limit).await
    }
    async fn claim_effects(
        &self,
        lease: &Lease,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<PendingEffect>, StoreError> {
        self.inner.claim_effects(lease, now, limit).await
    }
    async fn renew_claims(
        &self,
        lease: &Lease,
        keys: &[String],
    ) -> Result<Vec<String>, StoreError> {
        self.inner.renew_claims(lease, keys).await
    }
    async fn drop_claims(&self, owner: &str) -> Result<u64, StoreError> {
        self.inner.drop_claims(owner).await
    }
    async fn complete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.complete(key).await
    }
    async fn reschedule(
        &self,
        key: &str,
        owner: &str,
        retry: &Retry,
    ) -> Result<Option<u32>, StoreError> {
        self.inner.reschedule(key, owner, retry).await
    }
    async fn fail_effect(
        &self,
        key: &str,
        owner: &str,
        error: &str,
        lines: &[TranscriptLine],
    ) -> Result<bool, StoreError> {
        self.inner.fail_effect(key, owner, error, lines).await
    }
    async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        self.inner.outbox_stats().await
    }
    async fn receive(
        &self,
        e: &[NewInboxEvent],
        now: SystemTime,
        keep: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        self.inner.receive(e, now, keep).await
    }
    async fn record_webhook(&self, body: &[u8], now: SystemTime) -> Result<(), StoreError> {
        self.inner.record_webhook(body, now).await
    }
    async fn webhooks(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<messenger_channel::store::RecordedWebhook>, StoreError> {
        self.inner.webhooks(after, limit).await
    }
    async fn unpack_webhook(
        &self,
        seq: u64,
        e: &[NewInboxEvent],
        now: SystemTime,
        keep: Duration,
    ) -> Result<Vec<bool>, StoreError> {
        self.inner.unpack_webhook(seq, e, now, keep).await
    }
    async fn inbox(&self, thread: &str, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        self.inner.inbox(thread, limit).await
    }
    async fn inbox_pending(&self, from: u64, limit: usize) -> Result<Vec<InboxEvent>, StoreError> {
        self.inner.inbox_pending(from, limit).await
    }
    async fn inbox_threads(&self, by: SystemTime, limit: usize) -> Result<Vec<String>, StoreError> {
        self.inner.inbox_threads(by, limit).await
    }
    async fn inbox_done(&self, seq: u64) -> Result<bool, StoreError> {
        self.inner.inbox_done(seq).await
    }
    async fn inbox_failed(&self, seq: u64, e: &str, at: SystemTime) -> Result<u32, StoreError> {
        self.inner.inbox_failed(seq, e, at).await
    }
    async fn inbox_dead(&self, seq: u64, e: &str) -> Result<bool, StoreError> {
        self.inner.inbox_dead(seq, e).await
    }
    async fn purge_inbox(&self, before: SystemTime) -> Result<u64, StoreError> {
        self.inner.purge_inbox(before).await
    }
}

async fn texts_of(store: &InMemoryStore, customer: &str) -> Vec<String> {
    let Some(c) = store
        .find_open(&PageId::from(PAGE), &UserId::from(customer))
        .await
        .unwrap()
    else {
        return Vec::new();
    };
    store
        .transcript(c.conversation.id())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|l| match l.body {
            LineBody::Text(t) => Some(t),
            _ => None,
        })
        .collect()
}

/// A 1.2-second partial outage (commits fail, the inbox answers) while the customer writes 12
/// messages: a store failure never sets an event aside, and new webhooks do not retry a head
/// event before its backoff; once the store is back, all 12 are recorded.
#[tokio::test]
async fn a_short_outage_and_a_chatty_customer_lose_no_message() {
    let inner = Arc::new(InMemoryStore::new());
    let store = Arc::new(Outage {
        inner: inner.clone(),
        down: AtomicBool::new(true),
    });
    let router = Arc::new(InMemoryRouter::new());
    router.set_presence(&AgentId::from("alice"), Presence::Available);
    let engine = Engine::builder(Webhook::new(&secret()), Arc::new(FakeSend::new()))
        .store(store.clone())
        .router(router)
        .notifier(Arc::new(RecordingNotifier::new()))
        .build();
    for i in 0..12_u64 {
        let at = t0() + Duration::from_millis(100 * i);
        let (h, b) =
            signed(webhook().message(CUSTOMER, &format!("m_{i}"), &format!("msg {i}"), at));
        engine.handle_webhook(&h, &b, at).await.unwrap();
    }
    // The database is back 1.2 s after it went away.
    store.down.store(false, Ordering::SeqCst);
    for k in 5..10 {
        engine.tick(t0() + Duration::from_secs(k)).await.unwrap();
    }
    let texts = texts_of(&inner, CUSTOMER).await;
    assert_eq!(texts.len(), 12, "{texts:?}");
    assert!(texts.contains(&"msg 0".to_owned()), "{texts:?}");
}

fn png() -> Media {
    Media {
        bytes: bytes::Bytes::from_static(include_bytes!("../examples/sample/logo.png")),
        content_type: Some("image/png".into()),
        file_name: None,
    }
}

/// The same file URL twice in one conversation (a sticker sent twice; a forwarded file): one
/// fetch keeps the file for both lines; neither stays "receiving the file…".
#[tokio::test]
async fn a_file_sent_twice_is_kept_on_both_lines() {
    let ch = Channel::with_store(
        &["alice"],
        ConversationConfig::default(),
        true,
        InMemoryStore::new(),
    );
    let url = "https://scontent.xx.fbcdn.net/v/sticker_like.png";
    ch.send.serve(url, png());
    for (i, mid) in ["m_1", "m_2"].into_iter().enumerate() {
        let at = t0() + Duration::from_secs(i as u64);
        let (h, b) = signed(webhook().attachment(CUSTOMER, mid, MediaKind::File, url, at));
        ch.engine.handle_webhook(&h, &b, at).await.unwrap();
    }
    for k in 3..6 {
        ch.engine.tick(t0() + Duration::from_secs(k)).await.unwrap();
    }
    let files = ch.file_lines(CUSTOMER).await;
    assert_eq!(files.len(), 2);
    assert!(
        ch.store.pending(100).await.unwrap().is_empty(),
        "no fetch left to do"
    );
    assert_eq!(files[0].media, MediaState::Stored);
    assert_eq!(files[1].media, MediaState::Stored, "{:?}", files[1]);
}

/// A customer writing on standby to a Waiting conversation: it goes back to the queue, paused,
/// with no offer until the thread is passed back (an agent could not send).
#[test]
fn a_standby_message_in_waiting_requests_no_offer_while_paused() {
    let cfg = ConversationConfig::default();
    let alice = AgentId::from("alice");
    let (mut c, _) = Conversation::start(
        ConversationId::new("c1"),
        PageId::from(PAGE),
        UserId::from(CUSTOMER),
        Inbound::new(Some("m1".into()), vec![LineBody::Text("hi".into())]),
        t0(),
        &cfg,
    );
    c.apply(Input::OfferTo(alice.clone()), t0(), &cfg).unwrap();
    c.apply(Input::Accept(alice.clone()), t0(), &cfg).unwrap();
    c.apply(Input::CloseSession(alice), t0(), &cfg).unwrap();
    let out = c
        .apply(
            Input::CustomerMessage(
                Inbound::new(Some("m2".into()), vec![LineBody::Text("again".into())])
                    .on_standby(true),
            ),
            t0() + Duration::from_secs(10),
            &cfg,
        )
        .unwrap();
    assert!(c.is_paused());
    assert!(
        !out.effects
            .iter()
            .any(|e| matches!(e, Effect::RequestOffer { .. })),
        "{out:?}"
    );
}

/// A conversation started on standby sends the configured privacy notice when the thread is
/// passed back, before agents start talking.
#[test]
fn a_standby_start_sends_the_privacy_notice_when_the_thread_comes_back() {
    let cfg = ConversationConfig::default().privacy_notice(Some("We record this chat.".into()));
    let (mut c, first) = Conversation::start(
        ConversationId::new("c1"),
        PageId::from(PAGE),
        UserId::from(CUSTOMER),
        Inbound::new(Some("m1".into()), vec![LineBody::Text("hi".into())]).on_standby(true),
        t0(),
        &cfg,
    );
    let back = c
        .apply(Input::ThreadReturned, t0() + Duration::from_secs(5), &cfg)
        .unwrap();
    let sent_notice = first.effects.iter().chain(&back.effects).any(|e| {
        matches!(
            e,
            Effect::Send {
                message: messenger_channel::conversation::Outgoing::PrivacyNotice(_),
                ..
            }
        )
    });
    assert!(sent_notice, "{first:?} {back:?}");
}
