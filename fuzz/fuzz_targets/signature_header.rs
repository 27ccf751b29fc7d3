//! Fuzz the signature check: arbitrary bytes as the `X-Hub-Signature-256` and
//! `X-Hub-Signature` header values must never panic, whichever entry point takes them
//! (`http::HeaderMap`, `(name, value)` pairs, or a `&str` value), and a value is accepted only
//! when it is the body's signature.
//!
//! Build and run by hand (not in CI): `cargo +nightly fuzz run signature_header` from the crate
//! root, or on stable as `fuzz/README.md` describes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use messenger_channel::secret::AppSecret;
use messenger_channel::webhook::Webhook;
use messenger_channel::webhook::signature::{Algorithm, SignatureVerifier, sign_sha1, sign_sha256};

const BODY: &[u8] = br#"{"object":"page","entry":[]}"#;

fuzz_target!(|data: &[u8]| {
    // First byte: flags. Then the SHA-256 value, the SHA-1 value and the body, split at 0x00
    // (a byte no header value can hold, so the split loses nothing a header could carry).
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == 0);
    let sha256 = parts.next().unwrap_or_default();
    let sha1 = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or(BODY);

    let secret = AppSecret::new("fuzz-secret").expect("a valid secret");
    let mut verifier = SignatureVerifier::new(&secret);
    if flags & 1 != 0 {
        verifier = verifier.allow_legacy_sha1();
    }
    let webhook = Webhook::with_verifier(verifier);
    let expected256 = sign_sha256(&secret, body);
    let expected1 = sign_sha1(&secret, body);
    // Accepted only for the real signature (hex case and surrounding blanks aside).
    let genuine =
        |value: &[u8], expected: &str| value.trim_ascii().eq_ignore_ascii_case(expected.as_bytes());
    let check = |result: Result<Algorithm, _>, v256: Option<&[u8]>, v1: Option<&[u8]>| match result
    {
        Ok(Algorithm::Sha256) => assert!(v256.is_some_and(|v| genuine(v, &expected256))),
        Ok(Algorithm::Sha1) => {
            assert!(v256.is_none() && v1.is_some_and(|v| genuine(v, &expected1)));
        }
        Ok(_) | Err(_) => {}
    };

    // Through a header map: only the values `http` accepts, optionally repeated.
    let mut headers = http::HeaderMap::new();
    let v256 = http::HeaderValue::from_bytes(sha256).ok();
    let v1 = http::HeaderValue::from_bytes(sha1).ok();
    if let Some(v) = v256.filter(|_| flags & 2 != 0) {
        if flags & 8 != 0 {
            headers.append("X-Hub-Signature-256", v.clone());
        }
        headers.append("x-hub-signature-256", v);
    }
    if let Some(v) = v1.filter(|_| flags & 4 != 0) {
        headers.insert("x-hub-signature", v);
    }
    let in_map = |name: &str| headers.get(name).map(http::HeaderValue::as_bytes);
    let repeated = headers.get_all("x-hub-signature-256").iter().count() > 1;
    if webhook.verify_and_parse(&headers, body).is_ok() {
        let sha256_ok =
            !repeated && in_map("x-hub-signature-256").is_some_and(|v| genuine(v, &expected256));
        let sha1_ok = in_map("x-hub-signature-256").is_none()
            && in_map("x-hub-signature").is_some_and(|v| genuine(v, &expected1));
        assert!(sha256_ok || sha1_ok);
    }
    check(
        webhook.verifier().verify(&headers, body),
        in_map("x-hub-signature-256"),
        in_map("x-hub-signature"),
    );

    // As raw pairs: any bytes at all, names in any case.
    let pairs = [("X-HUB-SIGNATURE-256", sha256), ("x-hub-signature", sha1)];
    let pairs = &pairs[usize::from(flags & 16 != 0)..];
    let has256 = flags & 16 == 0;
    check(
        webhook.verifier().verify_pairs(pairs.iter().copied(), body),
        has256.then_some(sha256),
        Some(sha1),
    );

    // As one `&str` value (multi-byte characters included).
    let text = String::from_utf8_lossy(sha256);
    let _ = webhook.verify_and_parse_value(&text, body);
    let value = webhook.verifier().verify_header_value(&text, body);
    match value {
        Ok(Algorithm::Sha256) => assert!(genuine(text.as_bytes(), &expected256)),
        Ok(Algorithm::Sha1) => assert!(genuine(text.as_bytes(), &expected1)),
        Ok(_) | Err(_) => {}
    }
});
