//! `#[cached]` and `#[invalidates]` on plain (blocking) `fn`s: the in-process tier with the
//! semantics of the async ones (single flight with waiters blocked on the leader, a panicking
//! leader releasing them, tags, TTL, `condition`/`unless`, stats, `swr` refreshed on a thread),
//! called from threads and from inside tokio runtimes, over a cache with or without Redis.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use cache_runtime::{cached, invalidates, observe, Cache, CallOutcome, Clock, ManualClock};
use parking_lot::Mutex;
use support::redis_server::{namespace, RedisServer};

#[derive(Clone)]
struct Rates {
    cache: Cache,
    loads: Arc<AtomicUsize>,
    /// What a load returns for a currency.
    table: Arc<Mutex<std::collections::HashMap<String, u32>>>,
    /// When set, loads wait here (once each) before they read.
    gate: Arc<Mutex<Option<Arc<Barrier>>>>,
    /// When set, loads panic.
    panic: Arc<AtomicUsize>,
}

impl Rates {
    #[cached(key = "rate.{currency}", ttl = 60, tags = ["rates", "rate.{currency}"])]
    fn rate(&self, currency: &str) -> Result<Option<u32>, String> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let gate = self.gate.lock().take();
        if let Some(gate) = gate {
            gate.wait(); // the others have joined
            gate.wait(); // released
        }
        if self.panic.load(Ordering::SeqCst) > 0 {
            self.panic.fetch_sub(1, Ordering::SeqCst);
            panic!("the leader's body panicked");
        }
        Ok(self.table.lock().get(currency).copied())
    }

    #[cached(
        key = "quote.{currency}",
        ttl = 10,
        condition = currency != "live",
        unless = result.is_none()
    )]
    fn quote(&self, currency: &str) -> Option<u32> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.table.lock().get(currency).copied()
    }

    #[cached(key = "slow.{currency}", ttl = 10, swr = 60)]
    fn slow(&self, currency: &str) -> u32 {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let name = std::thread::current().name().unwrap_or("").to_owned();
        let table = self.table.lock();
        table.get(&name).copied().unwrap_or(0) + table[currency]
    }

    /// A short negative cache, from the result.
    #[cached(key = "known.{currency}", ttl = if result.is_none() { 1 } else { 60 })]
    fn known(&self, currency: &str) -> Option<u32> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.table.lock().get(currency).copied()
    }

    #[invalidates(tags = ["rate.{currency}"])]
    fn set(&self, currency: &str, rate: u32) -> Result<(), String> {
        self.table.lock().insert(currency.to_owned(), rate);
        Ok(())
    }

    #[invalidates(tags = ["rates"])]
    fn fail_to_set_all(&mut self) -> Result<(), String> {
        Err("refused".into())
    }
}

fn rates(cache: Cache) -> Rates {
    let table = [("eur".to_owned(), 100), ("usd".to_owned(), 90)];
    Rates {
        cache,
        loads: Arc::default(),
        table: Arc::new(Mutex::new(table.into_iter().collect())),
        gate: Arc::default(),
        panic: Arc::default(),
    }
}

fn manual() -> (Rates, ManualClock) {
    let (clock, hand) = Clock::manual();
    (rates(Cache::builder().clock(clock).build()), hand)
}

impl Rates {
    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }
}

#[test]
fn a_blocking_function_misses_then_hits_until_its_ttl_and_tags_invalidate_it() {
    let (r, hand) = manual();
    assert_eq!(r.rate("eur"), Ok(Some(100)));
    assert_eq!(r.rate("eur"), Ok(Some(100)));
    assert_eq!(r.loads(), 1);
    r.set("eur", 101).unwrap();
    assert_eq!(r.rate("eur"), Ok(Some(101)), "invalidated by its tag");
    assert_eq!(r.loads(), 2);
    hand.advance(Duration::from_secs(59));
    r.rate("eur").unwrap();
    assert_eq!(r.loads(), 2);
    hand.advance(Duration::from_secs(1));
    r.rate("eur").unwrap();
    assert_eq!(r.loads(), 3, "expired after 60 s");

    let mut r = r;
    assert!(r.fail_to_set_all().is_err());
    r.rate("eur").unwrap();
    assert_eq!(r.loads(), 3, "a failed write invalidates nothing");

    let stats = r.cache.stats();
    let rate = stats
        .methods
        .iter()
        .find(|m| m.method.ends_with("rate"))
        .unwrap();
    assert_eq!((rate.hits, rate.misses, rate.loads), (3, 3, 3));
}

#[test]
fn a_ttl_from_the_result_holds_for_blocking_functions() {
    let (r, hand) = manual();
    assert_eq!((r.known("eur"), r.known("xyz")), (Some(100), None));
    hand.advance(Duration::from_secs(1));
    assert_eq!((r.known("eur"), r.known("xyz")), (Some(100), None));
    assert_eq!(
        r.loads(),
        3,
        "the unknown one expired after 1 s, the known one did not"
    );
}

#[test]
fn condition_and_unless_hold_for_blocking_functions() {
    let (r, _) = manual();
    assert_eq!(r.quote("live"), None);
    assert_eq!(r.quote("live"), None);
    assert_eq!(r.loads(), 2, "condition false: every call runs the body");
    assert_eq!(r.quote("chf"), None);
    assert_eq!(r.quote("chf"), None);
    assert_eq!(r.loads(), 4, "unless: None is not stored");
    let (value, observed) = cache_runtime::__private_0_1_0::block_on(observe(async {
        (r.quote("usd"), r.quote("usd"))
    }));
    assert_eq!(value, (Some(90), Some(90)));
    let outcomes: Vec<CallOutcome> = observed.iter().map(|o| o.outcome).collect();
    assert_eq!(outcomes, [CallOutcome::Miss, CallOutcome::Hit]);
}

#[test]
fn waiters_block_on_the_leader_and_the_body_runs_once() {
    let (r, _) = manual();
    let gate = Arc::new(Barrier::new(2));
    *r.gate.lock() = Some(gate.clone());
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let r = r.clone();
            std::thread::spawn(move || r.rate("usd"))
        })
        .collect();
    gate.wait(); // the leader is in its body
    let coalesced = || {
        let stats = r.cache.stats();
        stats.methods.iter().map(|m| m.coalesced).sum::<u64>()
    };
    while coalesced() < 7 {
        std::thread::sleep(Duration::from_millis(5));
    }
    gate.wait(); // release it
    for caller in callers {
        assert_eq!(caller.join().unwrap(), Ok(Some(90)));
    }
    assert_eq!(r.loads(), 1);
}

#[test]
fn a_panicking_leader_releases_its_waiters_and_one_of_them_loads() {
    let (r, _) = manual();
    let gate = Arc::new(Barrier::new(2));
    *r.gate.lock() = Some(gate.clone());
    r.panic.store(1, Ordering::SeqCst);
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let r = r.clone();
            std::thread::spawn(move || r.rate("eur"))
        })
        .collect();
    gate.wait();
    let coalesced = || {
        let stats = r.cache.stats();
        stats.methods.iter().map(|m| m.coalesced).sum::<u64>()
    };
    while coalesced() < 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    gate.wait(); // the leader panics now
    let results: Vec<_> = callers.into_iter().map(|c| c.join()).collect();
    assert_eq!(
        results.iter().filter(|r| r.is_err()).count(),
        1,
        "the leader"
    );
    for result in results.into_iter().flatten() {
        assert_eq!(result, Ok(Some(100)));
    }
    assert_eq!(r.loads(), 2, "the panicked load and one more");
}

#[test]
fn swr_refreshes_on_a_thread_of_its_own() {
    let (r, hand) = manual();
    assert_eq!(r.slow("eur"), 100);
    r.table.lock().insert("cache-refresh".into(), 5); // what a load on the refresh thread adds
    hand.advance(Duration::from_secs(11));
    assert_eq!(r.slow("eur"), 100, "stale, served at once");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while r.loads() < 2 {
        assert!(std::time::Instant::now() < deadline, "never refreshed");
        std::thread::sleep(Duration::from_millis(5));
    }
    // The refresh stores before it lands; wait for it to be served.
    while r.slow("eur") != 105 {
        assert!(std::time::Instant::now() < deadline, "refresh not stored");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        r.loads(),
        2,
        "refreshed once, on the `cache-refresh` thread"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn called_on_a_single_threaded_runtime_over_redis_it_never_waits_on_that_runtime() {
    // The runtime's only thread runs the Redis connections and the feed: a blocking call on
    // it that awaited the network would wait forever.
    let redis = RedisServer::shared();
    let ns = namespace("blocking-current-thread");
    let backend = cache_runtime::backend::RedisBackend::builder(&redis.url)
        .namespace(&ns)
        .build()
        .unwrap();
    let r = rates(Cache::builder().backend(backend).build());
    support::until(|| r.cache.feed_connected()).await;
    assert_eq!(r.rate("eur"), Ok(Some(100)));
    assert_eq!(r.rate("eur"), Ok(Some(100)));
    assert_eq!(r.loads(), 1, "a hit in process");
    r.set("eur", 1).unwrap();
    assert_eq!(r.rate("eur"), Ok(Some(1)));
    assert_eq!(r.loads(), 2);
    // The invalidation is sent once the runtime runs again: the namespace's sequence moves.
    let seq = || -> Option<u64> {
        redis::cmd("HGET")
            .arg(format!("{ns}:m"))
            .arg("seq")
            .query(&mut redis.connection())
            .unwrap()
    };
    let before = seq().unwrap_or(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while seq().unwrap_or(0) <= before {
        assert!(std::time::Instant::now() < deadline, "never reached Redis");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_blocking_invalidation_is_delivered_after_the_caches_runtime_has_ended() {
    let backend = support::recording::RecordingBackend::default();
    let first = tokio::runtime::Runtime::new().unwrap();
    let cache = first.block_on(async { Cache::builder().backend(backend.clone()).build() });
    drop(first);
    let r = rates(cache);
    // Off any runtime, and the cache's is gone: queued, not sent.
    r.set("eur", 1).unwrap();
    assert_eq!(backend.ops.invalidations.load(Ordering::SeqCst), 0);
    // From a live runtime, the next one is sent, with what was queued.
    let second = tokio::runtime::Runtime::new().unwrap();
    second.block_on(async {
        r.set("usd", 2).unwrap();
        support::until(|| backend.version("rate.eur") == 1 && backend.version("rate.usd") == 1)
            .await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_redis_it_caches_in_process_and_its_invalidations_reach_redis() {
    let redis = RedisServer::shared();
    let ns = namespace("blocking");
    let backend = || {
        cache_runtime::backend::RedisBackend::builder(&redis.url)
            .namespace(&ns)
            .build()
            .unwrap()
    };
    let blocking = rates(Cache::builder().backend(backend()).build());
    support::until(|| blocking.cache.feed_connected()).await;
    // Another instance, async and L2-only, caches `rate.eur` in Redis.
    let other = AsyncRates {
        cache: Cache::builder()
            .backend(backend())
            .in_process_tier(false)
            .build(),
        table: blocking.table.clone(),
        loads: Arc::default(),
    };
    assert_eq!(other.rate("eur").await, Some(100));
    assert_eq!(other.rate("eur").await, Some(100));
    assert_eq!(other.loads.load(Ordering::SeqCst), 1, "an L2 hit");

    // The blocking method, called from a worker thread: in process, never written to Redis.
    let r = blocking.clone();
    let values = tokio::task::spawn_blocking(move || (r.rate("usd"), r.rate("usd")))
        .await
        .unwrap();
    assert_eq!(values, (Ok(Some(90)), Ok(Some(90))));
    assert_eq!(blocking.loads(), 1);
    assert!(
        redis.scan(&format!("{ns}:e:*rate.usd")).is_empty(),
        "a blocking function's values stay in process"
    );
    // Called on the runtime's own thread too (it never awaits the network): a hit.
    assert_eq!(blocking.rate("usd"), Ok(Some(90)));
    assert_eq!(blocking.loads(), 1);

    // Its invalidation reaches Redis in the background: the other instance reloads.
    blocking.set("eur", 120).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if other.rate("eur").await == Some(120) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reached Redis");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(other.loads.load(Ordering::SeqCst), 2);
    // A blocking call from a plain thread, off any runtime, queues it the same way.
    let r = blocking.clone();
    std::thread::spawn(move || r.set("eur", 130).unwrap())
        .join()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while other.rate("eur").await != Some(130) {
        assert!(std::time::Instant::now() < deadline, "never reached Redis");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

struct AsyncRates {
    cache: Cache,
    table: Arc<Mutex<std::collections::HashMap<String, u32>>>,
    loads: Arc<AtomicUsize>,
}

impl AsyncRates {
    #[cached(key = "rate.{currency}", ttl = 60, tags = ["rates", "rate.{currency}"], name = "rates::rate")]
    async fn rate(&self, currency: &str) -> Option<u32> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.table.lock().get(currency).copied()
    }
}
