//! Transaction scopes: invalidations issued inside one are held until it ends, then applied,
//! so that a read between a write and its commit cannot cache the row the commit replaces
//! after the invalidation already went by.
//!
//! The scope is task-local (`tokio::task_local!`), so `#[invalidates]` methods called inside
//! it need no change. It covers the task that runs it and the futures it awaits (`join!`,
//! `select!`); a task it spawns is covered when its future is wrapped in
//! [`Cache::inherit_transaction`](super::Cache::inherit_transaction).

use std::future::Future;
use std::sync::{Arc, Mutex};

use super::Cache;

tokio::task_local! {
    /// The scopes the running task is inside, one per cache.
    static SCOPES: Scopes;
}

/// The transaction scopes a task is inside, by cache id, innermost last.
#[derive(Clone, Default)]
struct Scopes(Vec<(u64, Arc<Held>)>);

/// What one cache's scope holds back.
#[derive(Default)]
pub(super) struct Held(Mutex<HeldState>);

#[derive(Default)]
struct HeldState {
    tags: Vec<String>,
    clear: bool,
    /// Once the scope ended, nothing more is held: a task that inherited it and outlived it
    /// invalidates at once.
    closed: bool,
}

impl Held {
    fn state(&self) -> std::sync::MutexGuard<'_, HeldState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_open(&self) -> bool {
        !self.state().closed
    }

    /// Holds `tags` (and a clear) back; `false` when the scope already ended.
    pub(super) fn hold(&self, tags: &[String], clear: bool) -> bool {
        let mut state = self.state();
        if state.closed {
            return false;
        }
        state.tags.extend_from_slice(tags);
        state.clear |= clear;
        true
    }

    /// Ends the scope: what it held, to apply now (or to hand to the scope around it).
    fn close(&self) -> (Vec<String>, bool) {
        let mut state = self.state();
        state.closed = true;
        let mut tags = std::mem::take(&mut state.tags);
        tags.sort_unstable();
        tags.dedup();
        (tags, std::mem::take(&mut state.clear))
    }
}

/// The innermost scope of `cache` the running task is inside that has not ended, if any (a
/// task that inherited a scope may outlive it).
pub(super) fn current(cache: &Cache) -> Option<Arc<Held>> {
    SCOPES
        .try_with(|scopes| {
            scopes
                .0
                .iter()
                .rev()
                .find(|(id, held)| *id == cache.id() && held.is_open())
                .map(|(_, held)| held.clone())
        })
        .ok()
        .flatten()
}

/// Ends a scope however its future ends (completed, dropped, panicking): what it held goes to
/// the open scope around it, or is applied: the in-process part at once, the shared backend's
/// queued (and, when the scope completed, awaited).
struct Closing<'c> {
    cache: &'c Cache,
    held: Arc<Held>,
    outer: Option<Arc<Held>>,
}

impl Closing<'_> {
    /// Ends the scope; what is left to apply, if anything.
    fn close(&self) -> Option<(Vec<String>, bool)> {
        let (tags, clear) = self.held.close();
        if tags.is_empty() && !clear {
            return None;
        }
        // Nested: the scope around it holds it until it ends, unless it ended already.
        if self
            .outer
            .as_ref()
            .is_some_and(|outer| outer.hold(&tags, clear))
        {
            return None;
        }
        self.cache.apply_held_without_waiting(&tags, clear);
        Some((tags, clear))
    }
}

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        if self.held.is_open() {
            self.close();
        }
    }
}

/// [`Cache::transaction`].
pub(super) async fn run<F: Future>(cache: &Cache, work: F) -> F::Output {
    let held = Arc::new(Held::default());
    let closing = Closing {
        cache,
        held: held.clone(),
        outer: current(cache),
    };
    let mut scopes = SCOPES.try_with(Scopes::clone).unwrap_or_default();
    scopes.0.push((cache.id(), held));
    let output = SCOPES.scope(scopes, work).await;
    if let Some((tags, _)) = closing.close() {
        // Applied here and queued; an error was logged, and the queue retries.
        let _ = cache.flush_pending("Cache::transaction", &tags).await;
    }
    output
}

/// [`Cache::inherit_transaction`].
pub(super) fn inherit<F: Future>(work: F) -> impl Future<Output = F::Output> {
    let scopes = SCOPES.try_with(Scopes::clone).ok();
    async move {
        match scopes {
            Some(scopes) => SCOPES.scope(scopes, work).await,
            None => work.await,
        }
    }
}
