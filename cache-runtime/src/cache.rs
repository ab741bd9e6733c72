//! The [`Cache`] handle.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::backend::{Backend, BackendError, Feed, FeedEvent, MemoryBackend};
use crate::clock::Clock;
use crate::flight::Flights;
use crate::pending::{Attempt, PendingInvalidations};
use crate::stats::{MethodCounters, Stats, StatsRegistry};
use crate::tags::InvalidationLog;

/// How often queued invalidations are retried while the shared backend refuses them.
const REPLAY_PERIOD: Duration = Duration::from_millis(50);

/// Prefix of the implicit tag every entry carries for its own rendered key, so that
/// [`Cache::invalidate_key`] is a tag invalidation (O(1), and it wins over running loads).
pub(crate) const KEY_TAG_PREFIX: &str = "\u{1f}key\u{1f}";

/// A cache: cheap to clone (an `Arc`), shared by every repository method that names it.
///
/// ```
/// use cache_runtime::{cached, Cache};
///
/// struct Repo { cache: Cache }
///
/// impl Repo {
///     #[cached(key = "square.{n}", ttl = 60)]
///     async fn square(&self, n: u64) -> u64 { n * n }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let repo = Repo { cache: Cache::in_memory(10_000) };
/// assert_eq!(repo.square(12).await, 144); // miss: runs the body
/// assert_eq!(repo.square(12).await, 144); // hit
/// let stats = repo.cache.stats();
/// let row = stats.methods.iter().find(|m| m.method.ends_with("square")).unwrap();
/// assert_eq!((row.hits, row.misses), (1, 1));
/// # }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    id: u64,
    pub(crate) local: Option<MemoryBackend>,
    pub(crate) shared: Option<Arc<dyn Backend>>,
    pub(crate) flights: Flights,
    pub(crate) stats: StatsRegistry,
    pub(crate) clock: Clock,
    pub(crate) log: InvalidationLog,
    pub(crate) pending: PendingInvalidations,
    pub(crate) failed_refreshes: moka::sync::Cache<Box<[u8]>, ()>,
    /// With a shared backend in front of which the in-process tier sits: whether the
    /// backend's feed is connected, so that in-process entries can be trusted.
    trusted: AtomicBool,
    replaying: AtomicBool,
    feed_events: AtomicU64,
    _stop_feed: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("id", &self.inner.id)
            .field("in_memory", &self.inner.local.is_some())
            .field("shared", &self.inner.shared.is_some())
            .finish()
    }
}

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
    max_entries: u64,
    in_process: bool,
    shared: Option<Arc<dyn Backend>>,
    clock: Clock,
    refresh_backoff: Duration,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        CacheBuilder {
            max_entries: 100_000,
            in_process: true,
            shared: None,
            clock: Clock::system(),
            refresh_backoff: Duration::from_secs(1),
        }
    }
}

impl CacheBuilder {
    /// The most entries the in-process tier holds (default 100 000).
    pub fn max_entries(mut self, max_entries: u64) -> Self {
        self.max_entries = max_entries;
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
            _ => Some(MemoryBackend::new(self.max_entries)),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let inner = Arc::new(Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            local,
            shared: self.shared,
            flights: Flights::new(),
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
            feed_events: AtomicU64::new(0),
            _stop_feed: feed.is_some().then_some(stop_tx),
        });
        if let Some(feed) = feed {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(follow(Arc::downgrade(&inner), feed, stop_rx));
            }
        }
        Cache { inner }
    }
}

/// Applies a shared backend's feed to the in-process tier, until the cache is dropped.
async fn follow(inner: Weak<Inner>, mut feed: Feed, mut stop: tokio::sync::oneshot::Receiver<()>) {
    loop {
        let event = tokio::select! {
            event = feed.recv() => event,
            _ = &mut stop => None,
        };
        let (Some(event), Some(inner)) = (event, inner.upgrade()) else {
            return;
        };
        let Some(local) = &inner.local else { return };
        inner.feed_events.fetch_add(1, Ordering::Relaxed);
        match event {
            FeedEvent::Invalidated(tags) => {
                inner.log.record(tags.iter().map(|t| inner.log.hash(t)));
                local.invalidate_tags(&tags);
                tracing::event!(target: "cache_runtime", tracing::Level::DEBUG, cache.op = "invalidate", cache.tags = ?tags, "invalidated by another instance");
            }
            FeedEvent::Cleared => {
                inner.log.record_all();
                local.clear();
            }
            FeedEvent::Connected => {
                // Events may have been missed while disconnected: start over.
                inner.log.record_all();
                local.clear();
                inner.trusted.store(true, Ordering::Release);
            }
            FeedEvent::Disconnected => inner.trusted.store(false, Ordering::Release),
        }
    }
}

impl Cache {
    /// An in-process cache on moka, bounded to `max_entries` entries.
    pub fn in_memory(max_entries: u64) -> Cache {
        Cache::builder().max_entries(max_entries).build()
    }

    /// A cache storing its entries in `backend`.
    pub fn with_backend(backend: impl Backend) -> Cache {
        Cache::builder().backend(backend).build()
    }

    /// Starts configuring a cache.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    pub(crate) fn id(&self) -> u64 {
        self.inner.id
    }

    /// Whether in-process entries may be served: always without a shared backend; with one,
    /// only while its invalidation feed is connected.
    #[inline]
    pub(crate) fn local_trusted(&self) -> bool {
        self.inner.shared.is_none() || self.inner.trusted.load(Ordering::Acquire)
    }

    /// Whether the shared backend's invalidation feed is connected (and so the in-process tier
    /// in front of it is in use). Always `true` without a shared backend.
    pub fn feed_connected(&self) -> bool {
        self.local_trusted() && self.inner.local.is_some()
    }

    /// How many events of the shared backend's feed (invalidations and clears by other
    /// instances, reconnections) this cache has applied.
    pub fn feed_events(&self) -> u64 {
        self.inner.feed_events.load(Ordering::Relaxed)
    }

    /// Retries refused invalidations in the background until the backend takes them.
    fn replay_pending(&self) {
        let inner = &self.inner;
        if inner.replaying.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            inner.replaying.store(false, Ordering::Release);
            return;
        };
        let weak = Arc::downgrade(inner);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(REPLAY_PERIOD).await;
                let Some(inner) = weak.upgrade() else { return };
                let Some(shared) = inner.shared.as_deref() else {
                    return;
                };
                if !inner.pending.any()
                    || inner.pending.flush(shared, Attempt::Replay).await.is_ok()
                {
                    inner.replaying.store(false, Ordering::Release);
                    if inner.pending.any() {
                        // Added after the flush: go on.
                        if !inner.replaying.swap(true, Ordering::AcqRel) {
                            continue;
                        }
                    }
                    return;
                }
            }
        });
    }

    pub(crate) fn method_counters(&self, name: &'static str) -> Arc<MethodCounters> {
        self.inner.stats.method(name)
    }

    /// Per-method counters.
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot()
    }

    /// The most-read rendered keys of `method` (its `name`), most read first, with estimated
    /// read counts: every miss counts, and one hit in 16 (weighted 16). For warming a cache
    /// from real traffic.
    ///
    /// ```
    /// use cache_runtime::{cached, Cache};
    ///
    /// struct Repo { cache: Cache }
    /// impl Repo {
    ///     #[cached(key = "customer.{id}", ttl = 60, name = "Repo::find")]
    ///     async fn find(&self, id: u32) -> u32 { id }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let repo = Repo { cache: Cache::in_memory(100) };
    /// for id in [1, 2, 2, 3, 3, 3] {
    ///     repo.cache.invalidate_key(&format!("customer.{id}")).await.unwrap(); // force misses
    ///     repo.find(id).await;
    /// }
    /// let top: Vec<String> = repo.cache.hot_keys("Repo::find", 2).into_iter().map(|(k, _)| k).collect();
    /// assert_eq!(top, ["customer.3", "customer.2"]);
    /// # }
    /// ```
    pub fn hot_keys(&self, method: &str, n: usize) -> Vec<(String, u64)> {
        self.inner.stats.hot_keys(method, n)
    }

    /// The in-process tier, when the cache has one.
    pub fn memory(&self) -> Option<&MemoryBackend> {
        self.inner.local.as_ref()
    }

    /// Invalidates every entry carrying one of `tags`, in every method. Costs O(1) per tag,
    /// whatever the number of entries, and wins over loads already running: they will not
    /// leave a pre-invalidation value behind.
    ///
    /// With a shared backend, an error means the backend refused the invalidation: it is kept
    /// and retried, and until it goes through the backend is bypassed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cache = cache_runtime::Cache::in_memory(100);
    /// cache.invalidate_tags(["customer.42", "customer.list"]).await.unwrap();
    /// # }
    /// ```
    pub async fn invalidate_tags<I>(&self, tags: I) -> Result<(), BackendError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let tags: Vec<String> = tags.into_iter().map(|t| t.as_ref().to_owned()).collect();
        let counters = self.method_counters("Cache::invalidate_tags");
        self.invalidate(&tags, &counters, "Cache::invalidate_tags")
            .await
    }

    /// Invalidates the entries whose rendered key is `key` (e.g. `customer.42`), in every
    /// method.
    pub async fn invalidate_key(&self, key: &str) -> Result<(), BackendError> {
        let tags = [format!("{KEY_TAG_PREFIX}{key}")];
        let counters = self.method_counters("Cache::invalidate_key");
        self.invalidate(&tags, &counters, "Cache::invalidate_key")
            .await
    }

    /// Drops every entry. Loads already running, here or (with a shared backend) on other
    /// instances, will not store their values.
    ///
    /// With a shared backend, an error means the backend refused the clear: it is kept and
    /// retried like an invalidation, and until it goes through the backend is bypassed.
    pub async fn clear(&self) -> Result<(), BackendError> {
        let inner = &*self.inner;
        if inner.shared.is_some() {
            inner.pending.add_clear();
            self.replay_pending();
        }
        inner.log.record_all();
        if let Some(local) = &inner.local {
            local.clear();
        }
        tracing::event!(target: "cache_runtime", tracing::Level::INFO, cache.op = "clear", "cache cleared");
        if let Some(shared) = &inner.shared {
            if let Err(error) = inner.pending.flush(&**shared, Attempt::Foreground).await {
                tracing::event!(target: "cache_runtime", tracing::Level::WARN, cache.op = "error", %error, "clear queued: backend refused it");
                return Err(error);
            }
        }
        Ok(())
    }

    /// The one invalidation path: log first (so that running loads see it), then versions.
    pub(crate) async fn invalidate(
        &self,
        tags: &[String],
        counters: &MethodCounters,
        method: &'static str,
    ) -> Result<(), BackendError> {
        let inner = &*self.inner;
        counters.invalidations.incr();
        // Queue for the shared backend first: a reader that does not see it pending has
        // already read the log position it will check.
        if inner.shared.is_some() {
            inner.pending.add(tags);
            // Delivered even if the caller's future is dropped during the send.
            self.replay_pending();
        }
        inner.log.record(tags.iter().map(|t| inner.log.hash(t)));
        if let Some(local) = &inner.local {
            local.invalidate_tags(tags);
        }
        tracing::event!(target: "cache_runtime", tracing::Level::DEBUG, cache.op = "invalidate", cache.method = method, cache.tags = ?tags);
        if let Some(shared) = &inner.shared {
            if let Err(error) = inner.pending.flush(&**shared, Attempt::Foreground).await {
                counters.backend_errors.incr();
                tracing::event!(target: "cache_runtime", tracing::Level::WARN, cache.op = "error", cache.method = method, cache.tags = ?tags, %error, "invalidation queued: backend refused it");
                return Err(error);
            }
        }
        Ok(())
    }
}
