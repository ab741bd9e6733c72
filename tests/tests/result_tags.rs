//! Tags computed from the cached value: an e-mail lookup is dropped when its customer is
//! saved (the PHP original kept serving the old e-mail for 300 s), and a list page is tagged
//! with every id it contains.

mod support;

use cache_runtime::{cached, invalidates};
use support::repo::CustomerRepository;
use support::{ann, bob, Customer, Store, StoreError};

#[tokio::test]
async fn an_email_change_drops_the_old_email_lookup() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    assert_eq!(repo.find_by_email("ann@example.com").await, Ok(Some(ann())));

    let moved = Customer {
        email: "ann@new.example".into(),
        ..ann()
    };
    repo.save(&moved).await.unwrap();

    assert_eq!(
        repo.find_by_email("ann@example.com").await,
        Ok(None),
        "the old e-mail no longer finds her"
    );
    assert_eq!(repo.find_by_email("ann@new.example").await, Ok(Some(moved)));
}

/// Invalidates only the customer's own tag (not the lists).
#[derive(Clone)]
struct Toucher {
    cache: cache_runtime::Cache,
}

impl Toucher {
    #[invalidates(tags = ["customer.{customer.id}"])]
    async fn touch(&self, customer: &Customer) -> Result<(), StoreError> {
        let _ = customer;
        Ok(())
    }
}

#[tokio::test]
async fn a_list_page_is_dropped_when_a_customer_on_it_changes() {
    let customers: Vec<Customer> = (0..30)
        .map(|i| Customer::new(&format!("{i:02}"), "n", &format!("{i}@x")))
        .collect();
    let repo = CustomerRepository::new(Store::with(&customers));
    let toucher = Toucher {
        cache: repo.cache.clone(),
    };
    repo.find_active(1, 10).await.unwrap(); // ids 00..09
    repo.find_active(2, 10).await.unwrap(); // ids 10..19
    assert_eq!(repo.store.loads(), 2);

    toucher.touch(&customers[15]).await.unwrap();
    repo.find_active(1, 10).await.unwrap();
    repo.find_active(2, 10).await.unwrap();
    assert_eq!(repo.store.loads(), 3, "only page 2 holds customer 15");
}

struct Lists {
    store: Store,
    cache: cache_runtime::Cache,
}

impl Lists {
    #[cached(
        key = "names.{page}",
        ttl = 60,
        result_tags = result.iter().map(|c| format!("customer.{}", c.id))
    )]
    async fn names(&self, page: u32) -> Result<Vec<Customer>, StoreError> {
        self.store.active(page, 1).await
    }
}

#[tokio::test]
async fn result_tags_can_be_an_expression() {
    let lists = Lists {
        store: Store::with(&[ann(), bob()]),
        cache: cache_runtime::Cache::in_memory(10),
    };
    lists.names(1).await.unwrap();
    lists.names(2).await.unwrap();
    lists.cache.invalidate_tags(["customer.2"]).await.unwrap();
    lists.names(1).await.unwrap();
    lists.names(2).await.unwrap();
    assert_eq!(lists.store.loads(), 3);
}
