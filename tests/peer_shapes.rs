//! Every webhook body of the peers' test suites and Meta's reference that the sweep of issue 14
//! collected (`tests/fixtures/webhook/peers/`, recorded in `tests/fixtures/webhook/PEERS.md`),
//! run as a receiver meets it: signed, verified and parsed by [`Webhook::verify_and_parse`],
//! then handled by an engine (a `FakeSend` and an `InMemoryStore`, twice, as Meta redelivers).
//!
//! For each body: what every item parses to (an event kind, or the field of its item error),
//! and the lines an agent reads in the customer's conversation, opened by a first message of
//! theirs. A body the channel does not act on adds no line. "The customer sent an unsupported message type" appears only
//! where the customer did send something the channel cannot show.
//!
//! The bodies are the peers' test data, reproduced as fixtures: restfb's
//! `src/test/resources/json/webhooks/messaging-*.json` and messenger4j's `WebhookTest.java`
//! whole; items of bottender's `MessengerEvent.spec.ts` / `MessengerConnector.spec.ts`, fbmq's
//! `tests/test_events.py`, the facebook-messenger gem's `spec/.../incoming/*_spec.rb` (Ruby
//! hashes written as JSON) and tock's `WebhookDeserializationTest.kt` put in an entry of
//! their page; Meta's examples from its messages reference. botbuilder's Facebook adapter
//! tests post bodies without Meta's envelope; those are refused whole (see [`refused`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use messenger_channel::agents::{InMemoryRouter, Presence};
use messenger_channel::attachment::UNSUPPORTED_INBOUND_NOTICE;
use messenger_channel::conversation::{ConversationConfig, LineBody};
use messenger_channel::engine::Engine;
use messenger_channel::ids::{AgentId, PageId, UserId};
use messenger_channel::secret::AppSecret;
use messenger_channel::store::{ConversationStore, InMemoryStore};
use messenger_channel::testing::FakeSend;
use messenger_channel::webhook::signature::sign_sha256;
use messenger_channel::webhook::{EventKind, ParseError, Webhook, WebhookError};

const SECRET: &str = "peer-shapes-secret";
/// The customer's first message, before each body.
const OPENING: &str = "hello, this is the customer";

/// One body and what an agent should read of it.
struct Case {
    /// The fixture's name, under `tests/fixtures/webhook/peers/`.
    name: &'static str,
    body: &'static str,
    /// Each item: its event kind, or `err FIELD` for an item error.
    items: &'static [&'static str],
    /// The lines the body adds to the customer's conversation ([`render`]), after a first
    /// message of theirs; empty when it adds none (or has no customer).
    lines: &'static [&'static str],
}

macro_rules! case {
    ($name:literal, [$($item:literal),* $(,)?], [$($line:literal),* $(,)?]) => {
        Case {
            name: $name,
            body: include_str!(concat!("fixtures/webhook/peers/", $name, ".json")),
            items: &[$($item),*],
            lines: &[$($line),*],
        }
    };
}

/// How a line reads, for comparing.
fn render(body: &LineBody) -> String {
    match body {
        LineBody::Text(t) => format!("text: {t}"),
        LineBody::Postback { title, payload } => format!(
            "postback: {} | {}",
            title.as_deref().unwrap_or("-"),
            payload.as_deref().unwrap_or("-")
        ),
        LineBody::File(f) => format!(
            "file {}: {}{}",
            f.kind,
            f.url.as_deref().unwrap_or("-"),
            if f.rejected.is_some() {
                " (refused)"
            } else {
                ""
            }
        ),
        LineBody::Notice(n) => format!("notice: {n}"),
        LineBody::Reaction(r) => format!(
            "reaction {}: {}{}",
            r.to.as_deref().unwrap_or("-"),
            r.emoji.as_deref().unwrap_or("-"),
            if r.removed { " (removed)" } else { "" }
        ),
        LineBody::Edit {
            of,
            text,
            edit_count,
        } => format!("edit {of} #{edit_count}: {text}"),
        LineBody::Unsent { of } => format!("unsent {of}"),
        LineBody::Sticker { url, sticker_id } => format!(
            "sticker {}: {}",
            sticker_id.map_or("-".to_owned(), |id| id.to_string()),
            url.as_deref().unwrap_or("-")
        ),
        LineBody::Link { kind, title, url } => format!(
            "link {kind}: {} <{}>",
            title.as_deref().unwrap_or("-"),
            url.as_deref().unwrap_or("-")
        ),
        LineBody::Location { title, map_url } => {
            format!("location {}: {map_url}", title.as_deref().unwrap_or("-"))
        }
        other => format!("{other:?}"),
    }
}

#[allow(clippy::too_many_lines, reason = "a table of cases")]
fn cases() -> Vec<Case> {
    vec![
        // restfb
        case!(
            "restfb-product-template",
            ["message"],
            ["link template: Some product title — $40 <https://fb.cdn.com/sdsd>"]
        ),
        case!(
            "restfb-product-template-2",
            ["message"],
            [
                "text: text sent along with the product",
                "link template: product name — product price as a string <https://scontent.xx.fbcdn.net/v/andSoOn.png>"
            ]
        ),
        // Something Messenger could not pass on: the agent learns the customer wrote.
        case!(
            "restfb-isunsupported",
            ["message"],
            ["notice: Error: Customer sent an unsupported message type (unsupported)."]
        ),
        case!(
            "restfb-button-template",
            ["message"],
            ["link template: [Visit Messenger] <BUTTON_URL>"]
        ),
        case!(
            "restfb-fallback-attachment",
            ["message"],
            ["link fallback: Legacy Attachment <https://www.messenger.com/>"]
        ),
        case!(
            "restfb-location-attachment",
            ["message"],
            ["location -: https://www.openstreetmap.org/?mlat=12.34&mlon=43.21#map=17/12.34/43.21"]
        ),
        case!(
            "restfb-message-edits",
            ["message_edit"],
            ["edit mid.1457764197618:41d102a3e1ae206a38 #37: hello, world!"]
        ),
        case!("restfb-isdeleted", ["message"], ["unsent message_id"]),
        case!(
            "restfb-reaction-1",
            ["reaction"],
            ["reaction original_message_id: \u{1F622}"]
        ),
        case!(
            "restfb-reaction-2",
            ["reaction"],
            ["reaction original_message_id: - (removed)"]
        ),
        case!("restfb-reply-1", ["message"], ["text: hello, world!"]),
        case!("restfb-reply-2", ["message"], ["text: hello, world!"]),
        case!(
            "restfb-sticker",
            ["message"],
            ["sticker 56789012345678: https://scontent.xx.fbcdn.net/sticker.png"]
        ),
        case!(
            "restfb-prior-message",
            ["message"],
            ["text: Thanks for messaging me!"]
        ),
        case!("restfb-postback-chat", ["postback"], []),
        case!("restfb-policy-unblock", ["policy_enforcement"], []),
        case!(
            "restfb-request-thread-control",
            ["request_thread_control"],
            []
        ),
        case!("restfb-checkout-update", ["unknown"], []),
        case!("restfb-delivery-basic", ["delivery"], []),
        case!("restfb-quickreply", ["message"], ["text: quick reply text"]),
        case!("restfb-optin-userref", ["optin"], []),
        case!(
            "restfb-postback-referral",
            ["postback"],
            ["postback: - | USER_DEFINED_PAYLOAD"]
        ),
        // messenger4j
        case!(
            "messenger4j-attachments",
            ["message"],
            [
                // The test's URL names a `.url` file, which the default policy blocks.
                "file image: http://image.url (refused)",
                "notice: Error: Customer sent an unsupported message type. Files of type .url are blocked.",
                "link fallback: <TITLE_OF_THE_URL_ATTACHMENT> <<URL_OF_THE_ATTACHMENT>>",
                "location -: https://www.openstreetmap.org/?mlat=52.3765533&mlon=9.7389123#map=17/52.3765533/9.7389123"
            ]
        ),
        // Another app's receipt, as the agent reads it.
        case!(
            "messenger4j-template-echo",
            ["echo"],
            [
                "link template: Samsung Gear VR — Frost White\nOculus Rift — Includes: headset, sensor, remote <->"
            ]
        ),
        case!("messenger4j-delivery-without-mids", ["delivery"], []),
        case!(
            "messenger4j-postback-ad-referral",
            ["postback"],
            ["postback: <TITLE_FOR_THE_CTA> | <USER_DEFINED_PAYLOAD>"]
        ),
        case!("messenger4j-referral-discover-tab", ["referral"], []),
        case!("messenger4j-unsupported-event", ["unknown"], []),
        // bottender
        case!(
            "bottender-fallback",
            ["message"],
            ["link fallback: TITLE_OF_THE_URL_ATTACHMENT <URL_OF_THE_ATTACHMENT>"]
        ),
        case!("bottender-policy-enforcement", ["policy_enforcement"], []),
        case!(
            "bottender-chat-plugin-text",
            ["message"],
            ["text: Sharp tools make good work."]
        ),
        case!("bottender-chat-plugin-referral", ["referral"], []),
        case!("bottender-webhook-test", [], []),
        case!(
            "bottender-get-started",
            ["postback"],
            ["postback: Get Started | __GET_STARTED__"]
        ),
        // fbmq
        case!("fbmq-delivery", ["delivery"], []),
        case!("fbmq-image", ["message"], ["file image: IMAGE_URL"]),
        case!("fbmq-read", ["read"], []),
        // the facebook-messenger gem
        case!(
            "gem-message-nlp",
            ["message"],
            [
                "text: Hello, bot!",
                "file image: https://www.example.com/1.jpg"
            ]
        ),
        case!("gem-message-request", ["unknown"], []),
        case!("gem-game-play", ["unknown"], []),
        case!(
            "gem-location-string-coordinates",
            ["message"],
            ["notice: Error: Customer sent an unsupported message type (location)."]
        ),
        // tock
        case!("tock-empty-attachment", ["message"], ["text: text"]),
        case!(
            "tock-standby-empty-postback",
            ["postback"],
            [
                "postback: - | -",
                "notice: the customer wrote while another app or the Page inbox holds the thread; sending is paused"
            ]
        ),
        case!("tock-app-roles", ["app_roles"], []),
        case!("tock-pass-thread-control", ["pass_thread_control"], []),
        // Meta's reference
        case!("meta-reply-self", ["message"], ["text: hello, world!"]),
    ]
}

/// Bodies refused whole, and why: botbuilder's Facebook adapter tests (botkit's
/// `packages/botbuilder-adapter-facebook/tests/FacebookAdapter.tests.js`) post bodies with no
/// `object`, entries with no `id` and items with no `timestamp`, which Meta never sends; a
/// receiver answers 400 rather than guess whose page they are for.
fn refused() -> Vec<(&'static str, &'static str, ParseError)> {
    vec![
        (
            "botbuilder-message-sticker",
            include_str!("fixtures/webhook/peers/botbuilder-message-sticker.json"),
            ParseError::MissingObject,
        ),
        (
            "botbuilder-read",
            include_str!("fixtures/webhook/peers/botbuilder-read.json"),
            ParseError::MissingObject,
        ),
    ]
}

#[test]
fn bodies_without_the_envelope_are_refused_whole() {
    for (name, body, error) in refused() {
        let body = body.as_bytes();
        let refused = Webhook::new(&AppSecret::new(SECRET).unwrap())
            .verify_and_parse(&headers_for(body), body)
            .unwrap_err();
        assert_eq!(refused, WebhookError::Parse(error), "{name}");
        assert_eq!(refused.status(), 400, "{name}");
    }
}

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_718_000_000)
}

fn engine(store: Arc<dyn ConversationStore>) -> Engine {
    let router = Arc::new(InMemoryRouter::new());
    router.set_presence(&AgentId::from("alice"), Presence::Available);
    Engine::builder(
        Webhook::new(&AppSecret::new(SECRET).unwrap()),
        Arc::new(FakeSend::new()),
    )
    .store(store)
    .router(router)
    .config(ConversationConfig::default())
    .build()
}

fn headers_for(body: &[u8]) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    let signature = sign_sha256(&AppSecret::new(SECRET).unwrap(), body);
    headers.insert("x-hub-signature-256", signature.parse().unwrap());
    headers
}

/// What an agent reads of one body: its items, and the customer's conversation.
async fn read(case: &Case) -> (Vec<String>, Vec<String>) {
    let body = case.body.as_bytes();
    let headers = headers_for(body);
    let webhook = Webhook::new(&AppSecret::new(SECRET).unwrap());
    let batch = webhook
        .verify_and_parse(&headers, body)
        .unwrap_or_else(|e| panic!("{}: refused: {e}", case.name));
    let items = batch
        .items()
        .iter()
        .map(|item| match item {
            Ok(event) => event.kind_name().to_owned(),
            Err(error) => format!("err {}", error.field),
        })
        .collect();
    // The conversation of the body's customer, if the engine opens one.
    let thread = batch.events().find_map(|e| {
        let customer = e.customer()?.as_str().to_owned();
        Some((e.page_id.as_str().to_owned(), customer))
    });
    let store: Arc<dyn ConversationStore> = Arc::new(InMemoryStore::new());
    let engine = engine(store.clone());
    let now = t0();
    // The customer wrote first, so that what the body adds to a conversation (a reaction,
    // an edit, the Page's reply) shows, and what it does not add is seen to add nothing.
    if let Some((page, customer)) = &thread {
        let opening = serde_json::json!({"object": "page", "entry": [{"id": page, "time": 1,
            "messaging": [{"sender": {"id": customer}, "recipient": {"id": page},
                "timestamp": 1, "message": {"mid": "m_opening", "text": OPENING}}]}]})
        .to_string();
        let report = engine
            .handle_webhook(&headers_for(opening.as_bytes()), opening.as_bytes(), now)
            .await
            .unwrap();
        assert_eq!(report.handled, 1, "{}: the opening message", case.name);
    }
    let first = engine.handle_webhook(&headers, body, now).await.unwrap();
    assert!(first.failed.is_empty(), "{}: {:?}", case.name, first.failed);
    let again = engine.handle_webhook(&headers, body, now).await.unwrap();
    assert_eq!(again.received, 0, "{}: a redelivery is no news", case.name);
    let mut lines = Vec::new();
    if let Some((page, customer)) = thread
        && let Some(stored) = store
            .find_open(
                &PageId::from(page.as_str()),
                &UserId::from(customer.as_str()),
            )
            .await
            .unwrap()
    {
        lines = store
            .transcript(stored.conversation.id())
            .await
            .unwrap()
            .iter()
            .map(|l| render(&l.body))
            .collect();
        assert_eq!(
            lines.first().map(String::as_str),
            Some(format!("text: {OPENING}").as_str()),
            "{}",
            case.name
        );
        lines.remove(0);
    }
    (items, lines)
}

#[tokio::test]
async fn every_peer_body_reads_as_the_customer_sent_it() {
    let mut wrong = Vec::new();
    for case in cases() {
        let (items, lines) = read(&case).await;
        if items != case.items || lines != case.lines {
            wrong.push(format!(
                "{}:\n  items {items:?}\n  lines {lines:?}",
                case.name
            ));
        }
        // The notice is for what cannot be read: a message Messenger flags unsupported, a
        // file the policy refuses, a location without coordinates (see PEERS.md).
        let unsupported = lines.iter().any(|l| l.contains(UNSUPPORTED_INBOUND_NOTICE));
        if unsupported
            && ![
                "restfb-isunsupported",
                "messenger4j-attachments",
                "gem-location-string-coordinates",
            ]
            .contains(&case.name)
        {
            wrong.push(format!("{}: reads as unsupported: {lines:?}", case.name));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn every_fixture_has_a_case_and_every_case_a_row_in_peers_md() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/webhook");
    let peers_md = std::fs::read_to_string(dir.join("PEERS.md")).unwrap();
    let names: Vec<&str> = cases()
        .iter()
        .map(|c| c.name)
        .chain(refused().iter().map(|r| r.0))
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(dir.join("peers"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".json")
                .to_owned()
        })
        .collect();
    files.sort();
    for file in &files {
        assert!(names.contains(&file.as_str()), "{file} has no case");
    }
    for name in names {
        assert!(
            peers_md.contains(&format!("`peers/{name}.json`")),
            "{name} is not in PEERS.md"
        );
    }
}

/// What the parser keeps of the shapes the sweep fixed, beyond what the transcript shows.
#[test]
fn fixed_shapes_keep_their_fields() {
    let parse = |name: &str| {
        let case = cases().into_iter().find(|c| c.name == name).unwrap();
        let body = case.body.as_bytes();
        let batch = Webhook::new(&AppSecret::new(SECRET).unwrap())
            .verify_and_parse(&headers_for(body), body)
            .unwrap();
        batch.into_items().into_iter().next().unwrap().unwrap()
    };
    // A chat-plugin postback with a numeric `user_ref`: the postback is kept.
    let e = parse("restfb-postback-chat");
    let EventKind::Postback(p) = &e.kind else {
        panic!("{e:?}")
    };
    assert_eq!(p.payload.unwrap().decode(), "hey");
    assert!(e.sender.is_none());
    // `URL` beside a null payload.
    let e = parse("bottender-fallback");
    let EventKind::Message(m) = &e.kind else {
        panic!("{e:?}")
    };
    assert_eq!(
        m.attachments[0]
            .url
            .map(|u| u.decode().into_owned())
            .as_deref(),
        Some("URL_OF_THE_ATTACHMENT")
    );
    // An empty attachment object is no attachment; the text stays.
    let e = parse("tock-empty-attachment");
    let EventKind::Message(m) = &e.kind else {
        panic!("{e:?}")
    };
    assert!(m.attachments.is_empty());
    assert_eq!(m.text.unwrap().decode(), "text");
    // An event whose value is a string is named by its key.
    let e = parse("gem-message-request");
    let EventKind::Unknown(u) = &e.kind else {
        panic!("{e:?}")
    };
    assert_eq!(u.key.as_deref(), Some("message_request"));
}
