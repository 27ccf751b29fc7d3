//! An in-memory router whose calls a test can fail or hold at their start, to deliver router
//! effects late, twice or out of order (`tests/capacity.rs`, `tests/capacity_races.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::SystemTime;

use messenger_channel::agents::{AgentRouter, Hold, InMemoryRouter, OfferRequest, PickOutcome};
use messenger_channel::ids::{AgentId, ConversationId};
use messenger_channel::routing::{AgentProfile, AgentStatus, Presence};
use messenger_channel::store::StoreError;

/// Wraps an [`InMemoryRouter`]. Each `hold_*` flag holds the next such call at its start
/// (`hold_reserve`: at its end, the reservation made) (signalling `entered`) until `go` is
/// notified; `fail_start` and `fail_release_once` fail the next such call; `fail_release`
/// `fail_offer_end` and `fail_statuses` (reads of every agent) fail every such call while set.
pub struct GatedRouter {
    pub inner: Arc<InMemoryRouter>,
    pub hold_release: AtomicBool,
    pub hold_start: AtomicBool,
    pub fail_release: AtomicBool,
    pub fail_release_once: AtomicBool,
    pub fail_start: AtomicBool,
    pub fail_offer_end: AtomicBool,
    pub fail_statuses: AtomicBool,
    pub hold_reserve: AtomicBool,
    /// How many times `reserve_offer` was called.
    pub reserve_calls: AtomicUsize,
    pub entered: tokio::sync::Notify,
    pub go: tokio::sync::Notify,
}

impl GatedRouter {
    pub fn new(inner: Arc<InMemoryRouter>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            hold_release: AtomicBool::new(false),
            hold_start: AtomicBool::new(false),
            fail_release: AtomicBool::new(false),
            fail_release_once: AtomicBool::new(false),
            fail_start: AtomicBool::new(false),
            fail_offer_end: AtomicBool::new(false),
            fail_statuses: AtomicBool::new(false),
            hold_reserve: AtomicBool::new(false),
            reserve_calls: AtomicUsize::new(0),
            entered: tokio::sync::Notify::new(),
            go: tokio::sync::Notify::new(),
        })
    }

    async fn maybe_hold(&self, flag: &AtomicBool) {
        if flag.swap(false, Ordering::SeqCst) {
            self.entered.notify_one();
            self.go.notified().await;
        }
    }

    fn blip() -> StoreError {
        StoreError::Backend("blip".into())
    }
}

#[async_trait::async_trait]
impl AgentRouter for GatedRouter {
    async fn upsert_agent(&self, p: &AgentProfile) -> Result<(), StoreError> {
        self.inner.upsert_agent(p).await
    }
    async fn update_presence(&self, a: &AgentId, p: Presence) -> Result<(), StoreError> {
        self.inner.update_presence(a, p).await
    }
    async fn presence_after_offer(
        &self,
        a: &AgentId,
        p: Presence,
        at: SystemTime,
    ) -> Result<bool, StoreError> {
        self.inner.presence_after_offer(a, p, at).await
    }
    async fn renewal_unused(
        &self,
        c: &ConversationId,
        a: &AgentId,
        renewed: SystemTime,
        offer: SystemTime,
    ) -> Result<(), StoreError> {
        self.inner.renewal_unused(c, a, renewed, offer).await
    }
    async fn agent_statuses(&self, now: SystemTime) -> Result<Vec<AgentStatus>, StoreError> {
        if self.fail_statuses.load(Ordering::SeqCst) {
            return Err(Self::blip());
        }
        self.inner.agent_statuses(now).await
    }
    async fn reserve_offer(
        &self,
        c: &ConversationId,
        r: &OfferRequest<'_>,
        h: Hold,
    ) -> Result<Option<AgentId>, StoreError> {
        self.reserve_calls.fetch_add(1, Ordering::SeqCst);
        let reserved = self.inner.reserve_offer(c, r, h).await;
        self.maybe_hold(&self.hold_reserve).await;
        reserved
    }
    async fn reserve_pick(
        &self,
        c: &ConversationId,
        a: &AgentId,
        u: u32,
        h: Hold,
    ) -> Result<PickOutcome, StoreError> {
        self.inner.reserve_pick(c, a, u, h).await
    }
    async fn session_started(
        &self,
        c: &ConversationId,
        a: &AgentId,
        u: u32,
        now: SystemTime,
    ) -> Result<(), StoreError> {
        if self.fail_start.swap(false, Ordering::SeqCst) {
            return Err(Self::blip());
        }
        self.maybe_hold(&self.hold_start).await;
        self.inner.session_started(c, a, u, now).await
    }
    async fn offer_ended(
        &self,
        c: &ConversationId,
        a: &AgentId,
        until: Option<SystemTime>,
    ) -> Result<(), StoreError> {
        if self.fail_offer_end.load(Ordering::SeqCst) {
            return Err(Self::blip());
        }
        self.inner.offer_ended(c, a, until).await
    }
    async fn session_released(&self, c: &ConversationId, a: &AgentId) -> Result<(), StoreError> {
        if self.fail_release.load(Ordering::SeqCst)
            || self.fail_release_once.swap(false, Ordering::SeqCst)
        {
            return Err(Self::blip());
        }
        self.maybe_hold(&self.hold_release).await;
        self.inner.session_released(c, a).await
    }
}
