//! The axum router: handshake, signature, size and shape checks, composition with host routes.
#![cfg(all(feature = "axum", feature = "graph"))]

mod support;

use std::time::{Duration, Instant};

use messenger_channel::axum::WebhookRoutes;
use messenger_channel::conversation::ConversationConfig;
use messenger_channel::ids::{PageId, UserId};
use messenger_channel::secret::VerifyToken;
use messenger_channel::store::ConversationStore;
use messenger_channel::testing::{SignedBody, t0};
use support::channel::{CUSTOMER, Channel, PAGE, secret, signed, webhook};

/// Serves the webhook under `/webhook` next to a host route, on 127.0.0.1 port 0.
async fn serve(channel: &Channel, background: bool) -> String {
    let routes = WebhookRoutes::new(
        channel.engine.clone(),
        VerifyToken::new("verify-me").unwrap(),
    )
    .in_background(background)
    .router();
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .nest("/webhook", routes)
        .layer(axum::middleware::map_response(mark));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A host's own layer: adds a header to every response.
async fn mark(mut response: axum::response::Response) -> axum::response::Response {
    response
        .headers_mut()
        .insert("x-host-layer", "1".parse().unwrap());
    response
}

#[tokio::test]
async fn handshake() {
    let ch = Channel::new(&["alice"], ConversationConfig::default());
    let base = serve(&ch, false).await;
    let http = reqwest::Client::new();
    let ok = http
        .get(format!(
            "{base}/webhook?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["x-host-layer"],
        "1",
        "composes with the host's layers"
    );
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let wrong = http
        .get(format!(
            "{base}/webhook?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert_eq!(
        http.get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "ok"
    );
}

#[tokio::test]
async fn post_statuses() {
    let ch = Channel::new(&["alice"], ConversationConfig::default());
    let base = serve(&ch, false).await;
    let http = reqwest::Client::new();
    let url = format!("{base}/webhook");
    let (headers, body) = signed(webhook().message(CUSTOMER, "m_1", "Hello", t0()));

    let missing = http.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    let forged = http
        .post(&url)
        .header("x-hub-signature-256", format!("sha256={}", "0".repeat(64)))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // Nothing was processed for the refused requests.
    assert!(ch.store.list_open().await.unwrap().is_empty());

    let ok = http
        .post(&url)
        .headers(headers.clone())
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ch.store
            .find_open(&PageId::from(PAGE), &UserId::from(CUSTOMER))
            .await
            .unwrap()
            .is_some()
    );

    let (h, not_webhook) =
        SignedBody::new(&secret(), br#"{"hello":"world"}"#.to_vec()).into_parts();
    assert_eq!(
        http.post(&url)
            .headers(h)
            .body(not_webhook)
            .send()
            .await
            .unwrap()
            .status(),
        400
    );

    let huge = vec![b' '; 5 * 1024 * 1024];
    let (h, huge) = SignedBody::new(&secret(), huge).into_parts();
    assert_eq!(
        http.post(&url)
            .headers(h)
            .body(huge)
            .send()
            .await
            .unwrap()
            .status(),
        413
    );
}

#[tokio::test]
async fn answers_first_and_handles_in_the_background() {
    let ch = Channel::new(&["alice"], ConversationConfig::default());
    let base = serve(&ch, true).await;
    let (headers, body) = signed(webhook().message(CUSTOMER, "m_1", "Hello", t0()));
    let response = reqwest::Client::new()
        .post(format!("{base}/webhook"))
        .headers(headers)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The conversation appears once the background task has run.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if ch
            .store
            .find_open(&PageId::from(PAGE), &UserId::from(CUSTOMER))
            .await
            .unwrap()
            .is_some()
        {
            break;
        }
        assert!(Instant::now() < deadline, "the event was never handled");
        tokio::task::yield_now().await;
    }
}
