//! Webhook ingest from Meta-shaped payloads: one test per event kind, signatures over the bytes
//! as sent, and batches with malformed items.

use messenger_channel::ids::AppId;
use messenger_channel::secret::AppSecret;
use messenger_channel::webhook::signature::{SignatureError, sign_sha1, sign_sha256};
use messenger_channel::webhook::{
    AttachmentKind, Batch, Event, EventKind, ItemProblem, Limits, ParseError, ReactionAction,
    Webhook, WebhookError, parse_unverified, parse_with_limits,
};

const SECRET: &str = "test-app-secret";

fn secret() -> AppSecret {
    AppSecret::new(SECRET).unwrap()
}

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("fixtures/webhook/", $name, ".json"))
    };
}

/// Verifies and parses a fixture as a receiver would, with a signature made over its bytes.
fn ingest(body: &str) -> Batch<'_> {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-hub-signature-256",
        sign_sha256(&secret(), body.as_bytes()).parse().unwrap(),
    );
    Webhook::new(&secret())
        .verify_and_parse(&headers, body.as_bytes())
        .expect("fixture verifies and parses")
}

fn events(body: &'static str) -> Vec<Event<'static>> {
    let batch = ingest(body);
    assert_eq!(
        batch.errors().count(),
        0,
        "{:?}",
        batch.errors().collect::<Vec<_>>()
    );
    batch.into_items().into_iter().map(Result::unwrap).collect()
}

fn one(body: &'static str) -> Event<'static> {
    let mut all = events(body);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

#[test]
fn text_message_with_meta_escapes() {
    let e = one(fixture!("message_text"));
    assert_eq!(e.page_id.as_str(), "1234567890");
    assert_eq!(e.sender.as_ref().unwrap().as_str(), "24012345678901234");
    assert_eq!(e.recipient.as_ref().unwrap().as_str(), "1234567890");
    assert_eq!(e.timestamp, 1_458_692_752_478);
    assert!(!e.standby);
    assert_eq!((e.entry, e.index), (0, 0));
    assert_eq!(e.kind_name(), "message");
    assert_eq!(e.customer().unwrap().as_str(), "24012345678901234");
    let EventKind::Message(m) = &e.kind else {
        panic!("{e:?}")
    };
    assert_eq!(m.mid.as_str(), "m_text1");
    assert_eq!(e.mid().unwrap().as_str(), "m_text1");
    let text = m.text.unwrap();
    assert!(text.is_escaped());
    assert_eq!(text.decode(), "Café at 10? 😀 see https://example.com/a");
    assert!(m.attachments.is_empty());
    assert!(m.quick_reply.is_none() && m.reply_to.is_none());
}

#[test]
fn quick_reply_and_reply_to() {
    let e = one(fixture!("message_quick_reply"));
    let EventKind::Message(m) = &e.kind else {
        panic!()
    };
    assert_eq!(m.quick_reply.unwrap().decode(), "COLOR_RED");
    assert_eq!(m.text.unwrap().decode(), "Red");

    let e = one(fixture!("message_reply_to"));
    let EventKind::Message(m) = &e.kind else {
        panic!()
    };
    assert_eq!(m.reply_to.as_ref().unwrap().as_str(), "m_orig");
}

/// An unsend: the removed message's `mid` with `is_deleted: true` and nothing else (the shape
/// Meta documents for Instagram messaging on the Messenger Platform).
#[test]
fn unsend_is_a_deleted_message() {
    let e = one(fixture!("message_unsend"));
    let EventKind::Message(m) = &e.kind else {
        panic!("{e:?}")
    };
    assert!(m.is_deleted);
    assert_eq!(m.mid.as_str(), "m_gone");
    assert!(m.text.is_none() && m.attachments.is_empty());
    let e = one(fixture!("message_reply_to"));
    let EventKind::Message(m) = &e.kind else {
        panic!()
    };
    assert!(!m.is_deleted);
}

/// The unsend and the message it removes share a `mid` (and perhaps a timestamp): their dedup
/// keys must still differ, or the unsend is dropped as a redelivery of the message.
#[test]
fn unsend_dedup_key_differs_from_the_messages() {
    let unsend = one(fixture!("message_unsend"));
    let original: &'static str = Box::leak(
        fixture!("message_unsend")
            .replace(r#","is_deleted":true"#, r#","text":"hello""#)
            .into_boxed_str(),
    );
    let original = one(original);
    let EventKind::Message(m) = &original.kind else {
        panic!("{original:?}")
    };
    assert!(!m.is_deleted);
    assert_eq!(original.mid(), unsend.mid());
    assert_eq!(original.timestamp, unsend.timestamp);
    assert_ne!(original.dedup_key(), unsend.dedup_key());
    assert!(unsend.dedup_key().ends_with(":deleted"));
}

#[test]
fn several_attachments_in_one_message() {
    let e = one(fixture!("message_attachments"));
    let EventKind::Message(m) = &e.kind else {
        panic!()
    };
    let kinds: Vec<_> = m.attachments.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [
            AttachmentKind::Image,
            AttachmentKind::Video,
            AttachmentKind::Audio,
            AttachmentKind::File
        ]
    );
    assert_eq!(
        m.attachments[3].url.unwrap().decode(),
        "https://cdn.fbsbx.com/v/invoice.pdf"
    );
    assert_eq!(
        m.attachments[0].payload.unwrap().to_value().unwrap()["url"],
        "https://scontent.xx.fbcdn.net/v/1.jpg?oe=1"
    );
    assert!(m.attachments.iter().all(|a| !a.is_sticker()));
}

#[test]
fn stickers_as_image_and_as_sticker() {
    let e = one(fixture!("message_sticker"));
    let EventKind::Message(m) = &e.kind else {
        panic!()
    };
    assert_eq!(m.attachments[0].kind, AttachmentKind::Image);
    assert_eq!(m.attachments[1].kind, AttachmentKind::Sticker);
    for a in &m.attachments {
        assert!(a.is_sticker());
        assert_eq!(a.sticker_id, Some(369_239_263_222_822));
    }
}

#[test]
fn fallback_old_and_new_shapes() {
    let e = one(fixture!("message_fallback"));
    let EventKind::Message(m) = &e.kind else {
        panic!()
    };
    let (old, new) = (&m.attachments[0], &m.attachments[1]);
    assert_eq!(old.kind, AttachmentKind::Fallback);
    assert_eq!(old.title.unwrap().decode(), "Example Domain");
    assert_eq!(
        old.url.unwrap().decode(),
        "https://l.facebook.com/l.php?u=https%3A%2F%2Fexample.com"
    );
    assert!(old.payload.is_none());
    assert_eq!(new.title.unwrap().decode(), "New shape");
    assert_eq!(new.url.unwrap().decode(), "https://example.com/new");
}

#[test]
fn location_with_coordinates() {
    let e = one(fixture!("message_location"));
    let EventKind::Message(m) = &e.kind else {
        panic!()
    };
    let a = &m.attachments[0];
    assert_eq!(a.kind, AttachmentKind::Location);
    let c = a.coordinates.unwrap();
    assert!((c.lat - 48.8584).abs() < 1e-9 && (c.long - 2.2945).abs() < 1e-9);
    assert_eq!(a.title.unwrap().decode(), "Pin");
}

#[test]
fn shares_are_kept_generically() {
    let e = one(fixture!("message_shares"));
    let EventKind::Message(m) = &e.kind else {
        panic!()
    };
    let kinds: Vec<_> = m
        .attachments
        .iter()
        .map(|a| a.kind.as_str().into_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "reel",
            "ig_reel",
            "post",
            "ig_post",
            "appointment_booking",
            "brand_new_type"
        ]
    );
    assert!(matches!(m.attachments[5].kind, AttachmentKind::Other(_)));
    assert_eq!(m.attachments[1].title.unwrap().decode(), "A reel");
    let booking = m.attachments[4].payload.unwrap().to_value().unwrap();
    assert_eq!(booking["status"], "confirmed");
}

#[test]
fn echo_with_app_id_and_metadata() {
    let e = one(fixture!("echo"));
    assert_eq!(e.kind_name(), "echo");
    let EventKind::Echo(echo) = &e.kind else {
        panic!()
    };
    assert_eq!(echo.app_id, Some(AppId(1_517_776_481_860_111)));
    assert_eq!(echo.metadata.unwrap().decode(), "agent:7");
    assert_eq!(
        echo.message.text.unwrap().decode(),
        "Hello, how can I help?"
    );
    // On echoes the page sends: the customer is the recipient.
    assert_eq!(e.sender.as_ref().unwrap().as_str(), "1234567890");
    assert_eq!(e.customer().unwrap().as_str(), "24012345678901234");
    assert_eq!(e.mid().unwrap().as_str(), "m_echo1");

    let e = one(fixture!("echo_template"));
    let EventKind::Echo(echo) = &e.kind else {
        panic!()
    };
    let a = &echo.message.attachments[0];
    assert_eq!(a.kind, AttachmentKind::Template);
    assert_eq!(
        a.payload.unwrap().to_value().unwrap()["template_type"],
        "button"
    );
}

/// Echoes of other apps' templates (generic, media, receipt, one with nothing readable) and a
/// file the Page sent: every item is an echo, with its payload kept whole.
#[test]
fn echoes_of_templates_and_page_files() {
    let all = events(fixture!("echo_templates"));
    let kinds: Vec<_> = all
        .iter()
        .map(|e| {
            let EventKind::Echo(echo) = &e.kind else {
                panic!("{e:?}")
            };
            let a = &echo.message.attachments[0];
            let template = a
                .payload
                .unwrap()
                .to_value()
                .unwrap()
                .get("template_type")
                .and_then(|t| t.as_str().map(str::to_owned));
            (echo.message.mid.as_str().to_owned(), a.kind, template)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "m_generic".into(),
                AttachmentKind::Template,
                Some("generic".into())
            ),
            (
                "m_media".into(),
                AttachmentKind::Template,
                Some("media".into())
            ),
            (
                "m_receipt".into(),
                AttachmentKind::Template,
                Some("receipt".into())
            ),
            ("m_page_file".into(), AttachmentKind::File, None),
            (
                "m_empty".into(),
                AttachmentKind::Template,
                Some("customer_feedback".into())
            ),
        ]
    );
}

#[test]
fn message_edit() {
    let e = one(fixture!("message_edit"));
    let EventKind::MessageEdit(edit) = &e.kind else {
        panic!()
    };
    assert_eq!(edit.mid.as_str(), "m_text1");
    assert_eq!(edit.text.unwrap().decode(), "Café at 11?");
    assert_eq!(edit.num_edit, 2);
}

#[test]
fn postback_with_referral() {
    let e = one(fixture!("postback"));
    let EventKind::Postback(p) = &e.kind else {
        panic!()
    };
    assert_eq!(p.mid.as_ref().unwrap().as_str(), "m_pb1");
    assert_eq!(p.title.unwrap().decode(), "Get Started");
    assert_eq!(p.payload.unwrap().decode(), "GET_STARTED");
    let r = p.referral.as_ref().unwrap();
    assert_eq!(r.ref_.unwrap().decode(), "summer");
    assert_eq!(r.source.unwrap().decode(), "SHORTLINK");
    assert_eq!(r.type_.unwrap().decode(), "OPEN_THREAD");
}

#[test]
fn standby_events_are_marked_and_standby_postbacks_have_no_payload() {
    let all = events(fixture!("standby"));
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|e| e.standby));
    let EventKind::Postback(p) = &all[0].kind else {
        panic!()
    };
    assert!(p.payload.is_none());
    assert_eq!(p.title.unwrap().decode(), "Talk to an agent");
    assert_eq!(all[1].kind_name(), "message");
    assert_eq!(all[1].index, 1);
}

#[test]
fn delivery_and_read() {
    let e = one(fixture!("delivery"));
    let EventKind::Delivery(d) = &e.kind else {
        panic!()
    };
    let mids: Vec<_> = d
        .mids
        .iter()
        .map(messenger_channel::ids::MessageId::as_str)
        .collect();
    assert_eq!(mids, ["m_a", "m_b"]);
    assert_eq!(d.watermark, 1_458_668_856_253);
    assert!(e.mid().is_none());

    let e = one(fixture!("read"));
    let EventKind::Read(r) = &e.kind else {
        panic!()
    };
    assert_eq!(r.watermark, 1_458_668_856_253);
}

#[test]
fn reactions_react_and_unreact() {
    let all = events(fixture!("reaction"));
    let actions: Vec<_> = all
        .iter()
        .map(|e| match &e.kind {
            EventKind::Reaction(r) => {
                assert_eq!(
                    r.mid
                        .as_ref()
                        .map(messenger_channel::ids::MessageId::as_str),
                    Some("m_text1")
                );
                assert_eq!(r.emoji.unwrap().decode(), "❤️");
                assert_eq!(r.reaction.unwrap().decode(), "love");
                r.action
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(actions, [ReactionAction::React, ReactionAction::Unreact]);
    // Same mid, different actions: different identities.
    assert_ne!(all[0].dedup_key(), all[1].dedup_key());
}

#[test]
fn referral() {
    let e = one(fixture!("referral"));
    let EventKind::Referral(r) = &e.kind else {
        panic!()
    };
    assert_eq!(r.ref_.unwrap().decode(), "campaign-7");
    assert_eq!(r.ad_id.unwrap().decode(), "6045246247433");
    assert_eq!(r.source.unwrap().decode(), "ADS");
    assert_eq!(
        r.raw.to_value().unwrap()["ads_context_data"]["ad_title"],
        "Sale"
    );
}

#[test]
fn optin_notification_messages_and_checkbox() {
    let e = one(fixture!("optin"));
    let EventKind::Optin(o) = &e.kind else {
        panic!()
    };
    assert_eq!(o.type_.unwrap().decode(), "notification_messages");
    assert_eq!(o.notification_messages_token.unwrap().decode(), "TOKEN-123");
    assert_eq!(
        o.notification_messages_timezone.unwrap().decode(),
        "Europe/Paris"
    );
    assert_eq!(
        o.notification_messages_status.unwrap().decode(),
        "RESUME NOTIFICATIONS"
    );
    assert_eq!(o.token_expiry_timestamp, Some(1_767_225_600_000));
    assert_eq!(o.payload.unwrap().decode(), "DEALS");

    let e = one(fixture!("optin_checkbox"));
    assert!(e.sender.is_none());
    let EventKind::Optin(o) = &e.kind else {
        panic!()
    };
    assert_eq!(o.user_ref.unwrap().decode(), "UNIQUE_REF_123");
    assert_eq!(o.ref_.unwrap().decode(), "checkout");
}

#[test]
fn thread_control_pass_take_request() {
    let all = events(fixture!("handover"));
    let names: Vec<_> = all.iter().map(Event::kind_name).collect();
    assert_eq!(
        names,
        [
            "pass_thread_control",
            "take_thread_control",
            "request_thread_control"
        ]
    );
    let EventKind::PassThreadControl(p) = &all[0].kind else {
        panic!()
    };
    assert_eq!(p.new_owner_app_id, Some(AppId(123_456_789)));
    assert_eq!(p.previous_owner_app_id, None);
    assert_eq!(p.metadata.unwrap().decode(), "from bot");
    let EventKind::TakeThreadControl(t) = &all[1].kind else {
        panic!()
    };
    assert_eq!(t.previous_owner_app_id, Some(AppId(123_456_789)));
    assert_eq!(t.new_owner_app_id, Some(AppId(263_902_037_430_900)));
    let EventKind::RequestThreadControl(r) = &all[2].kind else {
        panic!()
    };
    assert_eq!(r.requested_owner_app_id, Some(AppId(123_456_789)));
}

#[test]
fn app_roles() {
    let e = one(fixture!("app_roles"));
    assert!(e.sender.is_none());
    let EventKind::AppRoles(roles) = &e.kind else {
        panic!()
    };
    let flat: Vec<_> = roles
        .roles
        .iter()
        .map(|(app, r)| {
            (
                app.0,
                r.iter()
                    .map(|s| s.decode().into_owned())
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(
        flat,
        [
            (123_456_789, vec!["primary_receiver".to_owned()]),
            (987_654_321, vec!["secondary_receiver".to_owned()])
        ]
    );
}

#[test]
fn policy_enforcement_has_no_sender() {
    let e = one(fixture!("policy_enforcement"));
    assert!(e.sender.is_none());
    assert_eq!(e.recipient.as_ref().unwrap().as_str(), "1234567890");
    let EventKind::PolicyEnforcement(p) = &e.kind else {
        panic!()
    };
    assert_eq!(p.action.decode(), "block");
    assert!(
        p.reason
            .unwrap()
            .decode()
            .contains("https://developers.facebook.com/policy/")
    );
}

#[test]
fn account_linking() {
    let all = events(fixture!("account_linking"));
    let EventKind::AccountLinking(a) = &all[0].kind else {
        panic!()
    };
    assert_eq!(a.status.decode(), "linked");
    assert_eq!(a.authorization_code.unwrap().decode(), "PASS_THROUGH_CODE");
    let EventKind::AccountLinking(a) = &all[1].kind else {
        panic!()
    };
    assert_eq!(a.status.decode(), "unlinked");
    assert!(a.authorization_code.is_none());
}

#[test]
fn unknown_kinds_are_kept_with_raw_json() {
    let all = events(fixture!("unknown"));
    let keys: Vec<_> = all
        .iter()
        .map(|e| match &e.kind {
            EventKind::Unknown(u) => {
                let v = u.raw.to_value().unwrap();
                assert_eq!(v["timestamp"], 1_458_692_752_478_u64);
                u.key.clone().unwrap()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(keys, ["messaging_feedback", "game_play"]);
    assert!(all.iter().all(|e| e.kind_name() == "unknown"));
    assert_ne!(all[0].dedup_key(), all[1].dedup_key());
}

#[test]
fn malformed_items_fail_alone_with_position_and_reason() {
    let batch = ingest(fixture!("malformed_middle"));
    let summary: Vec<String> = batch
        .items()
        .iter()
        .map(|item| match item {
            Ok(e) => format!("ok {}", e.mid().map_or("-", |m| m.as_str())),
            Err(err) => format!("err {err}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "ok m_ok1",
            "err entry[0].messaging[1]: field `message.mid` is missing",
            "ok m_ok3",
            "err entry[0].messaging[3]: field `timestamp` is invalid: not a time in milliseconds",
            "err entry[0].messaging[4]: field `` is invalid: the item holds more than one event kind",
            "err entry[0].messaging[5]: field `` is a string, expected an object",
            "err entry[0].messaging[6]: field `message.attachments[].type` is missing",
            "ok -",
            "err entry[1]: field `entry.id` is missing",
            "err entry[2]: field `messaging` is an object, expected an array",
            "ok m_ok_sb",
        ]
    );
    let errors: Vec<_> = batch.errors().collect();
    assert_eq!(errors[0].index, Some(1));
    assert_eq!(errors[0].problem, ItemProblem::Missing);
    assert_eq!(errors[5].index, None);
    // The standby item after a broken `messaging` array still arrives, marked as standby.
    let last = batch.events().last().unwrap();
    assert!(last.standby);
    assert_eq!(last.entry, 2);
}

#[test]
fn whitespace_and_key_order_do_not_matter() {
    let compact: serde_json::Value = serde_json::from_str(fixture!("postback")).unwrap();
    let pretty = serde_json::to_string_pretty(&compact).unwrap();
    // Entry fields after the events: the page id is filled in afterwards.
    let reordered = pretty.replacen(
        "\"id\": \"1234567890\",\n      \"messaging\"",
        "\"messaging\"",
        1,
    );
    let reordered = reordered.replacen(
        "\"time\": 1458692752478",
        "\"time\": 1458692752478, \"id\": \"1234567890\"",
        1,
    );
    for body in [pretty.as_str(), reordered.as_str()] {
        let batch = parse_unverified(body.as_bytes()).unwrap();
        let e = batch.events().next().unwrap();
        assert_eq!(e.page_id.as_str(), "1234567890", "{body}");
        assert_eq!(e.kind_name(), "postback");
    }
}

#[test]
fn every_entry_and_every_item_is_read() {
    let item = |mid: &str| {
        format!(
            r#"{{"sender":{{"id":"1"}},"recipient":{{"id":"P"}},"timestamp":5,"message":{{"mid":"{mid}","text":"x"}}}}"#
        )
    };
    let body = format!(
        r#"{{"object":"page","entry":[{{"id":"P","time":1,"messaging":[{},{}],"standby":[{}]}},{{"id":"Q","time":2,"messaging":[{}]}}]}}"#,
        item("a"),
        item("b"),
        item("c"),
        item("d")
    );
    let batch = parse_unverified(body.as_bytes()).unwrap();
    let seen: Vec<_> = batch
        .events()
        .map(|e| {
            (
                e.entry,
                e.index,
                e.standby,
                e.page_id.as_str().to_owned(),
                e.mid().unwrap().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (0, 0, false, "P".to_owned(), "a".to_owned()),
            (0, 1, false, "P".to_owned(), "b".to_owned()),
            (0, 0, true, "P".to_owned(), "c".to_owned()),
            (1, 0, false, "Q".to_owned(), "d".to_owned()),
        ]
    );
}

#[test]
fn body_level_errors() {
    let check = |body: &str| parse_unverified(body.as_bytes()).unwrap_err();
    assert_eq!(
        check(r#"{"object":"instagram","entry":[]}"#),
        ParseError::Instagram
    );
    assert_eq!(
        check(r#"{"object":"whatsapp_business_account","entry":[]}"#),
        ParseError::UnsupportedObject {
            object: "whatsapp_business_account".into()
        }
    );
    assert_eq!(check(r#"{"entry":[]}"#), ParseError::MissingObject);
    assert_eq!(check(r#"{"object":"page"}"#), ParseError::MissingEntry);
    assert!(matches!(
        check(r#"{"object":"page","entry":{}}"#),
        ParseError::NotAWebhook { field: "entry", .. }
    ));
    assert!(matches!(
        check("[]"),
        ParseError::NotAWebhook { field: "", .. }
    ));
    assert!(matches!(
        check(r#"{"object":"page","entry":[]"#),
        ParseError::Syntax { .. }
    ));
    assert!(matches!(
        check(r#"{"object":"page","entry":[]} x"#),
        ParseError::Syntax { .. }
    ));
    assert!(matches!(check(""), ParseError::Syntax { .. }));
    assert_eq!(
        parse_unverified(b"{\"object\":\"page\xff\"}").unwrap_err(),
        ParseError::NotUtf8 { valid_up_to: 15 }
    );
    // A syntax error inside one item makes the whole body unusable: JSON cannot be resynchronised.
    let body = fixture!("message_text").replace("\"text\":", "\"text\"");
    assert!(matches!(check(&body), ParseError::Syntax { .. }));
}

#[test]
fn size_and_depth_limits() {
    let body = fixture!("message_text").as_bytes();
    let small = Limits {
        max_body_bytes: body.len() - 1,
        ..Limits::default()
    };
    assert_eq!(
        parse_with_limits(body, &small).unwrap_err(),
        ParseError::TooLarge {
            size: body.len(),
            max: body.len() - 1
        }
    );
    let exact = Limits {
        max_body_bytes: body.len(),
        ..Limits::default()
    };
    assert!(parse_with_limits(body, &exact).is_ok());

    let deep = format!(
        r#"{{"object":"page","entry":[],"x":{}{}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    assert!(matches!(
        parse_unverified(deep.as_bytes()),
        Err(ParseError::Syntax { .. })
    ));
    let shallow = Limits {
        max_depth: 200,
        ..Limits::default()
    };
    assert!(parse_with_limits(deep.as_bytes(), &shallow).is_ok());

    // The receiver refuses an oversized body before computing any HMAC.
    let webhook = Webhook::new(&secret()).with_limits(small);
    let err = webhook
        .verify_and_parse(&http::HeaderMap::new(), body)
        .unwrap_err();
    assert_eq!(err.status(), 413);
}

#[test]
fn signature_is_over_the_bytes_as_sent() {
    // Meta's form: non-ASCII as lowercase \u escapes, emoji as surrogate pairs, `/` as `\/`.
    let meta = fixture!("message_text");
    assert!(
        meta.contains(r"Caf\u00e9")
            && meta.contains(r"\ud83d\ude00")
            && meta.contains(r"https:\/\/")
    );
    let signature = sign_sha256(&secret(), meta.as_bytes());
    let webhook = Webhook::new(&secret());
    assert!(
        webhook
            .verify_and_parse_value(&signature, meta.as_bytes())
            .is_ok()
    );

    // The same JSON re-serialised (as handlers that parse first do) is different bytes, and
    // the signature no longer matches: the check must run before any parsing.
    let value: serde_json::Value = serde_json::from_str(meta).unwrap();
    let reserialised = serde_json::to_string(&value).unwrap();
    assert!(reserialised.contains("Café") && reserialised.contains("https://"));
    assert_eq!(
        webhook
            .verify_and_parse_value(&signature, reserialised.as_bytes())
            .unwrap_err(),
        WebhookError::Signature(SignatureError::Mismatch {
            algorithm: messenger_channel::webhook::signature::Algorithm::Sha256
        })
    );
}

#[test]
fn signature_matches_an_independent_implementation() {
    // `examples/sample/webhook.sig256` was computed by Python's `hmac` module.
    let body = include_bytes!("../examples/sample/webhook.json");
    let sig = include_str!("../examples/sample/webhook.sig256").trim();
    let webhook = Webhook::new(&AppSecret::new("sample-secret").unwrap());
    let batch = webhook.verify_and_parse_value(sig, body).unwrap();
    assert_eq!(batch.len(), 8);
    assert_eq!(
        sign_sha256(&AppSecret::new("sample-secret").unwrap(), body),
        sig
    );
}

#[test]
fn refused_requests_map_to_http_statuses() {
    let body = fixture!("read").as_bytes();
    let webhook = Webhook::new(&secret());
    let missing = webhook
        .verify_and_parse(&http::HeaderMap::new(), body)
        .unwrap_err();
    assert_eq!(missing.status(), 401);
    let wrong = webhook
        .verify_and_parse_value(&sign_sha256(&AppSecret::new("other").unwrap(), body), body)
        .unwrap_err();
    assert_eq!(wrong.status(), 403);
    // SHA-1 alone is refused unless enabled.
    let sha1_only = webhook
        .verify_and_parse_value(&sign_sha1(&secret(), body), body)
        .unwrap_err();
    assert_eq!(sha1_only.status(), 403);
    let not_webhook = br#"{"hello":"world"}"#;
    let err = webhook
        .verify_and_parse_value(&sign_sha256(&secret(), not_webhook), not_webhook)
        .unwrap_err();
    assert_eq!(err, WebhookError::Parse(ParseError::MissingObject));
    assert_eq!(err.status(), 400);
}

#[test]
fn dedup_keys_are_stable_across_redelivery_and_distinct_within_a_batch() {
    let body = include_str!("../examples/sample/webhook.json");
    let first: Vec<_> = parse_unverified(body.as_bytes())
        .unwrap()
        .events()
        .map(Event::dedup_key)
        .collect();
    let again: Vec<_> = parse_unverified(body.to_owned().as_bytes())
        .unwrap()
        .events()
        .map(Event::dedup_key)
        .collect();
    assert_eq!(first, again);
    let mut unique = first.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), first.len(), "{first:?}");
}

mod signature_header_values {
    //! Header values come from outside: whatever their bytes, the answer is a typed
    //! [`SignatureError`], never a panic, and nothing is parsed.

    use messenger_channel::secret::AppSecret;
    use messenger_channel::webhook::signature::{
        Algorithm, Malformed, SHA1_HEADER, SHA256_HEADER, SignatureError, SignatureVerifier,
    };
    use messenger_channel::webhook::{Webhook, WebhookError};
    use proptest::prelude::*;

    const BODY: &[u8] = br#"{"object":"page","entry":[]}"#;

    fn secret() -> AppSecret {
        AppSecret::new(super::SECRET).unwrap()
    }

    fn malformed(header: &'static str, reason: Malformed) -> WebhookError {
        WebhookError::Signature(SignatureError::Malformed { header, reason })
    }

    /// Values whose sixth byte falls inside a multi-byte character: `&value[..5]` panicked on
    /// them before authentication.
    const NON_ASCII: &[&str] = &[
        "éééé",
        "sha1é",
        "shaé=0",
        "\u{a0}sha1é",
        "sha256=é",
        "sha2€6=00",
        "😀😀",
    ];

    #[test]
    fn non_ascii_header_value_is_malformed_not_a_panic() {
        for legacy in [false, true] {
            let mut verifier = SignatureVerifier::new(&secret());
            if legacy {
                verifier = verifier.allow_legacy_sha1();
            }
            let webhook = Webhook::with_verifier(verifier);
            for value in NON_ASCII {
                assert_eq!(
                    webhook.verify_and_parse_value(value, BODY).unwrap_err(),
                    malformed(SHA256_HEADER, Malformed::NotAscii),
                    "{value:?}"
                );
            }
            // A SHA-1 prefix followed by non-ASCII: malformed when SHA-1 is on, not enabled
            // otherwise; either way before any MAC is computed.
            let value = format!("sha1={}", "é".repeat(20));
            let expected = if legacy {
                malformed(SHA1_HEADER, Malformed::NotAscii)
            } else {
                WebhookError::Signature(SignatureError::AlgorithmNotEnabled {
                    algorithm: Algorithm::Sha1,
                })
            };
            assert_eq!(
                webhook.verify_and_parse_value(&value, BODY).unwrap_err(),
                expected
            );
        }
    }

    #[test]
    fn non_ascii_header_map_values_are_malformed() {
        let webhook = Webhook::with_verifier(SignatureVerifier::new(&secret()).allow_legacy_sha1());
        let mut sig = super::sign_sha256(&secret(), BODY).into_bytes();
        // Obs-text (bytes 0x80-0xFF) is a legal header value for `http`, not for a signature.
        sig[10] = 0xC3;
        sig[11] = 0xA9;
        for (name, value, header) in [
            ("x-hub-signature-256", sig.clone(), SHA256_HEADER),
            ("x-hub-signature", b"sha1=\xff\xfe".to_vec(), SHA1_HEADER),
            ("x-hub-signature", "sha1é".as_bytes().to_vec(), SHA1_HEADER),
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert(name, http::HeaderValue::from_bytes(&value).unwrap());
            assert_eq!(
                webhook.verify_and_parse(&headers, BODY).unwrap_err(),
                malformed(header, Malformed::NotAscii),
                "{name}: {value:?}"
            );
        }
        // Control characters given through `verify_pairs` (no `http` checks there).
        for value in [&b"sha256=\0"[..], b"sha256=a\nb", b"\x7fsha256="] {
            assert_eq!(
                webhook
                    .verifier()
                    .verify_pairs([("X-Hub-Signature-256", value)], BODY),
                Err(SignatureError::Malformed {
                    header: SHA256_HEADER,
                    reason: Malformed::NotAscii
                }),
                "{value:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

        /// Any text as the value, on both verifier configurations: an error, never a panic.
        #[test]
        fn any_header_value_is_an_error_not_a_panic(value in any::<String>(), legacy in any::<bool>()) {
            let mut verifier = SignatureVerifier::new(&secret());
            if legacy {
                verifier = verifier.allow_legacy_sha1();
            }
            let webhook = Webhook::with_verifier(verifier);
            prop_assert!(matches!(
                webhook.verify_and_parse_value(&value, BODY),
                Err(WebhookError::Signature(_))
            ));
            let with_prefix = format!("sha1={value}");
            prop_assert!(webhook.verify_and_parse_value(&with_prefix, BODY).is_err());
        }

        /// Any bytes a header map can hold, in either header: an error, never a panic.
        #[test]
        fn any_header_bytes_are_an_error_not_a_panic(
            a in prop::collection::vec(any::<u8>(), 0..96),
            b in prop::collection::vec(any::<u8>(), 0..96),
        ) {
            let webhook = Webhook::with_verifier(SignatureVerifier::new(&secret()).allow_legacy_sha1());
            let mut headers = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_bytes(&a) {
                headers.insert("x-hub-signature-256", v);
            }
            if let Ok(v) = http::HeaderValue::from_bytes(&b) {
                headers.insert("x-hub-signature", v);
            }
            prop_assert!(webhook.verify_and_parse(&headers, BODY).is_err());
            prop_assert!(webhook.verifier().verify_pairs([("x-hub-signature-256", &a[..]), ("x-hub-signature", &b[..])], BODY).is_err());
        }
    }
}

/// `Limits::max_depth` is configuration: even `u32::MAX` must not let a deeply nested body
/// recurse the reader off the end of the stack (an abort, worse than a panic).
#[test]
fn a_huge_depth_limit_cannot_overflow_the_stack() {
    let levels = 200_000;
    let deep = format!(
        r#"{{"object":"page","entry":[],"x":{}{}}}"#,
        "[".repeat(levels),
        "]".repeat(levels)
    );
    let unlimited = Limits {
        max_depth: u32::MAX,
        ..Limits::default()
    };
    // Run on a thread with half the usual 2 MiB stack (debug builds use the most per level).
    let result = std::thread::Builder::new()
        .stack_size(1024 * 1024)
        .spawn(move || parse_with_limits(deep.as_bytes(), &unlimited).map(|b| b.len()))
        .unwrap()
        .join()
        .expect("no panic");
    assert!(
        matches!(
            result,
            Err(ParseError::Syntax {
                reason: "nesting deeper than the limit",
                ..
            })
        ),
        "{result:?}"
    );
}

#[test]
fn a_timestamp_past_the_platform_clock_saturates() {
    let body = format!(
        r#"{{"object":"page","entry":[{{"id":"1","time":1,"messaging":[{{"sender":{{"id":"2"}},"recipient":{{"id":"1"}},"timestamp":{},"read":{{"watermark":1}}}}]}}]}}"#,
        u64::MAX
    );
    let batch = parse_unverified(body.as_bytes()).unwrap();
    let event = batch.events().next().expect("one event");
    assert_eq!(event.timestamp, u64::MAX);
    assert!(event.time() > std::time::UNIX_EPOCH);
}

/// Meta's reference shows delivery and read events with no `timestamp`: the entry's `time`
/// stands in, and the event says so.
#[test]
fn delivery_and_read_without_timestamp_take_the_entry_time() {
    let all = events(fixture!("delivery_read_without_timestamp"));
    assert_eq!(all.len(), 2);
    for e in &all {
        assert_eq!(e.timestamp, 1_458_668_856_463);
        assert!(e.timestamp_from_entry);
    }
    let EventKind::Delivery(d) = &all[0].kind else {
        panic!("{:?}", all[0].kind)
    };
    assert_eq!(d.watermark, 1_458_668_856_253);
    assert_eq!(d.mids[0].as_str(), "mid.1458668856218:ed81099e15d3f4f233");
    let EventKind::Read(r) = &all[1].kind else {
        panic!("{:?}", all[1].kind)
    };
    assert_eq!(r.watermark, 1_458_668_856_253);
    // An item with its own timestamp keeps it.
    let e = one(fixture!("read"));
    assert!(!e.timestamp_from_entry);
    assert_eq!(e.timestamp, 1_458_692_752_478);
}

/// With neither a timestamp nor an entry time, only that item fails, in its place.
#[test]
fn an_item_without_any_time_fails_alone_in_its_place() {
    let batch = ingest(fixture!("no_time_anywhere"));
    let items = batch.items();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0].as_ref().unwrap().mid().unwrap().as_str(), "m_a");
    let err = items[1].as_ref().unwrap_err();
    assert_eq!((err.entry, err.index, err.field), (0, Some(1), "timestamp"));
    assert_eq!(err.problem, ItemProblem::Missing);
    assert_eq!(items[2].as_ref().unwrap().mid().unwrap().as_str(), "m_b");
}

/// Meta's reference spells the key `policy-enforcement`; both spellings are one kind.
#[test]
fn policy_enforcement_with_a_hyphen() {
    let e = one(fixture!("policy_enforcement_hyphen"));
    assert_eq!(e.kind_name(), "policy_enforcement");
    let EventKind::PolicyEnforcement(p) = &e.kind else {
        panic!("{:?}", e.kind)
    };
    assert_eq!(p.action.decode(), "block");
}

/// Older payloads: ids as numbers, times as floats or numeric strings, a reaction without
/// `mid`, an app id as a string, a watermark as a string with a fraction.
#[test]
fn older_shapes_read_as_the_same_values() {
    let all = events(fixture!("older_shapes"));
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].page_id.as_str(), "1234567890");
    assert_eq!(
        all[0].sender.as_ref().unwrap().as_str(),
        "24012345678901234"
    );
    assert_eq!(all[0].timestamp, 1_458_692_752_478);
    assert_eq!(all[1].timestamp, 1_458_692_752_480);
    let EventKind::Reaction(r) = &all[1].kind else {
        panic!("{:?}", all[1].kind)
    };
    assert!(r.mid.is_none());
    assert_eq!(r.action, ReactionAction::React);
    assert_eq!(r.emoji.as_ref().unwrap().decode(), "\u{1f44d}");
    assert!(all[1].mid().is_none());
    let EventKind::PassThreadControl(t) = &all[2].kind else {
        panic!("{:?}", all[2].kind)
    };
    assert_eq!(t.new_owner_app_id, Some(AppId(123_456_789)));
    assert_eq!(t.previous_owner_app_id, Some(AppId(263_902_037_430_900)));
    let EventKind::Delivery(d) = &all[3].kind else {
        panic!("{:?}", all[3].kind)
    };
    assert_eq!(d.watermark, 1_458_668_856_253);
    assert!(all[3].timestamp_from_entry);
    assert_eq!(all[3].timestamp, 1_458_692_752_478);
    // Two reactions without `mid` from different people at one time are two events.
    let other = fixture!("older_shapes").replacen(
        "\"id\":\"24012345678901234\"},\"recipient\":{\"id\":\"1234567890\"},\"timestamp\":\"1458692752480\"",
        "\"id\":\"99\"},\"recipient\":{\"id\":\"1234567890\"},\"timestamp\":\"1458692752480\"",
        1,
    );
    let batch = parse_unverified(other.as_bytes()).unwrap();
    let theirs = batch.items()[1].as_ref().unwrap();
    assert_eq!(theirs.sender.as_ref().unwrap().as_str(), "99");
    assert_ne!(theirs.dedup_key(), all[1].dedup_key());
}

/// Times that are not times fail their item, never panic or wrap.
#[test]
fn impossible_times_fail_their_item() {
    for bad in [
        "-1",
        "1e400",
        "\"-5\"",
        "\"soon\"",
        "18446744073709551616.0",
        "true",
    ] {
        let body = format!(
            r#"{{"object":"page","entry":[{{"id":"1","time":1,"messaging":[{{"sender":{{"id":"2"}},"timestamp":{bad},"message":{{"mid":"m","text":"x"}}}}]}}]}}"#
        );
        let batch = parse_unverified(body.as_bytes()).unwrap();
        let err = batch.items()[0].as_ref().unwrap_err();
        assert_eq!(err.field, "timestamp", "{bad}");
    }
    let body = r#"{"object":"page","entry":[{"id":"1","time":1,"messaging":[{"sender":{"id":"2"},"timestamp":18446744073709551615,"message":{"mid":"m","text":"x"}}]}]}"#;
    let batch = parse_unverified(body.as_bytes()).unwrap();
    assert_eq!(batch.items()[0].as_ref().unwrap().timestamp, u64::MAX);
}

/// An optional field of an unexpected shape is dropped; the event around it is kept.
#[test]
fn optional_fields_of_odd_shapes_are_dropped_not_the_event() {
    let body = r#"{"object":"page","entry":[{"id":"1","time":"soon","messaging":[
        {"sender":{"id":"2","user_ref":7},"recipient":{"id":"1"},"timestamp":5,"message":{"mid":"m_1","text":"hi","quick_reply":{"payload":{"a":1}},"metadata":[1],"attachments":[{"type":"location","payload":{"coordinates":{"lat":"x"},"sticker_id":"big","title":3}}]}},
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":6,"message_edit":{"mid":"m_1","text":"hi!","num_edit":"two"}},
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":7,"postback":{"mid":5,"title":true,"payload":"P"}},
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":8,"reaction":{"mid":"m_1","action":"react","emoji":{"e":1}}},
        {"sender":{"id":"2"},"recipient":{"id":"1"},"timestamp":9,"pass_thread_control":{"new_owner_app_id":"not a number","metadata":1}}
    ]}]}"#;
    let batch = parse_unverified(body.as_bytes()).unwrap();
    assert_eq!(
        batch.errors().count(),
        0,
        "{:?}",
        batch.errors().collect::<Vec<_>>()
    );
    let all: Vec<_> = batch.events().collect();
    assert_eq!(all.len(), 5);
    assert!(all[0].sender_user_ref.is_none());
    let EventKind::Message(message) = &all[0].kind else {
        panic!("{:?}", all[0].kind)
    };
    assert_eq!(message.text.as_ref().unwrap().decode(), "hi");
    assert!(message.quick_reply.is_none());
    assert_eq!(message.attachments.len(), 1);
    assert!(message.attachments[0].coordinates.is_none());
    assert!(message.attachments[0].sticker_id.is_none());
    let EventKind::MessageEdit(edit) = &all[1].kind else {
        panic!("{:?}", all[1].kind)
    };
    assert_eq!(
        (edit.text.as_ref().unwrap().decode().as_ref(), edit.num_edit),
        ("hi!", 0)
    );
    let EventKind::Postback(postback) = &all[2].kind else {
        panic!("{:?}", all[2].kind)
    };
    assert_eq!(
        (postback.mid.is_none(), postback.title.is_none()),
        (true, true)
    );
    assert_eq!(postback.payload.as_ref().unwrap().decode(), "P");
    let EventKind::Reaction(reaction) = &all[3].kind else {
        panic!("{:?}", all[3].kind)
    };
    assert!(reaction.emoji.is_none());
    let EventKind::PassThreadControl(control) = &all[4].kind else {
        panic!("{:?}", all[4].kind)
    };
    assert_eq!(
        (control.new_owner_app_id, control.metadata.is_none()),
        (None, true)
    );
}

/// An entry `time` of any shape never costs the body: items with their own timestamp are
/// read, and a delivery without one fails alone. A message without a timestamp fails alone
/// even when the entry has a time (only delivery and read events may borrow it).
#[test]
fn entry_time_of_odd_shapes_and_who_may_borrow_it() {
    for time in ["true", "{}", "[1,2]", "\"soon\"", "-3", "null"] {
        let body = format!(
            r#"{{"object":"page","entry":[{{"id":"1","time":{time},"messaging":[{{"sender":{{"id":"2"}},"timestamp":5,"message":{{"mid":"m_1","text":"hi"}}}},{{"sender":{{"id":"2"}},"delivery":{{"watermark":4}}}}]}}]}}"#
        );
        let batch = parse_unverified(body.as_bytes()).unwrap_or_else(|e| panic!("{time}: {e}"));
        assert_eq!(batch.items()[0].as_ref().unwrap().timestamp, 5, "{time}");
        assert_eq!(
            batch.items()[1].as_ref().unwrap_err().field,
            "timestamp",
            "{time}"
        );
    }
    let body = r#"{"object":"page","entry":[{"id":"1","time":9,"messaging":[{"sender":{"id":"2"},"message":{"mid":"m_1","text":"hi"}},{"sender":{"id":"2"},"read":{"watermark":4}}]}]}"#;
    let batch = parse_unverified(body.as_bytes()).unwrap();
    let err = batch.items()[0].as_ref().unwrap_err();
    assert_eq!(
        (err.field, &err.problem),
        ("timestamp", &ItemProblem::Missing)
    );
    assert_eq!(batch.items()[1].as_ref().unwrap().timestamp, 9);
}

/// The message's text is the message: a text of another shape fails the item (reported),
/// never an empty message that would open a conversation with nothing in it.
#[test]
fn a_text_of_another_shape_fails_its_item() {
    let body = r#"{"object":"page","entry":[{"id":"1","time":9,"messaging":[{"sender":{"id":"2"},"timestamp":5,"message":{"mid":"m_1","text":{"a":1}}}]}]}"#;
    let batch = parse_unverified(body.as_bytes()).unwrap();
    assert_eq!(batch.items()[0].as_ref().unwrap_err().field, "message.text");
}
