//! Invalidations (and clears) a shared backend has not accepted yet: queued before they are
//! sent, deduplicated, sent in batches, kept until the backend takes them.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::backend::{Backend, BackendError};
use crate::LOG_TARGET;

/// Invalidations (and clears) not yet accepted by the shared backend: queued before they are
/// sent, kept until the backend takes them, sent in batches. While any are pending, the
/// shared backend is bypassed, so that no pre-write value is served.
///
/// The queue is bounded: past [`MAX_PENDING_TAGS`] tags (a long outage of a busy writer), the
/// queued tags give way to one pending clear of the whole namespace, which covers them all.
/// Nothing is dropped without something stronger in its place.
#[derive(Default)]
pub(crate) struct PendingInvalidations {
    any: AtomicBool,
    queue: Mutex<PendingQueue>,
    flushing: tokio::sync::Mutex<()>,
}

/// The most tags queued for the shared backend before they give way to a pending clear.
pub(crate) const MAX_PENDING_TAGS: usize = 10_000;

#[derive(Default)]
struct PendingQueue {
    clear: bool,
    tags: std::collections::VecDeque<String>,
    queued: std::collections::HashSet<String>,
}

impl PendingQueue {
    fn push_back(&mut self, tag: String) {
        if self.queued.insert(tag.clone()) {
            self.tags.push_back(tag);
        }
    }

    fn overflow_into_clear(&mut self) {
        if self.tags.len() > MAX_PENDING_TAGS {
            tracing::event!(
                target: LOG_TARGET,
                tracing::Level::WARN,
                cache.op = "error",
                queued = self.tags.len(),
                "too many invalidations queued for the shared backend: \
                 a clear of the namespace will be sent instead"
            );
            self.tags.clear();
            self.queued.clear();
            self.clear = true;
        }
    }
}

const FLUSH_BATCH: usize = 500;

/// Who sends pending invalidations.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// The caller of an invalidation. While the backend is unhealthy it tries only when no
    /// other send is under way (one probe at a time), and otherwise gives up at once: the
    /// send under way delivers what is queued.
    Foreground,
    /// The background replay: tries anyway, to go through as soon as the backend answers.
    Replay,
}

/// What one send of the flush carries.
enum Batch {
    Clear,
    Tags(Vec<String>),
}

/// Puts a batch being sent back at the front of the queue unless it was delivered, so that a
/// failed or cancelled send loses nothing.
struct InFlight<'a> {
    pending: &'a PendingInvalidations,
    batch: Option<Batch>,
}

impl InFlight<'_> {
    fn delivered(mut self) {
        self.batch = None;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let Some(batch) = self.batch.take() else {
            return;
        };
        let mut queue = self.pending.queue.lock();
        match batch {
            Batch::Clear => queue.clear = true,
            Batch::Tags(tags) => {
                for tag in tags.into_iter().rev() {
                    if queue.queued.insert(tag.clone()) {
                        queue.tags.push_front(tag);
                    }
                }
                queue.overflow_into_clear();
            }
        }
        self.pending.any.store(true, Ordering::Release);
    }
}

impl PendingInvalidations {
    pub(crate) fn add(&self, tags: &[String]) {
        let mut queue = self.queue.lock();
        for tag in tags {
            queue.push_back(tag.clone());
        }
        queue.overflow_into_clear();
        self.any.store(true, Ordering::Release);
    }

    pub(crate) fn add_clear(&self) {
        let mut queue = self.queue.lock();
        // Tags queued before the clear are covered by it.
        queue.tags.clear();
        queue.queued.clear();
        queue.clear = true;
        self.any.store(true, Ordering::Release);
    }

    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.any.load(Ordering::Acquire)
    }

    /// How many tags are queued, and whether a clear is.
    #[cfg(test)]
    fn queued(&self) -> (usize, bool) {
        let queue = self.queue.lock();
        (queue.tags.len(), queue.clear)
    }

    fn next_batch(&self) -> Option<Batch> {
        let mut queue = self.queue.lock();
        if queue.clear {
            queue.clear = false;
            return Some(Batch::Clear);
        }
        if queue.tags.is_empty() {
            self.any.store(false, Ordering::Release);
            return None;
        }
        let n = queue.tags.len().min(FLUSH_BATCH);
        let batch: Vec<String> = queue.tags.drain(..n).collect();
        for tag in &batch {
            queue.queued.remove(tag);
        }
        Some(Batch::Tags(batch))
    }

    /// Sends the pending invalidations to `backend`: a pending clear first, then tags a batch
    /// at a time.
    pub(crate) async fn flush(
        &self,
        backend: &dyn Backend,
        attempt: Attempt,
    ) -> Result<(), BackendError> {
        let _one_at_a_time = if attempt == Attempt::Foreground && !backend.healthy() {
            self.flushing.try_lock().map_err(|_| {
                BackendError::new(
                    crate::backend::BackendErrorKind::Unavailable,
                    "the shared backend is failing: the invalidation is queued and retried",
                )
            })?
        } else {
            self.flushing.lock().await
        };
        while let Some(batch) = self.next_batch() {
            let in_flight = InFlight {
                pending: self,
                batch: Some(batch),
            };
            match in_flight.batch.as_ref().expect("just set") {
                Batch::Clear => crate::exported::backend_call("clear", backend.clear()).await?,
                Batch::Tags(tags) => {
                    crate::exported::backend_call("invalidate", backend.invalidate_tags(tags))
                        .await?
                }
            }
            in_flight.delivered();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overflowing_queue_gives_way_to_a_clear_and_keeps_what_comes_after() {
        let pending = PendingInvalidations::default();
        let tags: Vec<String> = (0..=MAX_PENDING_TAGS).map(|i| format!("t.{i}")).collect();
        pending.add(&tags[..MAX_PENDING_TAGS]);
        assert_eq!(pending.queued(), (MAX_PENDING_TAGS, false));
        pending.add(&tags[MAX_PENDING_TAGS..]);
        assert_eq!(pending.queued(), (0, true), "one clear covers them all");
        pending.add(&["after".to_owned()]);
        assert_eq!(pending.queued(), (1, true));
        assert!(pending.any());
        pending.add_clear();
        assert_eq!(pending.queued(), (0, true));
    }
}
