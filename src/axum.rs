//! axum integration (feature `axum`): the subscription handshake and the webhook POST as a
//! ready [`Router`].
//!
//! ```no_run
//! # async fn demo(engine: std::sync::Arc<messenger_channel::engine::Engine>) -> Result<(), Box<dyn std::error::Error>> {
//! use messenger_channel::secret::VerifyToken;
//!
//! // The routes, and the engine's worker (timers, retries, deliveries from the outbox).
//! let (webhook, worker) = messenger_channel::axum::WebhookRoutes::new(engine, VerifyToken::new("my-verify-token")?)
//!     .router_with_worker();
//! let app = axum::Router::new()
//!     .route("/health", axum::routing::get(|| async { "ok" }))
//!     .nest("/webhook", webhook);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! worker.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! The POST handler reads the raw body (refusing more than the webhook's size limit with 413),
//! checks the signature (401 when missing, 403 when wrong, before anything is parsed), checks
//! that the body is a webhook (400 otherwise), and records the body as it came, in one insert
//! ([`Engine::record_webhook`]).
//!
//! **What a 200 means:** the body is durably recorded (committed to the store), and every
//! event in it that the channel acts on will be unpacked into the inbox and applied, by this
//! instance or, after a crash, by any instance's [`Engine::tick`]. When the body could not be
//! recorded the answer is 503 with `Retry-After`, and Meta delivers it again. Recording waits
//! for no download, send or other conversation; the body's events are then unpacked and
//! applied in a background task ([`Engine::unpack_in_background`]).
//! [`WebhookRoutes::in_background`]`(false)` records the events in the inbox
//! ([`Engine::receive_batch`]) and applies them before answering instead, for tests and simple
//! hosts; the answer is still 200 if applying fails, since the events are recorded.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::engine::{Engine, EngineError};
use crate::secret::VerifyToken;
use crate::webhook::challenge::verify_subscription;

/// How long the POST handler waits for the events to be recorded before it answers 503
/// (Meta gives up on an answer after about 20 seconds, and then delivers the body again).
pub const DEFAULT_RECORD_TIMEOUT: Duration = Duration::from_secs(10);

/// The webhook's two routes, at the root of the router they make (nest it where you like).
#[derive(Clone)]
pub struct WebhookRoutes {
    engine: Arc<Engine>,
    verify_token: VerifyToken,
    background: bool,
    record_timeout: Duration,
}

impl std::fmt::Debug for WebhookRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRoutes")
            .field("background", &self.background)
            .field("record_timeout", &self.record_timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookRoutes {
    /// Routes for `engine`, answering the handshake with `verify_token`.
    pub fn new(engine: Arc<Engine>, verify_token: VerifyToken) -> Self {
        Self {
            engine,
            verify_token,
            background: true,
            record_timeout: DEFAULT_RECORD_TIMEOUT,
        }
    }

    /// How long to wait for the store to record a body before answering 503 (default
    /// [`DEFAULT_RECORD_TIMEOUT`]). A store that hangs then costs a redelivery, not an
    /// acknowledgement.
    #[must_use]
    pub fn record_timeout(mut self, timeout: Duration) -> Self {
        self.record_timeout = timeout;
        self
    }

    /// Whether events are handled after the 200 is sent (default) or before it.
    #[must_use]
    pub fn in_background(mut self, background: bool) -> Self {
        self.background = background;
        self
    }

    /// The router: `GET /` (handshake) and `POST /` (webhook).
    pub fn router(self) -> Router {
        let limit = self.engine.webhook().limits().max_body_bytes;
        Router::new()
            .route("/", get(handshake).post(receive))
            .layer(DefaultBodyLimit::max(limit))
            .with_state(Arc::new(self))
    }

    /// The router, and the engine's worker started ([`Engine::start`]): what a host serving
    /// only the webhook needs, in one call. Keep the worker for as long as you serve (dropping
    /// it stops it); [`crate::engine::Worker::stop`] stops it after the pass under way.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn router_with_worker(self) -> (Router, crate::engine::Worker) {
        let worker = self.engine.start();
        (self.router(), worker)
    }
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// A refusal that asks Meta to deliver the body again.
fn retry_later(status: StatusCode) -> Response {
    let mut response = text(status, "not recorded; retry");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    response
}

async fn handshake(
    State(routes): State<Arc<WebhookRoutes>>,
    RawQuery(query): RawQuery,
) -> Response {
    match verify_subscription(query.as_deref().unwrap_or(""), &routes.verify_token) {
        Ok(challenge) => text(StatusCode::OK, challenge),
        Err(e) => text(StatusCode::FORBIDDEN, e.to_string()),
    }
}

async fn receive(
    State(routes): State<Arc<WebhookRoutes>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if routes.background {
        record(&routes, &headers, &body).await
    } else {
        receive_and_apply(&routes, &headers, &body).await
    }
}

/// The acknowledgement is the commit: 200 only once the body is recorded as it came (one
/// insert); its events are unpacked into the inbox and applied after the answer.
async fn record(routes: &Arc<WebhookRoutes>, headers: &HeaderMap, body: &Bytes) -> Response {
    let recorded = tokio::time::timeout(
        routes.record_timeout,
        routes
            .engine
            .record_webhook(headers, body, SystemTime::now()),
    )
    .await;
    match recorded {
        Ok(Ok(())) => {
            // One drain per engine unpacks and applies what every acknowledgement recorded.
            routes.engine.unpack_in_background();
            text(StatusCode::OK, "EVENT_RECEIVED")
        }
        // Not authentic or not a webhook: refused, nothing recorded.
        Ok(Err(EngineError::Webhook(e))) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            text(status, e.to_string())
        }
        Ok(Err(e)) => not_recorded(&e),
        Err(_) => timed_out(routes),
    }
}

/// Without the background drain: the events are recorded in the inbox, then applied before
/// the answer (which is 200 once they are recorded, whatever applying them did).
async fn receive_and_apply(
    routes: &Arc<WebhookRoutes>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    // Authentic and well formed, or refused before anything is handled.
    let batch = match routes.engine.webhook().verify_and_parse(headers, body) {
        Ok(batch) => batch,
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
            return text(status, e.to_string());
        }
    };
    // The acknowledgement is the commit: 200 only once the events are recorded.
    let recorded = tokio::time::timeout(
        routes.record_timeout,
        routes.engine.receive_batch(&batch, SystemTime::now()),
    )
    .await;
    let receipt = match recorded {
        Ok(Ok(receipt)) => receipt,
        Ok(Err(e)) => return not_recorded(&e),
        Err(_) => return timed_out(routes),
    };
    let report = routes
        .engine
        .apply_threads(&receipt.threads, SystemTime::now())
        .await;
    for (thread, e) in &report.failed {
        tracing::warn!(thread, error = %e, "recorded event not applied yet; the sweep retries it");
    }
    tracing::debug!(handled = report.handled, "webhook applied");
    text(StatusCode::OK, "EVENT_RECEIVED")
}

fn not_recorded(e: &EngineError) -> Response {
    tracing::error!(error = %e, "webhook not recorded; answering 503 so that Meta retries");
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    retry_later(status)
}

fn timed_out(routes: &WebhookRoutes) -> Response {
    tracing::error!(
        timeout_ms = u64::try_from(routes.record_timeout.as_millis()).unwrap_or(u64::MAX),
        "webhook not recorded in time; answering 503 so that Meta retries"
    );
    retry_later(StatusCode::SERVICE_UNAVAILABLE)
}
