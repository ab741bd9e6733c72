//! `benches/batch.rs` under mimalloc instead of the system allocator (glibc's on Linux), so that
//! what is the allocator's and what is the cache's can be told apart:
//! `cargo bench -p cache-runtime --bench batch_mimalloc`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const GROUP: &str = "batch_100_mimalloc";

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "support/batch_bench.rs"]
mod batch_bench;
#[path = "support/batch_repo.rs"]
mod batch_repo;
#[path = "support/customer.rs"]
mod customer;

fn batches(c: &mut Criterion) {
    batch_bench::run(c, GROUP);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = batches
}
criterion_main!(benches);
