//! A mock Graph API server on 127.0.0.1 (port 0) that records every request and answers from a
//! script, for the Send API tests.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    /// The JSON body.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// A query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(&'static str, String)>,
}

impl Scripted {
    pub fn json(status: u16, body: &str) -> Self {
        Self {
            status,
            body: body.to_owned(),
            headers: Vec::new(),
        }
    }
}

#[derive(Default)]
pub struct Shared {
    pub requests: Mutex<Vec<Recorded>>,
    pub script: Mutex<VecDeque<Scripted>>,
}

pub struct MockGraph {
    pub addr: SocketAddr,
    pub shared: Arc<Shared>,
}

impl MockGraph {
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { addr, shared }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn push(&self, answer: Scripted) {
        self.shared.script.lock().unwrap().push_back(answer);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }
}

/// An endless stream of one chunk repeated, for the download cap.
struct Repeat(Bytes);

impl futures_core::Stream for Repeat {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(Some(Ok(self.0.clone())))
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let path = parts.uri.path().to_owned();
    shared.requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers: parts.headers.clone(),
        body,
    });
    match path.as_str() {
        "/files/endless" => {
            return Response::new(Body::from_stream(Repeat(Bytes::from(vec![
                b'x';
                64 * 1024
            ]))));
        }
        "/files/hang" => std::future::pending::<()>().await,
        "/files/big" => {
            return Response::builder()
                .header("content-length", "104857600")
                .body(Body::from_stream(Repeat(Bytes::from(vec![0u8; 1024]))))
                .unwrap();
        }
        "/files/logo.png" => {
            return Response::builder()
                .header("content-type", "image/png")
                .header("content-disposition", "attachment; filename=\"logo.png\"")
                .body(Body::from(
                    &include_bytes!("../../examples/sample/logo.png")[..],
                ))
                .unwrap();
        }
        _ => {}
    }
    let answer = shared.script.lock().unwrap().pop_front();
    let answer = answer.unwrap_or_else(|| {
        Scripted::json(
            200,
            r#"{"recipient_id":"24012345678901234","message_id":"m_default"}"#,
        )
    });
    if answer.status == 0 {
        // Never answer: the client must time out.
        std::future::pending::<()>().await;
    }
    let mut response = Response::builder()
        .status(StatusCode::from_u16(answer.status).unwrap())
        .header("content-type", "application/json");
    for (k, v) in answer.headers {
        response = response.header(k, v);
    }
    response.body(Body::from(answer.body)).unwrap()
}
