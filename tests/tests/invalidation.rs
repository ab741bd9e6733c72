//! Tags and keys: invalidation after a successful write only, O(1) version bumps, bounded
//! bookkeeping, and the `Cache` API (`invalidate_tags`, `invalidate_key`, `clear`).

mod support;

use cache_runtime::{invalidates, Cache};
use support::repo::CustomerRepository;
use support::{ann, bob, Customer, Store, StoreError};

fn renamed(c: &Customer, name: &str) -> Customer {
    Customer {
        name: name.into(),
        ..c.clone()
    }
}

#[tokio::test]
async fn save_drops_the_customer_and_the_lists() {
    let repo = CustomerRepository::new(Store::with(&[ann(), bob()]));
    repo.find_by_id("1").await.unwrap();
    repo.find_by_id("2").await.unwrap();
    repo.find_active(1, 20).await.unwrap();
    assert_eq!(repo.store.loads(), 3);

    let anna = renamed(&ann(), "Anna");
    repo.save(&anna).await.unwrap();

    assert_eq!(repo.find_by_id("1").await, Ok(Some(anna.clone())));
    assert_eq!(
        repo.find_by_id("2").await,
        Ok(Some(bob())),
        "another customer is untouched"
    );
    let page = repo.find_active(1, 20).await.unwrap();
    assert!(page.contains(&anna));
    assert_eq!(
        repo.store.loads(),
        5,
        "customer.1 and the list reloaded, customer.2 did not"
    );
    let stats = repo.cache.stats();
    let save = support::row(&stats, "::save");
    assert_eq!(save.invalidations, 1);
}

#[tokio::test]
async fn a_failed_write_invalidates_nothing() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    repo.find_by_id("1").await.unwrap();
    repo.store.fail(true);
    assert_eq!(
        repo.save(&renamed(&ann(), "Anna")).await,
        Err(StoreError::Unavailable)
    );
    repo.store.fail(false);
    assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(repo.store.loads(), 1, "the entry survived the failed save");
}

#[tokio::test]
async fn invalidating_a_tag_bumps_a_version_instead_of_visiting_entries() {
    let customers: Vec<Customer> = (0..5_000)
        .map(|i| Customer::new(&i.to_string(), "n", &format!("{i}@x")))
        .collect();
    let repo = CustomerRepository::new(Store::with(&customers));
    for c in &customers {
        repo.find_by_id(&c.id).await.unwrap();
    }
    let memory = repo.cache.in_process_tier().unwrap();
    assert_eq!(memory.entry_count(), 5_000);
    repo.cache.invalidate_tags(["customer"]).await.unwrap();
    // Nothing was removed or rewritten: every entry still sits there, now outdated.
    assert_eq!(memory.entry_count(), 5_000);
    for c in customers.iter().take(10) {
        repo.find_by_id(&c.id).await.unwrap();
    }
    assert_eq!(repo.store.loads(), 5_010);
}

#[tokio::test]
async fn tag_bookkeeping_does_not_grow_as_ids_come_and_go() {
    let store = Store::default();
    let repo = CustomerRepository::with_cache(store, Cache::in_memory(100));
    for i in 0..20_000 {
        repo.find_by_id(&i.to_string()).await.unwrap();
    }
    let memory = repo.cache.in_process_tier().unwrap();
    // Each call runs moka's pending maintenance, which stops after 100 ms of work (moka's
    // fixed budget): on a loaded machine, evictions may take a few passes to be applied.
    let settled = |measure: &dyn Fn() -> usize, bound: usize| -> usize {
        let mut last = measure();
        for _ in 0..50 {
            if last <= bound {
                break;
            }
            last = measure();
        }
        last
    };
    let entries = settled(&|| memory.entry_count() as usize, 100);
    assert!(entries <= 100, "{entries} entries");
    // Each live entry carries `customer` and `customer.<id>` (its key is versioned in a fixed
    // table, not tracked by name).
    let tracked = settled(&|| memory.tracked_tags(), 1 + 100);
    assert!(
        tracked <= 1 + 100,
        "{tracked} tags tracked for at most 100 entries"
    );
}

struct Admin {
    cache: Cache,
}

impl Admin {
    #[invalidates(keys = ["customer.{id}"])]
    async fn forget(&self, id: &str) -> Result<(), StoreError> {
        let _ = id;
        Ok(())
    }
}

#[tokio::test]
async fn keys_and_the_cache_api_invalidate_what_they_name() {
    let repo = CustomerRepository::new(Store::with(&[ann(), bob()]));
    let admin = Admin {
        cache: repo.cache.clone(),
    };
    repo.find_by_id("1").await.unwrap();
    repo.find_by_id("2").await.unwrap();
    repo.find_by_email("ann@example.com").await.unwrap();
    assert_eq!(repo.store.loads(), 3);

    admin.forget("1").await.unwrap();
    repo.find_by_id("1").await.unwrap();
    repo.find_by_id("2").await.unwrap();
    repo.find_by_email("ann@example.com").await.unwrap();
    assert_eq!(
        repo.store.loads(),
        4,
        "only the entry rendered as customer.1 was dropped"
    );

    repo.cache.invalidate_key("customer.2").await.unwrap();
    repo.find_by_id("2").await.unwrap();
    assert_eq!(repo.store.loads(), 5);

    repo.cache
        .invalidate_tags(["customer.email"])
        .await
        .unwrap();
    repo.find_by_email("ann@example.com").await.unwrap();
    repo.find_by_id("1").await.unwrap();
    assert_eq!(repo.store.loads(), 6);

    repo.cache.clear().await.unwrap();
    repo.find_by_id("1").await.unwrap();
    repo.find_by_id("2").await.unwrap();
    repo.find_by_email("ann@example.com").await.unwrap();
    assert_eq!(repo.store.loads(), 9);
}
