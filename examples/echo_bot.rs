//! Run with: `PAGE_ACCESS_TOKEN=… APP_SECRET=… VERIFY_TOKEN=… cargo run --example echo_bot`
//!
//! The shortest complete program: verifies each webhook, parses it, and answers every text
//! message with the same text. Serves `GET /webhook` (the handshake) and `POST /webhook`.

use axum::{
    Router, body::Bytes, extract::RawQuery, http::HeaderMap, http::StatusCode, routing::get,
};
use messenger_channel::ids::PageId;
use messenger_channel::secret::{AppSecret, PageAccessToken, VerifyToken};
use messenger_channel::send::{GraphClient, Message, SendApi, SendRequest};
use messenger_channel::webhook::{EventKind, Webhook, challenge::verify_subscription};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = AppSecret::new(std::env::var("APP_SECRET")?)?;
    let verify = VerifyToken::new(std::env::var("VERIFY_TOKEN")?)?;
    let webhook = Webhook::new(&secret);
    let client = GraphClient::builder(PageAccessToken::new(std::env::var("PAGE_ACCESS_TOKEN")?)?)
        .app_secret(secret)
        .build()?;

    let handshake = move |RawQuery(q): RawQuery| async move {
        verify_subscription(q.as_deref().unwrap_or(""), &verify).map_err(|_| StatusCode::FORBIDDEN)
    };
    let receive = move |headers: HeaderMap, body: Bytes| async move {
        let batch = webhook
            .verify_and_parse(&headers, &body)
            .map_err(|e| StatusCode::from_u16(e.status()).unwrap())?;
        for event in batch.events() {
            if let (EventKind::Message(m), Some(sender)) = (&event.kind, &event.sender) {
                if let Some(text) = m.text.and_then(|t| Message::text(&t.decode()).ok()) {
                    let page = PageId::from(event.page_id.as_str()).into_owned();
                    if let Err(e) = client
                        .send(&page, &SendRequest::new(sender.clone(), text))
                        .await
                    {
                        eprintln!("echo failed: {e}");
                    }
                }
            }
        }
        Ok::<_, StatusCode>("EVENT_RECEIVED")
    };

    let app = Router::new().route("/webhook", get(handshake).post(receive));
    let listener = tokio::net::TcpListener::bind("0.0.0.0:8080").await?;
    println!("echo bot on http://{}/webhook", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
