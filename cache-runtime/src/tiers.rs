//! The storage steps of a call, over the in-process tier (L1), the shared backend (L2), or
//! both: stamping tag versions before a load, reading L2 (and promoting what it finds into
//! L1), and storing.

use std::sync::Arc;

use crate::backend::memory::LocalStamp;
use crate::backend::{BackendErrorKind, EntryMeta, LockToken, StoredEntry};
use crate::codec::SerdeVTable;
use crate::entry::{classify, Found, OwnedKey};
use crate::flight::Landing;
use crate::lookup::TARGET;
use crate::site::CachedSite;
use crate::stats::MethodCounters;
use crate::Cache;

/// Tag versions taken before a load, per tier. A tier whose part is `None` is not written.
pub(crate) struct Stamp {
    pub(crate) local: Option<LocalStamp>,
    pub(crate) shared: Option<Vec<(String, u64)>>,
    /// The shared backend's invalidation watermark before the load, when it has one.
    pub(crate) watermark: Option<u64>,
    /// The shared backend's generation the versions belong to.
    pub(crate) generation: u64,
}

/// The shared backend, if it can hold this method's values.
fn shared_for<'a>(
    cache: &'a Cache,
    serde: Option<&'static SerdeVTable>,
) -> Option<&'a dyn crate::backend::Backend> {
    cache
        .inner
        .shared
        .as_deref()
        .filter(|shared| serde.is_some() || !shared.stores_bytes())
}

pub(crate) async fn stamp(
    cache: &Cache,
    site: &'static CachedSite,
    tags: Vec<String>,
    serde: Option<&'static SerdeVTable>,
    counters: &MethodCounters,
) -> Stamp {
    let inner = &*cache.inner;
    let local = inner
        .local
        .as_ref()
        .filter(|_| cache.local_trusted())
        .map(|local| local.stamp(&tags));
    let mut watermark = None;
    let mut generation = 0;
    let shared = match shared_for(cache, serde) {
        None => None,
        Some(shared) => {
            match crate::exported::backend_call("stamp", shared.stamp_versions(&tags)).await {
                Ok(versions) if versions.tags.len() == tags.len() => {
                    watermark = versions.watermark;
                    generation = versions.generation;
                    Some(tags.into_iter().zip(versions.tags).collect())
                }
                _ => {
                    counters.backend_errors.incr();
                    tracing::event!(target: TARGET, tracing::Level::WARN, cache.op = "error", cache.method = site.name, "backend could not read tag versions: the value will not be stored there");
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
pub(crate) async fn extend_stamp(
    cache: &Cache,
    stamp: &mut Stamp,
    tags: Vec<String>,
    counters: &MethodCounters,
) {
    if tags.is_empty() {
        return;
    }
    let inner = &*cache.inner;
    if let (Some(local), Some(local_stamp)) = (&inner.local, &mut stamp.local) {
        local.extend_stamp(local_stamp, &tags);
    }
    if let (Some(shared), Some(pairs)) = (inner.shared.as_deref(), &mut stamp.shared) {
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
                counters.backend_errors.incr();
                stamp.shared = None;
            }
        }
    }
}

pub(crate) fn meta(cache: &Cache, site: &CachedSite, load_micros: u64) -> EntryMeta {
    let now = cache.inner.clock.now_millis();
    let jitter = if site.jitter_ms > 0 {
        fastrand::u64(0..=site.jitter_ms)
    } else {
        0
    };
    // Saturating: a duration near u64::MAX means "never expires", not a wrapped past.
    let fresh_until = now.saturating_add(site.ttl_ms.saturating_sub(jitter).max(1));
    EntryMeta {
        fresh_until,
        stale_until: fresh_until.saturating_add(site.swr_ms),
        load_micros,
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn store<V: Clone + Send + Sync + 'static>(
    cache: &Cache,
    site: &'static CachedSite,
    key: &OwnedKey,
    serde: Option<&'static SerdeVTable>,
    value: &V,
    stamp: Stamp,
    meta: EntryMeta,
    counters: &MethodCounters,
) {
    let inner = &*cache.inner;
    if let (Some(local), Some(local_stamp)) = (&inner.local, stamp.local) {
        let now = inner.clock.now_millis();
        local.insert(
            key.storage().into(),
            Box::new(value.clone()),
            meta,
            local_stamp,
            now,
        );
    }
    if let (Some(shared), Some(tags)) = (shared_for(cache, serde), stamp.shared) {
        let entry = StoredEntry {
            value: Arc::new(value.clone()),
            meta,
            tags,
            generation: stamp.generation,
        };
        if let Err(error) =
            crate::exported::backend_call("put", shared.put(key.entry_key(site, serde), entry))
                .await
        {
            counters.backend_errors.incr();
            tracing::event!(target: TARGET, tracing::Level::WARN, cache.op = "error", cache.method = site.name, cache.key = key.rendered(), %error, "backend write failed");
        }
    }
}

/// What a look-up in the shared tier found.
pub(crate) enum SharedLookup<V> {
    /// Something, perhaps nothing: the call goes on with it.
    Read(SharedRead<V>),
    /// The shared tier cannot be trusted or reached now: the call runs its body.
    Bypass,
}

/// A read of the shared tier, with what a flight needs to hand its value to waiters: the
/// invalidation log's position before the read, and the hashes of the entry's tags.
pub(crate) struct SharedRead<V> {
    pub(crate) found: Found<V>,
    pub(crate) started_at: u64,
    pub(crate) tag_hashes: Vec<u64>,
}

/// Looks `key` up in the shared backend; a hit is promoted into the in-process tier.
pub(crate) async fn shared_lookup<V: Clone + Send + Sync + 'static>(
    cache: &Cache,
    site: &'static CachedSite,
    key: &OwnedKey,
    static_tags: &[String],
    serde: Option<&'static SerdeVTable>,
    counters: &MethodCounters,
) -> SharedLookup<V> {
    let inner = &*cache.inner;
    // For a promotion into L1 and for waiters: the log position before reading, so that an
    // invalidation arriving meanwhile leaves the value outdated.
    let started_at = inner.log.position();
    let miss = || {
        SharedLookup::Read(SharedRead {
            found: Found::Miss,
            started_at,
            tag_hashes: Vec::new(),
        })
    };
    let Some(shared) = shared_for(cache, serde) else {
        return miss();
    };
    let mut local_stamp = inner
        .local
        .as_ref()
        .filter(|_| cache.local_trusted())
        .map(|local| local.stamp(static_tags));
    if inner.pending.any() {
        // The background replay delivers them; until then the backend may hold pre-write
        // values.
        tracing::event!(target: TARGET, tracing::Level::DEBUG, cache.op = "error", cache.method = site.name, cache.key = key.rendered(), "invalidations pending: bypassing the shared tier");
        return SharedLookup::Bypass;
    }
    let fetched = match crate::exported::backend_call("get", shared.get(key.entry_key(site, serde)))
        .await
    {
        Ok(None) => return miss(),
        Ok(Some(fetched)) => fetched,
        Err(error) if error.kind() == BackendErrorKind::Corrupt => {
            counters.backend_errors.incr();
            tracing::event!(target: TARGET, tracing::Level::WARN, cache.op = "error", cache.method = site.name, cache.key = key.rendered(), %error, "unreadable entry: a miss, and it will be overwritten");
            return miss();
        }
        Err(error) => {
            counters.backend_errors.incr();
            tracing::event!(target: TARGET, tracing::Level::WARN, cache.op = "error", cache.method = site.name, cache.key = key.rendered(), %error, "backend read failed: running the body");
            return SharedLookup::Bypass;
        }
    };
    let entry = &fetched.entry;
    let current = entry.tags.len() == fetched.current_versions.len()
        && entry
            .tags
            .iter()
            .zip(&fetched.current_versions)
            .all(|((_, stored), now)| stored == now);
    if !current {
        return miss();
    }
    let now = inner.clock.now_millis();
    let found = classify::<V>(site, &*entry.value, &entry.meta, now);
    let tag_hashes: Vec<u64> = entry.tags.iter().map(|(t, _)| inner.log.hash(t)).collect();
    if let (
        Some(local),
        Some(stamp),
        Found::Fresh(value) | Found::Stale(value) | Found::EarlyRefresh(value),
    ) = (&inner.local, local_stamp.as_mut(), &found)
    {
        let extra: Vec<String> = entry
            .tags
            .iter()
            .map(|(t, _)| t.clone())
            .filter(|t| !static_tags.contains(t))
            .collect();
        local.extend_stamp(stamp, &extra);
        if !inner.log.invalidated_since(started_at, &tag_hashes) {
            let stamp = local_stamp.take().expect("checked above");
            local.insert(
                key.storage().into(),
                Box::new(value.clone()),
                entry.meta,
                stamp,
                now,
            );
        }
    }
    if matches!(found, Found::Fresh(_)) {
        counters.l2_hits.incr();
    }
    SharedLookup::Read(SharedRead {
        found,
        started_at,
        tag_hashes,
    })
}

/// Whether a flight's value is still current for a waiter.
pub(crate) enum Current {
    Yes,
    /// An invalidation overtook it: look again.
    No,
    /// It cannot be told: the waiter loads for itself.
    Unknown,
}

/// Whether a landed value may be handed to a waiter of this instance, beyond what the
/// invalidation log says. The log knows this instance's invalidations, and, while the
/// backend's feed is connected, every other instance's. Without the feed (an instance
/// without an in-process tier, or a broken feed), the value's tag versions are read again
/// from the backend: an invalidation that returned on another instance before the waiter
/// joined has changed one of them.
pub(crate) async fn still_current(cache: &Cache, landing: &Landing) -> Current {
    let inner = &*cache.inner;
    let Some(backend) = inner.shared.as_deref() else {
        return Current::Yes;
    };
    if inner.local.is_some() && cache.local_trusted() {
        return Current::Yes;
    }
    let Some(stamp) = &landing.shared else {
        return Current::Unknown;
    };
    let names: Vec<String> = stamp.tags.iter().map(|(t, _)| t.clone()).collect();
    match backend.stamp_versions(&names).await {
        Ok(now)
            if now.generation == stamp.generation
                && now.tags.iter().eq(stamp.tags.iter().map(|(_, v)| v)) =>
        {
            Current::Yes
        }
        Ok(_) => Current::No,
        Err(_) => Current::Unknown,
    }
}

/// What taking the cross-instance lock of a key came to.
pub(crate) enum Locked<V> {
    /// Load here: holding the lock (`Some`), or without one (the backend has none, failed,
    /// or the holder did not store in time).
    Load(Option<LockToken>),
    /// Another instance stored the value while we waited; read from the shared tier at
    /// log position `started_at`, carrying tags with these hashes.
    LoadedElsewhere {
        value: V,
        started_at: u64,
        tag_hashes: Vec<u64>,
    },
}

/// Takes the cross-instance lock of `key` (`lock` on the method), or waits for the instance
/// that holds it to store the value. Gives up waiting after twice the lock's time, and loads
/// without a lock when the backend fails: the lock only saves work.
pub(crate) async fn lock<V: Clone + Send + Sync + 'static>(
    cache: &Cache,
    site: &'static CachedSite,
    key: &OwnedKey,
    tags: &[String],
    serde: Option<&'static SerdeVTable>,
    counters: &MethodCounters,
) -> Locked<V> {
    let Some(shared) = shared_for(cache, serde) else {
        return Locked::Load(None);
    };
    let ttl = std::time::Duration::from_millis(site.lock_ms);
    let deadline = std::time::Instant::now().checked_add(ttl.saturating_mul(2));
    loop {
        match shared.try_lock(key.entry_key(site, serde), ttl).await {
            Ok(Some(token)) => return Locked::Load(Some(token)),
            Ok(None) => {}
            Err(_) => {
                counters.backend_errors.incr();
                return Locked::Load(None);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if let SharedLookup::Read(SharedRead {
            found: Found::Fresh(value),
            started_at,
            tag_hashes,
        }) = shared_lookup::<V>(cache, site, key, tags, serde, counters).await
        {
            counters.coalesced.incr();
            return Locked::LoadedElsewhere {
                value,
                started_at,
                tag_hashes,
            };
        }
        if deadline.is_some_and(|deadline| std::time::Instant::now() >= deadline) {
            tracing::event!(target: TARGET, tracing::Level::WARN, cache.op = "error", cache.method = site.name, cache.key = key.rendered(), "the instance holding the lock did not store the value in time: loading here");
            return Locked::Load(None);
        }
    }
}

/// A cross-instance lock held by this instance's load. Released when the load ends; if the
/// load is cancelled or panics, released in the background, so that other instances do not
/// wait for its expiry.
pub(crate) struct HeldLock {
    cache: Cache,
    site: &'static CachedSite,
    key: Box<[u8]>,
    serde: Option<&'static SerdeVTable>,
    token: Option<LockToken>,
}

impl HeldLock {
    pub(crate) fn new(
        cache: &Cache,
        site: &'static CachedSite,
        key: &OwnedKey,
        serde: Option<&'static SerdeVTable>,
        token: LockToken,
    ) -> Self {
        HeldLock {
            cache: cache.clone(),
            site,
            key: key.storage().into(),
            serde,
            token: Some(token),
        }
    }

    pub(crate) async fn release(mut self) {
        if let Some(token) = self.token.take() {
            unlock(
                &self.cache,
                self.site,
                &OwnedKey::new(self.key.clone()),
                self.serde,
                token,
            )
            .await;
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (cache, site, key, serde) = (
            self.cache.clone(),
            self.site,
            OwnedKey::new(self.key.clone()),
            self.serde,
        );
        runtime.spawn(async move { unlock(&cache, site, &key, serde, token).await });
    }
}

pub(crate) async fn unlock(
    cache: &Cache,
    site: &'static CachedSite,
    key: &OwnedKey,
    serde: Option<&'static SerdeVTable>,
    token: LockToken,
) {
    if let Some(shared) = shared_for(cache, serde) {
        let _ = shared.unlock(key.entry_key(site, serde), token).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Template;
    use crate::site::CountersSlot;

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
        counters: CountersSlot::NEW,
    };

    #[test]
    fn absurd_durations_saturate_instead_of_overflowing() {
        let cache = Cache::in_memory(10);
        let meta = meta(&cache, &FOREVER, 0);
        assert_eq!((meta.fresh_until, meta.stale_until), (u64::MAX, u64::MAX));
        let local = cache.inner.local.as_ref().expect("in-process tier");
        let now = cache.inner.clock.now_millis();
        local.insert(
            b"k".to_vec().into(),
            Box::new(7u8),
            meta,
            local.stamp(&[]),
            now,
        );
        let found = local.with_entry(b"k", now, |entry| {
            classify::<u8>(&FOREVER, &*entry.value, &entry.meta, now)
        });
        assert!(matches!(found, Some(Found::Fresh(7))));
    }
}
