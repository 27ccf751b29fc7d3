//! What the crate tells a host's tracing subscriber: a span per webhook with counts, refusals
//! and skipped items, and never a secret.

use std::io::Write;
use std::sync::{Arc, Mutex};

use messenger_channel::secret::{AppSecret, VerifyToken};
use messenger_channel::webhook::Webhook;
use messenger_channel::webhook::challenge::verify_subscription;
use messenger_channel::webhook::signature::sign_sha256;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn captured(f: impl FnOnce()) -> String {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = buffer.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

const SECRET: &str = "s3cr3t-app-secret-value";
const TOKEN: &str = "v3rify-t0ken-value";

#[test]
fn webhook_span_has_counts_and_no_secret() {
    let body = include_bytes!("fixtures/webhook/malformed_middle.json");
    let secret = AppSecret::new(SECRET).unwrap();
    let signature = sign_sha256(&secret, body);
    let log = captured(|| {
        let webhook = Webhook::new(&secret);
        let batch = webhook.verify_and_parse_value(&signature, body).unwrap();
        assert_eq!(batch.errors().count(), 7);
        let bad =
            webhook.verify_and_parse_value(&sign_sha256(&AppSecret::new("x").unwrap(), body), body);
        assert!(bad.is_err());
        let _ = format!("{webhook:?} {secret:?}");
    });
    assert!(log.contains("webhook"), "{log}");
    assert!(log.contains("events=4"), "{log}");
    assert!(log.contains("malformed=7"), "{log}");
    assert!(log.contains("webhook item skipped"), "{log}");
    assert!(
        log.contains("entry[0].messaging[1]: field `message.mid` is missing"),
        "{log}"
    );
    assert!(log.contains("webhook refused"), "{log}");
    assert!(!log.contains(SECRET), "{log}");
}

#[test]
fn handshake_logs_no_token() {
    let token = VerifyToken::new(TOKEN).unwrap();
    let log = captured(|| {
        let wrong = format!("hub.mode=subscribe&hub.verify_token={TOKEN}x&hub.challenge=1");
        assert!(verify_subscription(&wrong, &token).is_err());
        let _ = format!("{token:?}");
    });
    assert!(log.contains("verify token mismatch"), "{log}");
    assert!(!log.contains(TOKEN), "{log}");
}

static_assertions::assert_impl_all!(Webhook: Send, Sync, Clone, std::fmt::Debug);
static_assertions::assert_impl_all!(messenger_channel::webhook::Event<'static>: Send, Sync, Clone);
static_assertions::assert_impl_all!(messenger_channel::webhook::Batch<'static>: Send, Sync);
static_assertions::assert_impl_all!(messenger_channel::webhook::WebhookError: std::error::Error, Send, Sync);
