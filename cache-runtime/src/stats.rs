//! Per-method counters.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use parking_lot::RwLock;

const STRIPES: usize = 8;

/// A counter split over cache lines, so that threads hitting the same method do not fight over
/// one.
#[derive(Default)]
pub(crate) struct Counter([CachePadded<AtomicU64>; STRIPES]);

thread_local! {
    static STRIPE: usize = {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES
    };
}

impl Counter {
    #[inline]
    pub(crate) fn incr(&self) {
        let stripe = STRIPE.with(|s| *s);
        self.0[stripe].fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// The live counters of one method.
#[derive(Default)]
pub(crate) struct MethodCounters {
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
        self.methods.write().entry(name).or_default().clone()
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
                "{}: hits={} misses={} stale={} loads={} load_errors={} refreshes={} backend_errors={} invalidations={} ratio={:.3}",
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
