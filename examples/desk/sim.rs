//! Simulation mode: the simulated customer's page and actions (signed webhooks to this desk's
//! own `/webhook`), and the fake Graph API that receives the agents' sends and echoes them as
//! Meta does.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use messenger_channel::ids::{AppId, PageId};
use messenger_channel::send::MediaKind;
use messenger_channel::webhook::WebhookBody;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::web::{JsonBody, error_response};
use crate::{Desk, Shared, unix_ms, web};

const SIM_PAGE: &str = "100000000000001";
const SIM_CUSTOMER: &str = "5550000000000001";
/// The simulated customer's profile: a name, and a picture on a host that never resolves
/// (`.invalid`), so that simulation never reaches Facebook's CDN.
const SIM_CUSTOMER_NAME: (&str, &str) = ("Dana", "Reyes");
const SIM_CUSTOMER_PICTURE: &str = "https://profile-pictures.invalid/dana-reyes.jpg";
/// The app secret the simulated customer signs with (simulation only; `--real` needs the real
/// one).
pub(crate) const SIM_SECRET: &str = "desk-simulation-secret";
pub(crate) const SIM_VERIFY: &str = "desk-simulation";

/// What the simulated customer sees and can send.
#[derive(Default)]
pub(crate) struct Simulation {
    /// Messages the page sent to the customer (through the fake Graph endpoint).
    inbox: Vec<Value>,
    /// Files the page sent, by number.
    files: Vec<(String, String, Vec<u8>)>,
    /// The last webhook body, for redelivery.
    last_body: Option<WebhookBody>,
    next: u64,
    /// How the simulated Graph API answers sends: `ok`, `down` (HTTP 503, retried) or
    /// `token` (error 190: the page needs attention), to try the desk under failures.
    graph: String,
    /// Sender actions the page sent (reactions, seen marks, typing), as the Graph API got them.
    actions: Vec<Value>,
    /// The id of the customer's last simulated message.
    last_in: Option<String>,
    /// Loads of `/sim/canary`: a hostile file's script ran somewhere (never, we hope).
    canary: Vec<String>,
}

pub(crate) async fn customer_page() -> Response {
    web::page(include_str!("customer.html"))
}

pub(crate) fn sim_files() -> HashMap<&'static str, (&'static str, &'static [u8])> {
    HashMap::from([
        ("photo.png", ("image/png", &include_bytes!("../sample/photo.png")[..])),
        ("invoice.pdf", ("application/pdf", &b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"[..])),
        ("setup.exe", ("application/octet-stream", &b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00\xb8\x00\x00\x00"[..])),
        // Hostile files: were they ever run in the desk's origin, they would alert and load
        // the canary (`/sim/canary`), which the simulation records.
        ("drawing.svg", ("image/svg+xml", &b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert('svg')\"><script>alert('svg');new Image().src='/sim/canary?from=svg'</script><circle r=\"9\"/></svg>"[..])),
        ("page.html", ("text/html", &b"<!doctype html><html><body><script>alert('html');new Image().src='/sim/canary?from=html'</script>Hello</body></html>"[..])),
    ])
}

pub(crate) async fn sim_file(Path(name): Path<String>) -> Response {
    match sim_files().get(name.as_str()) {
        Some((mime, bytes)) => ([(header::CONTENT_TYPE, *mime)], *bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct SimSend {
    kind: String,
    text: Option<String>,
    /// The message a reaction, reply, edit or removal is about.
    mid: Option<String>,
    /// A shared link's URL (`link`).
    url: Option<String>,
    /// Another simulated customer's id (digits; `text` and the customer's events), to fill
    /// the queue.
    customer: Option<String>,
}

/// Posts a webhook body, signed, to this server's own `/webhook`, as Meta would.
pub(crate) async fn deliver(desk: &Desk, body: &WebhookBody) -> Result<u16, String> {
    let signed = body.sign(&desk.secret);
    let response = desk
        .http
        .post(format!("{}/webhook", desk.webhook_base))
        .headers(signed.headers())
        .body(signed.body().to_vec())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

#[derive(Deserialize)]
pub(crate) struct SimGraph {
    mode: String,
}

/// Sets how the simulated Graph API answers (`ok`, `down`, `token`); after `token`, the page
/// resumes once the mode is `ok` again (as a host does after renewing a token).
pub(crate) async fn sim_graph(
    State(desk): State<Shared>,
    JsonBody(g): JsonBody<SimGraph>,
) -> Response {
    let Some(sim) = &desk.simulation else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !matches!(g.mode.as_str(), "ok" | "down" | "token") {
        return error_response(StatusCode::BAD_REQUEST, "mode is ok, down or token");
    }
    sim.lock().unwrap().graph.clone_from(&g.mode);
    if g.mode == "ok" {
        for page in desk.engine.pages_needing_attention() {
            desk.engine.resume_page(&PageId::from(page.page.as_str()));
        }
    }
    axum::Json(json!({"ok": true, "mode": g.mode})).into_response()
}

/// The webhook body of what the simulated customer does (`kind`), as `mid` at `now`; `None`
/// for a kind it cannot do.
pub(crate) fn sim_body(
    desk: &Desk,
    s: &SimSend,
    mid: &str,
    now: SystemTime,
) -> Option<WebhookBody> {
    let now_ms = unix_ms(now);
    let about = s.mid.clone().unwrap_or_default();
    let text = s.text.clone();
    let body = WebhookBody::new(SIM_PAGE);
    let customer = s
        .customer
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 20 && c.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or(SIM_CUSTOMER);
    // The customer's other events, as Meta's JSON.
    let from_customer = |key: &str, value: Value| {
        let mut item =
            json!({"sender": {"id": customer}, "recipient": {"id": SIM_PAGE}, "timestamp": now_ms});
        item[key] = value;
        item
    };
    Some(match s.kind.as_str() {
        "text" => body.message(
            customer,
            mid,
            text.as_deref().unwrap_or("Hello!"),
            now,
        ),
        "picture" | "file" | "unsupported" | "svg" | "html" => {
            let (kind, name) = match s.kind.as_str() {
                "picture" => (MediaKind::Image, "photo.png"),
                "file" => (MediaKind::File, "invoice.pdf"),
                "svg" => (MediaKind::Image, "drawing.svg"),
                "html" => (MediaKind::File, "page.html"),
                _ => (MediaKind::File, "setup.exe"),
            };
            let url = format!("{}/sim/files/{name}", desk.base);
            body.attachment(customer, mid, kind, &url, now)
        }
        // Words and a picture in one message: removing it removes both lines.
        "captioned" => body.item(
            from_customer(
                "message",
                json!({"mid": mid, "text": text.unwrap_or_else(|| "Here is my receipt".into()),
                    "attachments": [{"type": "image", "payload": {"url": format!("{}/sim/files/photo.png", desk.base)}}]}),
            ),
            now,
        ),
        "sticker" => body.item(
            from_customer(
                "message",
                json!({"mid": mid, "attachments": [{"type": "image", "payload": {"url": format!("{}/sim/files/photo.png", desk.base), "sticker_id": 369_239_263_222_822_u64}}]}),
            ),
            now,
        ),
        "location" => body.item(
            from_customer(
                "message",
                json!({"mid": mid, "attachments": [{"type": "location", "title": "Pinned location", "payload": {"coordinates": {"lat": 48.8584, "long": 2.2945}}}]}),
            ),
            now,
        ),
        "link" => body.item(
            from_customer(
                "message",
                json!({"mid": mid, "attachments": [{"type": "fallback",
                    "title": text.unwrap_or_else(|| "Our shop".into()),
                    "url": s.url.clone().unwrap_or_else(|| "https://shop.example/item".into()), "payload": null}]}),
            ),
            now,
        ),
        "reply" => body.item(
            from_customer(
                "message",
                json!({"mid": mid, "text": text.unwrap_or_else(|| "This one".into()), "reply_to": {"mid": about}}),
            ),
            now,
        ),
        "reaction" => body.item(
            from_customer(
                "reaction",
                json!({"mid": about, "action": "react", "emoji": text.unwrap_or_else(|| "\u{1F44D}".into()), "reaction": "like"}),
            ),
            now,
        ),
        "edit" => body.item(
            from_customer(
                "message_edit",
                json!({"mid": about, "text": text.unwrap_or_default(), "num_edit": 1}),
            ),
            now,
        ),
        "unsend" => body.item(
            from_customer("message", json!({"mid": about, "is_deleted": true})),
            now,
        ),
        "read" => body.item(from_customer("read", json!({"watermark": now_ms})), now),
        // A person answering from the Page inbox: an echo with no app id.
        "inbox" => body.item(
            json!({"sender": {"id": SIM_PAGE}, "recipient": {"id": SIM_CUSTOMER}, "timestamp": now_ms,
                "message": {"mid": mid, "is_echo": true, "text": text.unwrap_or_else(|| "Hi, this is the shop".into())}}),
            now,
        ),
        _ => return None,
    })
}

pub(crate) async fn sim_send(
    State(desk): State<Shared>,
    JsonBody(s): JsonBody<SimSend>,
) -> Response {
    let Some(sim) = &desk.simulation else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body = if s.kind == "redeliver" {
        match sim.lock().unwrap().last_body.clone() {
            Some(b) => b,
            None => return error_response(StatusCode::BAD_REQUEST, "nothing to redeliver yet"),
        }
    } else {
        let n = {
            let mut sim = sim.lock().unwrap();
            sim.next += 1;
            sim.next
        };
        let now = SystemTime::now();
        let mid = format!("m_sim_in_{n}_{}", unix_ms(now));
        let Some(body) = sim_body(&desk, &s, &mid, now) else {
            return error_response(
                StatusCode::BAD_REQUEST,
                "kind is text, picture, file, unsupported, svg, html, sticker, location, link, reply, reaction, edit, unsend, read, inbox or redeliver",
            );
        };
        let mut sim = sim.lock().unwrap();
        sim.last_body = Some(body.clone());
        sim.last_in = Some(mid);
        body
    };
    let mid = sim.lock().unwrap().last_in.clone();
    match deliver(&desk, &body).await {
        Ok(status) => {
            axum::Json(json!({"ok": status == 200, "status": status, "mid": mid})).into_response()
        }
        Err(e) => error_response(StatusCode::BAD_GATEWAY, e),
    }
}

/// `GET /sim/canary?from=…`: what a hostile sample file's script would load, had it run.
pub(crate) async fn sim_canary(
    State(desk): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(sim) = &desk.simulation {
        let from = q.get("from").cloned().unwrap_or_default();
        eprintln!("desk: the canary was loaded (from {from}): a hostile file's script ran");
        sim.lock().unwrap().canary.push(from);
    }
    StatusCode::NO_CONTENT.into_response()
}

pub(crate) async fn sim_inbox(State(desk): State<Shared>) -> Response {
    match &desk.simulation {
        Some(sim) => {
            let sim = sim.lock().unwrap();
            axum::Json(json!({"messages": sim.inbox.clone(), "actions": sim.actions.clone(), "canary": sim.canary.clone()}))
                .into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub(crate) async fn sim_outbox_file(State(desk): State<Shared>, Path(n): Path<usize>) -> Response {
    let Some(sim) = &desk.simulation else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let sim = sim.lock().unwrap();
    match sim.files.get(n) {
        Some((_, mime, bytes)) => {
            ([(header::CONTENT_TYPE, mime.clone())], bytes.clone()).into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The part of a multipart body named `name`: `(filename, content type, bytes)`.
pub(crate) fn multipart_part(
    content_type: &str,
    body: &[u8],
    name: &str,
) -> Option<(Option<String>, Option<String>, Vec<u8>)> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let delimiter = format!("--{boundary}");
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut rest = body;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let content = &rest[head_end + 4..];
        let end = find(content, delimiter.as_bytes())?;
        if head.contains(&format!("name=\"{name}\"")) {
            let filename = head
                .split("filename=\"")
                .nth(1)
                .and_then(|s| s.split('"').next())
                .map(str::to_owned);
            let ctype = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Content-Type: ")
                        .or_else(|| l.strip_prefix("content-type: "))
                })
                .map(|s| s.trim().to_owned());
            return Some((filename, ctype, content[..end.saturating_sub(2)].to_vec()));
        }
    }
    None
}

/// The fake Graph API: records what the page sends and echoes it back as Meta does.
pub(crate) async fn fake_graph_messages(
    State(desk): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(sim) = &desk.simulation else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mode = sim.lock().unwrap().graph.clone();
    match mode.as_str() {
        "down" => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"error": {"message": "(#2) Service temporarily unavailable", "type": "OAuthException", "code": 2, "is_transient": true}})),
            )
                .into_response();
        }
        "token" => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": {"message": "Error validating access token: Session has expired.", "type": "OAuthException", "code": 190, "error_subcode": 463}})),
            )
                .into_response();
        }
        _ => {}
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if !content_type.starts_with("multipart/form-data") {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if v.get("sender_action").is_some() {
            // Reactions, seen marks and typing: recorded; Meta echoes none of them.
            sim.lock().unwrap().actions.push(v);
            return axum::Json(json!({"recipient_id": SIM_CUSTOMER})).into_response();
        }
    }
    let (message, file) = if content_type.starts_with("multipart/form-data") {
        let message = multipart_part(&content_type, &body, "message")
            .and_then(|(_, _, m)| serde_json::from_slice::<Value>(&m).ok())
            .unwrap_or(Value::Null);
        (message, multipart_part(&content_type, &body, "filedata"))
    } else {
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (v["message"].clone(), None)
    };
    let mid = {
        let mut sim = sim.lock().unwrap();
        sim.next += 1;
        let mid = format!("m_sim_out_{}", sim.next);
        let mut entry = json!({"mid": mid, "text": message["text"]});
        if let Some((name, mime, bytes)) = file {
            let n = sim.files.len();
            entry["file"] =
                json!({"name": name, "url": format!("/sim/outbox/{n}"), "size": bytes.len()});
            sim.files
                .push((name.unwrap_or_default(), mime.unwrap_or_default(), bytes));
        }
        sim.inbox.push(entry);
        mid
    };
    // The echo, with the metadata that marks the engine's effect delivered.
    let echo = WebhookBody::new(SIM_PAGE).echo(
        SIM_CUSTOMER,
        &mid,
        AppId(1),
        message["metadata"].as_str(),
        message["text"].as_str(),
        SystemTime::now(),
    );
    let desk2 = desk.clone();
    tokio::spawn(async move {
        let _ = deliver(&desk2, &echo).await;
    });
    axum::Json(json!({"recipient_id": SIM_CUSTOMER, "message_id": mid})).into_response()
}

/// The fake Graph API's user profile (`GET /{version}/{psid}?fields=…`): the simulated
/// customer's name and picture; for any other customer, the refusal a page without the
/// permission gets (code 230), so the desk shows its fallback name.
pub(crate) async fn fake_graph_profile(
    State(desk): State<Shared>,
    Path((_version, user)): Path<(String, String)>,
) -> Response {
    if desk.simulation.is_none() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if user != SIM_CUSTOMER {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": {"message": "(#230) Requires pages_messaging permission to manage the object", "type": "OAuthException", "code": 230}})),
        )
            .into_response();
    }
    let (first, last) = SIM_CUSTOMER_NAME;
    axum::Json(json!({
        "first_name": first,
        "last_name": last,
        "name": format!("{first} {last}"),
        "profile_pic": SIM_CUSTOMER_PICTURE,
        "id": user,
    }))
    .into_response()
}
