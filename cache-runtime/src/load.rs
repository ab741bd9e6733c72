//! Read-through: lookup, single-flight loads, stale-while-revalidate, early refresh, storing.
//!
//! Everything `#[cached]` does at run time is here, so that a fix never needs a macro change.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::backend::{EntryKey, EntryMeta, StoredEntry};
use crate::backend::memory::LocalStamp;
use crate::cache::{Inner, KEY_TAG_PREFIX};
use crate::flight::{self, FlightGuard, Joined, Landing, Outcome};
use crate::key::KeyArg;
use crate::result_tags::TagSink;
use crate::returns::ReturnShape;
use crate::site::CachedSite;
use crate::stats::MethodCounters;
use crate::Cache;

const TARGET: &str = "cache_runtime";

/// The arguments a method's templates interpolate, handed to a callback as one flat list:
/// the key's placeholders first, then each tag template's, in order.
pub type ArgsFn<A> = fn(&A, &mut dyn FnMut(&[&(dyn KeyArg + Sync)]));

fn with_args<A, T>(args: &A, args_fn: ArgsFn<A>, f: impl FnOnce(&[&(dyn KeyArg + Sync)]) -> T) -> T {
    let mut f = Some(f);
    let mut out = None;
    args_fn(args, &mut |list| {
        if let Some(f) = f.take() {
            out = Some(f(list));
        }
    });
    out.unwrap_or_else(|| (f.take().expect("called once"))(&[]))
}

/// The body of a `#[cached]` method, as the macro hands it over: a closure that takes the
/// templated arguments (moved out of the signature into a tuple `A`) and returns the body.
pub trait Load<A, R>: Sized {
    /// Whether [`detach`](Load::detach) can succeed.
    const DETACHABLE: bool;
    /// The body as a future borrowing the call's arguments.
    type Inline: Future<Output = R>;
    /// Runs the body in the caller's task.
    fn inline(self, args: A) -> Self::Inline;
    /// The body as a `'static` future that can finish after the call returned (for background
    /// refreshes), or `self` back when it borrows from the call.
    #[allow(clippy::type_complexity)]
    fn detach(self, args: A) -> Result<Pin<Box<dyn Future<Output = R> + Send + 'static>>, (Self, A)>;
}

/// A body that borrows the call's arguments: it runs in the caller's task only.
pub struct Borrowed<G>(pub G);

/// A body built by a closure that clones the receiver and owns its arguments, so that it can
/// run in the background (stale-while-revalidate).
pub struct Detachable<G>(pub G);

impl<A, R, G, F> Load<A, R> for Borrowed<G>
where
    G: FnOnce(A) -> F,
    F: Future<Output = R>,
{
    const DETACHABLE: bool = false;
    type Inline = F;
    fn inline(self, args: A) -> F {
        (self.0)(args)
    }
    fn detach(self, args: A) -> Result<Pin<Box<dyn Future<Output = R> + Send + 'static>>, (Self, A)> {
        Err((self, args))
    }
}

impl<A, R, G, F> Load<A, R> for Detachable<G>
where
    G: FnOnce(A) -> F,
    F: Future<Output = R> + Send + 'static,
{
    const DETACHABLE: bool = true;
    type Inline = F;
    fn inline(self, args: A) -> F {
        (self.0)(args)
    }
    fn detach(self, args: A) -> Result<Pin<Box<dyn Future<Output = R> + Send + 'static>>, (Self, A)> {
        Ok(Box::pin((self.0)(args)))
    }
}

/// The per-call options of `#[cached]` that depend on the value type.
pub struct Options<V> {
    /// `condition = ...`: when false the cache is bypassed.
    pub enabled: bool,
    /// `unless = ...`: values for which it returns true are not stored.
    pub unless: Option<fn(&V) -> bool>,
    /// `cache_none = false`: `None` values are not stored.
    pub skip_none: Option<fn(&V) -> bool>,
    /// `result_tags`: tags computed from the value.
    pub result_tags: Option<fn(&V, &mut TagSink)>,
}

impl<V> Clone for Options<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for Options<V> {}

impl<V> Options<V> {
    fn should_store(&self, value: &V) -> bool {
        !self.unless.is_some_and(|unless| unless(value))
            && !self.skip_none.is_some_and(|is_none| is_none(value))
    }
}

/// A rendered key: the method's scope (8 bytes) followed by the rendered UTF-8 key.
pub(crate) struct OwnedKey(Box<[u8]>);

impl OwnedKey {
    fn storage(&self) -> &[u8] {
        &self.0
    }
    fn rendered(&self) -> &str {
        std::str::from_utf8(&self.0[8..]).unwrap_or("<invalid key>")
    }
    fn entry_key(&self, site: &'static CachedSite) -> EntryKey<'_> {
        EntryKey {
            method: site.name,
            scope: site.scope,
            key: self.rendered(),
        }
    }
}

thread_local! {
    static KEY_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn key_arity(site: &CachedSite) -> usize {
    site.key.placeholders()
}

fn render_key<A>(site: &CachedSite, args: &A, args_fn: ArgsFn<A>, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&site.scope.to_le_bytes());
    with_args(args, args_fn, |args| {
        site.key.render_into(&args[..key_arity(site).min(args.len())], buf)
    });
}

/// The tags a load stamps before it starts: the site's tags and the key's implicit tag.
fn render_tags<A>(site: &CachedSite, args: &A, args_fn: ArgsFn<A>, key: &OwnedKey) -> Vec<String> {
    let mut tags = Vec::with_capacity(site.tags.len() + 1);
    with_args(args, args_fn, |args| {
        let mut rest = &args[key_arity(site).min(args.len())..];
        for template in site.tags {
            let n = template.placeholders().min(rest.len());
            tags.push(template.render(&rest[..n]));
            rest = &rest[n..];
        }
    });
    tags.push(format!("{KEY_TAG_PREFIX}{}", key.rendered()));
    tags
}

enum Found<V> {
    Fresh(V),
    EarlyRefresh(V),
    Stale(V),
    Miss,
}

fn classify<V: Clone + 'static>(
    site: &CachedSite,
    value: &dyn Any,
    meta: &EntryMeta,
    now: u64,
) -> Found<V> {
    let Some(value) = value.downcast_ref::<V>() else {
        // Another method's value under this key (two methods sharing a name): a miss.
        return Found::Miss;
    };
    if now < meta.fresh_until {
        if site.beta > 0.0 {
            // XFetch: recompute early with a probability that grows as expiry nears.
            let delta_ms = meta.load_micros as f64 / 1000.0;
            let gap = -delta_ms * site.beta * fastrand::f64().max(f64::MIN_POSITIVE).ln();
            if now as f64 + gap >= meta.fresh_until as f64 {
                return Found::EarlyRefresh(value.clone());
            }
        }
        Found::Fresh(value.clone())
    } else if now < meta.stale_until {
        Found::Stale(value.clone())
    } else {
        Found::Miss
    }
}

#[inline]
fn debug_enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::DEBUG)
}

/// Runs a `#[cached]` method: the single runtime call its expansion makes.
#[allow(clippy::too_many_arguments)]
pub async fn cached<A, R, S, L>(
    site: &'static CachedSite,
    cache: &Cache,
    args: A,
    args_fn: ArgsFn<A>,
    shape: S,
    options: Options<S::Value>,
    load: L,
) -> R
where
    S: ReturnShape<R>,
    L: Load<A, R>,
    R: Send + 'static,
{
    let counters = site.counters.get(cache, site.name);
    if !options.enabled {
        counters.bypassed.incr();
        return load.inline(args).await;
    }
    let inner = &*cache.inner;
    let started = debug_enabled().then(Instant::now);
    let now = inner.clock.now_millis();

    let (found, key) = match &inner.local {
        Some(local) => KEY_BUF.with(|buf| {
            let mut own_buf = Vec::new();
            let mut borrowed = buf.try_borrow_mut();
            let buf = match borrowed.as_deref_mut() {
                Ok(buf) => buf,
                Err(_) => &mut own_buf,
            };
            render_key(site, &args, args_fn, buf);
            let found = match local.get(buf, now) {
                Some(entry) => classify::<S::Value>(site, &*entry.value, &entry.meta, now),
                None => Found::Miss,
            };
            if let Found::Fresh(_) = found {
                if let Some(started) = started {
                    let key = std::str::from_utf8(&buf[8..]).unwrap_or_default();
                    tracing::event!(target: TARGET, tracing::Level::DEBUG, cache.op = "hit", cache.method = site.name, cache.key = key, cache.duration_us = started.elapsed().as_micros() as u64);
                }
                (found, None)
            } else {
                (found, Some(OwnedKey(buf.as_slice().into())))
            }
        }),
        None => {
            let mut buf = Vec::new();
            render_key(site, &args, args_fn, &mut buf);
            let key = OwnedKey(buf.into_boxed_slice());
            match shared_lookup::<S::Value>(cache, site, &key, now, &counters).await {
                Ok(found) => (found, Some(key)),
                Err(()) => return load.inline(args).await,
            }
        }
    };

    let (mut load, mut args) = (load, args);
    match found {
        Found::Fresh(value) => {
            counters.hits.incr();
            if let (Some(key), Some(started)) = (&key, started) {
                tracing::event!(target: TARGET, tracing::Level::DEBUG, cache.op = "hit", cache.method = site.name, cache.key = key.rendered(), cache.duration_us = started.elapsed().as_micros() as u64);
            }
            return shape.from_value(value);
        }
        Found::EarlyRefresh(value) => {
            counters.hits.incr();
            let key = key.expect("rendered for early refresh");
            match refresh(cache, site, &key, args, args_fn, shape, options, load, &counters) {
                Ok(()) => return shape.from_value(value),
                Err((back, back_args)) => {
                    return lead_or_wait(cache, site, key, back_args, args_fn, shape, options, back, &counters).await;
                }
            }
        }
        Found::Stale(value) => {
            let key = key.expect("rendered for a stale hit");
            match refresh(cache, site, &key, args, args_fn, shape, options, load, &counters) {
                Ok(()) => {
                    counters.stale_hits.incr();
                    tracing::event!(target: TARGET, tracing::Level::DEBUG, cache.op = "stale", cache.method = site.name, cache.key = key.rendered());
                    return shape.from_value(value);
                }
                Err((back, back_args)) => (load, args) = (back, back_args),
            }
            counters.misses.incr();
            lead_or_wait(cache, site, key, args, args_fn, shape, options, load, &counters).await
        }
        Found::Miss => {
            counters.misses.incr();
            let key = key.expect("rendered for a miss");
            lead_or_wait(cache, site, key, args, args_fn, shape, options, load, &counters).await
        }
    }
}

/// Looks `key` up in the shared backend. `Err` means: bypass the cache for this call.
async fn shared_lookup<V: Clone + 'static>(
    cache: &Cache,
    site: &'static CachedSite,
    key: &OwnedKey,
    now: u64,
    counters: &MethodCounters,
) -> Result<Found<V>, ()> {
    let inner = &*cache.inner;
    let shared = inner.shared.as_deref().expect("a cache without local tier has a backend");
    if inner.pending.any() {
        if let Err(error) = inner.pending.flush(shared).await {
            counters.backend_errors.incr();
            tracing::event!(target: TARGET, tracing::Level::WARN, cache.op = "error", cache.method = site.name, cache.key = key.rendered(), %error, "invalidations still pending: bypassing the cache");
            return Err(());
        }
    }
    match shared.get(key.entry_key(site)).await {
        Ok(None) => Ok(Found::Miss),
        Ok(Some(fetched)) => {
            let current = fetched.entry.tags.len() == fetched.current_versions.len()
                && fetched
                    .entry
                    .tags
                    .iter()
                    .zip(&fetched.current_versions)
                    .all(|((_, stored), now)| stored == now);
            if !current {
                return Ok(Found::Miss);
            }
            Ok(classify(site, &*fetched.entry.value, &fetched.entry.meta, now))
        }
        Err(error) => {
            counters.backend_errors.incr();
            tracing::event!(target: TARGET, tracing::Level::WARN, cache.op = "error", cache.method = site.name, cache.key = key.rendered(), %error, "backend read failed: running the body");
            Err(())
        }
    }
}

/// Joins the running load for `key`, or leads one; retries when a joined load is abandoned,
/// failed with an error that cannot be shared, or was overtaken by an invalidation.
#[allow(clippy::too_many_arguments)]
async fn lead_or_wait<A, R, S, L>(
    cache: &Cache,
    site: &'static CachedSite,
    key: OwnedKey,
    args: A,
    args_fn: ArgsFn<A>,
    shape: S,
    options: Options<S::Value>,
    load: L,
    counters: &Arc<MethodCounters>,
) -> R
where
    S: ReturnShape<R>,
    L: Load<A, R>,
    R: Send + 'static,
{
    let inner = &*cache.inner;
    let mut retry = false;
    loop {
        if retry {
            // The flight we waited on was abandoned or overtaken; someone may have stored a
            // value since.
            if let Some(local) = &inner.local {
                let now = inner.clock.now_millis();
                if let Some(entry) = local.get(key.storage(), now) {
                    if let Found::Fresh(v) = classify::<S::Value>(site, &*entry.value, &entry.meta, now) {
                        return shape.from_value(v);
                    }
                }
            }
        }
        retry = true;
        match inner.flights.join(cache, key.storage()) {
            Joined::Leader(guard) => {
                let tags = render_tags(site, &args, args_fn, &key);
                let span = tracing::debug_span!(target: TARGET, "cache.load", cache.method = site.name, cache.key = key.rendered());
                return run_load(cache, site, &key, tags, shape, options, load.inline(args), guard, counters, false)
                    .instrument(span)
                    .await;
            }
            Joined::Waiter(rx) => {
                counters.coalesced.incr();
                if let Some(landing) = flight::wait(rx).await {
                    if !inner.log.invalidated_since(landing.started_at, &landing.tag_hashes) {
                        match &landing.outcome {
                            Outcome::Value(value) => {
                                if let Some(value) = value.downcast_ref::<S::Value>() {
                                    return shape.from_value(value.clone());
                                }
                            }
                            Outcome::Error(error) => {
                                if let Some(r) = shape.shared_error(&**error) {
                                    return r;
                                }
                            }
                            Outcome::Retry => {}
                        }
                    }
                }
            }
        }
    }
}

enum Stamp {
    Local(LocalStamp),
    Shared(Vec<(String, u64)>),
    Unavailable,
}

async fn stamp(cache: &Cache, site: &'static CachedSite, tags: Vec<String>, counters: &MethodCounters) -> Stamp {
    let inner = &*cache.inner;
    if let Some(local) = &inner.local {
        return Stamp::Local(local.stamp(&tags));
    }
    let shared = inner.shared.as_deref().expect("a cache has a tier");
    match shared.tag_versions(&tags).await {
        Ok(versions) if versions.len() == tags.len() => Stamp::Shared(tags.into_iter().zip(versions).collect()),
        Ok(_) | Err(_) => {
            counters.backend_errors.incr();
            tracing::event!(target: TARGET, tracing::Level::WARN, cache.op = "error", cache.method = site.name, "backend could not read tag versions: the value will not be stored");
            Stamp::Unavailable
        }
    }
}

/// Runs one load (foreground or background) and stores and shares its outcome.
#[allow(clippy::too_many_arguments)]
async fn run_load<R, S, F>(
    cache: &Cache,
    site: &'static CachedSite,
    key: &OwnedKey,
    tags: Vec<String>,
    shape: S,
    options: Options<S::Value>,
    body: F,
    guard: FlightGuard,
    counters: &MethodCounters,
    background: bool,
) -> R
where
    S: ReturnShape<R>,
    F: Future<Output = R>,
{
    let inner = &*cache.inner;
    let started_at = inner.log.position();
    let mut tag_hashes: Vec<u64> = tags.iter().map(|t| inner.log.hash(t)).collect();
    let mut stamp = stamp(cache, site, tags, counters).await;
    if background {
        counters.refreshes.incr();
    } else {
        counters.loads.incr();
    }
    let t0 = Instant::now();
    let result = body.await;
    let elapsed = t0.elapsed();
    let op = if background { "refresh" } else { "miss" };

    let Some(value) = shape.value(&result) else {
        if background {
            counters.refresh_errors.incr();
            inner.failed_refreshes.insert(key.storage().into(), ());
        } else {
            counters.load_errors.incr();
        }
        tracing::event!(target: TARGET, tracing::Level::DEBUG, cache.op = op, cache.method = site.name, cache.key = key.rendered(), cache.duration_us = elapsed.as_micros() as u64, ok = false);
        let outcome = shape.share_error(&result).map_or(Outcome::Retry, Outcome::Error);
        guard.land(Landing { outcome, started_at, tag_hashes });
        return result;
    };
    tracing::event!(target: TARGET, tracing::Level::DEBUG, cache.op = op, cache.method = site.name, cache.key = key.rendered(), cache.duration_us = elapsed.as_micros() as u64, ok = true);

    if options.should_store(value) {
        let mut result_tags = Vec::new();
        if let Some(tags_of) = options.result_tags {
            let mut sink = TagSink::default();
            tags_of(value, &mut sink);
            result_tags = sink.into_tags();
        }
        tag_hashes.extend(result_tags.iter().map(|t| inner.log.hash(t)));
        // Stamp result tags first, then consult the log: an invalidation is either in the log
        // or after the stamp, so it cannot slip between them.
        match &mut stamp {
            Stamp::Local(local_stamp) => {
                if let Some(local) = &inner.local {
                    local.extend_stamp(local_stamp, &result_tags);
                }
            }
            Stamp::Shared(pairs) if !result_tags.is_empty() => {
                let shared = inner.shared.as_deref().expect("a shared stamp has a backend");
                match shared.tag_versions(&result_tags).await {
                    Ok(versions) if versions.len() == result_tags.len() => {
                        pairs.extend(result_tags.into_iter().zip(versions))
                    }
                    _ => {
                        counters.backend_errors.incr();
                        stamp = Stamp::Unavailable;
                    }
                }
            }
            _ => {}
        }
        if inner.log.invalidated_since(started_at, &tag_hashes) {
            tracing::event!(target: TARGET, tracing::Level::DEBUG, cache.op = "invalidate", cache.method = site.name, cache.key = key.rendered(), "an invalidation overtook this load: not stored");
        } else {
            store(cache, site, key, value, stamp, elapsed.as_micros() as u64, counters).await;
        }
    }
    let outcome = Outcome::Value(Arc::new(value.clone()));
    guard.land(Landing { outcome, started_at, tag_hashes });
    result
}

async fn store<V: Clone + Send + Sync + 'static>(
    cache: &Cache,
    site: &'static CachedSite,
    key: &OwnedKey,
    value: &V,
    stamp: Stamp,
    load_micros: u64,
    counters: &MethodCounters,
) {
    let inner: &Inner = &cache.inner;
    let now = inner.clock.now_millis();
    let jitter = if site.jitter_ms > 0 { fastrand::u64(0..=site.jitter_ms) } else { 0 };
    let fresh_until = now + site.ttl_ms.saturating_sub(jitter).max(1);
    let meta = EntryMeta {
        fresh_until,
        stale_until: fresh_until + site.swr_ms,
        load_micros,
    };
    match stamp {
        Stamp::Local(stamp) => {
            if let Some(local) = &inner.local {
                local.insert(key.storage().into(), Box::new(value.clone()), meta, stamp, now);
            }
        }
        Stamp::Shared(tags) => {
            let shared = inner.shared.as_deref().expect("a shared stamp has a backend");
            let entry = StoredEntry {
                value: Arc::new(value.clone()),
                meta,
                tags,
            };
            if let Err(error) = shared.put(key.entry_key(site), entry).await {
                counters.backend_errors.incr();
                tracing::event!(target: TARGET, tracing::Level::WARN, cache.op = "error", cache.method = site.name, cache.key = key.rendered(), %error, "backend write failed");
            }
        }
        Stamp::Unavailable => {}
    }
}

/// Starts one background refresh of `key`, unless one is running or the last one failed less
/// than the refresh backoff ago. Gives the body back when it cannot run in the background.
#[allow(clippy::too_many_arguments)]
#[allow(clippy::type_complexity)]
fn refresh<A, R, S, L>(
    cache: &Cache,
    site: &'static CachedSite,
    key: &OwnedKey,
    args: A,
    args_fn: ArgsFn<A>,
    shape: S,
    options: Options<S::Value>,
    load: L,
    counters: &Arc<MethodCounters>,
) -> Result<(), (L, A)>
where
    S: ReturnShape<R>,
    L: Load<A, R>,
    R: Send + 'static,
{
    let inner = &*cache.inner;
    if !L::DETACHABLE {
        return Err((load, args));
    }
    if inner.failed_refreshes.contains_key(key.storage()) || inner.flights.running(key.storage()) {
        return Ok(());
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Err((load, args));
    };
    let Joined::Leader(guard) = inner.flights.join(cache, key.storage()) else {
        return Ok(());
    };
    let tags = render_tags(site, &args, args_fn, key);
    let body = match load.detach(args) {
        Ok(body) => body,
        Err(back) => return Err(back),
    };
    let cache = cache.clone();
    let key = OwnedKey(key.storage().into());
    let counters = counters.clone();
    let span = tracing::debug_span!(target: TARGET, "cache.refresh", cache.method = site.name, cache.key = key.rendered());
    runtime.spawn(
        async move {
            let mut panicked = PanicWatch { cache: &cache, key: &key, counters: &counters, site, armed: true };
            run_load(&cache, site, &key, tags, shape, options, body, guard, &counters, true).await;
            panicked.armed = false;
        }
        .instrument(span),
    );
    Ok(())
}

/// Counts a background refresh whose body panicked (the task unwinds through it).
struct PanicWatch<'a> {
    cache: &'a Cache,
    key: &'a OwnedKey,
    counters: &'a MethodCounters,
    site: &'static CachedSite,
    armed: bool,
}

impl Drop for PanicWatch<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.counters.refresh_errors.incr();
            self.cache.inner.failed_refreshes.insert(self.key.storage().into(), ());
            tracing::event!(target: TARGET, tracing::Level::WARN, cache.op = "error", cache.method = self.site.name, cache.key = self.key.rendered(), "background refresh panicked: serving the stale value");
        }
    }
}
