//! The shared tier's steps of a call: reading it (and promoting what it finds into the
//! in-process tier), the cross-instance lock, and whether a landed value is still current for
//! a waiter that does not follow the invalidation feed.

use std::time::{Duration, Instant};

use tracing::Level;

use crate::backend::{BackendError, BackendErrorKind, Fetched, LockToken};
use crate::call::Call;
use crate::codec::SerdeVTable;
use crate::entry::{classify, Found, OwnedKey};
use crate::flight::Landing;
use crate::site::CachedSite;
use crate::tiers::LocalStamp;
use crate::Cache;

/// How long a caller waiting for another instance's lock sleeps between looks.
const LOCK_POLL: Duration = Duration::from_millis(20);

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

/// Whether a flight's value is still current for a waiter.
pub(crate) enum Current {
    Yes,
    /// An invalidation overtook it: look again.
    No,
    /// It cannot be told: the waiter loads for itself.
    Unknown,
}

/// What taking the cross-instance lock of a key came to.
pub(crate) enum Locked<V> {
    /// Load here: holding the lock (`Some`), or without one (the backend has none, failed,
    /// or the holder did not store in time).
    Load(Option<HeldLock>),
    /// Another instance stored the value while we waited; read from the shared tier at
    /// log position `started_at`, carrying tags with these hashes.
    LoadedElsewhere {
        value: V,
        started_at: u64,
        tag_hashes: Vec<u64>,
    },
}

impl<S, V: Clone + Send + Sync + 'static> Call<S, V> {
    /// Looks the key up in the shared backend; a hit is promoted into the in-process tier.
    pub(crate) async fn shared_lookup(&self) -> SharedLookup<V> {
        let cache = &self.cache;
        // For a promotion into L1 and for waiters: the log position before reading, so that
        // an invalidation arriving meanwhile leaves the value outdated.
        let started_at = cache.log().position();
        let Some(shared) = self.shared_tier() else {
            return self.judge_read(Ok(None), started_at, None);
        };
        let local_stamp = cache.trusted_local().map(|local| local.stamp(&self.tags));
        if cache.invalidations_pending() {
            // The background replay delivers them; until then the backend may hold pre-write
            // values.
            let why = "invalidations pending: bypassing the shared tier";
            self.log(Level::DEBUG, "error", None, why);
            return SharedLookup::Bypass;
        }
        // A cache whose in-process tier is trusted is as fresh as its feed already.
        let entry_key = self.entry_key();
        let get = match local_stamp {
            Some(_) => shared.get_trusting_feed(entry_key),
            None => shared.get(entry_key),
        };
        let read = crate::exported::backend_call("get", get).await;
        self.judge_read(read, started_at, local_stamp)
    }

    /// What a read of the key from the shared tier comes to, begun at log position
    /// `started_at`: an entry whose tags were invalidated is a miss, one that can be served
    /// is promoted into the in-process tier (with `local_stamp`, taken before the read), and
    /// a failed read bypasses the cache.
    pub(crate) fn judge_read(
        &self,
        read: Result<Option<Fetched>, BackendError>,
        started_at: u64,
        mut local_stamp: Option<LocalStamp>,
    ) -> SharedLookup<V> {
        let cache = &self.cache;
        let miss = || {
            SharedLookup::Read(SharedRead {
                found: Found::Miss,
                started_at,
                tag_hashes: Vec::new(),
            })
        };
        let fetched = match read {
            Ok(None) => return miss(),
            Ok(Some(fetched)) => fetched,
            Err(error) if error.kind() == BackendErrorKind::Corrupt => {
                self.counters.backend_errors.incr();
                let why = "unreadable entry: a miss, and it will be overwritten";
                self.log(Level::WARN, "error", Some(&error), why);
                return miss();
            }
            Err(error) => {
                self.counters.backend_errors.incr();
                let why = "backend read failed: running the body";
                self.log(Level::WARN, "error", Some(&error), why);
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
        let now = cache.now_millis();
        let found = classify::<V>(self.site, &*entry.value, &entry.meta, now);
        let tag_hashes: Vec<u64> = entry
            .tags
            .iter()
            .map(|(t, _)| cache.log().hash(t))
            .collect();
        if let (
            Some(local),
            Some(stamp),
            Found::Fresh(value) | Found::Stale(value) | Found::EarlyRefresh(value),
        ) = (cache.local(), local_stamp.as_mut(), &found)
        {
            let extra: Vec<String> = entry
                .tags
                .iter()
                .map(|(t, _)| t.clone())
                .filter(|t| !self.tags.contains(t))
                .collect();
            local.extend_stamp(stamp, &extra);
            if !cache.log().invalidated_since(started_at, &tag_hashes) {
                let stamp = local_stamp.take().expect("checked above");
                let key = self.key.storage().into();
                local.insert(key, value.clone(), self.serde, entry.meta, stamp);
            }
        }
        if matches!(found, Found::Fresh(_)) {
            self.counters.l2_hits.incr();
        }
        SharedLookup::Read(SharedRead {
            found,
            started_at,
            tag_hashes,
        })
    }

    /// Whether a landed value may be handed to a waiter of this instance, beyond what the
    /// invalidation log says. The log knows this instance's invalidations, and, while the
    /// backend's feed is connected, every other instance's. Without the feed (an instance
    /// without an in-process tier, or a broken feed), the value's tag versions are read
    /// again from the backend: an invalidation that returned on another instance before the
    /// waiter joined has changed one of them.
    pub(crate) async fn still_current(&self, landing: &Landing) -> Current {
        if self.blocking {
            // The log is all a blocking call consults (it never reads the backend).
            return if self.cache.trusted_local().is_some() {
                Current::Yes
            } else {
                Current::Unknown
            };
        }
        let Some(backend) = self.cache.shared() else {
            return Current::Yes;
        };
        if self.cache.trusted_local().is_some() {
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

    /// Takes the cross-instance lock of the key (`lock` on the method), or waits for the
    /// instance that holds it to store the value. Gives up waiting after twice the lock's
    /// time, and loads without a lock when the backend fails: the lock only saves work.
    pub(crate) async fn lock(&self) -> Locked<V> {
        let Some(shared) = self.shared_tier() else {
            return Locked::Load(None);
        };
        let ttl = Duration::from_millis(self.site.lock_ms);
        let deadline = Instant::now().checked_add(ttl.saturating_mul(2));
        let mut waited = false;
        loop {
            let entry = self.key.entry_key(
                self.site,
                self.cache.value_version(),
                self.serde,
                &self.tags,
            );
            match shared.try_lock(entry, ttl).await {
                Ok(Some(token)) => {
                    // Held at once, so that a cancelled or panicking caller releases it.
                    let held = HeldLock::new(self, token);
                    if waited {
                        // The holder may have stored the value and released the lock since
                        // our last look: look once more before loading it a second time.
                        if let Some(loaded) = self.loaded_elsewhere().await {
                            held.release().await;
                            return loaded;
                        }
                    }
                    return Locked::Load(Some(held));
                }
                Ok(None) => waited = true,
                Err(_) => {
                    self.counters.backend_errors.incr();
                    return Locked::Load(None);
                }
            }
            tokio::time::sleep(LOCK_POLL).await;
            if let Some(loaded) = self.loaded_elsewhere().await {
                return loaded;
            }
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                let why = "the instance holding the lock did not store the value in time: \
                           loading here";
                self.log(Level::WARN, "error", None, why);
                return Locked::Load(None);
            }
        }
    }

    /// The value another instance stored while this one waited for its lock, if it is there
    /// and fresh.
    async fn loaded_elsewhere(&self) -> Option<Locked<V>> {
        let SharedLookup::Read(SharedRead {
            found: Found::Fresh(value),
            started_at,
            tag_hashes,
        }) = self.shared_lookup().await
        else {
            return None;
        };
        self.counters.coalesced.incr();
        Some(Locked::LoadedElsewhere {
            value,
            started_at,
            tag_hashes,
        })
    }
}

/// A cross-instance lock held by this instance's load. Released when the load ends; if the
/// load is cancelled or panics, released in the background, so that other instances do not
/// wait for its expiry.
pub(crate) struct HeldLock {
    lock: Option<LockOf>,
}

/// A lock token with the entry it locks.
struct LockOf {
    cache: Cache,
    site: &'static CachedSite,
    key: OwnedKey,
    serde: Option<&'static SerdeVTable>,
    token: LockToken,
}

impl LockOf {
    async fn unlock(self) {
        let Some(shared) = self.cache.shared() else {
            return;
        };
        let entry = self
            .key
            .entry_key(self.site, self.cache.value_version(), self.serde, &[]);
        let _ = shared.unlock(entry, self.token).await;
    }
}

impl HeldLock {
    pub(crate) fn new<S, V>(call: &Call<S, V>, token: LockToken) -> Self {
        HeldLock {
            lock: Some(LockOf {
                cache: call.cache.clone(),
                site: call.site,
                key: call.key.clone(),
                serde: call.serde,
                token,
            }),
        }
    }

    pub(crate) async fn release(mut self) {
        if let Some(lock) = self.lock.take() {
            lock.unlock().await;
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let Some(lock) = self.lock.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(lock.unlock());
        }
    }
}
