//! The worker: the engine's background loop (feature `worker`).

use std::sync::Arc;
use std::time::SystemTime;

use super::Engine;

/// The running worker started by [`Engine::start`]. Stop it with [`Worker::stop`]; dropping
/// it stops it too (abruptly, which is safe: whatever it held is taken over later).
#[derive(Debug)]
pub struct Worker {
    stop: Arc<tokio::sync::Notify>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Worker {
    /// Asks the worker to stop after the pass under way, and waits for it.
    pub async fn stop(mut self) {
        self.stop.notify_one();
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                if e.is_panic() {
                    tracing::error!(error = %e, "the worker panicked");
                }
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Engine {
    /// Starts the engine's worker on the current tokio runtime, and returns its handle. It
    /// first takes back the effects this instance held before it last stopped
    /// ([`crate::engine::EngineBuilder::instance`]), then, every
    /// [`crate::engine::DeliveryConfig::poll`], runs [`Engine::tick`] with the current time:
    /// events left in the inbox are applied, timers fire, and the outbox's due effects are
    /// delivered (claimed in small batches, the claim renewed while they are worked on).
    /// Start it once per engine, before serving webhooks.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(self: &Arc<Self>) -> Worker {
        let stop = Arc::new(tokio::sync::Notify::new());
        let engine = Arc::clone(self);
        let signal = Arc::clone(&stop);
        let task = tokio::spawn(async move { engine.work(&signal).await });
        Worker {
            stop,
            task: Some(task),
        }
    }

    async fn work(&self, stop: &tokio::sync::Notify) {
        let mut took_back = false;
        loop {
            if !took_back {
                match self.reclaim().await {
                    Ok(_) => took_back = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not take back earlier claims; trying again");
                    }
                }
            }
            if took_back {
                if let Err(e) = self.tick(SystemTime::now()).await {
                    tracing::warn!(error = %e, "worker pass failed; trying again");
                }
            }
            if tokio::time::timeout(self.delivery.poll, stop.notified())
                .await
                .is_ok()
            {
                return;
            }
        }
    }
}
