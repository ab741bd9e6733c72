//! Batch read-through against the single-id method it shares entries with, in process:
//! 100 ids, all hits, as one `find_by_ids` and as 100 `find_by_id` calls; and a batch half of
//! whose ids miss (fresh ids each time), loaded by one run of its body.
//!
//! `cargo bench -p cache-runtime --bench batch` (and `--bench batch_mimalloc`, the same under
//! mimalloc); the README records the ratios.

#[path = "support/batch_bench.rs"]
mod batch_bench;

const GROUP: &str = "batch_100";

criterion::criterion_main!(batch_bench::benches);
