//! The Redis backend and the two-tier cache, against a real `redis-server`: instances share
//! entries, an L1 hit makes no network call, an L2 hit is one round trip (counted by Redis),
//! invalidations cross instances, Redis can die mid-run, garbage is a miss.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use cache_runtime::backend::RedisBackend;
use cache_runtime::{cached, Cache};
use support::redis_server::{namespace, RedisServer};
use support::repo::CustomerRepository;
use support::{ann, bob, until, Customer, Store};

fn backend(server: &RedisServer, ns: &str) -> RedisBackend {
    RedisBackend::builder(&server.url)
        .namespace(ns)
        .build()
        .expect("a valid URL")
}

/// An application instance: its own L1, the shared Redis as L2.
async fn instance(server: &RedisServer, ns: &str, store: &Store) -> CustomerRepository {
    CustomerRepository::two_tier(store, backend(server, ns)).await
}

fn commandstats(server: &RedisServer) -> HashMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.connection())
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

fn reset_stats(server: &RedisServer) {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut server.connection())
        .unwrap();
}

/// The commands other than `allowed` (what our scripts run inside, which `commandstats` counts
/// too) and the test's own.
fn other_commands(stats: &HashMap<String, u64>, allowed: &[&str]) -> Vec<String> {
    stats
        .keys()
        .filter(|name| {
            !allowed.contains(&name.as_str())
                && !matches!(name.as_str(), "info" | "config|resetstat")
        })
        .cloned()
        .collect()
}

/// What the get script runs inside its one round trip.
const GET_SCRIPT: &[&str] = &["evalsha", "hmget", "get", "publish"];

/// The Redis key of `tag`'s version in the namespace's current generation.
fn tag_key(server: &RedisServer, ns: &str, tag: &str) -> String {
    let generation: String = redis::cmd("HGET")
        .arg(format!("{ns}:m"))
        .arg("gen")
        .query(&mut server.connection())
        .expect("the namespace has a generation");
    format!("{ns}:t:{generation}:{tag}")
}

fn keys(server: &RedisServer, pattern: &str) -> Vec<String> {
    server.scan(pattern)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_entries_and_l1_hits_stay_in_process() {
    let server = RedisServer::shared();
    let ns = namespace("share");
    let store = Store::with(&[ann()]);
    let a = instance(&server, &ns, &store).await;
    let b = instance(&server, &ns, &store).await;

    assert_eq!(a.find_by_id("1").await, Ok(Some(ann())));
    let stored = keys(&server, &format!("{ns}:e:*"));
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].ends_with(":customer.1"));

    reset_stats(&server);
    for _ in 0..10 {
        assert_eq!(a.find_by_id("1").await, Ok(Some(ann())));
    }
    let stats = commandstats(&server);
    assert!(
        other_commands(&stats, &[]).is_empty(),
        "L1 hits make no network call: {stats:?}"
    );

    assert_eq!(
        b.find_by_id("1").await,
        Ok(Some(ann())),
        "B finds A's entry in L2"
    );
    assert_eq!(store.loads(), 1);
    let stats = b.cache.stats();
    let row = support::row(&stats, "find_by_id");
    assert_eq!((row.hits, row.l2_hits, row.misses), (1, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_l2_hit_is_one_round_trip() {
    let server = RedisServer::start();
    let ns = namespace("round-trip");
    let customers: Vec<Customer> = (0..20)
        .map(|i| Customer::new(&i.to_string(), "n", &format!("{i}@x")))
        .collect();
    let store = Store::with(&customers);
    let writer = instance(&server, &ns, &store).await;
    for c in &customers {
        writer.find_by_id(&c.id).await.unwrap();
    }
    let reader = instance(&server, &ns, &store).await;
    reset_stats(&server);
    for c in &customers {
        assert_eq!(reader.find_by_id(&c.id).await, Ok(Some(c.clone())));
    }
    let stats = commandstats(&server);
    assert_eq!(
        stats.get("evalsha"),
        Some(&20),
        "one round trip per L2 hit: {stats:?}"
    );
    assert!(
        other_commands(&stats, GET_SCRIPT).is_empty(),
        "nothing else was sent: {stats:?}"
    );
    assert_eq!(store.loads(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidating_k_tags_is_one_round_trip_and_reaches_other_instances() {
    let server = RedisServer::start();
    let ns = namespace("crossing");
    let store = Store::with(&[ann(), bob()]);
    let a = instance(&server, &ns, &store).await;
    let b = instance(&server, &ns, &store).await;
    b.find_by_id("1").await.unwrap();
    b.find_by_id("2").await.unwrap();
    b.find_by_email("ann@example.com").await.unwrap();
    assert_eq!(store.loads(), 3);

    a.cache
        .invalidate_tags(["warm.up.the.script"])
        .await
        .unwrap();
    reset_stats(&server);
    let anna = Customer {
        name: "Anna".into(),
        email: "anna@example.com".into(),
        ..ann()
    };
    a.save(&anna).await.unwrap(); // two tags
    let stats = commandstats(&server);
    assert_eq!(
        stats.get("evalsha"),
        Some(&1),
        "one round trip for both tags: {stats:?}"
    );
    assert_eq!(
        stats.get("hincrby"),
        Some(&1),
        "one sequence number for the invalidation: {stats:?}"
    );
    assert_eq!(
        stats.get("set"),
        Some(&1),
        "the tag that exists takes it as its version; the other, never stamped, stays missing: {stats:?}"
    );
    assert!(
        other_commands(
            &stats,
            &["evalsha", "hmget", "hincrby", "exists", "set", "publish"]
        )
        .is_empty(),
        "{stats:?}"
    );

    // B's L1 drops customer 1 (and the e-mail lookup tagged with it), keeps customer 2.
    let mut seen = b.find_by_id("1").await.unwrap();
    for _ in 0..2_000 {
        if seen == Some(anna.clone()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        seen = b.find_by_id("1").await.unwrap();
    }
    assert_eq!(seen, Some(anna.clone()));
    assert_eq!(b.find_by_email("ann@example.com").await, Ok(None));
    let loads = store.loads();
    assert_eq!(b.find_by_id("2").await, Ok(Some(bob())));
    assert_eq!(store.loads(), loads, "customer 2 is still in B's L1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_calls_succeed_and_no_stale_value_after_restart() {
    let mut server = RedisServer::start();
    let ns = namespace("restart");
    let store = Store::with(&[ann()]);
    let a = instance(&server, &ns, &store).await;
    let b = instance(&server, &ns, &store).await;
    a.find_by_id("1").await.unwrap();
    b.find_by_id("1").await.unwrap();

    server.stop();
    until(|| !b.cache.feed_connected()).await;
    // Calls go to the body and succeed; B no longer trusts its L1.
    assert_eq!(b.find_by_id("1").await, Ok(Some(ann())));
    let anna = Customer {
        name: "Anna".into(),
        ..ann()
    };
    assert_eq!(
        a.save(&anna).await,
        Ok(()),
        "the write succeeds; its invalidation is kept"
    );
    assert_eq!(a.find_by_id("1").await, Ok(Some(anna.clone())));
    assert_eq!(b.find_by_id("1").await, Ok(Some(anna.clone())));

    server.restart();
    until(|| a.cache.feed_connected() && b.cache.feed_connected()).await;
    for _ in 0..20 {
        assert_eq!(a.find_by_id("1").await, Ok(Some(anna.clone())));
        assert_eq!(b.find_by_id("1").await, Ok(Some(anna.clone())));
    }
    // The kept invalidation reached Redis once it was back.
    let mut conn = server.connection();
    let mut version: Option<u64> = None;
    for _ in 0..1_000 {
        // The invalidation draws the namespace's sequence (in the generation Redis's
        // restart started).
        version = redis::cmd("HGET")
            .arg(format!("{ns}:m"))
            .arg("seq")
            .query(&mut conn)
            .unwrap();
        if version.unwrap_or(0) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        version.unwrap_or(0) >= 1,
        "the refused invalidation was replayed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_under_a_key_is_a_miss_and_is_overwritten() {
    let server = RedisServer::shared();
    let ns = namespace("garbage");
    let store = Store::with(&[ann()]);
    let a = instance(&server, &ns, &store).await;
    a.find_by_id("1").await.unwrap();
    let key = keys(&server, &format!("{ns}:e:*")).pop().unwrap();
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("v")
        .arg(b"\x00\xffnot an envelope".as_slice())
        .query(&mut server.connection())
        .unwrap();

    let b = instance(&server, &ns, &store).await;
    assert_eq!(b.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(store.loads(), 2, "the garbage was a miss");
    let stats = b.cache.stats();
    assert_eq!(
        stats.methods.iter().map(|m| m.backend_errors).sum::<u64>(),
        1
    );

    let c = instance(&server, &ns, &store).await;
    assert_eq!(c.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(store.loads(), 2, "B overwrote it with a readable entry");
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct CustomerV2 {
    id: String,
    name: String,
    email: String,
    tier: u8,
}

struct Versions {
    cache: Cache,
}

impl Versions {
    #[cached(key = "customer.{id}", ttl = 60, name = "versioned")]
    async fn v1(&self, id: &str) -> Customer {
        Customer::new(id, "Ann", "ann@example.com")
    }

    #[cached(key = "customer.{id}", ttl = 60, name = "versioned")]
    async fn v2(&self, id: &str) -> CustomerV2 {
        CustomerV2 {
            id: id.into(),
            name: "Ann".into(),
            email: "ann@example.com".into(),
            tier: 2,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_written_for_another_type_is_a_miss() {
    let server = RedisServer::shared();
    let ns = namespace("versions");
    let old = Versions {
        cache: Cache::builder().backend(backend(&server, &ns)).build(),
    };
    old.v1("1").await;
    let new = Versions {
        cache: Cache::builder().backend(backend(&server, &ns)).build(),
    };
    until(|| new.cache.feed_connected()).await;
    assert_eq!(new.v2("1").await.tier, 2);
    let stats = new.cache.stats();
    assert_eq!(stats.methods[0].misses, 1);
    assert_eq!(stats.methods[0].backend_errors, 1, "logged and counted");
}

#[test]
fn an_older_struct_layout_does_not_decode_into_the_new_one() {
    use cache_runtime::codec::{Codec, MessagePack};
    let old = MessagePack.encode(&ann()).unwrap();
    let mut decoded = None;
    let result = MessagePack.decode(&old, &mut |de| {
        decoded = Some(erased_serde_deserialize_v2(de)?);
        Ok(())
    });
    assert!(
        result.is_err(),
        "a missing field is an error, hence a miss: {decoded:?}"
    );
}

fn erased_serde_deserialize_v2(
    de: &mut dyn cache_runtime::codec::ErasedDeserializer<'_>,
) -> Result<CustomerV2, cache_runtime::codec::ErasedError> {
    cache_runtime::codec::deserialize::<CustomerV2>(de)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_drops_only_this_namespace_and_entries_expire_in_redis() {
    let server = RedisServer::shared();
    let (ns1, ns2) = (namespace("clear-1"), namespace("clear-2"));
    let store = Store::with(&[ann(), bob()]);
    let one = instance(&server, &ns1, &store).await;
    let two = instance(&server, &ns2, &store).await;
    for repo in [&one, &two] {
        repo.find_by_id("1").await.unwrap();
        repo.find_by_id("2").await.unwrap();
    }
    let entry = keys(&server, &format!("{ns1}:e:*")).pop().unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&entry)
        .query(&mut server.connection())
        .unwrap();
    assert!(
        ttl > 600_000 && ttl <= 661_000 + 1_000,
        "entry TTL covers ttl + swr: {ttl}"
    );
    let tag_ttl: i64 = redis::cmd("PTTL")
        .arg(tag_key(&server, &ns1, "customer.1"))
        .query(&mut server.connection())
        .unwrap();
    assert!(tag_ttl > 0, "tag versions expire too: {tag_ttl}");

    one.cache.clear().await.unwrap();
    assert!(keys(&server, &format!("{ns1}:e:*")).is_empty());
    assert_eq!(keys(&server, &format!("{ns2}:e:*")).len(), 2);
}

struct Long {
    cache: Cache,
}

impl Long {
    #[cached(key = "search.{query}", ttl = 60)]
    async fn search(&self, query: &str) -> Vec<String> {
        vec![query.len().to_string()]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_keys_are_hashed() {
    let server = RedisServer::shared();
    let ns = namespace("long");
    let long = Long {
        cache: Cache::builder().backend(backend(&server, &ns)).build(),
    };
    let query = "x".repeat(5_000);
    long.search(&query).await;
    let stored = keys(&server, &format!("{ns}:e:*"));
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].contains('#') && stored[0].len() < 150,
        "{}",
        stored[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_redis_opens_the_circuit_and_calls_still_succeed() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let backend = RedisBackend::builder(format!("redis://127.0.0.1:{port}"))
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let cache = Cache::builder().backend(backend.clone()).build();
    let repo = CustomerRepository::with_cache(Store::with(&[ann()]), cache);
    for _ in 0..5 {
        assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    }
    assert!(backend.is_circuit_open());
    assert!(!repo.cache.feed_connected());
}

#[derive(Clone)]
struct Locked {
    store: Store,
    cache: Cache,
}

impl Locked {
    #[cached(key = "customer.{id}", ttl = 600, lock = "500ms")]
    async fn find(&self, id: &str) -> Result<Option<Customer>, support::StoreError> {
        self.store.get(id).await
    }

    /// Runs `find` in a task.
    fn spawn_find(
        &self,
        id: &'static str,
    ) -> tokio::task::JoinHandle<Result<Option<Customer>, support::StoreError>> {
        let this = self.clone();
        tokio::spawn(async move { this.find(id).await })
    }

    /// Two instances over `ns`, each following the feed, and their store.
    async fn pair(server: &RedisServer, ns: &str) -> (Locked, Locked, Store) {
        let store = Store::with(&[ann()]);
        let a = locked(server, ns, &store).await;
        let b = locked(server, ns, &store).await;
        (a, b, store)
    }
}

async fn locked(server: &RedisServer, ns: &str, store: &Store) -> Locked {
    let locked = Locked {
        store: store.clone(),
        cache: Cache::builder().backend(backend(server, ns)).build(),
    };
    until(|| locked.cache.feed_connected()).await;
    locked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_missing_the_same_key_load_it_once() {
    let server = RedisServer::shared();
    let ns = namespace("lock");
    let (a, b, store) = Locked::pair(&server, &ns).await;
    let gate = store.hold();
    let first = a.spawn_find("1");
    support::reached(&gate, 1).await; // A holds the lock and is loading
    let second = b.spawn_find("1");
    // B waits on the lock instead of loading: no second load reaches the gate.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(gate.reached.available_permits(), 0, "B did not load");
    gate.release.add_permits(1);
    assert_eq!(first.await.unwrap(), Ok(Some(ann())));
    assert_eq!(second.await.unwrap(), Ok(Some(ann())));
    assert_eq!(store.loads(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lock_holder_does_not_block_the_others() {
    let server = RedisServer::shared();
    let ns = namespace("dead-lock");
    let (a, b, store) = Locked::pair(&server, &ns).await;
    let gate = store.hold();
    let holder = a.spawn_find("1");
    support::reached(&gate, 1).await;
    holder.abort(); // dies holding the lock
    let _ = holder.await;
    let waiter = b.spawn_find("1");
    support::reached(&gate, 1).await; // once the lock expired, B loads itself
    gate.release.add_permits(1);
    assert_eq!(waiter.await.unwrap(), Ok(Some(ann())));
    assert_eq!(store.loads(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_subscription_flushes_l1_instead_of_serving_missed_invalidations() {
    let server = RedisServer::start();
    let ns = namespace("pubsub");
    let store = Store::with(&[ann()]);
    let a = instance(&server, &ns, &store).await;
    let b = instance(&server, &ns, &store).await;
    b.find_by_id("1").await.unwrap();
    // Kill every subscription; the save's message may be published while B is not listening.
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut server.connection())
        .unwrap();
    let anna = Customer {
        name: "Anna".into(),
        ..ann()
    };
    a.save(&anna).await.unwrap();
    let mut seen = b.find_by_id("1").await.unwrap();
    for _ in 0..2_000 {
        if seen == Some(anna.clone()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        seen = b.find_by_id("1").await.unwrap();
    }
    assert_eq!(seen, Some(anna));
    until(|| b.cache.feed_connected()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_tag_invalidated_elsewhere_during_a_load_keeps_the_value_out_of_redis() {
    let server = RedisServer::shared();
    let ns = namespace("watermark");
    let store = Store::with(&[ann()]);
    // No in-process tier, no feed: only Redis's versions can tell.
    let l2_only = |store: &Store| {
        CustomerRepository::with_cache(
            store.clone(),
            Cache::builder()
                .backend(backend(&server, &ns))
                .in_process_tier(false)
                .build(),
        )
    };
    let (reader, writer, later) = (l2_only(&store), l2_only(&store), l2_only(&store));
    let gate = store.hold();
    let slow = tokio::spawn({
        let reader = reader.clone();
        async move { reader.find_by_email("ann@example.com").await }
    });
    support::reached(&gate, 1).await; // the reader holds the old row
    store.open();
    writer
        .save(&Customer {
            email: "ann@new.example".into(),
            ..ann()
        })
        .await
        .unwrap();
    gate.release.add_permits(1);
    assert_eq!(
        slow.await.unwrap(),
        Ok(Some(ann())),
        "the overlapping read may return the old row"
    );
    assert_eq!(
        later.find_by_email("ann@example.com").await,
        Ok(None),
        "but Redis must not hold it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_subscription_is_noticed_by_its_heartbeat() {
    let server = RedisServer::start();
    let ns = namespace("heartbeat");
    let backend = RedisBackend::builder(&server.url)
        .namespace(&ns)
        .heartbeat(Duration::from_millis(50))
        .build()
        .unwrap();
    let cache = Cache::builder().backend(backend).build();
    until(|| cache.feed_connected()).await;
    // Redis stops answering anyone (the sockets stay open): the heartbeat does not come back.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .query(&mut server.connection())
        .unwrap();
    until(|| !cache.feed_connected()).await;
    until(|| cache.feed_connected()).await; // back, and flushed, after the pause
}
