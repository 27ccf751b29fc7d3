//! Safe against the web: the Host header must name this desk (DNS rebinding), every
//! state-changing request from a browser comes from the desk's own origin and is JSON (or an
//! upload with the desk's own header, which no other site can send without a preflight),
//! every body has a size limit, every error is JSON in words an agent understands, and the
//! pages are served with a strict Content Security Policy.

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The largest JSON body a route takes.
pub(crate) const JSON_MAX_BYTES: usize = 64 * 1024;
/// The header an upload must carry: a custom header makes a cross-site request need a CORS
/// preflight, which this desk never grants.
pub(crate) const UPLOAD_HEADER: &str = "x-desk-upload";

/// A JSON error: `{"error": words}`.
pub(crate) fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

/// The names and origins this desk answers to.
#[derive(Debug, Clone)]
pub(crate) struct Allowed {
    /// `Host` header values (`localhost:8080`), lower case.
    pub(crate) hosts: Vec<String>,
    /// Origins (`http://localhost:8080`), lower case.
    pub(crate) origins: Vec<String>,
}

impl Allowed {
    /// `localhost` and `127.0.0.1` with the port (and the bound address itself), plus the
    /// configured origins and host names.
    pub(crate) fn new(addr: std::net::SocketAddr, origins: &[String], hosts: &[String]) -> Self {
        let port = addr.port();
        let mut names = vec![format!("localhost:{port}"), format!("127.0.0.1:{port}")];
        if !addr.ip().is_unspecified() {
            let ip = match addr.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]:{port}"),
                std::net::IpAddr::V4(ip) => format!("{ip}:{port}"),
            };
            names.push(ip);
        }
        let mut all_origins: Vec<String> = names.iter().map(|h| format!("http://{h}")).collect();
        for origin in origins {
            let origin = origin.trim_end_matches('/').to_ascii_lowercase();
            if let Some(host) = origin.split_once("://").map(|(_, h)| h.to_owned()) {
                names.push(host);
            }
            all_origins.push(origin);
        }
        names.extend(hosts.iter().map(|h| h.to_ascii_lowercase()));
        names.dedup();
        Self {
            hosts: names,
            origins: all_origins,
        }
    }

    fn origin_ok(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// The `Host` check (DNS rebinding): a request naming another host gets 421, one naming no
/// host 400. The webhook is exempt: Meta reaches it through whatever public name is in
/// front, and its requests are signed.
pub(crate) async fn check_host(
    State(allowed): State<std::sync::Arc<Allowed>>,
    request: Request,
    next: Next,
) -> Response {
    if request.uri().path().starts_with("/webhook") {
        return next.run(request).await;
    }
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase)
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|a| a.as_str().to_ascii_lowercase())
        });
    match host {
        None => error_response(StatusCode::BAD_REQUEST, "The request names no host."),
        Some(h) if allowed.hosts.contains(&h) => next.run(request).await,
        Some(_) => error_response(
            StatusCode::MISDIRECTED_REQUEST,
            "This desk does not answer to that host name. Open it at the address it printed, or start it with --origin.",
        ),
    }
}

/// Routes a browser writes to: the agent's, the supervisor's and the simulated customer's.
fn browser_route(path: &str) -> bool {
    path.starts_with("/agent/") || path.starts_with("/supervisor/") || path.starts_with("/sim/")
}

/// State-changing requests: a browser's must come from an allowed origin (403) and be JSON
/// (415), except the file upload, which must carry [`UPLOAD_HEADER`]. Server-to-server routes
/// (the webhook, the simulated Graph API) refuse any request that carries a foreign origin.
pub(crate) async fn check_writes(
    State(allowed): State<std::sync::Arc<Allowed>>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let path = request.uri().path().to_owned();
    let headers = request.headers();
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if !browser_route(&path) {
        return match origin {
            Some(o) if !allowed.origin_ok(o) => foreign_origin(),
            _ => next.run(request).await,
        };
    }
    if !origin.is_some_and(|o| allowed.origin_ok(o)) {
        return foreign_origin();
    }
    if path == "/agent/file" {
        if headers.get(UPLOAD_HEADER).is_none() {
            return error_response(
                StatusCode::FORBIDDEN,
                "Files are sent from the desk's own page.",
            );
        }
    } else if !is_json(headers) {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The desk takes JSON (Content-Type: application/json).",
        );
    }
    next.run(request).await
}

fn foreign_origin() -> Response {
    error_response(
        StatusCode::FORBIDDEN,
        "This request did not come from the desk's own page, so it was refused.",
    )
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| m.essence_str() == "application/json")
}

/// Every error is JSON: an error response with another body (axum's own 404, 405, 413, or
/// a handler's plain status) gets `{"error": …}` in words for its status. Every response
/// also gets `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.
pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if (status.is_client_error() || status.is_server_error()) && !json {
        let words = match status {
            StatusCode::NOT_FOUND => "There is nothing at this address.",
            StatusCode::METHOD_NOT_ALLOWED => "This address does not take that kind of request.",
            StatusCode::PAYLOAD_TOO_LARGE => "The request is too large.",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                "The desk takes JSON (Content-Type: application/json)."
            }
            StatusCode::UNAUTHORIZED => "Sign in first.",
            StatusCode::FORBIDDEN => "This is not allowed.",
            s if s.is_client_error() => "The desk could not understand the request.",
            _ => "Something went wrong in the desk. Try again.",
        };
        // Keep the headers a handler set (the webhook's, for instance), but not the type.
        let mut replaced = error_response(status, words);
        for (name, value) in response.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                replaced.headers_mut().append(name.clone(), value.clone());
            }
        }
        response = replaced;
    }
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    response
}

/// A JSON body whose rejections are JSON errors in words (axum's are plain text).
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request<Body>, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> Response {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The desk takes JSON (Content-Type: application/json).",
        ),
        JsonRejection::JsonDataError(e) => error_response(
            StatusCode::BAD_REQUEST,
            format!(
                "A field is missing or has the wrong type: {}",
                e.body_text()
            ),
        ),
        JsonRejection::JsonSyntaxError(_) => {
            error_response(StatusCode::BAD_REQUEST, "The request is not valid JSON.")
        }
        JsonRejection::BytesRejection(_) => {
            error_response(StatusCode::PAYLOAD_TOO_LARGE, "The request is too large.")
        }
        _ => error_response(
            StatusCode::BAD_REQUEST,
            "The desk could not understand the request.",
        ),
    }
}

/// A page with its Content Security Policy: scripts and styles only those inline in the page
/// itself (by their SHA-256), nothing else loaded but this origin's data, images from this
/// origin and HTTPS (stickers), no frames, no forms, no plugins.
pub(crate) fn page(html: &'static str) -> Response {
    let mut response = axum::response::Html(html).into_response();
    let csp = HeaderValue::from_str(&page_policy(html)).expect("a policy is ASCII");
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The policy of [`page`] for `html`.
pub(crate) fn page_policy(html: &str) -> String {
    let hashes = |tag: &str| {
        inline_blocks(html, tag)
            .map(|block| format!("'sha256-{}'", base64(&Sha256::digest(block.as_bytes()))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let scripts = hashes("script");
    let styles = hashes("style");
    format!(
        "default-src 'none'; script-src {scripts}; style-src {styles}; img-src 'self' https: data:; \
         connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// The contents of each `<tag>…</tag>` in `html`.
fn inline_blocks<'a>(html: &'a str, tag: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = html;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let end = start + rest[start..].find(&close)?;
        let block = &rest[start..end];
        rest = &rest[end + close.len()..];
        Some(block)
    })
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn the_policy_names_each_inline_block() {
        let html = "<style>a{}</style><script>x()</script><script>y()</script>";
        let policy = page_policy(html);
        assert_eq!(policy.matches("'sha256-").count(), 3, "{policy}");
        assert!(!policy.contains("unsafe-inline"));
    }

    #[test]
    fn default_hosts_are_loopback_names_with_the_port() {
        let allowed = Allowed::new("127.0.0.1:8080".parse().unwrap(), &[], &[]);
        assert!(allowed.hosts.contains(&"localhost:8080".to_owned()));
        assert!(allowed.origin_ok("http://127.0.0.1:8080"));
        assert!(!allowed.origin_ok("http://evil.example"));
        let allowed = Allowed::new(
            "127.0.0.1:8080".parse().unwrap(),
            &["https://desk.example.com".to_owned()],
            &[],
        );
        assert!(allowed.hosts.contains(&"desk.example.com".to_owned()));
        assert!(allowed.origin_ok("https://desk.example.com"));
    }
}
