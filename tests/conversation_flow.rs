//! The Omnichannel scenario end to end, with in-memory stores and a fake Send API.
// One scenario, told in order: long by nature, with short names for the recurring values.
#![allow(clippy::too_many_lines, clippy::many_single_char_names)]

mod support;

use std::time::Duration;

use messenger_channel::agents::Notification;
use messenger_channel::conversation::{Author, ConversationConfig, LineBody, State, StateKind};
use messenger_channel::engine::{DeliveryError, EngineError};
use messenger_channel::ids::AppId;
use messenger_channel::ids::{AgentId, ConversationId, PageId, UserId};
use messenger_channel::send::{MediaKind, SendError, Upload};
use messenger_channel::store::{ConversationStore, MediaStore, StoreError};
use messenger_channel::testing::t0;
use support::channel::{CUSTOMER, Channel, PAGE, signed, webhook};
const NOTICE: &str = "This conversation may be monitored, recorded and stored.";

fn agent(name: &str) -> AgentId {
    AgentId::from(name)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn last_offer_to(channel: &Channel) -> Option<String> {
    channel.notifier.all().iter().rev().find_map(|n| match n {
        Notification::Offer { offer, .. } => Some(offer.agent.as_str().to_owned()),
        _ => None,
    })
}

#[tokio::test]
async fn omnichannel_scenario_end_to_end() {
    let config = ConversationConfig::default().privacy_notice(Some(NOTICE.into()));
    let ch = Channel::new(&["alice", "bob", "carol"], config);
    let page = PageId::from(PAGE);
    let customer = UserId::from(CUSTOMER);

    // The customer writes: a conversation opens, the privacy notice goes out, alice is offered it.
    let (h, b) = signed(webhook().message(CUSTOMER, "m_1", "Hello, my parcel is late", t0()));
    let report = ch.engine.handle_webhook(&h, &b, t0()).await.unwrap();
    assert_eq!(report.handled, 1);
    assert_eq!(ch.send.texts(), [NOTICE]);
    let conv = ch
        .store
        .find_open(&page, &customer)
        .await
        .unwrap()
        .unwrap()
        .conversation;
    let id = conv.id().clone();
    assert_eq!(last_offer_to(&ch).as_deref(), Some("alice"));

    // Meta redelivers the same body: nothing new.
    let report = ch
        .engine
        .handle_webhook(&h, &b, t0() + secs(20))
        .await
        .unwrap();
    assert_eq!((report.handled, report.duplicates), (0, 1));

    // alice rejects: bob is offered it.
    ch.engine
        .reject(&id, &agent("alice"), t0() + secs(5))
        .await
        .unwrap();
    assert_eq!(last_offer_to(&ch).as_deref(), Some("bob"));
    // Only the agent offered can accept.
    let err = ch
        .engine
        .accept(&id, &agent("carol"), t0() + secs(6))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Transition(_)), "{err:?}");

    // bob lets it time out (120 s): carol is offered it.
    ch.engine.tick(t0() + secs(5 + 119)).await.unwrap();
    assert_eq!(
        last_offer_to(&ch).as_deref(),
        Some("bob"),
        "not yet expired"
    );
    ch.engine.tick(t0() + secs(5 + 120)).await.unwrap();
    assert_eq!(last_offer_to(&ch).as_deref(), Some("carol"));
    assert!(
        ch.notifier
            .all()
            .iter()
            .any(|n| matches!(n, Notification::Withdraw { agent, .. } if agent.as_str() == "bob"))
    );

    // carol accepts.
    let t = t0() + secs(130);
    ch.engine.accept(&id, &agent("carol"), t).await.unwrap();
    let c = ch.store.load(&id).await.unwrap().unwrap().conversation;
    assert_eq!(
        c.state(),
        &State::Active {
            agent: agent("carol")
        }
    );
    assert_eq!(ch.router.load(&agent("carol")), 1);

    // Text both ways.
    let (h, b) = signed(webhook().message(CUSTOMER, "m_2", "Order 48213", t + secs(10)));
    ch.engine
        .handle_webhook(&h, &b, t + secs(10))
        .await
        .unwrap();
    let mid = ch
        .engine
        .send_text(
            &id,
            &agent("carol"),
            "Let me check that for you",
            t + secs(20),
        )
        .await
        .unwrap();
    assert!(
        matches!(&mid, messenger_channel::engine::Delivery::Sent { message_id } if message_id.as_str().starts_with("m_out_")),
        "{mid:?}"
    );
    let sent = ch.send.sent();
    let reply = sent.last().unwrap();
    assert_eq!(reply.body["messaging_type"], "RESPONSE");
    assert_eq!(reply.body["recipient"]["id"], CUSTOMER);
    assert_eq!(reply.page, PAGE);
    // bob cannot write in carol's conversation.
    assert!(
        ch.engine
            .send_text(&id, &agent("bob"), "hi", t + secs(21))
            .await
            .is_err()
    );

    // Files both ways.
    let (h, b) = signed(webhook().attachment(
        CUSTOMER,
        "m_3",
        MediaKind::File,
        "https://cdn.fbsbx.com/v/t59/receipt.pdf?oe=1",
        t + secs(30),
    ));
    ch.engine
        .handle_webhook(&h, &b, t + secs(30))
        .await
        .unwrap();
    let pdf = bytes::Bytes::from_static(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n");
    ch.engine
        .send_file(
            &id,
            &agent("carol"),
            "label.pdf",
            "application/pdf",
            pdf,
            t + secs(40),
        )
        .await
        .unwrap();
    assert_eq!(
        ch.send
            .sent()
            .last()
            .unwrap()
            .upload()
            .map(Upload::file_name),
        Some("label.pdf")
    );
    // A blocked file from the agent is refused before anything is sent.
    let before = ch.send.sent().len();
    let err = ch
        .engine
        .send_file(
            &id,
            &agent("carol"),
            "tool.exe",
            "application/octet-stream",
            bytes::Bytes::from_static(b"MZ\x90\x00"),
            t + secs(41),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::Attachment(v) if v.code() == "extension_blocked"),
        "{err:?}"
    );
    assert_eq!(ch.send.sent().len(), before);

    // The customer sends a blocked file: the agent sees the error, not the file.
    let (h, b) = signed(webhook().attachment(
        CUSTOMER,
        "m_4",
        MediaKind::File,
        "https://cdn.fbsbx.com/v/t59/setup.exe?oe=1",
        t + secs(50),
    ));
    ch.engine
        .handle_webhook(&h, &b, t + secs(50))
        .await
        .unwrap();
    let transcript = ch.store.transcript(&id).await.unwrap();
    let refused = transcript
        .iter()
        .find_map(|l| match &l.body {
            LineBody::File(f) if f.rejected.is_some() => Some(f.clone()),
            _ => None,
        })
        .expect("a refused file line");
    assert_eq!(refused.rejected.as_ref().unwrap().code, "extension_blocked");
    assert!(transcript.iter().any(|l| matches!(&l.body, LineBody::Notice(n) if n.starts_with("Error: Customer sent an unsupported message type"))));

    // carol closes the session: Waiting, capacity released.
    ch.engine
        .close_session(&id, &agent("carol"), t + secs(60))
        .await
        .unwrap();
    let c = ch.store.load(&id).await.unwrap().unwrap().conversation;
    assert_eq!(c.state().kind(), StateKind::Waiting);
    assert_eq!(ch.router.load(&agent("carol")), 0);

    // The customer writes again: back to Open, offered again; accepted.
    let t = t + secs(600);
    let (h, b) = signed(webhook().message(CUSTOMER, "m_5", "Any news?", t));
    ch.engine.handle_webhook(&h, &b, t).await.unwrap();
    let c = ch.store.load(&id).await.unwrap().unwrap().conversation;
    let State::Open { offer: Some(offer) } = c.state() else {
        panic!("{:?}", c.state())
    };
    let taker = offer.agent.clone();
    ch.engine.accept(&id, &taker, t + secs(5)).await.unwrap();

    // End (Wrap-up), then close (Closed).
    ch.engine.end(&id, &taker, t + secs(100)).await.unwrap();
    assert_eq!(
        ch.store
            .load(&id)
            .await
            .unwrap()
            .unwrap()
            .conversation
            .state()
            .kind(),
        StateKind::WrapUp
    );
    ch.engine
        .close_session(&id, &taker, t + secs(110))
        .await
        .unwrap();
    let closed = ch.store.load(&id).await.unwrap().unwrap().conversation;
    assert_eq!(closed.state().kind(), StateKind::Closed);
    assert_eq!(ch.router.load(&taker), 0);
    assert!(
        ch.store
            .find_open(&page, &customer)
            .await
            .unwrap()
            .is_none()
    );

    // A closed conversation never changes.
    assert!(ch.engine.accept(&id, &taker, t + secs(111)).await.is_err());

    // The customer writes again: a new conversation.
    let (h, b) = signed(webhook().message(CUSTOMER, "m_6", "One more thing", t + secs(200)));
    ch.engine
        .handle_webhook(&h, &b, t + secs(200))
        .await
        .unwrap();
    let new = ch
        .store
        .find_open(&page, &customer)
        .await
        .unwrap()
        .unwrap()
        .conversation;
    assert_ne!(new.id(), &id);
    assert_eq!(new.state().kind(), StateKind::Open);

    // The first conversation's transcript, customer lines in order, each once.
    let transcript = ch.store.transcript(&id).await.unwrap();
    let customer_mids: Vec<_> = transcript
        .iter()
        .filter(|l| l.author == Author::Customer)
        .filter_map(|l| l.mid.clone())
        .collect();
    // Every line of a message carries its id: m_4 is its refused file and the notice in its
    // place.
    assert_eq!(customer_mids, ["m_1", "m_2", "m_3", "m_4", "m_4", "m_5"]);
    assert!(
        matches!(&transcript[1].body, LineBody::Notice(n) if n == NOTICE),
        "{:?}",
        transcript[1]
    );
    let agent_lines: Vec<_> = transcript
        .iter()
        .filter(|l| matches!(l.author, Author::Agent(_)))
        .collect();
    assert_eq!(agent_lines.len(), 2, "the text and the file carol sent");
    // Committed with the state change, before the send: a message is in the transcript even
    // when the process dies while sending it.
    assert!(
        matches!(agent_lines[0].body, LineBody::Text(_)),
        "{:?}",
        agent_lines[0]
    );
    assert!(
        matches!(agent_lines[1].body, LineBody::File(_)),
        "{:?}",
        agent_lines[1]
    );
}

#[tokio::test]
async fn outside_the_window_an_agent_needs_the_human_agent_tag() {
    let ch = Channel::new(&["alice"], ConversationConfig::default());
    let (h, b) = signed(webhook().message(CUSTOMER, "m_1", "Hi", t0()));
    ch.engine.handle_webhook(&h, &b, t0()).await.unwrap();
    let id = ch
        .store
        .find_open(&PageId::from(PAGE), &UserId::from(CUSTOMER))
        .await
        .unwrap()
        .unwrap()
        .conversation
        .id()
        .clone();
    ch.engine
        .accept(&id, &agent("alice"), t0() + secs(10))
        .await
        .unwrap();
    let late = t0() + secs(25 * 3600);
    let err = ch
        .engine
        .send_text(&id, &agent("alice"), "Sorry for the wait", late)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Window(_)), "{err:?}");
    assert!(
        ch.send.sent().is_empty(),
        "nothing left before the window check"
    );
}

#[tokio::test]
async fn thread_taken_by_the_page_inbox_pauses_sending() {
    let ch = Channel::new(&["alice"], ConversationConfig::default());
    let (h, b) = signed(webhook().message(CUSTOMER, "m_1", "Hi", t0()));
    ch.engine.handle_webhook(&h, &b, t0()).await.unwrap();
    let id = ch
        .store
        .find_open(&PageId::from(PAGE), &UserId::from(CUSTOMER))
        .await
        .unwrap()
        .unwrap()
        .conversation
        .id()
        .clone();
    ch.engine
        .accept(&id, &agent("alice"), t0() + secs(1))
        .await
        .unwrap();
    let (h, b) = signed(webhook().take_thread_control(
        CUSTOMER,
        AppId(1),
        AppId(263_902_037_430_900),
        t0() + secs(2),
    ));
    assert_eq!(
        ch.engine
            .handle_webhook(&h, &b, t0() + secs(2))
            .await
            .unwrap()
            .handled,
        1
    );
    let err = ch
        .engine
        .send_text(&id, &agent("alice"), "hello?", t0() + secs(3))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("paused"), "{err}");
    let (h, b) = signed(webhook().pass_thread_control(CUSTOMER, AppId(1), None, t0() + secs(4)));
    ch.engine
        .handle_webhook(&h, &b, t0() + secs(4))
        .await
        .unwrap();
    ch.engine
        .send_text(&id, &agent("alice"), "back", t0() + secs(5))
        .await
        .unwrap();
}

async fn accepted_conversation(ch: &Channel) -> messenger_channel::ids::ConversationId {
    let (h, b) = signed(webhook().message(CUSTOMER, "m_1", "Hi", t0()));
    ch.engine.handle_webhook(&h, &b, t0()).await.unwrap();
    let id = ch
        .store
        .find_open(&PageId::from(PAGE), &UserId::from(CUSTOMER))
        .await
        .unwrap()
        .unwrap()
        .conversation
        .id()
        .clone();
    ch.engine
        .accept(&id, &agent("alice"), t0() + secs(1))
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_refused_send_is_reported_and_recorded_in_words_an_agent_reads() {
    let ch = Channel::new(&["alice"], ConversationConfig::default());
    let id = accepted_conversation(&ch).await;
    let outside = messenger_channel::send::GraphError::from_body(
        400,
        br#"{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","code":10,"error_subcode":2018278,"fbtrace_id":"A1"}}"#,
    )
    .unwrap();
    ch.send.fail_sends(Some(SendError::Graph(outside)));
    let err = ch
        .engine
        .send_text(&id, &agent("alice"), "hello", t0() + secs(2))
        .await
        .unwrap_err();
    let EngineError::Undelivered(u) = &err else {
        panic!("{err:?}")
    };
    let words = "Not delivered: the customer's last message is more than 24 hours old. Use a message tag or wait for the customer.";
    assert_eq!(u.reason, words);
    // The cause, as data: the platform's refusal.
    assert!(
        matches!(&u.error, Some(DeliveryError::Send(SendError::Graph(g))) if g.code == 10),
        "{:?}",
        u.error
    );
    // The state is consistent (still Active); the transcript has the message, then why.
    assert_eq!(
        ch.store
            .load(&id)
            .await
            .unwrap()
            .unwrap()
            .conversation
            .state()
            .kind(),
        StateKind::Active
    );
    let transcript = ch.store.transcript(&id).await.unwrap();
    let n = transcript.len();
    assert!(matches!(&transcript[n - 2].body, LineBody::Text(t) if t == "hello"));
    assert!(matches!(&transcript[n - 1].body, LineBody::Notice(t) if t == words));
    // Failed for good: nothing pending, one failed effect on record, and the agent was told.
    assert!(ch.store.pending(10).await.unwrap().is_empty());
    assert_eq!(ch.store.outbox_stats().await.unwrap().failed, 1);
    assert!(ch.notifier.all().iter().any(|n| matches!(n,
        messenger_channel::agents::Notification::Updated { lines, .. }
            if lines.iter().any(|l| matches!(&l.body, LineBody::Notice(t) if t == words)))));
    // Nothing is tried again.
    let sends = ch.send.sent().len();
    ch.engine.tick(t0() + secs(3600)).await.unwrap();
    assert_eq!(ch.send.sent().len(), sends);
}

/// A permission error fails its own message; it does not stop the page (Graph reports some
/// per-recipient refusals with permission codes).
#[tokio::test]
async fn a_permission_error_fails_one_message_without_stopping_the_page() {
    let ch = Channel::new(&["alice"], ConversationConfig::default());
    let id = accepted_conversation(&ch).await;
    let refused = messenger_channel::send::GraphError::from_body(
        403,
        br#"{"error":{"message":"(#200) The user hasn't authorized the app","type":"OAuthException","code":200,"error_subcode":2018028}}"#,
    )
    .unwrap();
    ch.send.fail_sends(Some(SendError::Graph(refused)));
    let err = ch
        .engine
        .send_text(&id, &agent("alice"), "hello", t0() + secs(2))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Not delivered: this page may not send"),
        "{err}"
    );
    assert!(err.to_string().contains("(error 200/2018028)"), "{err}");
    assert!(ch.engine.pages_needing_attention().is_empty());
    assert!(ch.store.pending(10).await.unwrap().is_empty());
    // The next message goes out.
    ch.send.fail_sends(None);
    let sent = ch
        .engine
        .send_text(&id, &agent("alice"), "again", t0() + secs(3))
        .await
        .unwrap();
    assert!(
        matches!(sent, messenger_channel::engine::Delivery::Sent { .. }),
        "{sent:?}"
    );
}

/// A permission the page itself lacks (no subcode) stops the page, as an invalid token does.
#[tokio::test]
async fn a_missing_page_permission_stops_the_page() {
    let ch = Channel::new(&["alice"], ConversationConfig::default());
    let id = accepted_conversation(&ch).await;
    let missing = messenger_channel::send::GraphError::from_body(
        400,
        br#"{"error":{"message":"(#230) Requires pages_messaging permission to manage the object","type":"OAuthException","code":230}}"#,
    )
    .unwrap();
    ch.send.fail_sends(Some(SendError::Graph(missing)));
    let delivery = ch
        .engine
        .send_text(&id, &agent("alice"), "hello", t0() + secs(2))
        .await
        .unwrap();
    assert!(
        matches!(&delivery, messenger_channel::engine::Delivery::Retrying { reason, .. } if reason.contains("lacks a permission")),
        "{delivery:?}"
    );
    let attention = ch.engine.pages_needing_attention();
    assert_eq!(attention.len(), 1, "{attention:?}");
    assert!(attention[0].reason.contains("(error 230)"), "{attention:?}");
    assert_eq!(
        ch.store.pending(10).await.unwrap().len(),
        1,
        "kept for when it is fixed"
    );
}

#[tokio::test]
async fn a_page_without_a_valid_token_waits_until_the_host_resumes_it() {
    let ch = Channel::new(&["alice"], ConversationConfig::default());
    let id = accepted_conversation(&ch).await;
    ch.send
        .fail_sends(Some(SendError::NoToken { page: PAGE.into() }));
    let delivery = ch
        .engine
        .send_text(&id, &agent("alice"), "hello", t0() + secs(2))
        .await
        .unwrap();
    assert!(
        matches!(&delivery, messenger_channel::engine::Delivery::Retrying { reason, .. } if reason.contains("access token")),
        "{delivery:?}"
    );
    let attention = ch.engine.pages_needing_attention();
    assert_eq!(attention.len(), 1);
    assert_eq!(attention[0].page, PAGE);
    assert!(
        attention[0].reason.contains("access token"),
        "{attention:?}"
    );
    // While the page needs attention, nothing is sent and no retry is spent, however long.
    let attempts = ch.send.attempts();
    for minutes in [1, 10, 600] {
        ch.engine.tick(t0() + secs(minutes * 60)).await.unwrap();
    }
    assert_eq!(
        ch.send.attempts(),
        attempts,
        "no attempt while the page is stopped"
    );
    let pending = ch.store.pending(10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 0, "waiting spends no retry");
    // The host fixes the token and resumes the page: the message goes, once.
    ch.send.fail_sends(None);
    assert!(ch.engine.resume_page(&PageId::from(PAGE)));
    assert!(ch.engine.pages_needing_attention().is_empty());
    ch.engine.tick(t0() + secs(601 * 60)).await.unwrap();
    assert_eq!(ch.send.texts().iter().filter(|t| *t == "hello").count(), 1);
    assert!(ch.store.pending(10).await.unwrap().is_empty());
    let transcript = ch.store.transcript(&id).await.unwrap();
    assert!(
        !transcript
            .iter()
            .any(|l| matches!(&l.body, LineBody::Notice(t) if t.starts_with("Not delivered")))
    );
}

/// A media store that keeps nothing: a file sent by an agent is gone when it is delivered.
struct Forgetful;

#[async_trait::async_trait]
impl MediaStore for Forgetful {
    async fn put(
        &self,
        _: &ConversationId,
        _: bytes::Bytes,
        _: Option<&str>,
    ) -> Result<String, StoreError> {
        Ok("forgotten".to_owned())
    }

    async fn get(&self, _: &str) -> Result<Option<(bytes::Bytes, Option<String>)>, StoreError> {
        Ok(None)
    }
}

#[tokio::test]
async fn a_file_no_longer_stored_fails_in_words_with_its_cause() {
    let ch = Channel::with_stores(
        &["alice"],
        ConversationConfig::default(),
        false,
        messenger_channel::store::InMemoryStore::new(),
        std::sync::Arc::new(Forgetful),
    );
    let id = accepted_conversation(&ch).await;
    let err = ch
        .engine
        .send_file(
            &id,
            &agent("alice"),
            "quote.pdf",
            "application/pdf",
            bytes::Bytes::from_static(b"%PDF-1.4 quote"),
            t0() + secs(2),
        )
        .await
        .unwrap_err();
    let EngineError::Undelivered(u) = &err else {
        panic!("{err:?}")
    };
    let words = "Not delivered: the file is no longer stored.";
    assert_eq!(u.reason, words);
    assert_eq!(
        u.error,
        Some(DeliveryError::MediaMissing {
            media_key: "forgotten".to_owned()
        })
    );
    // Nothing went out; the transcript says why, and nothing is tried again.
    assert!(ch.send.sent().is_empty());
    let transcript = ch.store.transcript(&id).await.unwrap();
    assert!(matches!(&transcript.last().unwrap().body, LineBody::Notice(t) if t == words));
    assert!(ch.store.pending(10).await.unwrap().is_empty());
}
