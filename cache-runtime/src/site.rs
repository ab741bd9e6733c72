//! The static descriptors that `#[cached]` and `#[invalidates]` emit, one per call site.

use std::sync::{Arc, OnceLock};

use crate::key::Template;
use crate::stats::MethodCounters;
use crate::Cache;

/// Everything `#[cached]` knows at compile time about one method.
#[derive(Debug)]
pub struct CachedSite {
    /// The method's name in stats and logs: `name = "..."` or `module::path::fn_name`.
    pub name: &'static str,
    /// The key space of the method, a hash of `name`.
    pub scope: u64,
    /// The key template.
    pub key: Template,
    /// The tag templates, rendered from the same arguments.
    pub tags: &'static [Template],
    /// Time to live in milliseconds.
    pub ttl_ms: u64,
    /// Up to this many milliseconds are taken off each entry's TTL at random.
    pub jitter_ms: u64,
    /// How long after expiry an entry may still be served while it is refreshed, in
    /// milliseconds; 0 turns stale-while-revalidate off.
    pub swr_ms: u64,
    /// With a shared backend that can lock: how long other instances wait for this
    /// instance's load of a key before loading themselves, in milliseconds; 0 turns the
    /// cross-instance lock off.
    pub lock_ms: u64,
    /// XFetch's β; 0 turns probabilistic early recomputation off.
    pub beta: f64,
    /// Whether a `None` value is stored.
    pub cache_none: bool,
    /// The version of the value's layout (`version = N`; 0 when not given). With the cache's
    /// ([`CacheBuilder::value_version`](crate::CacheBuilder::value_version)), it names the
    /// method's key space in a shared backend.
    pub version: u32,
    #[doc(hidden)]
    pub counters: CountersSlot,
}

/// Everything `#[invalidates]` knows at compile time about one method.
#[derive(Debug)]
pub struct InvalidatesSite {
    /// The method's name in stats and logs.
    pub name: &'static str,
    /// Tags to invalidate, rendered from the arguments.
    pub tags: &'static [Template],
    /// Keys to invalidate, rendered from the arguments.
    pub keys: &'static [Template],
    #[doc(hidden)]
    pub counters: CountersSlot,
}

/// How many caches a site remembers the counters of.
const SLOTS: usize = 8;

/// Remembers the counters of the first caches a site is used with, so that a hit neither
/// looks them up by name nor touches a shared reference count (two threads hitting one method
/// would fight over its cache line).
#[derive(Debug)]
pub struct CountersSlot([OnceLock<(u64, SlotCounters)>; SLOTS]);

impl Default for CountersSlot {
    fn default() -> Self {
        CountersSlot(std::array::from_fn(|_| OnceLock::new()))
    }
}

#[derive(Clone)]
struct SlotCounters(Arc<MethodCounters>);

impl std::fmt::Debug for SlotCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MethodCounters")
    }
}

impl CountersSlot {
    /// An empty slot, for statics.
    #[allow(clippy::declare_interior_mutable_const)] // only ever used to initialize a static
    pub const NEW: CountersSlot = CountersSlot([const { OnceLock::new() }; SLOTS]);

    #[inline]
    pub(crate) fn get(&'static self, cache: &Cache, name: &'static str) -> Counters {
        let id = cache.id();
        for slot in &self.0 {
            match slot.get() {
                Some((owner, counters)) if *owner == id => return Counters::Slot(&counters.0),
                Some(_) => continue,
                None => {
                    let _ = slot.set((id, SlotCounters(cache.method_counters(name))));
                    if let Some((owner, counters)) = slot.get() {
                        if *owner == id {
                            return Counters::Slot(&counters.0);
                        }
                    }
                }
            }
        }
        // More caches than slots used this site: look the counters up by name.
        Counters::Shared(cache.method_counters(name))
    }
}

/// A method's counters, borrowed from its site's slot on the fast path.
pub(crate) enum Counters {
    Slot(&'static Arc<MethodCounters>),
    Shared(Arc<MethodCounters>),
}

impl Counters {
    pub(crate) fn to_arc(&self) -> Arc<MethodCounters> {
        match self {
            Counters::Slot(arc) => Arc::clone(arc),
            Counters::Shared(arc) => arc.clone(),
        }
    }
}

impl std::ops::Deref for Counters {
    type Target = MethodCounters;
    #[inline]
    fn deref(&self) -> &MethodCounters {
        match self {
            Counters::Slot(arc) => arc,
            Counters::Shared(arc) => arc,
        }
    }
}
