//! Regression tests for the promise "no pre-write value after an invalidation returned" at the
//! shared tier's edges: evicted tag keys, a lost invalidation sequence, Redis restored from an
//! older snapshot, `clear` racing another instance's load, lock waiters, values kept out by
//! `unless`, and a bounded queue of refused invalidations. Each fails on the code before the
//! fix. The randomized counterpart, under real faults, is `history.rs`.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use cache_runtime::backend::RedisBackend;
use cache_runtime::{cached, Cache};
use support::recording::RecordingBackend;
use support::redis_server::{namespace, RedisServer};
use support::repo::CustomerRepository;
use support::{ann, reached, until, Customer, Gate, Store, StoreError};

/// A `find` running in a task.
type FindTask = tokio::task::JoinHandle<Result<Option<Customer>, StoreError>>;

fn anna() -> Customer {
    Customer {
        name: "Anna".into(),
        ..ann()
    }
}

fn annette() -> Customer {
    Customer {
        name: "Annette".into(),
        ..ann()
    }
}

/// An instance that reads and writes Redis directly, with no in-process tier: what it reads is
/// what Redis says.
fn l2_only(server: &RedisServer, ns: &str) -> Cache {
    Cache::builder()
        .backend(
            RedisBackend::builder(&server.url)
                .namespace(ns)
                .build()
                .expect("a valid URL"),
        )
        .in_process_tier(false)
        .build()
}

/// Two methods whose entries carry the same tag, and one whose load read its row before it
/// stalled.
#[derive(Clone)]
struct Twins {
    cache: Cache,
    store: Store,
}

impl Twins {
    #[cached(key = "a.{id}", ttl = 600, tags = ["t.{id}"])]
    async fn a(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.store.get(id).await
    }

    #[cached(key = "b.{id}", ttl = 600, tags = ["t.{id}"])]
    async fn b(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.store.get(id).await
    }

    #[cached(key = "slow.{id}", ttl = 600, tags = ["t.{id}"])]
    async fn slow(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.store.get_then_stall(id).await
    }

    /// An instance with no in-process tier on `ns`, whose `a` stored Ann before she was
    /// renamed Anna and the tag `t.1` invalidated: `a`'s entry is outdated.
    async fn with_an_outdated_entry(server: &RedisServer, ns: &str) -> Twins {
        let store = Store::with(&[ann()]);
        let twins = Twins {
            cache: l2_only(server, ns),
            store: store.clone(),
        };
        assert_eq!(twins.a("1").await, Ok(Some(ann())));
        store.put(anna());
        twins.cache.invalidate_tags(["t.1"]).await.unwrap();
        twins
    }
}

fn scan(server: &RedisServer, pattern: &str) -> Vec<String> {
    server.scan(pattern)
}

fn del(server: &RedisServer, keys: &[String]) {
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(keys)
            .query(&mut server.connection())
            .unwrap();
    }
}

/// The tag key of `t.1`, whatever the layout (`<ns>:t:t.1` before generations).
fn tag_keys(server: &RedisServer, ns: &str) -> Vec<String> {
    scan(server, &format!("{ns}:t:*t.1"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_tag_key_does_not_revive_an_invalidated_entry() {
    let server = RedisServer::shared();
    let ns = namespace("evicted-tag");
    let twins = Twins::with_an_outdated_entry(&server, &ns).await;
    // Redis drops the tag key, as a maxmemory policy does.
    let tags = tag_keys(&server, &ns);
    assert_eq!(tags.len(), 1, "{tags:?}");
    del(&server, &tags);
    // Another method carrying the tag stores again, which needs the tag's version.
    assert_eq!(twins.b("1").await, Ok(Some(anna())));
    assert_eq!(
        twins.a("1").await,
        Ok(Some(anna())),
        "the entry stored before the invalidation stays outdated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_key_evicted_under_real_memory_pressure_does_not_revive_an_invalidated_entry() {
    // `volatile-lru`, with every key of the namespace but the tag key made persistent below,
    // so that what gets evicted is the tag key (and junk), never the entry the test is about.
    // The history checker runs `allkeys-lru`, where anything goes.
    let server = RedisServer::start_with(&[
        "--maxmemory",
        "4mb",
        "--maxmemory-policy",
        "volatile-lru",
        "--maxmemory-samples",
        "64",
    ]);
    let ns = namespace("pressure");
    let twins = Twins::with_an_outdated_entry(&server, &ns).await;
    let tags = tag_keys(&server, &ns);
    assert_eq!(tags.len(), 1, "{tags:?}");
    let entries = scan(&server, &format!("{ns}:e:*"));
    assert_eq!(entries.len(), 1, "{entries:?}");
    let mut conn = server.connection();
    // Everything of the namespace but the tag key stays: the entry, its implicit key tag.
    for key in scan(&server, &format!("{ns}:*")) {
        if !tags.contains(&key) {
            let _: i64 = redis::cmd("PERSIST").arg(&key).query(&mut conn).unwrap();
        }
    }
    // The tag key is now the least recently used (Redis's LRU clock ticks in seconds).
    tokio::time::sleep(Duration::from_millis(2_100)).await;

    // Fill Redis with expiring junk until the LRU policy evicts the tag key.
    let junk = "x".repeat(1024);
    let mut evicted = false;
    for i in 0..200_000u32 {
        let _: () = redis::cmd("SET")
            .arg(format!("junk:{i}"))
            .arg(&junk)
            .arg("PX")
            .arg(3_600_000)
            .query(&mut conn)
            .unwrap();
        if i % 16 == 0 {
            let exists: i64 = redis::cmd("EXISTS").arg(&tags).query(&mut conn).unwrap();
            if exists == 0 {
                evicted = true;
                break;
            }
        }
    }
    assert!(evicted, "the tag key was never evicted");
    let evicted_keys: u64 = server.info_field("evicted_keys").unwrap().parse().unwrap();
    assert!(evicted_keys > 0);
    let exists: i64 = redis::cmd("EXISTS").arg(&entries).query(&mut conn).unwrap();
    assert_eq!(
        exists, 1,
        "the entry itself survived, so the test means something"
    );

    assert_eq!(twins.b("1").await, Ok(Some(anna())));
    assert_eq!(
        twins.a("1").await,
        Ok(Some(anna())),
        "the entry stored before the invalidation stays outdated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_invalidation_sequence_does_not_hand_out_old_versions_again() {
    let server = RedisServer::shared();
    let ns = namespace("lost-seq");
    let store = Store::with(&[ann()]);
    let cache = l2_only(&server, &ns);
    let repo = CustomerRepository::with_cache(store.clone(), cache);
    repo.find_by_id("1").await.unwrap();
    repo.save(&anna()).await.unwrap();
    assert_eq!(repo.find_by_id("1").await, Ok(Some(anna())), "stored again");
    // A write the entry does not see yet... and Redis loses the sequence (an eviction).
    store.put(annette());
    del(&server, &scan(&server, &format!("{ns}:seq")));
    del(&server, &scan(&server, &format!("{ns}:m")));
    // The next invalidation must not hand out a version the stored entry already carries.
    repo.save(&annette()).await.unwrap();
    assert_eq!(repo.find_by_id("1").await, Ok(Some(annette())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restored_from_an_older_snapshot_does_not_revive_invalidated_entries() {
    let mut server = RedisServer::start_with(&[]);
    let ns = namespace("restore");
    let store = Store::with(&[ann()]);
    let a = CustomerRepository::with_cache(store.clone(), l2_only(&server, &ns));
    assert_eq!(a.find_by_id("1").await, Ok(Some(ann())));
    server.save(); // the entry and its tag versions are in the snapshot
    a.save(&anna())
        .await
        .expect("the invalidation is acknowledged");
    server.crash_and_restore();

    // Every read, on the writer and on an instance started afterwards, sees the write.
    let b = CustomerRepository::with_cache(store.clone(), l2_only(&server, &ns));
    for _ in 0..50 {
        assert_eq!(a.find_by_id("1").await, Ok(Some(anna())));
        assert_eq!(b.find_by_id("1").await, Ok(Some(anna())));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let entries = scan(&server, &format!("{ns}:e:*"));
    assert_eq!(entries.len(), 1, "Redis is in use again: {entries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_stops_a_load_running_on_another_instance() {
    let server = RedisServer::shared();
    let ns = namespace("clear-race");
    let store = Store::with(&[ann()]);
    let a = Twins {
        cache: l2_only(&server, &ns),
        store: store.clone(),
    };
    let b = Twins {
        cache: l2_only(&server, &ns),
        store: store.clone(),
    };
    let gate = store.hold();
    let loading = tokio::spawn({
        let b = b.clone();
        async move { b.slow("1").await }
    });
    reached(&gate, 1).await; // B read Ann and stalls
    store.open();
    store.put(anna());
    a.cache.clear().await.unwrap();
    gate.release.add_permits(1);
    assert_eq!(
        loading.await.unwrap(),
        Ok(Some(ann())),
        "B's caller gets what B read"
    );
    assert_eq!(
        a.slow("1").await,
        Ok(Some(anna())),
        "B's pre-clear value was not stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clear_redis_refuses_is_replayed() {
    let server = RedisServer::start();
    let ns = namespace("clear-replay");
    let store = Store::with(&[ann()]);
    let a = CustomerRepository::with_cache(store.clone(), l2_only(&server, &ns));
    a.find_by_id("1").await.unwrap();
    let generation = || -> Option<String> {
        redis::cmd("HGET")
            .arg(format!("{ns}:m"))
            .arg("gen")
            .query(&mut server.connection())
            .unwrap()
    };
    let before = generation().expect("a generation");
    server.freeze();
    let refused = a.cache.clear().await;
    assert!(refused.is_err(), "a frozen Redis does not take the clear");
    store.put(anna());
    // Meanwhile reads bypass Redis: the store's value.
    assert_eq!(a.find_by_id("1").await, Ok(Some(anna())));
    server.thaw();
    let mut after = before.clone();
    for _ in 0..400 {
        after = generation().expect("a generation");
        if after != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_ne!(
        after, before,
        "the refused clear went through once Redis answered"
    );
    assert_eq!(a.find_by_id("1").await, Ok(Some(anna())));
}

/// A method with a cross-instance lock, over a third-party backend, and the same method as
/// another instance runs it (same name, so the same entries), without the lock.
#[derive(Clone)]
struct Locked {
    cache: Cache,
    store: Store,
}

impl Locked {
    #[cached(key = "customer.{id}", ttl = 600, tags = ["customer.{id}"], lock = "1s", name = "Locked::find")]
    async fn find(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.store.get(id).await
    }

    #[cached(key = "customer.{id}", ttl = 600, tags = ["customer.{id}"], name = "Locked::find")]
    async fn find_elsewhere(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.store.get(id).await
    }

    /// This instance, over `backend`, and another on the same entries whose reads are never
    /// held at the backend's gate. Another instance (neither) holds the lock of every key;
    /// this one's reads answer only when let through.
    fn pair_waiting_for_a_lock(backend: &RecordingBackend, store: &Store) -> (Locked, Locked) {
        let this = Locked {
            cache: Cache::with_backend(backend.clone()),
            store: store.clone(),
        };
        let other = Locked {
            cache: Cache::with_backend(backend.ungated()),
            store: store.clone(),
        };
        backend.locked_elsewhere.store(true, Ordering::SeqCst);
        (this, other)
    }

    /// Over a backend without a feed (every call goes to it): a caller of this instance,
    /// spawned, held at the backend's gate with the answer to its first poll for another
    /// instance's lock (nothing there yet). Returns the backend, the store, the other instance
    /// (whose reads are never held), the gate and the caller's task.
    async fn waiter_at_its_first_poll() -> (RecordingBackend, Store, Locked, Gate, FindTask) {
        let backend = RecordingBackend::default();
        let store = Store::with(&[ann()]);
        let (repo, other) = Locked::pair_waiting_for_a_lock(&backend, &store);
        let gate = backend.hold_gets();
        let waiter = repo.spawn_find("1");
        reached(&gate, 1).await; // its look-up: nothing
        gate.release.add_permits(1);
        reached(&gate, 1).await; // its first poll, while another instance holds the lock
        (backend, store, other, gate, waiter)
    }

    /// Runs `find` in a task.
    fn spawn_find(&self, id: &'static str) -> FindTask {
        let repo = self.clone();
        tokio::spawn(async move { repo.find(id).await })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_waiter_hands_no_pre_write_value_to_callers_that_joined_after_an_invalidation() {
    // With a feed, so that waiters rely on the invalidation log (without one they read the
    // versions again from the backend).
    let backend = RecordingBackend::with_feed();
    let store = Store::with(&[ann()]);
    let (repo, other) = Locked::pair_waiting_for_a_lock(&backend, &store);
    until(|| repo.cache.feed_connected() && other.cache.feed_connected()).await;
    let gate = backend.hold_gets();

    let leader = repo.spawn_find("1");
    reached(&gate, 1).await; // its look-up: nothing
    gate.release.add_permits(1);
    reached(&gate, 1).await; // its first poll, waiting for the lock's holder: nothing yet
    assert_eq!(
        other.find_elsewhere("1").await,
        Ok(Some(ann())),
        "the holder stores Ann"
    );
    gate.release.add_permits(1);
    reached(&gate, 1).await; // its next poll has read Ann, and its answer is held

    // A write, and its invalidation returns; then a caller comes (its reads no longer held),
    // misses and joins the leader's flight.
    store.put(anna());
    repo.cache.invalidate_tags(["customer.1"]).await.unwrap();
    backend.open_gets();
    let joined = repo.spawn_find("1");
    until(|| support::row(&repo.cache.stats(), "Locked::find").coalesced >= 1).await;
    assert_eq!(store.loads(), 1, "only the holder loaded so far");

    backend.locked_elsewhere.store(false, Ordering::SeqCst);
    gate.release.add_permits(1);
    assert_eq!(
        leader.await.unwrap(),
        Ok(Some(ann())),
        "the leader's own read"
    );
    assert_eq!(
        joined.await.unwrap(),
        Ok(Some(anna())),
        "the caller that joined after the invalidation returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_released_between_a_waiters_look_and_its_next_try_is_not_a_second_load() {
    let (backend, store, holder, gate, waiter) = Locked::waiter_at_its_first_poll().await;

    // Before that answer arrives, the holder stores Ann and releases its lock.
    assert_eq!(holder.find_elsewhere("1").await, Ok(Some(ann())));
    backend.locked_elsewhere.store(false, Ordering::SeqCst);
    backend.open_gets();
    gate.release.add_permits(1);

    // The waiter's next try takes the lock: it looks again rather than loading.
    assert_eq!(waiter.await.unwrap(), Ok(Some(ann())));
    assert_eq!(store.loads(), 1, "only the holder loaded");
    assert_eq!(
        backend.ops.unlocks.load(Ordering::SeqCst),
        1,
        "and released the lock it took"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_cancelled_while_it_looks_again_releases_the_lock_it_took() {
    let (backend, store, _, gate, waiter) = Locked::waiter_at_its_first_poll().await;
    backend.locked_elsewhere.store(false, Ordering::SeqCst); // the holder releases it
    gate.release.add_permits(1);
    reached(&gate, 1).await; // it took the lock, and looks again before loading
    waiter.abort(); // its caller goes away there
    assert!(waiter.await.unwrap_err().is_cancelled());
    until(|| backend.ops.unlocks.load(Ordering::SeqCst) == 1).await;
    assert_eq!(store.loads(), 0);
}

/// A list whose result tags name its customers, and that keeps short lists out of the cache.
#[derive(Clone)]
struct Lists {
    cache: Cache,
    store: Store,
}

impl Lists {
    #[cached(key = "list.{page}", ttl = 600, result_tags, unless = result.len() < 5)]
    async fn page(&self, page: u32) -> Result<Vec<Customer>, StoreError> {
        let rows = self.store.active(page, 10).await?;
        Ok(rows)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_kept_out_by_unless_is_checked_against_its_result_tags_for_waiters() {
    let store = Store::with(&[ann()]);
    let lists = Lists {
        cache: Cache::in_memory(1_000),
        store: store.clone(),
    };
    let gate = store.hold();
    let leader = tokio::spawn({
        let lists = lists.clone();
        async move { lists.page(1).await }
    });
    reached(&gate, 1).await; // the leader read [Ann] and stalls
    store.put(anna());
    lists.cache.invalidate_tags(["customer.1"]).await.unwrap(); // a result tag only
    let joined = tokio::spawn({
        let lists = lists.clone();
        async move { lists.page(1).await }
    });
    until(|| support::row(&lists.cache.stats(), "page").coalesced >= 1).await;
    store.open();
    gate.release.add_permits(1);
    assert_eq!(
        leader.await.unwrap(),
        Ok(vec![ann()]),
        "the leader's own read"
    );
    assert_eq!(
        joined.await.unwrap(),
        Ok(vec![anna()]),
        "the caller that joined after the invalidation returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_outage_turns_queued_invalidations_into_one_clear() {
    let backend = RecordingBackend::default();
    let store = Store::with(&[ann()]);
    let repo = CustomerRepository::with_cache(store.clone(), Cache::with_backend(backend.clone()));
    repo.find_by_id("1").await.unwrap();
    backend.set_down(true);
    // More distinct tags than the queue holds.
    for chunk in 0..11 {
        let tags: Vec<String> = (0..1_000).map(|i| format!("bulk.{chunk}.{i}")).collect();
        assert!(repo.cache.invalidate_tags(&tags).await.is_err());
    }
    store.put(anna());
    assert!(repo.cache.invalidate_tags(["customer.1"]).await.is_err());
    assert_eq!(
        repo.find_by_id("1").await,
        Ok(Some(anna())),
        "bypassed while queued"
    );
    assert_eq!(backend.generation(), 0);
    backend.set_down(false);
    until(|| backend.version("customer.1") >= 1).await;
    assert_eq!(backend.generation(), 1, "one clear went through");
    assert_eq!(
        backend.version("bulk.0.0"),
        0,
        "the overflowed tags went as the clear, not one by one"
    );
    assert_eq!(repo.find_by_id("1").await, Ok(Some(anna())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_that_does_not_follow_the_feed_checks_the_versions_again() {
    // No feed: an instance knows only its own invalidations from its log.
    let backend = RecordingBackend::default();
    let store = Store::with(&[ann()]);
    let x = Twins {
        cache: Cache::with_backend(backend.clone()),
        store: store.clone(),
    };
    let y = Twins {
        cache: Cache::with_backend(backend.clone()),
        store: store.clone(),
    };
    let gate = store.hold();
    let leader = tokio::spawn({
        let x = x.clone();
        async move { x.slow("1").await }
    });
    reached(&gate, 1).await; // X's load read Ann and stalls
                             // A write on instance Y, and its invalidation returns; then a caller on X joins X's load.
    store.put(anna());
    y.cache.invalidate_tags(["t.1"]).await.unwrap();
    let joined = tokio::spawn({
        let x = x.clone();
        async move { x.slow("1").await }
    });
    until(|| support::row(&x.cache.stats(), "slow").coalesced >= 1).await;
    store.open();
    gate.release.add_permits(1);
    assert_eq!(
        leader.await.unwrap(),
        Ok(Some(ann())),
        "the leader's own read"
    );
    assert_eq!(
        joined.await.unwrap(),
        Ok(Some(anna())),
        "the caller that joined after Y's invalidation returned"
    );
}
