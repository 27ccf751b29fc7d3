//! The agent desk end to end: in a real, headless Chromium driven through chromedriver
//! (`WebDriver`, with `fantoccini`), and with plain HTTP requests for what a browser must never
//! be able to do.
//!
//! In the browser: two agents sign in, each in a browser session of their own (their own
//! cookies); the simulated customer writes; the first agent's page shows the offer and
//! rejects it; it moves to the second agent's page, where the test clicks Accept, sends a
//! reply and a file, checks the simulated customer received both, tries blocked and hostile
//! files (an SVG and an HTML page with script) and checks the errors shown in the panel, has
//! the customer send the same hostile files and checks that opening them runs nothing; then
//! everything else the customer does; a reload keeps the session; sign-out ends it. With the
//! presence side effects on, a rejected and a lapsed offer change the presence the agents'
//! open pages show, with a notice, in English and Spanish.
//!
//! Over HTTP: every agent route answers 401 without a session, a cross-origin POST and a
//! foreign Host header are refused, files are served with their safety headers, errors are
//! JSON in words, ids are checked, sign-in is rate-limited, a customer's history opens only
//! their closed conversations, and real mode refuses to start without its credentials and has
//! no default accounts.
//!
//! `.ci/run` installs Debian's `chromium` and `chromium-driver`; elsewhere, without
//! `/usr/bin/chromedriver`, the browser test prints a loud skip message (the HTTP tests run
//! everywhere).
#![cfg(all(feature = "axum", feature = "sqlite", feature = "graph"))]
// Scenarios, told in order.
#![allow(clippy::too_many_lines)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// How long any one condition may take to come true on a loaded machine.
const WAIT: Duration = Duration::from_secs(60);
/// How often a condition is looked at again.
const POLL: Duration = Duration::from_millis(100);

/// An inbound policy that lets the hostile samples in (only `.exe` is blocked, content is
/// not checked), so the test sees them served and proves they still never run. The
/// outbound policy is the default one.
const LAX_INBOUND_POLICY: &str =
    "[inbound]\nblocked_extensions = [\"exe\"]\ncheck_content = false\n";

/// Kills a child process when dropped, so a failing test leaves nothing running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The desk example's binary, `target/debug/examples/desk`, which `scripts/test.sh` builds
/// (`MESSENGER_CHANNEL_DESK_BIN` names another, for a target directory that several
/// checkouts share).
fn desk_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MESSENGER_CHANNEL_DESK_BIN") {
        return path.into();
    }
    // `scripts/test.sh` builds it first: `cargo test` alone writes the example only under
    // hashed names, one of them the example's own unit tests.
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap();
    target
        .join("examples")
        .join(format!("desk{}", std::env::consts::EXE_SUFFIX))
}

/// A running desk: its address, the simulation accounts' password, and an HTTP client.
struct Desk {
    _process: Guard,
    base: String,
    password: Option<String>,
    http: reqwest::Client,
}

/// Starts the desk on a free port with `args`, reading what it prints until its last line.
fn start_desk(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Desk {
    let mut command = Command::new(desk_binary());
    command
        .args(["--port", "0", "--data"])
        .arg(data)
        .args(args)
        .env_remove("PAGE_ACCESS_TOKEN")
        .env_remove("APP_SECRET")
        .env_remove("VERIFY_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        command.env(k, v);
    }
    // Guarded at once: a desk that fails to start is killed with the panic.
    let mut process = Guard(
        command
            .spawn()
            .expect("the desk example is built (cargo test builds examples)"),
    );
    // Its lines, read on a thread of their own (and on after start-up, so the desk never
    // writes into a closed pipe).
    let stdout = BufReader::new(process.0.stdout.take().unwrap());
    let (lines, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let _ = lines.send(line.unwrap_or_default());
        }
    });
    let (mut base, mut password) = (None, None);
    loop {
        let line = printed.recv_timeout(WAIT).expect(
            "the desk stopped or said nothing before it was ready (is it this tree's build?)",
        );
        if line.starts_with("Agent desk:") {
            base = line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(|w| w.trim_end_matches('/').to_owned());
        }
        if let Some((_, p)) = line.split_once("password: ") {
            password = Some(p.trim().to_owned());
        }
        if line.starts_with("Accounts:") {
            break;
        }
    }
    Desk {
        _process: process,
        base: base.expect("the desk prints its address"),
        password,
        http: reqwest::Client::new(),
    }
}

/// A signed-in agent over plain HTTP: the session cookie to send.
struct Agent {
    cookie: String,
}

impl Desk {
    /// A JSON POST as the desk's own page makes it (its origin), with `cookie` if any.
    fn post(&self, path: &str, body: &Value, cookie: Option<&Agent>) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("origin", &self.base)
            .json(body);
        if let Some(agent) = cookie {
            request = request.header("cookie", &agent.cookie);
        }
        request
    }

    fn get(&self, path: &str, cookie: Option<&Agent>) -> reqwest::RequestBuilder {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(agent) = cookie {
            request = request.header("cookie", &agent.cookie);
        }
        request
    }

    async fn sign_in(&self, name: &str, password: &str) -> (reqwest::Response, Option<Agent>) {
        let response = self
            .post(
                "/agent/signin",
                &json!({"name": name, "password": password}),
                None,
            )
            .send()
            .await
            .unwrap();
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.split(';').next())
            .map(|c| Agent {
                cookie: c.to_owned(),
            });
        (response, cookie)
    }

    async fn sim(&self, body: Value) -> Value {
        let r: Value = self
            .post("/sim/send", &body, None)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["status"], 200, "{r}");
        r
    }

    async fn inbox(&self) -> Value {
        self.get("/sim/inbox", None)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until the simulated customer's inbox satisfies `ok`.
    async fn wait_inbox(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let inbox = self.inbox().await;
            if ok(&inbox) {
                return inbox;
            }
            assert!(
                Instant::now() < deadline,
                "the simulated customer never got {what}: {inbox}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Asserts a JSON error with `status`, and returns its words.
async fn json_error(response: reqwest::Response, status: u16, what: &str) -> String {
    assert_eq!(response.status().as_u16(), status, "{what}");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: {content_type}"
    );
    let body: Value = response.json().await.unwrap();
    let words = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{what}: {body}"))
        .to_owned();
    assert!(!words.is_empty(), "{what}");
    words
}

fn lax_policy(dir: &Path) -> PathBuf {
    let path = dir.join("lax-inbound.toml");
    std::fs::write(&path, LAX_INBOUND_POLICY).unwrap();
    path
}

// ---- Over HTTP ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_refuses_what_the_web_must_not_do() {
    let work = tempfile::tempdir().unwrap();
    let policy = lax_policy(work.path());
    let desk = start_desk(
        &work.path().join("data"),
        &["--policy", policy.to_str().unwrap()],
        &[],
    );
    let password = desk.password.clone().expect("simulation prints a password");

    // The page: a strict policy, no inline script allowed but its own.
    let page = desk.get("/", None).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let info: Value = desk
        .get("/desk/info", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["simulation"], true, "{info}");

    // Every agent route without a session: 401, JSON.
    for path in [
        "/agent/me",
        "/agent/conversations",
        "/agent/events",
        "/media/abc?conversation=c1",
        "/supervisor/overview",
        "/supervisor/conversation?id=c1",
    ] {
        let r = desk.get(path, None).send().await.unwrap();
        json_error(r, 401, path).await;
    }
    for (path, body) in [
        ("/agent/signout", json!({})),
        ("/agent/presence", json!({"presence": "available"})),
        ("/agent/accept", json!({"conversation": "c1"})),
        ("/agent/reject", json!({"conversation": "c1"})),
        ("/agent/send", json!({"conversation": "c1", "text": "hi"})),
        ("/agent/end", json!({"conversation": "c1"})),
        ("/agent/close", json!({"conversation": "c1"})),
        ("/agent/revive", json!({"conversation": "c1"})),
        (
            "/agent/react",
            json!({"conversation": "c1", "mid": "m", "reaction": "x"}),
        ),
        ("/agent/unreact", json!({"conversation": "c1", "mid": "m"})),
        ("/agent/seen", json!({"conversation": "c1"})),
        ("/agent/typing", json!({"conversation": "c1"})),
        ("/agent/pick", json!({"conversation": "c1"})),
        (
            "/agent/transfer",
            json!({"conversation": "c1", "agent": "bob", "text": "n"}),
        ),
        (
            "/agent/consult",
            json!({"conversation": "c1", "agent": "bob"}),
        ),
        ("/agent/leave", json!({"conversation": "c1"})),
        ("/agent/note", json!({"conversation": "c1", "text": "n"})),
        (
            "/supervisor/assign",
            json!({"conversation": "c1", "agent": "bob"}),
        ),
        ("/supervisor/close", json!({"conversation": "c1"})),
        (
            "/supervisor/note",
            json!({"conversation": "c1", "text": "n"}),
        ),
        // A name in the body or the query no longer makes anyone an agent.
        (
            "/agent/send?agent=alice",
            json!({"agent": "alice", "conversation": "c1", "text": "hi"}),
        ),
    ] {
        let r = desk.post(path, &body, None).send().await.unwrap();
        json_error(r, 401, path).await;
    }
    let upload = desk
        .http
        .post(format!(
            "{}/agent/file?conversation=c1&name=a.txt",
            desk.base
        ))
        .header("origin", &desk.base)
        .header("x-desk-upload", "1")
        .body("hello")
        .send()
        .await
        .unwrap();
    json_error(upload, 401, "/agent/file").await;

    // Cross-origin writes: refused before anything else, signed in or not.
    let (response, alice) = desk.sign_in("alice", &password).await;
    assert_eq!(response.status(), 200);
    let alice = alice.expect("a session cookie");
    for path in [
        "/agent/signin",
        "/agent/presence",
        "/agent/send",
        "/sim/send",
    ] {
        let r = desk
            .http
            .post(format!("{}{path}", desk.base))
            .header("origin", "http://rebind.evil.example")
            .header("cookie", &alice.cookie)
            .json(&json!({"name": "alice", "password": password, "presence": "busy"}))
            .send()
            .await
            .unwrap();
        json_error(r, 403, path).await;
    }
    // A "simple" request another site can send without a preflight: text/plain, no header.
    let r = desk
        .http
        .post(format!(
            "{}/agent/file?conversation=c1&name=a.txt",
            desk.base
        ))
        .header("origin", "http://evil.example")
        .header("content-type", "text/plain")
        .header("cookie", &alice.cookie)
        .body("hello")
        .send()
        .await
        .unwrap();
    json_error(r, 403, "cross-origin upload").await;
    let r = desk
        .http
        .post(format!(
            "{}/agent/file?conversation=c1&name=a.txt",
            desk.base
        ))
        .header("origin", &desk.base)
        .header("content-type", "text/plain")
        .header("cookie", &alice.cookie)
        .body("hello")
        .send()
        .await
        .unwrap();
    json_error(r, 403, "upload without the desk's header").await;
    // No origin at all: refused too.
    let r = desk
        .http
        .post(format!("{}/agent/presence", desk.base))
        .header("cookie", &alice.cookie)
        .json(&json!({"presence": "busy"}))
        .send()
        .await
        .unwrap();
    json_error(r, 403, "a write without an origin").await;
    // The right origin but not JSON: 415, in words.
    let r = desk
        .http
        .post(format!("{}/agent/presence", desk.base))
        .header("origin", &desk.base)
        .header("cookie", &alice.cookie)
        .header("content-type", "text/plain")
        .body("presence=busy")
        .send()
        .await
        .unwrap();
    json_error(r, 415, "text/plain").await;

    // A foreign Host (DNS rebinding): 421, whatever the route.
    for path in ["/", "/agent/me", "/agent/conversations", "/sim/inbox"] {
        let r = desk
            .get(path, Some(&alice))
            .header("host", "rebind.evil.example")
            .send()
            .await
            .unwrap();
        json_error(r, 421, path).await;
    }
    let r = desk
        .get("/agent/me", Some(&alice))
        .header("host", "localhost:1")
        .send()
        .await
        .unwrap();
    json_error(r, 421, "another port").await;

    // Errors in words with the right 4xx.
    let r = desk
        .post(
            "/agent/presence",
            &json!({"presence": "sleepy"}),
            Some(&alice),
        )
        .send()
        .await
        .unwrap();
    json_error(r, 400, "unknown presence").await;
    let r = desk
        .post(
            "/agent/presence",
            &json!({"presence": "available"}),
            Some(&alice),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = r.json().await.unwrap();
    assert_eq!(me["presence"], "available", "{me}");
    let r = desk
        .post(
            "/agent/send",
            &json!({"conversation": "nope", "text": "  "}),
            Some(&alice),
        )
        .send()
        .await
        .unwrap();
    let words = json_error(r, 400, "empty reply").await;
    assert!(words.contains("Write a message"), "{words}");
    let r = desk
        .post(
            "/agent/accept",
            &json!({"conversation": "nope"}),
            Some(&alice),
        )
        .send()
        .await
        .unwrap();
    json_error(r, 404, "unknown conversation").await;
    let r = desk
        .post("/agent/presence", &json!({"presence": 3}), Some(&alice))
        .send()
        .await
        .unwrap();
    json_error(r, 400, "a field of the wrong type").await;
    // A plain agent on the supervisor's routes: 403, whatever the request says.
    for path in ["/supervisor/overview", "/supervisor/conversation?id=c1"] {
        let r = desk.get(path, Some(&alice)).send().await.unwrap();
        let words = json_error(r, 403, path).await;
        assert!(words.contains("Only supervisors"), "{words}");
    }
    for path in [
        "/supervisor/assign",
        "/supervisor/close",
        "/supervisor/note",
    ] {
        let body =
            json!({"conversation": "c1", "agent": "alice", "text": "n", "role": "supervisor"});
        let r = desk.post(path, &body, Some(&alice)).send().await.unwrap();
        json_error(r, 403, path).await;
    }
    // Ids are checked before they reach the engine.
    for (path, body, status) in [
        ("/agent/pick", json!({"conversation": "../../etc"}), 400),
        ("/agent/pick", json!({"conversation": "x".repeat(65)}), 400),
        (
            "/agent/pick",
            json!({"conversation": "feedfeedfeedfeedfeedfeed"}),
            404,
        ),
        (
            "/agent/consult",
            json!({"conversation": "c1", "agent": "mallory"}),
            404,
        ),
        ("/agent/transfer", json!({"conversation": "c1"}), 400),
        (
            "/agent/transfer",
            json!({"conversation": "c1", "queue": "nope"}),
            404,
        ),
        (
            "/agent/note",
            json!({"conversation": "c1", "text": "  "}),
            400,
        ),
        (
            "/agent/note",
            json!({"conversation": "c1", "text": "n".repeat(2001)}),
            400,
        ),
    ] {
        let r = desk.post(path, &body, Some(&alice)).send().await.unwrap();
        json_error(r, status, path).await;
    }
    // The older routes check conversation ids as strictly: 400, in words, before anything
    // is looked up.
    let long = "x".repeat(65);
    for action in [
        "accept", "reject", "send", "end", "close", "revive", "react", "unreact", "seen", "typing",
    ] {
        for id in ["../../etc", "a b", long.as_str(), ""] {
            let body = json!({"conversation": id, "text": "hi", "mid": "m", "reaction": "x"});
            let path = format!("/agent/{action}");
            let r = desk.post(&path, &body, Some(&alice)).send().await.unwrap();
            let words = json_error(r, 400, &format!("{path} {id:?}")).await;
            assert_eq!(words, "Say which conversation.", "{path} {id:?}");
        }
    }
    for path in [
        "/agent/conversation?id=..%2F..%2Fetc".to_owned(),
        format!("/agent/conversation?id={long}"),
        "/media/abc?conversation=a%20b".to_owned(),
        format!("/media/abc?conversation={long}"),
    ] {
        let r = desk.get(&path, Some(&alice)).send().await.unwrap();
        let words = json_error(r, 400, &path).await;
        assert_eq!(words, "Say which conversation.", "{path}");
    }
    // Uploads too, and a file's name and type are bounded.
    let name_256 = "n".repeat(252) + ".txt";
    let type_128 = "t".repeat(128);
    for (query, expected) in [
        (
            "conversation=..%2Fetc&name=a.txt".to_owned(),
            "Say which conversation.",
        ),
        (
            format!("conversation={long}&name=a.txt"),
            "Say which conversation.",
        ),
        (
            "conversation=c1&name=".to_owned(),
            "Say which conversation and the file's name.",
        ),
        (
            format!("conversation=c1&name={name_256}"),
            "A file's name holds at most 255 characters.",
        ),
        (
            format!("conversation=c1&name=a.txt&mime={type_128}"),
            "A file's type holds at most 127 characters.",
        ),
    ] {
        let r = desk
            .http
            .post(format!("{}/agent/file?{query}", desk.base))
            .header("origin", &desk.base)
            .header("x-desk-upload", "1")
            .header("cookie", &alice.cookie)
            .body("hello")
            .send()
            .await
            .unwrap();
        let words = json_error(r, 400, &query).await;
        assert_eq!(words, expected, "{query}");
    }
    let r = desk
        .http
        .post(format!("{}/agent/presence", desk.base))
        .header("origin", &desk.base)
        .header("cookie", &alice.cookie)
        .header("content-type", "application/json")
        .body(vec![b' '; 100 * 1024])
        .send()
        .await
        .unwrap();
    json_error(r, 413, "a body over the limit").await;
    let r = desk.get("/no/such/page", None).send().await.unwrap();
    json_error(r, 404, "unknown address").await;

    // The customer writes, with hostile files; alice (the only one available) accepts.
    desk.sim(json!({"kind": "text", "text": "Hello"})).await;
    let deadline = Instant::now() + WAIT;
    let conversation = loop {
        let list: Value = desk
            .get("/agent/conversations", Some(&alice))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(id) = list["conversations"][0]["id"].as_str() {
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "no offer reached alice: {list}");
        tokio::time::sleep(POLL).await;
    };
    let r = desk
        .post(
            "/agent/accept",
            &json!({"conversation": conversation}),
            Some(&alice),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // An action the state does not allow: words, no internal names.
    let r = desk
        .post(
            "/agent/revive",
            &json!({"conversation": conversation}),
            Some(&alice),
        )
        .send()
        .await
        .unwrap();
    let words = json_error(r, 409, "revive while active").await;
    assert!(
        !words.contains("Revive") && !words.contains("Active") && !words.contains("state"),
        "{words}"
    );
    for kind in ["svg", "html", "picture", "file"] {
        desk.sim(json!({"kind": kind})).await;
    }
    // The files, once kept: name -> media key.
    let deadline = Instant::now() + WAIT;
    let files = loop {
        let list: Value = desk
            .get("/agent/conversations", Some(&alice))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let files: Vec<(String, String)> = list["conversations"][0]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| {
                let f = &l["body"]["File"];
                Some((
                    f["name"].as_str()?.to_owned(),
                    f["media_key"].as_str()?.to_owned(),
                ))
            })
            .collect();
        if files.len() == 4 {
            break files;
        }
        assert!(Instant::now() < deadline, "the files were not kept: {list}");
        tokio::time::sleep(POLL).await;
    };
    for (name, key) in &files {
        let path = format!("/media/{key}?conversation={conversation}");
        let r = desk.get(&path, Some(&alice)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{name}");
        let header = |h: &str| {
            r.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        assert_eq!(header("x-content-type-options"), "nosniff", "{name}");
        assert_eq!(header("content-security-policy"), "sandbox", "{name}");
        let disposition = header("content-disposition");
        assert!(
            disposition.ends_with(&format!("filename*=UTF-8''{name}")),
            "{name}: {disposition}"
        );
        if name == "photo.png" {
            assert!(disposition.starts_with("inline"), "{disposition}");
            assert_eq!(header("content-type"), "image/png");
        } else {
            assert!(
                disposition.starts_with("attachment"),
                "{name}: {disposition}"
            );
            assert_eq!(header("content-type"), "application/octet-stream", "{name}");
        }
        // Without a session, or for a conversation the file is not in: nothing.
        let r = desk.get(&path, None).send().await.unwrap();
        json_error(r, 401, "media without a session").await;
    }
    let (_, key) = &files[0];
    let r = desk
        .get(&format!("/media/{key}?conversation=other"), Some(&alice))
        .send()
        .await
        .unwrap();
    json_error(r, 404, "media of another conversation").await;

    // Sign-in: wrong passwords say nothing about which part was wrong, and are limited.
    let (r, none) = desk.sign_in("alice", "not the password").await;
    assert!(none.is_none());
    json_error(r, 401, "wrong password").await;
    for _ in 0..5 {
        let (r, _) = desk.sign_in("mallory", "guess").await;
        json_error(r, 401, "unknown name").await;
    }
    let (r, _) = desk.sign_in("mallory", "guess").await;
    let words = json_error(r, 429, "too many failures").await;
    assert!(words.contains("Try again"), "{words}");
    // The cookie: HttpOnly, SameSite=Strict, Path=/, not Secure over plain HTTP.
    let (r, bob) = desk.sign_in("bob", &password).await;
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set_cookie.contains(part), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "{set_cookie}");
    let bob = bob.unwrap();
    let me: Value = desk
        .get("/agent/me", Some(&bob))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["name"], "bob", "{me}");
    // Bob never worked on alice's conversation: neither it nor its files are his to read; the
    // supervisor reads both.
    let (_, media_key) = &files[0];
    let reads = [
        format!("/agent/conversation?id={conversation}"),
        format!("/media/{media_key}?conversation={conversation}"),
    ];
    let r = desk.get(&reads[0], Some(&bob)).send().await.unwrap();
    let words = json_error(r, 403, &reads[0]).await;
    assert!(words.contains("only conversations you work on"), "{words}");
    // A file answers as if the conversation did not exist: nothing tells which ids do.
    let r = desk.get(&reads[1], Some(&bob)).send().await.unwrap();
    let words = json_error(r, 404, &reads[1]).await;
    let r = desk
        .get(
            &format!("/media/{media_key}?conversation=feedfeedfeedfeedfeedfeed"),
            Some(&bob),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(words, json_error(r, 404, "no such conversation").await);
    for path in &reads {
        let r = desk.get(path, Some(&alice)).send().await.unwrap();
        assert_eq!(r.status(), 200, "alice reads {path}");
    }
    let (_, sam) = desk.sign_in("sam", &password).await;
    let sam = sam.unwrap();
    for path in &reads {
        let r = desk.get(path, Some(&sam)).send().await.unwrap();
        assert_eq!(r.status(), 200, "the supervisor reads {path}");
    }
    // Alice ends and closes it without having written a word: still hers to read (she held
    // it last); still not bob's.
    for action in ["end", "close"] {
        let r = desk
            .post(
                &format!("/agent/{action}"),
                &json!({"conversation": conversation}),
                Some(&alice),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{action}: {}", r.text().await.unwrap());
    }
    let r = desk.get(&reads[0], Some(&alice)).send().await.unwrap();
    assert_eq!(r.status(), 200, "alice reads her closed conversation");
    let closed: Value = r.json().await.unwrap();
    assert_eq!(closed["state"], "Closed", "{closed}");
    let r = desk.get(&reads[0], Some(&bob)).send().await.unwrap();
    json_error(r, 403, "bob on alice's closed conversation").await;
    // Sign-out ends the session for good, and the event stream opened with it.
    let stream = desk.get("/agent/events", Some(&bob)).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let r = desk
        .post("/agent/signout", &json!({}), Some(&bob))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = desk.get("/agent/me", Some(&bob)).send().await.unwrap();
    json_error(r, 401, "after sign-out").await;
    // The next news for everyone: bob's stream ends instead of carrying it.
    desk.sim(json!({"kind": "text", "text": "after bob left"}))
        .await;
    let rest = tokio::time::timeout(WAIT, stream.bytes())
        .await
        .expect("the stream of a signed-out agent ends")
        .unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&rest).contains("\"type\""),
        "nothing reached bob after he signed out: {rest:?}"
    );
    // Stored sessions are hashes: the cookie's value is nowhere in the data directory.
    let token = alice.cookie.split_once('=').unwrap().1.to_owned();
    for entry in std::fs::read_dir(work.path().join("data")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(!text.contains(&token), "{}", path.display());
        }
    }
}

impl Desk {
    /// `GET path` as `agent`: the status and the JSON body.
    async fn read(&self, path: &str, agent: &Agent) -> (u16, Value) {
        let r = self.get(path, Some(agent)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// `POST path` as `agent`, which must answer 200.
    async fn ok(&self, path: &str, body: &Value, agent: &Agent) {
        let r = self.post(path, body, Some(agent)).send().await.unwrap();
        let status = r.status();
        assert_eq!(status, 200, "{path}: {}", r.text().await.unwrap());
    }

    /// Waits for the conversation offered to `agent` (other than `except`); its id.
    async fn wait_offer(&self, agent: &Agent, name: &str, except: Option<&str>) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let (_, list) = self.read("/agent/conversations", agent).await;
            let offered = list["conversations"].as_array().and_then(|all| {
                all.iter().find_map(|c| {
                    let id = c["id"].as_str()?;
                    (c["offer"]["agent"] == name && Some(id) != except).then(|| id.to_owned())
                })
            });
            if let Some(id) = offered {
                return id;
            }
            assert!(Instant::now() < deadline, "no offer reached {name}: {list}");
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The customer's history opens their *closed* conversations to an agent who worked with them,
/// never a colleague's conversation under way with the same customer; and a file of a
/// conversation the agent may not read answers as one of a conversation that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_history_opens_only_their_closed_conversations() {
    let work = tempfile::tempdir().unwrap();
    let desk = start_desk(&work.path().join("data"), &[], &[]);
    let password = desk.password.clone().expect("simulation prints a password");
    let alice = desk.sign_in("alice", &password).await.1.unwrap();
    let bob = desk.sign_in("bob", &password).await.1.unwrap();
    let presence = |p: &str| json!({"presence": p});

    // Alice (the only one available) takes Dana's first conversation, answers, ends and
    // closes it.
    desk.ok("/agent/presence", &presence("available"), &alice)
        .await;
    desk.sim(json!({"kind": "text", "text": "Hello, my parcel is late"}))
        .await;
    let first = desk.wait_offer(&alice, "alice", None).await;
    let with = |id: &str| json!({"conversation": id, "text": "On it"});
    for action in ["accept", "send", "end", "close"] {
        desk.ok(&format!("/agent/{action}"), &with(&first), &alice)
            .await;
    }
    // Dana writes again: bob (now the only one available) takes the new conversation, and
    // Dana sends a picture in it.
    desk.ok("/agent/presence", &presence("away"), &alice).await;
    desk.ok("/agent/presence", &presence("available"), &bob)
        .await;
    desk.sim(json!({"kind": "text", "text": "Me again"})).await;
    let second = desk.wait_offer(&bob, "bob", Some(&first)).await;
    assert_ne!(first, second);
    desk.ok("/agent/accept", &with(&second), &bob).await;
    desk.sim(json!({"kind": "picture"})).await;
    let deadline = Instant::now() + WAIT;
    let key = loop {
        let (_, c) = desk
            .read(&format!("/agent/conversation?id={second}"), &bob)
            .await;
        let key = c["lines"].as_array().and_then(|lines| {
            lines
                .iter()
                .find_map(|l| l["body"]["File"]["media_key"].as_str())
        });
        if let Some(key) = key {
            break key.to_owned();
        }
        assert!(Instant::now() < deadline, "the picture was not kept: {c}");
        tokio::time::sleep(POLL).await;
    };

    // Bob reads the customer's closed conversation (their history); alice reads hers.
    let conversation = |id: &str| format!("/agent/conversation?id={id}");
    let (status, c) = desk.read(&conversation(&first), &bob).await;
    assert_eq!((status, c["state"].as_str()), (200, Some("Closed")), "{c}");
    let (status, c) = desk.read(&conversation(&first), &alice).await;
    assert_eq!((status, c["state"].as_str()), (200, Some("Closed")), "{c}");
    // Alice worked with Dana, but the conversation under way is bob's: neither it (with its
    // history) nor its picture is hers to read.
    let (status, c) = desk.read(&conversation(&second), &alice).await;
    assert_eq!(status, 403, "alice read bob's live conversation: {c}");
    let (status, c) = desk.read(&conversation(&second), &bob).await;
    assert_eq!((status, c["state"].as_str()), (200, Some("Active")), "{c}");
    let file = |id: &str| format!("/media/{key}?conversation={id}");
    let r = desk.get(&file(&second), Some(&bob)).send().await.unwrap();
    assert_eq!(r.status(), 200, "bob gets the picture");
    let r = desk.get(&file(&second), Some(&alice)).send().await.unwrap();
    let refused = json_error(r, 404, "alice on bob's picture").await;
    let r = desk
        .get(&file("feedfeedfeedfeedfeedfeed"), Some(&alice))
        .send()
        .await
        .unwrap();
    let missing = json_error(r, 404, "a conversation that does not exist").await;
    assert_eq!(refused, missing, "the two answers tell nothing apart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_mode_needs_credentials_and_accounts() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    // Without credentials: refuses, naming what is missing.
    let run = |env: &[(&str, &str)]| {
        let mut command = Command::new(desk_binary());
        command
            .args(["--real", "--port", "0", "--data"])
            .arg(&data)
            .env_remove("PAGE_ACCESS_TOKEN")
            .env_remove("APP_SECRET")
            .env_remove("VERIFY_TOKEN");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PAGE_ACCESS_TOKEN, APP_SECRET, VERIFY_TOKEN not set"),
        "{stderr}"
    );
    let out = run(&[("PAGE_ACCESS_TOKEN", "t")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("(APP_SECRET, VERIFY_TOKEN not set)"),
        "{stderr}"
    );
    let credentials = [
        ("PAGE_ACCESS_TOKEN", "page-token"),
        ("APP_SECRET", "app-secret"),
        ("VERIFY_TOKEN", "verify"),
    ];
    // With credentials but no accounts: no default accounts, so it refuses too.
    let out = run(&credentials);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("add-agent"), "{stderr}");

    // An account, made with the subcommand; the password comes from standard input.
    let mut add = Command::new(desk_binary())
        .args([
            "add-agent",
            "carol",
            "--role",
            "supervisor",
            "--capacity",
            "3",
            "--data",
        ])
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"a long passphrase\n")
        .unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = std::fs::read_to_string(data.join("agents.toml")).unwrap();
    assert!(
        file.contains("name = \"carol\"") && file.contains("role = \"supervisor\""),
        "{file}"
    );
    assert!(file.contains("$argon2id$"), "{file}");
    assert!(!file.contains("a long passphrase"), "{file}");

    let desk = start_desk(&data, &["--real"], &credentials);
    assert!(desk.password.is_none(), "real mode prints no password");
    let info: Value = desk
        .get("/desk/info", None)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["simulation"], false, "{info}");
    // No simulation routes, and no demo accounts.
    let r = desk.get("/sim/inbox", None).send().await.unwrap();
    json_error(r, 404, "no simulation in real mode").await;
    let (r, _) = desk.sign_in("alice", "anything at all").await;
    json_error(r, 401, "no demo accounts in real mode").await;
    let (r, carol) = desk.sign_in("carol", "a long passphrase").await;
    assert_eq!(r.status(), 200);
    let me: Value = desk
        .get("/agent/me", Some(&carol.unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["role"], "supervisor", "{me}");
    assert_eq!(me["capacity"], 3, "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_can_listen_apart_from_the_agent_page() {
    let work = tempfile::tempdir().unwrap();
    let desk = start_desk(
        &work.path().join("data"),
        &["--webhook-bind", "127.0.0.1:0"],
        &[],
    );
    // The agent page's listener has no webhook; the simulated customer's webhooks reach the
    // other listener and are taken (200).
    let r = desk
        .get(
            "/webhook?hub.mode=subscribe&hub.verify_token=desk-simulation&hub.challenge=1",
            None,
        )
        .send()
        .await
        .unwrap();
    json_error(r, 404, "no webhook on the agent listener").await;
    let sent = desk.sim(json!({"kind": "text", "text": "Hello"})).await;
    assert_eq!(sent["ok"], true, "{sent}");
}

// ---- In the browser ----

/// A browser session of its own (its own profile, so its own cookies).
async fn browser(driver: &str, profile: &Path, downloads: &Path) -> Client {
    browser_in(driver, profile, downloads, "en-US,en").await
}

/// A browser session whose `Accept-Language` is `languages`.
async fn browser_in(driver: &str, profile: &Path, downloads: &Path, languages: &str) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), json!("chrome"));
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--window-size=1280,860", format!("--lang={}", languages.split(',').next().unwrap_or("en")),
                     format!("--user-data-dir={}", profile.display())],
            "prefs": {"download.default_directory": downloads.display().to_string(), "download.prompt_for_download": false,
                      "intl.accept_languages": languages}
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let deadline = Instant::now() + WAIT;
    loop {
        match ClientBuilder::new(connector.clone())
            .capabilities(capabilities.clone())
            .connect(driver)
            .await
        {
            Ok(client) => return client,
            // chromedriver may still be starting.
            Err(e) => {
                assert!(Instant::now() < deadline, "no browser session: {e}");
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

/// Waits for an element whose text satisfies `ok`; returns the text.
async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    let mut last = String::new();
    loop {
        // The page re-renders: an element found may be gone a moment later.
        if let Ok(element) = c.find(Locator::Css(css)).await {
            if let Ok(text) = element.text().await {
                if ok(&text) {
                    return text;
                }
                last = text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {css}; it says: {last}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Clicks the element, finding it again if the page re-rendered it meanwhile.
async fn click(c: &Client, css: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(element) = c.find(Locator::Css(css)).await {
            if element.click().await.is_ok() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "could not click {css}");
        tokio::time::sleep(POLL).await;
    }
}

async fn type_into(c: &Client, css: &str, text: &str) {
    let element = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"));
    if !css.contains("file") {
        element.clear().await.unwrap();
    }
    element.send_keys(text).await.unwrap();
}

/// Saves what the browser shows as `NAME.png` in the directory `MESSENGER_CHANNEL_SCREENSHOTS`
/// names, when it is set (`scripts/screenshots.sh` makes the README's pictures so).
async fn screenshot(c: &Client, name: &str) {
    let Some(dir) = std::env::var_os("MESSENGER_CHANNEL_SCREENSHOTS") else {
        return;
    };
    let png = c.screenshot().await.unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
}

/// Skips a browser test (loudly) where there is no chromedriver; CI must have it.
fn no_browser() -> bool {
    if Path::new(CHROMEDRIVER).exists() {
        return false;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must install chromium-driver"
    );
    eprintln!(
        "\n*** SKIPPED: the browser test needs {CHROMEDRIVER} (apt-get install chromium chromium-driver) ***\n"
    );
    true
}

/// Starts chromedriver on a free port; its address.
fn chromedriver() -> (Guard, String) {
    let port = free_port();
    let driver = Guard(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    (driver, format!("http://127.0.0.1:{port}"))
}

/// The seconds an offer's countdown shows.
fn countdown(offer: &str, within: &str) -> u64 {
    offer
        .split(within)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no countdown in {offer}"))
}

/// Signs in on the page.
async fn sign_in(c: &Client, base: &str, name: &str, password: &str) {
    c.goto(&format!("{base}/")).await.unwrap();
    wait_text(c, "#simulation", |t| t.contains("Simulation")).await;
    type_into(c, "#agent-name", name).await;
    type_into(c, "#password", password).await;
    click(c, "#signin").await;
    wait_text(c, "#status", |t| {
        t.contains("Signed in as") && t.contains(&format!("({name},"))
    })
    .await;
}

/// What a script in the page answers (a promise is awaited).
async fn page_eval(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Waits until a script in the page answers `expected`.
async fn wait_eval(c: &Client, script: &str, expected: &Value) {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = c.execute(script, vec![]).await.unwrap_or(Value::Null);
        if got == *expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {script} to be {expected}; it is {got}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// No alert is open: no hostile script ran in this browser.
async fn assert_no_alert(c: &Client) {
    match c.get_alert_text().await {
        Err(e) if e.is_no_such_alert() => {}
        Ok(text) => panic!("a script ran and opened an alert: {text}"),
        Err(e) => panic!("{e}"),
    }
}

/// Uploads `path` as the agent and waits for the error the panel shows.
async fn upload_refused(c: &Client, path: &Path, ok: impl Fn(&str) -> bool) -> String {
    // A fresh error each time: clear the last one by sending nothing first.
    page_eval(
        c,
        "document.getElementById('error').textContent = ''; return true;",
    )
    .await;
    type_into(c, "#file", path.to_str().unwrap()).await;
    click(c, "#attach").await;
    wait_text(c, "#error", ok).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_desk_in_a_real_browser() {
    if !Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install chromium-driver"
        );
        eprintln!(
            "\n*** SKIPPED: the browser test needs {CHROMEDRIVER} (apt-get install chromium chromium-driver) ***\n"
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let policy = lax_policy(work.path());
    let desk = start_desk(
        &work.path().join("data"),
        &["--policy", policy.to_str().unwrap()],
        &[],
    );
    let base = desk.base.clone();
    let password = desk.password.clone().expect("simulation prints a password");
    let port = free_port();
    let _driver = Guard(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let driver = format!("http://127.0.0.1:{port}");
    let downloads = work.path().join("downloads");
    std::fs::create_dir_all(&downloads).unwrap();

    // Two agents sign in, each in a browser session of their own.
    let alice = browser(&driver, &work.path().join("profile-alice"), &downloads).await;
    let bob = browser(&driver, &work.path().join("profile-bob"), &downloads).await;
    // A wrong password first: the page says so, in words.
    alice.goto(&format!("{base}/")).await.unwrap();
    wait_text(&alice, "#simulation", |t| t.contains("Simulation")).await;
    screenshot(&alice, "desk-sign-in").await;
    type_into(&alice, "#agent-name", "alice").await;
    type_into(&alice, "#password", "not the password").await;
    click(&alice, "#signin").await;
    wait_text(&alice, "#signin-error", |t| t.contains("do not match")).await;
    sign_in(&alice, &base, "alice", &password).await;
    sign_in(&bob, &base, "bob", &password).await;

    // The simulated customer writes; the offer appears with its countdown.
    let sent = desk
        .sim(json!({"kind": "text", "text": "Hello, my parcel is late"}))
        .await;
    // It is offered to alice first (least loaded, then by name); she rejects it, and the offer
    // moves to bob's screen.
    wait_text(&alice, "#offers .offer", |t| t.contains("Accept within")).await;
    click(&alice, "#offers .offer .reject").await;
    // The offer names the customer: the name from the profile (fetched once, off the
    // webhook's path), not the fallback.
    let offer = wait_text(&bob, "#offers .offer", |t| {
        t.contains("Accept within") && t.contains("Dana Reyes")
    })
    .await;
    let seconds: u64 = offer
        .split("within ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(seconds <= 120 && seconds > 60, "{offer}");

    // bob accepts, then replies.
    click(&bob, "#offers .offer .accept").await;
    wait_text(&bob, "#title", |t| t.contains("Active")).await;
    wait_text(&bob, "#transcript", |t| {
        t.contains("Hello, my parcel is late")
    })
    .await;
    type_into(&bob, "#reply", "We are looking into it").await;
    click(&bob, "#send").await;
    desk.wait_inbox("the reply", |i| {
        i["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["text"] == "We are looking into it")
    })
    .await;
    // An empty reply: refused in words, nothing sent.
    type_into(&bob, "#reply", " ").await;
    click(&bob, "#send").await;
    wait_text(&bob, "#error", |t| {
        t.contains("Write a message before sending")
    })
    .await;

    // A file.
    let png = work.path().join("label.png");
    std::fs::write(&png, include_bytes!("../examples/sample/photo.png")).unwrap();
    type_into(&bob, "#file", png.to_str().unwrap()).await;
    click(&bob, "#attach").await;
    desk.wait_inbox("label.png", |i| {
        i["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["file"]["name"] == "label.png")
    })
    .await;
    wait_text(&bob, "#transcript", |t| t.contains("label.png")).await;

    // A blocked file: the panel says why, and nothing leaves.
    let exe = work.path().join("tool.exe");
    std::fs::write(&exe, b"MZ\x90\x00\x03\x00\x00\x00").unwrap();
    upload_refused(&bob, &exe, |t| t.contains("Files of type .exe are blocked")).await;
    // Hostile files the agent tries to send: an SVG and an HTML page with script, and an SVG
    // named like a picture. The policy refuses each (by name, and by content).
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert('agent svg')\"><script>alert('agent svg')</script></svg>";
    for (name, bytes) in [
        ("drawing.svg", &svg[..]),
        (
            "page.html",
            &b"<!doctype html><script>alert('agent html')</script>"[..],
        ),
        ("photo.png", &svg[..]),
    ] {
        let path = work.path().join("hostile").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let error = upload_refused(&bob, &path, |t| !t.is_empty()).await;
        assert!(!error.contains("HTTP"), "{name}: {error}");
    }
    let inbox = desk.inbox().await;
    assert!(
        inbox["messages"].as_array().unwrap().iter().all(|m| ![
            "drawing.svg",
            "page.html",
            "photo.png"
        ]
        .contains(&m["file"]["name"].as_str().unwrap_or(""))),
        "a hostile file left: {inbox}"
    );

    // The customer sends an unsupported file: the agent sees Omnichannel's error.
    desk.sim(json!({"kind": "unsupported"})).await;
    wait_text(&bob, "#transcript", |t| {
        t.contains("Customer sent an unsupported message type")
    })
    .await;

    // The customer sends the hostile files (the lax inbound policy lets them in): the agent
    // opens each, and nothing runs, in the desk's origin or anywhere.
    desk.sim(json!({"kind": "svg"})).await;
    desk.sim(json!({"kind": "html"})).await;
    for name in ["drawing.svg", "page.html"] {
        // Links name their file in their text.
        let css = "#transcript a[href*='/media/']";
        wait_text(&bob, "#transcript", |t| t.contains(name)).await;
        let deadline = Instant::now() + WAIT;
        let href = loop {
            let links = bob.find_all(Locator::Css(css)).await.unwrap_or_default();
            let mut found = None;
            for link in links {
                if link.text().await.unwrap_or_default().contains(name) {
                    found = link.attr("href").await.ok().flatten();
                }
            }
            if let Some(href) = found {
                break href;
            }
            assert!(Instant::now() < deadline, "no link to {name} was kept");
            tokio::time::sleep(POLL).await;
        };
        let url = if href.starts_with("http") {
            href.clone()
        } else {
            format!("{base}{href}")
        };
        // Opened in a tab of its own, as the link does, and directly.
        let back = bob.window().await.unwrap();
        let tab = bob.new_window(true).await.unwrap();
        bob.switch_to_window(tab.handle).await.unwrap();
        bob.goto(&url).await.unwrap();
        assert_no_alert(&bob).await;
        bob.close_window().await.unwrap();
        bob.switch_to_window(back).await.unwrap();
        // And fetched by the page itself: the response carries the sandbox and nosniff.
        let headers = page_eval(
            &bob,
            &format!(
                "return fetch({href:?}).then(r => [r.headers.get('content-disposition'), r.headers.get('content-security-policy'), r.headers.get('x-content-type-options')]);"
            ),
        )
        .await;
        assert!(
            headers[0]
                .as_str()
                .unwrap_or("")
                .starts_with("attachment; filename*=UTF-8''"),
            "{name}: {headers}"
        );
        assert_eq!(headers[1], "sandbox", "{name}");
        assert_eq!(headers[2], "nosniff", "{name}");
    }
    assert_no_alert(&bob).await;
    wait_text(&bob, "#status", |t| t.contains("Signed in as")).await;

    // Everything the customer does reaches the agent's panel.
    let inbox = desk
        .wait_inbox("the reply", |i| {
            i["messages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["text"] == "We are looking into it")
        })
        .await;
    let agent_mid = inbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["text"] == "We are looking into it")
        .unwrap()["mid"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_mid = sent["mid"].as_str().unwrap().to_owned();
    // A reaction, shown on the agent's message it reacts to.
    desk.sim(json!({"kind": "reaction", "mid": agent_mid, "text": "\u{1F44D}"}))
        .await;
    wait_text(&bob, ".line.Agent .reactions", |t| t.contains('\u{1F44D}')).await;
    // A quoted reply.
    desk.sim(json!({"kind": "reply", "mid": agent_mid, "text": "Thanks, which box?"}))
        .await;
    wait_text(&bob, ".line .quote", |t| {
        t.contains("We are looking into it")
    })
    .await;
    // An edit: the new text, marked edited, the earlier version kept.
    let question = desk
        .sim(json!({"kind": "text", "text": "Is it the red one?"}))
        .await;
    let question_mid = question["mid"].as_str().unwrap().to_owned();
    wait_text(&bob, "#transcript", |t| t.contains("Is it the red one?")).await;
    desk.sim(json!({"kind": "edit", "mid": question_mid, "text": "Is it the blue one?"}))
        .await;
    wait_text(&bob, "#transcript", |t| {
        t.contains("Is it the blue one?") && t.contains("edited (1)")
    })
    .await;
    // A message with words and a picture, removed by the customer: both its lines are
    // marked removed (the desk keeps what was removed, `keep_unsent` being on).
    let captioned = desk
        .sim(json!({"kind": "captioned", "text": "Here is my receipt"}))
        .await;
    let captioned_mid = captioned["mid"].as_str().unwrap().to_owned();
    wait_text(&bob, "#transcript", |t| t.contains("Here is my receipt")).await;
    desk.sim(json!({"kind": "unsend", "mid": captioned_mid}))
        .await;
    wait_text(&bob, "#transcript", |t| {
        t.matches("removed by the customer").count() >= 2
    })
    .await;
    let removed = page_eval(
        &bob,
        "return [...document.querySelectorAll('#transcript .line.removed')].map((l) => l.textContent.includes('Here is my receipt'));",
    )
    .await;
    assert_eq!(
        removed,
        json!([true, false]),
        "its words and its file marked"
    );
    // A reply from the Page inbox, with its author.
    desk.sim(json!({"kind": "inbox", "text": "Hi, this is the shop"}))
        .await;
    wait_text(&bob, "#transcript", |t| {
        t.contains("Page inbox: Hi, this is the shop")
    })
    .await;
    // Read receipts on the agent's messages.
    desk.sim(json!({"kind": "read"})).await;
    wait_text(&bob, ".line.Agent .receipt", |t| t.contains("Read")).await;
    // The agent reacts to the customer's first message.
    click(&bob, &format!(".react[data-mid='{first_mid}']")).await;
    desk.wait_inbox("the agent's reaction and the seen mark", |i| {
        let actions = i["actions"].as_array().unwrap();
        let reacted = actions.iter().any(|a| {
            a["sender_action"] == "react" && a["payload"]["message_id"] == first_mid.as_str()
        });
        reacted && actions.iter().any(|a| a["sender_action"] == "mark_seen")
    })
    .await;
    wait_text(&bob, ".line.Customer .reactions", |t| !t.is_empty()).await;
    // Every line says when; pictures are previewed; files download under their names; the
    // buttons are those an active conversation allows.
    let page = page_eval(
        &bob,
        "return [[...document.querySelectorAll('#transcript .line')].every((l) => /\\d\\d:\\d\\d/.test(l.querySelector('.time').textContent)), \
                 [...document.querySelectorAll('#transcript img.preview')].map((i) => i.alt), \
                 [...document.querySelectorAll('#transcript a[download]')].map((a) => a.getAttribute('download')), \
                 ['send', 'attach', 'end', 'close', 'revive'].map((id) => document.getElementById(id).disabled), \
                 document.getElementById('title').textContent];",
    )
    .await;
    assert_eq!(page[0], true, "a line without its time: {page}");
    assert!(
        page[1].as_array().unwrap().contains(&json!("label.png")),
        "{page}"
    );
    wait_eval(
        &bob,
        "return [...document.querySelectorAll('#transcript img.preview')].filter((i) => i.alt === 'label.png' && i.complete).map((i) => i.naturalWidth).join();",
        &json!("160"),
    )
    .await;
    assert!(
        page[2].as_array().unwrap().contains(&json!("label.png")),
        "{page}"
    );
    assert_eq!(page[3], json!([false, false, false, false, true]), "{page}");
    assert!(page[4].as_str().unwrap().contains("Dana Reyes"), "{page}");
    // The picture: an https URL in an <img> without a referrer (on a `.invalid` host, so it
    // is hidden when it fails to load).
    let picture = page_eval(
        &bob,
        "return [...document.querySelectorAll('#title img.avatar')].map((i) => [i.getAttribute('src'), i.referrerPolicy]);",
    )
    .await;
    assert_eq!(
        picture,
        json!([[
            "https://profile-pictures.invalid/dana-reyes.jpg",
            "no-referrer"
        ]]),
        "{picture}"
    );
    screenshot(&bob, "desk-conversation").await;

    // Hostile content stays text: a reaction and a link title that are markup, and a
    // `javascript:` link, neither run nor linked.
    let hostile = "<img src=x onerror=\"window.__xss=1\">";
    desk.sim(json!({"kind": "reaction", "mid": first_mid, "text": hostile}))
        .await;
    desk.sim(json!({"kind": "link", "text": hostile, "url": "javascript:window.__xss=1"}))
        .await;
    wait_text(&bob, "#transcript", |t| {
        t.matches("<img src=x").count() >= 2
    })
    .await;
    // (Pictures the desk keeps are previewed, class `preview`; no other image is made.)
    let state = page_eval(
        &bob,
        "return [typeof window.__xss, document.querySelectorAll('#transcript img:not(.sticker):not(.preview)').length, [...document.querySelectorAll('#transcript a')].filter((a) => /^\\s*javascript:/i.test(a.getAttribute('href') || '')).length];",
    )
    .await;
    assert_eq!(state, json!(["undefined", 0, 0]), "nothing ran or linked");

    // A reload keeps bob signed in, with his conversation.
    bob.refresh().await.unwrap();
    wait_text(&bob, "#status", |t| {
        t.contains("Signed in as Bob (bob, agent)")
    })
    .await;
    wait_text(&bob, "#transcript", |t| t.contains("Is it the blue one?")).await;

    // alice signs out: the page shows the sign-in form, and her session is gone.
    click(&alice, "#signout").await;
    wait_text(&alice, "#signin-error", |t| t.contains("Signed out")).await;
    let status = page_eval(&alice, "return fetch('/agent/me').then(r => r.status);").await;
    assert_eq!(status, 401);
    alice.refresh().await.unwrap();
    wait_text(&alice, "#signin", |t| t.contains("Sign in")).await;
    // bob is still signed in, in his own browser.
    let status = page_eval(&bob, "return fetch('/agent/me').then(r => r.status);").await;
    assert_eq!(status, 200);

    // No hostile script ran anywhere: no alert, and the canary was never loaded.
    assert_no_alert(&alice).await;
    assert_no_alert(&bob).await;
    let inbox = desk.inbox().await;
    assert_eq!(inbox["canary"], json!([]), "a hostile file's script ran");

    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

/// The receipt mark of the agent's line "Anything else?".
const HELD_BACK_RECEIPT: &str = "return [...document.querySelectorAll('#transcript .line.Agent')].filter((l) => l.textContent.includes('Anything else?')).map((l) => l.querySelector('.receipt').className).join();";

/// Phase two of the desk: it survives a reload mid-offer (the same offer, what is left of its
/// countdown) and a restart (presence, capacity in use and the agent's conversation come
/// back; the open page says it lost the desk, then reconnects by itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_survives_reloads_and_restarts() {
    if no_browser() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let desk = start_desk(&data, &[], &[]);
    let base = desk.base.clone();
    let port = base.rsplit(':').next().unwrap().to_owned();
    let password = desk.password.clone().expect("simulation prints a password");
    let (_driver, driver) = chromedriver();
    let downloads = work.path().join("downloads");
    let alice = browser(&driver, &work.path().join("profile-alice"), &downloads).await;
    sign_in(&alice, &base, "alice", &password).await;

    // An offer, then a reload mid-offer: the same offer, its countdown going on.
    desk.sim(json!({"kind": "text", "text": "Where is my order?"}))
        .await;
    let before = wait_text(&alice, "#offers .offer", |t| t.contains("Accept within")).await;
    let left = countdown(&before, "within ");
    alice.refresh().await.unwrap();
    wait_text(&alice, "#status", |t| t.contains("Signed in as Alice")).await;
    let after = wait_text(&alice, "#offers .offer", |t| {
        t.contains("Accept within") && t.contains("Dana Reyes")
    })
    .await;
    assert!(
        after.contains("Dana Reyes"),
        "the offer names the customer (the profile kept in the store): {after}"
    );
    let still = countdown(&after, "within ");
    assert!(
        still <= left && still > 0,
        "the countdown goes on: {left} then {still}"
    );

    // Accepted and answered; presence set to Busy.
    click(&alice, "#offers .offer .accept").await;
    wait_text(&alice, "#title", |t| t.contains("Active")).await;
    type_into(&alice, "#reply", "It left the warehouse today").await;
    click(&alice, "#send").await;
    desk.wait_inbox("the reply", |i| {
        i["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["text"] == "It left the warehouse today")
    })
    .await;
    alice
        .find(Locator::Css("#presence"))
        .await
        .unwrap()
        .select_by_value("busy")
        .await
        .unwrap();
    wait_text(&alice, "#agents", |t| t.contains("alice: Busy 1/10")).await;

    // The desk stops: the open page says so.
    drop(desk);
    wait_text(&alice, "#connection", |t| {
        t.contains("Connection to the desk lost")
    })
    .await;
    // What the page holds now is marked, to tell it from what the new desk sends.
    page_eval(&alice, "data.stale = true; return true;").await;

    // It starts again on the same data and port: the page reconnects by itself, and the
    // presence, the capacity in use and the conversation are as they were.
    let desk = start_desk(&data, &["--port", &port], &[]);
    assert_eq!(desk.base, base);
    // What the page shows now comes from the new desk: the banner goes when the event stream
    // is back, and a fresh list is fetched then (the list's time is the new desk's).
    wait_eval(
        &alice,
        "return getComputedStyle(document.getElementById('connection')).display;",
        &json!("none"),
    )
    .await;
    wait_eval(
        &alice,
        "return !data.stale && document.getElementById('agents').textContent;",
        &json!("alice: Busy 1/10"),
    )
    .await;
    wait_text(&alice, "#title", |t| t.contains("Active")).await;
    wait_text(&alice, "#transcript", |t| {
        t.contains("Where is my order?") && t.contains("It left the warehouse today")
    })
    .await;
    let presence = page_eval(&alice, "return document.getElementById('presence').value;").await;
    assert_eq!(presence, "busy");
    // A reload after the restart shows the same.
    alice.refresh().await.unwrap();
    wait_text(&alice, "#agents", |t| t.contains("alice: Busy 1/10")).await;
    wait_text(&alice, "#transcript", |t| {
        t.contains("It left the warehouse today")
    })
    .await;
    // And the customer's next message reaches the agent who holds the conversation.
    desk.sim(json!({"kind": "text", "text": "Thank you!"}))
        .await;
    wait_text(&alice, "#transcript", |t| t.contains("Thank you!")).await;

    // The page's token stops working: the page-health banner says so, and the reply waits,
    // marked as not sent yet (it fails once the conversation is closed, below).
    let r = desk
        .post("/sim/graph", &json!({"mode": "token"}), None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    type_into(&alice, "#reply", "Anything else?").await;
    click(&alice, "#send").await;
    wait_text(&alice, "#attention", |t| t.contains("needs attention")).await;
    wait_eval(&alice, HELD_BACK_RECEIPT, &json!("receipt sending")).await;

    // Ending it: only the actions wrap-up allows are enabled; closing it moves it to the
    // closed list, where it can still be read.
    click(&alice, "#end").await;
    wait_text(&alice, "#title", |t| t.contains("Wrap-up")).await;
    let enabled = page_eval(
        &alice,
        "return ['send', 'attach', 'end', 'close', 'revive'].map((id) => !document.getElementById(id).disabled);",
    )
    .await;
    assert_eq!(enabled, json!([false, false, false, true, false]));
    click(&alice, "#close").await;
    wait_text(&alice, "#closed", |t| t.contains("Dana Reyes")).await;
    click(&alice, "#closed li").await;
    wait_text(&alice, "#title", |t| t.contains("Closed")).await;
    wait_text(&alice, "#transcript", |t| t.contains("Thank you!")).await;
    wait_text(&alice, "#readonly", |t| t.contains("Read only")).await;
    // The token works again: the reply held back is not sent to a closed conversation, and
    // its line says so; the banner goes.
    let r = desk
        .post("/sim/graph", &json!({"mode": "ok"}), None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_text(&alice, "#transcript", |t| {
        t.contains("Not delivered: the conversation was closed")
    })
    .await;
    wait_eval(&alice, HELD_BACK_RECEIPT, &json!("receipt failed")).await;
    wait_eval(
        &alice,
        "return getComputedStyle(document.getElementById('attention')).display;",
        &json!("none"),
    )
    .await;

    // The customer writes again: a new conversation (alice is available again), whose
    // earlier one is readable.
    alice
        .find(Locator::Css("#presence"))
        .await
        .unwrap()
        .select_by_value("available")
        .await
        .unwrap();
    wait_text(&alice, "#agents", |t| t.contains("alice: Available 0/10")).await;
    desk.sim(json!({"kind": "text", "text": "One more question"}))
        .await;
    wait_text(&alice, "#offers .offer", |t| t.contains("Accept within")).await;
    click(&alice, "#offers .offer .accept").await;
    wait_text(&alice, "#transcript", |t| t.contains("One more question")).await;
    wait_text(&alice, "#history", |t| t.contains("Closed")).await;
    click(&alice, "#history li").await;
    wait_text(&alice, "#transcript", |t| t.contains("Where is my order?")).await;
    alice.close().await.unwrap();
}

/// The desk in Spanish, for an account whose language is `es`, with the queue view: the
/// offer, the states, the errors (a refused attachment, from the crate's catalogue) and the
/// crate's notices, in Spanish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spanish_desk_and_the_queue() {
    if no_browser() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    // A Spanish-speaking agent, made with the subcommand.
    let mut add = Command::new(desk_binary())
        .args([
            "add-agent",
            "lucia",
            "--display-name",
            "Lucía",
            "--language",
            "es",
            "--capacity",
            "2",
            "--data",
        ])
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin
        .take()
        .unwrap()
        .write_all(b"una clave bastante larga\n")
        .unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let desk = start_desk(&data, &[], &[]);
    let base = desk.base.clone();
    let (_driver, driver) = chromedriver();
    let downloads = work.path().join("downloads");
    // The browser asks for Spanish too: the sign-in page is Spanish before anyone signs in.
    let lucia = browser_in(
        &driver,
        &work.path().join("profile-lucia"),
        &downloads,
        "es-ES,es",
    )
    .await;
    lucia.goto(&format!("{base}/")).await.unwrap();
    wait_text(&lucia, "#simulation", |t| t.contains("Simulación")).await;
    wait_text(&lucia, "#signin", |t| t.contains("Iniciar sesión")).await;
    type_into(&lucia, "#agent-name", "lucia").await;
    type_into(&lucia, "#password", "una clave bastante larga").await;
    click(&lucia, "#signin").await;
    wait_text(&lucia, "#status", |t| {
        t.contains("Sesión iniciada como Lucía (lucia, agente)")
    })
    .await;

    // Three customers write; Lucía takes two (her capacity), the third waits in the queue.
    for (customer, text) in [
        ("5550000000004821", "Hola, ¿dónde está mi pedido?"),
        ("5550000000007316", "Quiero cambiar la dirección"),
    ] {
        desk.sim(json!({"kind": "text", "text": text, "customer": customer}))
            .await;
        let offer = wait_text(&lucia, "#offers .offer", |t| t.contains("Acepte en")).await;
        assert!(
            offer.contains(&format!("Usuario de Facebook ·{}", &customer[12..])),
            "{offer}"
        );
        click(&lucia, "#offers .offer .accept").await;
        wait_text(&lucia, "#conversations", |t| {
            t.contains(&format!("·{} — Activa", &customer[12..]))
        })
        .await;
    }
    desk.sim(
        json!({"kind": "text", "text": "¿Tienen la talla M?", "customer": "5550000000009054"}),
    )
    .await;
    wait_text(&lucia, "#queue", |t| {
        t.contains("Usuario de Facebook ·9054") && t.contains("esperando")
    })
    .await;
    wait_text(&lucia, "#queue-title", |t| t.contains("Cola (1 en espera)")).await;
    let offers = page_eval(
        &lucia,
        "return document.querySelectorAll('#offers .offer').length;",
    )
    .await;
    assert_eq!(offers, 0, "no offer past her capacity");
    screenshot(&lucia, "desk-queue-es").await;

    // A conversation in Spanish: a reply, an empty reply and a refused file (the crate's
    // words), the crate's notices, the customer's refused file.
    click(&lucia, "#conversations li").await;
    wait_text(&lucia, "#title", |t| t.contains("Conversación con")).await;
    type_into(&lucia, "#reply", "Lo reviso ahora mismo").await;
    click(&lucia, "#send").await;
    desk.wait_inbox("the reply", |i| {
        i["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["text"] == "Lo reviso ahora mismo")
    })
    .await;
    type_into(&lucia, "#reply", " ").await;
    click(&lucia, "#send").await;
    wait_text(&lucia, "#error", |t| {
        t.contains("Escriba un mensaje antes de enviar")
    })
    .await;
    let exe = work.path().join("herramienta.exe");
    std::fs::write(&exe, b"MZ\x90\x00\x03\x00\x00\x00").unwrap();
    upload_refused(&lucia, &exe, |t| {
        t.contains("Los archivos de tipo .exe están bloqueados")
    })
    .await;
    wait_text(&lucia, "#transcript", |t| {
        t.contains("lucia aceptó la conversación") && t.contains("Cliente: ")
    })
    .await;
    // The customer's refused file: Omnichannel's error and the policy's reason, in Spanish.
    desk.sim(json!({"kind": "unsupported", "customer": "5550000000004821"}))
        .await;
    wait_text(&lucia, "#transcript", |t| {
        t.contains("el cliente envió un tipo de mensaje no admitido (setup.exe)")
            && t.contains("Los archivos de tipo .exe están bloqueados")
    })
    .await;
    // The customer's picture, previewed (the desk keeps a copy, and serves it inline).
    desk.sim(json!({"kind": "picture", "customer": "5550000000004821"}))
        .await;
    wait_eval(
        &lucia,
        "const i = document.querySelector('#transcript img.preview'); return !!i && i.complete && i.naturalWidth;",
        &json!(160),
    )
    .await;
    // Over HTTP too, for a Spanish browser that is not signed in.
    let r = desk
        .get("/agent/me", None)
        .header("accept-language", "es")
        .send()
        .await
        .unwrap();
    let words = json_error(r, 401, "not signed in, in Spanish").await;
    assert!(words.contains("Inicie sesión de nuevo"), "{words}");
    screenshot(&lucia, "desk-conversation-es").await;
    // The transfer dialog in Spanish: bob (a demo account) is busy - do not disturb.
    let password = desk.password.clone().expect("simulation prints a password");
    let (_, bob) = desk.sign_in("bob", &password).await;
    let r = desk
        .post("/agent/presence", &json!({"presence": "dnd"}), bob.as_ref())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    click(&lucia, "#transfer").await;
    wait_eval(
        &lucia,
        TRANSFER_TARGETS,
        &json!([
            [
                "No disponibles ahora (aún se puede transferir)",
                [[
                    "agent:bob",
                    "Bob — Ocupado - No molestar, 10 de 10 libres",
                    "not-ready"
                ]]
            ],
            [
                "Colas",
                [
                    ["queue:default", "Cola General", "queue"],
                    ["queue:sales", "Cola Sales", "queue"]
                ]
            ],
        ]),
    )
    .await;
    lucia.close().await.unwrap();
}

/// The transfer dialog's groups, each with its options: value, text, class.
const TRANSFER_TARGETS: &str = "return [...document.querySelectorAll('#transfer-target optgroup')].map(g => [g.label, [...g.children].map(o => [o.value, o.textContent, o.className])]);";

/// Working together, in three browser sessions: alice picks a conversation from the Pick
/// queue; bob transfers one to alice with a note (her page shows the transfer notification,
/// she accepts, the transcript shows the internal transfer line); alice consults bob, who
/// writes an internal note and leaves; internal lines never reach the customer; alice is
/// refused the supervisor's routes; sam, the supervisor, sees every queue, assigns a waiting
/// conversation to bob, watches one live while the customer writes, and force-closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pick_transfer_and_a_supervisor_in_the_browser() {
    if no_browser() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let desk = start_desk(&work.path().join("data"), &[], &[]);
    let base = desk.base.clone();
    let password = desk.password.clone().expect("simulation prints a password");
    let (_driver, driver) = chromedriver();
    let downloads = work.path().join("downloads");
    let alice = browser(&driver, &work.path().join("profile-alice"), &downloads).await;
    let bob = browser(&driver, &work.path().join("profile-bob"), &downloads).await;
    sign_in(&alice, &base, "alice", &password).await;
    sign_in(&bob, &base, "bob", &password).await;

    // Pick: a customer asks about prices, so the conversation waits in the Sales queue
    // (Pick): offered to nobody, listed to both agents with its wait, picked by alice.
    desk.sim(json!({"kind": "text", "text": "What is the price of the red bike?", "customer": "5550000000002222"}))
        .await;
    for page in [&alice, &bob] {
        wait_text(page, "#pick", |t| {
            t.contains("·2222") && t.contains("in Sales") && t.contains("waiting")
        })
        .await;
        wait_text(page, "#pick-title", |t| t.contains("Open work items (1)")).await;
    }
    assert_eq!(
        page_eval(
            &alice,
            "return document.querySelectorAll('#offers .offer').length;"
        )
        .await,
        0,
        "a Pick queue offers nothing"
    );
    wait_eval(
        &alice,
        "return document.querySelector('#pick li button.pick').disabled;",
        &json!(false),
    )
    .await;
    screenshot(&alice, "desk-pick").await;
    click(&alice, "#pick li button.pick").await;
    wait_text(&alice, "#conversations", |t| t.contains("·2222 — Active")).await;
    wait_text(&alice, "#title", |t| {
        t.contains("·2222") && t.contains("Active")
    })
    .await;
    wait_text(&alice, "#transcript", |t| {
        t.contains("What is the price of the red bike?")
    })
    .await;
    // Gone from every Pick list.
    for page in [&alice, &bob] {
        wait_text(page, "#pick", |t| t.contains("Nothing to pick.")).await;
    }

    // Transfer: Dana writes; the least loaded agent, bob, is offered it and accepts.
    desk.sim(json!({"kind": "text", "text": "Hello, my parcel is late"}))
        .await;
    wait_text(&bob, "#offers .offer", |t| t.contains("Dana Reyes")).await;
    click(&bob, "#offers .offer .accept").await;
    wait_text(&bob, "#title", |t| {
        t.contains("Dana Reyes") && t.contains("Active")
    })
    .await;
    // The buttons say what is possible: bob holds it, so he may transfer and consult, and
    // there is nothing to leave.
    wait_eval(
        &bob,
        "return ['transfer', 'consult', 'leave', 'add-note'].map(id => document.getElementById(id).disabled);",
        &json!([false, false, true, false]),
    )
    .await;
    // An internal note first: marked as internal, never sent.
    type_into(&bob, "#note", "Parcel 1234 left the depot on Monday").await;
    click(&bob, "#add-note").await;
    wait_text(&bob, "#transcript .line.internal", |t| {
        t.contains("Internal") && t.contains("Parcel 1234 left the depot on Monday")
    })
    .await;
    // Sam signs in elsewhere and is away: the dialog lists whom it can go to with their
    // presence and capacity free, alice (available, one conversation of ten) first, sam
    // apart and marked (a transfer to him would still be allowed), then the queues.
    let (r, sam_http) = desk.sign_in("sam", &password).await;
    assert_eq!(r.status(), 200);
    let r = desk
        .post(
            "/agent/presence",
            &json!({"presence": "away"}),
            sam_http.as_ref(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    click(&bob, "#transfer").await;
    wait_eval(
        &bob,
        "return getComputedStyle(document.getElementById('transfer-dialog')).display;",
        &json!("flex"),
    )
    .await;
    wait_eval(
        &bob,
        TRANSFER_TARGETS,
        &json!([
            [
                "Available, with capacity free",
                [["agent:alice", "Alice — Available, 9 of 10 free", "ready"]]
            ],
            [
                "Not available now (transfer still possible)",
                [[
                    "agent:sam",
                    "Sam (supervisor) — Away, 10 of 10 free",
                    "not-ready"
                ]]
            ],
            [
                "Queues",
                [
                    ["queue:default", "Queue General", "queue"],
                    ["queue:sales", "Queue Sales", "queue"]
                ]
            ],
        ]),
    )
    .await;
    // Names are filled in once: a display name that looks like a placeholder stays as it is.
    assert_eq!(
        page_eval(
            &bob,
            "return t('target_agent', {name: '{presence} {free}', presence: 'Away', free: 1, capacity: 2});",
        )
        .await,
        "{presence} {free} — Away, 1 of 2 free"
    );
    // Marked visibly: the others are not written as the available ones are.
    assert_eq!(
        page_eval(
            &bob,
            "const [ready, other] = ['agent:alice', 'agent:sam'].map(v => getComputedStyle(document.querySelector(`#transfer-target option[value='${v}']`)).color); return ready !== other;",
        )
        .await,
        true
    );
    page_eval(
        &bob,
        "document.getElementById('transfer-target').value = 'agent:alice'; return true;",
    )
    .await;
    type_into(&bob, "#transfer-note", "VIP, wants a refund").await;
    click(&bob, "#transfer-confirm").await;
    // bob no longer holds it.
    wait_text(&bob, "#conversations", |t| !t.contains("Dana Reyes")).await;
    // alice gets Omnichannel's transfer notification: who, and the note, with the countdown.
    let offer = wait_text(&alice, "#offers .offer", |t| {
        t.contains("Dana Reyes") && t.contains("Transferred to you by bob")
    })
    .await;
    assert!(offer.contains("Note: VIP, wants a refund"), "{offer}");
    assert!(offer.contains("Accept within"), "{offer}");
    screenshot(&alice, "desk-transfer").await;
    click(&alice, "#offers .offer .accept").await;
    // Accepted, it is the conversation shown.
    wait_text(&alice, "#title", |t| {
        t.contains("Dana Reyes") && t.contains("Active")
    })
    .await;
    wait_text(&alice, "#transcript", |t| {
        t.contains("Agent bob: transferred the conversation to alice — note: VIP, wants a refund")
            && t.contains("Parcel 1234 left the depot on Monday")
    })
    .await;
    // The transfer line is marked internal; nothing internal reached the customer.
    let internal = page_eval(
        &alice,
        "return [...document.querySelectorAll('#transcript .line.internal')].map(l => l.textContent).join('\\n');",
    )
    .await;
    let internal = internal.as_str().unwrap_or("").to_owned();
    assert!(
        internal.contains("transferred the conversation to alice"),
        "{internal}"
    );
    let inbox = desk.inbox().await;
    let sent = inbox.to_string();
    assert!(
        !sent.contains("VIP") && !sent.contains("Parcel 1234") && !sent.contains("Refund"),
        "an internal line reached the customer: {inbox}"
    );

    // Consult: alice invites bob, who reads the conversation under Consulting and writes
    // internal notes only, then leaves.
    click(&alice, "#consult").await;
    wait_eval(
        &alice,
        "return [...document.querySelectorAll('#consult-agent option')].map(o => o.value).includes('bob');",
        &json!(true),
    )
    .await;
    page_eval(
        &alice,
        "document.getElementById('consult-agent').value = 'bob'; return true;",
    )
    .await;
    click(&alice, "#consult-confirm").await;
    wait_text(&bob, "#consulting", |t| {
        t.contains("Dana Reyes — with alice")
    })
    .await;
    click(&bob, "#consulting li[data-id]").await;
    wait_text(&bob, "#consult-info", |t| t.contains("You are consulted")).await;
    wait_eval(
        &bob,
        "return ['send', 'reply', 'transfer', 'end', 'leave', 'add-note'].map(id => document.getElementById(id).disabled);",
        &json!([true, true, true, true, false, false]),
    )
    .await;
    type_into(&bob, "#note", "Refund approved last week").await;
    click(&bob, "#add-note").await;
    wait_text(&alice, "#transcript", |t| {
        t.contains("Agent alice: invited bob to consult")
            && t.contains("Agent bob: Refund approved last week")
    })
    .await;
    click(&bob, "#leave").await;
    wait_text(&bob, "#consulting", |t| t.contains("None yet.")).await;
    wait_text(&alice, "#transcript", |t| {
        t.contains("Agent bob: left the consult")
    })
    .await;

    // A plain agent is refused the supervisor's routes, from her own page too.
    let status = page_eval(
        &alice,
        "return Promise.all([fetch('/supervisor/overview').then(r => r.status), fetch('/supervisor/close', {method: 'POST', headers: {'content-type': 'application/json'}, body: JSON.stringify({conversation: 'c1'})}).then(r => r.status)]);",
    )
    .await;
    assert_eq!(status, json!([403, 403]));
    assert_eq!(
        page_eval(
            &alice,
            "return getComputedStyle(document.getElementById('supervisor-section')).display;"
        )
        .await,
        "none"
    );

    // The supervisor: every queue's work, with who holds what.
    let sam = browser(&driver, &work.path().join("profile-sam"), &downloads).await;
    sign_in(&sam, &base, "sam", &password).await;
    let overview = wait_text(&sam, "#supervisor", |t| {
        t.contains("General: 0 waiting, 1 active")
            && t.contains("Sales: 0 waiting, 1 active")
            && t.contains("Dana Reyes — Active — with alice")
            && t.contains("·2222 — Active — with alice")
    })
    .await;
    assert!(overview.contains("Watch"), "{overview}");
    // Assign: another customer waits in the Sales queue; sam gives the conversation to bob.
    desk.sim(json!({"kind": "text", "text": "I would like to buy a helmet", "customer": "5550000000003333"}))
        .await;
    wait_text(&sam, "#supervisor", |t| {
        t.contains("Sales: 1 waiting, 1 active") && t.contains("·3333 — waiting")
    })
    .await;
    page_eval(
        &sam,
        "const li = [...document.querySelectorAll('#supervisor li')].find(li => li.textContent.includes('·3333')); const s = li.querySelector('select.assign-agent'); s.value = 'bob'; s.dispatchEvent(new Event('change')); li.querySelector('button.assign').click(); return true;",
    )
    .await;
    wait_text(&bob, "#conversations", |t| t.contains("·3333 — Active")).await;
    wait_text(&sam, "#supervisor", |t| {
        t.contains("Sales: 0 waiting, 2 active") && t.contains("·3333 — Active — with bob")
    })
    .await;

    // Watch Dana's conversation live: read only (internal notes only), the internal lines
    // shown.
    page_eval(
        &sam,
        "[...document.querySelectorAll('#supervisor li')].find(li => li.textContent.includes('Dana Reyes')).querySelector('button.watch').click(); return true;",
    )
    .await;
    wait_text(&sam, "#watching", |t| t.contains("Watching live")).await;
    wait_text(&sam, "#transcript", |t| {
        t.contains("Hello, my parcel is late")
            && t.contains("transferred the conversation to alice")
    })
    .await;
    wait_eval(
        &sam,
        "return ['send', 'reply', 'end', 'transfer', 'force-close', 'add-note'].map(id => document.getElementById(id).disabled);",
        &json!([true, true, true, true, false, false]),
    )
    .await;
    // The customer writes: it appears on the supervisor's screen as it comes.
    desk.sim(json!({"kind": "text", "text": "Any news about my parcel?"}))
        .await;
    wait_text(&sam, "#transcript", |t| {
        t.contains("Any news about my parcel?")
    })
    .await;
    screenshot(&sam, "desk-supervisor").await;
    // Force close: the conversation is closed for everyone, and says who closed it.
    click(&sam, "#force-close").await;
    wait_text(&sam, "#title", |t| {
        t.contains("Dana Reyes") && t.contains("Closed")
    })
    .await;
    wait_text(&sam, "#transcript", |t| {
        t.contains("Supervisor sam: closed the conversation")
    })
    .await;
    wait_text(&sam, "#supervisor", |t| {
        t.contains("General: 0 waiting, 0 active") && !t.contains("Dana Reyes")
    })
    .await;
    wait_eval(
        &sam,
        "return document.getElementById('force-close').disabled;",
        &json!(true),
    )
    .await;
    wait_text(&alice, "#conversations", |t| !t.contains("Dana Reyes")).await;
    let inbox = desk.inbox().await.to_string();
    for internal in [
        "VIP",
        "Parcel 1234",
        "Refund approved",
        "closed the conversation",
    ] {
        assert!(
            !inbox.contains(internal),
            "{internal} reached the customer: {inbox}"
        );
    }
    assert_no_alert(&sam).await;
    for c in [alice, bob, sam] {
        c.close().await.unwrap();
    }
}

/// The page's presence control and its notice: `[presence, notice, not reloaded]`.
const PRESENCE_SHOWN: &str = "return [document.getElementById('presence').value, document.getElementById('presence-notice').textContent, window.notReloaded === true];";

/// Omnichannel's presence side effects, shown at once: the desk runs with
/// `--presence-after-rejected-offer dnd` and `--presence-after-missed-offer away`. alice rejects
/// an offer, and her open page shows Busy - DND in its presence control, with a notice; bob,
/// whose browser asks for Spanish, lets the next offer lapse, and his shows Away with the
/// notice in Spanish. Neither page is reloaded; choosing a presence clears the notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_or_missed_offer_sets_the_presence_the_page_shows() {
    if no_browser() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    // The offer waits 20 s: ample for alice's click on a loaded machine, and what bob's
    // lapse takes.
    let desk = start_desk(
        &work.path().join("data"),
        &[
            "--offer-timeout",
            "20",
            "--presence-after-rejected-offer",
            "dnd",
            "--presence-after-missed-offer",
            "away",
        ],
        &[],
    );
    let base = desk.base.clone();
    let password = desk.password.clone().expect("simulation prints a password");
    let (_driver, driver) = chromedriver();
    let downloads = work.path().join("downloads");
    let alice = browser(&driver, &work.path().join("profile-alice"), &downloads).await;
    sign_in(&alice, &base, "alice", &password).await;
    let bob = browser_in(
        &driver,
        &work.path().join("profile-bob"),
        &downloads,
        "es-ES,es",
    )
    .await;
    bob.goto(&format!("{base}/")).await.unwrap();
    wait_text(&bob, "#signin", |t| t.contains("Iniciar sesión")).await;
    type_into(&bob, "#agent-name", "bob").await;
    type_into(&bob, "#password", &password).await;
    click(&bob, "#signin").await;
    wait_text(&bob, "#status", |t| t.contains("Sesión iniciada como Bob")).await;
    // A mark a reload would lose.
    for page in [&alice, &bob] {
        page_eval(page, "window.notReloaded = true; return true;").await;
        wait_eval(page, PRESENCE_SHOWN, &json!(["available", "", true])).await;
    }

    // Offered to alice first (least loaded, then by name); she rejects it: Busy - DND, on
    // her page at once, with the notice.
    desk.sim(json!({"kind": "text", "text": "Is anyone there?"}))
        .await;
    wait_text(&alice, "#offers .offer", |t| t.contains("Accept within")).await;
    click(&alice, "#offers .offer .reject").await;
    wait_eval(
        &alice,
        PRESENCE_SHOWN,
        &json!([
            "dnd",
            "Your presence was set to Busy - DND after a missed or declined offer.",
            true
        ]),
    )
    .await;
    wait_text(&alice, "#agents", |t| t.contains("alice: Busy - DND")).await;

    // Then to bob, who lets it lapse: Away, on his page, in Spanish.
    wait_text(&bob, "#offers .offer", |t| t.contains("Acepte en")).await;
    wait_eval(
        &bob,
        PRESENCE_SHOWN,
        &json!([
            "away",
            "Su presencia se cambió a Ausente tras una oferta perdida o rechazada.",
            true
        ]),
    )
    .await;
    wait_text(&bob, "#agents", |t| t.contains("bob: Ausente")).await;
    // Each page told only of its own agent's presence.
    assert_eq!(
        page_eval(&alice, PRESENCE_SHOWN).await,
        json!([
            "dnd",
            "Your presence was set to Busy - DND after a missed or declined offer.",
            true
        ])
    );

    // bob chooses a presence: the notice goes, and the desk has his choice.
    bob.find(Locator::Css("#presence"))
        .await
        .unwrap()
        .select_by_value("available")
        .await
        .unwrap();
    wait_eval(&bob, PRESENCE_SHOWN, &json!(["available", "", true])).await;
    wait_text(&bob, "#agents", |t| t.contains("bob: Disponible")).await;
    assert_no_alert(&alice).await;
    for c in [alice, bob] {
        c.close().await.unwrap();
    }
}
