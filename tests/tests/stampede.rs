//! Single flight: concurrent misses run the body once; errors are shared, not stored; a
//! cancelled or panicking leader does not strand the others or wedge the key.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_runtime::{cached, Cache};
use support::repo::CustomerRepository;
use support::{ann, reached, until, Store, StoreError};

fn coalesced(cache: &Cache) -> u64 {
    cache.stats().methods.iter().map(|m| m.coalesced).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_run_the_body_once() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    let gate = repo.store.hold();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let r = repo.clone();
            tokio::spawn(async move { r.find_by_id("1").await })
        })
        .collect();
    reached(&gate, 1).await;
    until(|| coalesced(&repo.cache) == 49).await;
    gate.release.add_permits(1);
    for t in tasks {
        assert_eq!(t.await.unwrap(), Ok(Some(ann())));
    }
    assert_eq!(repo.store.loads(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_is_shared_with_the_waiters_but_not_stored() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    repo.store.fail(true);
    let gate = repo.store.hold();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let r = repo.clone();
            tokio::spawn(async move { r.find_by_id("1").await })
        })
        .collect();
    reached(&gate, 1).await;
    until(|| coalesced(&repo.cache) == 19).await;
    gate.release.add_permits(1);
    for t in tasks {
        assert_eq!(t.await.unwrap(), Err(StoreError::Unavailable));
    }
    assert_eq!(repo.store.loads(), 1);
    repo.store.open();
    repo.store.fail(false);
    assert_eq!(
        repo.find_by_id("1").await,
        Ok(Some(ann())),
        "the error was not stored"
    );
    assert_eq!(repo.store.loads(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_leader_hands_the_load_to_a_waiter() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    let gate = repo.store.hold();
    let r = repo.clone();
    let leader = tokio::spawn(async move { r.find_by_id("1").await });
    reached(&gate, 1).await;
    let r = repo.clone();
    let waiter = tokio::spawn(async move { r.find_by_id("1").await });
    until(|| coalesced(&repo.cache) == 1).await;

    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());

    reached(&gate, 1).await; // the waiter took over
    gate.release.add_permits(1);
    assert_eq!(waiter.await.unwrap(), Ok(Some(ann())));
    assert_eq!(repo.store.loads(), 2);
}

struct Fragile {
    cache: Cache,
    calls: AtomicUsize,
}

impl Fragile {
    #[cached(key = "fragile.{n}", ttl = 60)]
    async fn get(&self, n: u32) -> u32 {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        if call == 0 {
            panic!("the first load panics");
        }
        n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_body_does_not_wedge_the_key() {
    let fragile = Arc::new(Fragile {
        cache: Cache::in_memory(10),
        calls: AtomicUsize::new(0),
    });
    let f = fragile.clone();
    let first = tokio::spawn(async move { f.get(1).await });
    until(|| fragile.calls.load(Ordering::SeqCst) == 1).await;
    let f = fragile.clone();
    let second = tokio::spawn(async move { f.get(1).await });
    assert!(first.await.unwrap_err().is_panic());
    assert_eq!(second.await.unwrap(), 1, "the waiter retried");
    assert_eq!(fragile.get(1).await, 1);
    assert_eq!(fragile.calls.load(Ordering::SeqCst), 2);
}

#[derive(Debug, PartialEq)]
struct Opaque(&'static str); // not Clone: cannot be shared with waiters

struct Failing {
    store: Store,
    cache: Cache,
}

impl Failing {
    #[cached(key = "failing.{id}", ttl = 60)]
    async fn get(&self, id: &str) -> Result<Option<support::Customer>, Opaque> {
        self.store.get(id).await.map_err(|_| Opaque("down"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_an_unshareable_error_load_at_once_instead_of_in_turn() {
    let failing = Arc::new(Failing {
        store: Store::with(&[ann()]),
        cache: Cache::in_memory(10),
    });
    failing.store.fail(true);
    let gate = failing.store.hold();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let f = failing.clone();
            tokio::spawn(async move { f.get("1").await })
        })
        .collect();
    reached(&gate, 1).await;
    until(|| coalesced(&failing.cache) == 9).await;
    // The leader fails; its error cannot be shared.
    gate.release.add_permits(1);
    // The nine waiters now run their own bodies together: all reach the gate while it holds.
    reached(&gate, 9).await;
    gate.release.add_permits(9);
    for task in tasks {
        assert_eq!(task.await.unwrap(), Err(Opaque("down")));
    }
    assert_eq!(failing.store.loads(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_that_joins_after_the_load_it_missed_landed_is_served_its_value() {
    // Both callers miss in process and look in the shared tier; there, both find nothing.
    // One is let through, loads and lands; only then does the other get its (empty) answer
    // and join: no flight is running any more, and what the first stored is served.
    let backend = support::recording::RecordingBackend::with_feed();
    let store = Store::with(&[ann()]);
    let repo = CustomerRepository::two_tier(&store, backend.clone()).await;
    until(|| repo.cache.feed_connected()).await;
    let gate = backend.hold_gets();
    let r = repo.clone();
    let first = tokio::spawn(async move { r.find_by_id("1").await });
    reached(&gate, 1).await;
    let r = repo.clone();
    let second = tokio::spawn(async move { r.find_by_id("1").await });
    reached(&gate, 1).await;

    // One of them (whichever queued first at the gate: a caller counts as arrived just
    // before it queues) is let through, loads and lands; then the other.
    gate.release.add_permits(1);
    until(|| first.is_finished() || second.is_finished()).await;
    assert_eq!(store.loads(), 1);
    gate.release.add_permits(1);
    assert_eq!(first.await.unwrap(), Ok(Some(ann())));
    assert_eq!(second.await.unwrap(), Ok(Some(ann())));
    assert_eq!(store.loads(), 1, "the later caller did not load again");
    assert_eq!(coalesced(&repo.cache), 1);
}
