//! The repository port over any store, with the cache policies of the PHP original, its
//! defects fixed: the list key includes `limit`, and a save drops every e-mail lookup of the
//! customer (the old address included) through tags taken from the cached value.

use std::collections::HashMap;

use cache_runtime::{cached, invalidates, Cache};

use crate::domain::{Customer, CustomerRepository, RepositoryError};
use crate::infrastructure::persistence::{
    CustomerStore, InMemoryCustomerStore, MongoCustomerStore,
};

/// A store with a cache in front of it.
#[derive(Clone)]
pub struct CachedCustomerRepository<S> {
    store: S,
    cache: Cache,
}

/// The MongoDB repository.
pub type MongoCustomerRepository = CachedCustomerRepository<MongoCustomerStore>;
/// The embedded default.
pub type InMemoryCustomerRepository = CachedCustomerRepository<InMemoryCustomerStore>;

/// The method names the cache knows them by (stats, logs, hot keys).
pub mod methods {
    /// `find_by_id`.
    pub const FIND_BY_ID: &str = "CustomerRepository::find_by_id";
    /// `find_by_ids`.
    pub const FIND_BY_IDS: &str = "CustomerRepository::find_by_ids";
    /// `find_active_customers`.
    pub const FIND_ACTIVE: &str = "CustomerRepository::find_active_customers";
    /// `find_by_email`.
    pub const FIND_BY_EMAIL: &str = "CustomerRepository::find_by_email";
}

impl<S: CustomerStore> CachedCustomerRepository<S> {
    /// `store` behind `cache`.
    pub fn new(store: S, cache: Cache) -> Self {
        CachedCustomerRepository { store, cache }
    }

    /// The cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The store, without the cache.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Keeps the customers a list read in `find_by_id`'s entries (those not cached yet),
    /// without reading them again. Called in the list's load, it is judged from that load's
    /// start: a customer written since the list read it is not stored.
    async fn remember(&self, customers: &[Customer]) -> Result<(), RepositoryError> {
        let ids: Vec<String> = customers.iter().map(|c| c.id.clone()).collect();
        let read: HashMap<String, Customer> = customers
            .iter()
            .map(|c| (c.id.clone(), c.clone()))
            .collect();
        self.remember_customers(&ids, &read).await.map(drop)
    }

    #[cached(
        key = "customer.{id}",
        ttl = 600,
        tags = ["customer", "customer.{id}"],
        batch = id in ids,
        shares = "CustomerRepository::find_by_id",
        ignore = [read],
        name = "CustomerRepository::remember_customers",
        version = 2
    )]
    async fn remember_customers(
        &self,
        ids: &[String],
        read: &HashMap<String, Customer>,
    ) -> Result<HashMap<String, Customer>, RepositoryError> {
        Ok(ids
            .iter()
            .filter_map(|id| Some((id.clone(), read.get(id)?.clone())))
            .collect())
    }
}

// `version = 2`: the cached values' schema. Version 2 added `Customer::version`; a build that
// changes the cached types' fields bumps it, so that during a rolling deploy each build keeps
// its own entries in a shared Redis while both builds' saves invalidate both (the tags are
// shared).
impl<S: CustomerStore> CustomerRepository for CachedCustomerRepository<S> {
    #[cached(
        key = "customer.{id}",
        ttl = 600,
        swr = 60,
        tags = ["customer", "customer.{id}"],
        name = "CustomerRepository::find_by_id",
        version = 2
    )]
    async fn find_by_id(&self, id: &str) -> Result<Option<Customer>, RepositoryError> {
        self.store.get(id).await
    }

    // One entry per id, in `find_by_id`'s key space: the two serve each other's entries.
    #[cached(
        key = "customer.{id}",
        ttl = 600,
        tags = ["customer", "customer.{id}"],
        batch = id in ids,
        shares = "CustomerRepository::find_by_id",
        name = "CustomerRepository::find_by_ids",
        version = 2
    )]
    async fn find_by_ids(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Customer>, RepositoryError> {
        self.store.get_many(ids).await
    }

    // A change reads afresh only when its cached copy proved stale (or did not pass its
    // precondition): the cached views of the customer go with it, so that the next reader, and
    // the client's next GET before a retried If-Match, is not served that copy again.
    #[invalidates(
        tags = ["customer.{id}"],
        name = "CustomerRepository::find_by_id_fresh"
    )]
    async fn find_by_id_fresh(&self, id: &str) -> Result<Option<Customer>, RepositoryError> {
        self.store.get(id).await
    }

    #[cached(
        key = "customer.email.{email | trim | lower | sha256}",
        ttl = 300,
        tags = ["customer", "customer.email", "customer.email.{email | trim | lower | sha256}"],
        result_tags,
        name = "CustomerRepository::find_by_email",
        version = 2
    )]
    async fn find_by_email(&self, email: &str) -> Result<Option<Customer>, RepositoryError> {
        self.store.get_by_email(email.trim()).await
    }

    #[cached(
        key = "customer.list.active.page.{page}.limit.{limit}",
        ttl = 300,
        tags = ["customer.list", "customer.list.active"],
        result_tags,
        name = "CustomerRepository::find_active_customers",
        version = 2
    )]
    async fn find_active_customers(
        &self,
        page: u32,
        limit: u32,
    ) -> Result<Vec<Customer>, RepositoryError> {
        let customers = self.store.active(page, limit).await?;
        // The page fills the entries of its customers: a `find_by_id` of one is a hit.
        self.remember(&customers).await?;
        Ok(customers)
    }

    // `customer.{id}` reaches every cached view of the customer, the lookups of its old e-mail
    // included (they are tagged from their result); the e-mail tag reaches a cached "nobody
    // has this address" for its new one.
    #[invalidates(
        tags = [
            "customer.{customer.id}",
            "customer.list",
            "customer.email.{customer.email | trim | lower | sha256}",
        ],
        name = "CustomerRepository::save"
    )]
    async fn save(&self, customer: &Customer) -> Result<Customer, RepositoryError> {
        self.store.save(customer).await
    }

    #[invalidates(
        tags = [
            "customer.{customer.id}",
            "customer.list",
            "customer.email.{customer.email | trim | lower | sha256}",
        ],
        name = "CustomerRepository::delete"
    )]
    async fn delete(&self, customer: &Customer) -> Result<(), RepositoryError> {
        self.store.remove(&customer.id).await
    }
}
