//! Run with:
//! `cargo run --example policy_check -- --policy examples/policy.sample.toml --direction outbound --name quote.docx --size 120000`
//!
//! Lets an administrator try an attachment policy before deploying it. Prints one JSON line:
//! `{"allowed":true,"safe_name":"…"}` or
//! `{"allowed":false,"code":"…","message":"…","safe_name":"…"}`.
//! Exit status 0 in both cases; 2 with the configuration error when the policy is invalid.
//! Without `--policy`, Omnichannel's defaults are used.

use std::process::ExitCode;

use messenger_channel::attachment::{AttachmentInfo, AttachmentPolicy, Direction, PolicyConfig};
use serde_json::json;

const USAGE: &str = "usage: policy_check [--policy FILE.toml] --direction inbound|outbound \
[--name NAME] [--mime TYPE] [--size BYTES] [--content FILE]";

/// How much of `--content` is read: enough for every magic number.
const HEAD_BYTES: u64 = 8192;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("policy_check: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut policy_path = None;
    let mut direction = None;
    let mut name = None;
    let mut mime = None;
    let mut size = None;
    let mut content = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--policy" => policy_path = Some(value()?),
            "--direction" => direction = Some(value()?.parse::<Direction>()?),
            "--name" => name = Some(value()?),
            "--mime" => mime = Some(value()?),
            "--size" => {
                let v = value()?;
                size = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("--size `{v}` is not a number of bytes"))?,
                );
            }
            "--content" => content = Some(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unexpected argument `{other}`\n{USAGE}")),
        }
    }
    let direction = direction.ok_or_else(|| format!("--direction is required\n{USAGE}"))?;

    let policy = match policy_path {
        None => AttachmentPolicy::default(),
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
            let config: PolicyConfig = toml::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
            AttachmentPolicy::from_config(config).map_err(|e| format!("{path}: {e}"))?
        }
    };

    let head = match &content {
        None => None,
        Some(path) => {
            use std::io::Read as _;
            let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
            let mut head = Vec::new();
            file.take(HEAD_BYTES)
                .read_to_end(&mut head)
                .map_err(|e| format!("{path}: {e}"))?;
            // Without --size, the content file's size is the attachment's.
            if size.is_none() {
                size = std::fs::metadata(path).ok().map(|m| m.len());
            }
            Some(head)
        }
    };

    let mut info = AttachmentInfo::new();
    info.name = name.as_deref();
    info.mime = mime.as_deref();
    info.size = size;
    info.head = head.as_deref();
    let verdict = policy.check(direction, &info);
    let line = match verdict.first() {
        None => json!({ "allowed": true, "safe_name": verdict.safe_name() }),
        Some(v) => json!({
            "allowed": false,
            "code": v.code(),
            "message": v.to_string(),
            "safe_name": verdict.safe_name(),
        }),
    };
    println!("{line}");
    Ok(())
}
