//! The measurements of `benches/batch.rs` and `benches/batch_mimalloc.rs` (the same under
//! mimalloc): 100 ids, all hits, as one `find_by_ids` and as 100 `find_by_id` calls (bare, and
//! collected into a map); and a batch half of whose ids miss (fresh ids each time), loaded by
//! one run of its body. The including bench names the criterion group: `crate::GROUP`.

#[path = "batch_repo.rs"]
mod batch_repo;
#[path = "customer.rs"]
mod customer;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use cache_runtime::Cache;
use criterion::{criterion_group, Criterion};

use self::batch_repo::Repo;

/// The four measurements, in a criterion group of the name given.
fn run(c: &mut Criterion, group: &str) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let repo = Repo {
        cache: Cache::in_memory(1_000_000),
    };
    let ids: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    rt.block_on(repo.find_by_ids(&ids)).unwrap();

    let mut group = c.benchmark_group(group);
    group.bench_function("find_by_id_x100_all_hits", |b| {
        b.to_async(&rt).iter(|| async {
            for id in &ids {
                black_box(repo.find_by_id(id).await.unwrap());
            }
        })
    });
    // What a batch returns that 100 single calls do not build: the same hits collected into a
    // `HashMap` under cloned ids.
    group.bench_function("find_by_id_x100_into_map", |b| {
        b.to_async(&rt).iter(|| async {
            let mut map = HashMap::with_capacity(ids.len());
            for id in &ids {
                if let Some(found) = repo.find_by_id(id).await.unwrap() {
                    map.insert(id.clone(), found);
                }
            }
            black_box(map)
        })
    });
    group.bench_function("find_by_ids_all_hits", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(repo.find_by_ids(&ids).await.unwrap()) })
    });
    let next = AtomicU64::new(0);
    group.bench_function("find_by_ids_half_misses", |b| {
        b.iter_custom(|iters| rt.block_on(batch_repo::time_half_missed(&repo, &ids, &next, iters)))
    });
    group.finish();
}

fn batches(c: &mut Criterion) {
    run(c, crate::GROUP);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = batches
}
