//! The two tiers and the storage steps of a call over them: the in-process tier (L1,
//! `in_process.rs`), the shared backend (L2, a [`Backend`]), or both.
//!
//! - here: stamping tag versions before a load, and storing its value;
//! - `shared.rs`: reading L2 (and promoting what it finds into L1), the cross-instance lock,
//!   and whether a landed value is still current for a waiter.

mod in_process;
mod shared;

use std::sync::Arc;

use tracing::Level;

pub use self::in_process::InProcessTier;
pub(crate) use self::in_process::{Bound, LocalStamp};
pub(crate) use self::shared::{Current, Locked, SharedLookup, SharedRead};
use crate::backend::{Backend, EntryKey, EntryMeta, StoredEntry};
use crate::call::Call;
use crate::lifetime::{self, Computed};

/// Tag versions taken before a load, per tier. A tier whose part is `None` is not written.
pub(crate) struct Stamp {
    pub(crate) local: Option<LocalStamp>,
    pub(crate) shared: Option<Vec<(String, u64)>>,
    /// The shared backend's invalidation watermark before the load, when it has one.
    pub(crate) watermark: Option<u64>,
    /// The shared backend's generation the versions belong to.
    pub(crate) generation: u64,
}

impl<S, V: Clone + Send + Sync + 'static> Call<S, V> {
    /// The shared backend, if it can hold this method's values (never a blocking call's).
    pub(crate) fn shared_tier(&self) -> Option<&dyn Backend> {
        if self.blocking {
            return None;
        }
        self.cache
            .shared()
            .filter(|shared| self.serde.is_some() || !shared.stores_bytes())
    }

    /// Takes the versions of `tags` in each tier, before the load starts.
    pub(crate) async fn stamp(&self, tags: Vec<String>) -> Stamp {
        let local = self.cache.trusted_local().map(|local| local.stamp(&tags));
        let mut watermark = None;
        let mut generation = 0;
        let shared = match self.shared_tier() {
            None => None,
            Some(shared) => {
                let versions =
                    crate::exported::backend_call("stamp", shared.stamp_versions(&tags)).await;
                match versions {
                    Ok(versions) if versions.tags.len() == tags.len() => {
                        watermark = versions.watermark;
                        generation = versions.generation;
                        Some(tags.into_iter().zip(versions.tags).collect())
                    }
                    _ => {
                        self.counters.backend_errors.incr();
                        let why = "backend could not read tag versions: \
                                   the value will not be stored there";
                        self.log(Level::WARN, "error", None, why);
                        None
                    }
                }
            }
        };
        Stamp {
            local,
            shared,
            watermark,
            generation,
        }
    }

    /// Adds tags known only after the load (from the result) to the stamp.
    pub(crate) async fn extend_stamp(&self, stamp: &mut Stamp, tags: Vec<String>) {
        if tags.is_empty() {
            return;
        }
        if let (Some(local), Some(local_stamp)) = (self.cache.local(), &mut stamp.local) {
            local.extend_stamp(local_stamp, &tags);
        }
        let (Some(shared), Some(pairs)) = (self.shared_tier(), &mut stamp.shared) else {
            return;
        };
        match crate::exported::backend_call("stamp", shared.stamp_versions(&tags)).await {
            // The backend lost data or was cleared during the load: its versions of before
            // mean nothing now.
            Ok(versions) if versions.generation != stamp.generation => {
                stamp.shared = None;
            }
            // A result tag invalidated (anywhere) after the load started: not stored in the
            // shared tier, whose versions already include that invalidation.
            Ok(versions)
                if stamp
                    .watermark
                    .is_some_and(|mark| versions.tags.iter().any(|v| *v > mark)) =>
            {
                stamp.shared = None;
            }
            Ok(versions) if versions.tags.len() == tags.len() => {
                pairs.extend(tags.into_iter().zip(versions.tags))
            }
            _ => {
                self.counters.backend_errors.incr();
                stamp.shared = None;
            }
        }
    }

    /// The expiry of `value`, loaded now in `load_micros`: the site's TTL and `swr`, or what
    /// the method's `ttl = <expr>` and `swr = <expr>` give for it, checked.
    pub(crate) fn meta(&self, value: &V, load_micros: u64) -> EntryMeta {
        let site = self.site;
        let mut lifetime = Lifetime {
            ttl_ms: site.ttl_ms,
            jitter_ms: site.jitter_ms,
            swr_ms: site.swr_ms,
        };
        if let Some(ttl_of) = self.options.ttl {
            lifetime.ttl_ms = self.computed("ttl", ttl_of(value), site.ttl_ms);
            // A jitter written beside a computed TTL takes at most half of it.
            lifetime.jitter_ms = site.jitter_ms.min(lifetime.ttl_ms / 2);
        }
        if let Some(swr_of) = self.options.swr {
            lifetime.swr_ms = self.computed("swr", swr_of(value), site.swr_ms);
        }
        entry_meta(lifetime, self.cache.now_millis(), load_micros)
    }

    /// The milliseconds a computed `ttl` or `swr` stands for; `fallback`, logged, when it
    /// cannot be used.
    fn computed(&self, what: &'static str, computed: Computed, fallback: u64) -> u64 {
        let resolved = lifetime::resolve(computed, fallback);
        if let Some(refused) = resolved.refused {
            let why = match refused {
                Computed::TooLong(_) => "longer than 10 years",
                _ if what == "ttl" => "not positive",
                _ => "negative",
            };
            let message = format!(
                "`{what}` from the result is {why} ({refused:?} ms): {fallback} ms used instead"
            );
            self.log(Level::WARN, what, None, &message);
        }
        resolved.ms
    }

    /// Stores `value` in the in-process tier, if the stamp covers it; gives back the entry to
    /// write to the shared tier, if the stamp covers that.
    pub(crate) fn store_local(
        &self,
        value: &V,
        stamp: Stamp,
        meta: EntryMeta,
    ) -> Option<StoredEntry> {
        if let (Some(local), Some(local_stamp)) = (self.cache.local(), stamp.local) {
            let key = self.key.storage().into();
            local.insert(key, value.clone(), self.serde, meta, local_stamp);
        }
        self.shared_tier()?;
        Some(StoredEntry {
            value: Arc::new(value.clone()),
            meta,
            tags: stamp.shared?,
            generation: stamp.generation,
        })
    }

    /// Writes `entry` of this call's key to the shared tier.
    pub(crate) async fn put_shared(&self, entry: StoredEntry) {
        let Some(shared) = self.shared_tier() else {
            return;
        };
        let put = shared.put(self.entry_key(), entry);
        if let Err(error) = crate::exported::backend_call("put", put).await {
            self.counters.backend_errors.incr();
            self.log(Level::WARN, "error", Some(&error), "backend write failed");
        }
    }

    /// This call's key in the shared tier.
    pub(crate) fn entry_key(&self) -> EntryKey<'_> {
        self.key.entry_key(
            self.site,
            self.cache.value_version(),
            self.serde,
            &self.tags,
        )
    }
}

/// Takes the versions of the tags of several calls (a batch's ids) before their load: in
/// process for each, in the shared tier in one round trip for all their tags.
pub(crate) async fn stamp_all<S, V: Clone + Send + Sync + 'static>(
    calls: &[&Call<S, V>],
) -> Vec<Stamp> {
    let mut stamps: Vec<Stamp> = calls
        .iter()
        .map(|call| Stamp {
            local: call
                .cache
                .trusted_local()
                .map(|local| local.stamp(&call.tags)),
            shared: None,
            watermark: None,
            generation: 0,
        })
        .collect();
    let Some(first) = calls.first() else {
        return stamps;
    };
    let Some(shared) = first.shared_tier() else {
        return stamps;
    };
    let mut seen = std::collections::HashSet::new();
    let all: Vec<String> = calls
        .iter()
        .flat_map(|call| call.tags.iter())
        .filter(|tag| seen.insert(tag.as_str()))
        .cloned()
        .collect();
    match crate::exported::backend_call("stamp", shared.stamp_versions(&all)).await {
        Ok(versions) if versions.tags.len() == all.len() => {
            let of: std::collections::HashMap<&str, u64> = all
                .iter()
                .map(String::as_str)
                .zip(versions.tags.iter().copied())
                .collect();
            for (stamp, call) in stamps.iter_mut().zip(calls) {
                let pairs = call.tags.iter().map(|t| (t.clone(), of[t.as_str()]));
                stamp.shared = Some(pairs.collect());
                stamp.watermark = versions.watermark;
                stamp.generation = versions.generation;
            }
        }
        _ => {
            first.counters.backend_errors.incr();
            let why = "backend could not read tag versions: the values will not be stored there";
            first.log(Level::WARN, "error", None, why);
        }
    }
    stamps
}

/// How long one value is kept, in milliseconds.
struct Lifetime {
    ttl_ms: u64,
    jitter_ms: u64,
    swr_ms: u64,
}

/// The expiry of a value loaded at `now` in `load_micros`: fresh for the TTL (less a random
/// part of the jitter), then stale for the `swr` window.
fn entry_meta(lifetime: Lifetime, now: u64, load_micros: u64) -> EntryMeta {
    let jitter = if lifetime.jitter_ms > 0 {
        fastrand::u64(0..=lifetime.jitter_ms)
    } else {
        0
    };
    // Saturating: a duration near u64::MAX means "never expires", not a wrapped past.
    let fresh_until = now.saturating_add(lifetime.ttl_ms.saturating_sub(jitter).max(1));
    EntryMeta {
        fresh_until,
        stale_until: fresh_until.saturating_add(lifetime.swr_ms),
        load_micros,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{classify, Found};
    use crate::key::Template;
    use crate::site::{CachedSite, CountersSlot};
    use crate::Cache;

    static FOREVER: CachedSite = CachedSite {
        name: "forever",
        scope: 1,
        key: Template {
            source: "k",
            segments: &[],
        },
        tags: &[],
        ttl_ms: u64::MAX,
        jitter_ms: 0,
        swr_ms: u64::MAX,
        lock_ms: u64::MAX,
        beta: 0.0,
        cache_none: true,
        version: 0,
        counters: CountersSlot::NEW,
    };

    #[test]
    fn absurd_durations_saturate_instead_of_overflowing() {
        let cache = Cache::in_memory(10);
        let now = cache.now_millis();
        let forever = Lifetime {
            ttl_ms: FOREVER.ttl_ms,
            jitter_ms: FOREVER.jitter_ms,
            swr_ms: FOREVER.swr_ms,
        };
        let meta = entry_meta(forever, now, 0);
        assert_eq!((meta.fresh_until, meta.stale_until), (u64::MAX, u64::MAX));
        let local = cache.local().expect("in-process tier");
        local.insert(b"k".to_vec().into(), 7u8, None, meta, local.stamp(&[]));
        let found = local.reader().with_entry(b"k", now, |entry| {
            classify::<u8>(&FOREVER, &entry.value, &entry.meta, now)
        });
        assert!(matches!(found, Some(Found::Fresh(7))));
    }
}
