//! Fuzz the webhook parser: arbitrary bytes must never panic, and every event read must be
//! fully readable (ids, decoded strings, raw JSON that `serde_json` accepts).
//!
//! Build and run by hand (not in CI): `cargo +nightly fuzz run parse` from the crate root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use messenger_channel::webhook::{EventKind, parse_unverified};

fuzz_target!(|data: &[u8]| {
    let Ok(batch) = parse_unverified(data) else {
        return;
    };
    // A body the parser accepts is JSON that serde_json accepts too.
    assert!(serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok());
    for event in batch.events() {
        let _ = (event.dedup_key(), event.kind_name(), event.customer());
        match &event.kind {
            EventKind::Message(m) => {
                let _ = m.text.map(|t| t.decode());
                for a in &m.attachments {
                    let _ = (a.url.map(|u| u.decode()), a.kind.as_str());
                    // May fail only on numbers beyond serde_json's range.
                    let _ = a.payload.map(|p| p.to_value());
                }
            }
            EventKind::Unknown(u) => {
                let _ = u.raw.to_value();
            }
            _ => {}
        }
    }
});
