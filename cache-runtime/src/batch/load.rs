//! The asynchronous half of a batch call: the shared tier in one round trip, per-key flights,
//! one run of the body for the ids this call leads, one write of what it stored.

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use tracing::{Instrument, Level};

use super::{BatchPending, BatchReturn};
use crate::backend::{EntryKey, StoredEntry};
use crate::call::Call;
use crate::enclosing::{self, LoadStart};
use crate::entry::Found;
use crate::flight::{FlightGuard, Joined, Landing, Outcome};
use crate::load::Options;
use crate::report::CallOutcome;
use crate::tiers::{stamp_all, Current, SharedLookup, SharedRead};
use crate::{CacheValue, LOG_TARGET};

/// One id of a batch past its in-process look-up, as a call of its own.
type IdCall<T> = Call<(), Option<T>>;

/// Where an id stands.
enum Resolution<T> {
    /// Not known yet.
    Open,
    /// Served from the cache or from another call's load (`None`: it does not exist).
    Served(Option<T>),
    /// Loaded by this call's body.
    Led(FlightGuard),
}

impl<K, R> BatchPending<K, R>
where
    K: Clone + Send + Sync + 'static,
    R: BatchReturn<Key = K>,
    R::Value: CacheValue,
{
    /// The second half of a batch `#[cached]` call: `body` gets the ids that are not cached
    /// and not being loaded by another call (at most one run), and returns their values.
    /// Boxed, so that the method's own future stays small for calls that hit every id.
    pub fn load<F, Fut>(
        self,
        options: Options<Option<R::Value>>,
        body: F,
    ) -> Pin<Box<impl Future<Output = R>>>
    where
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = R>,
    {
        Box::pin(self.run(options, body))
    }

    async fn run<F, Fut>(self, options: Options<Option<R::Value>>, body: F) -> R
    where
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = R>,
    {
        let BatchPending {
            cache,
            site,
            counters,
            serde,
            found,
            missing,
            bypass,
        } = self;
        let mut ids = Vec::with_capacity(missing.len());
        let calls: Vec<IdCall<R::Value>> = missing
            .into_iter()
            .map(|m| {
                ids.push((m.id, m.aliases));
                Call {
                    cache: cache.clone(),
                    site,
                    counters: counters.clone(),
                    key: m.key,
                    tags: m.tags,
                    shape: (),
                    serde,
                    options,
                    blocking: false,
                }
            })
            .collect();
        let batch = Batch { calls, ids, found };
        if bypass {
            crate::call::record(&counters, site, None, CallOutcome::Bypass);
            let result = body(batch.primary_ids()).await;
            let open = batch.calls.iter().map(|_| Resolution::Open).collect();
            return batch.finish(result, open);
        }
        batch.load(body).await
    }
}

/// A batch call's ids that missed in process, each as a call, and what was found so far.
struct Batch<K, T, M> {
    calls: Vec<IdCall<T>>,
    /// Each call's id and its aliases.
    ids: Vec<(K, Vec<K>)>,
    found: M,
}

impl<K, T, M> Batch<K, T, M>
where
    K: Clone + Send + Sync + 'static,
    T: CacheValue,
    M: super::BatchMap<K, T>,
{
    /// One id of each key: what the body gets (the aliases get their key's value).
    fn primary_ids(&self) -> Vec<K> {
        self.ids.iter().map(|(id, _)| id.clone()).collect()
    }

    async fn load<R, F, Fut>(self, body: F) -> R
    where
        R: BatchReturn<Key = K, Value = T, Map = M>,
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = R>,
    {
        let mut resolutions: Vec<Resolution<T>> =
            self.calls.iter().map(|_| Resolution::Open).collect();
        if !self.read_shared_tier(&mut resolutions).await {
            // The shared tier cannot be trusted now: the body runs for every id, uncached.
            for call in &self.calls {
                call.record(CallOutcome::Bypass);
            }
            let result = body(self.primary_ids()).await;
            return self.finish(result, resolutions);
        }
        self.join_flights(&mut resolutions).await;
        let led: Vec<usize> = (0..self.calls.len())
            .filter(|i| matches!(resolutions[*i], Resolution::Led(_)))
            .collect();
        if led.is_empty() {
            return self.finish(R::from_map(M::default()), resolutions);
        }
        let result = self.run_body(body, &led, &mut resolutions).await;
        self.finish(result, resolutions)
    }

    /// Reads the ids that are still open from the shared tier, in one round trip, promoting
    /// what it holds into the in-process tier. `false`: the shared tier is to be bypassed.
    async fn read_shared_tier(&self, resolutions: &mut [Resolution<T>]) -> bool {
        let Some(first) = self.calls.first() else {
            return true;
        };
        let Some(shared) = first.shared_tier() else {
            return true;
        };
        let cache = &first.cache;
        if cache.invalidations_pending() {
            let why = "invalidations pending: bypassing the shared tier";
            first.log(Level::DEBUG, "error", None, why);
            return false;
        }
        let started_at = cache.log().position();
        let trusting_feed = cache.trusted_local().is_some();
        let mut local_stamps: Vec<_> = self
            .calls
            .iter()
            .map(|call| cache.trusted_local().map(|local| local.stamp(&call.tags)))
            .collect();
        let keys: Vec<EntryKey<'_>> = self.calls.iter().map(IdCall::entry_key).collect();
        let get_many = shared.get_many(&keys, trusting_feed);
        let reads = match crate::exported::backend_call("get_many", get_many).await {
            Ok(reads) if reads.len() == keys.len() => reads,
            Ok(_) => return false,
            Err(error) => {
                first.counters.backend_errors.incr();
                let why = "backend read failed: running the body";
                first.log(Level::WARN, "error", Some(&error), why);
                return false;
            }
        };
        for (i, read) in reads.into_iter().enumerate() {
            let call = &self.calls[i];
            let found = match call.judge_read(read, started_at, local_stamps[i].take()) {
                SharedLookup::Read(SharedRead { found, .. }) => found,
                SharedLookup::Bypass => Found::Miss,
            };
            if let Found::Fresh(value) | Found::EarlyRefresh(value) = found {
                call.record(CallOutcome::Hit);
                resolutions[i] = Resolution::Served(value);
            }
        }
        true
    }

    /// Joins the flight of every open id, in the order of their storage keys: leads those
    /// nobody loads, and waits for the others. Waiting while leading others cannot deadlock:
    /// a batch waits only for a key after every key it leads, so no two batches wait for
    /// each other, and a single call never waits while it leads.
    async fn join_flights(&self, resolutions: &mut [Resolution<T>]) {
        let mut open: Vec<usize> = (0..self.calls.len())
            .filter(|i| matches!(resolutions[*i], Resolution::Open))
            .collect();
        open.sort_by(|a, b| {
            self.calls[*a]
                .key
                .storage()
                .cmp(self.calls[*b].key.storage())
        });
        for i in open {
            let call = &self.calls[i];
            call.record(CallOutcome::Miss);
            resolutions[i] = self.resolve(call).await;
        }
    }

    /// Leads the flight of one id, or waits for it until a value that may be served lands.
    async fn resolve(&self, call: &IdCall<T>) -> Resolution<T> {
        let mut retry = false;
        loop {
            if retry {
                if let Some(value) = call.fresh_in_process() {
                    return Resolution::Served(value);
                }
            }
            retry = true;
            let rx = match call.cache.flights(false).join(call.key.storage()) {
                Joined::Leader(guard) => {
                    return match call.landed_meanwhile(guard) {
                        Ok(value) => Resolution::Served(value),
                        Err(guard) => Resolution::Led(guard),
                    };
                }
                Joined::Waiter(rx) => rx,
            };
            let Some(landing) = call.wait_for_landing(rx).await else {
                continue;
            };
            // A failed load (shared error or not) is loaded again, by this call's body.
            let Outcome::Value(value) = &landing.outcome else {
                continue;
            };
            let Some(value) = value.downcast_ref::<Option<T>>() else {
                continue;
            };
            match call.still_current(&landing).await {
                Current::Yes => return Resolution::Served(value.clone()),
                Current::No | Current::Unknown => {}
            }
        }
    }

    /// Runs the body once with the ids this call leads (`led`), then
    /// stores each id's value (absent from the map: `None`) and lands its flight.
    async fn run_body<R, F, Fut>(
        &self,
        body: F,
        led: &[usize],
        resolutions: &mut [Resolution<T>],
    ) -> R
    where
        R: BatchReturn<Key = K, Value = T, Map = M>,
        F: FnOnce(Vec<K>) -> Fut,
        Fut: Future<Output = R>,
    {
        let first = &self.calls[led[0]];
        let cache = &first.cache;
        let log = cache.log();
        let mut started_at = log.position();
        let led_calls: Vec<&IdCall<T>> = led.iter().map(|i| &self.calls[*i]).collect();
        let mut stamps = stamp_all(&led_calls).await;
        // Nested in another load of this cache (a list's body filling its items' entries):
        // judged from that one's start.
        let outer = enclosing::enclosing(cache.id());
        if let Some(outer) = &outer {
            started_at = outer.position;
            for stamp in &mut stamps {
                outer.judge(stamp);
            }
        }
        let mut ids = Vec::with_capacity(led.len());
        for i in led {
            ids.push(self.ids[*i].0.clone());
            first.counters.loads.incr();
        }
        let span = tracing::debug_span!(
            target: LOG_TARGET,
            "cache.load",
            cache.method = first.site.name,
            cache.keys = led.len()
        );
        let t0 = Instant::now();
        let start = outer.unwrap_or_else(|| {
            let stamp = stamps.first().expect("a stamp per led id");
            LoadStart::of(cache.id(), started_at, stamp)
        });
        let result = enclosing::within(start, body(ids)).instrument(span).await;
        let elapsed = t0.elapsed();
        let load_micros = elapsed.as_micros() as u64;
        crate::exported::load_duration(first.site.name, elapsed);

        let mut guards = Vec::with_capacity(led.len());
        for i in led {
            if let Resolution::Led(guard) =
                std::mem::replace(&mut resolutions[*i], Resolution::Open)
            {
                guards.push(guard);
            }
        }
        let Some(map) = result.as_map() else {
            for (i, guard) in led.iter().zip(guards) {
                first.counters.load_errors.incr();
                self.calls[*i].log_load("miss", load_micros, false);
                guard.land(failed(started_at));
            }
            return result;
        };
        let mut landings = Vec::with_capacity(led.len());
        let mut entries = Vec::new();
        for ((i, guard), stamp) in led.iter().zip(guards).zip(stamps) {
            let call = &self.calls[*i];
            call.log_load("miss", load_micros, true);
            let value: Option<T> = map.get(&self.ids[*i].0).cloned();
            let tag_hashes = call.tags.iter().map(|t| log.hash(t)).collect();
            let (landing, entry) = call
                .settle(&value, started_at, tag_hashes, stamp, load_micros)
                .await;
            if let Some(entry) = entry {
                entries.push((*i, entry));
            }
            landings.push((guard, landing));
            resolutions[*i] = Resolution::Served(value);
        }
        self.put_all(entries).await;
        // After the writes: a flight that is gone has stored what it will.
        for (guard, landing) in landings {
            guard.land(landing);
        }
        result
    }

    /// Writes the entries of the ids `entries` names to the shared tier, in one call.
    async fn put_all(&self, entries: Vec<(usize, StoredEntry)>) {
        let Some(&(first, _)) = entries.first() else {
            return;
        };
        let call = &self.calls[first];
        let Some(shared) = call.shared_tier() else {
            return;
        };
        let writes = entries
            .into_iter()
            .map(|(i, entry)| (self.calls[i].entry_key(), entry))
            .collect();
        let put_many = shared.put_many(writes);
        if let Err(error) = crate::exported::backend_call("put_many", put_many).await {
            call.counters.backend_errors.incr();
            call.log(Level::WARN, "error", Some(&error), "backend write failed");
        }
    }

    /// The call's result: the body's (an error as it is; a map with every value served
    /// added), or, when the body did not run, the values served.
    fn finish<R>(self, result: R, resolutions: Vec<Resolution<T>>) -> R
    where
        R: BatchReturn<Key = K, Value = T, Map = M>,
    {
        let mut map = match result.into_map() {
            Ok(map) => map,
            Err(error) => return error,
        };
        let Batch { ids, found, .. } = self;
        for ((id, aliases), resolution) in ids.into_iter().zip(resolutions) {
            let Resolution::Served(Some(value)) = resolution else {
                // Loaded by the body: the map has it (or it does not exist).
                if let Some(value) = map.get(&id).cloned() {
                    for alias in aliases {
                        map.insert(alias, value.clone());
                    }
                }
                continue;
            };
            for alias in aliases {
                map.insert(alias, value.clone());
            }
            map.insert(id, value);
        }
        merge(&mut map, found);
        R::from_map(map)
    }
}

/// Adds the in-process hits to the result.
fn merge<K, T, M: super::BatchMap<K, T>>(map: &mut M, found: M) {
    for (id, value) in found {
        map.insert(id, value);
    }
}

fn failed(started_at: u64) -> Landing {
    Landing {
        outcome: Outcome::Failed,
        started_at,
        tag_hashes: Vec::new(),
        shared: None,
    }
}
