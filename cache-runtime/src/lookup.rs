//! The synchronous first half of a `#[cached]` call: render the key and look it up in process.
//!
//! A fresh in-process hit returns from here, before any future is polled. Everything else
//! (the tags rendered, the key owned) is handed to [`Pending`], so that the body can take the
//! arguments afterwards.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use crate::cache::KEY_TAG_PREFIX;
use crate::entry::{classify, rendered_bytes, start_storage_key, Found, OwnedKey};
use crate::key::KeyArg;
use crate::returns::ReturnShape;
use crate::site::CachedSite;
use crate::stats::{HotTicks, MethodCounters};
use crate::Cache;
use crate::LOG_TARGET;

/// What the first half of a call found.
pub enum Lookup<R, V> {
    /// A fresh in-process hit: the method returns it.
    Hit(R),
    /// Everything else: the method awaits [`Pending::load`].
    Miss(Pending<V>),
}

/// A call that needs more than an in-process hit.
pub struct Pending<V> {
    pub(crate) cache: Cache,
    pub(crate) site: &'static CachedSite,
    pub(crate) counters: Arc<MethodCounters>,
    pub(crate) state: PendingState<V>,
    /// A blocking function's call: the in-process tier only (`blocking.rs`).
    pub(crate) blocking: bool,
}

pub(crate) enum PendingState<V> {
    /// `condition` was false.
    Bypass,
    /// Looked up in process (or not yet looked up, for a shared backend).
    Keyed {
        key: OwnedKey,
        tags: Vec<String>,
        found: Option<Found<V>>,
    },
}

thread_local! {
    static KEY_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn render_key(site: &CachedSite, args: &[&(dyn KeyArg + Sync)], buf: &mut Vec<u8>) {
    start_storage_key(site.scope, buf);
    let n = site.key.placeholders().min(args.len());
    site.key.render_into(&args[..n], buf);
}

/// The tags a load stamps before it starts: the site's tags and the key's implicit tag.
pub(crate) fn render_tags(
    site: &CachedSite,
    args: &[&(dyn KeyArg + Sync)],
    key: &OwnedKey,
) -> Vec<String> {
    let mut rest = &args[site.key.placeholders().min(args.len())..];
    let mut tags = Vec::with_capacity(site.tags.len() + 1);
    for template in site.tags {
        let n = template.placeholders().min(rest.len());
        let tag = template.render(&rest[..n]);
        if !tag.is_empty() {
            tags.push(tag);
        }
        rest = &rest[n..];
    }
    tags.push(format!("{KEY_TAG_PREFIX}{}", key.rendered()));
    tags
}

/// Counts, samples, reports and (when `started` is given) logs a fresh in-process hit of the
/// storage key `storage`.
#[inline]
pub(crate) fn record_local_hit(
    counters: &MethodCounters,
    site: &CachedSite,
    storage: &[u8],
    started: Option<Instant>,
) {
    counters.hits.incr();
    log_local_hit(site, storage, started);
    report_local_hit(site, storage);
    counters.sample_hit(rendered_bytes(storage));
}

/// Reports a hit to [`observe`](crate::observe), when the task runs inside it.
#[inline]
fn report_local_hit(site: &CachedSite, storage: &[u8]) {
    let rendered = || String::from_utf8_lossy(rendered_bytes(storage)).into_owned();
    crate::report::record(site.name, rendered, crate::report::CallOutcome::Hit);
}

/// Logs a hit, when `started` is given (debug logging is on).
#[inline]
fn log_local_hit(site: &CachedSite, storage: &[u8], started: Option<Instant>) {
    if let Some(started) = started {
        let key = std::str::from_utf8(rendered_bytes(storage)).unwrap_or_default();
        tracing::event!(
            target: LOG_TARGET,
            tracing::Level::DEBUG,
            cache.op = "hit",
            cache.method = site.name,
            cache.key = key,
            cache.duration_us = started.elapsed().as_micros() as u64
        );
    }
}

/// A batch's fresh in-process hits, each recorded as [`record_local_hit`] records a single
/// call's, but with what is per thread or per task read once for the batch: the hits are
/// counted when it is dropped (a panic half-way included), the hot-key ticks taken and given
/// back once, and whether the task is observed asked once.
pub(crate) struct BatchHits<'a> {
    counters: &'a MethodCounters,
    site: &'static CachedSite,
    observed: bool,
    ticks: HotTicks,
    hits: u64,
}

impl<'a> BatchHits<'a> {
    pub(crate) fn new(counters: &'a MethodCounters, site: &'static CachedSite) -> Self {
        BatchHits {
            counters,
            site,
            observed: crate::report::observing(),
            ticks: HotTicks::take(),
            hits: 0,
        }
    }

    /// Records a hit of the storage key `storage`.
    #[inline]
    pub(crate) fn record(&mut self, storage: &[u8], started: Option<Instant>) {
        self.hits += 1;
        log_local_hit(self.site, storage, started);
        if self.observed {
            report_local_hit(self.site, storage);
        }
        let tick = self.ticks.next();
        self.counters.sample_hit_at(rendered_bytes(storage), tick);
    }
}

impl Drop for BatchHits<'_> {
    fn drop(&mut self) {
        if self.hits > 0 {
            self.counters.hits.add(self.hits);
        }
    }
}

/// The first half of a `#[cached]` call. `args` are the placeholder values: the key's, then
/// each tag template's.
#[inline]
pub fn lookup<R, S: ReturnShape<R>>(
    site: &'static CachedSite,
    cache: &Cache,
    args: &[&(dyn KeyArg + Sync)],
    shape: S,
    enabled: bool,
) -> Lookup<R, S::Value> {
    look_up(site, cache, args, shape, enabled, false)
}

/// The first half of a blocking function's `#[cached]` call: over the in-process tier only.
#[inline]
pub fn lookup_blocking<R, S: ReturnShape<R>>(
    site: &'static CachedSite,
    cache: &Cache,
    args: &[&(dyn KeyArg + Sync)],
    shape: S,
    enabled: bool,
) -> Lookup<R, S::Value> {
    look_up(site, cache, args, shape, enabled, true)
}

#[inline]
fn look_up<R, S: ReturnShape<R>>(
    site: &'static CachedSite,
    cache: &Cache,
    args: &[&(dyn KeyArg + Sync)],
    shape: S,
    enabled: bool,
    blocking: bool,
) -> Lookup<R, S::Value> {
    let counters = site.counters.get(cache, site.name);
    let miss = |state| {
        Lookup::Miss(Pending {
            cache: cache.clone(),
            site,
            counters: counters.to_arc(),
            state,
            blocking,
        })
    };
    if !enabled {
        counters.bypassed.incr();
        return miss(PendingState::Bypass);
    }
    let Some(local) = cache.trusted_local() else {
        if blocking {
            // No in-process tier to trust, and a blocking call never awaits the shared one:
            // the body runs, uncached.
            return miss(PendingState::Bypass);
        }
        let mut buf = Vec::new();
        render_key(site, args, &mut buf);
        let key = OwnedKey::new(buf.into_boxed_slice());
        let tags = render_tags(site, args, &key);
        return miss(PendingState::Keyed {
            key,
            tags,
            found: None,
        });
    };
    let started = tracing::enabled!(target: LOG_TARGET, tracing::Level::DEBUG).then(Instant::now);
    let now = cache.now_millis();
    KEY_BUF.with(|cell| {
        let mut spare = Vec::new();
        let mut borrowed = cell.try_borrow_mut();
        let buf = match borrowed.as_deref_mut() {
            Ok(buf) => buf,
            Err(_) => &mut spare,
        };
        render_key(site, args, buf);
        let found = local
            .reader()
            .with_entry(buf, now, |entry| {
                classify::<S::Value>(site, &entry.value, &entry.meta, now)
            })
            .unwrap_or(Found::Miss);
        if let Found::Fresh(value) = found {
            record_local_hit(&counters, site, buf, started);
            return Lookup::Hit(shape.wrap_value(value));
        }
        let key = OwnedKey::new(buf.as_slice().into());
        let tags = render_tags(site, args, &key);
        // An L1 miss in front of a shared backend goes on to L2 (not for a blocking call).
        let found = match found {
            Found::Miss if cache.shared().is_some() && !blocking => None,
            found => Some(found),
        };
        miss(PendingState::Keyed { key, tags, found })
    })
}
