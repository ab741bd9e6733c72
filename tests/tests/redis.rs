//! The Redis backend and the two-tier cache, against a real Redis: instances share entries, an
//! L1 hit makes no network call, an L2 hit is one round trip (counted by Redis), invalidations
//! cross instances, garbage is a miss, entries and tag versions expire, `clear` keeps to its
//! namespace, instances missing the same key load it once.
//!
//! Each of those bodies runs twice (`on_both_deployments!`): `one_server::<test>` against
//! one `redis-server`, and `cluster::<test>` against a Redis Cluster (three primaries and three
//! replicas), where the namespace's tag versions live on one primary and entries spread over
//! all of them ([`SharedRedis`] hides the difference: keys and commands are summed over every
//! primary). What differs is said where it does: an L2 hit of an instance without an
//! in-process tier is two scripts on a cluster (the entry's node, then the tags' node).
//!
//! On one server only: Redis stopped, restarted or paused mid-run, a dead Redis opening the
//! circuit (a cluster's failing, frozen and resharded nodes are `cluster.rs`'s), and a unit
//! test of the codec.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use cache_runtime::backend::RedisBackend;
use cache_runtime::{cached, Cache};
use support::redis_server::{namespace, RedisServer};
use support::repo::CustomerRepository;
use support::shared_redis::SharedRedis;
use support::{ann, bob, until, Customer, Store};

/// Instantiates each `name(access)` (an `async fn name(redis: &SharedRedis)`) as
/// `one_server::name` and `cluster::name`: on a deployment other tests may use too (`Shared`:
/// `REDIS_URL` or `REDIS_CLUSTER_NODES` when set), or on one of its own (`Own`: the test counts
/// every command, or kills every subscription).
macro_rules! on_both_deployments {
    ($($name:ident($access:ident)),* $(,)?) => {
        mod one_server {
            use super::support::shared_redis::{Access, SharedRedis};
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&SharedRedis::server(Access::$access)).await
                }
            )*
        }

        mod cluster {
            use super::support::shared_redis::{Access, SharedRedis};
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&SharedRedis::cluster(Access::$access)).await
                }
            )*
        }
    };
}

on_both_deployments! {
    instances_share_entries_and_l1_hits_stay_in_process(Shared),
    an_l2_hit_is_one_round_trip(Own),
    invalidating_k_tags_is_one_round_trip_and_reaches_other_instances(Own),
    garbage_under_a_key_is_a_miss_and_is_overwritten(Shared),
    a_value_written_for_another_type_is_a_miss(Shared),
    clear_drops_only_this_namespace_and_entries_expire_in_redis(Shared),
    over_long_keys_are_hashed(Shared),
    instances_missing_the_same_key_load_it_once(Shared),
    a_dead_lock_holder_does_not_block_the_others(Shared),
    a_broken_subscription_flushes_l1_instead_of_serving_missed_invalidations(Own),
    a_result_tag_invalidated_elsewhere_during_a_load_keeps_the_value_out_of_redis(Shared),
    builds_with_different_value_versions_keep_their_own_entries(Shared),
    a_transaction_scope_reaches_the_shared_tier_when_it_ends(Shared),
    a_ttl_from_the_result_is_the_entrys_lifetime_in_redis(Shared),
    a_half_missed_batch_reads_redis_once_and_writes_it_once(Shared),
}

/// An application instance: its own L1, the shared Redis as L2.
async fn instance(redis: &SharedRedis, ns: &str, store: &Store) -> CustomerRepository {
    CustomerRepository::two_tier(store, redis.backend(ns)).await
}

/// An instance whose feed sends its heartbeat when it connects, not during a count: on one
/// server a `PUBLISH`; on a cluster a script on the tags' node, whose reply anchors the feed
/// (waited for, so that it has run, and so that L2 hits trust the feed).
async fn quiet_instance(redis: &SharedRedis, ns: &str, store: &Store) -> CustomerRepository {
    let backend = redis
        .builder(ns)
        .heartbeat(Duration::from_secs(600))
        .build()
        .unwrap();
    let repo = CustomerRepository::two_tier(store, backend.clone()).await;
    if redis.is_cluster() {
        until(|| backend.feed_vouches_for_versions()).await;
    }
    repo
}

/// An instance with no in-process tier (and so no feed): what it reads is what Redis says.
fn l2_only(redis: &SharedRedis, ns: &str, store: &Store) -> CustomerRepository {
    let cache = Cache::builder()
        .backend(redis.backend(ns))
        .in_process_tier(false)
        .build();
    CustomerRepository::with_cache(store.clone(), cache)
}

/// The commands other than `allowed` (what our scripts run inside, which `commandstats`
/// counts too), the test's own and the deployment's bookkeeping.
fn other_commands(
    redis: &SharedRedis,
    stats: &BTreeMap<String, u64>,
    allowed: &[&str],
) -> Vec<String> {
    stats
        .keys()
        .filter(|name| !allowed.contains(&name.as_str()) && !redis.is_bookkeeping(name))
        .cloned()
        .collect()
}

/// What the get script runs inside its one round trip (on a cluster, the entry's script and
/// the versions' script).
const GET_SCRIPT: &[&str] = &["evalsha", "hmget", "get", "publish"];

/// Calls `read` until it returns `want`, failing if it does not within 10 s: for what follows
/// an event an instance applies in the background (its feed's task counts the event, then
/// applies it).
async fn eventually<T, F>(mut read: impl FnMut() -> F, want: T)
where
    T: PartialEq + std::fmt::Debug,
    F: std::future::Future<Output = T>,
{
    for _ in 0..10_000 {
        if read().await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(read().await, want, "not within 10 s");
}

fn anna() -> Customer {
    Customer {
        name: "Anna".into(),
        ..ann()
    }
}

async fn instances_share_entries_and_l1_hits_stay_in_process(redis: &SharedRedis) {
    let ns = namespace("share");
    let store = Store::with(&[ann()]);
    let a = quiet_instance(redis, &ns, &store).await;
    let b = quiet_instance(redis, &ns, &store).await;

    assert_eq!(a.find_by_id("1").await, Ok(Some(ann())));
    let stored = redis.keys(&format!("{ns}:e:*"));
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].ends_with(":customer.1"));

    redis.reset_stats();
    for _ in 0..10 {
        assert_eq!(a.find_by_id("1").await, Ok(Some(ann())));
    }
    let stats = redis.commandstats();
    assert!(
        other_commands(redis, &stats, &[]).is_empty(),
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

async fn an_l2_hit_is_one_round_trip(redis: &SharedRedis) {
    let ns = namespace("round-trip");
    let customers: Vec<Customer> = (0..20)
        .map(|i| Customer::new(&i.to_string(), "n", &format!("{i}@x")))
        .collect();
    let store = Store::with(&customers);
    let writer = quiet_instance(redis, &ns, &store).await;
    for c in &customers {
        writer.find_by_id(&c.id).await.unwrap();
    }
    // A two-tier instance: on a cluster, its feed vouches for the versions the entries carry
    // (checked since it was anchored, and not invalidated), so the entry's node answers alone.
    let reader = quiet_instance(redis, &ns, &store).await;
    redis.reset_stats();
    for c in &customers {
        assert_eq!(reader.find_by_id(&c.id).await, Ok(Some(c.clone())));
    }
    let stats = redis.commandstats();
    assert_eq!(
        stats.get("evalsha"),
        Some(&20),
        "one round trip per L2 hit: {stats:?}"
    );
    assert!(
        other_commands(redis, &stats, GET_SCRIPT).is_empty(),
        "nothing else was sent: {stats:?}"
    );
    assert_eq!(store.loads(), 20);

    // Without an in-process tier, nothing vouches for the versions: on a cluster, a hit asks
    // the entry's node, then the tags' node. (A first pass loads the scripts everywhere.)
    let l2_only = l2_only(redis, &ns, &store);
    for c in &customers {
        assert_eq!(l2_only.find_by_id(&c.id).await, Ok(Some(c.clone())));
    }
    redis.reset_stats();
    for c in &customers {
        assert_eq!(l2_only.find_by_id(&c.id).await, Ok(Some(c.clone())));
    }
    let stats = redis.commandstats();
    assert_eq!(
        stats.get("evalsha"),
        Some(&(20 * redis.l2_only_hit_round_trips())),
        "{} script(s) per L2 hit without a feed: {stats:?}",
        redis.l2_only_hit_round_trips()
    );
    assert!(
        other_commands(redis, &stats, GET_SCRIPT).is_empty(),
        "nothing else was sent: {stats:?}"
    );
    assert_eq!(store.loads(), 20);
}

async fn invalidating_k_tags_is_one_round_trip_and_reaches_other_instances(redis: &SharedRedis) {
    let ns = namespace("crossing");
    let store = Store::with(&[ann(), bob()]);
    let a = quiet_instance(redis, &ns, &store).await;
    let b = quiet_instance(redis, &ns, &store).await;
    let c = l2_only(redis, &ns, &store);
    b.find_by_id("1").await.unwrap();
    b.find_by_id("2").await.unwrap();
    b.find_by_email("ann@example.com").await.unwrap();
    assert_eq!(store.loads(), 3);
    assert_eq!(a.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(c.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(store.loads(), 3, "A and C read B's entry");

    let events = b.cache.feed_events();
    a.cache
        .invalidate_tags(["warm.up.the.script"])
        .await
        .unwrap();
    until(|| b.cache.feed_events() > events).await;
    let events = b.cache.feed_events();
    redis.reset_stats();
    let anna = Customer {
        email: "anna@example.com".into(),
        ..anna()
    };
    a.save(&anna).await.unwrap(); // two tags
    let stats = redis.commandstats();
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
            redis,
            &stats,
            &["evalsha", "hmget", "hincrby", "exists", "set", "publish"]
        )
        .is_empty(),
        "{stats:?}"
    );

    // The shared entry is outdated at once (C reads Redis); A's own L1 too.
    assert_eq!(c.find_by_id("1").await, Ok(Some(anna.clone())));
    assert_eq!(a.find_by_id("1").await, Ok(Some(anna.clone())));
    // B's L1 drops customer 1 (and the e-mail lookup tagged with it) when the feed tells it
    // (on a cluster, the message crosses the cluster bus), and keeps customer 2.
    until(|| b.cache.feed_events() > events).await;
    eventually(|| b.find_by_id("1"), Ok(Some(anna.clone()))).await;
    assert_eq!(b.find_by_email("ann@example.com").await, Ok(None));
    let loads = store.loads();
    assert_eq!(b.find_by_id("2").await, Ok(Some(bob())));
    assert_eq!(store.loads(), loads, "customer 2 is still in B's L1");
}

async fn garbage_under_a_key_is_a_miss_and_is_overwritten(redis: &SharedRedis) {
    let ns = namespace("garbage");
    let store = Store::with(&[ann()]);
    let a = instance(redis, &ns, &store).await;
    a.find_by_id("1").await.unwrap();
    let key = redis.keys(&format!("{ns}:e:*")).pop().unwrap();
    let _: () = redis.query_on_key_node(
        &key,
        redis::cmd("HSET")
            .arg(&key)
            .arg("v")
            .arg(b"\x00\xffnot an envelope".as_slice()),
    );

    let b = instance(redis, &ns, &store).await;
    assert_eq!(b.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(store.loads(), 2, "the garbage was a miss");
    let stats = b.cache.stats();
    assert_eq!(
        stats.methods.iter().map(|m| m.backend_errors).sum::<u64>(),
        1
    );

    let c = instance(redis, &ns, &store).await;
    assert_eq!(c.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(store.loads(), 2, "B overwrote it with a readable entry");

    // A value of another Redis type under the key (a string, not a hash): a miss too, counted,
    // and replaced by an entry.
    let _: () = redis.query_on_key_node(&key, redis::cmd("SET").arg(&key).arg("not an entry"));
    let d = l2_only(redis, &ns, &store);
    assert_eq!(d.find_by_id("1").await, Ok(Some(ann())), "a miss, loaded");
    assert_eq!(store.loads(), 3);
    let row = support::row(&d.cache.stats(), "find_by_id").clone();
    assert_eq!(row.backend_errors, 1, "counted");
    assert_eq!(
        d.find_by_id("1").await,
        Ok(Some(ann())),
        "overwritten: a hit"
    );
    assert_eq!(store.loads(), 3);
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

async fn a_value_written_for_another_type_is_a_miss(redis: &SharedRedis) {
    let ns = namespace("versions");
    let old = Versions {
        cache: Cache::builder().backend(redis.backend(&ns)).build(),
    };
    // A load under way when the feed connects is not stored (events may have been missed).
    until(|| old.cache.feed_connected()).await;
    old.v1("1").await;
    let new = Versions {
        cache: Cache::builder().backend(redis.backend(&ns)).build(),
    };
    until(|| new.cache.feed_connected()).await;
    assert_eq!(new.v2("1").await.tier, 2);
    let stats = new.cache.stats();
    assert_eq!(stats.methods[0].misses, 1);
    assert_eq!(stats.methods[0].backend_errors, 1, "logged and counted");
}

/// Two builds of one application during a rolling deploy: build 2 changed the value type of
/// `find` (a field added), and says so with `version = 2`; build 1 predates versions, or
/// carries `version = 1`. The `plain_*` methods are the same pair without versions.
struct Build {
    cache: Cache,
    loads: std::sync::atomic::AtomicU64,
}

impl Build {
    fn new(redis: &SharedRedis, ns: &str) -> Build {
        Build {
            cache: Cache::builder()
                .backend(redis.backend(ns))
                .in_process_tier(false) // every read goes to the shared backend
                .build(),
            loads: Default::default(),
        }
    }

    fn loaded(&self) -> Customer {
        self.loads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Customer::new("1", "Ann", "ann@example.com")
    }

    fn loaded_v2(&self) -> CustomerV2 {
        let c = self.loaded();
        CustomerV2 {
            id: c.id,
            name: c.name,
            email: c.email,
            tier: 2,
        }
    }

    fn loads(&self) -> u64 {
        self.loads.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn hit_ratio(&self, method: &str) -> f64 {
        let stats = self.cache.stats();
        let row = stats.methods.iter().find(|m| m.method == method).unwrap();
        row.hits as f64 / (row.hits + row.misses) as f64
    }

    #[cached(key = "customer.{id}", ttl = 600, tags = ["customer.{id}"], name = "find", version = 1)]
    async fn find_v1(&self, id: &str) -> Customer {
        let _ = id;
        self.loaded()
    }

    #[cached(key = "customer.{id}", ttl = 600, tags = ["customer.{id}"], name = "find", version = 2)]
    async fn find_v2(&self, id: &str) -> CustomerV2 {
        let _ = id;
        self.loaded_v2()
    }

    #[cached(key = "customer.{id}", ttl = 600, tags = ["customer.{id}"], name = "plain")]
    async fn plain_v1(&self, id: &str) -> Customer {
        let _ = id;
        self.loaded()
    }

    #[cached(key = "customer.{id}", ttl = 600, tags = ["customer.{id}"], name = "plain")]
    async fn plain_v2(&self, id: &str) -> CustomerV2 {
        let _ = id;
        self.loaded_v2()
    }
}

async fn builds_with_different_value_versions_keep_their_own_entries(redis: &SharedRedis) {
    let ns = namespace("rolling");
    let (one, two) = (Build::new(redis, &ns), Build::new(redis, &ns));
    for _ in 0..50 {
        assert_eq!(one.find_v1("1").await.name, "Ann");
        assert_eq!(two.find_v2("1").await.tier, 2);
    }
    assert_eq!((one.loads(), two.loads()), (1, 1), "each loaded once");
    assert!(one.hit_ratio("find") >= 0.9 && two.hit_ratio("find") >= 0.9);
    // Both versions' entries are in the shared backend, apart.
    assert_eq!(redis.keys(&format!("{ns}:e:*customer.1")).len(), 2);

    // A save on either build reaches the entries of both.
    two.cache
        .invalidate_tags(&["customer.1".to_string()])
        .await
        .unwrap();
    one.find_v1("1").await;
    two.find_v2("1").await;
    assert_eq!((one.loads(), two.loads()), (2, 2), "both reloaded");

    // Without versions, each reads the other's entry as unreadable and overwrites it.
    let (one, two) = (Build::new(redis, &ns), Build::new(redis, &ns));
    for _ in 0..50 {
        one.plain_v1("1").await;
        two.plain_v2("1").await;
    }
    assert!(
        one.hit_ratio("plain") < 0.1 && two.hit_ratio("plain") < 0.1,
        "without versions the builds ping-pong: {} and {}",
        one.hit_ratio("plain"),
        two.hit_ratio("plain")
    );
}

async fn a_transaction_scope_reaches_the_shared_tier_when_it_ends(redis: &SharedRedis) {
    let ns = namespace("transaction");
    let store = Store::with(&[ann()]);
    let writer = instance(redis, &ns, &store).await;
    let reader = CustomerRepository::with_cache(
        store.clone(),
        Cache::builder()
            .backend(redis.backend(&ns))
            .in_process_tier(false) // reads what the shared tier says
            .build(),
    );
    writer.find_by_id("1").await.unwrap();
    assert_eq!(reader.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(store.loads(), 1);
    let anna = Customer {
        name: "Anna".into(),
        ..ann()
    };
    writer
        .cache
        .transaction(async {
            writer.save(&anna).await.unwrap(); // held
            assert_eq!(
                reader.find_by_id("1").await,
                Ok(Some(ann())),
                "held: the shared tier has not heard of it"
            );
        })
        .await;
    assert_eq!(
        reader.find_by_id("1").await,
        Ok(Some(anna)),
        "applied in the shared tier when the scope ended"
    );
    assert_eq!(store.loads(), 2);
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

async fn clear_drops_only_this_namespace_and_entries_expire_in_redis(redis: &SharedRedis) {
    let (ns1, ns2) = (namespace("clear-1"), namespace("clear-2"));
    let customers: Vec<Customer> = [ann(), bob()]
        .into_iter()
        .chain((3..=20).map(|i| Customer::new(&i.to_string(), "n", &format!("{i}@x"))))
        .collect();
    let store = Store::with(&customers);
    let one = instance(redis, &ns1, &store).await;
    let two = instance(redis, &ns2, &store).await;
    for c in &customers {
        one.find_by_id(&c.id).await.unwrap();
    }
    two.find_by_id("1").await.unwrap();
    two.find_by_id("2").await.unwrap();
    assert_eq!(redis.keys(&format!("{ns1}:e:*")).len(), 20);
    // On a cluster, the entries spread over the primaries: the clear must reach each.
    let holders = redis.holders(&format!("{ns1}:e:*"));
    assert_eq!(holders.len() > 1, redis.is_cluster(), "{holders:?}");
    let entry = redis.keys(&format!("{ns1}:e:*")).pop().unwrap();
    let ttl: i64 = redis.query_on_key_node(&entry, redis::cmd("PTTL").arg(&entry));
    assert!(
        ttl > 600_000 && ttl <= 661_000 + 1_000,
        "entry TTL covers ttl + swr: {ttl}"
    );
    let tag = redis.tag_key(&ns1, "customer.1");
    let tag_ttl: i64 = redis.query_on_key_node(&tag, redis::cmd("PTTL").arg(&tag));
    assert!(tag_ttl > 0, "tag versions expire too: {tag_ttl}");

    one.cache.clear().await.unwrap();
    assert!(redis.keys(&format!("{ns1}:e:*")).is_empty());
    assert_eq!(redis.keys(&format!("{ns2}:e:*")).len(), 2);
    let loads = store.loads();
    assert_eq!(one.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(store.loads(), loads + 1, "loaded again after the clear");
    // The other namespace's entries still serve, from Redis.
    let other = l2_only(redis, &ns2, &store);
    assert_eq!(other.find_by_id("2").await, Ok(Some(bob())));
    assert_eq!(store.loads(), loads + 1);
}

struct Lookups {
    cache: Cache,
}

impl Lookups {
    /// "Nobody" for 30 s, somebody for 10 minutes.
    #[cached(key = "who.{id}", ttl = if result.is_none() { 30 } else { 600 })]
    async fn who(&self, id: u32) -> Option<String> {
        (id == 1).then(|| "ann".to_owned())
    }
}

async fn a_ttl_from_the_result_is_the_entrys_lifetime_in_redis(redis: &SharedRedis) {
    let ns = namespace("computed-ttl");
    let lookups = Lookups {
        cache: Cache::builder()
            .backend(redis.backend(&ns))
            .in_process_tier(false)
            .build(),
    };
    assert_eq!(lookups.who(1).await, Some("ann".into()));
    assert_eq!(lookups.who(2).await, None);
    let pttl = |id: &str| -> i64 {
        let keys = redis.keys(&format!("{ns}:e:*who.{id}"));
        assert_eq!(keys.len(), 1, "{keys:?}");
        redis.query_on_key_node(&keys[0], redis::cmd("PTTL").arg(&keys[0]))
    };
    // Redis keeps an entry about a second past its stale window.
    let (found, nobody) = (pttl("1"), pttl("2"));
    assert!(
        (590_000..=602_000).contains(&found),
        "found: 600 s in Redis, {found} ms"
    );
    assert!(
        (20_000..=32_000).contains(&nobody),
        "nobody: 30 s in Redis, {nobody} ms"
    );
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

async fn over_long_keys_are_hashed(redis: &SharedRedis) {
    let ns = namespace("long");
    let long = Long {
        cache: Cache::builder().backend(redis.backend(&ns)).build(),
    };
    until(|| long.cache.feed_connected()).await;
    let query = "x".repeat(5_000);
    long.search(&query).await;
    let stored = redis.keys(&format!("{ns}:e:*"));
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0].contains('#') && stored[0].len() < 150,
        "{}",
        stored[0]
    );
}

#[derive(Clone)]
struct Locked {
    store: Store,
    cache: Cache,
}

impl Locked {
    /// A lock that expires soon after its holder dies.
    #[cached(key = "customer.{id}", ttl = 600, lock = "500ms")]
    async fn find(&self, id: &str) -> Result<Option<Customer>, support::StoreError> {
        self.store.get(id).await
    }

    /// A lock that outlasts a load held at the gate for a while, on a loaded machine too (a
    /// waiter gives up after twice the lock's time, and loads).
    #[cached(key = "customer.{id}", ttl = 600, lock = "2s")]
    async fn find_patiently(&self, id: &str) -> Result<Option<Customer>, support::StoreError> {
        self.store.get(id).await
    }

    /// Runs `find` (or, `patiently`, `find_patiently`) in a task.
    fn spawn_find(
        &self,
        id: &'static str,
        patiently: bool,
    ) -> tokio::task::JoinHandle<Result<Option<Customer>, support::StoreError>> {
        let this = self.clone();
        tokio::spawn(async move {
            if patiently {
                this.find_patiently(id).await
            } else {
                this.find(id).await
            }
        })
    }

    /// Two instances over `ns`, each following the feed, and their store.
    async fn pair(redis: &SharedRedis, ns: &str) -> (Locked, Locked, Store) {
        let store = Store::with(&[ann()]);
        let a = locked(redis, ns, &store).await;
        let b = locked(redis, ns, &store).await;
        (a, b, store)
    }
}

async fn locked(redis: &SharedRedis, ns: &str, store: &Store) -> Locked {
    let locked = Locked {
        store: store.clone(),
        cache: Cache::builder().backend(redis.backend(ns)).build(),
    };
    until(|| locked.cache.feed_connected()).await;
    locked
}

async fn instances_missing_the_same_key_load_it_once(redis: &SharedRedis) {
    let ns = namespace("lock");
    let (a, b, store) = Locked::pair(redis, &ns).await;
    let gate = store.hold();
    let first = a.spawn_find("1", true);
    support::reached(&gate, 1).await; // A holds the lock and is loading
    let second = b.spawn_find("1", true);
    // B waits on the lock instead of loading: no second load reaches the gate.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(gate.reached.available_permits(), 0, "B did not load");
    gate.release.add_permits(1);
    assert_eq!(first.await.unwrap(), Ok(Some(ann())));
    assert_eq!(second.await.unwrap(), Ok(Some(ann())));
    assert_eq!(store.loads(), 1);
}

async fn a_dead_lock_holder_does_not_block_the_others(redis: &SharedRedis) {
    let ns = namespace("dead-lock");
    let (a, b, store) = Locked::pair(redis, &ns).await;
    let gate = store.hold();
    let holder = a.spawn_find("1", false);
    support::reached(&gate, 1).await;
    holder.abort(); // dies holding the lock
    let _ = holder.await;
    let waiter = b.spawn_find("1", false);
    support::reached(&gate, 1).await; // once the lock expired, B loads itself
    gate.release.add_permits(1);
    assert_eq!(waiter.await.unwrap(), Ok(Some(ann())));
    assert_eq!(store.loads(), 2);
}

async fn a_broken_subscription_flushes_l1_instead_of_serving_missed_invalidations(
    redis: &SharedRedis,
) {
    let ns = namespace("pubsub");
    let store = Store::with(&[ann()]);
    let a = instance(redis, &ns, &store).await;
    let b = instance(redis, &ns, &store).await;
    b.find_by_id("1").await.unwrap();
    // Kill every subscription; the save's message may be published while B is not listening.
    let events = b.cache.feed_events();
    let killed = redis.kill_subscriptions();
    assert!(killed >= 2, "A's and B's subscriptions: {killed}");
    a.save(&anna()).await.unwrap();
    // B heard its subscription break (its L1 bypassed meanwhile), then reconnected and
    // flushed its L1: whether it heard the save or not, it does not serve Ann.
    until(|| b.cache.feed_events() >= events + 2 && b.cache.feed_connected()).await;
    assert_eq!(b.find_by_id("1").await, Ok(Some(anna())));
    until(|| b.cache.feed_connected()).await;
}

async fn a_result_tag_invalidated_elsewhere_during_a_load_keeps_the_value_out_of_redis(
    redis: &SharedRedis,
) {
    let ns = namespace("watermark");
    let store = Store::with(&[ann()]);
    // No in-process tier, no feed: only Redis's versions can tell.
    let (reader, writer, later) = (
        l2_only(redis, &ns, &store),
        l2_only(redis, &ns, &store),
        l2_only(redis, &ns, &store),
    );
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

// On one server only: these stop, restart, pause or do without the one Redis (a cluster's
// failing nodes are `cluster.rs`'s).

fn server_backend(server: &RedisServer, ns: &str) -> RedisBackend {
    RedisBackend::builder(&server.url)
        .namespace(ns)
        .build()
        .expect("a valid URL")
}

/// An application instance on one server.
async fn server_instance(server: &RedisServer, ns: &str, store: &Store) -> CustomerRepository {
    CustomerRepository::two_tier(store, server_backend(server, ns)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_calls_succeed_and_no_stale_value_after_restart() {
    let mut server = RedisServer::start();
    let ns = namespace("restart");
    let store = Store::with(&[ann()]);
    let a = server_instance(&server, &ns, &store).await;
    let b = server_instance(&server, &ns, &store).await;
    a.find_by_id("1").await.unwrap();
    b.find_by_id("1").await.unwrap();

    server.stop();
    until(|| !b.cache.feed_connected()).await;
    // Calls go to the body and succeed; B no longer trusts its L1.
    assert_eq!(b.find_by_id("1").await, Ok(Some(ann())));
    let anna = anna();
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

#[derive(Clone)]
struct Batches {
    store: Store,
    cache: Cache,
}

impl Batches {
    #[cached(key = "customer.{id}", ttl = 600, tags = ["customer", "customer.{id}"])]
    async fn find_by_id(&self, id: &str) -> Result<Option<Customer>, support::StoreError> {
        self.store.get(id).await
    }

    #[cached(
        key = "customer.{id}",
        ttl = 600,
        tags = ["customer", "customer.{id}"],
        batch = id in ids,
        shares = find_by_id
    )]
    async fn find_by_ids(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Customer>, support::StoreError> {
        self.store.get_many(ids).await
    }
}

/// Two instances: the first loads 50 of 100 ids, the second asks for all 100. Its in-process
/// misses go to Redis in one `get_many` (one pipeline on a single server; concurrent reads on
/// a cluster), the 50 found there are served, and only the other 50 reach its body, whose
/// values are written in one `put_many`.
async fn a_half_missed_batch_reads_redis_once_and_writes_it_once(redis: &SharedRedis) {
    use std::sync::atomic::Ordering::SeqCst;
    use support::recording::Counted;
    let ns = namespace("batch");
    let customers: Vec<Customer> = (0..100)
        .map(|i| {
            Customer::new(
                &i.to_string(),
                &format!("c{i}"),
                &format!("c{i}@example.com"),
            )
        })
        .collect();
    let store = Store::with(&customers);
    let ids: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let one = Batches {
        store: store.clone(),
        cache: Cache::builder().backend(redis.backend(&ns)).build(),
    };
    let backend = Counted::new(redis.backend(&ns));
    let calls = backend.calls.clone();
    let two = Batches {
        store: store.clone(),
        cache: Cache::builder().backend(backend).build(),
    };
    until(|| one.cache.feed_connected() && two.cache.feed_connected()).await;
    assert_eq!(one.find_by_ids(&ids[..50]).await.unwrap().len(), 50);
    assert_eq!(store.loads(), 1);

    let all = two.find_by_ids(&ids).await.unwrap();
    assert_eq!(all.len(), 100);
    assert_eq!(all["7"], customers[7]);
    assert_eq!(all["77"], customers[77]);
    assert_eq!(store.loads(), 2, "the second body loaded the other 50");
    assert_eq!(
        calls.get_batches.load(SeqCst),
        1,
        "one read of Redis for the batch"
    );
    assert_eq!(calls.gets.load(SeqCst), 0);
    assert_eq!(
        calls.put_batches.load(SeqCst),
        1,
        "one write for the 50 loaded"
    );
    assert_eq!(calls.puts.load(SeqCst), 0);
    assert_eq!(
        calls.tag_reads.load(SeqCst),
        1,
        "one stamp for the 50 loaded"
    );
    assert_eq!(redis.keys(&format!("{ns}:e:*customer.*")).len(), 100);
    // The first instance reads the second one's writes from Redis.
    assert_eq!(
        one.find_by_id("88").await.unwrap(),
        Some(customers[88].clone())
    );
    assert_eq!(store.loads(), 2);

    // An instance without an in-process tier (no feed to vouch for versions) reads every
    // entry's tag versions from Redis: the one invalidated since is a miss, the others hits.
    let renamed = Customer::new("3", "c3 renamed", "c3@example.com");
    store.put(renamed.clone());
    one.cache.invalidate_tags(["customer.3"]).await.unwrap();
    let three = Batches {
        store: store.clone(),
        cache: Cache::builder()
            .backend(redis.backend(&ns))
            .in_process_tier(false)
            .build(),
    };
    let some = three.find_by_ids(&ids[..10]).await.unwrap();
    assert_eq!(some.len(), 10);
    assert_eq!(some["3"], renamed, "the invalidated entry was not served");
    assert_eq!(some["4"], customers[4]);
    assert_eq!(store.loads(), 3, "one body run, for 3");
    three.find_by_ids(&ids[..10]).await.unwrap();
    assert_eq!(store.loads(), 3, "3 is in Redis again");
}
