//! `Cache::transaction`: invalidations issued inside a scope are held until it ends, then
//! applied with every race rule; nested scopes join the outermost; spawned tasks are covered
//! through `Cache::inherit_transaction`; a dropped scope still applies what it held. (The race
//! against a real transactional database is `transaction_postgres.rs`.)

mod support;

use std::time::Duration;

use cache_runtime::{cached, Cache};
use support::repo::CustomerRepository;
use support::{ann, reached, Customer, Store};

fn anna() -> Customer {
    Customer {
        name: "Anna".into(),
        ..ann()
    }
}

#[tokio::test]
async fn invalidations_are_held_until_the_scope_ends() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    let inside = repo
        .cache
        .transaction(async {
            repo.save(&anna()).await.unwrap();
            // Held: the entry stays, as the committed row would until the commit.
            repo.find_by_id("1").await
        })
        .await;
    assert_eq!(inside, Ok(Some(ann())));
    assert_eq!(repo.store.loads(), 1);
    assert_eq!(
        repo.find_by_id("1").await,
        Ok(Some(anna())),
        "applied at the end"
    );
    assert_eq!(repo.store.loads(), 2);
    let row = support::row(&repo.cache.stats(), "save").clone();
    assert_eq!(row.invalidations, 1, "counted once, where it was issued");
}

/// A reader whose load reads the row, then stalls at the store's gate.
#[derive(Clone)]
struct Reader {
    store: Store,
    cache: Cache,
}

impl Reader {
    #[cached(key = "customer.{id}", ttl = 600, tags = ["customer.{id}"])]
    async fn find(&self, id: &str) -> Result<Option<Customer>, support::StoreError> {
        self.store.get_then_stall(id).await
    }
}

#[tokio::test]
async fn a_load_begun_before_the_scope_ends_does_not_store_its_value() {
    let store = Store::with(&[ann()]);
    let reader = Reader {
        store: store.clone(),
        cache: Cache::in_memory(1_000),
    };
    let gate = store.hold();
    let mut slow = None;
    reader
        .cache
        .transaction(async {
            reader.cache.invalidate_tags(["customer.1"]).await.unwrap(); // the write
            let r = reader.clone();
            slow = Some(tokio::spawn(async move { r.find("1").await }));
            reached(&gate, 1).await; // it read the committed row, and stalls
            store.put(anna()); // the commit
        })
        .await;
    let slow = slow.unwrap();
    // The scope ended, its invalidation applied, while the load was held.
    gate.release.add_permits(1);
    assert_eq!(
        slow.await.unwrap(),
        Ok(Some(ann())),
        "a read overlapping the commit may return the old row"
    );
    store.open();
    assert_eq!(reader.find("1").await, Ok(Some(anna())), "but not keep it");
    assert_eq!(store.loads(), 2);
}

#[tokio::test]
async fn a_nested_scope_joins_the_outermost() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    repo.find_by_id("1").await.unwrap();
    repo.cache
        .transaction(async {
            repo.cache
                .transaction(async { repo.save(&anna()).await.unwrap() })
                .await;
            assert_eq!(
                repo.find_by_id("1").await,
                Ok(Some(ann())),
                "the inner scope ended; the outer one still holds"
            );
        })
        .await;
    assert_eq!(repo.find_by_id("1").await, Ok(Some(anna())));
}

#[tokio::test]
async fn a_spawned_task_is_covered_when_it_inherits_the_scope() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    repo.find_by_id("1").await.unwrap();
    repo.cache
        .transaction(async {
            let worker = repo.clone();
            tokio::spawn(Cache::inherit_transaction(async move {
                worker.save(&anna()).await.unwrap();
            }))
            .await
            .unwrap();
            assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())), "held");
        })
        .await;
    assert_eq!(repo.find_by_id("1").await, Ok(Some(anna())));

    // Without it, a spawned task's invalidation is not held.
    let bob = Customer {
        name: "Bob".into(),
        ..ann()
    };
    repo.cache
        .transaction(async {
            let worker = repo.clone();
            let renamed = bob.clone();
            tokio::spawn(async move { worker.save(&renamed).await.unwrap() })
                .await
                .unwrap();
            assert_eq!(
                repo.find_by_id("1").await,
                Ok(Some(bob.clone())),
                "applied at once"
            );
        })
        .await;
}

#[tokio::test]
async fn a_dropped_scope_still_applies_what_it_held() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    repo.find_by_id("1").await.unwrap();
    let scope = repo.cache.transaction(async {
        repo.save(&anna()).await.unwrap();
        std::future::pending::<()>().await; // the commit never comes: cancelled
    });
    assert!(tokio::time::timeout(Duration::from_millis(50), scope)
        .await
        .is_err());
    assert_eq!(repo.find_by_id("1").await, Ok(Some(anna())));
}

#[tokio::test]
async fn a_clear_inside_a_scope_is_held_too() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    repo.find_by_id("1").await.unwrap();
    repo.cache
        .transaction(async {
            repo.store.put(anna());
            repo.cache.clear().await.unwrap();
            assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())), "held");
        })
        .await;
    assert_eq!(repo.find_by_id("1").await, Ok(Some(anna())));
}

#[tokio::test]
async fn held_tags_and_a_held_clear_are_both_applied() {
    let store = Store::with(&[ann(), Customer::new("2", "Bob", "bob@example.com")]);
    let repo = CustomerRepository::new(store);
    repo.find_by_id("1").await.unwrap();
    repo.find_by_id("2").await.unwrap();
    repo.cache
        .transaction(async {
            repo.save(&anna()).await.unwrap();
            repo.store
                .put(Customer::new("2", "Bobby", "bob@example.com"));
            repo.cache.clear().await.unwrap();
        })
        .await;
    assert_eq!(repo.find_by_id("1").await, Ok(Some(anna())));
    assert_eq!(
        repo.find_by_id("2").await.unwrap().unwrap().name,
        "Bobby",
        "the clear too"
    );
}

#[tokio::test]
async fn a_task_that_outlives_its_inherited_scope_holds_in_a_scope_of_its_own() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    repo.find_by_id("1").await.unwrap();
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let (held, told) = tokio::sync::oneshot::channel();
    let mut task = None;
    repo.cache
        .transaction(async {
            let worker = repo.clone();
            task = Some(tokio::spawn(Cache::inherit_transaction(async move {
                wait.await.unwrap();
                // The scope it inherited ended; its own transaction still holds.
                let inside = worker
                    .cache
                    .transaction(async {
                        worker.save(&anna()).await.unwrap();
                        worker.find_by_id("1").await
                    })
                    .await;
                held.send(inside).unwrap();
            })));
        })
        .await;
    go.send(()).unwrap();
    assert_eq!(
        told.await.unwrap(),
        Ok(Some(ann())),
        "held in its own scope"
    );
    task.unwrap().await.unwrap();
    assert_eq!(repo.find_by_id("1").await, Ok(Some(anna())));
}

#[tokio::test]
async fn a_scope_holds_only_its_own_cache() {
    let store = Store::with(&[ann()]);
    let (one, two) = (
        CustomerRepository::new(store.clone()),
        CustomerRepository::new(store),
    );
    one.find_by_id("1").await.unwrap();
    two.find_by_id("1").await.unwrap();
    one.cache
        .transaction(async {
            two.save(&anna()).await.unwrap();
            assert_eq!(two.find_by_id("1").await, Ok(Some(anna())), "not held");
            assert_eq!(one.find_by_id("1").await, Ok(Some(ann())));
        })
        .await;
}
