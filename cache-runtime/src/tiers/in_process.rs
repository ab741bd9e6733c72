//! The in-process tier, on moka.
//!
//! moka owns the entries: capacity, TinyLFU admission and eviction, expiry. A moka `get`
//! costs more than a whole hit of simpler caches, though (it records every read for its
//! policy), so entries that are read are also published in a read index, a `papaya` map read
//! under an epoch guard without touching shared counters. moka's eviction listener removes an
//! entry from the index when moka drops it, and one hit in [`SAMPLE`] still goes through
//! moka, so that its frequency sketch keeps seeing which keys are hot.

use std::any::Any;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest an entry is kept in process: 100 years, in ms ("forever").
const MAX_KEEP_MS: u64 = 100 * 365 * 24 * 3600 * 1000;

use moka::notification::RemovalCause;
use moka::sync::Cache as Moka;

use crate::backend::EntryMeta;
use crate::cache::KEY_TAG_PREFIX;
use crate::clock::Clock;
use crate::codec::SerdeVTable;
use crate::tags::{KeyStamp, KeyVersions, TagRegistry, TagStamp, TagStamps};

/// An entry of the in-process tier: the value itself, never serialized, in the same
/// allocation as what describes it (`MemEntry<V>` is built, `MemEntry` of `dyn Any` is held).
pub(crate) struct MemEntry<V: ?Sized = dyn Any + Send + Sync> {
    pub(crate) meta: EntryMeta,
    stamps: TagStamps,
    /// Its key's counter in [`KeyVersions`], and the counter's value (a [`KeyStamp`], in two
    /// fields so that the compiler can pack the index beside the smaller fields).
    key_counter: u32,
    key_version: u64,
    epoch: u64,
    /// Its estimated bytes, when the tier is bounded by memory (see `weigh.rs`).
    weight: u32,
    /// Set when moka dropped the entry, so that a concurrent promotion into the read index
    /// takes it back out.
    dropped: AtomicBool,
    pub(crate) value: V,
}

/// One hit in this many (per thread) is also read through moka.
const SAMPLE: u32 = 16;

thread_local! {
    static HITS: Cell<u32> = const { Cell::new(0) };
}

type ReadIndex = papaya::HashMap<Box<[u8]>, Arc<MemEntry>, foldhash::fast::RandomState>;

/// Reads of the in-process tier under one epoch guard of its read index.
pub(crate) struct Reader<'a> {
    tier: &'a InProcessTier,
    index: papaya::HashMapRef<
        'a,
        Box<[u8]>,
        Arc<MemEntry>,
        foldhash::fast::RandomState,
        papaya::LocalGuard<'a>,
    >,
}

impl Reader<'_> {
    /// Calls `f` with the entry under `key`, if its tags and the clear epoch are unchanged and
    /// it is not past its stale window.
    #[inline]
    pub(crate) fn with_entry<T>(
        &self,
        key: &[u8],
        now: u64,
        f: impl FnOnce(&MemEntry) -> T,
    ) -> Option<T> {
        let tier = self.tier;
        if let Some(entry) = self.index.get(key) {
            let sampled = HITS.with(|hits| {
                let n = hits.get().wrapping_add(1);
                hits.set(n);
                n.is_multiple_of(SAMPLE)
            });
            if sampled {
                // Feed moka's frequency sketch; the value is already in hand.
                let _ = tier.entries.get(key);
            }
            return tier.valid(entry, now).then(|| f(entry));
        }
        let entry = tier.entries.get(key)?;
        // Publish it for the next reads; take it back if moka dropped it meanwhile.
        self.index.insert(key.into(), entry.clone());
        if entry.dropped.load(Ordering::SeqCst) {
            let _ = self
                .index
                .remove_if(key, |_, published| Arc::ptr_eq(published, &entry));
        }
        tier.valid(&entry, now).then(|| f(&entry))
    }
}

/// Tag versions, the key's version and the clear epoch taken when a load starts.
pub(crate) struct LocalStamp {
    pub(crate) stamps: Vec<TagStamp>,
    key: KeyStamp,
    epoch: u64,
}

/// What bounds the in-process tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bound {
    /// At most this many entries.
    Entries(u64),
    /// At most this many bytes, as entries are weighed (`weigh.rs`).
    Bytes(u64),
}

/// The in-process tier: a moka cache bounded by entry count or by estimated bytes, holding
/// values as they are (a hit clones the value, nothing is serialized), with tag epochs that
/// entries share by `Arc` and key versions in a table of atomic counters.
///
/// Build one through [`Cache::in_memory`](crate::Cache::in_memory),
/// [`CacheBuilder::max_entries`](crate::CacheBuilder::max_entries) or
/// [`CacheBuilder::max_memory`](crate::CacheBuilder::max_memory).
pub struct InProcessTier {
    bound: Bound,
    entries: Moka<Box<[u8]>, Arc<MemEntry>, foldhash::fast::RandomState>,
    read_index: Arc<ReadIndex>,
    tags: TagRegistry,
    keys: KeyVersions,
    epoch: AtomicU64,
    /// `cache_entries{tier="memory", cache}`: up on every insert, down on every removal
    /// (replacement, eviction, expiry, invalidation).
    #[cfg(feature = "metrics")]
    entries_gauge: metrics::Gauge,
}

/// moka keeps an entry until it is past its stale window, by the cache's clock (read when the
/// entry is inserted, rather than kept in every entry).
struct KeepUntilStale(Clock);

impl KeepUntilStale {
    fn keep(&self, entry: &MemEntry) -> Duration {
        let now = self.0.now_millis();
        // Capped, so that an entry that never expires does not overflow moka's clock.
        let ms = entry.meta.stale_until.saturating_sub(now);
        Duration::from_millis(ms.clamp(1, MAX_KEEP_MS))
    }
}

impl moka::Expiry<Box<[u8]>, Arc<MemEntry>> for KeepUntilStale {
    fn expire_after_create(
        &self,
        _: &Box<[u8]>,
        value: &Arc<MemEntry>,
        _: Instant,
    ) -> Option<Duration> {
        Some(self.keep(value))
    }
    fn expire_after_update(
        &self,
        _: &Box<[u8]>,
        value: &Arc<MemEntry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.keep(value))
    }
}

impl InProcessTier {
    /// A backend holding at most `max_entries` entries (moka's TinyLFU decides which go).
    pub fn new(max_entries: u64) -> Self {
        Self::bounded(Bound::Entries(max_entries), Clock::system())
    }

    /// A tier bounded by `bound`, whose entries moka keeps until they are past their stale
    /// window by `clock`.
    pub(crate) fn bounded(bound: Bound, clock: Clock) -> Self {
        let read_index: Arc<ReadIndex> = Arc::new(
            papaya::HashMap::builder()
                .hasher(foldhash::fast::RandomState::default())
                .build(),
        );
        let index = read_index.clone();
        #[cfg(feature = "metrics")]
        let entries_gauge = {
            static NEXT: AtomicU64 = AtomicU64::new(1);
            let id = NEXT.fetch_add(1, Ordering::Relaxed).to_string();
            metrics::gauge!("cache_entries", "tier" => "memory", "cache" => id)
        };
        #[cfg(feature = "metrics")]
        let removed = entries_gauge.clone();
        let unpublish = move |key: Arc<Box<[u8]>>, entry: Arc<MemEntry>, _: RemovalCause| {
            #[cfg(feature = "metrics")]
            removed.decrement(1.0);
            entry.dropped.store(true, Ordering::SeqCst);
            let _ = index
                .pin()
                .remove_if(&**key, |_, published| Arc::ptr_eq(published, &entry));
        };
        let builder = Moka::builder()
            .expire_after(KeepUntilStale(clock))
            .eviction_listener(unpublish);
        let (builder, about_entries) = match bound {
            Bound::Entries(n) => (builder.max_capacity(n), n),
            Bound::Bytes(bytes) => (
                builder
                    .max_capacity(bytes)
                    .weigher(|_, entry: &Arc<MemEntry>| entry.weight),
                bytes / crate::weigh::ENTRY_BYTES as u64,
            ),
        };
        InProcessTier {
            bound,
            entries: builder.build_with_hasher(foldhash::fast::RandomState::default()),
            read_index,
            tags: TagRegistry::new(),
            keys: KeyVersions::new(about_entries),
            epoch: AtomicU64::new(0),
            #[cfg(feature = "metrics")]
            entries_gauge,
        }
    }

    #[inline]
    fn valid(&self, entry: &MemEntry, now: u64) -> bool {
        entry.epoch == self.epoch.load(Ordering::Acquire)
            && now < entry.meta.stale_until
            && entry.stamps.current()
            && self.keys.current(KeyStamp {
                counter: entry.key_counter,
                version: entry.key_version,
            })
    }

    /// A reader of the tier, under one epoch guard of its read index (a single call's, or a
    /// whole batch's): entries it reads stay allocated until it is dropped, so it is not to be
    /// kept across an `.await`.
    #[inline]
    pub(crate) fn reader(&self) -> Reader<'_> {
        Reader {
            tier: self,
            index: self.read_index.pin(),
        }
    }

    /// Captures the current versions of `tags` (beginning their epochs) and the clear epoch.
    pub(crate) fn stamp(&self, tags: &[String]) -> LocalStamp {
        let mut stamp = LocalStamp {
            epoch: self.epoch.load(Ordering::Acquire),
            key: KeyStamp::NONE,
            stamps: Vec::with_capacity(tags.len()),
        };
        self.extend_stamp(&mut stamp, tags);
        stamp
    }

    /// Adds the versions of tags known only after the load. The first key tag is stamped in
    /// [`KeyVersions`], any other tag in the registry.
    pub(crate) fn extend_stamp(&self, stamp: &mut LocalStamp, tags: &[String]) {
        for tag in tags {
            if stamp.key.counter == KeyStamp::NONE.counter && tag.starts_with(KEY_TAG_PREFIX) {
                stamp.key = self.keys.stamp(tag);
            } else {
                stamp.stamps.push(self.tags.stamp(tag));
            }
        }
    }

    /// Stores `value` under `key`. When the tier is bounded by memory, the entry is weighed,
    /// with the value's heap read through `serde` when it is serializable.
    pub(crate) fn insert<V: Any + Send + Sync>(
        &self,
        key: Box<[u8]>,
        value: V,
        serde: Option<&SerdeVTable>,
        meta: EntryMeta,
        stamp: LocalStamp,
    ) {
        let weight = match self.bound {
            Bound::Entries(_) => 1,
            Bound::Bytes(_) => crate::weigh::entry_weight(
                key.len(),
                stamp.stamps.len(),
                std::mem::size_of::<V>(),
                &value,
                serde,
            ),
        };
        let entry: Arc<MemEntry> = Arc::new(MemEntry {
            meta,
            stamps: TagStamps::new(stamp.stamps),
            key_counter: stamp.key.counter,
            key_version: stamp.key.version,
            epoch: stamp.epoch,
            weight,
            dropped: AtomicBool::new(false),
            value,
        });
        #[cfg(feature = "metrics")]
        self.entries_gauge.increment(1.0);
        self.entries.insert(key, entry);
    }

    pub(crate) fn invalidate_tags(&self, tags: &[String]) {
        for tag in tags {
            if tag.starts_with(KEY_TAG_PREFIX) {
                self.keys.bump(tag);
            }
            // A key tag may also be in the registry, when a stamp carried two.
            self.tags.bump(tag);
        }
    }

    pub(crate) fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
        self.read_index.pin().clear();
    }

    /// How many entries are held (after pending evictions are applied).
    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// The entries' estimated bytes, when the tier is bounded by memory
    /// ([`CacheBuilder::max_memory`](crate::CacheBuilder::max_memory)); otherwise their number.
    pub fn weighed_size(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.weighted_size()
    }

    /// How many entries are published in the read index (at most [`entry_count`](Self::entry_count)
    /// once pending evictions are applied).
    pub fn read_index_len(&self) -> usize {
        self.entries.run_pending_tasks();
        self.read_index.len()
    }

    /// How many tags are tracked (by hash; entry keys are versioned apart, in a fixed table).
    /// Tags that no entry carries any more are pruned.
    pub fn tracked_tags(&self) -> usize {
        self.entries.run_pending_tasks();
        self.tags.prune();
        self.tags.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(stale_until: u64) -> EntryMeta {
        EntryMeta {
            fresh_until: stale_until,
            stale_until,
            load_micros: 0,
        }
    }

    /// moka keeps an entry until its stale window ends by the cache's clock, not the system's:
    /// with a manual clock a day ahead, an entry 50 ms from the end of its window is gone from
    /// moka 50 ms later in real time, and one that never goes stale stays.
    #[test]
    fn moka_keeps_an_entry_until_its_stale_window_ends_by_the_cache_s_clock() {
        let (clock, manual) = Clock::manual();
        manual.advance(Duration::from_secs(24 * 3600));
        let tier = InProcessTier::bounded(Bound::Entries(10), clock.clone());
        let now = clock.now_millis();
        let stamp = || tier.stamp(&[]);
        tier.insert(b"soon".to_vec().into(), 1u8, None, meta(now + 50), stamp());
        tier.insert(b"never".to_vec().into(), 2u8, None, meta(u64::MAX), stamp());
        let held = |key: &[u8]| tier.entries.contains_key(key);
        assert!(held(b"soon") && held(b"never"));
        // moka's own clock decides; its housekeeping drops expired entries later, by the second.
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !held(b"soon"),
            "the entry past its window has expired in moka"
        );
        assert!(held(b"never"));
    }
}
