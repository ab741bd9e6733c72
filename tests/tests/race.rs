//! Invalidation wins over in-flight loads. A reader misses and reads the old row, the writer
//! saves and invalidates, then the reader finishes: its pre-write value must not be left in
//! the cache, and nobody who asks after the write returned may be handed it. Loads are held
//! on a gate so that the interleaving is exact.

mod support;

use cache_runtime::{cached, Cache};
use support::repo::CustomerRepository;
use support::{ann, reached, until, Customer, Store, StoreError};

/// Reads the row, then stalls at the gate: the old row is in hand before the write.
#[derive(Clone)]
struct StallingRepo {
    store: Store,
    cache: Cache,
}

impl StallingRepo {
    #[cached(key = "customer.{id}", ttl = 600, tags = ["customer.{id}"])]
    async fn find_by_id(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.store.get_then_stall(id).await
    }

    #[cached(
        key = "customer.email.{email | lower | sha256}",
        ttl = 300,
        result_tags
    )]
    async fn find_by_email(&self, email: &str) -> Result<Option<Customer>, StoreError> {
        self.store.by_email(email).await
    }
}

fn setup() -> (StallingRepo, CustomerRepository) {
    let store = Store::with(&[ann()]);
    let cache = Cache::in_memory(1000);
    let reader = StallingRepo {
        store: store.clone(),
        cache: cache.clone(),
    };
    let writer = CustomerRepository::with_cache(store, cache);
    (reader, writer)
}

fn anna() -> Customer {
    Customer {
        name: "Anna".into(),
        ..ann()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_invalidation_beats_a_load_that_started_before_it() {
    let (reader, writer) = setup();
    let gate = reader.store.hold();
    let r = reader.clone();
    let slow = tokio::spawn(async move { r.find_by_id("1").await });
    reached(&gate, 1).await; // the reader holds the old row

    writer.save(&anna()).await.unwrap();

    gate.release.add_permits(1);
    assert_eq!(
        slow.await.unwrap(),
        Ok(Some(ann())),
        "the overlapping read may return the old row"
    );
    reader.store.open();
    assert_eq!(
        reader.find_by_id("1").await,
        Ok(Some(anna())),
        "but it must not be left in the cache"
    );
    assert_eq!(reader.store.loads(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_tag_invalidation_beats_a_load_that_started_before_it() {
    let (reader, writer) = setup();
    let gate = reader.store.hold();
    let r = reader.clone();
    // The e-mail entry is tagged customer.1 only from its result, known after the load.
    let slow = tokio::spawn(async move { r.find_by_email("ann@example.com").await });
    reached(&gate, 1).await;

    writer
        .save(&Customer {
            email: "ann@new.example".into(),
            ..ann()
        })
        .await
        .unwrap();

    gate.release.add_permits(1);
    assert_eq!(slow.await.unwrap(), Ok(Some(ann())));
    reader.store.open();
    assert_eq!(reader.find_by_email("ann@example.com").await, Ok(None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_invalidation_and_clear_beat_running_loads() {
    for how in ["key", "clear"] {
        let (reader, writer) = setup();
        let gate = reader.store.hold();
        let r = reader.clone();
        let slow = tokio::spawn(async move { r.find_by_id("1").await });
        reached(&gate, 1).await;

        writer.store.put(anna());
        match how {
            "key" => writer.cache.invalidate_key("customer.1").await.unwrap(),
            _ => writer.cache.clear().await.unwrap(),
        }

        gate.release.add_permits(1);
        assert_eq!(slow.await.unwrap(), Ok(Some(ann())));
        reader.store.open();
        assert_eq!(
            reader.find_by_id("1").await,
            Ok(Some(anna())),
            "after {how}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_arriving_after_the_write_does_not_get_the_old_loads_value() {
    let (reader, writer) = setup();
    let gate = reader.store.hold();
    let r = reader.clone();
    let slow = tokio::spawn(async move { r.find_by_id("1").await });
    reached(&gate, 1).await;

    writer.save(&anna()).await.unwrap();

    // Asks after save() returned: it finds the old load in flight and joins it.
    let r = reader.clone();
    let late = tokio::spawn(async move { r.find_by_id("1").await });
    until(|| {
        reader
            .cache
            .stats()
            .methods
            .iter()
            .map(|m| m.coalesced)
            .sum::<u64>()
            == 1
    })
    .await;
    gate.release.add_permits(1); // the old load finishes
    assert_eq!(slow.await.unwrap(), Ok(Some(ann())));
    reached(&gate, 1).await; // the late caller saw the join was overtaken and loads itself
    gate.release.add_permits(1);
    assert_eq!(late.await.unwrap(), Ok(Some(anna())));
}
