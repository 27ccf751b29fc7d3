//! Run with:
//! `cargo run --example inspect -- --secret sample-secret --signature "$(cat examples/sample/webhook.sig256)" examples/sample/webhook.json`
//!
//! Reads one raw webhook body (a file, or `-` / nothing for standard input), optionally checks
//! its signature, and prints one JSON line per event, in body order:
//!
//! `{"entry":j,"index":i,"kind":K,"standby":bool,"page_id":"…","sender":"…"|null,"recipient":"…","mid":"…"|null}`
//!
//! A malformed item prints `{"entry":j,"index":i,"kind":"error","reason":"…"}`.
//! Exit status: 0 when the body was read, 1 when the signature does not verify, 2 when the body
//! is not a webhook (or the arguments are wrong).

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use messenger_channel::ids::{MessageId, UserId};
use messenger_channel::secret::AppSecret;
use messenger_channel::webhook::signature::SignatureVerifier;
use messenger_channel::webhook::{Limits, parse_with_limits};
use serde_json::json;

const USAGE: &str = "usage: inspect [--secret S] [--signature HEADER] [FILE|-]";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(message) => {
            eprintln!("inspect: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let mut secret = None;
    let mut signature = None;
    let mut path = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--secret" => secret = Some(args.next().ok_or(USAGE)?),
            "--signature" => signature = Some(args.next().ok_or(USAGE)?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            _ if path.is_none() => path = Some(arg),
            _ => return Err(USAGE.to_owned()),
        }
    }

    let limits = Limits::default();
    let mut body = Vec::new();
    let reader: Box<dyn std::io::Read> = match path.as_deref() {
        None | Some("-") => Box::new(std::io::stdin()),
        Some(p) => Box::new(std::fs::File::open(p).map_err(|e| format!("{p}: {e}"))?),
    };
    // Read one byte past the limit, so that an oversized body is reported as such.
    reader
        .take(limits.max_body_bytes as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| format!("reading the body: {e}"))?;

    if let Some(secret) = secret {
        let secret = AppSecret::new(secret).map_err(|e| e.to_string())?;
        // The tool checks whichever header value it is given, so SHA-1 is allowed here.
        let verifier = SignatureVerifier::new(&secret).allow_legacy_sha1();
        let Some(signature) = signature else {
            eprintln!("signature: no --signature given to check against the secret");
            return Ok(ExitCode::from(1));
        };
        if let Err(e) = verifier.verify_header_value(&signature, &body) {
            eprintln!("signature: {e}");
            return Ok(ExitCode::from(1));
        }
    }

    let batch = parse_with_limits(&body, &limits).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    for item in batch.items() {
        // Fields in the documented order (a `json!` object would sort them).
        let line = match item {
            Ok(event) => format!(
                r#"{{"entry":{},"index":{},"kind":"{}","standby":{},"page_id":{},"sender":{},"recipient":{},"mid":{}}}"#,
                event.entry,
                event.index,
                event.kind_name(),
                event.standby,
                json!(event.page_id.as_str()),
                json!(event.sender.as_ref().map(UserId::as_str)),
                json!(event.recipient.as_ref().map(UserId::as_str)),
                json!(event.mid().map(MessageId::as_str)),
            ),
            Err(error) => format!(
                r#"{{"entry":{},"index":{},"kind":"error","reason":{}}}"#,
                error.entry,
                json!(error.index),
                json!(error.to_string()),
            ),
        };
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    Ok(ExitCode::SUCCESS)
}
