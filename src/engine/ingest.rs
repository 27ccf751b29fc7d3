//! Ingest: verified webhooks into the durable inbox (the acknowledgement), then applied to
//! conversations one thread at a time, in order of receipt.
//!
//! **Why an inbox.** A webhook is acknowledged (200) once it is durably recorded, and only
//! then. The axum route records the verified body as it came, in one insert
//! ([`Engine::record_webhook`]), and answers; its background drain then unpacks the body into
//! the inbox ([`Engine::unpack_webhooks`]: the events and the body's removal in one
//! transaction). [`Engine::receive`] records the events in the inbox directly, one multi-row
//! insert in one transaction per body. Either way the answer waits for no download, send, or
//! other conversation's work (applying comes after, in [`Engine::apply_threads`]). The unique
//! key of each inbox row is the record of what was seen, so dedup is written in the same
//! transaction as the event it guards ("seen iff saved"), and a body unpacked twice records
//! each event once. A thread's events are then applied one after another, in order of
//! receipt: in one process by a per-thread claim (a burst of bodies for one customer never
//! contends with itself); across instances by the optimistic version check and the commit
//! that marks the event applied only if it still was pending (an event is applied exactly
//! once). Bodies and events a crash or a failure leaves behind are unpacked and applied by
//! [`Engine::tick`]'s sweep.
//!
//! **Why the body, for the route.** One row per body instead of one per event, with no
//! secondary index, makes the answer cheaper than inserting the events themselves (the README's
//! Performance section measures it against the database's floor).
//!
//! **Parsed once before the answer.** [`Engine::handle_webhook`], [`Engine::receive`] and
//! [`Engine::record_webhook`] take the raw bytes and verify and parse them; a host that has
//! verified and parsed the body already hands its [`Batch`] to [`Engine::receive_batch`], so
//! no body is parsed twice before the answer.

use std::collections::HashSet;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use super::{ApplyReport, Engine, EngineError};
use crate::attachment::AttachmentInfo;
use crate::conversation::{Inbound, Input};
use crate::routing::ThreadReferral;
use crate::store::{NewInboxEvent, SentMessage, StoreError};
use crate::webhook::{AttachmentKind, Batch, Event, EventKind, ReactionAction};

/// What [`Engine::receive`] recorded. When it returns `Ok`, every event of the body that the
/// channel acts on is durably in the inbox: answer 200.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Receipt {
    /// New events recorded in the inbox.
    pub received: usize,
    /// Events recorded before (redeliveries).
    pub duplicates: usize,
    /// Events the channel does not act on (opt-ins, referrals, policy notices…).
    pub ignored: usize,
    /// Echoes of this channel's own sends, which marked their effects delivered.
    pub echoes: usize,
    /// Items that could not be read.
    pub malformed: usize,
    /// The threads with new events, to apply next ([`Engine::apply_threads`]).
    pub threads: Vec<String>,
}
/// An event as the inbox keeps it: what applying it needs, owned and versioned by serde.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Queued {
    pub(super) page: String,
    pub(super) customer: String,
    /// The event's timestamp, in milliseconds since the epoch.
    pub(super) sent_ms: u64,
    #[serde(default)]
    pub(super) standby: bool,
    /// The referral a message or postback came with (an m.me link, an ad), for routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) referral: Option<ThreadReferral>,
    #[serde(flatten)]
    pub(super) kind: QueuedKind,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum QueuedKind {
    Message {
        mid: String,
        text: Option<String>,
        #[serde(default)]
        files: Vec<QueuedFile>,
        #[serde(default)]
        reply_to: Option<String>,
    },
    /// The customer reacted to a message (or removed a reaction).
    Reaction {
        mid: Option<String>,
        emoji: Option<String>,
        name: Option<String>,
        removed: bool,
    },
    /// The customer edited a message.
    Edit {
        mid: String,
        text: String,
        edit_count: u64,
    },
    /// The customer removed (unsent) a message.
    Unsent {
        mid: String,
    },
    /// The page sent a message from outside the channel (its echo has no key of ours).
    Outside {
        mid: String,
        app_id: Option<u64>,
        text: Option<String>,
        #[serde(default)]
        files: Vec<QueuedFile>,
        #[serde(default)]
        reply_to: Option<String>,
    },
    /// Messenger's delivery watermark (ms).
    Delivered {
        watermark: u64,
    },
    /// Messenger's read watermark (ms).
    Read {
        watermark: u64,
    },
    Postback {
        mid: Option<String>,
        title: Option<String>,
        payload: Option<String>,
    },
    ThreadTaken,
    ThreadReturned,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct QueuedFile {
    pub(super) kind: String,
    pub(super) name: Option<String>,
    pub(super) url: Option<String>,
    /// A share's, fallback's or location's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) title: Option<String>,
    /// Set on stickers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) sticker_id: Option<u64>,
    /// A location's latitude and longitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) coordinates: Option<(f64, f64)>,
    /// Whether it is a sticker (a `sticker`, or an `image` with a sticker id).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) sticker: bool,
    /// A template's words, as an agent reads them ([`template_text`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) template: Option<String>,
}

impl QueuedFile {
    /// What stands for the content of a message that has none the channel can read: no
    /// file, no link; its lines are the unsupported-message notice.
    fn unsupported() -> Self {
        Self {
            kind: "unsupported".to_owned(),
            name: None,
            url: None,
            title: None,
            sticker_id: None,
            coordinates: None,
            sticker: false,
            template: None,
        }
    }
}

/// What a template says (a bot's or the Page's message with buttons or cards), one part a
/// line: its `text`, each element's title and subtitle (`title — subtitle`), and the buttons'
/// titles (`[Title]`, on the line of what they belong to); with its first link (a `web_url`
/// button's, an element's default action's or its media `url`). `None` when it says nothing.
///
/// Shapes, from Meta's Send API reference and peers' fixtures: `button` (`text`, `buttons`),
/// `generic` and `list` (`elements[]` with `title`, `subtitle`, `default_action`, `buttons`),
/// `media` (`elements[]` with `media_type`, `url`, `buttons`), `receipt` (`recipient_name`,
/// `elements[]` with `title`, `subtitle`) and others with the same parts; and a product a
/// customer shares from a shop (`product.elements[]` with `title`, `subtitle` (its price),
/// `image_url`, `retailer_id`, as in Meta's messages reference and restfb's fixtures), whose
/// link is its image. Fields of another shape are skipped.
pub(super) fn template_text(payload: &serde_json::Value) -> (Option<String>, Option<String>) {
    use serde_json::Value;
    let text = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mut link: Option<String> = None;
    let buttons = |owner: &Value, link: &mut Option<String>| -> Option<String> {
        let titles: Vec<String> = owner
            .get("buttons")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|b| {
                if link.is_none() {
                    *link = text(b, "url");
                }
                text(b, "title").map(|t| format!("[{t}]"))
            })
            .collect();
        (!titles.is_empty()).then(|| titles.join(" "))
    };
    let mut lines = Vec::new();
    if let Some(t) = text(payload, "text") {
        lines.push(t);
    }
    if let Some(b) = buttons(payload, &mut link) {
        lines.push(b);
    }
    let products = template_elements(payload.get("product"));
    let is_product = !products.is_empty();
    for element in template_elements(Some(payload)).iter().chain(products) {
        if link.is_none() {
            link = element
                .get("default_action")
                .and_then(|a| text(a, "url"))
                .or_else(|| text(element, "url"));
            if is_product && link.is_none() {
                link = text(element, "image_url");
            }
        }
        let words: Vec<String> = [text(element, "title"), text(element, "subtitle")]
            .into_iter()
            .flatten()
            .collect();
        let mut card = words.join(" — ");
        if let Some(b) = buttons(element, &mut link) {
            if !card.is_empty() {
                card.push(' ');
            }
            card.push_str(&b);
        }
        if !card.is_empty() {
            lines.push(card);
        }
    }
    ((!lines.is_empty()).then(|| lines.join("\n")), link)
}

/// A template's (or a shared product's) `elements`, or none.
fn template_elements(owner: Option<&serde_json::Value>) -> &[serde_json::Value] {
    owner
        .and_then(|o| o.get("elements"))
        .and_then(serde_json::Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The files of a message, as the inbox keeps them.
fn queued_files(attachments: &[crate::webhook::Attachment<'_>]) -> Vec<QueuedFile> {
    attachments
        .iter()
        .map(|a| {
            let info = AttachmentInfo::from(a);
            let (template, link) = match (a.kind, &a.payload) {
                (AttachmentKind::Template, Some(payload)) => payload
                    .to_value()
                    .map(|v| template_text(&v))
                    .unwrap_or_default(),
                _ => (None, None),
            };
            QueuedFile {
                kind: info.platform_kind.unwrap_or("file").to_owned(),
                name: info.name.map(str::to_owned),
                url: a.url.map(|u| u.decode().into_owned()).or(link),
                title: a.title.map(|t| t.decode().into_owned()),
                sticker_id: a.sticker_id,
                coordinates: a.coordinates.map(|c| (c.lat, c.long)),
                sticker: a.is_sticker(),
                template,
            }
        })
        .collect()
}

/// The thread key of a page and customer (unambiguous whatever the ids hold).
pub(super) fn thread_key(page: &str, customer: &str) -> String {
    format!("{}:{page}:{customer}", page.len())
}

/// A customer's message as the state machine takes it, with its time and channel.
pub(super) fn customer_message(inbound: Inbound, sent_ms: u64, standby: bool) -> Input {
    let sent = crate::time::from_millis(i64::try_from(sent_ms).unwrap_or(i64::MAX));
    Input::CustomerMessage(inbound.sent_at(sent).on_standby(standby))
}

/// The page and customer of a thread key.
pub(super) fn split_thread(thread: &str) -> Option<(&str, &str)> {
    let (len, rest) = thread.split_once(':')?;
    let len: usize = len.parse().ok()?;
    let page = rest.get(..len)?;
    let customer = rest.get(len..)?.strip_prefix(':')?;
    Some((page, customer))
}

/// What an event becomes in the inbox, if the channel acts on it.
fn queued(event: &Event<'_>) -> Option<Queued> {
    let customer = event.customer()?.as_str().to_owned();
    let owned = |s: &crate::webhook::JsonStr<'_>| s.decode().into_owned();
    let kind = match &event.kind {
        EventKind::Message(m) if m.is_deleted => QueuedKind::Unsent {
            mid: m.mid.as_str().to_owned(),
        },
        EventKind::Message(m) => {
            let mut files = queued_files(&m.attachments);
            // A message with neither text nor attachment is one Messenger could not pass on
            // (`is_unsupported: true`, in restfb's fixtures): the agent is told the customer
            // wrote, with the unsupported-message notice, rather than nothing.
            if m.text.is_none() && files.is_empty() {
                files.push(QueuedFile::unsupported());
            }
            QueuedKind::Message {
                mid: m.mid.as_str().to_owned(),
                text: m.text.as_ref().map(owned),
                files,
                reply_to: m.reply_to.as_ref().map(|r| r.as_str().to_owned()),
            }
        }
        // An echo this channel did not send (ours carry a key, and were taken out before).
        EventKind::Echo(e) => QueuedKind::Outside {
            mid: e.message.mid.as_str().to_owned(),
            app_id: e.app_id.map(|a| a.0),
            text: e.message.text.as_ref().map(owned),
            files: queued_files(&e.message.attachments),
            reply_to: e.message.reply_to.as_ref().map(|r| r.as_str().to_owned()),
        },
        EventKind::Reaction(r) => QueuedKind::Reaction {
            mid: r.mid.as_ref().map(|m| m.as_str().to_owned()),
            emoji: r.emoji.as_ref().map(owned),
            name: r.reaction.as_ref().map(owned),
            removed: r.action == ReactionAction::Unreact,
        },
        EventKind::MessageEdit(e) => QueuedKind::Edit {
            mid: e.mid.as_str().to_owned(),
            text: e.text.as_ref().map(owned).unwrap_or_default(),
            edit_count: e.num_edit,
        },
        EventKind::Delivery(d) => QueuedKind::Delivered {
            watermark: d.watermark,
        },
        EventKind::Read(r) => QueuedKind::Read {
            watermark: r.watermark,
        },
        EventKind::Postback(p) => QueuedKind::Postback {
            mid: p.mid.as_ref().map(|m| m.as_str().to_owned()),
            title: p.title.map(|t| t.decode().into_owned()),
            payload: p.payload.map(|t| t.decode().into_owned()),
        },
        EventKind::TakeThreadControl(_) => QueuedKind::ThreadTaken,
        EventKind::PassThreadControl(_) => QueuedKind::ThreadReturned,
        _ => return None,
    };
    Some(Queued {
        page: event.page_id.as_str().to_owned(),
        customer,
        sent_ms: event.timestamp,
        standby: event.standby,
        referral: referral(event),
        kind,
    })
}

/// The referral a message (an ad's, a shop's) or a postback (Get Started from an m.me
/// link) came with.
fn referral(event: &Event<'_>) -> Option<ThreadReferral> {
    let owned =
        |s: &Option<crate::webhook::JsonStr<'_>>| s.as_ref().map(|s| s.decode().into_owned());
    let referral = match &event.kind {
        EventKind::Message(m) => {
            let value = m.referral.as_ref()?.to_value().ok()?;
            let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
            ThreadReferral::new(field("ref"), field("source"), field("ad_id"))
        }
        EventKind::Postback(p) => {
            let r = p.referral.as_ref()?;
            ThreadReferral::new(owned(&r.ref_), owned(&r.source), owned(&r.ad_id))
        }
        _ => return None,
    };
    (!referral.is_empty()).then_some(referral)
}
impl Engine {
    /// Verifies, parses and records a webhook POST in the inbox, then applies its events.
    ///
    /// `Ok` means every event the channel acts on is durably recorded: answer 200. The
    /// report also says what was applied during the call; an event that could not be applied
    /// yet stays in the inbox and [`Engine::tick`] applies it later.
    ///
    /// # Errors
    /// [`EngineError::Webhook`] when the request is not authentic or not a webhook;
    /// [`EngineError::Store`] when the events could not be recorded. Answer with
    /// [`EngineError::status`] (a 5xx makes Meta deliver the body again).
    pub async fn handle_webhook(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<WebhookReport, EngineError> {
        let receipt = self.receive(headers, body, now).await?;
        let applied = self.apply_threads(&receipt.threads, now).await;
        Ok(WebhookReport::new(&receipt, applied))
    }

    /// Verifies, parses and records a webhook POST in the inbox, without applying it: the
    /// acknowledgement step. Apply the [`Receipt::threads`] next, with
    /// [`Engine::apply_threads`], typically after answering.
    ///
    /// # Errors
    /// As [`Engine::handle_webhook`].
    pub async fn receive(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<Receipt, EngineError> {
        let batch = self.webhook.verify_and_parse(headers, body)?;
        self.receive_batch(&batch, now).await
    }

    /// Records the events of a batch that the caller has verified (with [`Engine::webhook`]).
    ///
    /// # Errors
    /// [`EngineError::Store`] when the events could not be recorded; then none was.
    pub async fn receive_batch(
        &self,
        batch: &Batch<'_>,
        now: SystemTime,
    ) -> Result<Receipt, EngineError> {
        let span = tracing::debug_span!("receive", events = tracing::field::Empty);
        self.receive_events(batch, now, &span)
            .instrument(span.clone())
            .await
    }

    async fn receive_events(
        &self,
        batch: &Batch<'_>,
        now: SystemTime,
        span: &tracing::Span,
    ) -> Result<Receipt, EngineError> {
        let prepared = self.prepare(batch)?;
        span.record("events", prepared.events.len());
        let fresh = self
            .store
            .receive(&prepared.events, now, self.dedup_ttl)
            .await?;
        self.store.complete_sent(&prepared.echoes).await?;
        Ok(prepared.receipt(&fresh))
    }

    /// Reads a batch's items into inbox events and echoes of this channel's sends.
    fn prepare(&self, batch: &Batch<'_>) -> Result<Prepared, StoreError> {
        let mut prepared = Prepared::default();
        for item in batch.items() {
            let Ok(event) = item else {
                prepared.malformed += 1;
                continue;
            };
            // The echo of a message this channel sent: its effect is delivered, whatever
            // happens to the instance that sent it.
            if let EventKind::Echo(echo) = &event.kind {
                // With the app id configured, only an echo from this app is ours.
                let from_us = self.app_id.is_none_or(|ours| echo.app_id == Some(ours));
                if let Some(key) = echo.metadata.filter(|_| from_us).and_then(|m| {
                    m.decode()
                        .strip_prefix(super::ECHO_KEY_PREFIX)
                        .map(str::to_owned)
                }) {
                    // The echo carries the platform's id and time: recorded on the message's
                    // line too, in the same step (a send confirmed only by its echo, after a
                    // crash or a lost claim, gets its id all the same).
                    let at = crate::time::from_millis(
                        i64::try_from(event.timestamp).unwrap_or(i64::MAX),
                    );
                    prepared
                        .echoes
                        .push(SentMessage::echoed(key, echo.message.mid.as_str(), at));
                    continue;
                }
            }
            match queued(event) {
                Some(q) => {
                    let body =
                        serde_json::to_string(&q).map_err(|e| StoreError::Backend(Box::new(e)))?;
                    prepared.events.push(NewInboxEvent {
                        // The event's time first: keys arrive roughly in order, so the store's
                        // unique index grows at its end. Meta delivers an event again
                        // unchanged, time included.
                        key: format!(
                            "{:013}|{}",
                            event.timestamp.min(9_999_999_999_999),
                            event.dedup_key()
                        ),
                        thread: thread_key(&q.page, &q.customer),
                        body,
                    });
                }
                None => prepared.ignored += 1,
            }
        }
        Ok(prepared)
    }

    /// Verifies a webhook POST and records its body as it came, in one insert, without
    /// reading its events into the inbox: the acknowledgement step of the webhook route
    /// (`axum::WebhookRoutes`). `Ok` means the body is durably recorded: answer 200. Its
    /// events reach the inbox when [`Engine::unpack_webhooks`] unpacks it (the route's
    /// background drain, [`Engine::unpack_in_background`], does at once; [`Engine::tick`]'s
    /// sweep does what a crash or a failure left).
    ///
    /// # Errors
    /// [`EngineError::Webhook`] when the request is not authentic or not a webhook (nothing
    /// is recorded); [`EngineError::Store`] when the body could not be recorded. Answer with
    /// [`EngineError::status`] (a 5xx makes Meta deliver the body again).
    pub async fn record_webhook(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), EngineError> {
        let span = tracing::debug_span!("record_webhook", body_len = body.len());
        async {
            // Authentic and well formed, or refused before anything is recorded.
            let batch = self.webhook.verify_and_parse(headers, body)?;
            if batch.items().is_empty() {
                return Ok(());
            }
            self.store.record_webhook(body, now).await?;
            tracing::debug!(items = batch.items().len(), "webhook body recorded");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Unpacks recorded webhook bodies ([`Engine::record_webhook`]) into the inbox, in order
    /// of receipt, each in a transaction of its own, at most [`WEBHOOK_PAGE`] of them per
    /// call: with `received_by`, only the oldest ones received by then (it stops at the
    /// first body received later, so that no body overtakes an earlier one). Returns the
    /// threads with new events (to apply next), whether more bodies may be waiting, and the
    /// first store failure, if any.
    ///
    /// A body that fails stays recorded (a later call unpacks it), and so do the later
    /// bodies with events of the same customers ([`Unpacked::held`]), so that none overtakes
    /// it; bodies of other customers go on. After [`UNPACK_FAILURES_MAX`] failures in one
    /// call (the store is down), it stops.
    ///
    /// A body was verified and parsed when it was recorded; it is read again without this
    /// engine's size and depth limits (another instance, configured otherwise, may have
    /// recorded it). One that cannot be read at all is kept for the administrator
    /// ([`Unpacked::unreadable`]; logged once per process, and counted by
    /// `messenger_channel_webhook_bodies_unreadable_total`) and passed over.
    pub async fn unpack_webhooks(
        &self,
        received_by: Option<SystemTime>,
        now: SystemTime,
    ) -> Unpacked {
        let mut unpacked = Unpacked::default();
        let mut threads = HashSet::new();
        let unbounded = crate::webhook::Limits {
            max_body_bytes: usize::MAX,
            max_depth: crate::webhook::MAX_DEPTH_CEILING,
        };
        // Customers whose earlier body failed in this call: their later bodies wait too.
        let mut blocked: HashSet<String> = HashSet::new();
        let mut failures = 0;
        let mut after = 0;
        loop {
            let page = match self.store.webhooks(after, WEBHOOK_PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    unpacked.failed = Some(e.into());
                    return unpacked;
                }
            };
            let last_page = page.len() < WEBHOOK_PAGE;
            for recorded in page {
                after = recorded.seq;
                if received_by.is_some_and(|by| recorded.received_at > by) {
                    return unpacked;
                }
                if unpacked.bodies == WEBHOOK_PAGE {
                    unpacked.more = true;
                    return unpacked;
                }
                let span = tracing::debug_span!(
                    "unpack_webhook",
                    seq = recorded.seq,
                    events = tracing::field::Empty
                );
                let batch = match crate::webhook::parse_with_limits(&recorded.body, &unbounded) {
                    Ok(batch) => batch,
                    Err(e) => {
                        if self.claims.first_report_of_unreadable(recorded.seq) {
                            tracing::error!(parent: &span, seq = recorded.seq, error = %e, "recorded webhook body not readable; kept, and passed over");
                            metrics::counter!("messenger_channel_webhook_bodies_unreadable_total")
                                .increment(1);
                        }
                        unpacked.unreadable += 1;
                        continue;
                    }
                };
                let prepared = match self.prepare(&batch) {
                    Ok(prepared) => prepared,
                    Err(e) => {
                        // Its customers are unknown: nothing after it may go.
                        unpacked.failed.get_or_insert(e.into());
                        return unpacked;
                    }
                };
                let customers: Vec<String> =
                    prepared.events.iter().map(|e| e.thread.clone()).collect();
                if customers.iter().any(|t| blocked.contains(t)) {
                    blocked.extend(customers);
                    unpacked.held += 1;
                    continue;
                }
                match self.unpack_one(&recorded, prepared, now, &span).await {
                    Ok(receipt) => {
                        unpacked.bodies += 1;
                        unpacked.received += receipt.received;
                        unpacked.duplicates += receipt.duplicates;
                        for thread in receipt.threads {
                            if threads.insert(thread.clone()) {
                                unpacked.threads.push(thread);
                            }
                        }
                    }
                    Err(e) => {
                        tracing::warn!(parent: &span, error = %e, "recorded webhook body not unpacked yet");
                        blocked.extend(customers);
                        unpacked.held += 1;
                        unpacked.failed.get_or_insert(e);
                        failures += 1;
                        if failures >= UNPACK_FAILURES_MAX {
                            return unpacked;
                        }
                    }
                }
            }
            if last_page {
                return unpacked;
            }
        }
    }

    /// Unpacks one recorded body: echoes first (a crash after them unpacks the body again,
    /// and they mark the same effects delivered again), then its events and its removal in
    /// one transaction.
    async fn unpack_one(
        &self,
        recorded: &crate::store::RecordedWebhook,
        prepared: Prepared,
        now: SystemTime,
        span: &tracing::Span,
    ) -> Result<Receipt, EngineError> {
        span.record("events", prepared.events.len());
        self.store.complete_sent(&prepared.echoes).await?;
        let fresh = self
            .store
            .unpack_webhook(recorded.seq, &prepared.events, now, self.dedup_ttl)
            .instrument(span.clone())
            .await?;
        Ok(prepared.receipt(&fresh))
    }
}

/// How many recorded webhook bodies [`Engine::unpack_webhooks`] unpacks in one call.
pub const WEBHOOK_PAGE: usize = 64;

/// After this many bodies failed to unpack in one call, [`Engine::unpack_webhooks`] stops.
pub const UNPACK_FAILURES_MAX: usize = 3;

/// What [`Engine::unpack_webhooks`] did.
#[derive(Debug, Default)]
#[must_use = "it holds the threads to apply and the failure to report"]
#[non_exhaustive]
pub struct Unpacked {
    /// Bodies unpacked (and forgotten).
    pub bodies: usize,
    /// New events recorded in the inbox.
    pub received: usize,
    /// Events recorded before (redeliveries, or a body unpacked by another instance too).
    pub duplicates: usize,
    /// Bodies that could not be read at all (kept, passed over).
    pub unreadable: usize,
    /// Bodies that failed, and later bodies of the same customers, left recorded for a
    /// later call.
    pub held: usize,
    /// The threads with new events, to apply next ([`Engine::apply_threads`]).
    pub threads: Vec<String>,
    /// It stopped after a full page: more bodies may be waiting.
    pub more: bool,
    /// The first store failure (the body it hit stays recorded, see [`Unpacked::held`]).
    pub failed: Option<EngineError>,
}

/// A batch read for the inbox, before it is recorded.
#[derive(Debug, Default)]
struct Prepared {
    events: Vec<NewInboxEvent>,
    echoes: Vec<SentMessage>,
    ignored: usize,
    malformed: usize,
}

impl Prepared {
    /// The receipt once the store said which events were new (`fresh`, in order).
    fn receipt(&self, fresh: &[bool]) -> Receipt {
        let mut receipt = Receipt {
            ignored: self.ignored,
            malformed: self.malformed,
            echoes: self.echoes.len(),
            ..Receipt::default()
        };
        let mut threads = HashSet::new();
        for (event, new) in self.events.iter().zip(fresh) {
            if *new {
                receipt.received += 1;
                if threads.insert(event.thread.as_str()) {
                    receipt.threads.push(event.thread.clone());
                }
            } else {
                receipt.duplicates += 1;
            }
        }
        tracing::debug!(
            received = receipt.received,
            duplicates = receipt.duplicates,
            "webhook recorded"
        );
        for (outcome, n) in [
            ("received", receipt.received),
            ("duplicate", receipt.duplicates),
            ("echo", receipt.echoes),
            ("ignored", receipt.ignored),
            ("malformed", receipt.malformed),
        ] {
            if n > 0 {
                metrics::counter!("messenger_channel_webhook_events_total", "outcome" => outcome)
                    .increment(n as u64);
            }
        }
        receipt
    }
}

/// What [`Engine::handle_webhook`] did: what it recorded (the acknowledgement), and what it
/// applied during the call.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct WebhookReport {
    /// New events recorded in the inbox.
    pub received: usize,
    /// Events recorded before (redeliveries).
    pub duplicates: usize,
    /// Events the channel does not act on.
    pub ignored: usize,
    /// Echoes of this channel's own sends.
    pub echoes: usize,
    /// Items that could not be read.
    pub malformed: usize,
    /// Events applied to conversations during the call (this body's, or others' of the same
    /// threads).
    pub handled: usize,
    /// Threads whose next event could not be applied yet; it stays in the inbox.
    pub failed: Vec<(String, EngineError)>,
}

impl WebhookReport {
    fn new(receipt: &Receipt, applied: ApplyReport) -> Self {
        Self {
            received: receipt.received,
            duplicates: receipt.duplicates,
            ignored: receipt.ignored + applied.ignored,
            echoes: receipt.echoes,
            malformed: receipt.malformed,
            handled: applied.handled,
            failed: applied.failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_keys_are_unambiguous() {
        assert_ne!(thread_key("1:2", "3"), thread_key("1", "2:3"));
        assert_eq!(thread_key("10", "7"), "2:10:7");
        for (page, customer) in [("10", "7"), ("1:2", "3"), ("", ""), ("é", ":")] {
            assert_eq!(
                split_thread(&thread_key(page, customer)),
                Some((page, customer))
            );
        }
        for bad in ["", "x", "9:ab:c", "2:ab", "2:abc", "2é:ab:c"] {
            assert_eq!(split_thread(bad), None, "{bad}");
        }
    }
}
