//! A third-party backend, written only against the public `Backend` trait: a map that counts
//! every operation and can be switched to fail.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use cache_runtime::backend::{
    Backend, BackendError, BackendErrorKind, BackendFuture, EntryKey, FeedEvent, Fetched,
    LockToken, StoredEntry, Versions,
};
use parking_lot::Mutex;

#[derive(Default)]
pub struct Ops {
    pub gets: AtomicUsize,
    pub puts: AtomicUsize,
    pub tag_reads: AtomicUsize,
    pub invalidations: AtomicUsize,
    pub clears: AtomicUsize,
    pub unlocks: AtomicUsize,
    /// Calls of `get_many` and `put_many`: one round trip each.
    pub get_batches: AtomicUsize,
    pub put_batches: AtomicUsize,
}

#[derive(Clone, Default)]
pub struct RecordingBackend {
    entries: Arc<Mutex<HashMap<(u64, String), StoredEntry>>>,
    versions: Arc<Mutex<HashMap<String, u64>>>,
    pub ops: Arc<Ops>,
    pub down: Arc<AtomicBool>,
    /// Bumped by `clear`: stamps of an older generation are not stored.
    generation: Arc<AtomicUsize>,
    /// Another instance holds every lock.
    pub locked_elsewhere: Arc<AtomicBool>,
    /// When set, every `get` waits at this gate before it reads.
    get_gate: Arc<Mutex<Option<crate::support::Gate>>>,
    /// With [`with_feed`](Self::with_feed): the feeds of the caches over this backend, told
    /// only that they are connected (so that the caches keep an in-process tier).
    feeds: Option<Arc<Mutex<Vec<tokio::sync::mpsc::UnboundedSender<FeedEvent>>>>>,
}

impl RecordingBackend {
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// A backend with an invalidation feed that only ever says "connected": caches over it
    /// keep an in-process tier and trust their invalidation log.
    pub fn with_feed() -> RecordingBackend {
        RecordingBackend {
            feeds: Some(Arc::default()),
            ..RecordingBackend::default()
        }
    }

    /// A handle on the same entries and versions whose `get`s are never held.
    pub fn ungated(&self) -> RecordingBackend {
        RecordingBackend {
            get_gate: Arc::default(),
            ..self.clone()
        }
    }

    /// `get`s no longer stop (those already at the gate still wait for a permit).
    pub fn open_gets(&self) {
        *self.get_gate.lock() = None;
    }

    /// From now on every `get` stops at the gate after it read, before it answers.
    pub fn hold_gets(&self) -> crate::support::Gate {
        let gate = crate::support::Gate {
            reached: Arc::new(tokio::sync::Semaphore::new(0)),
            release: Arc::new(tokio::sync::Semaphore::new(0)),
        };
        *self.get_gate.lock() = Some(gate.clone());
        gate
    }

    /// How many clears went through.
    pub fn generation(&self) -> usize {
        self.generation.load(Ordering::SeqCst)
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.entries.lock().keys().map(|(_, k)| k.clone()).collect();
        keys.sort();
        keys
    }

    pub fn version(&self, tag: &str) -> u64 {
        *self.versions.lock().get(tag).unwrap_or(&0)
    }

    fn check(&self) -> Result<(), BackendError> {
        if self.down.load(Ordering::SeqCst) {
            Err(BackendError::new(
                BackendErrorKind::Unavailable,
                "recording backend is down",
            ))
        } else {
            Ok(())
        }
    }

    fn current(&self, tags: impl Iterator<Item = String>) -> Vec<u64> {
        let versions = self.versions.lock();
        tags.map(|t| *versions.get(&t).unwrap_or(&0)).collect()
    }
}

impl Backend for RecordingBackend {
    fn get<'a>(&'a self, key: EntryKey<'a>) -> BackendFuture<'a, Option<Fetched>> {
        Box::pin(async move {
            self.ops.gets.fetch_add(1, Ordering::SeqCst);
            self.check()?;
            let entry = self
                .entries
                .lock()
                .get(&(key.scope, key.key.to_owned()))
                .cloned();
            let fetched = entry.map(|entry| Fetched {
                current_versions: self.current(entry.tags.iter().map(|(t, _)| t.clone())),
                entry,
            });
            // Read, then stall: the reply of a slow network.
            let gate = self.get_gate.lock().clone();
            if let Some(gate) = gate {
                gate.reached.add_permits(1);
                gate.release.acquire().await.expect("gate open").forget();
            }
            Ok(fetched)
        })
    }

    fn get_many<'a>(
        &'a self,
        keys: &'a [EntryKey<'a>],
        _trusting_feed: bool,
    ) -> BackendFuture<'a, Vec<Result<Option<Fetched>, BackendError>>> {
        Box::pin(async move {
            self.ops.get_batches.fetch_add(1, Ordering::SeqCst);
            let mut reads = Vec::new();
            for key in keys {
                reads.push(self.get(*key).await);
            }
            Ok(reads)
        })
    }

    fn put_many<'a>(&'a self, entries: Vec<(EntryKey<'a>, StoredEntry)>) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            self.ops.put_batches.fetch_add(1, Ordering::SeqCst);
            for (key, entry) in entries {
                self.put(key, entry).await?;
            }
            Ok(())
        })
    }

    fn tag_versions<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, Vec<u64>> {
        Box::pin(async move {
            self.ops.tag_reads.fetch_add(1, Ordering::SeqCst);
            self.check()?;
            Ok(self.current(tags.iter().cloned()))
        })
    }

    fn stamp_versions<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, Versions> {
        Box::pin(async move {
            Ok(Versions {
                generation: self.generation.load(Ordering::SeqCst) as u64,
                ..Versions {
                    tags: self.tag_versions(tags).await?,
                    watermark: None,
                    generation: 0,
                }
            })
        })
    }

    fn put<'a>(&'a self, key: EntryKey<'a>, entry: StoredEntry) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            self.ops.puts.fetch_add(1, Ordering::SeqCst);
            self.check()?;
            if entry.generation != self.generation.load(Ordering::SeqCst) as u64 {
                return Ok(()); // stamped before a clear: outdated
            }
            self.entries
                .lock()
                .insert((key.scope, key.key.to_owned()), entry);
            Ok(())
        })
    }

    fn invalidate_tags<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            self.ops.invalidations.fetch_add(1, Ordering::SeqCst);
            self.check()?;
            let mut versions = self.versions.lock();
            for tag in tags {
                *versions.entry(tag.clone()).or_insert(0) += 1;
            }
            Ok(())
        })
    }

    fn clear(&self) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            self.ops.clears.fetch_add(1, Ordering::SeqCst);
            self.check()?;
            self.generation.fetch_add(1, Ordering::SeqCst);
            self.entries.lock().clear();
            Ok(())
        })
    }

    fn feed(&self) -> Option<cache_runtime::backend::Feed> {
        let feeds = self.feeds.as_ref()?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(FeedEvent::Connected).ok()?;
        feeds.lock().push(tx);
        Some(rx)
    }

    fn try_lock<'a>(
        &'a self,
        _key: EntryKey<'a>,
        _ttl: std::time::Duration,
    ) -> BackendFuture<'a, Option<LockToken>> {
        let held = self.locked_elsewhere.load(Ordering::SeqCst);
        Box::pin(std::future::ready(Ok((!held).then_some(LockToken(1)))))
    }

    fn unlock<'a>(&'a self, _key: EntryKey<'a>, _token: LockToken) -> BackendFuture<'a, ()> {
        self.ops.unlocks.fetch_add(1, Ordering::SeqCst);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Any backend, with its `get`, `get_many`, `put` and `put_many` calls counted: a batch's
/// round trips to a real Redis (each `get_many` and `put_many` of the Redis backend is one
/// pipeline on a single server).
#[derive(Clone)]
pub struct Counted<B> {
    inner: Arc<B>,
    pub calls: Arc<Ops>,
}

impl<B: Backend> Counted<B> {
    pub fn new(inner: B) -> Self {
        Counted {
            inner: Arc::new(inner),
            calls: Arc::default(),
        }
    }
}

impl<B: Backend> Backend for Counted<B> {
    fn get<'a>(&'a self, key: EntryKey<'a>) -> BackendFuture<'a, Option<Fetched>> {
        self.calls.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }
    fn get_trusting_feed<'a>(&'a self, key: EntryKey<'a>) -> BackendFuture<'a, Option<Fetched>> {
        self.calls.gets.fetch_add(1, Ordering::SeqCst);
        self.inner.get_trusting_feed(key)
    }
    fn get_many<'a>(
        &'a self,
        keys: &'a [EntryKey<'a>],
        trusting_feed: bool,
    ) -> BackendFuture<'a, Vec<Result<Option<Fetched>, BackendError>>> {
        self.calls.get_batches.fetch_add(1, Ordering::SeqCst);
        self.inner.get_many(keys, trusting_feed)
    }
    fn tag_versions<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, Vec<u64>> {
        self.calls.tag_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.tag_versions(tags)
    }
    fn stamp_versions<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, Versions> {
        self.calls.tag_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.stamp_versions(tags)
    }
    fn put<'a>(&'a self, key: EntryKey<'a>, entry: StoredEntry) -> BackendFuture<'a, ()> {
        self.calls.puts.fetch_add(1, Ordering::SeqCst);
        self.inner.put(key, entry)
    }
    fn put_many<'a>(&'a self, entries: Vec<(EntryKey<'a>, StoredEntry)>) -> BackendFuture<'a, ()> {
        self.calls.put_batches.fetch_add(1, Ordering::SeqCst);
        self.inner.put_many(entries)
    }
    fn invalidate_tags<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, ()> {
        self.calls.invalidations.fetch_add(1, Ordering::SeqCst);
        self.inner.invalidate_tags(tags)
    }
    fn clear(&self) -> BackendFuture<'_, ()> {
        self.inner.clear()
    }
    fn healthy(&self) -> bool {
        self.inner.healthy()
    }
    fn feed(&self) -> Option<cache_runtime::backend::Feed> {
        self.inner.feed()
    }
    fn try_lock<'a>(
        &'a self,
        key: EntryKey<'a>,
        ttl: std::time::Duration,
    ) -> BackendFuture<'a, Option<LockToken>> {
        self.inner.try_lock(key, ttl)
    }
    fn unlock<'a>(&'a self, key: EntryKey<'a>, token: LockToken) -> BackendFuture<'a, ()> {
        self.inner.unlock(key, token)
    }
    fn stores_bytes(&self) -> bool {
        self.inner.stores_bytes()
    }
}
