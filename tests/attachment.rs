//! The attachment policy: every violation, every tricky name, configuration loading.

use messenger_channel::attachment::{
    AttachmentInfo, AttachmentPolicy, ConfigProblem, DEFAULT_BLOCKED_EXTENSIONS, Direction,
    PolicyConfig, PolicyConfigError, UNSUPPORTED_INBOUND_NOTICE, Violation, sanitize_file_name,
};
use proptest::prelude::*;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06";
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00";
const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n";
const EXE: &[u8] = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00";
/// An ELF header (64-bit, little-endian, executable), padded to its full 64 bytes.
const ELF: &[u8] =
    b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00\x01\x00\x00\x00\
\x00\x10\x40\x00\x00\x00\x00\x00\x40\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\
\x00\x00\x00\x00\x40\x00\x38\x00\x01\x00\x00\x00\x00\x00\x00\x00";
const ZIP: &[u8] = b"PK\x03\x04\x14\x00\x00\x00\x08\x00\x00\x00!\x00";

fn policy(toml_text: &str) -> AttachmentPolicy {
    toml::from_str(toml_text).unwrap()
}

fn codes(
    policy: &AttachmentPolicy,
    direction: Direction,
    info: &AttachmentInfo<'_>,
) -> Vec<&'static str> {
    policy
        .check(direction, info)
        .violations()
        .iter()
        .map(Violation::code)
        .collect()
}

#[test]
fn every_violation() {
    use Direction::{Inbound, Outbound};
    let default = AttachmentPolicy::default();
    let images_only = policy("[inbound]\nallowed_mime_types = [\"image/*\"]\n");
    let off = policy("[inbound]\nenabled = false\n[outbound]\nenabled = false\n");
    let i = AttachmentInfo::new;
    let cases: Vec<(
        &str,
        &AttachmentPolicy,
        Direction,
        AttachmentInfo<'_>,
        Vec<&str>,
    )> = vec![
        (
            "plain photo",
            &default,
            Inbound,
            i().name("photo.jpg")
                .mime("image/jpeg")
                .size(1000)
                .head(JPEG),
            vec![],
        ),
        (
            "agent pdf",
            &default,
            Outbound,
            i().name("quote.pdf").size(1000).head(PDF),
            vec![],
        ),
        (
            "inbound off",
            &off,
            Inbound,
            i().name("photo.jpg").size(1),
            vec!["direction_disabled"],
        ),
        (
            "outbound off",
            &off,
            Outbound,
            i().name("photo.jpg").size(1),
            vec!["direction_disabled"],
        ),
        (
            "share",
            &default,
            Inbound,
            i().platform_kind("fallback"),
            vec!["unsupported_type"],
        ),
        (
            "reel",
            &default,
            Inbound,
            i().platform_kind("ig_reel"),
            vec!["unsupported_type"],
        ),
        (
            "sticker ok",
            &default,
            Inbound,
            i().platform_kind("sticker"),
            vec![],
        ),
        (
            "too large",
            &default,
            Inbound,
            i().name("a.png").size(5 * 1024 * 1024 + 1),
            vec!["too_large"],
        ),
        (
            "exactly the limit",
            &default,
            Inbound,
            i().name("a.png").size(5 * 1024 * 1024),
            vec![],
        ),
        (
            "blocked",
            &default,
            Inbound,
            i().name("setup.EXE").size(10),
            vec!["extension_blocked"],
        ),
        (
            "double extension",
            &default,
            Inbound,
            i().name("invoice.pdf.exe"),
            vec!["extension_blocked"],
        ),
        (
            "trailing dot",
            &default,
            Inbound,
            i().name("virus.exe."),
            vec!["extension_blocked"],
        ),
        (
            "trailing spaces",
            &default,
            Inbound,
            i().name("virus.bat  "),
            vec!["extension_blocked"],
        ),
        (
            "path",
            &default,
            Inbound,
            i().name("..\\..\\x\\run.cmd"),
            vec!["extension_blocked"],
        ),
        (
            "svg blocked",
            &default,
            Outbound,
            i().name("logo.svg"),
            vec!["extension_blocked"],
        ),
        (
            "not allowed outbound",
            &default,
            Outbound,
            i().name("notes.odt").size(5),
            vec!["extension_not_allowed"],
        ),
        (
            "no extension outbound",
            &default,
            Outbound,
            i().name("README").size(5),
            vec!["extension_not_allowed"],
        ),
        (
            "no name, type implies",
            &default,
            Outbound,
            i().mime("image/png").size(5),
            vec![],
        ),
        (
            "random number name",
            &default,
            Inbound,
            i().name("1234567890123456")
                .mime("image/jpeg")
                .size(5)
                .head(JPEG),
            vec![],
        ),
        (
            "mime not allowed",
            &images_only,
            Inbound,
            i().name("a.pdf").mime("application/pdf"),
            vec!["mime_not_allowed"],
        ),
        (
            "mime missing",
            &images_only,
            Inbound,
            i().name("a.png"),
            vec!["mime_not_allowed"],
        ),
        (
            "mime wildcard",
            &images_only,
            Inbound,
            i().name("a.png").mime("image/png; q=1"),
            vec![],
        ),
        (
            "rtl override",
            &default,
            Inbound,
            i().name("invoice\u{202E}fdp.exe"),
            vec!["deceptive_name", "extension_blocked"],
        ),
        (
            "rtl override, harmless ext",
            &default,
            Inbound,
            i().name("photo\u{202E}gnp.jpg"),
            vec!["deceptive_name"],
        ),
        (
            "hidden inner exe",
            &default,
            Inbound,
            i().name("invoice.exe.pdf"),
            vec!["deceptive_name"],
        ),
        (
            "exe renamed jpg",
            &default,
            Inbound,
            i().name("holiday.jpg").mime("image/jpeg").head(EXE),
            vec!["content_blocked"],
        ),
        (
            "elf renamed pdf",
            &default,
            Outbound,
            i().name("report.pdf").head(ELF),
            vec!["content_blocked"],
        ),
        (
            "pdf named jpg",
            &default,
            Inbound,
            i().name("photo.jpg").head(PDF),
            vec!["content_mismatch"],
        ),
        (
            "zip named pdf",
            &default,
            Outbound,
            i().name("report.pdf").head(ZIP),
            vec!["content_mismatch"],
        ),
        (
            "zip named docx",
            &default,
            Outbound,
            i().name("quote.docx").head(ZIP),
            vec![],
        ),
        (
            "png named jpg",
            &default,
            Inbound,
            i().name("photo.jpg").head(PNG),
            vec![],
        ),
        (
            "declared type lies",
            &default,
            Inbound,
            i().mime("image/png").head(PDF),
            vec!["content_mismatch"],
        ),
        (
            "several at once",
            &default,
            Outbound,
            i().name("x.exe").size(u64::MAX).head(EXE),
            vec!["extension_blocked", "content_blocked", "too_large"],
        ),
    ];
    for (what, policy, direction, info, expected) in cases {
        assert_eq!(codes(policy, direction, &info), expected, "{what}");
    }
}

#[test]
fn content_check_can_be_turned_off() {
    let p = policy("[inbound]\ncheck_content = false\n");
    let info = AttachmentInfo::new().name("photo.jpg").head(PDF);
    assert!(p.check(Direction::Inbound, &info).is_allowed());
}

#[test]
fn messages_read_as_sentences_and_codes_are_stable() {
    let default = AttachmentPolicy::default();
    let check = |d, info: AttachmentInfo<'_>| default.check(d, &info).violations()[0].to_string();
    assert_eq!(
        check(
            Direction::Inbound,
            AttachmentInfo::new().name("a.png").size(7_549_747)
        ),
        "The file is 7.2 MB; the largest file allowed is 5 MB."
    );
    assert_eq!(
        check(Direction::Inbound, AttachmentInfo::new().name("a.exe")),
        "Files of type .exe are blocked."
    );
    assert_eq!(
        check(Direction::Outbound, AttachmentInfo::new().name("a.zip")),
        "Files of type .zip can't be sent. Allowed types: .amr, .docx, .gif, .jpeg, .jpg, .mp3, .mp4, .oga, .ogg, .pdf, .png, .txt, .xls, .xlsx."
    );
    let off = policy("[inbound]\nenabled = false\n");
    assert_eq!(
        off.check(Direction::Inbound, &AttachmentInfo::new().name("a.png"))
            .violations()[0]
            .to_string(),
        "File attachments from customers are turned off for this channel."
    );
}

#[test]
fn inbound_rejections_carry_the_panel_notice() {
    let default = AttachmentPolicy::default();
    let inbound = default.check(Direction::Inbound, &AttachmentInfo::new().name("a.exe"));
    assert_eq!(inbound.agent_notice(), Some(UNSUPPORTED_INBOUND_NOTICE));
    assert_eq!(
        UNSUPPORTED_INBOUND_NOTICE,
        "Error: Customer sent an unsupported message type"
    );
    let outbound = default.check(Direction::Outbound, &AttachmentInfo::new().name("a.exe"));
    assert_eq!(outbound.agent_notice(), None);
    let fine = default.check(
        Direction::Inbound,
        &AttachmentInfo::new().name("a.png").size(1),
    );
    assert_eq!(fine.agent_notice(), None);
}

#[test]
fn unknown_size_asks_for_a_second_check() {
    let default = AttachmentPolicy::default();
    let before = default.check(Direction::Inbound, &AttachmentInfo::new().name("video.mp4"));
    assert!(before.is_allowed() && before.needs_size_check());
    let after = default.check(
        Direction::Inbound,
        &AttachmentInfo::new().name("video.mp4").size(30 << 20),
    );
    assert!(!after.needs_size_check());
    assert_eq!(after.violations()[0].code(), "too_large");
}

#[test]
fn several_attachments_get_one_verdict_each() {
    let default = AttachmentPolicy::default();
    let infos = [
        AttachmentInfo::new().name("a.png").size(1),
        AttachmentInfo::new().name("b.exe").size(1),
        AttachmentInfo::new().name("c.pdf").size(1),
        AttachmentInfo::new().name("d.bat").size(1),
    ];
    let verdicts = default.check_all(Direction::Inbound, &infos);
    let allowed: Vec<_> = verdicts
        .iter()
        .map(messenger_channel::attachment::Verdict::is_allowed)
        .collect();
    assert_eq!(allowed, [true, false, true, false]);
    assert_eq!(verdicts[3].safe_name(), "d.bat");
}

#[test]
fn tricky_names_are_made_safe() {
    let default = AttachmentPolicy::default();
    let cases = [
        ("../../etc/passwd", "passwd"),
        ("C:\\x", "x"),
        ("/abs", "abs"),
        ("invoice\u{202E}fdp.exe", "invoicefdp.exe"),
        ("bell\u{7}.txt", "bell.txt"),
        ("....", "attachment"),
        ("report.pdf. ", "report.pdf"),
    ];
    for (name, safe) in cases {
        assert_eq!(
            default
                .check(Direction::Inbound, &AttachmentInfo::new().name(name))
                .safe_name(),
            safe,
            "{name:?}"
        );
    }
    let long = "x".repeat(1000) + ".pdf";
    let verdict = default.check(Direction::Inbound, &AttachmentInfo::new().name(&long));
    assert_eq!(verdict.safe_name().len(), 255);
    assert_eq!(
        messenger_channel::attachment::extension(verdict.safe_name()).as_deref(),
        Some("pdf")
    );
}

#[test]
fn default_policy_follows_omnichannel() {
    let p = AttachmentPolicy::default();
    let inbound = p.direction(Direction::Inbound);
    assert!(inbound.enabled());
    assert_eq!(inbound.max_bytes(), 5 * 1024 * 1024);
    assert!(inbound.allowed_extensions().is_none());
    assert_eq!(
        inbound.blocked_extensions().len(),
        DEFAULT_BLOCKED_EXTENSIONS.len()
    );
    let outbound = p.direction(Direction::Outbound);
    assert_eq!(outbound.allowed_extensions().unwrap().len(), 14);
}

#[test]
fn config_errors_name_the_field() {
    let err = |text: &str| -> PolicyConfigError {
        let config: PolicyConfig = toml::from_str(text).unwrap();
        AttachmentPolicy::from_config(config).unwrap_err()
    };
    let e = err("[inbound]\nmax_bytes = 26214401\n");
    assert_eq!(e.field, "inbound.max_bytes");
    assert_eq!(
        e.problem,
        ConfigProblem::AboveCeiling {
            max_bytes: 26_214_401,
            ceiling: 26_214_400
        }
    );
    let e = err("[outbound]\nallowed_extensions = [\"pdf\", \".EXE\"]\n");
    assert_eq!(e.field, "outbound.allowed_extensions");
    assert_eq!(
        e.problem,
        ConfigProblem::AllowedAndBlocked {
            extension: "exe".into()
        }
    );
    let e = err("[inbound]\nallowed_mime_types = [\"image/*\", \"image\"]\n");
    assert_eq!(e.field, "inbound.allowed_mime_types[1]");
    assert!(matches!(e.problem, ConfigProblem::BadMimePattern { .. }));
    let e = err("[inbound]\nallowed_mime_types = [\"*/png\"]\n");
    assert_eq!(e.field, "inbound.allowed_mime_types[0]");
    let e = err("[inbound]\nblocked_extensions = [\"ok\", \"a/b\"]\n");
    assert_eq!(e.field, "inbound.blocked_extensions[1]");
    let e = err("[inbound]\nmax_bytes = 0\n");
    assert_eq!(e.problem, ConfigProblem::ZeroSize);
    let e = err("[outbound]\nallowed_extensions = []\n");
    assert_eq!(e.problem, ConfigProblem::EmptyAllowList);
    assert!(
        e.to_string().contains("`outbound.allowed_extensions`"),
        "{e}"
    );
    // Through serde directly, the same error is the deserialisation error's message.
    let direct =
        toml::from_str::<AttachmentPolicy>("[inbound]\nmax_bytes = 26214401\n").unwrap_err();
    assert!(direct.to_string().contains("inbound.max_bytes"), "{direct}");
    // Unknown fields are refused, so a typo does not silently fall back to a default.
    assert!(toml::from_str::<PolicyConfig>("[inbound]\nmax_byte = 1\n").is_err());
    assert!(serde_json::from_str::<AttachmentPolicy>(r#"{"outbound":{"enabled":"yes"}}"#).is_err());
}

#[test]
fn config_round_trips_through_json_and_toml() {
    for policy in [
        AttachmentPolicy::default(),
        policy(include_str!("../examples/policy.sample.toml")),
        policy(
            "[inbound]\nenabled = false\nblocked_extensions = []\n[outbound]\nallowed_extensions = [\"*\"]\ncheck_content = false\n",
        ),
    ] {
        let json = serde_json::to_string(&policy).unwrap();
        assert_eq!(
            serde_json::from_str::<AttachmentPolicy>(&json).unwrap(),
            policy,
            "{json}"
        );
        let toml_text = toml::to_string(&policy).unwrap();
        assert_eq!(
            toml::from_str::<AttachmentPolicy>(&toml_text).unwrap(),
            policy,
            "{toml_text}"
        );
    }
    // JSON as an administrator might write it.
    let p: AttachmentPolicy =
        serde_json::from_str(r#"{"outbound":{"allowed_extensions":[".PDF"]}}"#).unwrap();
    assert!(
        p.check(
            Direction::Outbound,
            &AttachmentInfo::new().name("x.pdf").size(1)
        )
        .is_allowed()
    );
}

fn is_bidi(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn sanitiser_output_is_always_safe(name in prop_oneof![
        any::<String>(),
        "[./\\\\ a-z\u{202E}\u{200B}\t\n:*?]{0,40}",
        "(\\.\\./)*[A-Za-z0-9 ._-]{0,300}",
    ]) {
        let safe = sanitize_file_name(&name);
        prop_assert!(!safe.is_empty());
        prop_assert!(!safe.contains(['/', '\\']));
        prop_assert!(!safe.chars().any(char::is_control), "{:?}", safe);
        prop_assert!(!safe.chars().any(is_bidi), "{:?}", safe);
        prop_assert!(safe.len() <= 255);
        prop_assert!(safe != "." && safe != "..");
        prop_assert!(!safe.ends_with('.') && !safe.ends_with(' '));
        prop_assert_eq!(sanitize_file_name(&safe), safe.clone());
    }

    #[test]
    fn checking_never_panics(
        name in proptest::option::of(any::<String>()),
        mime in proptest::option::of("[a-z*]{0,8}/[a-z*+.-]{0,12}"),
        size in proptest::option::of(any::<u64>()),
        head in proptest::option::of(prop::collection::vec(any::<u8>(), 0..64)),
    ) {
        let policy = AttachmentPolicy::default();
        let mut info = AttachmentInfo::new();
        info.name = name.as_deref();
        info.mime = mime.as_deref();
        info.size = size;
        info.head = head.as_deref();
        for d in [Direction::Inbound, Direction::Outbound] {
            let v = policy.check(d, &info);
            prop_assert!(!v.safe_name().is_empty());
            for violation in v.violations() {
                prop_assert!(!violation.to_string().is_empty());
            }
        }
    }
}

/// An SVG with a script, whatever it is called, never passes: `infer` knows no SVG, so the
/// policy recognises markup itself. HTML called an image is a mismatch.
#[test]
fn active_content_is_recognised_whatever_its_name() {
    use messenger_channel::attachment::{AttachmentInfo, AttachmentPolicy, Direction};
    let policy = AttachmentPolicy::default();
    let svg =
        b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(document.domain)</script></svg>";
    for direction in [Direction::Inbound, Direction::Outbound] {
        for (name, mime) in [
            ("photo.png", "image/png"),
            ("photo.jpg", "image/jpeg"),
            ("notes.txt", "text/plain"),
        ] {
            let info = AttachmentInfo::new().name(name).mime(mime).head(svg);
            let verdict = policy.check(direction, &info);
            let codes: Vec<_> = verdict
                .violations()
                .iter()
                .map(messenger_channel::attachment::Violation::code)
                .collect();
            assert!(
                codes.contains(&"content_blocked"),
                "{direction} {name}: {codes:?}"
            );
            assert!(
                verdict
                    .first()
                    .unwrap()
                    .to_string()
                    .contains("image/svg+xml")
            );
        }
        let html = b"<!doctype html><script>alert(1)</script>";
        let info = AttachmentInfo::new()
            .name("photo.png")
            .mime("image/png")
            .head(html);
        let verdict = policy.check(direction, &info);
        let codes: Vec<_> = verdict
            .violations()
            .iter()
            .map(messenger_channel::attachment::Violation::code)
            .collect();
        assert!(
            codes.contains(&"content_mismatch"),
            "{direction}: {codes:?}"
        );
    }
    // A real PNG called .png still passes.
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    let info = AttachmentInfo::new()
        .name("photo.png")
        .mime("image/png")
        .head(png);
    assert!(policy.check(Direction::Outbound, &info).is_allowed());
}
