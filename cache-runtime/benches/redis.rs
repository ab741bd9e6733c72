//! The two-tier cache against a real `redis-server`, in one run: an L1 hit, an L1 hit of the
//! in-process-only cache, an L2 hit, and a raw `GET` of the same bytes plus decode with the
//! same client; invalidating 1 and 10 tags; a batch of 100 ids read from Redis by an
//! instance without an in-process tier, against 100 single reads.
//!
//! `cargo bench -p cache-runtime --features redis --bench redis`

#[path = "../../tests/tests/support/redis_server.rs"]
mod redis_server;

#[path = "support/batch_repo.rs"]
mod batch_repo;
#[path = "support/customer.rs"]
mod customer;
#[path = "support/two_tier.rs"]
mod two_tier;

use std::hint::black_box;
use std::sync::atomic::AtomicU64;
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
    batches(c, &rt, &server.url);
}

/// 100 ids in Redis, read by an instance without an in-process tier: one batch (one pipeline)
/// against 100 single reads; and a batch half of whose ids are not cached (fresh ids each
/// time: one pipeline to read, one body run, one stamp, one pipeline to write).
fn batches(c: &mut Criterion, rt: &tokio::runtime::Runtime, url: &str) {
    let repo = batch_repo::Repo {
        cache: Cache::builder()
            .backend(
                RedisBackend::builder(url)
                    .namespace("bench-batch")
                    .build()
                    .unwrap(),
            )
            .in_process_tier(false)
            .build(),
    };
    let ids: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    rt.block_on(repo.find_by_ids(&ids)).unwrap();
    let mut group = c.benchmark_group("redis_batch_100");
    group.bench_function("find_by_id_x100_l2_hits", |b| {
        b.to_async(rt).iter(|| async {
            for id in &ids {
                black_box(repo.find_by_id(id).await.unwrap());
            }
        })
    });
    group.bench_function("find_by_ids_l2_hits", |b| {
        b.to_async(rt)
            .iter(|| async { black_box(repo.find_by_ids(&ids).await.unwrap()) })
    });
    let next = AtomicU64::new(0);
    group.bench_function("find_by_ids_half_misses", |b| {
        b.iter_custom(|iters| rt.block_on(batch_repo::time_half_missed(&repo, &ids, &next, iters)))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = redis_benches
}
criterion_main!(benches);
