//! Blocking functions: `#[cached]` and `#[invalidates]` on a plain `fn`.
//!
//! A blocking call runs the same core as an `async` one, driven on the calling thread by
//! [`block_on`], over the **in-process tier only**: it never awaits the network, so it can
//! block a thread (an async runtime's worker included) without waiting on anything that
//! thread would have to run. What it may wait for is another thread's load of the same key
//! (single flight), and that load is a blocking body running on its own thread.
//!
//! - Its values are kept in process, also when the cache has a shared backend (they are not
//!   written there). With a shared backend, the in-process tier is used while the
//!   invalidation feed vouches for it; otherwise the body runs, uncached.
//! - Its `swr` refreshes run on a thread of their own (at most [`MAX_REFRESH_THREADS`] at
//!   once), never on an async runtime's worker.
//! - Its invalidations apply in process at once and are queued for the shared backend, which
//!   they reach in the background (`Cache::invalidate_tags` from async code waits for it).

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

/// Wakes the thread blocked in [`block_on`].
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on this thread, parking it while the future waits.
#[doc(hidden)]
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        thread::park();
    }
}

/// The most refresh threads of blocking functions running at once, in the process; past it,
/// a stale value is refreshed in the foreground, by the caller that found it.
pub const MAX_REFRESH_THREADS: usize = 16;

static REFRESH_THREADS: AtomicUsize = AtomicUsize::new(0);

/// A refresh thread's place among the [`MAX_REFRESH_THREADS`], held until it ends.
pub(crate) struct RefreshThread(());

impl RefreshThread {
    /// Takes a place, if one is free.
    pub(crate) fn reserve() -> Option<Self> {
        REFRESH_THREADS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |running| {
                (running < MAX_REFRESH_THREADS).then_some(running + 1)
            })
            .ok()
            .map(|_| RefreshThread(()))
    }
}

impl Drop for RefreshThread {
    fn drop(&mut self) {
        REFRESH_THREADS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs a blocking function's background refresh on a thread of its own, inside `runtime`
/// (the cache's, if it was built in one) so that a body that reaches for the runtime finds
/// it.
pub(crate) fn spawn_refresh(
    refresh: impl Future<Output = ()> + Send + 'static,
    running: RefreshThread,
    runtime: Option<tokio::runtime::Handle>,
) {
    let spawned = thread::Builder::new()
        .name("cache-refresh".into())
        .spawn(move || {
            let _running = running;
            let _inside = runtime.as_ref().map(tokio::runtime::Handle::enter);
            block_on(refresh)
        });
    if let Err(error) = spawned {
        tracing::event!(
            target: crate::LOG_TARGET,
            tracing::Level::WARN,
            cache.op = "refresh",
            %error,
            "no thread for a background refresh: the value is refreshed on its next expiry"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_waits_for_a_wake_from_another_thread() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = thread::spawn(move || {
            thread::sleep(std::time::Duration::from_millis(20));
            tx.send(7).unwrap();
        });
        assert_eq!(block_on(rx), Ok(7));
        sender.join().unwrap();
    }
}
