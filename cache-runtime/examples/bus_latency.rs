//! How long an invalidation on instance A takes to drop instance B's in-process entry, over
//! Redis pub/sub on loopback: p50 and p99 of 1 000 invalidations.
//!
//! `cargo run --release -p cache-runtime --features redis --example bus_latency`
//! (starts its own `redis-server`, or uses `REDIS_URL`).

#[path = "../../tests/tests/support/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use cache_runtime::backend::RedisBackend;
use cache_runtime::Cache;

#[tokio::main]
async fn main() {
    let server = redis_server::RedisServer::shared();
    let cache = |ns: &str| {
        Cache::builder()
            .backend(
                RedisBackend::builder(&server.url)
                    .namespace(ns)
                    .build()
                    .unwrap(),
            )
            .build()
    };
    let (a, b) = (cache("latency"), cache("latency"));
    while !(a.feed_connected() && b.feed_connected()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let start_events = b.feed_events();
    let mut samples = Vec::with_capacity(1_000);
    for i in 0..1_000u64 {
        let seen = b.feed_events();
        let started = Instant::now();
        a.invalidate_tags([format!("customer.{i}")]).await.unwrap();
        while b.feed_events() == seen {
            tokio::task::yield_now().await;
        }
        samples.push(started.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "cross-instance invalidation over {} samples: p50 {:?}, p99 {:?}, max {:?} ({} events seen by B)",
        samples.len(),
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1],
        b.feed_events() - start_events
    );
}
