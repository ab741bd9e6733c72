//! What the Redis benchmarks share: the cached method, and the hits and invalidations they
//! measure against a raw `GET` + decode of the same bytes on the same kind of connection.

use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use cache_runtime::backend::RedisBackend;
use cache_runtime::Cache;
use criterion::Criterion;
use redis::aio::ConnectionLike;
use redis::AsyncCommands;

use crate::customer::{customer, Customer};

#[derive(Clone)]
pub struct Repo {
    pub cache: Cache,
}

impl Repo {
    #[cache_runtime::cached(key = "customer.{id}", ttl = 600, tags = ["customer", "customer.{id}"], swr = 60)]
    pub async fn find_by_id(&self, id: &str) -> Result<Customer, Infallible> {
        Ok(customer(id))
    }
}

/// A runtime of one worker, as an application instance under a light load.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Two instances over `backend()`, warmed with customer 42: two tiers (once its feed is
/// connected), and the shared tier only.
pub fn instances(rt: &tokio::runtime::Runtime, backend: impl Fn() -> RedisBackend) -> (Repo, Repo) {
    rt.block_on(async {
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
        (two_tier, l2_only)
    })
}

/// `{prefix}_l2_throughput`: each iteration is 32 concurrent callers of `repo`, each an L2 hit
/// of its own key (warmed here), so criterion reports L2 hits per second of one instance.
pub fn l2_throughput(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    prefix: &str,
    callers: &[(&str, &Repo)],
) {
    const CALLERS: usize = 32;
    let ids: Vec<String> = (0..CALLERS).map(|i| format!("t{i}")).collect();
    let mut group = c.benchmark_group(format!("{prefix}_l2_throughput"));
    group.throughput(criterion::Throughput::Elements(CALLERS as u64));
    for (name, repo) in callers {
        rt.block_on(async {
            for id in &ids {
                repo.find_by_id(id).await.unwrap();
            }
        });
        group.bench_function(format!("{name}_32_callers"), |b| {
            b.to_async(rt).iter(|| async {
                let calls = ids.iter().map(|id| repo.find_by_id(id));
                black_box(futures_util::future::join_all(calls).await)
            })
        });
    }
    group.finish();
}

/// `{prefix}_hit`: `extra` hits (named), an L1 hit, an L2 hit, and a raw `GET` + decode of the
/// value's bytes through `raw`; `{prefix}_invalidate`: 1 and 10 tags.
pub fn hits_and_invalidations<C>(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    prefix: &str,
    extra: &[(&str, &Repo)],
    (two_tier, l2_only): (&Repo, &Repo),
    mut raw: C,
) where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
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

    let mut group = c.benchmark_group(format!("{prefix}_hit"));
    let mut hits = extra.to_vec();
    hits.extend([("l1_hit", two_tier), ("l2_hit", l2_only)]);
    for (name, repo) in hits {
        group.bench_function(name, |b| {
            b.to_async(rt)
                .iter(|| async { black_box(repo.find_by_id("42").await.unwrap()) })
        });
    }
    group.bench_function("raw_get_decode", |b| {
        b.to_async(rt).iter(|| {
            let mut conn = raw.clone();
            async move {
                let bytes: Vec<u8> = conn.get("bench:raw:customer.42").await.unwrap();
                black_box(rmp_serde::from_slice::<Customer>(&bytes).unwrap())
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group(format!("{prefix}_invalidate"));
    let one = ["customer.7".to_string()];
    let ten: Vec<String> = (0..10).map(|i| format!("customer.{i}")).collect();
    group.bench_function("1_tag", |b| {
        b.to_async(rt)
            .iter(|| async { two_tier.cache.invalidate_tags(&one).await.unwrap() })
    });
    group.bench_function("10_tags", |b| {
        b.to_async(rt)
            .iter(|| async { two_tier.cache.invalidate_tags(&ten).await.unwrap() })
    });
    group.finish();
}
