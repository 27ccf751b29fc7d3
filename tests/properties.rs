//! Property tests: the parser never panics, agrees with `serde_json` on what is JSON and on
//! what strings decode to, and loses no well-formed event next to a broken one.

mod support;

use messenger_channel::webhook::{Event, EventKind, ParseError, parse_unverified};
use proptest::prelude::*;
use support::generate;

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
        any::<String>().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
            prop::collection::hash_map(
                prop_oneof![
                    Just("object".to_owned()),
                    Just("entry".to_owned()),
                    Just("messaging".to_owned()),
                    Just("standby".to_owned()),
                    Just("message".to_owned()),
                    Just("mid".to_owned()),
                    Just("id".to_owned()),
                    Just("timestamp".to_owned()),
                    Just("attachments".to_owned()),
                    any::<String>(),
                ],
                inner,
                0..8
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_unverified(&bytes);
    }

    #[test]
    fn arbitrary_json_never_panics(value in arb_json()) {
        let text = value.to_string();
        let _ = parse_unverified(text.as_bytes());
        let wrapped = format!(r#"{{"object":"page","entry":[{{"id":"1","messaging":[{text}],"standby":{text}}},{text}]}}"#);
        if let Ok(batch) = parse_unverified(wrapped.as_bytes()) {
            for e in batch.events() {
                let _ = (e.dedup_key(), e.kind_name(), e.mid());
            }
        }
    }

    /// The reader accepts exactly what `serde_json` accepts (here: mutations of valid bodies).
    #[test]
    fn syntax_agrees_with_serde_json(value in arb_json(), cut in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let text = value.to_string();
        let mut bytes = text.into_bytes();
        if !bytes.is_empty() {
            let at = cut.index(bytes.len());
            bytes[at] = byte;
        }
        let ours = parse_unverified(&bytes);
        if std::str::from_utf8(&bytes).is_err() {
            // Stricter than serde_json, which skips ignored strings without checking UTF-8.
            prop_assert!(matches!(ours, Err(ParseError::NotUtf8 { .. })), "{:?}", ours);
            return Ok(());
        }
        let ours_is_syntax_ok = !matches!(ours, Err(ParseError::Syntax { .. }));
        let serde_ok = serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_ok();
        // serde_json limits depth to 128 and we to 64; the generated values are shallower.
        prop_assert_eq!(ours_is_syntax_ok, serde_ok, "{:?}", String::from_utf8_lossy(&bytes));
    }

    /// Any string, escaped as Meta does or as serde_json does, decodes to itself.
    #[test]
    fn strings_decode_like_serde_json(text in any::<String>()) {
        for escaped in [generate::meta_escape(&text), {
            let quoted = serde_json::to_string(&text).unwrap();
            quoted[1..quoted.len() - 1].to_owned()
        }] {
            let body = format!(
                r#"{{"object":"page","entry":[{{"id":"1","messaging":[{{"sender":{{"id":"2"}},"recipient":{{"id":"1"}},"timestamp":3,"message":{{"mid":"m","text":"{escaped}"}}}}]}}]}}"#
            );
            let batch = parse_unverified(body.as_bytes()).unwrap();
            let event = batch.events().next().unwrap();
            let EventKind::Message(m) = &event.kind else { panic!() };
            prop_assert_eq!(m.text.unwrap().decode(), text.as_str());
        }
    }

    /// A broken item among good ones costs exactly that item.
    #[test]
    fn a_broken_item_loses_only_itself(n in 1usize..40, broken in any::<prop::sample::Index>(), seed in any::<u64>()) {
        let body = generate::body(n, seed);
        let good = parse_unverified(body.as_bytes()).unwrap();
        prop_assert_eq!(good.len(), n);
        prop_assert_eq!(good.errors().count(), 0);
        // Break one item's timestamp (still valid JSON).
        let k = broken.index(n);
        let mut seen = 0;
        let mut out = String::new();
        for (i, part) in body.split("\"timestamp\":").enumerate() {
            if i > 0 {
                out.push_str("\"timestamp\":");
                if seen == k {
                    out.push_str("\"soon\",\"was\":");
                }
                seen += 1;
            }
            out.push_str(part);
        }
        let batch = parse_unverified(out.as_bytes()).unwrap();
        prop_assert_eq!(batch.len(), n);
        let errors: Vec<_> = batch.errors().collect();
        prop_assert_eq!(errors.len(), 1);
        prop_assert_eq!(errors[0].entry, k);
        let mids_before: Vec<_> = good.events().filter(|e| e.entry != k).map(Event::dedup_key).collect();
        let mids_after: Vec<_> = batch.events().map(Event::dedup_key).collect();
        prop_assert_eq!(mids_before, mids_after);
    }

    /// For any webhook body whose entries are well formed, every item of every `messaging`
    /// and `standby` array is reported exactly once, as an event or as an item error, in body
    /// order, whatever the items hold.
    #[test]
    fn every_item_is_reported_once_in_body_order(entries in prop::collection::vec(arb_entry(), 1..4)) {
        let body = serde_json::json!({"object": "page", "entry": entries});
        let text = serde_json::to_string(&body).unwrap();
        // Where each item sits, in the order it appears in the text (object keys serialise in
        // map order, the order the parser meets them).
        let mut expected = Vec::new();
        for (j, entry) in body["entry"].as_array().unwrap().iter().enumerate() {
            for (key, value) in entry.as_object().unwrap() {
                let standby = match key.as_str() {
                    "messaging" => false,
                    "standby" => true,
                    _ => continue,
                };
                for i in 0..value.as_array().unwrap().len() {
                    expected.push((j, i, standby));
                }
            }
        }
        let batch = parse_unverified(text.as_bytes()).unwrap();
        let found: Vec<(usize, usize, bool)> = batch
            .items()
            .iter()
            .map(|item| match item {
                Ok(e) => (e.entry, e.index, e.standby),
                Err(e) => (e.entry, e.index.expect("an item error, not an entry error"), e.standby),
            })
            .collect();
        prop_assert_eq!(found, expected);
    }
}

/// An item: one of Meta's shapes with fields dropped or replaced by any JSON, or any JSON.
fn arb_item() -> impl Strategy<Value = serde_json::Value> {
    let shapes = [
        serde_json::json!({"sender": {"id": "2"}, "recipient": {"id": "1"}, "timestamp": 1_458_692_752_478_u64, "message": {"mid": "m_1", "text": "hi"}}),
        serde_json::json!({"sender": {"id": "2"}, "recipient": {"id": "1"}, "delivery": {"mids": ["m_1"], "watermark": 1_458_668_856_253_u64}}),
        serde_json::json!({"sender": {"id": "2"}, "recipient": {"id": "1"}, "timestamp": 1, "read": {"watermark": 5}}),
        serde_json::json!({"sender": {"id": "2"}, "recipient": {"id": "1"}, "timestamp": "7", "reaction": {"action": "react", "emoji": "x"}}),
        serde_json::json!({"recipient": {"id": "1"}, "timestamp": 1.5, "policy-enforcement": {"action": "block"}}),
        serde_json::json!({"sender": {"id": 2}, "recipient": {"id": 1}, "timestamp": 3, "pass_thread_control": {"new_owner_app_id": "9"}}),
        serde_json::json!({"sender": {"id": "2"}, "recipient": {"id": "1"}, "timestamp": 3, "postback": {"title": "t", "payload": "p"}}),
    ];
    let edited = (
        prop::sample::select(shapes.to_vec()),
        prop::collection::vec(
            (any::<prop::sample::Index>(), prop::option::of(arb_json())),
            0..3,
        ),
    )
        .prop_map(|(mut item, edits)| {
            let map = item.as_object_mut().unwrap();
            for (at, value) in edits {
                let keys: Vec<String> = map.keys().cloned().collect();
                let key = &keys[at.index(keys.len())];
                match value {
                    Some(v) => map.insert(key.clone(), v),
                    None => map.remove(key),
                };
            }
            item
        });
    prop_oneof![4 => edited, 1 => arb_json()]
}

/// A well-formed entry (an id, maybe a time) with `messaging` and/or `standby` arrays.
fn arb_entry() -> impl Strategy<Value = serde_json::Value> {
    // The entry's time: usable, absent, or of any shape at all (it must never cost the body).
    let time = prop_oneof![
        Just(Some(serde_json::json!(1_458_692_752_000_u64))),
        Just(None),
        arb_json().prop_map(Some),
    ];
    (
        time,
        prop::option::of(prop::collection::vec(arb_item(), 0..6)),
        prop::option::of(prop::collection::vec(arb_item(), 0..6)),
    )
        .prop_map(|(time, messaging, standby)| {
            let mut entry = serde_json::json!({"id": "1"});
            if let Some(time) = time {
                entry["time"] = time;
            }
            if let Some(items) = messaging {
                entry["messaging"] = serde_json::Value::Array(items);
            }
            if let Some(items) = standby {
                entry["standby"] = serde_json::Value::Array(items);
            }
            entry
        })
}
