//! The two-tier cache against a real `redis-server`, in one run: an L1 hit, an L1 hit of the
//! in-process-only cache, an L2 hit, and a raw `GET` of the same bytes plus decode with the
//! same client; invalidating 1 and 10 tags.
//!
//! `cargo bench -p cache-runtime --features redis --bench redis`

#[path = "../../tests/tests/support/redis_server.rs"]
mod redis_server;

#[path = "support/customer.rs"]
mod customer;
#[path = "support/two_tier.rs"]
mod two_tier;

use std::time::Duration;

use cache_runtime::backend::RedisBackend;
use cache_runtime::Cache;
use criterion::{criterion_group, criterion_main, Criterion};
use two_tier::Repo;

fn redis_benches(c: &mut Criterion) {
    let server = redis_server::RedisServer::shared();
    let rt = two_tier::runtime();
    let backend = || {
        RedisBackend::builder(&server.url)
            .namespace("bench")
            .build()
            .unwrap()
    };
    let instances = two_tier::instances(&rt, backend);
    let (in_memory, raw) = rt.block_on(async {
        let in_memory = Repo {
            cache: Cache::in_memory(100_000),
        };
        in_memory.find_by_id("42").await.unwrap();
        let raw = redis::Client::open(server.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        (in_memory, raw)
    });
    let extra = [("in_memory_hit", &in_memory)];
    let pair = (&instances.0, &instances.1);
    two_tier::hits_and_invalidations(c, &rt, "redis", &extra, pair, raw);
    two_tier::l2_throughput(c, &rt, "redis", &[("l2_only", &instances.1)]);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = redis_benches
}
criterion_main!(benches);
