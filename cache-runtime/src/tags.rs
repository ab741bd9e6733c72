//! Tag versions for the in-process tier, and the log of recent invalidations.
//!
//! Invalidation follows Symfony's `TagAwareAdapter`: every tag has a version, every entry
//! remembers the versions of its tags when its load *started*, and an entry is valid only while
//! all of them are unchanged. Invalidating a tag bumps one counter, whatever the number of
//! entries carrying it.
//!
//! In process, a version lives in a [`TagCell`] that entries hold by `Arc`, so that checking
//! a hit is one atomic load per tag, with no hashing of tag names. The registry maps names to
//! cells through `Weak` pointers: a tag that no entry and no running load carries any more is
//! dropped from it, so the bookkeeping does not grow as ids come and go.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

const SHARDS: usize = 16;

/// The current version of one tag.
#[derive(Debug)]
pub(crate) struct TagCell {
    version: AtomicU64,
}

impl TagCell {
    #[inline]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }
}

/// A tag cell and the version an entry was loaded under.
pub(crate) type TagStamp = (Arc<TagCell>, u64);

type Shard = Mutex<ShardMap>;

struct ShardMap {
    cells: HashMap<Box<str>, Weak<TagCell>, foldhash::fast::RandomState>,
    prune_at: usize,
}

/// Name → cell, for the tags that some entry or running load still carries.
pub(crate) struct TagRegistry {
    shards: Box<[Shard]>,
    hasher: foldhash::fast::RandomState,
}

impl TagRegistry {
    pub(crate) fn new() -> Self {
        TagRegistry {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(ShardMap {
                        cells: HashMap::default(),
                        prune_at: 64,
                    })
                })
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, tag: &str) -> &Shard {
        &self.shards[self.hasher.hash_one(tag) as usize % SHARDS]
    }

    /// The cell of `tag`, created at version 0 when nothing carries the tag yet, with its
    /// current version.
    pub(crate) fn stamp(&self, tag: &str) -> TagStamp {
        let mut shard = self.shard(tag).lock();
        if let Some(cell) = shard.cells.get(tag).and_then(Weak::upgrade) {
            let version = cell.version();
            return (cell, version);
        }
        let cell = Arc::new(TagCell {
            version: AtomicU64::new(0),
        });
        shard.cells.insert(tag.into(), Arc::downgrade(&cell));
        if shard.cells.len() >= shard.prune_at {
            shard.cells.retain(|_, weak| weak.strong_count() > 0);
            shard.prune_at = (shard.cells.len() * 2).max(64);
        }
        (cell, 0)
    }

    /// Bumps `tag`'s version. A tag that nothing carries needs no bump.
    pub(crate) fn bump(&self, tag: &str) {
        let shard = self.shard(tag).lock();
        if let Some(cell) = shard.cells.get(tag).and_then(Weak::upgrade) {
            cell.version.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// How many tags are tracked, dead ones not yet pruned included.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().cells.len()).sum()
    }

    /// Drops the names of tags that nothing carries any more.
    pub(crate) fn prune(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.cells.retain(|_, weak| weak.strong_count() > 0);
            shard.prune_at = (shard.cells.len() * 2).max(64);
        }
    }
}

/// Whether every stamp still carries its tag's current version.
#[inline]
pub(crate) fn stamps_current(stamps: &[TagStamp]) -> bool {
    stamps.iter().all(|(cell, v)| cell.version() == *v)
}

const LOG_SIZE: usize = 4096;
const ALL: u64 = u64::MAX;

/// The last few thousand invalidations, by tag hash and sequence number.
///
/// A load records the sequence number when it starts. Before it stores its value, and before a
/// waiter accepts the value of a load it joined, the log answers whether any of the load's tags
/// (including tags computed from the result, which cannot be stamped in advance) were
/// invalidated since. When the log has wrapped past that point the answer is conservatively yes.
pub(crate) struct InvalidationLog {
    inner: Mutex<LogRing>,
    hasher: foldhash::fast::FixedState,
}

struct LogRing {
    next: u64,
    ring: Box<[u64]>,
}

impl InvalidationLog {
    pub(crate) fn new() -> Self {
        InvalidationLog {
            inner: Mutex::new(LogRing {
                next: 0,
                ring: vec![0; LOG_SIZE].into_boxed_slice(),
            }),
            hasher: foldhash::fast::FixedState::with_seed(0x5eed_cafe),
        }
    }

    /// The hash by which the log knows a tag.
    pub(crate) fn hash(&self, tag: &str) -> u64 {
        match self.hasher.hash_one(tag) {
            ALL => ALL - 1,
            h => h,
        }
    }

    /// The sequence number a load starting now records.
    pub(crate) fn position(&self) -> u64 {
        self.inner.lock().next
    }

    /// Records invalidations of the tags with these hashes.
    pub(crate) fn record(&self, hashes: impl IntoIterator<Item = u64>) {
        let mut log = self.inner.lock();
        for hash in hashes {
            let at = (log.next % LOG_SIZE as u64) as usize;
            log.ring[at] = hash;
            log.next += 1;
        }
    }

    /// Records that everything was invalidated.
    pub(crate) fn record_all(&self) {
        self.record([ALL]);
    }

    /// Whether a tag among `hashes` (or everything) was invalidated since `since`.
    pub(crate) fn invalidated_since(&self, since: u64, hashes: &[u64]) -> bool {
        let log = self.inner.lock();
        if log.next == since {
            return false;
        }
        if log.next - since > LOG_SIZE as u64 {
            return true;
        }
        (since..log.next).any(|seq| {
            let hash = log.ring[(seq % LOG_SIZE as u64) as usize];
            hash == ALL || hashes.contains(&hash)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_invalidates_stamps_and_dead_tags_are_pruned() {
        let registry = TagRegistry::new();
        let stamp = registry.stamp("customer.1");
        assert!(stamps_current(std::slice::from_ref(&stamp)));
        registry.bump("customer.1");
        assert!(!stamps_current(std::slice::from_ref(&stamp)));
        drop(stamp);
        for i in 0..10_000 {
            drop(registry.stamp(&format!("customer.{i}")));
        }
        registry.prune();
        assert_eq!(registry.len(), 0);
    }

    #[test]
    fn log_answers_since_a_position() {
        let log = InvalidationLog::new();
        let start = log.position();
        assert!(!log.invalidated_since(start, &[log.hash("a")]));
        log.record([log.hash("b")]);
        assert!(!log.invalidated_since(start, &[log.hash("a")]));
        assert!(log.invalidated_since(start, &[log.hash("b")]));
        let later = log.position();
        log.record_all();
        assert!(log.invalidated_since(later, &[log.hash("a")]));
        let wrapped = log.position();
        log.record((0..LOG_SIZE as u64 + 1).map(|i| i + 7));
        assert!(log.invalidated_since(wrapped, &[log.hash("zzz")]));
    }
}
