//! Tracing tells the truth (a miss is logged as a miss, unlike the PHP original, which logged
//! "cache.hit" after every call) and `stats()` counts per method.

mod support;

use support::capture::capture;
use support::recording::RecordingBackend;
use support::repo::CustomerRepository;
use support::{ann, Store};

#[tokio::test]
async fn events_name_the_operation_key_method_and_duration() {
    let (events, _guard) = capture();
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    repo.find_by_id("1").await.unwrap();
    let misses = events.ops("miss");
    assert_eq!(misses.len(), 1);
    assert!(
        events.ops("hit").is_empty(),
        "a miss is not logged as a hit"
    );
    let miss = &misses[0];
    assert_eq!(miss["cache.key"], "customer.1");
    assert!(miss["cache.method"].ends_with("find_by_id"));
    assert!(miss.contains_key("cache.duration_us"));

    events.clear();
    repo.find_by_id("1").await.unwrap();
    let hits = events.ops("hit");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0]["cache.key"], "customer.1");
    assert!(hits[0].contains_key("cache.duration_us"));

    events.clear();
    repo.save(&ann()).await.unwrap();
    let invalidations = events.ops("invalidate");
    assert_eq!(invalidations.len(), 1);
    assert!(invalidations[0]["cache.tags"].contains("customer.1"));
}

#[tokio::test]
async fn backend_errors_are_logged_with_the_key() {
    let (events, _guard) = capture();
    let backend = RecordingBackend::default();
    backend.set_down(true);
    let repo = CustomerRepository::with_cache(
        Store::with(&[ann()]),
        cache_runtime::Cache::with_backend(backend),
    );
    assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    let errors = events.ops("error");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["cache.key"], "customer.1");
    assert_eq!(errors[0]["level"], "WARN");
    assert!(errors[0]["error"].contains("down"));
}

#[tokio::test]
async fn stats_count_per_method() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    repo.find_by_id("1").await.unwrap();
    repo.find_by_id("1").await.unwrap();
    repo.find_by_id("1").await.unwrap();
    repo.find_by_email("ann@example.com").await.unwrap();
    repo.save(&ann()).await.unwrap();
    let stats = repo.cache.stats();
    let by_id = support::row(&stats, "find_by_id");
    assert_eq!((by_id.hits, by_id.misses, by_id.loads), (2, 1, 1));
    assert!((by_id.hit_ratio() - 2.0 / 3.0).abs() < 1e-9);
    let by_email = support::row(&stats, "find_by_email");
    assert_eq!((by_email.hits, by_email.misses), (0, 1));
    let save = support::row(&stats, "::save");
    assert_eq!(save.invalidations, 1);
    assert!(stats.to_string().contains("find_by_id: hits=2 misses=1"));
}
