//! The in-process tier, on moka.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache as Moka;

use super::EntryMeta;
use crate::tags::{stamps_current, TagRegistry, TagStamp};

/// An entry of the in-process tier: the value itself, never serialized.
pub(crate) struct MemEntry {
    pub(crate) value: Box<dyn Any + Send + Sync>,
    pub(crate) meta: EntryMeta,
    stamps: Box<[TagStamp]>,
    epoch: u64,
    keep_for: Duration,
}

/// Tag versions and the clear epoch taken when a load starts.
pub(crate) struct LocalStamp {
    pub(crate) stamps: Vec<TagStamp>,
    epoch: u64,
}

/// The in-process backend: a moka cache bounded by entry count, holding values as they are
/// (a hit clones the value, nothing is serialized), with tag versions in shared atomic cells.
///
/// Build one through [`Cache::in_memory`](crate::Cache::in_memory) or
/// [`CacheBuilder::max_entries`](crate::CacheBuilder::max_entries).
pub struct MemoryBackend {
    entries: Moka<Box<[u8]>, Arc<MemEntry>, foldhash::fast::RandomState>,
    tags: TagRegistry,
    epoch: AtomicU64,
}

struct KeepUntilStale;

impl moka::Expiry<Box<[u8]>, Arc<MemEntry>> for KeepUntilStale {
    fn expire_after_create(&self, _: &Box<[u8]>, value: &Arc<MemEntry>, _: Instant) -> Option<Duration> {
        Some(value.keep_for)
    }
    fn expire_after_update(
        &self,
        _: &Box<[u8]>,
        value: &Arc<MemEntry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.keep_for)
    }
}

impl MemoryBackend {
    /// A backend holding at most `max_entries` entries (moka's TinyLFU decides which go).
    pub fn new(max_entries: u64) -> Self {
        MemoryBackend {
            entries: Moka::builder()
                .max_capacity(max_entries)
                .expire_after(KeepUntilStale)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            tags: TagRegistry::new(),
            epoch: AtomicU64::new(0),
        }
    }

    /// The entry under `key`, if its tags and the clear epoch are unchanged and it is not past
    /// its stale window.
    #[inline]
    pub(crate) fn get(&self, key: &[u8], now: u64) -> Option<Arc<MemEntry>> {
        let entry = self.entries.get(key)?;
        let valid = entry.epoch == self.epoch.load(Ordering::Acquire)
            && now < entry.meta.stale_until
            && stamps_current(&entry.stamps);
        valid.then_some(entry)
    }

    /// Captures the current versions of `tags` (creating their cells) and the clear epoch.
    pub(crate) fn stamp(&self, tags: &[String]) -> LocalStamp {
        LocalStamp {
            epoch: self.epoch.load(Ordering::Acquire),
            stamps: tags.iter().map(|t| self.tags.stamp(t)).collect(),
        }
    }

    /// Adds the versions of tags known only after the load.
    pub(crate) fn extend_stamp(&self, stamp: &mut LocalStamp, tags: &[String]) {
        stamp.stamps.extend(tags.iter().map(|t| self.tags.stamp(t)));
    }

    pub(crate) fn insert(
        &self,
        key: Box<[u8]>,
        value: Box<dyn Any + Send + Sync>,
        meta: EntryMeta,
        stamp: LocalStamp,
        now: u64,
    ) {
        let keep_for = Duration::from_millis(meta.stale_until.saturating_sub(now).max(1));
        let entry = MemEntry {
            value,
            meta,
            stamps: stamp.stamps.into_boxed_slice(),
            epoch: stamp.epoch,
            keep_for,
        };
        self.entries.insert(key, Arc::new(entry));
    }

    pub(crate) fn invalidate_tags(&self, tags: &[String]) {
        for tag in tags {
            self.tags.bump(tag);
        }
    }

    pub(crate) fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
    }

    /// How many entries are held (after pending evictions are applied).
    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// How many tag names are tracked. Tags that no entry carries any more are pruned.
    pub fn tracked_tags(&self) -> usize {
        self.entries.run_pending_tasks();
        self.tags.prune();
        self.tags.len()
    }
}
