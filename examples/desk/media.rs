//! Files kept by the desk, served to signed-in agents: as attachments under their real file
//! names, `X-Content-Type-Options: nosniff` and `Content-Security-Policy: sandbox`; only
//! raster images (PNG, JPEG, GIF, WebP, recognised from their bytes, whatever the stored
//! type says) are shown inline. An SVG, an HTML page or anything else with script never runs
//! in the desk's origin.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use messenger_channel::conversation::{LineBody, TranscriptLine};
use messenger_channel::ids::ConversationId;
use messenger_channel::store::{ConversationStore, MediaStore, StoreError};
use serde::Deserialize;

use crate::Shared;
use crate::auth::SignedIn;
use crate::web::error_response;

/// The raster image types shown inline, by what the bytes are.
const INLINE_IMAGES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

#[derive(Deserialize)]
pub(crate) struct MediaQuery {
    /// The conversation the file belongs to (its transcript names the file).
    conversation: String,
}

/// What a file that is not there, or not the agent's to read, answers: one 404, so that
/// nobody learns which conversations exist.
const NOT_IN_CONVERSATION: &str = "This file is not in that conversation.";

/// `GET /media/{key}?conversation=ID`: the file, when the conversation names it and the agent
/// may read the conversation; 404 alike for a conversation that does not exist, one the
/// agent may not read and a file it does not name.
pub(crate) async fn media(
    State(desk): State<Shared>,
    who: SignedIn,
    Path(key): Path<String>,
    Query(q): Query<MediaQuery>,
) -> Response {
    let id = match crate::work::conversation_id(Some(&q.conversation)) {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    let lines = match readable_transcript(&desk, &who, &id).await {
        Ok(Some(lines)) => lines,
        Ok(None) => return error_response(StatusCode::NOT_FOUND, NOT_IN_CONVERSATION),
        Err(e) => {
            eprintln!("desk: reading a conversation: {e}");
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "The desk could not read this conversation. Try again.",
            );
        }
    };
    // The file must be one of the conversation's: its line gives its name.
    let Some(name) = lines.iter().find_map(|l| match &l.body {
        LineBody::File(f) if f.media_key.as_deref() == Some(key.as_str()) => Some(f.name.clone()),
        _ => None,
    }) else {
        return error_response(StatusCode::NOT_FOUND, NOT_IN_CONVERSATION);
    };
    let bytes = match desk.store.get(&key).await {
        Ok(Some((bytes, _stored_type))) => bytes,
        Ok(None) => {
            return error_response(StatusCode::NOT_FOUND, "The desk no longer has this file.");
        }
        Err(e) => {
            eprintln!("desk: reading a file: {e}");
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "The desk could not read this file. Try again.",
            );
        }
    };
    let raster = infer::get(&bytes)
        .map(|t| t.mime_type())
        .filter(|m| INLINE_IMAGES.contains(m));
    let (content_type, disposition) = match raster {
        Some(mime) => (mime, "inline"),
        None => ("application/octet-stream", "attachment"),
    };
    let disposition = format!("{disposition}; filename*=UTF-8''{}", rfc5987(&name));
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).expect("percent-encoded ASCII"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    response
}

/// The transcript of conversation `id` if it exists and the agent may read it; `None` if
/// either is not so (the caller cannot tell which).
async fn readable_transcript(
    desk: &Shared,
    who: &SignedIn,
    id: &ConversationId,
) -> Result<Option<Vec<TranscriptLine>>, StoreError> {
    let Some(stored) = desk.store.load(id).await? else {
        return Ok(None);
    };
    let lines = match desk.store.transcript(id).await {
        Ok(lines) => lines,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    if crate::access::may_read(desk, who, &stored.conversation, &lines).await? {
        Ok(Some(lines))
    } else {
        Ok(None)
    }
}

/// A file name as RFC 5987 `ext-value` characters (UTF-8, percent-encoded but for
/// `attr-char`).
fn rfc5987(name: &str) -> String {
    use std::fmt::Write as _;
    name.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_percent_encoded() {
        assert_eq!(rfc5987("invoice.pdf"), "invoice.pdf");
        assert_eq!(rfc5987("a b\";.pdf"), "a%20b%22%3B.pdf");
        assert_eq!(rfc5987("façade.png"), "fa%C3%A7ade.png");
    }
}
