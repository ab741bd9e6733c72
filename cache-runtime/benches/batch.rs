//! Batch read-through against the single-id method it shares entries with, in process:
//! 100 ids, all hits, as one `find_by_ids` and as 100 `find_by_id` calls; and a batch half of
//! whose ids miss (fresh ids each time), loaded by one run of its body.
//!
//! `cargo bench -p cache-runtime --bench batch` (and `--bench batch_mimalloc`, the same under
//! mimalloc); the README records the ratios.

const GROUP: &str = "batch_100";

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
