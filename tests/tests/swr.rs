//! Stale-while-revalidate: an expired entry is served at once inside its window while exactly
//! one background refresh replaces it; a failed refresh keeps the stale value (fail-safe);
//! XFetch recomputes early.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{cached, Cache, Clock, ManualClock};
use support::repo::CustomerRepository;
use support::{ann, reached, until, Customer, Store, StoreError};

fn repo() -> (CustomerRepository, ManualClock) {
    let (clock, hand) = Clock::manual();
    let cache = Cache::builder()
        .clock(clock)
        .refresh_backoff(Duration::from_secs(3600))
        .build();
    (
        CustomerRepository::with_cache(Store::with(&[ann()]), cache),
        hand,
    )
}

fn row(repo: &CustomerRepository) -> cache_runtime::MethodStats {
    support::row(&repo.cache.stats(), "find_by_id").clone()
}

fn anna() -> Customer {
    Customer {
        name: "Anna".into(),
        ..ann()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_entry_is_served_at_once_while_one_refresh_runs() {
    let (repo, hand) = repo();
    repo.find_by_id("1").await.unwrap();
    repo.store.put(anna());
    hand.advance(Duration::from_secs(601)); // expired, 59 s left in the stale window

    let gate = repo.store.hold();
    // The refresh is held at the gate, yet both calls return: they do not wait for it.
    assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    reached(&gate, 1).await;
    assert_eq!(row(&repo).stale_hits, 2);
    assert_eq!(row(&repo).refreshes, 1, "exactly one refresh for the key");

    gate.release.add_permits(1);
    repo.store.open();
    // Until the refresh lands, callers keep getting the stale row without new refreshes.
    let mut served = repo.find_by_id("1").await.unwrap();
    for _ in 0..10_000 {
        if served == Some(anna()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        served = repo.find_by_id("1").await.unwrap();
    }
    assert_eq!(served, Some(anna()));
    assert_eq!(repo.store.loads(), 2, "one initial load, one refresh");
    assert_eq!(row(&repo).refreshes, 1);
}

/// A method whose result tags panic for a customer named Boom.
#[derive(Clone)]
struct Fragile {
    cache: Cache,
    store: Store,
}

impl Fragile {
    #[cached(
        key = "fragile.{id}",
        ttl = 600,
        swr = 60,
        name = "Fragile::find",
        result_tags = result.iter().map(|c| {
            assert_ne!(c.name, "Boom", "a bug in the result tags");
            format!("customer.{}", c.id)
        })
    )]
    async fn find(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.store.get(id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_panics_after_its_body_is_counted_and_backs_off() {
    let (clock, hand) = Clock::manual();
    let cache = Cache::builder()
        .clock(clock)
        .refresh_backoff(Duration::from_secs(3600))
        .build();
    let repo = Fragile {
        cache,
        store: Store::with(&[ann()]),
    };
    let row = || support::row(&repo.cache.stats(), "Fragile::find").clone();
    assert_eq!(repo.find("1").await, Ok(Some(ann())));
    repo.store.put(Customer {
        name: "Boom".into(),
        ..ann()
    });
    hand.advance(Duration::from_secs(601));
    // Stale: served, and the refresh loads Boom, whose result tags panic.
    assert_eq!(repo.find("1").await, Ok(Some(ann())));
    until(|| row().refresh_errors == 1).await;
    assert_eq!(repo.store.loads(), 2);
    // It backs off: stale reads start no other refresh, so the store is not read again.
    for _ in 0..5 {
        assert_eq!(repo.find("1").await, Ok(Some(ann())));
    }
    assert_eq!(row().refreshes, 1);
    assert_eq!(repo.store.loads(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_stale_window_the_call_loads_in_the_foreground() {
    let (repo, hand) = repo();
    repo.find_by_id("1").await.unwrap();
    repo.store.put(anna());
    hand.advance(Duration::from_secs(661));
    assert_eq!(repo.find_by_id("1").await, Ok(Some(anna())));
    assert_eq!(row(&repo).stale_hits, 0);
    assert_eq!(repo.store.loads(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_keeps_serving_the_stale_value_until_the_window_ends() {
    let (repo, hand) = repo();
    repo.find_by_id("1").await.unwrap();
    hand.advance(Duration::from_secs(601));
    repo.store.fail(true);

    assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    until(|| row(&repo).refresh_errors == 1).await;
    // Still served, and the backoff stops a refresh storm against the failing store.
    for _ in 0..10 {
        assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    }
    assert_eq!(repo.store.loads(), 2);
    assert_eq!(row(&repo).refreshes, 1);

    hand.advance(Duration::from_secs(60)); // the window is over
    assert_eq!(repo.find_by_id("1").await, Err(StoreError::Unavailable));
}

struct Early {
    cache: Cache,
    calls: AtomicUsize,
}

impl Early {
    #[cached(key = "early.{n}", ttl = 10, beta = 1000.0)]
    async fn with_beta(&self, n: u32) -> u32 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        n
    }

    #[cached(key = "late.{n}", ttl = 10)]
    async fn without_beta(&self, n: u32) -> u32 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        n
    }
}

#[tokio::test]
async fn xfetch_recomputes_some_calls_before_expiry() {
    let (clock, hand) = Clock::manual();
    let with = Early {
        cache: Cache::builder().clock(clock.clone()).build(),
        calls: AtomicUsize::new(0),
    };
    let without = Early {
        cache: Cache::builder().clock(clock).build(),
        calls: AtomicUsize::new(0),
    };
    with.with_beta(1).await;
    without.without_beta(1).await;
    hand.advance(Duration::from_secs(9)); // 1 s before expiry; δ ≈ 20 ms, β = 1000
    for _ in 0..20 {
        assert_eq!(with.with_beta(1).await, 1);
        assert_eq!(without.without_beta(1).await, 1);
    }
    assert!(
        with.calls.load(Ordering::SeqCst) >= 2,
        "XFetch recomputed early"
    );
    assert_eq!(
        without.calls.load(Ordering::SeqCst),
        1,
        "no early recomputation without beta"
    );
}
