//! The storage behind a [`Cache`](crate::Cache).
//!
//! The shared tier behind a [`Cache`](crate::Cache): the [`Backend`] trait, which third
//! parties implement, and the Redis backend.
//!
//! A cache has an in-process tier, [`InProcessTier`](crate::InProcessTier) (moka), and can use
//! a shared store behind it (or instead of it). A backend only stores and fetches; the runtime
//! decides freshness, compares tag versions, coalesces loads and falls back to the loader
//! when the backend fails.

#[cfg(feature = "redis")]
pub(crate) mod envelope;
#[cfg(feature = "redis")]
mod redis;

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use self::redis::{RedisBackend, RedisBuilder};

use crate::codec::SerdeVTable;

/// The future a [`Backend`] method returns.
pub type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BackendError>> + Send + 'a>>;

/// What went wrong in a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The store could not be reached.
    Unavailable,
    /// The store did not answer in time.
    Timeout,
    /// An entry could not be decoded.
    Corrupt,
    /// Anything else.
    Other,
}

/// An error from a [`Backend`]. The runtime never lets it reach the caller of a cached
/// method: it counts it, logs it and runs the method's body instead.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct BackendError {
    kind: BackendErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl BackendError {
    /// A new error of `kind`.
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> Self {
        BackendError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> BackendErrorKind {
        self.kind
    }
}

/// Which entry an operation is about.
#[derive(Clone, Copy, Debug)]
pub struct EntryKey<'a> {
    /// The method's name.
    pub method: &'static str,
    /// The method's key space: entries of different methods never share a key.
    pub scope: u64,
    /// The rendered key, e.g. `customer.42`.
    pub key: &'a str,
    /// How the method's values turn into bytes and back, when its value type is
    /// `Serialize + DeserializeOwned`; backends that store bytes need it, others ignore it.
    pub serde: Option<&'static SerdeVTable>,
    /// The call's tags (rendered; not those a value adds from its result): the tags an entry
    /// of this key most likely carries, whose versions a backend may read alongside it.
    pub tags: &'a [String],
}

/// What a shared backend tells the caches that use it about changes made elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeedEvent {
    /// Another instance invalidated these tags.
    Invalidated(Vec<String>),
    /// Another instance cleared the cache.
    Cleared,
    /// The feed is (again) connected; anything kept in process may have missed events.
    Connected,
    /// The feed broke; until [`Connected`](FeedEvent::Connected), nothing kept in process may
    /// be trusted.
    Disconnected,
}

/// Proof of holding a lock of [`Backend::try_lock`]: releasing needs the same token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockToken(pub u64);

/// The stream of [`FeedEvent`]s of a backend.
pub type Feed = tokio::sync::mpsc::UnboundedReceiver<FeedEvent>;

/// When an entry stops being fresh and stops being servable, in milliseconds since the Unix
/// epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    /// Until then the entry is served as a hit.
    pub fresh_until: u64,
    /// Until then an expired entry may be served while it is refreshed; a backend may drop the
    /// entry after this.
    pub stale_until: u64,
    /// How long the load that produced it took, in microseconds (XFetch's δ).
    pub load_micros: u64,
}

/// An entry as a shared backend stores it.
#[derive(Clone)]
pub struct StoredEntry {
    /// The value. The runtime checks its type when reading it back; a value of another type
    /// counts as a miss.
    pub value: Arc<dyn Any + Send + Sync>,
    /// Its expiry.
    pub meta: EntryMeta,
    /// Each tag with its version when the entry's load started.
    pub tags: Vec<(String, u64)>,
    /// The backend's generation those versions belong to ([`Versions::generation`]).
    pub generation: u64,
}

impl std::fmt::Debug for StoredEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredEntry")
            .field("meta", &self.meta)
            .field("tags", &self.tags)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// An entry read back, with the *current* versions of its tags (same order as
/// [`StoredEntry::tags`]), fetched together so that a hit costs one round trip.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The entry.
    pub entry: StoredEntry,
    /// The current version of each of its tags.
    pub current_versions: Vec<u64>,
}

/// Tag versions taken before a load, as [`Backend::stamp_versions`] hands them out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Versions {
    /// The version of each tag, in the order asked.
    pub tags: Vec<u64>,
    /// The backend's invalidation watermark, when it has one: a number that every later
    /// invalidation exceeds (tag versions drawn from one increasing sequence). With it, tags
    /// known only after a load (from its result) whose version is above the watermark taken
    /// before the load were invalidated during it, and the value is not stored.
    pub watermark: Option<u64>,
    /// The backend's generation: a backend that can lose data it acknowledged (a server
    /// restarted from an older snapshot, evicted bookkeeping) or that was cleared starts a new
    /// one, in which every entry and every earlier stamp is outdated. Versions and watermarks
    /// compare only within one generation. Backends that never lose data keep it at 0.
    pub generation: u64,
}

/// A shared store for cache entries and tag versions.
///
/// Contract:
/// - a tag nobody invalidated yet has some version; [`invalidate_tags`](Backend::invalidate_tags)
///   must change it to a value it never had before (a counter that is never reset works);
/// - [`get`](Backend::get) returns the entry with the current versions of its tags;
/// - an entry may be dropped at any time after `meta.stale_until` (or earlier, under pressure);
/// - [`clear`](Backend::clear) drops every entry of this cache and nothing else.
///
/// ```
/// use std::collections::HashMap;
/// use cache_runtime::backend::*;
/// use std::sync::Mutex;
///
/// #[derive(Default)]
/// struct MapBackend {
///     entries: Mutex<HashMap<(u64, String), StoredEntry>>,
///     versions: Mutex<HashMap<String, u64>>,
/// }
///
/// impl Backend for MapBackend {
///     fn get<'a>(&'a self, key: EntryKey<'a>) -> BackendFuture<'a, Option<Fetched>> {
///         let entry = self.entries.lock().unwrap().get(&(key.scope, key.key.to_owned())).cloned();
///         let versions = self.versions.lock().unwrap();
///         Box::pin(std::future::ready(Ok(entry.map(|entry| Fetched {
///             current_versions: entry.tags.iter().map(|(t, _)| *versions.get(t).unwrap_or(&0)).collect(),
///             entry,
///         }))))
///     }
///     fn tag_versions<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, Vec<u64>> {
///         let versions = self.versions.lock().unwrap();
///         Box::pin(std::future::ready(Ok(tags.iter().map(|t| *versions.get(t).unwrap_or(&0)).collect())))
///     }
///     fn put<'a>(&'a self, key: EntryKey<'a>, entry: StoredEntry) -> BackendFuture<'a, ()> {
///         self.entries.lock().unwrap().insert((key.scope, key.key.to_owned()), entry);
///         Box::pin(std::future::ready(Ok(())))
///     }
///     fn invalidate_tags<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, ()> {
///         let mut versions = self.versions.lock().unwrap();
///         for tag in tags { *versions.entry(tag.clone()).or_insert(0) += 1; }
///         Box::pin(std::future::ready(Ok(())))
///     }
///     fn clear(&self) -> BackendFuture<'_, ()> {
///         self.entries.lock().unwrap().clear();
///         // A cleared cache must also outdate loads that stamped versions before: a simple
///         // way is to bump every tag.
///         self.versions.lock().unwrap().values_mut().for_each(|v| *v += 1);
///         Box::pin(std::future::ready(Ok(())))
///     }
/// }
///
/// let cache = cache_runtime::Cache::with_backend(MapBackend::default());
/// ```
pub trait Backend: Send + Sync + 'static {
    /// Reads an entry and the current versions of its tags.
    fn get<'a>(&'a self, key: EntryKey<'a>) -> BackendFuture<'a, Option<Fetched>>;
    /// Like [`get`](Backend::get), for a cache that follows this backend's
    /// [`feed`](Backend::feed) and finds it connected: such a cache already serves its
    /// in-process entries as fresh as the feed, so the backend may answer from what the feed
    /// told it (tag versions, say) instead of asking its store. The default asks, as `get`.
    fn get_trusting_feed<'a>(&'a self, key: EntryKey<'a>) -> BackendFuture<'a, Option<Fetched>> {
        self.get(key)
    }
    /// Reads several entries, each as [`get`](Backend::get) (or, with `trusting_feed`, as
    /// [`get_trusting_feed`](Backend::get_trusting_feed)) would, answering in the order of
    /// `keys`: a batch method's misses. A backend that can should make it one round trip (the
    /// Redis backend sends one pipeline to a single server). The default reads them
    /// concurrently, one `get` each.
    fn get_many<'a>(
        &'a self,
        keys: &'a [EntryKey<'a>],
        trusting_feed: bool,
    ) -> BackendFuture<'a, Vec<Result<Option<Fetched>, BackendError>>> {
        Box::pin(async move {
            let reads = keys.iter().map(|key| match trusting_feed {
                true => self.get_trusting_feed(*key),
                false => self.get(*key),
            });
            Ok(futures_util::future::join_all(reads).await)
        })
    }
    /// The current versions of `tags`, in order. Called before a load starts.
    fn tag_versions<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, Vec<u64>>;
    /// Like [`tag_versions`](Backend::tag_versions), with the backend's watermark and
    /// generation ([`Versions`]). The default has no watermark and generation 0.
    fn stamp_versions<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, Versions> {
        Box::pin(async move {
            Ok(Versions {
                tags: self.tag_versions(tags).await?,
                watermark: None,
                generation: 0,
            })
        })
    }
    /// Stores an entry, replacing any previous one under the same key. A backend may decline
    /// to store an entry whose versions are no longer current (it would be outdated anyway).
    fn put<'a>(&'a self, key: EntryKey<'a>, entry: StoredEntry) -> BackendFuture<'a, ()>;
    /// Stores several entries, each as [`put`](Backend::put) would: a batch method's loads. A
    /// backend that can should make it one round trip (the Redis backend sends one pipeline
    /// to a single server). Returns the first failure. The default writes them concurrently,
    /// one `put` each.
    fn put_many<'a>(&'a self, entries: Vec<(EntryKey<'a>, StoredEntry)>) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            let puts = entries.into_iter().map(|(key, entry)| self.put(key, entry));
            futures_util::future::join_all(puts)
                .await
                .into_iter()
                .collect()
        })
    }
    /// Gives each of `tags` a new version, so that every entry carrying one becomes invalid.
    fn invalidate_tags<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, ()>;
    /// Drops every entry of this cache, and outdates every stamp taken before: a load that
    /// started before the clear must not store its value afterwards.
    fn clear(&self) -> BackendFuture<'_, ()>;

    /// Whether calls are worth trying now: `false` while a circuit breaker is open. Then only
    /// one invalidation at a time tries (the others return at once, queued, with an error),
    /// so that an outage adds at most one probe's latency to writes; the background replay of
    /// queued invalidations tries anyway, so that they go through as soon as the store
    /// answers. A backend should bound invalidations by a short timeout while unhealthy.
    fn healthy(&self) -> bool {
        true
    }

    /// Events about changes made by other instances, for a cache that keeps an in-process tier
    /// in front of this backend. `None` (the default) when the backend has no such feed: then
    /// a cache does not keep an in-process tier in front of it.
    fn feed(&self) -> Option<Feed> {
        None
    }

    /// Takes a short lock on `key` for one instance's load (`SET NX PX`), held for at most
    /// `ttl`. `Ok(None)`: another instance holds it. The default, for backends without locks,
    /// always grants it.
    fn try_lock<'a>(
        &'a self,
        key: EntryKey<'a>,
        ttl: std::time::Duration,
    ) -> BackendFuture<'a, Option<LockToken>> {
        let _ = (key, ttl);
        Box::pin(std::future::ready(Ok(Some(LockToken(0)))))
    }

    /// Releases a lock taken by [`try_lock`](Backend::try_lock), if it is still ours.
    fn unlock<'a>(&'a self, key: EntryKey<'a>, token: LockToken) -> BackendFuture<'a, ()> {
        let _ = (key, token);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Whether the backend stores bytes (and so can only hold values whose type is
    /// `Serialize + DeserializeOwned`; other methods keep their entries in process).
    fn stores_bytes(&self) -> bool {
        false
    }
}
