//! The Graph client against a mock Graph server on 127.0.0.1: exact request bodies, multipart
//! upload, `appsecret_proof`, error classes, retries, and the download cap.
#![cfg(feature = "graph")]

mod support;

use std::time::Duration;

use messenger_channel::ids::{AppId, PageId, UserId};
use messenger_channel::secret::{AppSecret, PageAccessToken};
use messenger_channel::send::{
    AttachmentSource, Button, Element, ErrorKind, GraphClient, MediaKind, Message,
    NotificationType, PageApi, QuickReply, RetryPolicy, SendApi, SendError, SendRequest,
    SenderAction, TransportKind, Upload,
};
use messenger_channel::window::{MessageTag, SendMarking};
use serde_json::json;
use support::mock_graph::{MockGraph, Scripted};

const TOKEN: &str = "EAAB-test-page-token";
const SECRET: &str = "test-app-secret";
/// HMAC-SHA256(key = SECRET, message = TOKEN), computed with Python's `hmac` module.
const PROOF: &str = "0cb8b6c8d6d004c0f20356ce532b102a96b21af9163c851455c053c6bb891b36";
const PAGE: &str = "104987654321098";
const PSID: &str = "24012345678901234";

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_elapsed: Duration::from_secs(30),
        retry_unknown_outcome: false,
    }
}

fn client(mock: &MockGraph) -> GraphClient {
    GraphClient::builder(PageAccessToken::new(TOKEN).unwrap())
        .app_secret(AppSecret::new(SECRET).unwrap())
        .base_url(mock.base_url())
        .retry(quick_retries())
        .build()
        .unwrap()
}

fn page() -> PageId<'static> {
    PageId::from(PAGE)
}

fn psid() -> UserId<'static> {
    UserId::from(PSID)
}

async fn sent_body(
    message: Message,
    configure: impl FnOnce(SendRequest) -> SendRequest,
) -> serde_json::Value {
    let mock = MockGraph::start().await;
    let response = client(&mock)
        .send(&page(), &configure(SendRequest::new(PSID, message)))
        .await
        .unwrap();
    assert_eq!(response.message_id, "m_default");
    let requests = mock.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, format!("/v26.0/{PAGE}/messages"));
    assert_eq!(
        r.headers["authorization"],
        format!("Bearer {TOKEN}").as_str()
    );
    assert_eq!(r.query_param("appsecret_proof").as_deref(), Some(PROOF));
    assert_eq!(
        r.query_param("access_token"),
        None,
        "the token is never in the URL"
    );
    assert_eq!(r.headers["content-type"], "application/json");
    r.json()
}

#[tokio::test]
async fn text_message() {
    let body = sent_body(Message::text("Hello, café ☕").unwrap(), |r| r).await;
    assert_eq!(
        body,
        json!({"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": "Hello, café ☕"}})
    );
}

#[tokio::test]
async fn tagged_message_with_persona_and_notification() {
    let body = sent_body(
        Message::text("Following up")
            .unwrap()
            .with_metadata("agent:7")
            .unwrap(),
        |r| {
            r.marking(SendMarking::tagged(MessageTag::HumanAgent))
                .persona("998877")
                .notification(NotificationType::SilentPush)
        },
    )
    .await;
    assert_eq!(
        body,
        json!({
            "recipient": {"id": PSID},
            "messaging_type": "MESSAGE_TAG",
            "tag": "HUMAN_AGENT",
            "persona_id": "998877",
            "notification_type": "SILENT_PUSH",
            "message": {"text": "Following up", "metadata": "agent:7"}
        })
    );
}

#[tokio::test]
async fn update_marking() {
    let body = sent_body(Message::text("Your order shipped").unwrap(), |r| {
        r.marking(SendMarking::update())
    })
    .await;
    assert_eq!(body["messaging_type"], "UPDATE");
    assert!(body.get("tag").is_none());
}

#[tokio::test]
async fn attachments_by_url_and_by_id() {
    let by_url = Message::attachment(
        MediaKind::Image,
        AttachmentSource::Url {
            url: "https://example.com/a.png".into(),
            reusable: true,
        },
    )
    .unwrap();
    assert_eq!(
        sent_body(by_url, |r| r).await["message"],
        json!({"attachment": {"type": "image", "payload": {"url": "https://example.com/a.png", "is_reusable": true}}})
    );
    let by_id = Message::attachment(
        MediaKind::File,
        AttachmentSource::AttachmentId("1857777774821032".into()),
    )
    .unwrap();
    assert_eq!(
        sent_body(by_id, |r| r).await["message"],
        json!({"attachment": {"type": "file", "payload": {"attachment_id": "1857777774821032"}}})
    );
}

#[tokio::test]
async fn quick_replies() {
    let message = Message::text("Pick a colour")
        .unwrap()
        .with_quick_replies(vec![
            QuickReply::text("Red", "COLOR_RED")
                .unwrap()
                .with_image("https://example.com/red.png")
                .unwrap(),
            QuickReply::text("Green", "COLOR_GREEN").unwrap(),
            QuickReply::UserEmail,
            QuickReply::UserPhoneNumber,
        ])
        .unwrap();
    assert_eq!(
        sent_body(message, |r| r).await["message"],
        json!({
            "text": "Pick a colour",
            "quick_replies": [
                {"content_type": "text", "title": "Red", "payload": "COLOR_RED", "image_url": "https://example.com/red.png"},
                {"content_type": "text", "title": "Green", "payload": "COLOR_GREEN"},
                {"content_type": "user_email"},
                {"content_type": "user_phone_number"}
            ]
        })
    );
}

#[tokio::test]
async fn button_template() {
    let message = Message::buttons(
        "What do you need?",
        vec![
            Button::postback("Track order", "TRACK").unwrap(),
            Button::web_url("Help centre", "https://example.com/help").unwrap(),
            Button::call("Call us", "+33123456789").unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(
        sent_body(message, |r| r).await["message"],
        json!({"attachment": {"type": "template", "payload": {
            "template_type": "button",
            "text": "What do you need?",
            "buttons": [
                {"type": "postback", "title": "Track order", "payload": "TRACK"},
                {"type": "web_url", "title": "Help centre", "url": "https://example.com/help"},
                {"type": "phone_number", "title": "Call us", "payload": "+33123456789"}
            ]
        }}})
    );
}

#[tokio::test]
async fn generic_template() {
    let card = Element::new("Blue shirt")
        .unwrap()
        .subtitle("Size M, in stock")
        .unwrap()
        .image_url("https://example.com/shirt.jpg")
        .unwrap()
        .buttons(vec![Button::postback("Buy", "BUY_SHIRT").unwrap()])
        .unwrap();
    let message = Message::generic(vec![card, Element::new("Red shirt").unwrap()]).unwrap();
    assert_eq!(
        sent_body(message, |r| r).await["message"],
        json!({"attachment": {"type": "template", "payload": {
            "template_type": "generic",
            "elements": [
                {"title": "Blue shirt", "subtitle": "Size M, in stock", "image_url": "https://example.com/shirt.jpg",
                 "buttons": [{"type": "postback", "title": "Buy", "payload": "BUY_SHIRT"}]},
                {"title": "Red shirt"}
            ]
        }}})
    );
}

#[tokio::test]
async fn sender_actions() {
    let mock = MockGraph::start().await;
    let c = client(&mock);
    for action in [
        SenderAction::TypingOn,
        SenderAction::TypingOff,
        SenderAction::MarkSeen,
    ] {
        mock.push(Scripted::json(
            200,
            r#"{"recipient_id":"24012345678901234"}"#,
        ));
        c.sender_action(&page(), &psid(), action).await.unwrap();
    }
    let actions: Vec<_> = mock
        .requests()
        .iter()
        .map(|r| r.json()["sender_action"].clone())
        .collect();
    assert_eq!(
        actions,
        [json!("typing_on"), json!("typing_off"), json!("mark_seen")]
    );
    assert_eq!(mock.requests()[0].json()["recipient"], json!({"id": PSID}));
}

/// Splits a multipart body into (headers, content) parts.
fn parts(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .unwrap()
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let text = body;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let header_end = find(rest, b"\r\n\r\n").unwrap();
        let headers = String::from_utf8_lossy(&rest[..header_end]).into_owned();
        let content_start = header_end + 4;
        let next = find(&rest[content_start..], delimiter.as_bytes()).unwrap();
        let content = rest[content_start..content_start + next - 2].to_vec(); // drop CRLF
        out.push((headers, content));
        rest = &rest[content_start + next..];
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn multipart_upload_with_a_message() {
    let mock = MockGraph::start().await;
    let png = include_bytes!("../examples/sample/logo.png");
    let upload = Upload::new(&png[..], "../secret/logo.png", "image/png").unwrap();
    let message = Message::attachment(MediaKind::Image, AttachmentSource::Upload(upload)).unwrap();
    mock.push(Scripted::json(
        200,
        r#"{"recipient_id":"24012345678901234","message_id":"m_up","attachment_id":"777"}"#,
    ));
    let sent = client(&mock)
        .send(&page(), &SendRequest::new(PSID, message))
        .await
        .unwrap();
    assert_eq!(
        (sent.message_id.as_str(), sent.attachment_id.as_deref()),
        ("m_up", Some("777"))
    );

    let r = &mock.requests()[0];
    assert_eq!(r.path, format!("/v26.0/{PAGE}/messages"));
    assert_eq!(r.query_param("appsecret_proof").as_deref(), Some(PROOF));
    let content_type = r.headers["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("multipart/form-data"),
        "{content_type}"
    );
    let parts = parts(&content_type, &r.body);
    let find_part = |name: &str| {
        parts
            .iter()
            .find(|(h, _)| h.contains(&format!("name=\"{name}\"")))
            .unwrap_or_else(|| panic!("no part {name}: {parts:?}"))
    };
    let (_, recipient) = find_part("recipient");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(recipient).unwrap(),
        json!({"id": PSID})
    );
    let (_, message) = find_part("message");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(message).unwrap(),
        json!({"attachment": {"type": "image", "payload": {"is_reusable": true}}})
    );
    assert_eq!(find_part("messaging_type").1, b"RESPONSE");
    let (headers, file) = find_part("filedata");
    assert!(
        headers.contains("filename=\"logo.png\""),
        "name sanitised: {headers}"
    );
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: image/png"),
        "{headers}"
    );
    assert_eq!(file.as_slice(), &png[..]);
}

#[tokio::test]
async fn attachment_upload_api_returns_an_id() {
    let mock = MockGraph::start().await;
    let c = client(&mock);
    mock.push(Scripted::json(
        200,
        r#"{"attachment_id":"1857777774821032"}"#,
    ));
    let by_url = AttachmentSource::Url {
        url: "https://example.com/manual.pdf".into(),
        reusable: true,
    };
    assert_eq!(
        c.upload_attachment(&page(), MediaKind::File, &by_url)
            .await
            .unwrap(),
        "1857777774821032"
    );
    let r = &mock.requests()[0];
    assert_eq!(r.path, format!("/v26.0/{PAGE}/message_attachments"));
    assert_eq!(
        r.json(),
        json!({"message": {"attachment": {"type": "file", "payload": {"url": "https://example.com/manual.pdf", "is_reusable": true}}}})
    );

    mock.push(Scripted::json(200, r#"{"attachment_id":"42"}"#));
    let upload = AttachmentSource::Upload(
        Upload::new(&b"%PDF-1.7"[..], "manual.pdf", "application/pdf").unwrap(),
    );
    assert_eq!(
        c.upload_attachment(&page(), MediaKind::File, &upload)
            .await
            .unwrap(),
        "42"
    );
    let r = &mock.requests()[1];
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("multipart/form-data")
    );
    assert!(find(&r.body, b"filename=\"manual.pdf\"").is_some());
}

#[tokio::test]
async fn thread_control_and_owner() {
    let mock = MockGraph::start().await;
    let c = client(&mock);
    for _ in 0..4 {
        mock.push(Scripted::json(200, r#"{"success":true}"#));
    }
    c.pass_thread_control(
        &page(),
        &psid(),
        AppId(263_902_037_430_900),
        Some("to inbox"),
    )
    .await
    .unwrap();
    c.take_thread_control(&page(), &psid(), Some("agent took over"))
        .await
        .unwrap();
    c.request_thread_control(&page(), &psid(), None)
        .await
        .unwrap();
    c.release_thread_control(&page(), &psid()).await.unwrap();
    mock.push(Scripted::json(
        200,
        r#"{"data":[{"thread_owner":{"app_id":"1517776481860111"}}]}"#,
    ));
    assert_eq!(
        c.thread_owner(&page(), &psid()).await.unwrap(),
        Some(AppId(1_517_776_481_860_111))
    );
    let r = mock.requests();
    let paths: Vec<_> = r
        .iter()
        .map(|r| r.path.rsplit('/').next().unwrap().to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "pass_thread_control",
            "take_thread_control",
            "request_thread_control",
            "release_thread_control",
            "thread_owner"
        ]
    );
    assert_eq!(
        r[0].json(),
        json!({"recipient": {"id": PSID}, "target_app_id": 263_902_037_430_900_u64, "metadata": "to inbox"})
    );
    assert_eq!(
        r[1].json(),
        json!({"recipient": {"id": PSID}, "metadata": "agent took over"})
    );
    assert_eq!(r[3].json(), json!({"recipient": {"id": PSID}}));
    assert_eq!(r[4].method, "GET");
    assert_eq!(r[4].query_param("recipient").as_deref(), Some(PSID));
}

#[tokio::test]
async fn user_profile() {
    let mock = MockGraph::start().await;
    mock.push(Scripted::json(200, r#"{"first_name":"Ada","last_name":"Lovelace","profile_pic":"https://x/p.jpg","id":"24012345678901234"}"#));
    let profile = client(&mock).user_profile(&page(), &psid()).await.unwrap();
    assert_eq!(profile.display_name().as_deref(), Some("Ada Lovelace"));
    assert_eq!(profile.profile_pic.as_deref(), Some("https://x/p.jpg"));
    let r = &mock.requests()[0];
    assert_eq!(r.path, format!("/v26.0/{PSID}"));
    assert_eq!(
        r.query_param("fields").as_deref(),
        Some("first_name,last_name,name,profile_pic")
    );
    // Ids go into paths: anything else is refused before a call.
    let err = client(&mock)
        .user_profile(&page(), &UserId::from("../me"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Invalid(_)));
    assert_eq!(mock.requests().len(), 1);
}

/// Realistic Graph error bodies, each with its class.
#[tokio::test]
async fn graph_errors_are_typed() {
    let cases = [
        (
            400,
            r#"{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"A1"}}"#,
            ErrorKind::TokenInvalid,
            false,
        ),
        (
            400,
            r#"{"error":{"message":"(#613) Calls to this api have exceeded the rate limit.","type":"OAuthException","code":613,"fbtrace_id":"A2"}}"#,
            ErrorKind::RateLimited,
            true,
        ),
        (
            400,
            r#"{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","code":10,"error_subcode":2018278,"fbtrace_id":"A3"}}"#,
            ErrorKind::OutsideWindow,
            false,
        ),
        (
            400,
            r#"{"error":{"message":"This person isn't available right now.","type":"OAuthException","code":551,"error_subcode":1545041,"fbtrace_id":"A4"}}"#,
            ErrorKind::RecipientUnavailable,
            false,
        ),
        (
            400,
            r#"{"error":{"message":"(#100) The parameter recipient is required","type":"OAuthException","code":100,"fbtrace_id":"A5"}}"#,
            ErrorKind::InvalidParameter,
            false,
        ),
        (
            400,
            r#"{"error":{"message":"(#100) Tag is no longer supported","type":"OAuthException","code":100,"error_subcode":1893061,"fbtrace_id":"A6"}}"#,
            ErrorKind::InvalidParameter,
            false,
        ),
        (
            403,
            r#"{"error":{"message":"(#200) Requires pages_messaging permission","type":"OAuthException","code":200,"fbtrace_id":"A7"}}"#,
            ErrorKind::Permission,
            false,
        ),
        (
            500,
            r#"{"error":{"message":"An unexpected error has occurred. Please retry your request later.","type":"OAuthException","code":2,"fbtrace_id":"A8"}}"#,
            ErrorKind::Temporary,
            true,
        ),
        (
            400,
            r#"{"error":{"message":"(#4) Application request limit reached","type":"OAuthException","code":4,"fbtrace_id":"A9"}}"#,
            ErrorKind::RateLimited,
            true,
        ),
    ];
    let mock = MockGraph::start().await;
    let c = GraphClient::builder(PageAccessToken::new(TOKEN).unwrap())
        .base_url(mock.base_url())
        .retry(RetryPolicy::never())
        .build()
        .unwrap();
    for (i, (status, body, kind, retryable)) in cases.into_iter().enumerate() {
        mock.push(Scripted::json(status, body));
        let err = c
            .send(
                &page(),
                &SendRequest::new(PSID, Message::text("x").unwrap()),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{body}");
        assert_eq!(err.is_retryable(), retryable, "{body}");
        assert_eq!(err.fbtrace_id(), Some(format!("A{}", i + 1).as_str()));
        assert!(!err.to_string().contains(TOKEN));
    }
    // A gateway page instead of JSON: a server failure, retryable.
    mock.push(Scripted::json(502, "<html>Bad Gateway</html>"));
    let err = c
        .send(
            &page(),
            &SendRequest::new(PSID, Message::text("x").unwrap()),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        SendError::UnexpectedResponse { status: 502, .. }
    ));
    assert!(err.is_retryable());
}

#[tokio::test]
async fn rate_limit_is_retried_then_succeeds() {
    let mock = MockGraph::start().await;
    mock.push(Scripted::json(400, r#"{"error":{"message":"(#613) Calls to this api have exceeded the rate limit.","code":613,"fbtrace_id":"R1"}}"#));
    let sent = client(&mock)
        .send(
            &page(),
            &SendRequest::new(PSID, Message::text("hi").unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(sent.message_id, "m_default");
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test]
async fn expired_token_is_not_retried() {
    let mock = MockGraph::start().await;
    mock.push(Scripted::json(
        400,
        r#"{"error":{"message":"Error validating access token","code":190,"fbtrace_id":"T1"}}"#,
    ));
    let err = client(&mock)
        .send(
            &page(),
            &SendRequest::new(PSID, Message::text("hi").unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TokenInvalid);
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn retries_stop_after_max_attempts() {
    let mock = MockGraph::start().await;
    for _ in 0..5 {
        mock.push(Scripted::json(
            500,
            r#"{"error":{"message":"temporary","code":2}}"#,
        ));
    }
    let err = client(&mock)
        .send(
            &page(),
            &SendRequest::new(PSID, Message::text("hi").unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Temporary);
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test]
async fn a_timeout_is_an_unknown_outcome_and_not_retried() {
    let mock = MockGraph::start().await;
    mock.push(Scripted {
        status: 0,
        body: String::new(),
        headers: Vec::new(),
    });
    let c = GraphClient::builder(PageAccessToken::new(TOKEN).unwrap())
        .base_url(mock.base_url())
        .timeout(Duration::from_millis(300))
        .retry(quick_retries())
        .build()
        .unwrap();
    let err = c
        .send(
            &page(),
            &SendRequest::new(PSID, Message::text("hi").unwrap()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Transport {
                kind: TransportKind::Timeout,
                outcome_unknown: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        mock.requests().len(),
        1,
        "a possibly delivered send is not sent again"
    );
}

#[tokio::test]
async fn connection_refused_is_retryable_and_says_so() {
    // Bind then drop a listener: its port now refuses connections.
    let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let c = GraphClient::builder(PageAccessToken::new(TOKEN).unwrap())
        .base_url(format!("http://{addr}"))
        .retry(RetryPolicy::never())
        .build()
        .unwrap();
    let err = c
        .send(
            &page(),
            &SendRequest::new(PSID, Message::text("hi").unwrap()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SendError::Transport {
                kind: TransportKind::Connect,
                outcome_unknown: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(!err.to_string().contains(TOKEN));
}

#[tokio::test]
async fn usage_header_sets_the_wait() {
    let mock = MockGraph::start().await;
    let mut answer = Scripted::json(400, r#"{"error":{"message":"throttled","code":80006}}"#);
    answer.headers.push((
        "x-business-use-case-usage",
        r#"{"104987654321098":[{"type":"messenger","call_count":100,"estimated_time_to_regain_access":10}]}"#.into(),
    ));
    mock.push(answer);
    // Ten minutes is past the policy's 30-second budget: give up at once, with the wait known.
    let err = client(&mock)
        .send(
            &page(),
            &SendRequest::new(PSID, Message::text("hi").unwrap()),
        )
        .await
        .unwrap_err();
    let SendError::Graph(g) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(g.retry_after, Some(Duration::from_secs(600)));
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn download_returns_bytes_type_and_name() {
    let mock = MockGraph::start().await;
    let media = client(&mock)
        .download(&format!("{}/files/logo.png", mock.base_url()), 1 << 20)
        .await
        .unwrap();
    assert_eq!(
        &media.bytes[..],
        &include_bytes!("../examples/sample/logo.png")[..]
    );
    assert_eq!(media.content_type.as_deref(), Some("image/png"));
    assert_eq!(media.file_name.as_deref(), Some("logo.png"));
    // Media URLs are fetched without the page token.
    let r = &mock.requests()[0];
    assert!(r.headers.get("authorization").is_none());
}

#[tokio::test]
async fn download_cap_stops_an_endless_body() {
    let mock = MockGraph::start().await;
    let c = client(&mock);
    // Without the cap this would never end: the body is endless.
    let result = tokio::time::timeout(
        Duration::from_secs(60),
        c.download(&format!("{}/files/endless", mock.base_url()), 1_000_000),
    )
    .await
    .expect("the cap ends the download");
    assert_eq!(result.unwrap_err(), SendError::TooLarge { max: 1_000_000 });
    // A declared length over the cap is refused before the body is read.
    let result = c
        .download(&format!("{}/files/big", mock.base_url()), 1_000_000)
        .await;
    assert_eq!(result.unwrap_err(), SendError::TooLarge { max: 1_000_000 });
    assert!(c.download("file:///etc/passwd", 10).await.is_err());
}

#[tokio::test]
async fn no_token_no_call() {
    let mock = MockGraph::start().await;
    let tokens: std::collections::HashMap<PageId<'static>, PageAccessToken> =
        [(PageId::from("111"), PageAccessToken::new("t-111").unwrap())]
            .into_iter()
            .collect();
    let c = GraphClient::builder(tokens)
        .base_url(mock.base_url())
        .build()
        .unwrap();
    let err = c
        .send(
            &page(),
            &SendRequest::new(PSID, Message::text("hi").unwrap()),
        )
        .await
        .unwrap_err();
    assert_eq!(err, SendError::NoToken { page: PAGE.into() });
    c.send(
        &PageId::from("111"),
        &SendRequest::new(PSID, Message::text("hi").unwrap()),
    )
    .await
    .unwrap();
    let r = mock.requests();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].headers["authorization"], "Bearer t-111");
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output() {
    let mock = MockGraph::start().await;
    let c = client(&mock);
    let text = format!("{c:?} {:?}", PageAccessToken::new(TOKEN).unwrap());
    assert!(!text.contains(TOKEN) && !text.contains(SECRET), "{text}");
    let clone = c.clone();
    clone
        .sender_action(&page(), &psid(), SenderAction::TypingOn)
        .await
        .unwrap();
}

#[cfg(feature = "rate-limit")]
#[tokio::test]
async fn rate_limiter_lets_a_burst_through() {
    let mock = MockGraph::start().await;
    let c = GraphClient::builder(PageAccessToken::new(TOKEN).unwrap())
        .base_url(mock.base_url())
        .rate_limit(true)
        .build()
        .unwrap();
    for _ in 0..5 {
        c.send(
            &page(),
            &SendRequest::new(PSID, Message::text("hi").unwrap()),
        )
        .await
        .unwrap();
    }
    assert_eq!(mock.requests().len(), 5);
    // Audio is held to 10/s per page: past a burst of 10, each send waits its turn. Only a
    // lower bound on the time is checked, which a loaded machine cannot break.
    let audio = Message::attachment(
        MediaKind::Audio,
        AttachmentSource::Url {
            url: "https://example.com/a.mp3".into(),
            reusable: false,
        },
    )
    .unwrap();
    let started = std::time::Instant::now();
    for _ in 0..13 {
        c.send(&page(), &SendRequest::new(PSID, audio.clone()))
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn absurd_usage_header_is_capped_not_a_panic() {
    let mock = MockGraph::start().await;
    let mut answer = Scripted::json(400, r#"{"error":{"message":"throttled","code":80006}}"#);
    // `estimated_time_to_regain_access` is minutes; u64::MAX of them overflowed `* 60`.
    answer.headers.push((
        "x-business-use-case-usage",
        format!(
            r#"{{"104987654321098":[{{"type":"messenger","estimated_time_to_regain_access":{}}}]}}"#,
            u64::MAX
        ),
    ));
    mock.push(answer);
    let err = client(&mock)
        .send(
            &page(),
            &SendRequest::new(PSID, Message::text("hi").unwrap()),
        )
        .await
        .unwrap_err();
    let SendError::Graph(g) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(g.retry_after, Some(Duration::from_secs(24 * 3600)));
    assert_eq!(mock.requests().len(), 1);
}
