//! The asynchronous second half of a `#[cached]` call: shared look-up, single-flight loads,
//! stale-while-revalidate, early refresh and storing.
//!
//! Everything `#[cached]` does at run time is here, in `lookup.rs` (the first half) or in the
//! steps of [`Call`] (`call.rs`, `tiers/`), so that a fix never needs a macro change.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tracing::{Instrument, Level};

use crate::backend::StoredEntry;
use crate::blocking::{self, RefreshThread};
use crate::call::{self, Call};
use crate::enclosing::{self, LoadStart};
use crate::entry::{classify, Found};
use crate::flight::{self, FlightGuard, Joined, Landing, Outcome, SharedStamp};
use crate::load::{Load, Options};
use crate::lookup::{Pending, PendingState};
use crate::report::CallOutcome;
use crate::result_tags::TagSink;
use crate::returns::ReturnShape;
use crate::tiers::{Current, Locked, SharedLookup, Stamp};
use crate::LOG_TARGET;

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
            blocking,
        } = self;
        let PendingState::Keyed { key, tags, found } = state else {
            call::record(&counters, site, None, CallOutcome::Bypass);
            return load.inline().await;
        };
        let call = Call {
            cache,
            site,
            counters,
            key,
            tags,
            shape,
            serde: shape.serde(),
            options,
            blocking,
        };
        let found = match found {
            Some(found) => found,
            None => match call.shared_lookup().await {
                SharedLookup::Read(read) => read.found,
                SharedLookup::Bypass => {
                    call.record(CallOutcome::Bypass);
                    return load.inline().await;
                }
            },
        };
        let mut load = load;
        match found {
            Found::Fresh(value) => {
                call.record(CallOutcome::Hit);
                return shape.wrap_value(value);
            }
            Found::EarlyRefresh(value) => {
                call.record(CallOutcome::Hit);
                match call.refresh(load) {
                    Ok(()) => return shape.wrap_value(value),
                    Err(back) => load = back,
                }
            }
            Found::Stale(value) => match call.refresh(load) {
                Ok(()) => {
                    call.record(CallOutcome::Stale);
                    return shape.wrap_value(value);
                }
                Err(back) => {
                    call.record(CallOutcome::Miss);
                    load = back;
                }
            },
            Found::Miss => call.record(CallOutcome::Miss),
        }
        call.lead_or_wait(load).await
    }
}

impl<S, V: Clone + Send + Sync + 'static> Call<S, V> {
    /// Joins the running load for the key, or leads one; retries when a joined load is
    /// abandoned, failed with an error that cannot be shared, or was overtaken by an
    /// invalidation.
    async fn lead_or_wait<R, L>(self, load: L) -> R
    where
        S: ReturnShape<R, Value = V>,
        L: Load<R>,
        R: Send + 'static,
    {
        let mut retry = false;
        loop {
            if retry {
                // The flight we waited on was abandoned or overtaken; someone may have stored
                // a value since.
                if let Some(value) = self.fresh_in_process() {
                    return self.shape.wrap_value(value);
                }
            }
            retry = true;
            match self.cache.flights(self.blocking).join(self.key.storage()) {
                Joined::Leader(guard) => {
                    let guard = match self.landed_meanwhile(guard) {
                        Ok(value) => return self.shape.wrap_value(value),
                        Err(guard) => guard,
                    };
                    let position = self.cache.log().position();
                    let lock = if self.site.lock_ms > 0 && !self.blocking {
                        match self.lock().await {
                            Locked::Load(lock) => lock,
                            Locked::LoadedElsewhere {
                                value,
                                started_at,
                                tag_hashes,
                            } => {
                                // Another instance loaded it while we waited. Waiters check it
                                // against the log like any landing: an invalidation after our
                                // read outdates it for them.
                                guard.land(Landing {
                                    outcome: Outcome::Value(Arc::new(value.clone())),
                                    started_at: started_at.min(position),
                                    tag_hashes,
                                    shared: None,
                                });
                                return self.shape.wrap_value(value);
                            }
                        }
                    } else {
                        None
                    };
                    let span = tracing::debug_span!(
                        target: LOG_TARGET,
                        "cache.load",
                        cache.method = self.site.name,
                        cache.key = self.key.rendered()
                    );
                    let body = load.inline();
                    let result = self.run_load(body, guard, false).instrument(span).await;
                    if let Some(lock) = lock {
                        lock.release().await;
                    }
                    return result;
                }
                Joined::Waiter(rx) => {
                    let Some(landing) = self.wait_for_landing(rx).await else {
                        continue;
                    };
                    match &landing.outcome {
                        Outcome::Value(value) => {
                            let Some(value) = value.downcast_ref::<V>() else {
                                continue;
                            };
                            match self.still_current(&landing).await {
                                Current::Yes => return self.shape.wrap_value(value.clone()),
                                Current::No => {}
                                Current::Unknown => return load.inline().await,
                            }
                        }
                        Outcome::Error(error) => {
                            if let Some(r) = self.shape.shared_error(&**error) {
                                return r;
                            }
                        }
                        // The leader failed with an error that cannot be shared: run our own
                        // body now rather than queue behind another leader that is likely to
                        // fail the same way.
                        Outcome::Failed => return load.inline().await,
                        Outcome::Retry => {}
                    }
                }
            }
        }
    }

    /// For a call that just became the leader of its key's flight: the value, when the
    /// flight it missed landed between its look-up and its join (what that flight stored is
    /// served, not loaded a second time: a leader stores before it lands, so a flight that
    /// is gone has stored what it will); else the guard back.
    pub(crate) fn landed_meanwhile(&self, guard: FlightGuard) -> Result<V, FlightGuard> {
        match self.fresh_in_process() {
            Some(value) => {
                drop(guard);
                self.counters.coalesced.incr();
                Ok(value)
            }
            None => Err(guard),
        }
    }

    /// Waits for the flight `rx` belongs to, counted as coalesced: its landing, or `None`
    /// when it was abandoned or an invalidation of its tags overtook it (look again).
    pub(crate) async fn wait_for_landing(
        &self,
        rx: flight::Receiver,
    ) -> Option<Arc<flight::Landing>> {
        self.counters.coalesced.incr();
        let landing = flight::wait(rx).await?;
        let log = self.cache.log();
        (!log.invalidated_since(landing.started_at, &landing.tag_hashes)).then_some(landing)
    }

    /// A fresh value of the key in the in-process tier, if it may be served.
    pub(crate) fn fresh_in_process(&self) -> Option<V> {
        let local = self.cache.trusted_local()?;
        let now = self.cache.now_millis();
        let found = local.reader().with_entry(self.key.storage(), now, |entry| {
            classify::<V>(self.site, &entry.value, &entry.meta, now)
        });
        match found {
            Some(Found::Fresh(value)) => Some(value),
            _ => None,
        }
    }

    /// Runs one load (foreground or background) and stores and shares its outcome. A
    /// background refresh that panics or is cancelled anywhere in it (its body, its result
    /// tags, the backend) is counted and backs off.
    async fn run_load<R, F>(mut self, body: F, guard: FlightGuard, background: bool) -> R
    where
        S: ReturnShape<R, Value = V>,
        F: Future<Output = R>,
    {
        let tags = std::mem::take(&mut self.tags);
        let watch = RefreshWatch {
            call: &self,
            armed: background,
        };
        let result = self.load_and_land(tags, body, guard, background).await;
        watch.disarm();
        result
    }

    /// The load of [`run_load`](Self::run_load): stamps `tags`, runs the body, stores the
    /// value unless an invalidation overtook it, and lands the flight.
    async fn load_and_land<R, F>(
        &self,
        tags: Vec<String>,
        body: F,
        guard: FlightGuard,
        background: bool,
    ) -> R
    where
        S: ReturnShape<R, Value = V>,
        F: Future<Output = R>,
    {
        let log = self.cache.log();
        let mut started_at = log.position();
        let tag_hashes: Vec<u64> = tags.iter().map(|t| log.hash(t)).collect();
        let mut stamp = self.stamp(tags).await;
        // Nested in another load of this cache: judged from that one's start.
        let outer = enclosing::enclosing(self.cache.id());
        if let Some(outer) = &outer {
            started_at = outer.position;
            outer.judge(&mut stamp);
        }
        let start = outer.unwrap_or(LoadStart::of(self.cache.id(), started_at, &stamp));
        let body = enclosing::within(start, body);
        if background {
            self.counters.refreshes.incr();
        } else {
            self.counters.loads.incr();
        }
        let t0 = Instant::now();
        let result = body.await;
        let elapsed = t0.elapsed();
        let load_micros = elapsed.as_micros() as u64;
        crate::exported::load_duration(self.site.name, elapsed);
        let op = if background { "refresh" } else { "miss" };

        let Some(value) = self.shape.value(&result) else {
            if background {
                self.counters.refresh_errors.incr();
                self.cache.note_failed_refresh(self.key.storage());
            } else {
                self.counters.load_errors.incr();
            }
            self.log_load(op, load_micros, false);
            let outcome = self
                .shape
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
        self.log_load(op, load_micros, true);
        let (landing, shared_entry) = self
            .settle(value, started_at, tag_hashes, stamp, load_micros)
            .await;
        if let Some(entry) = shared_entry {
            self.put_shared(entry).await;
        }
        guard.land(landing);
        result
    }

    /// What a load that began at log position `started_at` (with `tag_hashes` and `stamp`
    /// taken then) comes to once it produced `value`: stored in process unless an
    /// invalidation overtook it, the entry to write to the shared tier, and the landing for
    /// waiters. The caller writes the entry before it lands the flight, so that a flight that
    /// is gone has stored what it will.
    pub(crate) async fn settle(
        &self,
        value: &V,
        started_at: u64,
        mut tag_hashes: Vec<u64>,
        mut stamp: Stamp,
        load_micros: u64,
    ) -> (Landing, Option<StoredEntry>) {
        let log = self.cache.log();
        // Result tags count for waiters whether or not the value is stored: an invalidation
        // of one of them during the load outdates the value for them too.
        let mut result_tags = Vec::new();
        if let Some(tags_of) = self.options.result_tags {
            let mut sink = TagSink::default();
            tags_of(value, &mut sink);
            result_tags = sink.into_tags();
        }
        tag_hashes.extend(result_tags.iter().map(|t| log.hash(t)));
        let mut shared = None;
        let mut shared_entry = None;
        if self.options.should_store(value) {
            // Stamp result tags first, then consult the log: an invalidation is either in the
            // log or after the stamp, so it cannot slip between them.
            self.extend_stamp(&mut stamp, result_tags).await;
            if log.invalidated_since(started_at, &tag_hashes) {
                let why = "an invalidation overtook this load: not stored";
                self.log(Level::DEBUG, "invalidate", None, why);
            } else {
                shared = stamp.shared.as_ref().map(|tags| SharedStamp {
                    generation: stamp.generation,
                    tags: tags.clone(),
                });
                let meta = self.meta(value, load_micros);
                shared_entry = self.store_local(value, stamp, meta);
            }
        }
        let landing = Landing {
            outcome: Outcome::Value(Arc::new(value.clone())),
            started_at,
            tag_hashes,
            shared,
        };
        (landing, shared_entry)
    }

    /// Logs a load of the key (`op`: `miss` or `refresh`), with its duration and outcome.
    pub(crate) fn log_load(&self, op: &'static str, load_micros: u64, ok: bool) {
        tracing::event!(
            target: LOG_TARGET,
            tracing::Level::DEBUG,
            cache.op = op,
            cache.method = self.site.name,
            cache.key = self.key.rendered(),
            cache.duration_us = load_micros,
            ok
        );
    }

    /// Starts one background refresh of the key, unless one is running or the last one
    /// failed less than the refresh backoff ago. Gives the body back when it cannot run in
    /// the background.
    fn refresh<R, L>(&self, load: L) -> Result<(), L>
    where
        S: ReturnShape<R, Value = V>,
        L: Load<R>,
        R: Send + 'static,
    {
        if !L::DETACHABLE {
            return Err(load);
        }
        let storage = self.key.storage();
        if self.cache.refresh_failed_recently(storage)
            || self.cache.flights(self.blocking).running(storage)
        {
            return Ok(());
        }
        // A blocking body refreshes on a thread of its own, never on a runtime's worker; when
        // too many already run, in the foreground.
        let spawn = if self.blocking {
            match RefreshThread::reserve() {
                Some(thread) => Spawn::Thread(thread),
                None => return Err(load),
            }
        } else {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => Spawn::Task(runtime),
                Err(_) => return Err(load),
            }
        };
        let Joined::Leader(guard) = self.cache.flights(self.blocking).join(storage) else {
            return Ok(());
        };
        let body = load.detach()?;
        let call = self.clone();
        let span = tracing::debug_span!(
            target: LOG_TARGET,
            "cache.refresh",
            cache.method = self.site.name,
            cache.key = self.key.rendered()
        );
        let refresh = async move {
            call.run_load(body, guard, true).await;
        }
        .instrument(span);
        match spawn {
            Spawn::Task(runtime) => drop(runtime.spawn(refresh)),
            Spawn::Thread(thread) => {
                blocking::spawn_refresh(refresh, thread, self.cache.runtime().cloned())
            }
        }
        Ok(())
    }
}

/// Where a background refresh runs.
enum Spawn {
    /// A task of the caller's runtime.
    Task(tokio::runtime::Handle),
    /// A thread of its own (a blocking function's).
    Thread(RefreshThread),
}

/// Counts a background refresh whose body panicked (the task unwinds through it).
struct RefreshWatch<'a, S, V> {
    call: &'a Call<S, V>,
    armed: bool,
}

impl<S, V> RefreshWatch<'_, S, V> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl<S, V> Drop for RefreshWatch<'_, S, V> {
    fn drop(&mut self) {
        if self.armed {
            let call = self.call;
            call.counters.refresh_errors.incr();
            call.cache.note_failed_refresh(call.key.storage());
            let why = "background refresh panicked: serving the stale value";
            call.log(Level::WARN, "error", None, why);
        }
    }
}
