//! The two-tier cache on a real Redis Cluster (three primaries, three replicas, started here,
//! or `REDIS_CLUSTER_NODES`), in one run: an L1 hit, an L2 hit (two round trips: the entry,
//! then its tags' versions), and a raw `GET` of the same bytes plus decode through the same
//! kind of cluster connection; invalidating 1 and 10 tags.
//!
//! An instance whose in-process tier keeps nothing and whose feed vouches for tag versions
//! shows the L2 hit of a two-tier instance (one round trip); throughput: 32 concurrent L2 hits
//! of one instance.
//!
//! `cargo bench -p cache-runtime --features redis --bench redis_cluster`

#[path = "../../tests/tests/support/redis_server.rs"]
mod redis_server;

#[path = "../../tests/tests/support/redis_cluster.rs"]
mod redis_cluster;

#[path = "support/customer.rs"]
mod customer;
#[path = "support/two_tier.rs"]
mod two_tier;

use std::time::Duration;

use cache_runtime::backend::RedisBackend;
use cache_runtime::Cache;
use criterion::{criterion_group, criterion_main, Criterion};

fn cluster_benches(c: &mut Criterion) {
    let cluster = redis_cluster::RedisCluster::shared();
    let rt = two_tier::runtime();
    let backend = || {
        RedisBackend::cluster(cluster.urls())
            .namespace("bench")
            .build()
            .unwrap()
    };
    // An instance whose in-process tier keeps nothing and whose feed vouches for the tag
    // versions of entries stored from now on: its hits are L2 hits of one round trip.
    let trusting = rt.block_on(async {
        let vouching = backend();
        let cache = Cache::builder()
            .max_entries(0)
            .backend(vouching.clone())
            .build();
        while !vouching.feed_vouches_for_versions() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        two_tier::Repo { cache }
    });
    let instances = two_tier::instances(&rt, backend);
    let raw = rt.block_on(async {
        redis::cluster::ClusterClient::new(cluster.urls())
            .unwrap()
            .get_async_connection()
            .await
            .unwrap()
    });
    let pair = (&instances.0, &instances.1);
    let extra = [("l2_hit_trusting_feed", &trusting)];
    two_tier::hits_and_invalidations(c, &rt, "cluster", &extra, pair, raw);
    let callers = [("l2_only", &instances.1), ("trusting_feed", &trusting)];
    two_tier::l2_throughput(c, &rt, "cluster", &callers);
    // What the trusting instance's hits were: L2 hits, not in-process ones.
    let row = trusting.cache.stats();
    let row = row
        .methods
        .iter()
        .find(|m| m.method.ends_with("find_by_id"))
        .unwrap();
    eprintln!(
        "trusting instance: {} hits, of them {} L2 hits; {} misses",
        row.hits, row.l2_hits, row.misses
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = cluster_benches
}
criterion_main!(benches);
