//! The command line: the options, and what real mode needs.

use std::time::Duration;

use messenger_channel::agents::Presence;

pub(crate) struct Options {
    /// `--real`: the real Messenger Platform (credentials required).
    pub(crate) real: bool,
    pub(crate) agent_bind: String,
    pub(crate) webhook_bind: Option<String>,
    pub(crate) origins: Vec<String>,
    pub(crate) hosts: Vec<String>,
    pub(crate) data: std::path::PathBuf,
    pub(crate) accounts: Option<std::path::PathBuf>,
    pub(crate) policy: Option<String>,
    pub(crate) mark_seen: bool,
    pub(crate) typing: bool,
    /// `--offer-timeout SECONDS`: how long an agent has to accept an offer.
    pub(crate) offer_timeout: Duration,
    /// `--presence-after-missed-offer`: Omnichannel's side effect on an agent who lets an
    /// offer lapse (`None`: presence does not change).
    pub(crate) presence_after_missed_offer: Option<Presence>,
    /// `--presence-after-rejected-offer`: the same for an agent who rejects one.
    pub(crate) presence_after_rejected_offer: Option<Presence>,
}

/// The longest `--offer-timeout`: a day.
const OFFER_TIMEOUT_MAX_SECS: u64 = 24 * 3600;

const USAGE: &str = "usage: desk [--real] [--port N | --agent-bind ADDR] [--webhook-bind ADDR] [--origin URL]... [--host NAME]... [--data DIR] [--accounts FILE] [--policy FILE.toml] [--mark-seen on|off] [--typing on|off] [--offer-timeout SECONDS] [--presence-after-missed-offer busy|dnd|away|offline|none] [--presence-after-rejected-offer busy|dnd|away|offline|none]
       desk add-agent NAME [--role agent|supervisor] [--capacity N] [--display-name TEXT] [--language en|es] [--data DIR | --accounts FILE]   (password on standard input)";

/// A presence an offer's side effect sets, or `none`.
fn presence_after(arg: &str, value: &str) -> Result<Option<Presence>, String> {
    match Presence::parse(value) {
        _ if value == "none" => Ok(None),
        Some(p) if p != Presence::Available => Ok(Some(p)),
        _ => Err(format!(
            "{arg} takes busy, dnd, away, offline or none, not `{value}`"
        )),
    }
}

fn on_off(arg: &str, value: &str) -> Result<bool, String> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{arg} takes on or off")),
    }
}

pub(crate) fn options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        real: false,
        agent_bind: "127.0.0.1:8080".into(),
        webhook_bind: None,
        origins: Vec::new(),
        hosts: Vec::new(),
        data: "desk-data".into(),
        accounts: None,
        policy: None,
        mark_seen: true,
        typing: true,
        offer_timeout: messenger_channel::conversation::DEFAULT_OFFER_TIMEOUT,
        presence_after_missed_offer: None,
        presence_after_rejected_offer: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--real" => o.real = true,
            "--port" => {
                let port: u16 = value()?
                    .parse()
                    .map_err(|_| "--port takes a number".to_owned())?;
                o.agent_bind = format!("127.0.0.1:{port}");
            }
            "--agent-bind" => o.agent_bind = value()?,
            "--webhook-bind" => o.webhook_bind = Some(value()?),
            "--origin" => {
                let origin = value()?;
                if !(origin.starts_with("http://") || origin.starts_with("https://")) {
                    return Err(format!(
                        "--origin takes a URL such as https://desk.example.com, not `{origin}`"
                    ));
                }
                o.origins.push(origin);
            }
            "--host" => o.hosts.push(value()?),
            "--data" => o.data = value()?.into(),
            "--accounts" => o.accounts = Some(value()?.into()),
            "--policy" => o.policy = Some(value()?),
            "--mark-seen" => o.mark_seen = on_off(arg, &value()?)?,
            "--typing" => o.typing = on_off(arg, &value()?)?,
            "--offer-timeout" => {
                let secs = value()?
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=OFFER_TIMEOUT_MAX_SECS).contains(s))
                    .ok_or_else(|| {
                        format!("--offer-timeout takes seconds, 1 to {OFFER_TIMEOUT_MAX_SECS}")
                    })?;
                o.offer_timeout = Duration::from_secs(secs);
            }
            "--presence-after-missed-offer" => {
                o.presence_after_missed_offer = presence_after(arg, &value()?)?;
            }
            "--presence-after-rejected-offer" => {
                o.presence_after_rejected_offer = presence_after(arg, &value()?)?;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unexpected argument `{other}`\n{USAGE}")),
        }
    }
    Ok(o)
}

/// The real mode's credentials, or what is missing.
pub(crate) fn credentials() -> Result<(String, String, String), String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        env("PAGE_ACCESS_TOKEN"),
        env("APP_SECRET"),
        env("VERIFY_TOKEN"),
    ) {
        (Some(token), Some(secret), Some(verify)) => Ok((token, secret, verify)),
        (token, secret, verify) => {
            let missing: Vec<_> = [
                ("PAGE_ACCESS_TOKEN", token.is_none()),
                ("APP_SECRET", secret.is_none()),
                ("VERIFY_TOKEN", verify.is_none()),
            ]
            .iter()
            .filter(|(_, m)| *m)
            .map(|(k, _)| *k)
            .collect();
            Err(format!(
                "--real needs {} in the environment ({} not set)",
                "PAGE_ACCESS_TOKEN, APP_SECRET and VERIFY_TOKEN",
                missing.join(", ")
            ))
        }
    }
}

pub(crate) fn fail(message: &str) -> ! {
    eprintln!("desk: {message}");
    std::process::exit(2);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        options(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn presence_side_effects_and_the_offer_timeout_are_options() {
        let o = parse(&[]).unwrap();
        assert_eq!(
            o.offer_timeout,
            messenger_channel::conversation::DEFAULT_OFFER_TIMEOUT
        );
        assert_eq!(o.presence_after_missed_offer, None);
        assert_eq!(o.presence_after_rejected_offer, None);
        let o = parse(&[
            "--offer-timeout",
            "30",
            "--presence-after-missed-offer",
            "away",
            "--presence-after-rejected-offer",
            "dnd",
        ])
        .unwrap();
        assert_eq!(o.offer_timeout, Duration::from_secs(30));
        assert_eq!(o.presence_after_missed_offer, Some(Presence::Away));
        assert_eq!(
            o.presence_after_rejected_offer,
            Some(Presence::DoNotDisturb)
        );
        let o = parse(&["--presence-after-missed-offer", "none"]).unwrap();
        assert_eq!(o.presence_after_missed_offer, None);
        for bad in [
            &["--offer-timeout", "0"][..],
            &["--offer-timeout", "86401"],
            &["--offer-timeout", "-5"],
            &["--offer-timeout", "1.5"],
            &["--offer-timeout"],
            &["--presence-after-missed-offer", "available"],
            &["--presence-after-missed-offer", "Away"],
            &["--presence-after-rejected-offer", "asleep"],
            &["--presence-after-rejected-offer"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
