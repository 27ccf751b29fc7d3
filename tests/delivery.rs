//! At-least-once delivery from the outbox, against a fake Graph API that fails in scripted
//! patterns, through the real `GraphClient`. Time is injected (`Engine::deliver_due(now)`),
//! so backoffs of minutes take no time. For every pattern the end state is read from the
//! fake's own log: each message delivered exactly once (by its metadata key), or failed with
//! the reason an agent reads; nothing left pending.
#![cfg(all(feature = "graph", feature = "worker"))]

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use messenger_channel::agents::{InMemoryRouter, Presence, RecordingNotifier};
use messenger_channel::conversation::{ConversationConfig, LineBody};
use messenger_channel::engine::{Delivery, DeliveryConfig, Engine, EngineError, Unconfirmed};
use messenger_channel::ids::{AgentId, AppId, ConversationId, PageId, UserId};
use messenger_channel::secret::PageAccessToken;
use messenger_channel::send::{GraphClient, RetryPolicy};
use messenger_channel::store::{ConversationStore, InMemoryStore};
use messenger_channel::testing::t0;
use messenger_channel::webhook::Webhook;
use support::channel::{CUSTOMER, PAGE, secret, signed, webhook};
use support::fake_graph::{FakeGraph, Pattern};

/// For patterns that answer: far longer than a loopback answer takes on a loaded machine, so
/// an answered send never times out (which would make its outcome unknown).
const PATIENT: Duration = Duration::from_secs(10);
/// For the patterns that never answer: the client's timeout is the only way such a send ends.
/// Short to keep the test fast; the fake never answers, so nothing races it.
const IMPATIENT: Duration = Duration::from_millis(500);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// The stores every scenario runs on.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    #[cfg(feature = "sqlite")]
    Sqlite,
}

fn backends() -> Vec<Backend> {
    vec![
        Backend::Memory,
        #[cfg(feature = "sqlite")]
        Backend::Sqlite,
    ]
}

/// A channel with one Active conversation (the customer wrote at `t0`, alice accepted at
/// `t0 + 1 s`), sending through the real client to the fake.
struct Desk {
    engine: Arc<Engine>,
    store: Arc<dyn ConversationStore>,
    fake: FakeGraph,
    id: ConversationId,
    notifier: Arc<RecordingNotifier>,
    _dir: Option<tempfile::TempDir>,
}

async fn desk(backend: Backend, timeout: Duration, delivery: DeliveryConfig) -> Desk {
    let fake = FakeGraph::start().await;
    let client = GraphClient::builder(PageAccessToken::new("EAAB-delivery-test").unwrap())
        .base_url(fake.base_url())
        .http_client(fake.http_client(timeout))
        // The outbox retries; the client makes one request per attempt.
        .retry(RetryPolicy::never())
        .build()
        .unwrap();
    let (store, dir): (Arc<dyn ConversationStore>, _) = match backend {
        Backend::Memory => (Arc::new(InMemoryStore::new()), None),
        #[cfg(feature = "sqlite")]
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let store = messenger_channel::store::SqliteStore::open(dir.path().join("c.db"))
                .await
                .unwrap();
            (Arc::new(store), Some(dir))
        }
    };
    let router = Arc::new(InMemoryRouter::new());
    router.set_presence(&AgentId::from("alice"), Presence::Available);
    let notifier = Arc::new(RecordingNotifier::new());
    let engine = Arc::new(
        Engine::builder(Webhook::new(&secret()), Arc::new(client))
            .store(store.clone())
            .router(router)
            .notifier(notifier.clone())
            .config(ConversationConfig::default().privacy_notice(None))
            .delivery(delivery)
            .build(),
    );
    let (h, b) = signed(webhook().message(CUSTOMER, "m_in_1", "Where is my order?", t0()));
    engine.handle_webhook(&h, &b, t0()).await.unwrap();
    let id = store
        .find_open(&PageId::from(PAGE), &UserId::from(CUSTOMER))
        .await
        .unwrap()
        .unwrap()
        .conversation
        .id()
        .clone();
    engine
        .accept(&id, &AgentId::from("alice"), t0() + secs(1))
        .await
        .unwrap();
    Desk {
        engine,
        store,
        fake,
        id,
        notifier,
        _dir: dir,
    }
}

impl Desk {
    async fn send(&self, text: &str, at: SystemTime) -> Result<Delivery, EngineError> {
        self.engine
            .send_text(&self.id, &AgentId::from("alice"), text, at)
            .await
    }

    /// Delivery passes every `step` from `from` until nothing is pending or `until`.
    async fn drive(&self, from: SystemTime, step: Duration, until: SystemTime) -> SystemTime {
        let mut now = from;
        while now <= until {
            self.engine.deliver_due(now).await.unwrap();
            if self.store.pending(10).await.unwrap().is_empty() {
                break;
            }
            now += step;
        }
        now
    }

    /// Acts as Meta: every message the fake accepted comes back as an echo webhook.
    async fn echo_everything(&self, at: SystemTime) {
        let items = self.fake.echo_items();
        if !items.is_empty() {
            let body = items
                .into_iter()
                .fold(webhook(), |body, item| body.item(item, at));
            let (h, b) = signed(body);
            self.engine.handle_webhook(&h, &b, at).await.unwrap();
        }
    }

    /// The metadata keys the fake saw, each once.
    fn keys_seen(&self) -> HashSet<String> {
        self.fake
            .requests()
            .into_iter()
            .filter_map(|e| e.key)
            .collect()
    }

    fn attempts(&self) -> usize {
        self.fake.requests().len()
    }

    async fn notices(&self) -> Vec<String> {
        self.store
            .transcript(&self.id)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|l| match l.body {
                LineBody::Notice(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    /// Every message the fake saw was delivered exactly once, nothing is pending, and no
    /// line says it failed.
    async fn assert_each_delivered_once(&self, expected: usize) {
        let keys = self.keys_seen();
        assert_eq!(keys.len(), expected, "{:?}", self.fake.requests());
        for key in &keys {
            assert_eq!(
                self.fake.delivered_count(key),
                1,
                "{key}: {:?}",
                self.fake.requests()
            );
        }
        assert!(self.store.pending(10).await.unwrap().is_empty());
        let notices = self.notices().await;
        assert!(
            !notices.iter().any(|n| n.starts_with("Not ")),
            "{notices:?}"
        );
    }

    /// Nothing was delivered, nothing is pending, and the transcript and the agent's screen
    /// say `words`.
    async fn assert_failed_with(&self, words: &str) {
        assert!(
            self.fake.delivered().is_empty(),
            "{:?}",
            self.fake.requests()
        );
        assert!(self.store.pending(10).await.unwrap().is_empty());
        assert_eq!(self.notices().await.last().map(String::as_str), Some(words));
        assert!(self.notifier.all().iter().any(|n| matches!(n,
            messenger_channel::agents::Notification::Updated { lines, .. }
                if lines.iter().any(|l| matches!(&l.body, LineBody::Notice(t) if t == words)))));
        assert_eq!(self.store.outbox_stats().await.unwrap().failed, 1);
    }
}

fn retrying(d: &Result<Delivery, EngineError>) -> SystemTime {
    match d {
        Ok(Delivery::Retrying { next_attempt, .. }) => *next_attempt,
        other => panic!("expected a retry, got {other:?}"),
    }
}

#[tokio::test]
async fn an_answered_send_is_delivered_once() {
    for backend in backends() {
        let d = desk(backend, PATIENT, DeliveryConfig::default()).await;
        let sent = d.send("Let me check.", t0() + secs(2)).await.unwrap();
        assert!(matches!(sent, Delivery::Sent { .. }), "{sent:?}");
        d.drive(t0() + secs(3), secs(60), t0() + secs(3600)).await;
        d.assert_each_delivered_once(1).await;
    }
}

#[tokio::test]
async fn connection_refused_for_a_while_is_retried_until_it_goes_through() {
    for backend in backends() {
        let d = desk(backend, PATIENT, DeliveryConfig::default()).await;
        d.fake.fail_until_healed(Pattern::Refuse);
        let first = d.send("Let me check.", t0() + secs(2)).await;
        let next = retrying(&first);
        // Backoff from 1 s doubling: a few passes fail, none before its time.
        let mut now = next;
        for _ in 0..3 {
            d.engine.deliver_due(now).await.unwrap();
            now += secs(20);
        }
        let refused = d.attempts();
        assert!((2..=5).contains(&refused), "{refused} attempts");
        d.fake.heal();
        d.drive(now, secs(30), now + secs(3600)).await;
        d.assert_each_delivered_once(1).await;
    }
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    for backend in backends() {
        let d = desk(backend, PATIENT, DeliveryConfig::default()).await;
        d.fake.script([
            Pattern::ServerError(500),
            Pattern::ServerError(500),
            Pattern::ServerErrorHtml(502),
        ]);
        let next = retrying(&d.send("Let me check.", t0() + secs(2)).await);
        // Not before its time.
        d.engine
            .deliver_due(next - Duration::from_millis(1))
            .await
            .unwrap();
        assert_eq!(d.attempts(), 1);
        d.drive(next, secs(5), next + secs(3600)).await;
        d.assert_each_delivered_once(1).await;
        assert_eq!(d.attempts(), 4, "three failures, then the delivery");
    }
}

#[tokio::test]
async fn a_rate_limit_waits_as_long_as_graph_says() {
    for backend in backends() {
        let d = desk(backend, PATIENT, DeliveryConfig::default()).await;
        d.fake.fail_next(
            1,
            Pattern::RateLimited {
                regain_minutes: Some(3),
            },
        );
        let next = retrying(&d.send("Let me check.", t0() + secs(2)).await);
        assert!(
            next >= t0() + secs(2 + 180),
            "honours estimated_time_to_regain_access"
        );
        d.engine.deliver_due(t0() + secs(120)).await.unwrap();
        assert_eq!(
            d.attempts(),
            1,
            "nothing sent while the page is rate limited"
        );
        d.drive(next, secs(10), next + secs(600)).await;
        d.assert_each_delivered_once(1).await;
    }
}

/// A timeout after the request was written: Meta had it. Its echo arrives, and it is not sent
/// again.
#[tokio::test]
async fn a_timeout_after_meta_read_the_message_waits_for_the_echo_and_does_not_resend() {
    for backend in backends() {
        let d = desk(backend, IMPATIENT, DeliveryConfig::default()).await;
        d.fake.fail_next(1, Pattern::HangAfterRead);
        let next = retrying(&d.send("Let me check.", t0() + secs(2)).await);
        let grace = DeliveryConfig::default().echo_grace;
        assert!(next >= t0() + secs(2) + grace, "waits for the echo first");
        d.echo_everything(t0() + secs(5)).await;
        d.drive(next, secs(30), next + secs(3600)).await;
        assert_eq!(d.attempts(), 1, "not sent again");
        d.assert_each_delivered_once(1).await;
    }
}

/// A timeout before Meta recorded it: no echo comes, and after the grace period it is sent
/// again (the default choice), once.
#[tokio::test]
async fn a_timeout_without_an_echo_is_sent_again_after_the_grace_period() {
    for backend in backends() {
        let d = desk(backend, IMPATIENT, DeliveryConfig::default()).await;
        d.fake.fail_next(1, Pattern::HangBeforeRecord);
        let next = retrying(&d.send("Let me check.", t0() + secs(2)).await);
        d.engine.deliver_due(next - secs(1)).await.unwrap();
        assert_eq!(d.attempts(), 1, "not before the grace period");
        d.drive(next, secs(30), next + secs(3600)).await;
        assert_eq!(d.attempts(), 2);
        d.assert_each_delivered_once(1).await;
    }
}

/// The host chose to fail unconfirmed sends: the agent is told, nothing is resent.
#[tokio::test]
async fn a_host_can_fail_unconfirmed_sends_instead() {
    let config = DeliveryConfig {
        unconfirmed: Unconfirmed::Fail,
        ..DeliveryConfig::default()
    };
    let d = desk(Backend::Memory, IMPATIENT, config).await;
    d.fake.fail_next(1, Pattern::HangBeforeRecord);
    let next = retrying(&d.send("Let me check.", t0() + secs(2)).await);
    d.drive(next, secs(30), next + secs(3600)).await;
    assert_eq!(d.attempts(), 1);
    d.assert_failed_with("Not confirmed: Messenger did not confirm this message; it may not have reached the customer. Send it again if needed.").await;
}

#[tokio::test]
async fn an_invalid_token_stops_the_page_without_spending_retries_until_resumed() {
    for backend in backends() {
        let d = desk(backend, PATIENT, DeliveryConfig::default()).await;
        d.fake.fail_until_healed(Pattern::TokenInvalid);
        let first = d.send("Let me check.", t0() + secs(2)).await;
        let Ok(Delivery::Retrying { reason, .. }) = &first else {
            panic!("{first:?}")
        };
        assert!(reason.contains("access token"), "{reason}");
        let attention = d.engine.pages_needing_attention();
        assert_eq!(attention.len(), 1);
        assert_eq!(attention[0].page, PAGE);
        // A second message waits too, without a request: the page is stopped.
        let second = d.send("Still there?", t0() + secs(3)).await;
        retrying(&second);
        assert_eq!(d.attempts(), 1);
        for minutes in [1, 5, 30, 59] {
            d.engine
                .deliver_due(t0() + secs(minutes * 60))
                .await
                .unwrap();
        }
        assert_eq!(d.attempts(), 1, "no request while the page is stopped");
        assert!(
            d.store
                .pending(10)
                .await
                .unwrap()
                .iter()
                .all(|p| p.attempts == 0)
        );
        // The host renews the token.
        d.fake.heal();
        assert!(d.engine.resume_page(&PageId::from(PAGE)));
        d.drive(t0() + secs(3600), secs(30), t0() + secs(7200))
            .await;
        d.assert_each_delivered_once(2).await;
    }
}

#[tokio::test]
async fn a_recipient_who_cannot_be_messaged_fails_at_once_in_words() {
    for backend in backends() {
        let d = desk(backend, PATIENT, DeliveryConfig::default()).await;
        d.fake.fail_next(1, Pattern::Unavailable);
        let err = d.send("Let me check.", t0() + secs(2)).await.unwrap_err();
        assert!(matches!(err, EngineError::Undelivered(_)), "{err:?}");
        d.drive(t0() + secs(3), secs(60), t0() + secs(3600)).await;
        assert_eq!(d.attempts(), 1);
        d.assert_failed_with("Not delivered: the customer cannot receive messages from this page right now (they may have blocked it, or their account is unavailable).").await;
    }
}

#[tokio::test]
async fn outside_the_window_fails_at_once_in_words() {
    for backend in backends() {
        let d = desk(backend, PATIENT, DeliveryConfig::default()).await;
        d.fake.fail_next(1, Pattern::OutsideWindow);
        let err = d.send("Let me check.", t0() + secs(2)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "Not delivered: the customer's last message is more than 24 hours old. Use a message tag or wait for the customer."
        );
        d.drive(t0() + secs(3), secs(60), t0() + secs(3600)).await;
        assert_eq!(d.attempts(), 1);
        d.assert_failed_with("Not delivered: the customer's last message is more than 24 hours old. Use a message tag or wait for the customer.").await;
    }
}

/// A send whose outcome stays unknown (Graph reads every request and never answers, and no
/// echo comes) is not resent without end: after the retry budget it fails as "Not confirmed".
#[tokio::test]
async fn unconfirmed_sends_stop_at_the_retry_budget() {
    let d = desk(Backend::Memory, IMPATIENT, DeliveryConfig::default()).await;
    d.fake.fail_until_healed(Pattern::HangAfterRead);
    retrying(&d.send("Let me check.", t0() + secs(2)).await);
    d.drive(t0() + secs(3), secs(30), t0() + secs(6 * 3600))
        .await;
    let budget = DeliveryConfig::default().retry.max_attempts as usize;
    assert!(d.attempts() < budget, "{} attempts", d.attempts());
    assert!(
        d.store.pending(10).await.unwrap().is_empty(),
        "nothing pending forever"
    );
    assert_eq!(
        d.notices().await.last().map(String::as_str),
        Some(
            "Not confirmed: Messenger did not confirm this message; it may not have reached the customer. Send it again if needed."
        )
    );
}

/// A send taken back after a crash (interrupted) may have gone out: however old it is, it
/// waits for its echo once before anything is decided, and the echo settles it.
#[tokio::test]
async fn an_interrupted_send_waits_for_its_echo_even_past_the_retry_budget() {
    use messenger_channel::store::Lease;
    let d = desk(Backend::Memory, PATIENT, DeliveryConfig::default()).await;
    d.fake.fail_next(1, Pattern::Refuse);
    retrying(&d.send("Let me check.", t0() + secs(2)).await);
    // This instance claims it and dies mid-send; restarted, it takes it back.
    let held = Lease {
        owner: d.engine.instance().to_owned(),
        at: SystemTime::now(),
        until: SystemTime::now() + secs(60),
    };
    let claimed = d
        .store
        .claim_effects(&held, t0() + secs(3600), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let key = claimed[0].key.clone();
    assert_eq!(d.engine.reclaim().await.unwrap(), 1);
    // Two hours after the commit: past the retry budget's hour, yet not failed.
    let late = t0() + secs(2 * 3600);
    d.engine.deliver_due(late).await.unwrap();
    assert_eq!(
        d.store.pending(10).await.unwrap().len(),
        1,
        "waiting for the echo"
    );
    assert!(!d.notices().await.iter().any(|n| n.starts_with("Not ")));
    // Meta's echo of it arrives: settled, never sent again.
    let (h, b) = signed(webhook().echo(
        CUSTOMER,
        "m_echo",
        AppId(1),
        Some(&format!("mc-effect:{key}")),
        Some("Let me check."),
        late,
    ));
    d.engine.handle_webhook(&h, &b, late).await.unwrap();
    d.drive(late + secs(60), secs(60), late + secs(3600)).await;
    assert!(d.store.pending(10).await.unwrap().is_empty());
    assert_eq!(d.attempts(), 1, "not sent again");
    assert!(!d.notices().await.iter().any(|n| n.starts_with("Not ")));
}

/// Settings of zero are raised to the floors: a pass never spins on an effect it just
/// rescheduled.
#[tokio::test]
async fn zero_settings_do_not_make_a_pass_spin() {
    let config = DeliveryConfig {
        lease: Duration::ZERO,
        batch: 0,
        echo_grace: Duration::ZERO,
        attention_recheck: Duration::ZERO,
        poll: Duration::ZERO,
        ..DeliveryConfig::default()
    };
    let d = desk(Backend::Memory, PATIENT, config).await;
    d.fake.fail_until_healed(Pattern::TokenInvalid);
    retrying(&d.send("Let me check.", t0() + secs(2)).await);
    let pass = d.engine.deliver_due(t0() + secs(3));
    tokio::time::timeout(PATIENT, pass)
        .await
        .expect("the pass ends")
        .unwrap();
    assert_eq!(d.attempts(), 1);
}

/// Nothing stays pending forever: after the retry budget the message fails visibly.
#[tokio::test]
async fn after_the_retry_budget_a_message_fails_visibly() {
    for backend in backends() {
        let d = desk(backend, PATIENT, DeliveryConfig::default()).await;
        d.fake.fail_until_healed(Pattern::ServerError(503));
        retrying(&d.send("Let me check.", t0() + secs(2)).await);
        d.drive(t0() + secs(3), secs(15), t0() + secs(3 * 3600))
            .await;
        let budget = DeliveryConfig::default().retry.max_attempts as usize;
        assert!(d.attempts() <= budget, "{} attempts", d.attempts());
        assert!(
            d.store.pending(10).await.unwrap().is_empty(),
            "nothing pending forever"
        );
        let last = d.notices().await.last().cloned().unwrap();
        assert!(
            last.starts_with("Not delivered: Messenger kept failing after"),
            "{last}"
        );
        assert_eq!(d.store.outbox_stats().await.unwrap().failed, 1);
    }
}

/// The process was down longer than the window: the message is not sent days later.
#[tokio::test]
async fn a_message_committed_before_a_long_outage_fails_instead_of_going_out_late() {
    for backend in backends() {
        let d = desk(backend, PATIENT, DeliveryConfig::default()).await;
        d.fake.fail_next(1, Pattern::Refuse);
        retrying(&d.send("Let me check.", t0() + secs(2)).await);
        // Nothing ran for 25 hours.
        d.engine.deliver_due(t0() + secs(25 * 3600)).await.unwrap();
        assert_eq!(d.attempts(), 1, "not sent late");
        let last = d.notices().await.last().cloned().unwrap();
        assert!(
            last.starts_with("Not delivered: the 24-hour window closed"),
            "{last}"
        );
        assert!(d.store.pending(10).await.unwrap().is_empty());
    }
}

/// A message still pending when the conversation closes is not sent into a closed one.
#[tokio::test]
async fn a_message_pending_when_the_conversation_closes_is_not_sent() {
    for backend in backends() {
        let d = desk(backend, PATIENT, DeliveryConfig::default()).await;
        d.fake.fail_next(1, Pattern::ServerError(500));
        retrying(&d.send("Let me check.", t0() + secs(2)).await);
        let alice = AgentId::from("alice");
        d.engine.end(&d.id, &alice, t0() + secs(3)).await.unwrap();
        d.engine
            .close_session(&d.id, &alice, t0() + secs(4))
            .await
            .unwrap();
        d.drive(t0() + secs(60), secs(60), t0() + secs(3600)).await;
        assert_eq!(d.attempts(), 1);
        assert!(d.store.pending(10).await.unwrap().is_empty());
        assert!(
            d.store
                .transcript(&d.id)
                .await
                .unwrap()
                .iter()
                .any(|l| matches!(&l.body, LineBody::Notice(n)
                    if n == "Not delivered: the conversation was closed before the message could be sent.")),
        );
    }
}

/// Several workers (engines with their own names) on one store, started as hosts start them,
/// with a slow Graph: every effect of a backlog is sent exactly once.
async fn workers_share_the_queue(stores: Vec<Arc<dyn ConversationStore>>, label: &str) {
    workers_share(
        stores,
        label,
        40,
        Duration::from_millis(20),
        DeliveryConfig::default().lease,
    )
    .await;
}

/// The same with sends slower than the lease: the holder renews its claims while it works,
/// so no other worker takes them over.
async fn workers_share_with_sends_slower_than_the_lease(
    stores: Vec<Arc<dyn ConversationStore>>,
    label: &str,
) {
    // The shortest lease there is (1 s), renewed every third of it, against 2.5 s sends.
    workers_share(
        stores,
        label,
        4,
        Duration::from_millis(2500),
        Duration::ZERO,
    )
    .await;
}

async fn workers_share(
    stores: Vec<Arc<dyn ConversationStore>>,
    label: &str,
    backlog: usize,
    send_takes: Duration,
    lease: Duration,
) {
    use messenger_channel::conversation::{Conversation, Effect, Inbound, Outgoing};
    use messenger_channel::store::Commit;
    let fake = FakeGraph::start().await;
    fake.set_default(Pattern::Slow(send_takes));
    let now = SystemTime::now();
    for i in 0..backlog {
        let (c, _) = Conversation::start(
            ConversationId::new(format!("{label}-{i}")),
            PageId::from(PAGE),
            UserId::new(format!("{label}-customer-{i}")),
            Inbound::new(Some(format!("m_{label}_{i}")), vec![]),
            now,
            &ConversationConfig::default(),
        );
        stores[0]
            .commit(&Commit {
                conversation: c,
                expected_version: None,
                transcript: vec![],
                effects: vec![Effect::Send {
                    agent: None,
                    message: Outgoing::PrivacyNotice(format!("notice {i}")),
                }],
                deadline: None,
                applies: None,
                at: now,
                // Left by an instance that crashed before it could claim them.
                claim: None,
            })
            .await
            .unwrap();
    }
    let mut workers = Vec::new();
    for (n, store) in stores.iter().enumerate() {
        let client = GraphClient::builder(PageAccessToken::new("EAAB-workers").unwrap())
            .base_url(fake.base_url())
            .http_client(fake.http_client(PATIENT))
            .retry(RetryPolicy::never())
            .build()
            .unwrap();
        let engine = Arc::new(
            Engine::builder(Webhook::new(&secret()), Arc::new(client))
                .store(store.clone())
                .instance(format!("{label}-worker-{n}"))
                .delivery(DeliveryConfig {
                    // Small batches, so that the workers interleave on the backlog.
                    batch: 3,
                    poll: Duration::from_millis(20),
                    lease,
                    ..DeliveryConfig::default()
                })
                .build(),
        );
        workers.push(engine.start());
    }
    fake.wait_for_delivered(backlog, Duration::from_secs(60))
        .await;
    // Let the workers record the last outcomes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !stores[0].pending(1).await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "still pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for w in workers {
        w.stop().await;
    }
    let keys: Vec<String> = fake.requests().into_iter().filter_map(|e| e.key).collect();
    let unique: HashSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), backlog, "{label}");
    assert_eq!(keys.len(), backlog, "{label}: an effect was sent twice");
}

#[cfg(feature = "sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_of_one_process_share_a_sqlite_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn ConversationStore> = Arc::new(
        messenger_channel::store::SqliteStore::open(dir.path().join("c.db"))
            .await
            .unwrap(),
    );
    workers_share_the_queue(vec![store.clone(), store.clone(), store.clone()], "sqlite").await;
    workers_share_with_sends_slower_than_the_lease(vec![store.clone(), store], "sqlite-slow").await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_postgres_never_send_an_effect_twice() {
    let Some(url) = support::postgres::postgres_url() else {
        return;
    };
    let db = support::postgres::fresh_postgres_database(&url, "mc_delivery_workers").await;
    let mut stores: Vec<Arc<dyn ConversationStore>> = Vec::new();
    for _ in 0..2 {
        stores.push(Arc::new(
            messenger_channel::store::PostgresStore::connect(&db)
                .await
                .unwrap(),
        ));
    }
    workers_share_the_queue(stores.clone(), "postgres").await;
    workers_share_with_sends_slower_than_the_lease(stores, "postgres-slow").await;
}
