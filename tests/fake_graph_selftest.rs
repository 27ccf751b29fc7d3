//! The fake Graph Send API (`support/fake_graph.rs`) driven by the real `GraphClient`: for
//! every pattern, the `SendError` class the client returns and what the fake's log records.
#![cfg(feature = "graph")]

mod support;

use std::time::Duration;

use messenger_channel::engine::ECHO_KEY_PREFIX;
use messenger_channel::ids::{AppId, PageId, UserId};
use messenger_channel::secret::{AppSecret, PageAccessToken};
use messenger_channel::send::{
    AttachmentSource, ErrorKind, GraphClient, MediaKind, Message, PageApi, RetryPolicy, SendApi,
    SendError, SendRequest, SendResponse, SenderAction, TransportKind, Upload,
};
use messenger_channel::webhook::{EventKind, Webhook};
use serde_json::json;
use support::fake_graph::{FAKE_APP_ID, FakeGraph, Pattern, Stage, echo_body};

const TOKEN: &str = "EAAB-fake-graph-token";
const PAGE: &str = "104987654321098";
const PSID: &str = "24012345678901234";
const WEBHOOK_SECRET: &str = "fake-graph-webhook-secret";

/// Generous: answered requests finish in milliseconds, this only bounds a broken test.
const PATIENT: Duration = Duration::from_secs(10);
/// For the patterns that never answer. The client's timeout is the only way such a send
/// ends, so it is short to keep the test fast; the fake never answers at all, so no
/// answer can race it (the test is deterministic, not timing-dependent).
const IMPATIENT: Duration = Duration::from_millis(500);

/// The real client on the fake's HTTP client, without retries: one send is one request, so
/// each error is the one the pattern produced.
fn client(fake: &FakeGraph, timeout: Duration) -> GraphClient {
    GraphClient::builder(PageAccessToken::new(TOKEN).unwrap())
        .base_url(fake.base_url())
        .http_client(fake.http_client(timeout))
        .retry(RetryPolicy::never())
        .build()
        .unwrap()
}

fn page() -> PageId<'static> {
    PageId::from(PAGE)
}

fn keyed(key: &str, text: &str) -> SendRequest {
    let message = Message::text(text)
        .unwrap()
        .with_metadata(&format!("{ECHO_KEY_PREFIX}{key}"))
        .unwrap();
    SendRequest::new(PSID, message)
}

async fn send(client: &GraphClient, key: &str) -> Result<SendResponse, SendError> {
    client
        .send(&page(), &keyed(key, &format!("text of {key}")))
        .await
}

fn assert_transport(err: &SendError, kind: TransportKind, outcome_unknown: bool) {
    match err {
        SendError::Transport {
            kind: k,
            outcome_unknown: u,
            ..
        } => assert_eq!((*k, *u), (kind, outcome_unknown), "{err:?}"),
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert_eq!(err.is_retryable(), !outcome_unknown, "{err:?}");
}

#[tokio::test]
async fn ok_delivers_and_answers_a_mid() {
    let fake = FakeGraph::start().await;
    let c = client(&fake, PATIENT);
    let first = send(&c, "k1").await.unwrap();
    let second = send(&c, "k2").await.unwrap();
    assert_eq!(first.message_id, "m_1");
    assert_eq!(second.message_id, "m_2");
    assert_eq!(first.recipient_id, Some(UserId::from(PSID)));

    let log = fake.requests();
    assert_eq!(log.len(), 2);
    let e = &log[0];
    assert_eq!(
        (e.seq, e.stage, &e.pattern, e.delivered),
        (0, Stage::Request, &Pattern::Ok, true)
    );
    assert_eq!(e.method, "POST");
    assert_eq!(e.path, format!("/v26.0/{PAGE}/messages"));
    assert_eq!(e.page.as_deref(), Some(PAGE));
    assert_eq!(e.psid.as_deref(), Some(PSID));
    assert_eq!(e.metadata.as_deref(), Some("mc-effect:k1"));
    assert_eq!(e.key.as_deref(), Some("k1"));
    assert_eq!(e.message_id.as_deref(), Some("m_1"));
    assert!(!e.multipart);
    assert_eq!(e.body["message"]["text"], json!("text of k1"));
    assert_eq!(fake.delivered_keys(), ["k1", "k2"]);
    assert_eq!(fake.delivered_count("k1"), 1);
    assert_eq!(fake.delivered_count("nope"), 0);
}

#[tokio::test]
async fn a_key_sent_twice_is_delivered_twice() {
    let fake = FakeGraph::start().await;
    let c = client(&fake, PATIENT);
    send(&c, "dup").await.unwrap();
    send(&c, "dup").await.unwrap();
    assert_eq!(fake.delivered_count("dup"), 2);
    assert_eq!(fake.delivered_keys(), ["dup", "dup"]);
}

#[tokio::test]
async fn refuse_with_the_fake_client_is_a_connect_error_and_nothing_is_sent() {
    let fake = FakeGraph::start().await;
    let c = client(&fake, PATIENT);
    fake.push(Pattern::Refuse);
    let err = send(&c, "k1").await.unwrap_err();
    // Certainly not delivered: retryable, like a real refused connection.
    assert_transport(&err, TransportKind::Connect, false);
    assert!(!err.to_string().contains(TOKEN));

    let log = fake.requests();
    assert_eq!(log.len(), 1);
    let e = &log[0];
    assert_eq!(
        (e.stage, &e.pattern, e.delivered),
        (Stage::Connect, &Pattern::Refuse, false)
    );
    assert_eq!(
        (e.key.as_deref(), e.path.as_str()),
        (None, ""),
        "nothing read"
    );
    assert!(fake.delivered_keys().is_empty());

    // The script is played out: the retry goes through.
    send(&c, "k1").await.unwrap();
    assert_eq!(fake.delivered_keys(), ["k1"]);
}

#[tokio::test]
async fn refuse_with_another_client_is_an_unknown_outcome() {
    let fake = FakeGraph::start().await;
    // A plain client: the fake can only accept the TCP connection and close it unread, which
    // the client cannot tell from a request lost after it was written.
    let c = GraphClient::builder(PageAccessToken::new(TOKEN).unwrap())
        .base_url(format!("http://{}", fake.addr()))
        .timeout(PATIENT)
        .retry(RetryPolicy::never())
        .build()
        .unwrap();
    fake.push(Pattern::Refuse);
    let err = send(&c, "k1").await.unwrap_err();
    assert_transport(&err, TransportKind::Other, true);
    let log = fake.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].stage, &log[0].pattern, log[0].delivered),
        (Stage::Accept, &Pattern::Refuse, false)
    );
    // Every other pattern works with a plain client.
    send(&c, "k1").await.unwrap();
    assert_eq!(fake.delivered_keys(), ["k1"]);
}

#[tokio::test]
async fn graph_errors_have_their_class() {
    // (pattern, class, retryable, code, subcode, HTTP status)
    let cases = [
        (
            Pattern::ServerError(500),
            ErrorKind::Temporary,
            true,
            Some(2),
            None,
            500,
        ),
        (
            Pattern::ServerError(503),
            ErrorKind::Temporary,
            true,
            Some(2),
            None,
            503,
        ),
        // Not a Graph body: `UnexpectedResponse`, class `Other`, retryable as a 5xx.
        (
            Pattern::ServerErrorHtml(502),
            ErrorKind::Other,
            true,
            None,
            None,
            502,
        ),
        (
            Pattern::RateLimited {
                regain_minutes: None,
            },
            ErrorKind::RateLimited,
            true,
            Some(613),
            None,
            400,
        ),
        (
            Pattern::TokenInvalid,
            ErrorKind::TokenInvalid,
            false,
            Some(190),
            Some(463),
            400,
        ),
        (
            Pattern::Unavailable,
            ErrorKind::RecipientUnavailable,
            false,
            Some(551),
            Some(1_545_041),
            400,
        ),
        (
            Pattern::OutsideWindow,
            ErrorKind::OutsideWindow,
            false,
            Some(10),
            Some(2_018_278),
            400,
        ),
    ];
    let fake = FakeGraph::start().await;
    let c = client(&fake, PATIENT);
    fake.script(cases.iter().map(|c| c.0.clone()));
    for (i, (pattern, kind, retryable, code, subcode, status)) in cases.iter().enumerate() {
        let err = send(&c, &format!("k{i}")).await.unwrap_err();
        let what = format!("{pattern:?}: {err:?}");
        assert_eq!(err.kind(), *kind, "{what}");
        assert_eq!(err.is_retryable(), *retryable, "{what}");
        assert_eq!(err.code(), *code, "{what}");
        assert_eq!(err.subcode(), *subcode, "{what}");
        match &err {
            SendError::Graph(g) => {
                assert_eq!(g.status, *status, "{what}");
                assert_eq!(g.error_type.as_deref(), Some("OAuthException"), "{what}");
                assert_eq!(g.fbtrace_id, Some(format!("FakeTrace{i}")), "{what}");
                assert_eq!(g.retry_after, None, "{what}");
            }
            SendError::UnexpectedResponse {
                status: got,
                snippet,
            } => {
                assert_eq!(got, status, "{what}");
                assert!(snippet.starts_with("<html>"), "{what}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let log = fake.requests();
    assert_eq!(log.len(), cases.len());
    for (entry, case) in log.iter().zip(&cases) {
        assert_eq!(
            (entry.stage, &entry.pattern, entry.delivered),
            (Stage::Request, &case.0, false)
        );
    }
    assert!(fake.delivered_keys().is_empty());
    // The script is played out: back to the default.
    send(&c, "after").await.unwrap();
    assert_eq!(fake.delivered_keys(), ["after"]);
}

#[tokio::test]
async fn rate_limit_with_regain_access_says_how_long_to_wait() {
    let fake = FakeGraph::start().await;
    let c = client(&fake, PATIENT);
    fake.push(Pattern::RateLimited {
        regain_minutes: Some(3),
    });
    let err = send(&c, "k1").await.unwrap_err();
    let SendError::Graph(g) = &err else {
        panic!("{err:?}")
    };
    assert_eq!((g.code, g.status), (613, 400));
    assert_eq!(g.retry_after, Some(Duration::from_secs(180)));
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.is_retryable());
    assert!(!fake.requests()[0].delivered);
}

#[tokio::test]
async fn hang_after_read_is_delivered_but_the_outcome_is_unknown() {
    let fake = FakeGraph::start().await;
    let c = client(&fake, IMPATIENT);
    fake.push(Pattern::HangAfterRead);
    let err = send(&c, "k1").await.unwrap_err();
    assert_transport(&err, TransportKind::Timeout, true);
    let log = fake.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].stage, &log[0].pattern, log[0].delivered),
        (Stage::Request, &Pattern::HangAfterRead, true)
    );
    assert_eq!(log[0].message_id.as_deref(), Some("m_1"));
    // Meta has it: the echo will come.
    assert_eq!(fake.delivered_keys(), ["k1"]);
    assert_eq!(fake.echoes().len(), 1);
}

#[tokio::test]
async fn hang_before_record_is_not_delivered_and_the_outcome_is_unknown() {
    let fake = FakeGraph::start().await;
    let c = client(&fake, IMPATIENT);
    fake.push(Pattern::HangBeforeRecord);
    let err = send(&c, "k1").await.unwrap_err();
    assert_transport(&err, TransportKind::Timeout, true);
    let log = fake.requests();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].stage, &log[0].pattern, log[0].delivered),
        (Stage::Request, &Pattern::HangBeforeRecord, false)
    );
    assert_eq!(log[0].key.as_deref(), Some("k1"), "read, not kept");
    assert!(fake.delivered_keys().is_empty());
    assert!(fake.echoes().is_empty());
}

#[tokio::test]
async fn slow_delivers_at_once_and_answers_late() {
    let fake = FakeGraph::start().await;
    fake.push(Pattern::Slow(Duration::from_millis(50)));
    let sent = send(&client(&fake, PATIENT), "fast-enough").await.unwrap();
    assert_eq!(sent.message_id, "m_1");

    // Slower than the client waits: delivered, and to the client an unknown outcome.
    fake.push(Pattern::Slow(Duration::from_secs(3600)));
    let err = send(&client(&fake, IMPATIENT), "too-slow")
        .await
        .unwrap_err();
    assert_transport(&err, TransportKind::Timeout, true);
    assert_eq!(fake.delivered_keys(), ["fast-enough", "too-slow"]);
}

#[tokio::test]
async fn fail_next_comes_before_the_script_and_the_script_before_the_default() {
    let fake = FakeGraph::start().await;
    let c = client(&fake, PATIENT);
    fake.script([Pattern::OutsideWindow]);
    fake.fail_next(2, Pattern::ServerError(503));
    fake.set_default(Pattern::Unavailable);
    let mut kinds = Vec::new();
    for i in 0..4 {
        kinds.push(send(&c, &format!("k{i}")).await.unwrap_err().kind());
    }
    assert_eq!(
        kinds,
        [
            ErrorKind::Temporary,
            ErrorKind::Temporary,
            ErrorKind::OutsideWindow,
            ErrorKind::RecipientUnavailable
        ]
    );
    let patterns: Vec<_> = fake.requests().into_iter().map(|e| e.pattern).collect();
    assert_eq!(
        patterns,
        [
            Pattern::ServerError(503),
            Pattern::ServerError(503),
            Pattern::OutsideWindow,
            Pattern::Unavailable
        ]
    );
}

#[tokio::test]
async fn counted_refusals_are_counted() {
    let fake = FakeGraph::start().await;
    let c = client(&fake, PATIENT);
    fake.fail_next(2, Pattern::Refuse);
    for _ in 0..2 {
        let err = send(&c, "k1").await.unwrap_err();
        assert_transport(&err, TransportKind::Connect, false);
    }
    send(&c, "k1").await.unwrap();
    let stages: Vec<_> = fake.requests().into_iter().map(|e| e.stage).collect();
    assert_eq!(stages, [Stage::Connect, Stage::Connect, Stage::Request]);
    assert_eq!(fake.delivered_keys(), ["k1"]);
}

#[tokio::test]
async fn fail_until_healed_holds_until_heal() {
    let fake = FakeGraph::start().await;
    let c = client(&fake, PATIENT);
    fake.fail_until_healed(Pattern::Refuse);
    fake.push(Pattern::TokenInvalid);
    for _ in 0..3 {
        let err = send(&c, "k1").await.unwrap_err();
        assert_transport(&err, TransportKind::Connect, false);
    }
    fake.heal();
    // The script was held back while failing; it resumes.
    assert_eq!(
        send(&c, "k1").await.unwrap_err().kind(),
        ErrorKind::TokenInvalid
    );
    send(&c, "k1").await.unwrap();

    fake.fail_until_healed(Pattern::ServerError(500));
    for _ in 0..2 {
        assert_eq!(
            send(&c, "k2").await.unwrap_err().kind(),
            ErrorKind::Temporary
        );
    }
    fake.heal();
    send(&c, "k2").await.unwrap();

    let log = fake.requests();
    assert_eq!(log.len(), 8);
    assert!(log[..3].iter().all(|e| e.stage == Stage::Connect));
    assert_eq!(fake.delivered_keys(), ["k1", "k2"]);
}

#[tokio::test]
async fn wait_for_requests_wakes_on_a_hung_request_and_dropping_the_fake_ends_it() {
    let fake = FakeGraph::start().await;
    fake.push(Pattern::HangAfterRead);
    let c = client(&fake, PATIENT);
    let sending = tokio::spawn(async move { send(&c, "k1").await });
    // No sleep: woken when the fake has read and recorded the request.
    let log = fake.wait_for_requests(1, PATIENT).await;
    assert!(log[0].delivered);
    assert_eq!(fake.wait_for_delivered(1, PATIENT).await, ["k1"]);
    assert!(!sending.is_finished());
    drop(fake);
    let err = sending.await.unwrap().unwrap_err();
    assert!(
        matches!(err, SendError::UnexpectedResponse { status: 503, .. }),
        "{err:?}"
    );
}

#[tokio::test]
#[should_panic(expected = "timed out after")]
async fn wait_for_requests_times_out_with_the_log() {
    let fake = FakeGraph::start().await;
    fake.wait_for_requests(1, Duration::from_millis(10)).await;
}

#[tokio::test]
async fn an_upload_is_multipart_with_metadata_inside_message() {
    let fake = FakeGraph::start().await;
    let png = include_bytes!("../examples/sample/logo.png");
    let upload = Upload::new(&png[..], "logo.png", "image/png").unwrap();
    let message = Message::attachment(MediaKind::Image, AttachmentSource::Upload(upload))
        .unwrap()
        .with_metadata(&format!("{ECHO_KEY_PREFIX}up1"))
        .unwrap();
    let sent = client(&fake, PATIENT)
        .send(&page(), &SendRequest::new(PSID, message))
        .await
        .unwrap();
    assert_eq!(sent.message_id, "m_1");
    let e = &fake.requests()[0];
    assert!(e.multipart);
    assert_eq!(e.key.as_deref(), Some("up1"));
    assert_eq!(e.psid.as_deref(), Some(PSID));
    assert_eq!(e.body["messaging_type"], json!("RESPONSE"));
    assert_eq!(e.body["message"]["attachment"]["type"], json!("image"));
    assert_eq!(
        e.body["filedata"],
        json!({"file_name": "logo.png", "content_type": "image/png", "len": png.len()})
    );
    let echo = &fake.echo_items()[0];
    assert_eq!(echo["message"]["attachments"][0]["type"], json!("image"));
    assert!(
        echo["message"]["attachments"][0]["payload"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/m_1")
    );
}

#[tokio::test]
async fn a_sender_action_is_answered_and_not_a_delivery() {
    let fake = FakeGraph::start().await;
    client(&fake, PATIENT)
        .sender_action(&page(), &UserId::from(PSID), SenderAction::TypingOn)
        .await
        .unwrap();
    let e = &fake.requests()[0];
    assert_eq!((&e.pattern, e.delivered), (&Pattern::Ok, false));
    assert_eq!(e.body["sender_action"], json!("typing_on"));
    assert!(fake.echoes().is_empty());
}

/// The echoes, signed and parsed as the webhook would: echo events carrying the key.
#[tokio::test]
async fn echoes_are_webhook_bodies_the_parser_reads_as_keyed_echoes() {
    let fake = FakeGraph::start().await;
    fake.script([Pattern::Ok, Pattern::ServerError(500)]);
    let c = client(&fake, PATIENT);
    send(&c, "e1").await.unwrap();
    send(&c, "e2").await.unwrap_err();
    send(&c, "e3").await.unwrap();

    let secret = AppSecret::new(WEBHOOK_SECRET).unwrap();
    let webhook = Webhook::new(&secret);
    let mut bodies = fake.echoes();
    assert_eq!(bodies.len(), 2, "one per delivered message");
    assert_eq!(fake.echo_items().len(), 2);
    let at = fake.requests()[0].at_ms;
    bodies.push(echo_body(PAGE, PSID, "by-hand", "m_hand", at));
    let mut seen = Vec::new();
    for body in &bodies {
        assert_eq!(body.to_json()["object"], json!("page"));
        let post = body.sign(&secret);
        let batch = webhook
            .verify_and_parse_value(post.signature(), post.body())
            .unwrap();
        let items = batch.into_items();
        assert_eq!(items.len(), 1);
        let event = items.into_iter().next().unwrap().unwrap();
        assert_eq!(event.page_id.as_str(), PAGE);
        assert_eq!(event.sender.as_ref().map(UserId::as_str), Some(PAGE));
        assert_eq!(event.recipient.as_ref().map(UserId::as_str), Some(PSID));
        let EventKind::Echo(echo) = &event.kind else {
            panic!("not an echo: {event:?}")
        };
        assert_eq!(echo.app_id, Some(AppId(FAKE_APP_ID)));
        seen.push((
            echo.metadata.as_ref().unwrap().decode().into_owned(),
            echo.message.mid.as_str().to_owned(),
            echo.message.text.as_ref().map(|t| t.decode().into_owned()),
        ));
    }
    assert_eq!(
        seen,
        [
            (
                "mc-effect:e1".into(),
                "m_1".into(),
                Some("text of e1".into())
            ),
            (
                "mc-effect:e3".into(),
                "m_2".into(),
                Some("text of e3".into())
            ),
            ("mc-effect:by-hand".into(), "m_hand".into(), None),
        ]
    );
}
