//! Deterministic webhook bodies shaped like `shared/perf-payloads` (one `messaging` item per
//! entry, three pages, Meta's escaping), for benches and tests when that folder is absent.

use std::fmt::Write as _;

/// A small deterministic generator (64-bit LCG), so bodies are the same on every run.
pub(crate) struct Lcg(u64);

impl Lcg {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|i| {
                let d = if i == 0 {
                    1 + self.next() % 9
                } else {
                    self.next() % 10
                };
                char::from(b'0' + u8::try_from(d).unwrap_or(0))
            })
            .collect()
    }

    fn mid(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let tail: String = (0..84)
            .map(|_| char::from(ALPHABET[usize::try_from(self.next() % 64).unwrap_or(0)]))
            .collect();
        format!("m_{tail}")
    }
}

/// Escapes `s` the way Meta signs bodies: `/` as `\/`, non-ASCII as `\uXXXX` (surrogate pairs
/// for astral characters), plus the usual JSON escapes.
pub(crate) fn meta_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

const PAGES: [&str; 3] = ["104987654321098", "112233445566778", "120000000000042"];
const TEXTS: [&str; 6] = [
    "ok see you tomorrow at 10",
    "Bonjour, ma commande n'est pas arrivée",
    "你好，我想退货，请问怎么操作？",
    "Thanks! 🙏😀",
    "Where is my parcel? https://track.example.com/a/b",
    "Can I change the delivery address?",
];

/// A body with `events` events.
pub(crate) fn body(events: usize, seed: u64) -> String {
    let mut rng = Lcg::new(seed);
    let mut entries = Vec::with_capacity(events);
    let mut last_mid = rng.mid();
    for i in 0..events {
        let page = PAGES[i % 3];
        let psid = rng.digits(16);
        let ts = 1_718_000_000_000 + (i as u64) * 1000;
        let (sender, recipient) = (psid.clone(), page.to_owned());
        let event = match rng.next() % 10 {
            0..=3 => {
                let text = TEXTS[usize::try_from(rng.next() % 6).unwrap_or(0)];
                last_mid = rng.mid();
                format!(
                    r#""message":{{"mid":"{last_mid}","text":"{}"}}"#,
                    meta_escape(text)
                )
            }
            4 => {
                last_mid = rng.mid();
                let kind = ["image", "video", "audio", "file"]
                    [usize::try_from(rng.next() % 4).unwrap_or(0)];
                let url = format!(
                    "https://scontent.xx.fbcdn.net/v/t1.15752-9/{}_{}_n.jpg?_nc_cat=104&ccb=1-7&oh=00_{}&oe=669AE339",
                    rng.digits(9),
                    rng.digits(16),
                    rng.digits(20)
                );
                format!(
                    r#""message":{{"mid":"{last_mid}","attachments":[{{"type":"{kind}","payload":{{"url":"{}"}}}}]}}"#,
                    meta_escape(&url)
                )
            }
            5 => format!(
                r#""postback":{{"title":"Track my order","payload":"TRACK_ORDER","mid":"{}"}}"#,
                rng.mid()
            ),
            6 => format!(
                r#""delivery":{{"mids":["{last_mid}"],"watermark":{}}}"#,
                ts - 500
            ),
            7 => format!(r#""read":{{"watermark":{}}}"#, ts - 300),
            8 => format!(
                r#""reaction":{{"mid":"{last_mid}","action":"react","emoji":"{}","reaction":"love"}}"#,
                meta_escape("❤️")
            ),
            _ => {
                let text = TEXTS[usize::try_from(rng.next() % 6).unwrap_or(0)];
                let echo = format!(
                    r#""message":{{"mid":"{}","is_echo":true,"app_id":1517776481860111,"metadata":"agent:7","text":"{}"}}"#,
                    rng.mid(),
                    meta_escape(text)
                );
                let item = format!(
                    r#"{{"sender":{{"id":"{page}"}},"recipient":{{"id":"{psid}"}},"timestamp":{ts},{echo}}}"#
                );
                entries.push(format!(
                    r#"{{"id":"{page}","time":{},"messaging":[{item}]}}"#,
                    ts + 200
                ));
                continue;
            }
        };
        let item = format!(
            r#"{{"sender":{{"id":"{sender}"}},"recipient":{{"id":"{recipient}"}},"timestamp":{ts},{event}}}"#
        );
        entries.push(format!(
            r#"{{"id":"{page}","time":{},"messaging":[{item}]}}"#,
            ts + 200
        ));
    }
    format!(r#"{{"object":"page","entry":[{}]}}"#, entries.join(","))
}
