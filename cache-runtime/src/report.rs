//! What the cache did for the calls made inside a future, e.g. to tell an HTTP client whether
//! its response came from the cache.

use std::cell::RefCell;
use std::future::Future;

/// What a cached call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// Answered from a fresh entry.
    Hit,
    /// Answered from an expired entry inside its stale window.
    Stale,
    /// The body ran (or the call waited for another caller's load).
    Miss,
    /// The cache was bypassed (`condition` false, or the backend failing).
    Bypass,
}

/// One cached call made inside [`observe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The method's name.
    pub method: &'static str,
    /// The rendered key.
    pub key: String,
    /// What happened.
    pub outcome: CallOutcome,
}

tokio::task_local! {
    static OBSERVED: RefCell<Vec<Observed>>;
}

/// Runs `future` and returns, with its output, what the cache did for each cached call it
/// made (in this task).
///
/// ```
/// use cache_runtime::{cached, observe, CallOutcome, Cache};
///
/// struct Repo { cache: Cache }
/// impl Repo {
///     #[cached(key = "n.{n}", ttl = 60)]
///     async fn get(&self, n: u32) -> u32 { n }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let repo = Repo { cache: Cache::in_memory(10) };
/// let (_, first) = observe(repo.get(1)).await;
/// let (_, second) = observe(repo.get(1)).await;
/// assert_eq!(first[0].outcome, CallOutcome::Miss);
/// assert_eq!((second[0].key.as_str(), second[0].outcome), ("n.1", CallOutcome::Hit));
/// # }
/// ```
pub async fn observe<F: Future>(future: F) -> (F::Output, Vec<Observed>) {
    OBSERVED
        .scope(RefCell::new(Vec::new()), async move {
            let output = future.await;
            let observed = OBSERVED.with(|o| std::mem::take(&mut *o.borrow_mut()));
            (output, observed)
        })
        .await
}

/// Whether the current task runs inside [`observe`].
#[inline]
pub(crate) fn observing() -> bool {
    OBSERVED.try_with(|_| ()).is_ok()
}

/// Records a call, when inside [`observe`].
#[inline]
pub(crate) fn record(method: &'static str, key: impl FnOnce() -> String, outcome: CallOutcome) {
    let _ = OBSERVED.try_with(|o| {
        o.borrow_mut().push(Observed {
            method,
            key: key(),
            outcome,
        });
    });
}
