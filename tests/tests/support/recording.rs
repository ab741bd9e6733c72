//! A third-party backend, written only against the public `Backend` trait: a map that counts
//! every operation and can be switched to fail.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use cache_runtime::backend::{
    Backend, BackendError, BackendErrorKind, BackendFuture, EntryKey, Fetched, StoredEntry,
};
use parking_lot::Mutex;

#[derive(Default)]
pub struct Ops {
    pub gets: AtomicUsize,
    pub puts: AtomicUsize,
    pub tag_reads: AtomicUsize,
    pub invalidations: AtomicUsize,
    pub clears: AtomicUsize,
}

#[derive(Clone, Default)]
pub struct RecordingBackend {
    entries: Arc<Mutex<HashMap<(u64, String), StoredEntry>>>,
    versions: Arc<Mutex<HashMap<String, u64>>>,
    pub ops: Arc<Ops>,
    pub down: Arc<AtomicBool>,
}

impl RecordingBackend {
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
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
            Ok(entry.map(|entry| Fetched {
                current_versions: self.current(entry.tags.iter().map(|(t, _)| t.clone())),
                entry,
            }))
        })
    }

    fn tag_versions<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, Vec<u64>> {
        Box::pin(async move {
            self.ops.tag_reads.fetch_add(1, Ordering::SeqCst);
            self.check()?;
            Ok(self.current(tags.iter().cloned()))
        })
    }

    fn put<'a>(&'a self, key: EntryKey<'a>, entry: StoredEntry) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            self.ops.puts.fetch_add(1, Ordering::SeqCst);
            self.check()?;
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
            self.entries.lock().clear();
            Ok(())
        })
    }
}
