//! Run with:
//! `PAGE_ACCESS_TOKEN=… cargo run --example send -- --to PSID --text "Hello" [--file PATH] [--page-id ID] [--base-url URL] [--tag HUMAN_AGENT]`
//!
//! Sends one message (and, with `--file`, uploads and sends a file after it) through the Graph
//! API. The token comes from `PAGE_ACCESS_TOKEN`, the optional app secret (for
//! `appsecret_proof`) from `APP_SECRET`; neither is ever printed. Prints one JSON line:
//! `{"ok":true,"message_id":"…"}` or
//! `{"ok":false,"error":{"kind":…,"code":…,"subcode":…,"retryable":…,"fbtrace_id":…,"message":"…"}}`.
//! Exit status: 0 sent, 1 the platform (or the network) refused, 2 bad arguments.

use std::process::ExitCode;

use messenger_channel::ids::PageId;
use messenger_channel::secret::{AppSecret, PageAccessToken};
use messenger_channel::send::{
    AttachmentSource, GraphClient, MediaKind, Message, SendApi, SendError, SendRequest, Upload,
};
use messenger_channel::window::{MessageTag, SendMarking};
use serde_json::json;

const USAGE: &str = "usage: send --to PSID [--text TEXT] [--file PATH] [--page-id ID] [--base-url URL] [--tag HUMAN_AGENT]\n\
environment: PAGE_ACCESS_TOKEN (required), APP_SECRET (optional)";

struct Args {
    to: String,
    text: Option<String>,
    file: Option<String>,
    page_id: String,
    base_url: Option<String>,
    tag: Option<MessageTag>,
}

fn parse_args() -> Result<Args, String> {
    let mut to = None;
    let mut text = None;
    let mut file = None;
    let mut page_id = "me".to_owned();
    let mut base_url = None;
    let mut tag = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--to" => to = Some(value()?),
            "--text" => text = Some(value()?),
            "--file" => file = Some(value()?),
            "--page-id" => page_id = value()?,
            "--base-url" => base_url = Some(value()?),
            "--tag" => tag = Some(value()?.parse::<MessageTag>().map_err(|e| e.to_string())?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unexpected argument `{other}`\n{USAGE}")),
        }
    }
    let to = to.ok_or_else(|| format!("--to is required\n{USAGE}"))?;
    if text.is_none() && file.is_none() {
        return Err(format!("give --text, --file or both\n{USAGE}"));
    }
    Ok(Args {
        to,
        text,
        file,
        page_id,
        base_url,
        tag,
    })
}

fn kind_of(mime: &str) -> MediaKind {
    match mime.split('/').next() {
        Some("image") => MediaKind::Image,
        Some("video") => MediaKind::Video,
        Some("audio") => MediaKind::Audio,
        _ => MediaKind::File,
    }
}

/// Builds the messages to send, in order; every check happens here, before any network call.
fn messages(args: &Args) -> Result<Vec<Message>, String> {
    let mut out = Vec::new();
    if let Some(text) = &args.text {
        out.push(Message::text(text).map_err(|e| e.to_string())?);
    }
    if let Some(path) = &args.file {
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        let mime = mime_guess::from_path(path)
            .first_or_octet_stream()
            .essence_str()
            .to_owned();
        let name = std::path::Path::new(path)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file");
        let upload = Upload::new(bytes, name, &mime).map_err(|e| e.to_string())?;
        out.push(
            Message::attachment(kind_of(&mime), AttachmentSource::Upload(upload))
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(out)
}

/// A JSON object with its keys in the given order (a `json!` object would sort them).
fn object(pairs: &[(&str, String)]) -> String {
    let fields: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}:{v}", json!(k)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

fn error_line(error: &SendError) -> String {
    let inner = object(&[
        ("kind", json!(error.kind().as_str()).to_string()),
        ("code", json!(error.code()).to_string()),
        ("subcode", json!(error.subcode()).to_string()),
        ("retryable", json!(error.is_retryable()).to_string()),
        ("fbtrace_id", json!(error.fbtrace_id()).to_string()),
        ("message", json!(error.to_string()).to_string()),
    ]);
    object(&[("ok", "false".to_owned()), ("error", inner)])
}

#[tokio::main]
async fn main() -> ExitCode {
    let (args, client, messages) = match setup() {
        Ok(ready) => ready,
        Err(message) => {
            eprintln!("send: {message}");
            return ExitCode::from(2);
        }
    };
    let page = PageId::new(args.page_id.clone());
    let marking = args
        .tag
        .map_or_else(SendMarking::response, SendMarking::tagged);
    let mut last = None;
    for message in messages {
        let request = SendRequest::new(args.to.clone(), message).marking(marking);
        match client.send(&page, &request).await {
            Ok(sent) => last = Some(sent.message_id),
            Err(error) => {
                println!("{}", error_line(&error));
                return ExitCode::from(1);
            }
        }
    }
    println!(
        "{}",
        object(&[
            ("ok", "true".to_owned()),
            ("message_id", json!(last).to_string())
        ])
    );
    ExitCode::SUCCESS
}

fn setup() -> Result<(Args, GraphClient, Vec<Message>), String> {
    let args = parse_args()?;
    let token = std::env::var("PAGE_ACCESS_TOKEN")
        .map_err(|_| format!("PAGE_ACCESS_TOKEN is not set\n{USAGE}"))?;
    let mut builder = GraphClient::builder(PageAccessToken::new(token).map_err(|e| e.to_string())?);
    if let Some(secret) = std::env::var("APP_SECRET").ok().filter(|s| !s.is_empty()) {
        builder = builder.app_secret(AppSecret::new(secret).map_err(|e| e.to_string())?);
    }
    if let Some(url) = &args.base_url {
        builder = builder.base_url(url.clone());
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    let messages = messages(&args)?;
    Ok((args, client, messages))
}
