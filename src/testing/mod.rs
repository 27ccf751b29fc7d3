//! What a host needs to test its integration (feature `test-util`): signed webhook bodies, a
//! fake [`SendApi`](crate::send::SendApi) that records, a manual clock, and the conformance
//! suite a storage backend must pass. The crate's own tests, benches and the desk's simulator
//! use the same pieces.
//!
//! | item | what it is |
//! |---|---|
//! | [`WebhookBody`] | a webhook POST body as Meta sends it (messages, files, postbacks, echoes, thread control, `standby`), signed into a [`SignedBody`]: the bytes and the `X-Hub-Signature-256` header |
//! | [`FakeSend`] | a [`SendApi`](crate::send::SendApi) that records every message ([`Sent`]) and download, serves files from a map, and fails, or hangs, on demand; as a [`PageApi`](crate::send::PageApi) it serves user profiles and records the other calls |
//! | [`TestClock`] | a manual clock: `now()`, `advance(d)`; the crate takes `now` as a parameter, so a test passes `clock.now()` |
//! | [`conformance::run`] | every check of the [`ConversationStore`](crate::store::ConversationStore) and [`MediaStore`](crate::store::MediaStore) contracts, against a host's own backend; [`conformance::run_profiles`] the [`ProfileStore`](crate::profile::ProfileStore) contract |
//!
//! Enable the feature for tests only:
//!
//! ```toml
//! [dev-dependencies]
//! messenger-channel = { version = "0.1", features = ["test-util"] }
//! ```
//!
//! # Example
//!
//! A customer's message, signed with the app secret, goes through an engine whose replies go
//! to a [`FakeSend`]; the test then reads what the engine did:
//!
//! ```
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use messenger_channel::agents::{InMemoryRouter, Presence, RecordingNotifier};
//! use messenger_channel::engine::Engine;
//! use messenger_channel::ids::AgentId;
//! use messenger_channel::secret::AppSecret;
//! use messenger_channel::testing::{FakeSend, TestClock, WebhookBody};
//! use messenger_channel::webhook::Webhook;
//!
//! let secret = AppSecret::new("test-app-secret")?;
//! let send = Arc::new(FakeSend::new());
//! let agents = Arc::new(InMemoryRouter::new());
//! agents.set_presence(&AgentId::from("ada"), Presence::Available);
//! let engine = Engine::builder(Webhook::new(&secret), send.clone())
//!     .router(agents)
//!     .notifier(Arc::new(RecordingNotifier::new()))
//!     .build();
//! let clock = TestClock::default();
//!
//! let post = WebhookBody::new("104987654321098")
//!     .message("24012345678901234", "m_1", "Where is my parcel?", clock.now())
//!     .sign(&secret);
//! let report = engine.handle_webhook(&post.headers(), post.body(), clock.now()).await?;
//! assert_eq!(report.handled, 1);
//!
//! clock.advance(Duration::from_secs(5));
//! engine.tick(clock.now()).await?;
//! assert!(send.sent().is_empty(), "nothing is sent before an agent accepts");
//! # Ok(())
//! # }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(demo()).unwrap();
//! ```

pub mod conformance;
mod send;

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

pub use crate::webhook::{SignedBody, WebhookBody};
pub use send::{FakeSend, Hang, Sent};

/// Where [`TestClock::default`] starts, in seconds since the Unix epoch: 2024-06-10 06:13:20
/// UTC, a fixed instant so that tests do not depend on the machine's clock.
pub const T0_UNIX_SECS: u64 = 1_718_000_000;

/// The instant [`TestClock::default`] starts at ([`T0_UNIX_SECS`]).
pub fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0_UNIX_SECS)
}

/// A clock that moves only when told to, for tests.
///
/// The crate never reads the system clock for a conversation's time: every call takes `now`.
/// A test holds one `TestClock`, passes `clock.now()` and moves it with
/// [`TestClock::advance`]; it can be shared (`&self` everywhere).
///
/// ```
/// use std::time::Duration;
/// use messenger_channel::testing::{TestClock, t0};
///
/// let clock = TestClock::default();
/// assert_eq!(clock.now(), t0());
/// let later = clock.advance(Duration::from_secs(90));
/// assert_eq!(later, t0() + Duration::from_secs(90));
/// assert_eq!(clock.elapsed(), Duration::from_secs(90));
/// assert_eq!(clock.after(Duration::from_secs(10)), t0() + Duration::from_secs(10));
/// ```
#[derive(Debug)]
pub struct TestClock {
    start: SystemTime,
    now: Mutex<SystemTime>,
}

impl TestClock {
    /// A clock that reads `start` until it is moved.
    pub fn new(start: SystemTime) -> Self {
        Self {
            start,
            now: Mutex::new(start),
        }
    }

    /// The current time.
    pub fn now(&self) -> SystemTime {
        *self.lock()
    }

    /// Moves the clock forward by `by`; returns the new time.
    ///
    /// # Panics
    ///
    /// If the sum is past what [`SystemTime`] represents.
    pub fn advance(&self, by: Duration) -> SystemTime {
        let mut now = self.lock();
        *now += by;
        *now
    }

    /// Sets the clock to `to` (backwards too: a test of clock skew may need it).
    pub fn set(&self, to: SystemTime) {
        *self.lock() = to;
    }

    /// The time the clock started at.
    pub fn start(&self) -> SystemTime {
        self.start
    }

    /// `by` after the start, wherever the clock is now.
    ///
    /// # Panics
    ///
    /// If the sum is past what [`SystemTime`] represents.
    pub fn after(&self, by: Duration) -> SystemTime {
        self.start + by
    }

    /// How far the clock moved from its start (zero if it was set before it).
    pub fn elapsed(&self) -> Duration {
        self.now()
            .duration_since(self.start)
            .unwrap_or(Duration::ZERO)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SystemTime> {
        // A panic elsewhere while the lock was held cannot leave a time half-written.
        self.now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Default for TestClock {
    /// A clock at [`t0`].
    fn default() -> Self {
        Self::new(t0())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static_assertions::assert_impl_all!(TestClock: Send, Sync);

    #[test]
    fn moves_only_when_told() {
        let clock = TestClock::new(SystemTime::UNIX_EPOCH);
        assert_eq!(clock.now(), SystemTime::UNIX_EPOCH);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.elapsed(), Duration::from_millis(1500));
        clock.set(SystemTime::UNIX_EPOCH);
        assert_eq!(clock.elapsed(), Duration::ZERO);
        assert_eq!(clock.start(), SystemTime::UNIX_EPOCH);
    }
}
