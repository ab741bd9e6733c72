//! One call of a `#[cached]` method past its in-process look-up: what every step of the
//! read-through needs, travelling together as one value, and what the call came to, counted,
//! reported and logged in one place.
//!
//! The steps are methods of [`Call`]: the read-through's in `read_through.rs` (single flight,
//! loads, refreshes), the storage's in `tiers/` (stamping, storing, the shared tier's look-up
//! and lock).

use std::sync::Arc;

use tracing::Level;

use crate::backend::BackendError;
use crate::codec::SerdeVTable;
use crate::entry::OwnedKey;
use crate::load::Options;
use crate::report::CallOutcome;
use crate::site::CachedSite;
use crate::stats::MethodCounters;
use crate::Cache;
use crate::LOG_TARGET;

/// A call that needs more than an in-process hit, with everything its steps read.
#[derive(Clone)]
pub(crate) struct Call<S, V> {
    pub(crate) cache: Cache,
    pub(crate) site: &'static CachedSite,
    pub(crate) counters: Arc<MethodCounters>,
    pub(crate) key: OwnedKey,
    /// The tags a load stamps before it starts: the site's, rendered, and the key's own.
    pub(crate) tags: Vec<String>,
    /// How the method's return value holds the cached value.
    pub(crate) shape: S,
    /// How to turn the value into bytes, when its type can be: the shape's, taken once.
    pub(crate) serde: Option<&'static SerdeVTable>,
    pub(crate) options: Options<V>,
    /// A blocking function's call: the in-process tier only, refreshed on a thread.
    pub(crate) blocking: bool,
}

impl<S, V> Call<S, V> {
    /// Counts, reports and logs what the call came to.
    pub(crate) fn record(&self, outcome: CallOutcome) {
        record(&self.counters, self.site, Some(&self.key), outcome);
    }

    /// Logs a step of this call that did not go the usual way (`op` names the step, as the
    /// `cache.op` field), with the backend's error when there is one.
    pub(crate) fn log(
        &self,
        level: Level,
        op: &'static str,
        error: Option<&BackendError>,
        message: &str,
    ) {
        let (method, key) = (self.site.name, self.key.rendered());
        let error = error.map(tracing::field::display);
        if level == Level::WARN {
            tracing::event!(
                target: LOG_TARGET,
                Level::WARN,
                cache.op = op,
                cache.method = method,
                cache.key = key,
                error,
                "{message}"
            );
        } else {
            tracing::event!(
                target: LOG_TARGET,
                Level::DEBUG,
                cache.op = op,
                cache.method = method,
                cache.key = key,
                error,
                "{message}"
            );
        }
    }
}

/// What a call came to, in one place: counted in the method's stats, reported to
/// [`observe`](crate::observe), and logged (a hit or a stale hit here; a miss is logged by its
/// load, with the load's duration; a bypass by the reason for it). `key` is `None` for a call
/// that bypassed the cache before its key was rendered.
pub(crate) fn record(
    counters: &MethodCounters,
    site: &'static CachedSite,
    key: Option<&OwnedKey>,
    outcome: CallOutcome,
) {
    let rendered = key.map_or("", OwnedKey::rendered);
    match outcome {
        CallOutcome::Hit => counters.hits.incr(),
        CallOutcome::Stale => counters.stale_hits.incr(),
        CallOutcome::Miss => {
            counters.misses.incr();
            counters.record_key(rendered);
        }
        CallOutcome::Bypass => {}
    }
    crate::report::record(site.name, || rendered.to_owned(), outcome);
    let op = match outcome {
        CallOutcome::Hit => "hit",
        CallOutcome::Stale => "stale",
        CallOutcome::Miss | CallOutcome::Bypass => return,
    };
    tracing::event!(
        target: LOG_TARGET,
        tracing::Level::DEBUG,
        cache.op = op,
        cache.method = site.name,
        cache.key = rendered
    );
}
