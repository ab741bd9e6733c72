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
//! - Its `swr` refreshes run on a thread of their own, never on an async runtime's worker.
//! - Its invalidations apply in process at once and are queued for the shared backend, which
//!   they reach in the background (`Cache::invalidate_tags` from async code waits for it).

use std::future::Future;
use std::pin::pin;
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

/// Runs a blocking function's background refresh on a thread of its own.
pub(crate) fn spawn_refresh(refresh: impl Future<Output = ()> + Send + 'static) {
    let spawned = thread::Builder::new()
        .name("cache-refresh".into())
        .spawn(move || block_on(refresh));
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
