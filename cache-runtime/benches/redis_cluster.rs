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

fn cluster_benches(c: &mut Criterion) {
    let cluster = redis_cluster::RedisCluster::shared();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let backend = || {
        RedisBackend::cluster(cluster.urls())
            .namespace("bench")
            .build()
            .unwrap()
    };
    let (two_tier, l2_only, mut raw) = rt.block_on(async {
        let two_tier = Repo {
            cache: Cache::builder().backend(backend()).build(),
        };
        while !two_tier.cache.feed_connected() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let l2_only = Repo {
            cache: Cache::builder()
                .backend(backend())
                .in_process_tier(false)
                .build(),
        };
        for repo in [&two_tier, &l2_only] {
            repo.find_by_id("42").await.unwrap();
        }
        let raw = redis::cluster::ClusterClient::new(cluster.urls())
            .unwrap()
            .get_async_connection()
            .await
            .unwrap();
        (two_tier, l2_only, raw)
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

    let mut group = c.benchmark_group("cluster_hit");
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

    let mut group = c.benchmark_group("cluster_invalidate");
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
    targets = cluster_benches
}
criterion_main!(benches);
