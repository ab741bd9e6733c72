//! The [`Cache`] handle: what users call (invalidations, `clear`, statistics), and, for the
//! rest of the runtime, the cache's state behind methods.
//!
//! - `builder.rs`: [`CacheBuilder`], which builds the state and starts the feed follower;
//! - `feed.rs`: the feed follower, applying other instances' invalidations to this one;
//! - `pending.rs`: the invalidations the shared backend has not taken yet;
//! - `replay.rs`: the task that retries them.

mod builder;
mod feed;
pub(crate) mod pending;
mod replay;
mod transaction;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub use self::builder::CacheBuilder;
use self::pending::{Attempt, PendingInvalidations};
use crate::backend::{Backend, BackendError};
use crate::clock::Clock;
use crate::flight::Flights;
use crate::stats::{MethodCounters, Stats, StatsRegistry};
use crate::tags::InvalidationLog;
use crate::tiers::InProcessTier;
use crate::LOG_TARGET;

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
    inner: Arc<Inner>,
}

/// The state a [`Cache`] handle shares.
struct Inner {
    id: u64,
    local: Option<InProcessTier>,
    shared: Option<Arc<dyn Backend>>,
    flights: Flights,
    blocking_flights: Flights,
    stats: StatsRegistry,
    clock: Clock,
    log: InvalidationLog,
    pending: PendingInvalidations,
    /// Keys whose last background refresh failed, for the refresh backoff.
    failed_refreshes: moka::sync::Cache<Box<[u8]>, ()>,
    /// With a shared backend in front of which the in-process tier sits: whether the
    /// backend's feed is connected, so that in-process entries can be trusted.
    trusted: AtomicBool,
    replaying: AtomicBool,
    /// The runtime the cache was built in, if any: where queued invalidations are sent from
    /// when the caller is not on a runtime (a blocking function's thread).
    runtime: Option<tokio::runtime::Handle>,
    feed_events: AtomicU64,
    value_version: u32,
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

    /// The in-process tier, trusted or not (see [`trusted_local`](Self::trusted_local)).
    #[inline]
    pub(crate) fn local(&self) -> Option<&InProcessTier> {
        self.inner.local.as_ref()
    }

    /// The in-process tier, when its entries may be served: see
    /// [`local_trusted`](Self::local_trusted).
    #[inline]
    pub(crate) fn trusted_local(&self) -> Option<&InProcessTier> {
        self.inner.local.as_ref().filter(|_| self.local_trusted())
    }

    /// The shared backend, when the cache has one.
    #[inline]
    pub(crate) fn shared(&self) -> Option<&dyn Backend> {
        self.inner.shared.as_deref()
    }

    /// The running loads, for single flight: of `async` calls, or of blocking ones (apart, so
    /// that a blocking caller never waits on a load that awaits the network, even under a
    /// method name an `async` method shares).
    #[inline]
    pub(crate) fn flights(&self, blocking: bool) -> &Flights {
        if blocking {
            &self.inner.blocking_flights
        } else {
            &self.inner.flights
        }
    }

    /// The runtime the cache was built in, if any.
    pub(crate) fn runtime(&self) -> Option<&tokio::runtime::Handle> {
        self.inner.runtime.as_ref()
    }

    /// The invalidation log: which tags were invalidated since a load started.
    #[inline]
    pub(crate) fn log(&self) -> &InvalidationLog {
        &self.inner.log
    }

    /// The cache's clock, in milliseconds.
    #[inline]
    pub(crate) fn now_millis(&self) -> u64 {
        self.inner.clock.now_millis()
    }

    /// Whether invalidations are queued that the shared backend has not taken yet (it may
    /// hold pre-write values until it does).
    #[inline]
    pub(crate) fn invalidations_pending(&self) -> bool {
        self.inner.pending.any()
    }

    /// Remembers that a background refresh of `storage_key` failed, for the refresh backoff.
    pub(crate) fn note_failed_refresh(&self, storage_key: &[u8]) {
        self.inner.failed_refreshes.insert(storage_key.into(), ());
    }

    /// Whether a background refresh of `storage_key` failed less than the backoff ago.
    pub(crate) fn refresh_failed_recently(&self, storage_key: &[u8]) -> bool {
        self.inner.failed_refreshes.contains_key(storage_key)
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

    /// The version of the value layouts of methods without one of their own
    /// ([`CacheBuilder::value_version`]).
    pub fn value_version(&self) -> u32 {
        self.inner.value_version
    }

    /// How many events of the shared backend's feed (invalidations and clears by other
    /// instances, reconnections) this cache has applied.
    pub fn feed_events(&self) -> u64 {
        self.inner.feed_events.load(Ordering::Acquire)
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
    pub fn in_process_tier(&self) -> Option<&InProcessTier> {
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
    /// method. In process, keys are versioned in a table of counters: the few entries whose
    /// keys share `key`'s counter (about two, in a cache of up to 8 million entries) are
    /// dropped too, and reloaded on their next call.
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
        if transaction::current(self).is_some_and(|held| held.hold(&[], true)) {
            return Ok(());
        }
        self.clear_now().await
    }

    /// Clears here at once, and queues the clear for the shared backend.
    fn clear_without_waiting(&self) {
        let inner = &*self.inner;
        if inner.shared.is_some() {
            inner.pending.add_clear();
            replay::start(&self.inner);
        }
        inner.log.record_all();
        if let Some(local) = &inner.local {
            local.clear();
        }
        tracing::event!(
            target: LOG_TARGET,
            tracing::Level::INFO,
            cache.op = "clear",
            "cache cleared"
        );
    }

    async fn clear_now(&self) -> Result<(), BackendError> {
        self.clear_without_waiting();
        self.flush_pending("Cache::clear", &[]).await
    }

    /// Runs `work` as a transaction scope: the invalidations it issues (`#[invalidates]`
    /// methods, [`invalidate_tags`](Self::invalidate_tags), [`invalidate_key`](Self::invalidate_key),
    /// [`clear`](Self::clear)) are held until it ends, then applied, with every rule of an
    /// invalidation: a load that began before they are applied does not store its value.
    /// Put the commit inside it, so that a read between a write and its commit cannot keep
    /// the row the commit replaces.
    ///
    /// What it holds is applied however `work` ends: committed, rolled back, or its future
    /// dropped (the in-process part at once, the shared backend's queued). After a rollback
    /// the entries were still current, so this only costs a reload; and a commit that
    /// reported an error may have committed.
    ///
    /// A scope inside another of the same cache joins it (applied when the outer one ends).
    /// It covers the task running `work` and the futures it awaits; a task `work` spawns is
    /// covered when its future is wrapped in [`inherit_transaction`](Self::inherit_transaction).
    /// Reads inside the scope still see what the cache held before its writes.
    ///
    /// ```
    /// # use cache_runtime::{cached, invalidates, Cache};
    /// # struct Repo { cache: Cache }
    /// # impl Repo {
    /// #     #[invalidates(tags = ["customer.{id}"])]
    /// #     async fn rename(&self, id: &str) -> Result<(), String> { Ok(()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let repo = Repo { cache: Cache::in_memory(1_000) };
    /// let committed = repo
    ///     .cache
    ///     .transaction(async {
    ///         repo.rename("42").await?; // held back
    ///         Ok::<_, String>(()) // the commit would go here
    ///     })
    ///     .await; // applied now
    /// # committed.unwrap();
    /// # }
    /// ```
    pub async fn transaction<F: std::future::Future>(&self, work: F) -> F::Output {
        transaction::run(self, work).await
    }

    /// `work` inside the transaction scopes the calling task is in, for a task it spawns: its
    /// invalidations are held with theirs (or, once they ended, applied at once).
    ///
    /// ```
    /// # use cache_runtime::Cache;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cache = Cache::in_memory(1_000);
    /// cache
    ///     .transaction(async {
    ///         let worker = cache.clone();
    ///         let task = tokio::spawn(Cache::inherit_transaction(async move {
    ///             worker.invalidate_tags(["customer.42"]).await // held with the scope's
    ///         }));
    ///         task.await.unwrap()
    ///     })
    ///     .await
    ///     .unwrap();
    /// # }
    /// ```
    pub fn inherit_transaction<F: std::future::Future>(
        work: F,
    ) -> impl std::future::Future<Output = F::Output> {
        transaction::inherit(work)
    }

    /// Waits until the shared backend took what is queued for it (`method`'s `tags`, or a
    /// clear); if it refuses, says so, and the queue keeps retrying in the background.
    pub(super) async fn flush_pending(
        &self,
        method: &'static str,
        tags: &[String],
    ) -> Result<(), BackendError> {
        let inner = &*self.inner;
        let Some(shared) = &inner.shared else {
            return Ok(());
        };
        inner
            .pending
            .flush(&**shared, Attempt::Foreground)
            .await
            .inspect_err(|error| {
                tracing::event!(
                    target: LOG_TARGET,
                    tracing::Level::WARN,
                    cache.op = "error",
                    cache.method = method,
                    cache.tags = ?tags,
                    %error,
                    "queued: the backend refused it"
                );
            })
    }

    /// What a transaction scope held, applied when it ends: here at once, and queued for the
    /// shared backend.
    pub(super) fn apply_held_without_waiting(&self, tags: &[String], clear: bool) {
        if !tags.is_empty() {
            self.invalidate_without_waiting(tags, "Cache::transaction");
        }
        if clear {
            self.clear_without_waiting();
        }
    }

    /// The one invalidation path: log first (so that running loads see it), then versions.
    pub(crate) async fn invalidate(
        &self,
        tags: &[String],
        counters: &MethodCounters,
        method: &'static str,
    ) -> Result<(), BackendError> {
        if self.counted_and_held(tags, counters, method) {
            return Ok(());
        }
        self.invalidate_now(tags, counters, method).await
    }

    /// Counts an invalidation of `method`, and whether a transaction scope the calling task is
    /// in holds it until the scope ends.
    fn counted_and_held(
        &self,
        tags: &[String],
        counters: &MethodCounters,
        method: &'static str,
    ) -> bool {
        counters.invalidations.incr();
        let held = transaction::current(self).is_some_and(|held| held.hold(tags, false));
        if held {
            tracing::event!(
                target: LOG_TARGET,
                tracing::Level::DEBUG,
                cache.op = "invalidate",
                cache.method = method,
                cache.tags = ?tags,
                "held until the transaction scope ends"
            );
        }
        held
    }

    /// The invalidation of a blocking function: held by a transaction scope the calling task
    /// is in; otherwise applied here at once and sent to the shared backend in the
    /// background, without waiting for it.
    pub(crate) fn invalidate_blocking(
        &self,
        tags: &[String],
        counters: &MethodCounters,
        method: &'static str,
    ) {
        if !self.counted_and_held(tags, counters, method) {
            self.invalidate_without_waiting(tags, method);
        }
    }

    /// Invalidates `tags` here at once, and queues them for the shared backend (delivered in
    /// the background if nobody waits).
    fn invalidate_without_waiting(&self, tags: &[String], method: &'static str) {
        let inner = &*self.inner;
        // Queue for the shared backend first: a reader that does not see it pending has
        // already read the log position it will check.
        if inner.shared.is_some() {
            inner.pending.add(tags);
            // Delivered even if the caller's future is dropped during the send.
            replay::start(&self.inner);
        }
        inner.log.record(tags.iter().map(|t| inner.log.hash(t)));
        if let Some(local) = &inner.local {
            local.invalidate_tags(tags);
        }
        tracing::event!(
            target: LOG_TARGET,
            tracing::Level::DEBUG,
            cache.op = "invalidate",
            cache.method = method,
            cache.tags = ?tags
        );
    }

    /// Invalidates `tags` here and in the shared backend.
    async fn invalidate_now(
        &self,
        tags: &[String],
        counters: &MethodCounters,
        method: &'static str,
    ) -> Result<(), BackendError> {
        self.invalidate_without_waiting(tags, method);
        self.flush_pending(method, tags)
            .await
            .inspect_err(|_| counters.backend_errors.incr())
    }
}
