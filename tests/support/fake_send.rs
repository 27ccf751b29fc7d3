//! A fake `SendApi` that records what it is asked to send and answers with sequential ids.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use messenger_channel::ids::{MessageId, PageId};
use messenger_channel::send::{Media, SendApi, SendError, SendRequest, SendResponse};

#[derive(Debug, Clone)]
pub struct Sent {
    pub page: String,
    pub body: serde_json::Value,
    pub file: Option<(String, usize)>,
}

#[derive(Default)]
pub struct FakeSend {
    pub sent: Mutex<Vec<Sent>>,
    next: AtomicU64,
    /// When set, every send fails with this error.
    pub fail_with: Mutex<Option<SendError>>,
    /// When set, `send` signals `entered` and then never returns (a process dying mid-send).
    pub hang: std::sync::atomic::AtomicBool,
    /// When set, `send` records the message, signals `entered`, then never returns (a
    /// process dying after the platform accepted the message).
    pub hang_after: std::sync::atomic::AtomicBool,
    pub entered: tokio::sync::Notify,
    /// What `download` serves, by URL (a URL not there answers 404).
    pub files: Mutex<std::collections::HashMap<String, Media>>,
    /// When set, every download fails with this error.
    pub download_fails_with: Mutex<Option<SendError>>,
    /// Calls to `send`, failed ones included.
    pub calls: AtomicU64,
}

impl FakeSend {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn sent(&self) -> Vec<Sent> {
        self.sent.lock().unwrap().clone()
    }

    /// Calls to `send` so far, failed ones included.
    pub fn attempts(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn texts(&self) -> Vec<String> {
        self.sent()
            .iter()
            .filter_map(|s| s.body["message"]["text"].as_str().map(str::to_owned))
            .collect()
    }
}

#[async_trait::async_trait]
impl SendApi for FakeSend {
    async fn send(
        &self,
        page: &PageId<'_>,
        request: &SendRequest,
    ) -> Result<SendResponse, SendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(e) = self.fail_with.lock().unwrap().clone() {
            return Err(e);
        }
        if self.hang.load(Ordering::SeqCst) {
            self.entered.notify_one();
            std::future::pending::<()>().await;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.sent.lock().unwrap().push(Sent {
            page: page.as_str().to_owned(),
            body: request.to_json(),
            file: request
                .message()
                .upload()
                .map(|u| (u.file_name().to_owned(), u.bytes().len())),
        });
        if self.hang_after.load(Ordering::SeqCst) {
            self.entered.notify_one();
            std::future::pending::<()>().await;
        }
        Ok(SendResponse {
            recipient_id: Some(request.recipient().clone()),
            message_id: MessageId::from(format!("m_out_{n}")),
            attachment_id: None,
        })
    }
    async fn download(&self, url: &str, max_bytes: u64) -> Result<Media, SendError> {
        if let Some(e) = self.download_fails_with.lock().unwrap().clone() {
            return Err(e);
        }
        let file = self.files.lock().unwrap().get(url).cloned();
        match file {
            Some(media) if media.bytes.len() as u64 > max_bytes => {
                Err(SendError::TooLarge { max: max_bytes })
            }
            Some(media) => Ok(media),
            None => Err(SendError::UnexpectedResponse {
                status: 404,
                snippet: "no such file".into(),
            }),
        }
    }
}
