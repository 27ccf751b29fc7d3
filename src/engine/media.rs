//! Inbound files: fetched into the media store from the outbox (Messenger's links expire),
//! checked again with their real size and first bytes, and their transcript line updated to
//! stored, refused or unavailable.

use std::time::{Duration, SystemTime};

use tracing::Instrument as _;

use super::Engine;
use crate::attachment::{
    AttachmentInfo, Direction, Rejection, UNSUPPORTED_INBOUND_NOTICE, Violation,
};
use crate::conversation::{Author, Conversation, FileLine, LineBody, MediaState, TranscriptLine};
use crate::send::SendError;
use crate::store::{MediaStore, StoreError};

impl Engine {
    /// Fetches a customer's file into the media store, checks it again with its real size and
    /// first bytes, and updates its line. Returns the lines to show (the updated line, and a
    /// notice when the file is refused), or `None` to try again later (the download failed
    /// and the link may still work).
    ///
    /// # Errors
    /// Store failures (reading the line, keeping the bytes, updating the line): tried again
    /// later.
    pub(super) async fn fetch_media(
        &self,
        conversation: &Conversation,
        url: &str,
        sent_at: SystemTime,
        now: SystemTime,
    ) -> Result<Option<Vec<TranscriptLine>>, StoreError> {
        let id = conversation.id();
        let current = self
            .store
            .transcript(id)
            .await?
            .into_iter()
            .find_map(|l| match l.body {
                LineBody::File(f)
                    if f.url.as_deref() == Some(url) && f.media == MediaState::Pending =>
                {
                    Some(f)
                }
                _ => None,
            });
        let Some(mut file) = current else {
            // Fetched already (the same file sent twice is fetched once).
            return Ok(Some(Vec::new()));
        };
        let Some(media) = &self.media else {
            file.media = MediaState::Unavailable("no media store is configured".into());
            return self.settle(id, url, &file, None, now).await;
        };
        let max = self
            .attachment_policy
            .direction(Direction::Inbound)
            .max_bytes();
        let span = tracing::debug_span!("fetch_media", conversation = %id);
        match self.send.download(url, max).instrument(span).await {
            Ok(downloaded) => {
                let head = &downloaded.bytes[..downloaded.bytes.len().min(8192)];
                let (kind, shown) = (file.kind.clone(), file.name.clone());
                let mut info = AttachmentInfo::new().platform_kind(&kind).name(&shown);
                if let Some(name) = downloaded.file_name.as_deref() {
                    info = info.name(name);
                }
                info.size = Some(downloaded.bytes.len() as u64);
                info.head = Some(head);
                info.mime = downloaded.content_type.as_deref();
                let verdict = self.attachment_policy.check(Direction::Inbound, &info);
                file.name = verdict.safe_name().to_owned();
                file.size = info.size;
                if let Some(v) = verdict.first() {
                    file.rejected = Some(Rejection::from(v));
                    file.media = MediaState::NotKept;
                    let notice = format!("{UNSUPPORTED_INBOUND_NOTICE}. {v}");
                    return self.settle(id, url, &file, Some(notice), now).await;
                }
                let key = media
                    .put(
                        id,
                        downloaded.bytes.clone(),
                        downloaded.content_type.as_deref(),
                    )
                    .await?;
                file.media_key = Some(key);
                file.media = MediaState::Stored;
                self.settle_stored(media.as_ref(), id, url, &file, downloaded, now)
                    .await
            }
            Err(SendError::TooLarge { max }) => {
                let v = Violation::TooLarge {
                    size: max.saturating_add(1),
                    max,
                };
                file.rejected = Some(Rejection::from(&v));
                file.media = MediaState::NotKept;
                let notice = format!("{UNSUPPORTED_INBOUND_NOTICE}. {v}");
                self.settle(id, url, &file, Some(notice), now).await
            }
            Err(e) if is_gone(&e) => {
                tracing::warn!(error = %e, "an inbound file is gone from Messenger");
                file.media =
                    MediaState::Unavailable(format!("Messenger no longer serves the file ({e})"));
                self.settle(id, url, &file, None, now).await
            }
            Err(e) if now < link_expiry(url, sent_at) => {
                tracing::warn!(error = %e, "an inbound file could not be fetched; it will be tried again");
                Ok(None)
            }
            Err(e) => {
                tracing::warn!(error = %e, "an inbound file could not be fetched before its link expired");
                file.media = MediaState::Unavailable(format!(
                    "the file could not be fetched from Messenger before its link expired ({e})"
                ));
                self.settle(id, url, &file, None, now).await
            }
        }
    }

    /// Records a file kept in the media store, and keeps it from a removal running at the
    /// same time: the same bytes under the same key may have been deleted between the put
    /// and the line's update, by the removal of another message of this conversation that
    /// saw no line referring to them yet, so they are put once more now that the line refers
    /// to them (a removal that looks after this sees the reference, see
    /// `delete_unreferenced`); and if the customer removed this very message meanwhile (its
    /// line is forgotten), they go again, since nothing refers to them.
    async fn settle_stored(
        &self,
        media: &dyn MediaStore,
        id: &crate::ids::ConversationId,
        url: &str,
        file: &FileLine,
        downloaded: crate::send::Media,
        now: SystemTime,
    ) -> Result<Option<Vec<TranscriptLine>>, StoreError> {
        let settled = self.settle(id, url, file, None, now).await?;
        if self.config.keep_unsent || settled.as_ref().is_none_or(Vec::is_empty) {
            return Ok(settled);
        }
        media
            .put(id, downloaded.bytes, downloaded.content_type.as_deref())
            .await?;
        if let Some(key) = &file.media_key {
            if !referenced(&self.store.transcript(id).await?, key, None) {
                self.delete_unreferenced(media, id, key, None).await?;
            }
        }
        Ok(settled)
    }

    /// Forgets what the customer wrote in a removed message
    /// ([`crate::conversation::ConversationConfig::keep_unsent`] off), in `conversation` (the
    /// customer's open or latest one, where the removal is recorded) and in every earlier
    /// conversation of the customer's that holds some of it (the most recent
    /// [`HISTORY_SEARCHED`]; an edit may be in a later conversation than the message), whose
    /// agents are told. Returns `conversation`'s lines as updated.
    ///
    /// # Errors
    /// Store failures: tried again later.
    pub(super) async fn forget_message(
        &self,
        conversation: &Conversation,
        mid: &str,
    ) -> Result<Vec<TranscriptLine>, StoreError> {
        let here = self.forget_in(conversation.id(), mid).await?;
        let earlier = self
            .store
            .history(
                conversation.page(),
                conversation.customer(),
                HISTORY_SEARCHED,
            )
            .await?;
        for older in earlier {
            if older.conversation.id() == conversation.id() {
                continue;
            }
            let lines = self.forget_in(older.conversation.id(), mid).await?;
            if !lines.is_empty() {
                self.notifier.updated(&older.conversation, &lines).await;
            }
        }
        Ok(here)
    }

    /// Forgets the message `mid` in the conversation `id`: the files kept for its
    /// lines are deleted from the media store (unless another line of the conversation refers
    /// to the same bytes), then its lines and edits become the removal, and its files are
    /// looked at once more: one that another removal of the same bytes, running at the same
    /// time, left because this message still held it, goes now. Each step can be repeated,
    /// so a failure part-way is tried again whole. Returns the lines as updated.
    ///
    /// # Errors
    /// Store failures: tried again later.
    async fn forget_in(
        &self,
        id: &crate::ids::ConversationId,
        mid: &str,
    ) -> Result<Vec<TranscriptLine>, StoreError> {
        let Some(media) = &self.media else {
            return self.store.forget_message(id, mid).await;
        };
        let lines = self.store.transcript(id).await?;
        let mut kept: Vec<&str> = lines
            .iter()
            .filter(|l| l.forgotten_by(mid).is_some())
            .filter_map(|l| match &l.body {
                LineBody::File(f) => f.media_key.as_deref(),
                _ => None,
            })
            .collect();
        kept.sort_unstable();
        kept.dedup();
        for key in &kept {
            if !referenced(&lines, key, Some(mid)) {
                self.delete_unreferenced(media.as_ref(), id, key, Some(mid))
                    .await?;
            }
        }
        let forgotten = self.store.forget_message(id, mid).await?;
        if !kept.is_empty() {
            let after = self.store.transcript(id).await?;
            for key in kept {
                if !referenced(&after, key, None) {
                    self.delete_unreferenced(media.as_ref(), id, key, None)
                        .await?;
                }
            }
        }
        Ok(forgotten)
    }

    /// Deletes the conversation's file `key`, which no line referred to (other than those of
    /// the message `removed`) when the caller looked, and puts it back if a line has come to
    /// refer to it meanwhile: a download of the same bytes for another message writes its
    /// line first and puts the bytes again after (see `fetch_media`), so whichever of the two
    /// looks last keeps them. Files under a digest-only key are never deleted
    /// (`delete_own`).
    async fn delete_unreferenced(
        &self,
        media: &dyn MediaStore,
        id: &crate::ids::ConversationId,
        key: &str,
        removed: Option<&str>,
    ) -> Result<(), StoreError> {
        let Some((bytes, content_type)) = delete_own(media, key).await? else {
            return Ok(());
        };
        if referenced(&self.store.transcript(id).await?, key, removed) {
            let back = media.put(id, bytes, content_type.as_deref()).await?;
            if back != key {
                // A host store whose keys are not the conversation and the bytes: the line
                // still names the old key.
                tracing::warn!(key, back, "a file put back came under another key");
            }
        }
        Ok(())
    }

    /// Records a fetched file's outcome: its line updated, and a notice when given.
    async fn settle(
        &self,
        id: &crate::ids::ConversationId,
        url: &str,
        file: &FileLine,
        notice: Option<String>,
        now: SystemTime,
    ) -> Result<Option<Vec<TranscriptLine>>, StoreError> {
        let mut lines = self.store.update_file(id, url, file).await?;
        if lines.is_empty() {
            // Its line is gone: the customer removed the message while the file was being
            // fetched, and removals are forgotten. The bytes just kept go too, unless another
            // line refers to them.
            if let (Some(key), Some(media)) = (&file.media_key, &self.media) {
                if !referenced(&self.store.transcript(id).await?, key, None) {
                    self.delete_unreferenced(media.as_ref(), id, key, None)
                        .await?;
                }
            }
            return Ok(Some(lines));
        }
        if let Some(text) = notice {
            let line = TranscriptLine {
                at: now,
                author: Author::System,
                body: LineBody::Notice(text),
                mid: None,
                reply_to: None,
                sent_at: None,
            };
            self.store.append(id, vec![line.clone()]).await?;
            lines.push(line);
        }
        Ok(Some(lines))
    }
}

/// How many of the customer's conversations a removal looks through for its message.
pub(super) const HISTORY_SEARCHED: usize = 50;

/// Deletes a conversation's file, unless its key is the bytes' digest alone: built-in stores
/// kept files under such keys before keys were per conversation, and one may be shared with
/// another conversation. Returns the file deleted, to put back if it turns out to be needed;
/// `None` when there was none (or it was kept).
async fn delete_own(
    media: &dyn MediaStore,
    key: &str,
) -> Result<Option<(bytes::Bytes, Option<String>)>, StoreError> {
    let Some(file) = media.get(key).await? else {
        return Ok(None);
    };
    if crate::store::legacy_media_key(&file.0) == key {
        return Ok(None);
    }
    Ok(media.delete(key).await?.then_some(file))
}

/// Whether a line refers to the file `key` (other than the lines of the message `removed`,
/// which are being forgotten).
fn referenced(lines: &[TranscriptLine], key: &str, removed: Option<&str>) -> bool {
    lines.iter().any(|l| {
        matches!(&l.body, LineBody::File(f) if f.media_key.as_deref() == Some(key))
            && removed.is_none_or(|mid| l.forgotten_by(mid).is_none())
    })
}

/// Whether a download failed for good: the CDN answered 4xx (not found, forbidden, the link's
/// signature expired), other than a timeout or a rate limit.
fn is_gone(e: &SendError) -> bool {
    matches!(e, SendError::UnexpectedResponse { status, .. }
        if (400..500).contains(status) && *status != 408 && *status != 429)
}

/// Until when a Messenger CDN link is worth trying: the expiry it carries (`oe=`, seconds
/// since the epoch in hexadecimal, on fbcdn links), kept between an hour and a week after the
/// message; three days when it carries none (Meta documents no lifetime).
fn link_expiry(url: &str, sent_at: SystemTime) -> SystemTime {
    const HOUR: Duration = Duration::from_secs(3600);
    let earliest = crate::time::saturating_add(sent_at, HOUR);
    let latest = crate::time::saturating_add(sent_at, HOUR * 24 * 7);
    let stated = url
        .split_once('?')
        .into_iter()
        .flat_map(|(_, query)| query.split('&'))
        .find_map(|pair| pair.strip_prefix("oe="))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .map(|secs| crate::time::saturating_add(SystemTime::UNIX_EPOCH, Duration::from_secs(secs)));
    match stated {
        Some(at) => at.clamp(earliest, latest),
        None => crate::time::saturating_add(sent_at, HOUR * 24 * 3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_link_expires_when_its_oe_says_within_an_hour_and_a_week() {
        let sent = at(1_718_000_000);
        // 0x666C0000 = 1,718,353,920: about four days after `sent`, within the bounds.
        assert_eq!(
            link_expiry(
                "https://scontent.xx.fbcdn.net/v/t1/a.jpg?_nc_ht=x&oe=666C0000",
                sent
            ),
            at(0x666C_0000)
        );
        // Already past, or absurdly far: clamped.
        assert_eq!(
            link_expiry("https://x/a.jpg?oe=1", sent),
            at(1_718_000_000 + 3600)
        );
        assert_eq!(
            link_expiry("https://x/a.jpg?oe=ffffffffffff", sent),
            at(1_718_000_000 + 7 * 24 * 3600)
        );
        // None, or not hexadecimal: three days.
        for url in [
            "https://x/a.jpg",
            "https://x/a.jpg?oe=zz",
            "https://x/a.jpg?toe=66700000",
        ] {
            assert_eq!(
                link_expiry(url, sent),
                at(1_718_000_000 + 3 * 24 * 3600),
                "{url}"
            );
        }
        // A huge sent time does not panic.
        let _ = link_expiry("https://x/a.jpg?oe=ffffffffffffffff", at(u64::MAX / 4));
    }
}
