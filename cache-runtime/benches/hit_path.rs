//! The hit path of `#[cached]` against a raw `moka::future::Cache::get` (with the same
//! rendered key and the same value) and against the `cached` crate's `#[cached]` (4.1), measured in
//! the same run; the miss path; concurrent hits from two threads.
//!
//! `cargo bench -p cache-runtime`; the README records the ratios.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_runtime::Cache;
use criterion::{criterion_group, criterion_main, Criterion};

#[path = "support/cached_crate.rs"]
mod cached_crate;
#[path = "support/customer.rs"]
mod customer;
use customer::{customer, Customer};

pub struct Repo {
    cache: Cache,
}

impl Repo {
    /// The issue's `find_by_id`: two tags, stale-while-revalidate.
    #[cache_runtime::cached(key = "customer.{id}", ttl = 600, tags = ["customer", "customer.{id}"], swr = 60)]
    pub async fn find_by_id(&self, id: &str) -> Result<Customer, Infallible> {
        Ok(customer(id))
    }

    /// A value shared by `Arc`: a hit is a reference-count increment, not a deep clone.
    #[cache_runtime::cached(key = "customer.{id}", ttl = 600, name = "bench::shared")]
    pub async fn shared(&self, id: &str) -> Result<Arc<Customer>, Infallible> {
        Ok(Arc::new(customer(id)))
    }

    /// The same lookup without tags.
    #[cache_runtime::cached(key = "customer.{id}", ttl = 600, name = "bench::untagged")]
    pub async fn untagged(&self, id: &str) -> Result<Customer, Infallible> {
        Ok(customer(id))
    }
}

impl Clone for Repo {
    fn clone(&self) -> Self {
        Repo {
            cache: self.cache.clone(),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn hits(c: &mut Criterion) {
    let rt = runtime();
    let repo = Repo {
        cache: Cache::in_memory(100_000),
    };
    let raw: moka::future::Cache<String, Customer> = moka::future::Cache::new(100_000);
    rt.block_on(async {
        repo.find_by_id("42").await.unwrap();
        repo.untagged("42").await.unwrap();
        repo.shared("42").await.unwrap();
        raw.insert("customer.42".to_owned(), customer("42")).await;
        cached_crate::find("42").await.unwrap();
    });
    let id = black_box("42");

    let mut group = c.benchmark_group("hit");
    group.bench_function("raw_moka_future_get_clone", |b| {
        b.to_async(&rt).iter(|| async {
            let key = format!("customer.{id}");
            black_box(raw.get(&key).await.unwrap())
        })
    });
    group.bench_function("cached_macro_find_by_id", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(repo.find_by_id(id).await.unwrap()) })
    });
    group.bench_function("cached_macro_untagged", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(repo.untagged(id).await.unwrap()) })
    });
    group.bench_function("cached_crate", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(cached_crate::find(id).await.unwrap()) })
    });
    // Floors, to show where the time goes: moka's sync get with a ready key and an `Arc`
    // value (no rendering, no value clone), and the value clone alone.
    let sync: moka::sync::Cache<String, Arc<Customer>> = moka::sync::Cache::new(100_000);
    sync.insert("customer.42".to_owned(), Arc::new(customer("42")));
    group.bench_function("floor_moka_sync_get_arc", |b| {
        b.iter(|| black_box(sync.get(black_box("customer.42"))))
    });
    let value = customer("42");
    group.bench_function("floor_value_clone", |b| {
        b.iter(|| black_box(black_box(&value).clone()))
    });
    // The floor of any cache: a `HashMap` get with the key `format!`ed, and a clone of the
    // value, deep or of an `Arc`.
    let map: std::collections::HashMap<String, Customer> =
        [("customer.42".to_owned(), customer("42"))].into();
    group.bench_function("floor_hashmap_get_clone", |b| {
        b.iter(|| {
            let key = format!("customer.{id}");
            black_box(map.get(&key).cloned())
        })
    });
    let shared: std::collections::HashMap<String, Arc<Customer>> =
        [("customer.42".to_owned(), Arc::new(customer("42")))].into();
    group.bench_function("floor_hashmap_get_arc_clone", |b| {
        b.iter(|| {
            let key = format!("customer.{id}");
            black_box(shared.get(&key).cloned())
        })
    });
    group.bench_function("cached_macro_arc", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(repo.shared(id).await.unwrap()) })
    });
    group.finish();
}

/// A hand-written read-through miss over raw moka: a new key, looked up, then inserted.
async fn raw_miss(raw: &moka::future::Cache<String, Customer>, next: &AtomicU64) {
    let id = next.fetch_add(1, Ordering::Relaxed).to_string();
    let key = format!("customer.{id}");
    if raw.get(&key).await.is_none() {
        let value = customer(&id);
        raw.insert(key, value.clone()).await;
        black_box(value);
    }
}

fn misses(c: &mut Criterion) {
    let rt = runtime();
    let repo = Repo {
        cache: Cache::in_memory(1_000_000),
    };
    let raw: moka::future::Cache<String, Customer> = moka::future::Cache::new(1_000_000);
    let next = AtomicU64::new(0);

    let mut group = c.benchmark_group("miss");
    group.bench_function("raw_moka_future_get_insert", |b| {
        b.to_async(&rt).iter(|| raw_miss(&raw, &next))
    });
    group.bench_function("cached_macro_find_by_id", |b| {
        b.to_async(&rt).iter(|| async {
            let id = next.fetch_add(1, Ordering::Relaxed).to_string();
            black_box(repo.find_by_id(&id).await.unwrap())
        })
    });
    group.finish();
}

/// Wall time for two threads to do `iters` hits each, each thread inside one `block_on`.
fn two_threads<F, Fut>(iters: u64, make: impl Fn() -> F) -> Duration
where
    F: FnOnce(u64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let barrier = Arc::new(std::sync::Barrier::new(3));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let run = make();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let rt = runtime();
                barrier.wait();
                rt.block_on(run(iters))
            })
        })
        .collect();
    let start = Instant::now();
    barrier.wait();
    for t in threads {
        t.join().unwrap();
    }
    start.elapsed()
}

fn concurrent(c: &mut Criterion) {
    let rt = runtime();
    let repo = Repo {
        cache: Cache::in_memory(100_000),
    };
    let raw: moka::future::Cache<String, Customer> = moka::future::Cache::new(100_000);
    rt.block_on(async {
        repo.find_by_id("42").await.unwrap();
        raw.insert("customer.42".to_owned(), customer("42")).await;
        cached_crate::find("42").await.unwrap();
    });

    let mut group = c.benchmark_group("hit_2_threads");
    group.bench_function("raw_moka_future_get_clone", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                let raw = raw.clone();
                move |iters| async move {
                    for _ in 0..iters {
                        let key = format!("customer.{}", black_box("42"));
                        black_box(raw.get(&key).await.unwrap());
                    }
                }
            })
        })
    });
    group.bench_function("cached_macro_find_by_id", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                let repo = repo.clone();
                move |iters| async move {
                    for _ in 0..iters {
                        black_box(repo.find_by_id(black_box("42")).await.unwrap());
                    }
                }
            })
        })
    });
    group.bench_function("cached_crate", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                |iters| async move {
                    for _ in 0..iters {
                        black_box(cached_crate::find(black_box("42")).await.unwrap());
                    }
                }
            })
        })
    });
    group.finish();

    // Misses from two threads at once, a new key each time: what the miss path shares.
    let repo = Repo {
        cache: Cache::in_memory(10_000_000),
    };
    let raw: moka::future::Cache<String, Customer> = moka::future::Cache::new(10_000_000);
    let next = Arc::new(AtomicU64::new(0));
    let mut group = c.benchmark_group("miss_2_threads");
    group.bench_function("raw_moka_future_get_insert", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                let (raw, next) = (raw.clone(), next.clone());
                move |iters| async move {
                    for _ in 0..iters {
                        raw_miss(&raw, &next).await;
                    }
                }
            })
        })
    });
    group.bench_function("cached_macro_find_by_id", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                let (repo, next) = (repo.clone(), next.clone());
                move |iters| async move {
                    for _ in 0..iters {
                        let id = next.fetch_add(1, Ordering::Relaxed).to_string();
                        black_box(repo.find_by_id(&id).await.unwrap());
                    }
                }
            })
        })
    });
    group.finish();
}

/// Hits spread over many warm keys (issue 12: 1,000 and 100,000), each iteration the next key
/// of a shuffled cycle, so that the caches' memory is touched as a real workload would.
fn hits_over_keys(c: &mut Criterion) {
    let rt = runtime();
    for n in [1_000usize, 100_000] {
        let ids: Vec<String> = {
            let mut ids: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
            fastrand::Rng::with_seed(7).shuffle(&mut ids);
            ids
        };
        let repo = Repo {
            cache: Cache::in_memory(2 * n as u64),
        };
        let map: std::collections::HashMap<String, Customer> = ids
            .iter()
            .map(|id| (format!("customer.{id}"), customer(id)))
            .collect();
        rt.block_on(async {
            for _ in 0..2 {
                // The second read publishes each entry in the read index.
                for id in &ids {
                    repo.find_by_id(id).await.unwrap();
                    cached_crate::find(id).await.unwrap();
                }
            }
        });
        let next = |i: &mut usize| -> &str {
            *i = (*i + 1) % n;
            &ids[*i]
        };
        let mut group = c.benchmark_group(format!("hit_{n}_keys"));
        let mut i = 0;
        group.bench_function("cached_macro_find_by_id", |b| {
            b.to_async(&rt).iter(|| {
                let id = next(&mut i);
                async { black_box(repo.find_by_id(id).await.unwrap()) }
            })
        });
        group.bench_function("cached_crate", |b| {
            b.to_async(&rt).iter(|| {
                let id = next(&mut i);
                async { black_box(cached_crate::find(id).await.unwrap()) }
            })
        });
        group.bench_function("floor_hashmap_get_clone", |b| {
            b.iter(|| {
                let key = format!("customer.{}", next(&mut i));
                black_box(map.get(&key).cloned())
            })
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = hits, hits_over_keys, misses, concurrent
}
criterion_main!(benches);
