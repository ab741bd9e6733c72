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

/// The transaction scopes a task is inside: one per cache, by cache id.
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

    /// Holds `tags` back; `false` when the scope already ended.
    pub(super) fn hold(&self, tags: &[String]) -> bool {
        let mut state = self.state();
        if state.closed {
            return false;
        }
        for tag in tags {
            if !state.tags.contains(tag) {
                state.tags.push(tag.clone());
            }
        }
        true
    }

    /// Holds a clear back; `false` when the scope already ended.
    pub(super) fn hold_clear(&self) -> bool {
        let mut state = self.state();
        if state.closed {
            return false;
        }
        state.clear = true;
        true
    }

    /// Ends the scope: what it held, to apply now.
    fn close(&self) -> (Vec<String>, bool) {
        let mut state = self.state();
        state.closed = true;
        (
            std::mem::take(&mut state.tags),
            std::mem::take(&mut state.clear),
        )
    }
}

/// The scope `cache` is inside in the running task, if any.
pub(super) fn current(cache: &Cache) -> Option<Arc<Held>> {
    SCOPES
        .try_with(|scopes| {
            scopes
                .0
                .iter()
                .find(|(id, _)| *id == cache.id())
                .map(|(_, held)| held.clone())
        })
        .ok()
        .flatten()
}

/// Applies what a scope held when it ends, even if its future is dropped (cancelled): the
/// in-process part at once, the shared backend's through the queue of pending invalidations.
struct Closing<'c> {
    cache: &'c Cache,
    held: Arc<Held>,
    done: bool,
}

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        if !self.done {
            let (tags, clear) = self.held.close();
            self.cache.apply_held_without_waiting(&tags, clear);
        }
    }
}

/// [`Cache::transaction`].
pub(super) async fn run<F: Future>(cache: &Cache, work: F) -> F::Output {
    if current(cache).is_some() {
        // Nested: the outermost scope of this cache holds everything until it ends.
        return work.await;
    }
    let held = Arc::new(Held::default());
    let mut scopes = SCOPES.try_with(Scopes::clone).unwrap_or_default();
    scopes.0.push((cache.id(), held.clone()));
    let mut closing = Closing {
        cache,
        held: held.clone(),
        done: false,
    };
    let output = SCOPES.scope(scopes, work).await;
    let (tags, clear) = held.close();
    closing.done = true;
    // An error was logged and counted, and the invalidation stays queued.
    let _ = cache.apply_held(&tags, clear).await;
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
