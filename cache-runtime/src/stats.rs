//! Per-method counters.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use parking_lot::RwLock;

const STRIPES: usize = 8;

/// A counter split over cache lines, so that threads hitting the same method do not fight over
/// one; with the `metrics` feature, also a counter of the `metrics` facade.
#[cfg_attr(not(feature = "metrics"), derive(Default))]
pub(crate) struct Counter {
    stripes: [CachePadded<AtomicU64>; STRIPES],
    #[cfg(feature = "metrics")]
    exported: metrics::Counter,
}

#[cfg(feature = "metrics")]
impl Default for Counter {
    fn default() -> Self {
        Counter {
            stripes: Default::default(),
            exported: metrics::Counter::noop(),
        }
    }
}

thread_local! {
    static STRIPE: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES
    };
}

impl Counter {
    #[inline]
    pub(crate) fn incr(&self) {
        self.add(1);
    }

    /// Adds `n` at once (a batch's hits).
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        let stripe = STRIPE.with(|s| *s);
        self.stripes[stripe].fetch_add(n, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        self.exported.increment(n);
    }

    fn get(&self) -> u64 {
        self.stripes.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// A counter also reported as `name{method}` through the `metrics` facade (to the
    /// recorder installed when the method is first called on a cache).
    #[cfg(feature = "metrics")]
    fn exported(name: &'static str, method: &'static str) -> Counter {
        Counter {
            stripes: Default::default(),
            exported: metrics::counter!(name, "method" => method),
        }
    }
}

/// The most-read keys of a method, in [`HOT_SHARDS`] shards by key hash, so that misses on
/// different keys seldom take the same lock and a full shard's replacement scans
/// [`HOT_CAPACITY`] / [`HOT_SHARDS`] keys, not all of them.
#[derive(Default)]
pub(crate) struct HotKeyShards {
    shards: [parking_lot::Mutex<HotKeys>; HOT_SHARDS],
    hasher: foldhash::fast::FixedState,
}

impl HotKeyShards {
    fn record(&self, key: &str, weight: u64) {
        let shard = self.hasher.hash_one(key) as usize % HOT_SHARDS;
        self.shards[shard].lock().record(key, weight);
    }

    fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self
            .shards
            .iter()
            .flat_map(|shard| shard.lock().top(n))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }
}

/// The most-read keys of one shard: a space-saving sketch (Metwally et al.) of bounded size,
/// fed by every miss and one hit in [`HOT_SAMPLE`] per thread. Counts are estimates, ranks
/// of clearly hot keys are reliable.
#[derive(Default)]
pub(crate) struct HotKeys {
    counts: HashMap<Box<str>, u64>,
}

const HOT_CAPACITY: usize = 512;
const HOT_SHARDS: usize = 8;
const HOT_SAMPLE: u32 = 16;

thread_local! {
    static HOT_TICK: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// This thread's hot-key sampling ticks, taken for a run of hits (a batch's) and given back
/// when dropped: one thread-local access for the run instead of one per hit.
pub(crate) struct HotTicks(u32);

impl HotTicks {
    #[inline]
    pub(crate) fn take() -> Self {
        HotTicks(HOT_TICK.with(std::cell::Cell::get))
    }

    /// The next tick.
    #[inline]
    pub(crate) fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(1);
        self.0
    }
}

impl Drop for HotTicks {
    fn drop(&mut self) {
        HOT_TICK.with(|tick| tick.set(self.0));
    }
}

impl HotKeys {
    fn record(&mut self, key: &str, weight: u64) {
        if let Some(count) = self.counts.get_mut(key) {
            *count += weight;
            return;
        }
        if self.counts.len() < HOT_CAPACITY / HOT_SHARDS {
            self.counts.insert(key.into(), weight);
            return;
        }
        // Replace the least counted key; the newcomer inherits its count.
        if let Some((victim, floor)) = self
            .counts
            .iter()
            .min_by_key(|(_, c)| **c)
            .map(|(k, c)| (k.clone(), *c))
        {
            self.counts.remove(&victim);
            self.counts.insert(key.into(), floor + weight);
        }
    }

    fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self
            .counts
            .iter()
            .map(|(k, c)| (k.to_string(), *c))
            .collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }
}

/// The live counters of one method.
#[derive(Default)]
pub(crate) struct MethodCounters {
    pub(crate) hot: HotKeyShards,
    pub(crate) hits: Counter,
    pub(crate) l2_hits: Counter,
    pub(crate) misses: Counter,
    pub(crate) stale_hits: Counter,
    pub(crate) coalesced: Counter,
    pub(crate) loads: Counter,
    pub(crate) load_errors: Counter,
    pub(crate) refreshes: Counter,
    pub(crate) refresh_errors: Counter,
    pub(crate) backend_errors: Counter,
    pub(crate) invalidations: Counter,
    pub(crate) bypassed: Counter,
}

impl MethodCounters {
    /// The counters of `method`; with the `metrics` feature, each also reported through the
    /// facade under the name the README's metrics table gives.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(method: &'static str) -> Self {
        #[cfg(feature = "metrics")]
        {
            let c = |name| Counter::exported(name, method);
            MethodCounters {
                hot: Default::default(),
                hits: c("cache_hits_total"),
                l2_hits: c("cache_l2_hits_total"),
                misses: c("cache_misses_total"),
                stale_hits: c("cache_stale_hits_total"),
                coalesced: c("cache_coalesced_total"),
                loads: c("cache_loads_total"),
                load_errors: c("cache_load_errors_total"),
                refreshes: c("cache_refreshes_total"),
                refresh_errors: c("cache_refresh_errors_total"),
                backend_errors: c("cache_backend_errors_total"),
                invalidations: c("cache_invalidations_total"),
                bypassed: c("cache_bypassed_total"),
            }
        }
        #[cfg(not(feature = "metrics"))]
        MethodCounters::default()
    }

    /// Counts a read of `key` (a miss).
    pub(crate) fn record_key(&self, key: &str) {
        self.hot.record(key, 1);
    }

    /// Counts one in [`HOT_SAMPLE`] hits, weighted accordingly.
    #[inline]
    pub(crate) fn sample_hit(&self, key: &[u8]) {
        let tick = HOT_TICK.with(|tick| {
            let n = tick.get().wrapping_add(1);
            tick.set(n);
            n
        });
        self.sample_hit_at(key, tick);
    }

    /// [`sample_hit`](Self::sample_hit) at `tick` of this thread's [`HotTicks`].
    #[inline]
    pub(crate) fn sample_hit_at(&self, key: &[u8], tick: u32) {
        if tick.is_multiple_of(HOT_SAMPLE) {
            if let Ok(key) = std::str::from_utf8(key) {
                self.hot.record(key, HOT_SAMPLE as u64);
            }
        }
    }

    pub(crate) fn hot_keys(&self, n: usize) -> Vec<(String, u64)> {
        self.hot.top(n)
    }

    fn snapshot(&self, method: &'static str) -> MethodStats {
        MethodStats {
            method,
            hits: self.hits.get(),
            l2_hits: self.l2_hits.get(),
            misses: self.misses.get(),
            stale_hits: self.stale_hits.get(),
            coalesced: self.coalesced.get(),
            loads: self.loads.get(),
            load_errors: self.load_errors.get(),
            refreshes: self.refreshes.get(),
            refresh_errors: self.refresh_errors.get(),
            backend_errors: self.backend_errors.get(),
            invalidations: self.invalidations.get(),
            bypassed: self.bypassed.get(),
        }
    }
}

/// The counters of every method that used one cache.
#[derive(Default)]
pub(crate) struct StatsRegistry {
    methods: RwLock<HashMap<&'static str, Arc<MethodCounters>>>,
}

impl StatsRegistry {
    pub(crate) fn method(&self, name: &'static str) -> Arc<MethodCounters> {
        if let Some(counters) = self.methods.read().get(name) {
            return counters.clone();
        }
        self.methods
            .write()
            .entry(name)
            .or_insert_with(|| Arc::new(MethodCounters::new(name)))
            .clone()
    }

    pub(crate) fn hot_keys(&self, method: &str, n: usize) -> Vec<(String, u64)> {
        self.methods
            .read()
            .get(method)
            .map(|m| m.hot_keys(n))
            .unwrap_or_default()
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let mut methods: Vec<MethodStats> = self
            .methods
            .read()
            .iter()
            .map(|(name, counters)| counters.snapshot(name))
            .collect();
        methods.sort_by_key(|m| m.method);
        Stats { methods }
    }
}

/// A snapshot of a cache's counters, one row per method, sorted by method name.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = cache_runtime::Cache::in_memory(100);
/// cache.invalidate_tags(["customer.list"]).await.unwrap();
/// let stats = cache.stats();
/// assert_eq!(stats.method("Cache::invalidate_tags").unwrap().invalidations, 1);
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// One row per method that used the cache.
    pub methods: Vec<MethodStats>,
}

impl Stats {
    /// The row of `method` (its `name`, by default `module::path::fn_name`).
    pub fn method(&self, method: &str) -> Option<&MethodStats> {
        self.methods.iter().find(|m| m.method == method)
    }
}

/// The counters of one method.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MethodStats {
    /// The method's name: `name = "..."` if given, otherwise `module::path::fn_name`.
    pub method: &'static str,
    /// Calls answered from a fresh entry.
    pub hits: u64,
    /// Of those, calls answered by the shared backend (L2) rather than in process (L1).
    pub l2_hits: u64,
    /// Calls that found no usable entry.
    pub misses: u64,
    /// Calls answered from an expired entry inside its stale window.
    pub stale_hits: u64,
    /// Misses that waited for another caller's load instead of loading.
    pub coalesced: u64,
    /// Times the body ran in the foreground.
    pub loads: u64,
    /// Foreground loads that returned `Err` (or panicked).
    pub load_errors: u64,
    /// Background refreshes started (stale-while-revalidate, early recomputation).
    pub refreshes: u64,
    /// Background refreshes that failed; the stale value was kept.
    pub refresh_errors: u64,
    /// Backend operations that failed; the call fell back to the body.
    pub backend_errors: u64,
    /// Invalidations issued by this method.
    pub invalidations: u64,
    /// Calls that skipped the cache because `condition` was false.
    pub bypassed: u64,
}

impl MethodStats {
    /// `hits + stale_hits` over all lookups, or 0 when there were none.
    pub fn hit_ratio(&self) -> f64 {
        let served = self.hits + self.stale_hits;
        let total = served + self.misses;
        if total == 0 {
            0.0
        } else {
            served as f64 / total as f64
        }
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for m in &self.methods {
            writeln!(
                f,
                "{}: hits={} misses={} stale={} loads={} load_errors={} refreshes={} \
                 backend_errors={} invalidations={} ratio={:.3}",
                m.method,
                m.hits,
                m.misses,
                m.stale_hits,
                m.loads,
                m.load_errors,
                m.refreshes,
                m.backend_errors,
                m.invalidations,
                m.hit_ratio()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_keys_outrank_a_flood_of_cold_ones_across_shards() {
        let hot = HotKeyShards::default();
        for round in 0..20_000u32 {
            hot.record(&format!("cold.{round}"), 1);
            if round % 20 == 0 {
                hot.record("hot.a", 3);
                hot.record("hot.b", 2);
                hot.record("hot.c", 1);
            }
        }
        let top: Vec<String> = hot.top(3).into_iter().map(|(key, _)| key).collect();
        assert_eq!(top, ["hot.a", "hot.b", "hot.c"]);
        let kept: usize = hot.shards.iter().map(|s| s.lock().counts.len()).sum();
        assert!(kept <= HOT_CAPACITY, "bounded: {kept}");
    }

    #[test]
    fn a_few_keys_are_counted_exactly() {
        let hot = HotKeyShards::default();
        for (key, reads) in [("c007", 9), ("c003", 6), ("c005", 3), ("c001", 1)] {
            for _ in 0..reads {
                hot.record(key, 1);
            }
        }
        assert_eq!(
            hot.top(3),
            [("c007".into(), 9), ("c003".into(), 6), ("c005".into(), 3)]
        );
    }
}
