//! The pluggable backend: a third-party implementation of `Backend` (written against the
//! public trait only) carries the whole read-through; a failing backend never fails a call,
//! and an invalidation it refuses is kept until it accepts it.

mod support;

use std::sync::atomic::Ordering;

use cache_runtime::Cache;
use support::recording::RecordingBackend;
use support::repo::CustomerRepository;
use support::{ann, bob, Customer, Store};

fn repo() -> (CustomerRepository, RecordingBackend) {
    let backend = RecordingBackend::default();
    let cache = Cache::with_backend(backend.clone());
    (
        CustomerRepository::with_cache(Store::with(&[ann(), bob()]), cache),
        backend,
    )
}

fn anna() -> Customer {
    Customer {
        name: "Anna".into(),
        ..ann()
    }
}

#[tokio::test]
async fn read_through_and_tags_work_through_the_trait() {
    let (repo, backend) = repo();
    assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(repo.store.loads(), 1);
    assert_eq!(
        backend.keys(),
        vec!["customer.1".to_string()],
        "what is in the backend after a miss"
    );
    assert_eq!(backend.ops.puts.load(Ordering::SeqCst), 1);
    assert_eq!(backend.ops.gets.load(Ordering::SeqCst), 2);

    repo.save(&anna()).await.unwrap();
    assert_eq!(backend.version("customer.1"), 1);
    assert_eq!(backend.version("customer.list"), 1);
    assert_eq!(repo.find_by_id("1").await, Ok(Some(anna())));
    assert_eq!(repo.store.loads(), 2);

    repo.find_by_email("ann@example.com").await.unwrap();
    repo.save(&Customer {
        email: "ann@new.example".into(),
        ..anna()
    })
    .await
    .unwrap();
    assert_eq!(
        repo.find_by_email("ann@example.com").await,
        Ok(None),
        "result tags work through the trait too"
    );
}

#[tokio::test]
async fn a_failing_backend_falls_back_to_the_body() {
    let (repo, backend) = repo();
    backend.set_down(true);
    for _ in 0..3 {
        assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    }
    assert_eq!(repo.store.loads(), 3);
    let stats = repo.cache.stats();
    let row = support::row(&stats, "find_by_id");
    assert_eq!(row.backend_errors, 3);
    assert_eq!(row.load_errors, 0);

    backend.set_down(false);
    repo.find_by_id("1").await.unwrap();
    repo.find_by_id("1").await.unwrap();
    assert_eq!(
        repo.store.loads(),
        4,
        "caching resumes once the backend is back"
    );
}

#[tokio::test]
async fn an_invalidation_the_backend_refused_is_not_lost() {
    let (repo, backend) = repo();
    repo.find_by_id("1").await.unwrap();

    backend.set_down(true);
    // The write succeeds; the backend refuses the invalidation.
    repo.save(&anna()).await.unwrap();
    // Reads meanwhile bypass the cache and see the write.
    assert_eq!(repo.find_by_id("1").await, Ok(Some(anna())));

    backend.set_down(false);
    // Until the background replay delivers it, reads bypass the backend; none sees the
    // pre-write value.
    for _ in 0..10_000 {
        assert_eq!(repo.find_by_id("1").await, Ok(Some(anna())));
        if backend.version("customer.1") == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert_eq!(
        backend.version("customer.1"),
        1,
        "the refused invalidation was replayed"
    );
    assert_eq!(repo.find_by_id("1").await, Ok(Some(anna())));
    let stats = repo.cache.stats();
    let save = support::row(&stats, "::save");
    assert_eq!(save.backend_errors, 1);
}

#[tokio::test]
async fn clear_reaches_the_backend() {
    let (repo, backend) = repo();
    repo.find_by_id("1").await.unwrap();
    repo.find_by_id("2").await.unwrap();
    assert_eq!(backend.len(), 2);
    repo.cache.clear().await.unwrap();
    assert_eq!(backend.len(), 0);
    repo.find_by_id("1").await.unwrap();
    assert_eq!(repo.store.loads(), 3);
}
