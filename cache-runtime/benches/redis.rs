//! The two-tier cache against a real `redis-server`, in one run: an L1 hit, an L1 hit of the
//! in-process-only cache, an L2 hit, and a raw `GET` of the same bytes plus decode with the
//! same client; invalidating 1 and 10 tags.
//!
//! `cargo bench -p cache-runtime --features redis --bench redis`

#[path = "../../tests/tests/support/redis_server.rs"]
mod redis_server;

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use cache_runtime::backend::RedisBackend;
use cache_runtime::Cache;
use criterion::{criterion_group, criterion_main, Criterion};
use redis::AsyncCommands;

#[path = "support/customer.rs"]
mod customer;
use customer::{customer, Customer};

#[derive(Clone)]
pub struct Repo {
    cache: Cache,
}

impl Repo {
    #[cache_runtime::cached(key = "customer.{id}", ttl = 600, tags = ["customer", "customer.{id}"], swr = 60)]
    pub async fn find_by_id(&self, id: &str) -> Result<Customer, Infallible> {
        Ok(customer(id))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn redis_benches(c: &mut Criterion) {
    let server = redis_server::RedisServer::shared();
    let rt = runtime();
    let backend = |ns: &str| {
        RedisBackend::builder(&server.url)
            .namespace(ns)
            .build()
            .unwrap()
    };
    let (two_tier, l2_only, in_memory, mut raw) = rt.block_on(async {
        let two_tier = Repo {
            cache: Cache::builder().backend(backend("bench")).build(),
        };
        while !two_tier.cache.feed_connected() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let l2_only = Repo {
            cache: Cache::builder()
                .backend(backend("bench"))
                .in_process_tier(false)
                .build(),
        };
        let in_memory = Repo {
            cache: Cache::in_memory(100_000),
        };
        for repo in [&two_tier, &l2_only, &in_memory] {
            repo.find_by_id("42").await.unwrap();
        }
        let raw = redis::Client::open(server.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        (two_tier, l2_only, in_memory, raw)
    });
    // The same bytes the backend stores for the value, under a plain key.
    let bytes = {
        let mut out = Vec::new();
        serde::Serialize::serialize(
            &customer("42"),
            &mut rmp_serde::Serializer::new(&mut out).with_struct_map(),
        )
        .unwrap();
        out
    };
    rt.block_on(async {
        raw.set::<_, _, ()>("bench:raw:customer.42", bytes)
            .await
            .unwrap()
    });

    let mut group = c.benchmark_group("redis_hit");
    group.bench_function("in_memory_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(in_memory.find_by_id("42").await.unwrap()) })
    });
    group.bench_function("l1_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(two_tier.find_by_id("42").await.unwrap()) })
    });
    group.bench_function("l2_hit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(l2_only.find_by_id("42").await.unwrap()) })
    });
    group.bench_function("raw_get_decode", |b| {
        b.to_async(&rt).iter(|| {
            let mut conn = raw.clone();
            async move {
                let bytes: Vec<u8> = conn.get("bench:raw:customer.42").await.unwrap();
                black_box(rmp_serde::from_slice::<Customer>(&bytes).unwrap())
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("redis_invalidate");
    let one = ["customer.7".to_string()];
    let ten: Vec<String> = (0..10).map(|i| format!("customer.{i}")).collect();
    group.bench_function("1_tag", |b| {
        b.to_async(&rt)
            .iter(|| async { two_tier.cache.invalidate_tags(&one).await.unwrap() })
    });
    group.bench_function("10_tags", |b| {
        b.to_async(&rt)
            .iter(|| async { two_tier.cache.invalidate_tags(&ten).await.unwrap() })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = redis_benches
}
criterion_main!(benches);
