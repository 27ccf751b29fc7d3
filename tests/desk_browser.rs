//! The agent desk end to end in a real, headless Chromium driven through chromedriver
//! (WebDriver): two agents sign in, each in a tab; the simulated customer writes; the first
//! agent's page shows the offer and rejects it; it moves to the second agent's page, where the
//! test clicks Accept, sends a reply and a file, checks the simulated customer received both,
//! then tries a blocked file and checks the error shown in the panel.
//!
//! `.ci/run` installs Debian's `chromium` and `chromium-driver`; elsewhere, without
//! `/usr/bin/chromedriver`, the test prints a loud skip message.
#![cfg(all(feature = "axum", feature = "sqlite", feature = "graph"))]
// One scenario, told in order.
#![allow(clippy::too_many_lines)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

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

/// The desk example's binary, built by `cargo test` next to this test's.
fn desk_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap();
    target
        .join("examples")
        .join(format!("desk{}", std::env::consts::EXE_SUFFIX))
}

/// Starts the desk on a free port; returns its base URL.
fn start_desk(data: &std::path::Path) -> (Guard, String) {
    let mut child = Command::new(desk_binary())
        .args(["--port", "0", "--data"])
        .arg(data)
        .env_remove("PAGE_ACCESS_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the desk example is built (cargo test builds examples)");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    // Keep reading, so the desk never writes into a closed pipe.
    std::thread::spawn(move || for _ in stdout.lines() {});
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("the desk prints its address")
        .trim_end_matches('/')
        .to_owned();
    (Guard(child), base)
}

struct Driver {
    http: reqwest::Client,
    url: String,
}

impl Driver {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let response = self.try_call(method, path, body).await;
        response.unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A `WebDriver` command; `Err` with the driver's answer when it reports an error.
    async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response: Value = request.send().await.unwrap().json().await.unwrap();
        if response["value"].get("error").is_some() {
            Err(response)
        } else {
            Ok(response["value"].clone())
        }
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    async fn find(&self, css: &str) -> Option<String> {
        let response: Value = self
            .http
            .post(format!("{}/element", self.url))
            .json(&json!({"using": "css selector", "value": css}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        response["value"][ELEMENT].as_str().map(str::to_owned)
    }

    /// Waits (up to a generous deadline) for an element whose text satisfies `ok`.
    async fn wait_text(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(id) = self.find(css).await {
                // The page re-renders: an element found may be gone a moment later.
                if let Ok(text) = self
                    .try_call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
                    .await
                {
                    let text = text.as_str().unwrap_or("").to_owned();
                    if ok(&text) {
                        return text;
                    }
                }
            }
            assert!(Instant::now() < deadline, "timed out waiting for {css}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens a new tab and switches to it; returns the handle of the tab left.
    async fn new_tab(&self) -> String {
        let current = self.call(reqwest::Method::GET, "/window", None).await;
        let tab = self
            .call(
                reqwest::Method::POST,
                "/window/new",
                Some(json!({"type": "tab"})),
            )
            .await;
        self.switch(tab["handle"].as_str().unwrap()).await;
        current.as_str().unwrap().to_owned()
    }

    async fn switch(&self, handle: &str) {
        self.call(
            reqwest::Method::POST,
            "/window",
            Some(json!({"handle": handle})),
        )
        .await;
    }

    /// Clicks the element, finding it again if the page re-rendered it meanwhile.
    async fn click(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(id) = self.find(css).await {
                let clicked = self
                    .try_call(
                        reqwest::Method::POST,
                        &format!("/element/{id}/click"),
                        Some(json!({})),
                    )
                    .await;
                if clicked.is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "could not click {css}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await.unwrap_or_else(|| panic!("no {css}"));
        if !css.contains("file") {
            self.call(
                reqwest::Method::POST,
                &format!("/element/{id}/clear"),
                Some(json!({})),
            )
            .await;
        }
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }
}

async fn wait_inbox(http: &reqwest::Client, base: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let inbox: Value = http
            .get(format!("{base}/sim/inbox"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if inbox["messages"].as_array().unwrap().iter().any(&ok) {
            return inbox;
        }
        assert!(
            Instant::now() < deadline,
            "the simulated customer never received it: {inbox}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_desk_in_a_real_browser() {
    if !std::path::Path::new(CHROMEDRIVER).exists() {
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
    let (_desk, base) = start_desk(&work.path().join("data"));
    let port = free_port();
    let _driver = Guard(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let driver_url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http
        .get(format!("{driver_url}/status"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = work.path().join("profile");
    let session: Value = http
        .post(format!("{driver_url}/session"))
        .json(&json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     format!("--user-data-dir={}", profile.display())]
        }}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = session["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("{session}"));
    let d = Driver {
        http: http.clone(),
        url: format!("{driver_url}/session/{id}"),
    };

    // Two agents sign in, each in a tab of their own.
    d.goto(&format!("{base}/")).await;
    d.type_into("#agent-name", "alice").await;
    d.click("#signin").await;
    d.wait_text("#status", |t| t.contains("Signed in as alice"))
        .await;
    let alice_tab = d.new_tab().await;
    let bob_tab = d.call(reqwest::Method::GET, "/window", None).await;
    let bob_tab = bob_tab.as_str().unwrap().to_owned();
    d.goto(&format!("{base}/")).await;
    d.type_into("#agent-name", "bob").await;
    d.click("#signin").await;
    d.wait_text("#status", |t| t.contains("Signed in as bob"))
        .await;

    // The simulated customer writes; the offer appears with its countdown.
    let sent: Value = http
        .post(format!("{base}/sim/send"))
        .json(&json!({"kind": "text", "text": "Hello, my parcel is late"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent["status"], 200, "{sent}");
    // It is offered to alice first (least loaded, then by name); she rejects it, and the offer
    // moves to bob's screen.
    d.switch(&alice_tab).await;
    d.wait_text("#offers .offer", |t| t.contains("Accept within"))
        .await;
    d.click("#offers .offer .reject").await;
    d.switch(&bob_tab).await;
    let offer = d
        .wait_text("#offers .offer", |t| t.contains("Accept within"))
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
    d.click("#offers .offer .accept").await;
    d.wait_text("#title", |t| t.contains("Active")).await;
    d.wait_text("#transcript", |t| t.contains("Hello, my parcel is late"))
        .await;
    d.type_into("#reply", "We are looking into it").await;
    d.click("#send").await;
    wait_inbox(&http, &base, |m| m["text"] == "We are looking into it").await;

    // A file.
    let png = work.path().join("label.png");
    std::fs::write(&png, include_bytes!("../examples/sample/logo.png")).unwrap();
    d.type_into("#file", png.to_str().unwrap()).await;
    d.click("#attach").await;
    wait_inbox(&http, &base, |m| m["file"]["name"] == "label.png").await;
    d.wait_text("#transcript", |t| t.contains("label.png"))
        .await;

    // A blocked file: the panel says why, and nothing leaves.
    let exe = work.path().join("tool.exe");
    std::fs::write(&exe, b"MZ\x90\x00\x03\x00\x00\x00").unwrap();
    d.type_into("#file", exe.to_str().unwrap()).await;
    d.click("#attach").await;
    d.wait_text("#error", |t| t.contains("Files of type .exe are blocked"))
        .await;

    // The customer sends an unsupported file: the agent sees Omnichannel's error.
    http.post(format!("{base}/sim/send"))
        .json(&json!({"kind": "unsupported"}))
        .send()
        .await
        .unwrap();
    d.wait_text("#transcript", |t| {
        t.contains("Customer sent an unsupported message type")
    })
    .await;

    // Everything the customer does reaches the agent's panel.
    let inbox = wait_inbox(&http, &base, |m| m["text"] == "We are looking into it").await;
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
    let sim = |body: Value| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let r: Value = http
                .post(format!("{base}/sim/send"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(r["status"], 200, "{r}");
            r
        }
    };
    // A reaction, shown on the agent's message it reacts to.
    sim(json!({"kind": "reaction", "mid": agent_mid, "text": "\u{1F44D}"})).await;
    d.wait_text(".line.Agent .reactions", |t| t.contains('\u{1F44D}'))
        .await;
    // A quoted reply.
    sim(json!({"kind": "reply", "mid": agent_mid, "text": "Thanks, which box?"})).await;
    d.wait_text(".line .quote", |t| t.contains("We are looking into it"))
        .await;
    // An edit: the new text, marked edited, the earlier version kept.
    let question = sim(json!({"kind": "text", "text": "Is it the red one?"})).await;
    let question_mid = question["mid"].as_str().unwrap().to_owned();
    d.wait_text("#transcript", |t| t.contains("Is it the red one?"))
        .await;
    sim(json!({"kind": "edit", "mid": question_mid, "text": "Is it the blue one?"})).await;
    d.wait_text("#transcript", |t| {
        t.contains("Is it the blue one?") && t.contains("edited (1)")
    })
    .await;
    // A reply from the Page inbox, with its author.
    sim(json!({"kind": "inbox", "text": "Hi, this is the shop"})).await;
    d.wait_text("#transcript", |t| {
        t.contains("Page inbox: Hi, this is the shop")
    })
    .await;
    // Read receipts on the agent's messages.
    sim(json!({"kind": "read"})).await;
    d.wait_text(".line.Agent .receipt", |t| t.contains("Read"))
        .await;
    // The agent reacts to the customer's first message.
    d.click(&format!(".react[data-mid='{first_mid}']")).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let inbox: Value = http
            .get(format!("{base}/sim/inbox"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let actions = inbox["actions"].as_array().unwrap();
        let reacted = actions.iter().any(|a| {
            a["sender_action"] == "react" && a["payload"]["message_id"] == first_mid.as_str()
        });
        let seen = actions.iter().any(|a| a["sender_action"] == "mark_seen");
        if reacted && seen {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent's reaction (and the seen mark) never reached Messenger: {inbox}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    d.wait_text(".line.Customer .reactions", |t| !t.is_empty())
        .await;

    // Hostile content stays text: a reaction and a link title that are markup, and a
    // `javascript:` link, neither run nor linked.
    let hostile = "<img src=x onerror=\"window.__xss=1\">";
    sim(json!({"kind": "reaction", "mid": first_mid, "text": hostile})).await;
    sim(json!({"kind": "link", "text": hostile, "url": "javascript:window.__xss=1"})).await;
    d.wait_text("#transcript", |t| t.matches("<img src=x").count() >= 2)
        .await;
    let state = d
        .call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({
                "script": "return [typeof window.__xss, document.querySelectorAll('#transcript img:not(.sticker)').length, [...document.querySelectorAll('#transcript a')].filter((a) => /^\\s*javascript:/i.test(a.getAttribute('href') || '')).length];",
                "args": []
            })),
        )
        .await;
    assert_eq!(state, json!(["undefined", 0, 0]), "nothing ran or linked");

    d.call(reqwest::Method::DELETE, "", None).await;
}
