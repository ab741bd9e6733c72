//! The two-tier cache on a real Redis Cluster (three primaries, three replicas, started here,
//! or `REDIS_CLUSTER_NODES`), in one run: an L1 hit, an L2 hit (two round trips: the entry,
//! then its tags' versions), and a raw `GET` of the same bytes plus decode through the same
//! kind of cluster connection; invalidating 1 and 10 tags.
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
    let instances = two_tier::instances(&rt, backend);
    let raw = rt.block_on(async {
        redis::cluster::ClusterClient::new(cluster.urls())
            .unwrap()
            .get_async_connection()
            .await
            .unwrap()
    });
    let pair = (&instances.0, &instances.1);
    two_tier::hits_and_invalidations(c, &rt, "cluster", &[], pair, raw);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = cluster_benches
}
criterion_main!(benches);
