//! The synchronous first half of a `#[cached]` call: render the key and look it up in process.
//!
//! A fresh in-process hit returns from here, before any future is polled. Everything else
//! (the tags rendered, the key owned) is handed to [`Pending`], so that the body can take the
//! arguments afterwards.

use std::any::Any;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Instant;

use crate::backend::{EntryKey, EntryMeta};
use crate::cache::KEY_TAG_PREFIX;
use crate::codec::SerdeVTable;
use crate::key::KeyArg;
use crate::returns::ReturnShape;
use crate::site::CachedSite;
use crate::stats::MethodCounters;
use crate::Cache;

pub(crate) const TARGET: &str = "cache_runtime";

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

/// A rendered key: the method's scope (8 bytes) followed by the rendered UTF-8 key.
pub(crate) struct OwnedKey(pub(crate) Box<[u8]>);

impl OwnedKey {
    pub(crate) fn storage(&self) -> &[u8] {
        &self.0
    }
    pub(crate) fn rendered(&self) -> &str {
        std::str::from_utf8(&self.0[8..]).unwrap_or("<invalid key>")
    }
    pub(crate) fn entry_key(
        &self,
        site: &'static CachedSite,
        serde: Option<&'static SerdeVTable>,
    ) -> EntryKey<'_> {
        EntryKey {
            method: site.name,
            scope: site.scope,
            key: self.rendered(),
            serde,
        }
    }
}

pub(crate) enum Found<V> {
    Fresh(V),
    EarlyRefresh(V),
    Stale(V),
    Miss,
}

thread_local! {
    static KEY_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn render_key(site: &CachedSite, args: &[&(dyn KeyArg + Sync)], buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(&site.scope.to_le_bytes());
    let n = site.key.placeholders().min(args.len());
    site.key.render_into(&args[..n], buf);
}

/// The tags a load stamps before it starts: the site's tags and the key's implicit tag.
fn render_tags(site: &CachedSite, args: &[&(dyn KeyArg + Sync)], key: &OwnedKey) -> Vec<String> {
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

pub(crate) fn classify<V: Clone + 'static>(
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
    let counters = site.counters.get(cache, site.name);
    if !enabled {
        counters.bypassed.incr();
        return Lookup::Miss(Pending {
            cache: cache.clone(),
            site,
            counters: counters.to_arc(),
            state: PendingState::Bypass,
        });
    }
    let inner = &*cache.inner;
    let Some(local) = inner.local.as_ref().filter(|_| cache.local_trusted()) else {
        let mut buf = Vec::new();
        render_key(site, args, &mut buf);
        let key = OwnedKey(buf.into_boxed_slice());
        let tags = render_tags(site, args, &key);
        let state = PendingState::Keyed {
            key,
            tags,
            found: None,
        };
        return Lookup::Miss(Pending {
            cache: cache.clone(),
            site,
            counters: counters.to_arc(),
            state,
        });
    };
    let started = tracing::enabled!(target: TARGET, tracing::Level::DEBUG).then(Instant::now);
    let now = inner.clock.now_millis();
    KEY_BUF.with(|cell| {
        let mut spare = Vec::new();
        let mut borrowed = cell.try_borrow_mut();
        let buf = match borrowed.as_deref_mut() {
            Ok(buf) => buf,
            Err(_) => &mut spare,
        };
        render_key(site, args, buf);
        let found = local
            .with_entry(buf, now, |entry| classify::<S::Value>(site, &*entry.value, &entry.meta, now))
            .unwrap_or(Found::Miss);
        if let Found::Fresh(value) = found {
            counters.hits.incr();
            if let Some(started) = started {
                let key = std::str::from_utf8(&buf[8..]).unwrap_or_default();
                tracing::event!(target: TARGET, tracing::Level::DEBUG, cache.op = "hit", cache.method = site.name, cache.key = key, cache.duration_us = started.elapsed().as_micros() as u64);
            }
            crate::report::record(site.name, || String::from_utf8_lossy(&buf[8..]).into_owned(), crate::report::CallOutcome::Hit);
            counters.sample_hit(&buf[8..]);
            return Lookup::Hit(shape.wrap_value(value));
        }
        let key = OwnedKey(buf.as_slice().into());
        let tags = render_tags(site, args, &key);
        // An L1 miss in front of a shared backend goes on to L2.
        let found = match found {
            Found::Miss if inner.shared.is_some() => None,
            found => Some(found),
        };
        let state = PendingState::Keyed { key, tags, found };
        Lookup::Miss(Pending { cache: cache.clone(), site, counters: counters.to_arc(), state })
    })
}
