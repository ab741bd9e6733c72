//! Batch read-through: a `#[cached(batch = id in ids)]` method caches one entry per id, in the
//! key space it shares with the single-id method (`shares = find_by_id`), and runs its body
//! once, with the ids that missed.
//!
//! - `lookup_batch` (synchronous): every id's key is rendered and looked up in process; when
//!   all are fresh hits the method returns at once.
//! - [`BatchPending::load`]: the rest are read from the shared tier in one round trip
//!   ([`Backend::get_many`](crate::backend::Backend::get_many)), then go through the same
//!   per-key flights as single calls, and the ids this call leads are loaded by one run of the
//!   body, stored (one [`put_many`](crate::backend::Backend::put_many)) and landed.
//!
//! Each id keeps every rule of a single call: its tags are stamped before the load, an
//! invalidation of any of them (or of a result tag) during the load keeps its value out of
//! the cache and away from waiters, and it is counted in the method's stats.

mod load;
mod map;

use std::sync::Arc;
use std::time::Instant;

pub use self::map::{batch_return_check, BatchMap, BatchReturn};
use crate::codec::SerdeVTable;
use crate::entry::{classify, start_storage_key, Found, OwnedKey};
use crate::key::KeyArg;
use crate::lookup::{render_tags, BatchHits};
use crate::site::CachedSite;
use crate::stats::MethodCounters;
use crate::{Cache, CacheValue, LOG_TARGET};

/// What the first half of a batch call found.
pub enum BatchLookup<R, P> {
    /// Every id was a fresh in-process hit: the method returns this.
    Hit(R),
    /// Some were not: the method awaits [`BatchPending::load`].
    Miss(P),
}

/// A batch call with ids that were not fresh in process.
pub struct BatchPending<K, R: BatchReturn> {
    cache: Cache,
    site: &'static CachedSite,
    counters: Arc<MethodCounters>,
    serde: Option<&'static SerdeVTable>,
    /// The values found so far, under their ids: the start of the result.
    found: R::Map,
    /// The ids that were not, each once, in the order asked.
    missing: Vec<Missing<K>>,
    /// `condition` was false: the body runs with every id, uncached.
    bypass: bool,
}

/// The position in [`BatchPending::missing`] of each storage key there.
type MissingIndex = std::collections::HashMap<Box<[u8]>, usize, foldhash::fast::RandomState>;

/// An id not served from the in-process tier, with its key and tags.
pub(crate) struct Missing<K> {
    pub(crate) id: K,
    pub(crate) key: OwnedKey,
    pub(crate) tags: Vec<String>,
    /// Other ids of the call whose key renders the same: they get the same value.
    pub(crate) aliases: Vec<K>,
}

/// The first half of a batch `#[cached]` call. `args` hands, for each id, the placeholder
/// values (the key's, then each tag template's) to the callback it is given; `serde` is the
/// value type's, when it has one.
pub(crate) fn lookup_batch<'i, K, R>(
    site: &'static CachedSite,
    cache: &Cache,
    ids: impl IntoIterator<Item = &'i K>,
    args: impl Fn(&K, &mut dyn FnMut(&[&(dyn KeyArg + Sync)])),
    serde: Option<&'static SerdeVTable>,
    enabled: bool,
) -> BatchLookup<R, BatchPending<K, R>>
where
    K: Clone + 'i,
    R: BatchReturn<Key = K>,
    R::Value: CacheValue,
{
    let counters = site.counters.get(cache, site.name);
    let ids = ids.into_iter();
    let mut pending = BatchPending {
        cache: cache.clone(),
        site,
        counters: counters.to_arc(),
        serde,
        found: R::Map::with_capacity(ids.size_hint().0),
        missing: Vec::new(),
        bypass: !enabled,
    };
    // Where each missing key is in `pending.missing`: ids that render one key load once.
    let mut missing_at = MissingIndex::default();
    // One epoch guard for every id's look-up.
    let local = cache
        .trusted_local()
        .filter(|_| enabled)
        .map(|local| local.reader());
    let now = cache.now_millis();
    let debug = tracing::enabled!(target: LOG_TARGET, tracing::Level::DEBUG);
    let key_values = site.key.placeholders();
    let mut hits = BatchHits::new(&counters, site);
    let mut buf = Vec::new();
    for id in ids {
        let started = debug.then(Instant::now);
        args(id, &mut |values| {
            start_storage_key(site.scope, &mut buf);
            let n = key_values.min(values.len());
            site.key.render_into(&values[..n], &mut buf);
            if !enabled {
                counters.bypassed.incr();
            }
            let found = local.as_ref().and_then(|local| {
                local.with_entry(&buf, now, |entry| {
                    classify::<Option<R::Value>>(site, &entry.value, &entry.meta, now)
                })
            });
            match found {
                Some(Found::Fresh(value) | Found::EarlyRefresh(value)) => {
                    hits.record(&buf, started);
                    if let Some(item) = value {
                        BatchMap::insert(&mut pending.found, id.clone(), item);
                    }
                }
                // Stale entries are loaded with the misses: a batch refreshes nothing in the
                // background.
                _ => pending.add_missing(&mut missing_at, id, &buf, |key| {
                    render_tags(site, values, key)
                }),
            }
        });
    }
    drop((local, hits));
    if pending.missing.is_empty() && enabled {
        return BatchLookup::Hit(R::from_map(pending.found));
    }
    BatchLookup::Miss(pending)
}

impl<K: Clone, R: BatchReturn<Key = K>> BatchPending<K, R> {
    /// Adds `id`, whose storage key is `storage`, to the ids to load; an id whose key is
    /// already there (`at` says where) rides along with it.
    fn add_missing(
        &mut self,
        at: &mut MissingIndex,
        id: &K,
        storage: &[u8],
        tags: impl FnOnce(&OwnedKey) -> Vec<String>,
    ) {
        if let Some(&earlier) = at.get(storage) {
            self.missing[earlier].aliases.push(id.clone());
            return;
        }
        at.insert(storage.into(), self.missing.len());
        let key = OwnedKey::new(storage.into());
        let tags = tags(&key);
        self.missing.push(Missing {
            id: id.clone(),
            key,
            tags,
            aliases: Vec::new(),
        });
    }
}
