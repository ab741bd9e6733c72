//! `benches/batch.rs` under mimalloc instead of the system allocator (glibc's on Linux), so that
//! what is the allocator's and what is the cache's can be told apart:
//! `cargo bench -p cache-runtime --bench batch_mimalloc`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/batch_bench.rs"]
mod batch_bench;

const GROUP: &str = "batch_100_mimalloc";

criterion::criterion_main!(batch_bench::benches);
