//! What the `metrics` feature reports besides the per-method counters of `stats.rs` and the
//! in-process tier's entry gauge: durations. Without the feature these are no-ops.

use std::future::Future;
use std::time::Duration;

/// Records how long a load (the method's body) took: `cache_load_duration_seconds{method}`.
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn load_duration(method: &'static str, elapsed: Duration) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("cache_load_duration_seconds", "method" => method)
        .record(elapsed.as_secs_f64());
}

/// Runs one call to the shared backend, recording how long it took:
/// `cache_backend_duration_seconds{op}` (`get`, `stamp`, `put`, `invalidate`, `clear`).
#[inline]
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) async fn backend_call<T>(op: &'static str, call: impl Future<Output = T>) -> T {
    #[cfg(feature = "metrics")]
    let started = std::time::Instant::now();
    let out = call.await;
    #[cfg(feature = "metrics")]
    metrics::histogram!("cache_backend_duration_seconds", "op" => op)
        .record(started.elapsed().as_secs_f64());
    out
}
