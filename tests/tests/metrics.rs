//! The `metrics` feature: per-method counters, load and backend durations and the in-process
//! entry gauge reach whatever recorder the application installed (here `metrics-util`'s
//! debugging recorder, scoped to the test).

mod support;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::MetricKind;
use support::repo::CustomerRepository;
use support::{ann, Customer, Store};

type Snapshot = Vec<(
    metrics_util::CompositeKey,
    Option<metrics::Unit>,
    Option<metrics::SharedString>,
    DebugValue,
)>;

/// The value of the metric `name` whose labels include every pair of `labels` (a label value
/// matches when it ends with the one given: method names carry their module path).
fn value<'a>(
    snapshot: &'a Snapshot,
    kind: MetricKind,
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a DebugValue> {
    snapshot.iter().find_map(|(key, _, _, value)| {
        let k = key.key();
        let matches = key.kind() == kind
            && k.name() == name
            && labels.iter().all(|(l, v)| {
                k.labels()
                    .any(|label| label.key() == *l && label.value().ends_with(v))
            });
        matches.then_some(value)
    })
}

#[test]
fn counters_durations_and_entries_reach_the_installed_recorder() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let store = Store::with(&[ann()]);
            let repo = CustomerRepository::new(store.clone());
            assert_eq!(repo.find_by_id("1").await, Ok(Some(ann()))); // miss, load
            assert_eq!(repo.find_by_id("1").await, Ok(Some(ann()))); // hit
            assert_eq!(repo.find_by_id("1").await, Ok(Some(ann()))); // hit
            let anna = Customer {
                name: "Anna".into(),
                ..ann()
            };
            repo.save(&anna).await.unwrap(); // invalidation
            repo.cache.in_process_tier().unwrap().entry_count(); // applies pending removals
        });
    });
    let snapshot = snapshotter.snapshot().into_vec();
    let counter =
        |name, method| match value(&snapshot, MetricKind::Counter, name, &[("method", method)]) {
            Some(DebugValue::Counter(n)) => *n,
            other => panic!("{name}{{method=~{method}}}: {other:?} in {snapshot:#?}"),
        };
    assert_eq!(counter("cache_hits_total", "find_by_id"), 2);
    assert_eq!(counter("cache_misses_total", "find_by_id"), 1);
    assert_eq!(counter("cache_loads_total", "find_by_id"), 1);
    assert_eq!(counter("cache_load_errors_total", "find_by_id"), 0);
    assert_eq!(counter("cache_invalidations_total", "save"), 1);
    match value(
        &snapshot,
        MetricKind::Histogram,
        "cache_load_duration_seconds",
        &[("method", "find_by_id")],
    ) {
        Some(DebugValue::Histogram(samples)) => {
            assert_eq!(samples.len(), 1, "one load");
            assert!(samples[0].into_inner() >= 0.0);
        }
        other => panic!("load duration: {other:?}"),
    }
    match value(
        &snapshot,
        MetricKind::Gauge,
        "cache_entries",
        &[("tier", "memory")],
    ) {
        Some(DebugValue::Gauge(entries)) => {
            assert_eq!(entries.into_inner(), 1.0, "one entry stored")
        }
        other => panic!("entries: {other:?}"),
    }
}
