//! [`CacheBuilder`]: configures and builds a [`Cache`], and starts following the shared
//! backend's invalidation feed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::pending::PendingInvalidations;
use super::{feed, Cache, Inner};
use crate::backend::Backend;
use crate::clock::Clock;
use crate::flight::Flights;
use crate::stats::StatsRegistry;
use crate::tags::InvalidationLog;
use crate::tiers::{Bound, InProcessTier};

/// Configures a [`Cache`].
///
/// ```
/// use std::time::Duration;
/// let cache = cache_runtime::Cache::builder()
///     .max_entries(50_000)
///     .refresh_backoff(Duration::from_secs(5))
///     .build();
/// # let _ = cache;
/// ```
pub struct CacheBuilder {
    bound: Bound,
    in_process: bool,
    shared: Option<Arc<dyn Backend>>,
    clock: Clock,
    refresh_backoff: Duration,
    value_version: u32,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        CacheBuilder {
            bound: Bound::Entries(100_000),
            in_process: true,
            shared: None,
            clock: Clock::system(),
            refresh_backoff: Duration::from_secs(1),
            value_version: 0,
        }
    }
}

impl CacheBuilder {
    /// The most entries the in-process tier holds (default 100 000). Replaces a
    /// [`max_memory`](Self::max_memory) given before.
    pub fn max_entries(mut self, max_entries: u64) -> Self {
        self.bound = Bound::Entries(max_entries);
        self
    }

    /// Bounds the in-process tier by memory instead of by count: the entries' estimated bytes
    /// stay under `bytes` (moka's weigher; its TinyLFU decides which go). Replaces a
    /// [`max_entries`](Self::max_entries) given before.
    ///
    /// An entry weighs what the tier spends on any entry (424 bytes: moka's entry and
    /// ours, measured by `benches/memory.rs`), its key, 8 bytes per tag, its value's size and
    /// the bytes the value owns on the heap. The heap is counted by walking a serializable
    /// value (strings' lengths, collections' elements), without writing anything; a value that
    /// is not `Serialize` counts its inline size only. Capacity beyond a string's length and
    /// the allocator's rounding are not counted, so the process holds somewhat more than the
    /// budget: measure with `benches/memory.rs` for your values. A value shared by `Arc`
    /// counts its pointee once per entry. A value whose serialization fails, and the boxes and
    /// nested `Vec`s a value holds, count for less than they take. Outside the budget: the
    /// table of key versions (8 bytes per two entries the budget could hold at 424 bytes each,
    /// at most 32 MiB).
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let cache = Cache::builder().max_memory(64 * 1024 * 1024).build();
    /// assert_eq!(cache.in_process_tier().unwrap().weighed_size(), 0);
    /// ```
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.bound = Bound::Bytes(bytes);
        self
    }

    /// Stores entries in `backend`, shared by every instance. When the backend has an
    /// invalidation feed ([`Backend::feed`], e.g. Redis), the in-process tier stays in front of
    /// it (two tiers: an L1 hit makes no network call) and follows the feed; otherwise every
    /// call goes to the backend. Build the cache inside a Tokio runtime: the feed is followed
    /// by a task.
    pub fn backend(mut self, backend: impl Backend) -> Self {
        self.shared = Some(Arc::new(backend));
        self
    }

    /// With a shared backend: whether to keep the in-process tier in front of it (default
    /// `true`, when the backend has an invalidation feed). `false` sends every call to the
    /// backend.
    pub fn in_process_tier(mut self, keep: bool) -> Self {
        self.in_process = keep;
        self
    }

    /// The clock that decides freshness (default: the system clock).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// After a background refresh fails, how long the stale value is served before another
    /// refresh is tried (default 1 s).
    pub fn refresh_backoff(mut self, backoff: Duration) -> Self {
        self.refresh_backoff = backoff;
        self
    }

    /// A version of the value layouts of every method (default 0), besides each method's own
    /// `version = N`: in a shared backend, each pair of the two names a key space, so that
    /// during a rolling deploy the build whose value types changed keeps its own entries
    /// instead of reading the other build's as unreadable and overwriting them; an
    /// invalidation (by tag or key) reaches the entries of every version. Raise it when many
    /// cached value types change at once (every method starts cold); for one, raise its
    /// `version`.
    ///
    /// ```
    /// use cache_runtime::Cache;
    ///
    /// let cache = Cache::builder().value_version(2).build();
    /// assert_eq!(cache.value_version(), 2);
    /// ```
    pub fn value_version(mut self, version: u32) -> Self {
        self.value_version = version;
        self
    }

    /// Builds the cache.
    pub fn build(self) -> Cache {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let feed = self
            .shared
            .as_ref()
            .filter(|_| self.in_process)
            .and_then(|shared| shared.feed());
        let local = match (&self.shared, &feed) {
            (Some(_), None) => None,
            _ => Some(InProcessTier::bounded(self.bound, self.clock.clone())),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let inner = Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            local,
            shared: self.shared,
            flights: Flights::new(),
            blocking_flights: Flights::new(),
            stats: StatsRegistry::default(),
            clock: self.clock,
            log: InvalidationLog::new(),
            pending: PendingInvalidations::default(),
            failed_refreshes: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(self.refresh_backoff.max(Duration::from_millis(1)))
                .build(),
            trusted: AtomicBool::new(false),
            replaying: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::try_current().ok(),
            feed_events: AtomicU64::new(0),
            value_version: self.value_version,
            _stop_feed: feed.is_some().then_some(stop_tx),
        });
        if let Some(feed) = feed {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(feed::follow(Arc::downgrade(&inner), feed, stop_rx));
            }
        }
        Cache { inner }
    }
}
