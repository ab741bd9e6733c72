//! The replay task: retries, in the background, the invalidations and clears the shared
//! backend refused, until it takes them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::pending::Attempt;
use super::Inner;

/// How often queued invalidations are retried while the shared backend refuses them.
const REPLAY_PERIOD: Duration = Duration::from_millis(50);

/// Starts the replay task unless it is running. It ends when nothing is pending, or when the
/// cache is dropped.
pub(super) fn start(inner: &Arc<Inner>) {
    if inner.replaying.swap(true, Ordering::AcqRel) {
        return;
    }
    let runtime = tokio::runtime::Handle::try_current().ok();
    let Some(runtime) = runtime.or_else(|| inner.runtime.clone()) else {
        // Off any runtime: the next invalidation made on one sends what is queued, and
        // until then this instance does not read the shared backend.
        inner.replaying.store(false, Ordering::Release);
        return;
    };
    let weak = Arc::downgrade(inner);
    // A task the runtime drops, unpolled or mid-way (it is shutting down, or gone: the
    // cache's own runtime, reached from a thread off any), must not leave `replaying` set for
    // good. (Cleared again after a normal end: at worst a second replay runs for a while.)
    let running = Running(weak.clone());
    runtime.spawn(async move {
        let _running = running;
        loop {
            tokio::time::sleep(REPLAY_PERIOD).await;
            let Some(inner) = weak.upgrade() else { return };
            let Some(shared) = inner.shared.as_deref() else {
                return;
            };
            if !inner.pending.any() || inner.pending.flush(shared, Attempt::Replay).await.is_ok() {
                inner.replaying.store(false, Ordering::Release);
                if inner.pending.any() {
                    // Added after the flush: go on.
                    if !inner.replaying.swap(true, Ordering::AcqRel) {
                        continue;
                    }
                }
                return;
            }
        }
    });
}

/// Clears `replaying` when the replay task is dropped, however it ends.
struct Running(std::sync::Weak<Inner>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner.replaying.store(false, Ordering::Release);
        }
    }
}
