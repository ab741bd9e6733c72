//! The repository of the issue, annotated as a user would.

use cache_runtime::{cached, invalidates, Cache};

use super::{Customer, Store, StoreError};

#[derive(Clone)]
pub struct CustomerRepository {
    pub store: Store,
    pub cache: Cache,
}

impl CustomerRepository {
    pub fn new(store: Store) -> Self {
        CustomerRepository {
            store,
            cache: Cache::in_memory(100_000),
        }
    }

    pub fn with_cache(store: Store, cache: Cache) -> Self {
        CustomerRepository { store, cache }
    }

    /// An application instance: its own in-process tier, `backend` as the shared one, once
    /// its invalidation feed is connected.
    pub async fn two_tier(store: &Store, backend: impl cache_runtime::backend::Backend) -> Self {
        let cache = Cache::builder().backend(backend).build();
        let repo = CustomerRepository::with_cache(store.clone(), cache);
        crate::support::until(|| repo.cache.feed_connected()).await;
        repo
    }

    #[cached(key = "customer.{id}", ttl = 600, tags = ["customer", "customer.{id}"], swr = 60)]
    pub async fn find_by_id(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.store.get(id).await
    }

    #[cached(
        key = "customer.email.{email | lower | sha256}",
        ttl = 300,
        tags = ["customer", "customer.email"],
        result_tags
    )]
    pub async fn find_by_email(&self, email: &str) -> Result<Option<Customer>, StoreError> {
        self.store.by_email(email).await
    }

    #[cached(
        key = "customer.list.active.page.{page}.limit.{limit}",
        ttl = "5m",
        tags = ["customer.list", "customer.list.active"],
        result_tags
    )]
    pub async fn find_active(&self, page: u32, limit: u32) -> Result<Vec<Customer>, StoreError> {
        self.store.active(page, limit).await
    }

    #[invalidates(tags = ["customer.{customer.id}", "customer.list"])]
    pub async fn save(&self, customer: &Customer) -> Result<(), StoreError> {
        self.store.save(customer).await
    }
}
