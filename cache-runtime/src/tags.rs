//! Tag epochs for the in-process tier, and the log of recent invalidations.
//!
//! Invalidation follows Symfony's `TagAwareAdapter`: every tag has a version, every entry
//! remembers the versions of its tags when its load *started*, and an entry is valid only while
//! all of them are unchanged. Invalidating a tag costs the same whatever the number of entries
//! carrying it.
//!
//! In process, a tag's current version is a [`TagEpoch`] that entries hold by `Arc`: invalidating
//! the tag marks its epoch ended (every entry stamped with it goes invalid at once) and forgets
//! it, so that the next load stamps a new one. Checking a hit is one atomic load per tag, with no
//! hashing of tag names, and a tag costs each entry carrying it one pointer, however many
//! entries share it. The registry knows tags by a 64-bit hash of their name, not by the name:
//! two tags whose hashes collide share their epochs, so invalidating one also drops the other's
//! entries (a spurious miss, never a stale hit). It holds epochs through `Weak` pointers: a tag
//! that no entry and no running load carries any more is dropped from it, so the bookkeeping does
//! not grow as ids come and go.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

const SHARDS: usize = 16;

/// One version of one tag: current until the tag is invalidated.
#[derive(Debug, Default)]
pub(crate) struct TagEpoch {
    ended: AtomicBool,
}

impl TagEpoch {
    /// Whether the tag has not been invalidated since this epoch began.
    #[inline]
    pub(crate) fn current(&self) -> bool {
        !self.ended.load(Ordering::Acquire)
    }
}

/// The epoch of a tag an entry was loaded under.
pub(crate) type TagStamp = Arc<TagEpoch>;

type Shard = Mutex<ShardMap>;

/// Tag hashes to their current epochs. The hashes are already mixed: the map does not hash
/// them again.
struct ShardMap {
    epochs: HashMap<u64, Weak<TagEpoch>, PassThrough>,
    prune_at: usize,
}

/// A hasher for keys that are hashes already.
#[derive(Clone, Copy, Default)]
struct PassThrough;

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

#[derive(Default)]
struct PassThroughHasher(u64);

impl std::hash::Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Tag hash → current epoch, for the tags that some entry or running load still carries.
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
                        epochs: HashMap::default(),
                        prune_at: 64,
                    })
                })
                .collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn shard(&self, tag: &str) -> (&Shard, u64) {
        let hash = self.hasher.hash_one(tag);
        // The map uses the lowest bits (its buckets) and the highest seven (its control
        // bytes); the shard is chosen by bits in between.
        (&self.shards[(hash >> 32) as usize % SHARDS], hash)
    }

    /// The current epoch of `tag`, begun now when nothing carries the tag yet.
    pub(crate) fn stamp(&self, tag: &str) -> TagStamp {
        let (shard, hash) = self.shard(tag);
        let mut shard = shard.lock();
        if let Some(epoch) = shard.epochs.get(&hash).and_then(Weak::upgrade) {
            return epoch;
        }
        let epoch = Arc::new(TagEpoch::default());
        shard.epochs.insert(hash, Arc::downgrade(&epoch));
        if shard.epochs.len() >= shard.prune_at {
            shard.epochs.retain(|_, weak| weak.strong_count() > 0);
            shard.prune_at = (shard.epochs.len() * 2).max(64);
        }
        epoch
    }

    /// Ends `tag`'s current epoch: every entry stamped with it is invalid from now on, and the
    /// next stamp begins a new one. A tag that nothing carries needs nothing.
    pub(crate) fn bump(&self, tag: &str) {
        let (shard, hash) = self.shard(tag);
        let mut shard = shard.lock();
        if let Some(weak) = shard.epochs.remove(&hash) {
            if let Some(epoch) = weak.upgrade() {
                epoch.ended.store(true, Ordering::Release);
            }
        }
    }

    /// How many tags are tracked, dead ones not yet pruned included.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().epochs.len()).sum()
    }

    /// Drops the tags that nothing carries any more.
    pub(crate) fn prune(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.lock();
            shard.epochs.retain(|_, weak| weak.strong_count() > 0);
            shard.prune_at = (shard.epochs.len() * 2).max(64);
        }
    }
}

/// Versions of entry keys, for invalidations by key ([`Cache::invalidate_key`] and
/// `#[invalidates(keys = ...)]`): every entry has a key and almost none shares it, so instead
/// of an epoch and a registry slot per entry (some 70 bytes), a key is hashed into a fixed
/// table of counters, and an entry keeps its counter's index and value (12 bytes). An
/// invalidation by key bumps the counter, so it also drops the entries whose keys share it: a
/// spurious miss, never a stale hit. The table has at least half as many counters as the cache
/// holds entries (about two entries per counter), up to [`MAX_KEY_COUNTERS`] (32 MiB), past
/// which a counter is shared by more.
///
/// [`Cache::invalidate_key`]: crate::Cache::invalidate_key
pub(crate) struct KeyVersions {
    counters: Box<[AtomicU64]>,
    hasher: foldhash::fast::RandomState,
}

/// The most counters of a [`KeyVersions`] table: 4 Mi of 8 bytes, for caches of up to 8 million
/// entries at two entries per counter.
pub(crate) const MAX_KEY_COUNTERS: u64 = 1 << 22;

/// A key's counter and its value when a load started.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyStamp {
    pub(crate) counter: u32,
    pub(crate) version: u64,
}

impl KeyStamp {
    /// The stamp of an entry that no key invalidation reaches.
    pub(crate) const NONE: KeyStamp = KeyStamp {
        counter: u32::MAX,
        version: 0,
    };
}

impl KeyVersions {
    /// A table for a cache of about `entries` entries.
    pub(crate) fn new(entries: u64) -> Self {
        let rounded = entries
            .max(1)
            .checked_next_power_of_two()
            .unwrap_or(1 << 63);
        let len = (rounded / 2).clamp(1 << 10, MAX_KEY_COUNTERS);
        KeyVersions {
            counters: (0..len).map(|_| AtomicU64::new(0)).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn counter(&self, key_tag: &str) -> usize {
        self.hasher.hash_one(key_tag) as usize & (self.counters.len() - 1)
    }

    /// The stamp of the key whose tag is `key_tag`, taken now.
    pub(crate) fn stamp(&self, key_tag: &str) -> KeyStamp {
        let counter = self.counter(key_tag);
        KeyStamp {
            counter: counter as u32,
            version: self.counters[counter].load(Ordering::Acquire),
        }
    }

    /// Invalidates the entries of the key whose tag is `key_tag`.
    pub(crate) fn bump(&self, key_tag: &str) {
        self.counters[self.counter(key_tag)].fetch_add(1, Ordering::AcqRel);
    }

    /// Whether no invalidation by key reached `stamp` since it was taken.
    #[inline]
    pub(crate) fn current(&self, stamp: KeyStamp) -> bool {
        self.counters
            .get(stamp.counter as usize)
            .is_none_or(|counter| counter.load(Ordering::Acquire) == stamp.version)
    }
}

/// The epochs of the tags an entry was loaded under, besides its key's: up to two in the entry
/// itself (most entries have one or two, such as `customer` and `customer.{id}`), more in a
/// slice of their own. Two inline save an allocation per entry (24 bytes handed out by glibc
/// for two stamps, 32 with its header), for 8 bytes more in the entry.
pub(crate) enum TagStamps {
    Inline([Option<TagStamp>; 2]),
    Spilled(Box<[TagStamp]>),
}

impl TagStamps {
    pub(crate) fn new(stamps: Vec<TagStamp>) -> Self {
        if stamps.len() > 2 {
            return TagStamps::Spilled(stamps.into_boxed_slice());
        }
        let mut stamps = stamps.into_iter();
        TagStamps::Inline([stamps.next(), stamps.next()])
    }

    /// Whether every stamp is still its tag's current epoch.
    #[inline]
    pub(crate) fn current(&self) -> bool {
        match self {
            TagStamps::Inline(stamps) => stamps.iter().flatten().all(|epoch| epoch.current()),
            TagStamps::Spilled(stamps) => stamps.iter().all(|epoch| epoch.current()),
        }
    }
}

const LOG_SIZE: usize = 4096;
const ALL: u64 = u64::MAX;

/// The last few thousand invalidations, by tag hash and sequence number.
///
/// A load records the sequence number when it starts. Before it stores its value, and before a
/// waiter accepts the value of a load it joined, the log answers whether any of the load's tags
/// (including tags computed from the result, which cannot be stamped in advance) were
/// invalidated since. When the log has wrapped past that point the answer is conservatively yes.
///
/// A load takes no lock: the sequence number is an atomic, and when it has not moved since the
/// load started (the common case) nothing was invalidated. Invalidations, and the checks of
/// loads that an invalidation overlapped, take the ring's lock.
pub(crate) struct InvalidationLog {
    /// The next sequence number: written under `ring`'s lock, after the ring.
    next: AtomicU64,
    ring: Mutex<Box<[u64]>>,
    hasher: foldhash::fast::FixedState,
}

impl InvalidationLog {
    pub(crate) fn new() -> Self {
        InvalidationLog {
            next: AtomicU64::new(0),
            ring: Mutex::new(vec![0; LOG_SIZE].into_boxed_slice()),
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
        self.next.load(Ordering::SeqCst)
    }

    /// Records invalidations of the tags with these hashes.
    pub(crate) fn record(&self, hashes: impl IntoIterator<Item = u64>) {
        let mut ring = self.ring.lock();
        let mut next = self.next.load(Ordering::SeqCst);
        for hash in hashes {
            ring[(next % LOG_SIZE as u64) as usize] = hash;
            next += 1;
        }
        self.next.store(next, Ordering::SeqCst);
    }

    /// Records that everything was invalidated.
    pub(crate) fn record_all(&self) {
        self.record([ALL]);
    }

    /// Whether a tag among `hashes` (or everything) was invalidated since `since`.
    pub(crate) fn invalidated_since(&self, since: u64, hashes: &[u64]) -> bool {
        if self.next.load(Ordering::SeqCst) == since {
            return false;
        }
        let ring = self.ring.lock();
        let next = self.next.load(Ordering::SeqCst);
        if next - since > LOG_SIZE as u64 {
            return true;
        }
        (since..next).any(|seq| {
            let hash = ring[(seq % LOG_SIZE as u64) as usize];
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
        assert!(stamp.current());
        let other = registry.stamp("customer.2");
        registry.bump("customer.1");
        assert!(!stamp.current());
        assert!(other.current(), "another tag's entries stay valid");
        let next = registry.stamp("customer.1");
        assert!(next.current(), "a new epoch");
        assert!(!Arc::ptr_eq(&stamp, &next));
        assert!(
            Arc::ptr_eq(&next, &registry.stamp("customer.1")),
            "loads under one epoch share it"
        );
        drop((stamp, other, next));
        for i in 0..10_000 {
            drop(registry.stamp(&format!("customer.{i}")));
        }
        registry.prune();
        assert_eq!(registry.len(), 0);
    }

    /// Up to two stamps are kept inline, more spilled; either way an entry is current while
    /// every one of its tags is, whichever it is that gets invalidated.
    #[test]
    fn an_entry_s_stamps_are_current_until_any_of_its_tags_is_invalidated() {
        let registry = TagRegistry::new();
        for n in 0..5 {
            let tags: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
            for bumped in 0..n {
                let stamps = TagStamps::new(tags.iter().map(|t| registry.stamp(t)).collect());
                assert_eq!(matches!(stamps, TagStamps::Inline(_)), n <= 2);
                assert!(stamps.current(), "{n} tags, none invalidated");
                registry.bump(&tags[bumped]);
                assert!(!stamps.current(), "{n} tags, tag {bumped} invalidated");
            }
            assert!(TagStamps::new(Vec::new()).current());
        }
    }

    #[test]
    fn an_invalidation_by_key_reaches_its_key_and_few_others() {
        let keys = KeyVersions::new(4096);
        let stamps: Vec<KeyStamp> = (0..4096).map(|i| keys.stamp(&format!("k{i}"))).collect();
        let none = KeyStamp::NONE;
        keys.bump("k7");
        assert!(!keys.current(stamps[7]));
        assert!(keys.current(none), "an entry without a key stamp");
        let dropped = stamps.iter().filter(|s| !keys.current(**s)).count();
        assert!(
            (1..=16).contains(&dropped),
            "k7 and the few keys sharing its counter, not {dropped}"
        );
        assert!(keys.current(keys.stamp("k7")), "a load starting after it");
    }

    #[test]
    fn an_unbounded_cache_gets_the_largest_table() {
        assert_eq!(
            KeyVersions::new(u64::MAX).counters.len() as u64,
            MAX_KEY_COUNTERS
        );
        assert_eq!(KeyVersions::new(0).counters.len(), 1 << 10);
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
