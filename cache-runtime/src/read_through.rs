//! The asynchronous second half of a `#[cached]` call: shared lookup, single-flight loads,
//! stale-while-revalidate, early refresh and storing.
//!
//! Everything `#[cached]` does at run time is here or in `lookup.rs`, so that a fix never
//! needs a macro change.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::entry::{classify, Found, OwnedKey};
use crate::flight::{self, FlightGuard, Joined, Landing, Outcome, SharedStamp};
use crate::load::{Load, Options};
use crate::lookup::{Pending, PendingState, TARGET};
use crate::report::CallOutcome;
use crate::result_tags::TagSink;
use crate::returns::ReturnShape;
use crate::site::CachedSite;
use crate::stats::MethodCounters;
use crate::tiers;
use crate::Cache;

impl<V: Clone + Send + Sync + 'static> Pending<V> {
    /// The second half of a `#[cached]` call.
    pub async fn load<R, S, L>(self, shape: S, options: Options<V>, load: L) -> R
    where
        S: ReturnShape<R, Value = V>,
        L: Load<R>,
        R: Send + 'static,
    {
        let Pending {
            cache,
            site,
            counters,
            state,
        } = self;
        let PendingState::Keyed { key, tags, found } = state else {
            record(&counters, site, None, CallOutcome::Bypass);
            return load.inline().await;
        };
        let found = match found {
            Some(found) => found,
            None => {
                match tiers::shared_lookup::<V>(&cache, site, &key, &tags, shape.serde(), &counters)
                    .await
                {
                    tiers::SharedLookup::Read(read) => read.found,
                    tiers::SharedLookup::Bypass => {
                        record(&counters, site, Some(&key), CallOutcome::Bypass);
                        return load.inline().await;
                    }
                }
            }
        };
        let mut load = load;
        match found {
            Found::Fresh(value) => {
                record(&counters, site, Some(&key), CallOutcome::Hit);
                return shape.wrap_value(value);
            }
            Found::EarlyRefresh(value) => {
                record(&counters, site, Some(&key), CallOutcome::Hit);
                match refresh(&cache, site, &key, &tags, shape, options, load, &counters) {
                    Ok(()) => return shape.wrap_value(value),
                    Err(back) => load = back,
                }
            }
            Found::Stale(value) => {
                match refresh(&cache, site, &key, &tags, shape, options, load, &counters) {
                    Ok(()) => {
                        record(&counters, site, Some(&key), CallOutcome::Stale);
                        return shape.wrap_value(value);
                    }
                    Err(back) => {
                        record(&counters, site, Some(&key), CallOutcome::Miss);
                        load = back;
                    }
                }
            }
            Found::Miss => record(&counters, site, Some(&key), CallOutcome::Miss),
        }
        lead_or_wait(&cache, site, key, tags, shape, options, load, &counters).await
    }
}

/// What a call came to, in one place: counted in the method's stats, reported to
/// [`observe`](crate::observe), and logged (a hit or a stale hit here; a miss is logged by its
/// load, with the load's duration; a bypass by the reason for it).
fn record(
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
    match outcome {
        CallOutcome::Hit => {
            tracing::event!(target: TARGET, tracing::Level::DEBUG, cache.op = "hit", cache.method = site.name, cache.key = rendered)
        }
        CallOutcome::Stale => {
            tracing::event!(target: TARGET, tracing::Level::DEBUG, cache.op = "stale", cache.method = site.name, cache.key = rendered)
        }
        CallOutcome::Miss | CallOutcome::Bypass => {}
    }
}

/// Joins the running load for `key`, or leads one; retries when a joined load is abandoned,
/// failed with an error that cannot be shared, or was overtaken by an invalidation.
#[allow(clippy::too_many_arguments)]
async fn lead_or_wait<R, S, L>(
    cache: &Cache,
    site: &'static CachedSite,
    key: OwnedKey,
    tags: Vec<String>,
    shape: S,
    options: Options<S::Value>,
    load: L,
    counters: &Arc<MethodCounters>,
) -> R
where
    S: ReturnShape<R>,
    L: Load<R>,
    R: Send + 'static,
{
    let inner = &*cache.inner;
    let mut retry = false;
    loop {
        if retry {
            // The flight we waited on was abandoned or overtaken; someone may have stored a
            // value since.
            if let Some(local) = inner.local.as_ref().filter(|_| cache.local_trusted()) {
                let now = inner.clock.now_millis();
                let found = local.with_entry(key.storage(), now, |entry| {
                    classify::<S::Value>(site, &*entry.value, &entry.meta, now)
                });
                if let Some(Found::Fresh(v)) = found {
                    return shape.wrap_value(v);
                }
            }
        }
        retry = true;
        match inner.flights.join(key.storage()) {
            Joined::Leader(guard) => {
                let position = inner.log.position();
                let token = if site.lock_ms > 0 {
                    match tiers::lock::<S::Value>(cache, site, &key, &tags, shape.serde(), counters)
                        .await
                    {
                        tiers::Locked::Load(token) => token.map(|token| {
                            tiers::HeldLock::new(cache, site, &key, shape.serde(), token)
                        }),
                        tiers::Locked::LoadedElsewhere {
                            value,
                            started_at,
                            tag_hashes,
                        } => {
                            // Another instance loaded it while we waited. Waiters check it
                            // against the log like any landing: an invalidation after our
                            // read outdates it for them.
                            let landing = Landing {
                                outcome: Outcome::Value(Arc::new(value.clone())),
                                started_at: started_at.min(position),
                                tag_hashes,
                                shared: None,
                            };
                            guard.land(landing);
                            return shape.wrap_value(value);
                        }
                    }
                } else {
                    None
                };
                let span = tracing::debug_span!(target: TARGET, "cache.load", cache.method = site.name, cache.key = key.rendered());
                let result = run_load(
                    cache,
                    site,
                    &key,
                    tags,
                    shape,
                    options,
                    load.inline(),
                    guard,
                    counters,
                    false,
                )
                .instrument(span)
                .await;
                if let Some(lock) = token {
                    lock.release().await;
                }
                return result;
            }
            Joined::Waiter(rx) => {
                counters.coalesced.incr();
                if let Some(landing) = flight::wait(rx).await {
                    if !inner
                        .log
                        .invalidated_since(landing.started_at, &landing.tag_hashes)
                    {
                        match &landing.outcome {
                            Outcome::Value(value) => {
                                if let Some(value) = value.downcast_ref::<S::Value>() {
                                    match tiers::still_current(cache, &landing).await {
                                        tiers::Current::Yes => {
                                            return shape.wrap_value(value.clone())
                                        }
                                        tiers::Current::No => {}
                                        tiers::Current::Unknown => return load.inline().await,
                                    }
                                }
                            }
                            Outcome::Error(error) => {
                                if let Some(r) = shape.shared_error(&**error) {
                                    return r;
                                }
                            }
                            Outcome::Failed => {
                                // The leader failed with an error that cannot be shared:
                                // run our own body now rather than queue behind another
                                // leader that is likely to fail the same way.
                                return load.inline().await;
                            }
                            Outcome::Retry => {}
                        }
                    }
                }
            }
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
    let mut stamp = tiers::stamp(cache, site, tags, shape.serde(), counters).await;
    if background {
        counters.refreshes.incr();
    } else {
        counters.loads.incr();
    }
    let t0 = Instant::now();
    let result = body.await;
    let elapsed = t0.elapsed();
    crate::exported::load_duration(site.name, elapsed);
    let op = if background { "refresh" } else { "miss" };

    let Some(value) = shape.value(&result) else {
        if background {
            counters.refresh_errors.incr();
            inner.failed_refreshes.insert(key.storage().into(), ());
        } else {
            counters.load_errors.incr();
        }
        tracing::event!(target: TARGET, tracing::Level::DEBUG, cache.op = op, cache.method = site.name, cache.key = key.rendered(), cache.duration_us = elapsed.as_micros() as u64, ok = false);
        let outcome = shape
            .share_error(&result)
            .map_or(Outcome::Failed, Outcome::Error);
        guard.land(Landing {
            outcome,
            started_at,
            tag_hashes,
            shared: None,
        });
        return result;
    };
    tracing::event!(target: TARGET, tracing::Level::DEBUG, cache.op = op, cache.method = site.name, cache.key = key.rendered(), cache.duration_us = elapsed.as_micros() as u64, ok = true);

    // Result tags count for waiters whether or not the value is stored: an invalidation of
    // one of them during the load outdates the value for them too.
    let mut result_tags = Vec::new();
    if let Some(tags_of) = options.result_tags {
        let mut sink = TagSink::default();
        tags_of(value, &mut sink);
        result_tags = sink.into_tags();
    }
    tag_hashes.extend(result_tags.iter().map(|t| inner.log.hash(t)));
    let mut shared = None;
    if options.should_store(value) {
        // Stamp result tags first, then consult the log: an invalidation is either in the log
        // or after the stamp, so it cannot slip between them.
        tiers::extend_stamp(cache, &mut stamp, result_tags, counters).await;
        if inner.log.invalidated_since(started_at, &tag_hashes) {
            tracing::event!(target: TARGET, tracing::Level::DEBUG, cache.op = "invalidate", cache.method = site.name, cache.key = key.rendered(), "an invalidation overtook this load: not stored");
        } else {
            shared = stamp.shared.as_ref().map(|tags| SharedStamp {
                generation: stamp.generation,
                tags: tags.clone(),
            });
            let meta = tiers::meta(cache, site, elapsed.as_micros() as u64);
            tiers::store(
                cache,
                site,
                key,
                shape.serde(),
                value,
                stamp,
                meta,
                counters,
            )
            .await;
        }
    }
    let outcome = Outcome::Value(Arc::new(value.clone()));
    guard.land(Landing {
        outcome,
        started_at,
        tag_hashes,
        shared,
    });
    result
}

/// Starts one background refresh of `key`, unless one is running or the last one failed less
/// than the refresh backoff ago. Gives the body back when it cannot run in the background.
#[allow(clippy::too_many_arguments)]
fn refresh<R, S, L>(
    cache: &Cache,
    site: &'static CachedSite,
    key: &OwnedKey,
    tags: &[String],
    shape: S,
    options: Options<S::Value>,
    load: L,
    counters: &Arc<MethodCounters>,
) -> Result<(), L>
where
    S: ReturnShape<R>,
    L: Load<R>,
    R: Send + 'static,
{
    let inner = &*cache.inner;
    if !L::DETACHABLE {
        return Err(load);
    }
    if inner.failed_refreshes.contains_key(key.storage()) || inner.flights.running(key.storage()) {
        return Ok(());
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return Err(load);
    };
    let Joined::Leader(guard) = inner.flights.join(key.storage()) else {
        return Ok(());
    };
    let tags = tags.to_vec();
    let body = load.detach()?;
    let cache = cache.clone();
    let key = OwnedKey::new(key.storage().into());
    let counters = counters.clone();
    let span = tracing::debug_span!(target: TARGET, "cache.refresh", cache.method = site.name, cache.key = key.rendered());
    runtime.spawn(
        async move {
            let mut panicked = PanicWatch {
                cache: &cache,
                key: &key,
                counters: &counters,
                site,
                armed: true,
            };
            run_load(
                &cache, site, &key, tags, shape, options, body, guard, &counters, true,
            )
            .await;
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
            self.cache
                .inner
                .failed_refreshes
                .insert(self.key.storage().into(), ());
            tracing::event!(target: TARGET, tracing::Level::WARN, cache.op = "error", cache.method = self.site.name, cache.key = self.key.rendered(), "background refresh panicked: serving the stale value");
        }
    }
}
