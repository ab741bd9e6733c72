//! Where customers are kept. A store is plain persistence; caching is added on top of any
//! store by [`crate::infrastructure::cache::CachedCustomerRepository`].

mod memory;
mod mongo;

use std::collections::HashMap;
use std::future::Future;

pub use memory::InMemoryCustomerStore;
pub use mongo::MongoCustomerStore;

use crate::domain::{Customer, RepositoryError};

/// Plain storage of customers, without caching.
pub trait CustomerStore: Clone + Send + Sync + 'static {
    /// The customer with this id.
    fn get(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Customer>, RepositoryError>> + Send;
    /// The customers with these ids that exist, in one read.
    fn get_many(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Customer>, RepositoryError>> + Send;
    /// The customer with this e-mail address, case-insensitively.
    fn get_by_email(
        &self,
        email: &str,
    ) -> impl Future<Output = Result<Option<Customer>, RepositoryError>> + Send;
    /// Active customers, newest first, page `page` (from 1) of `limit`.
    fn active(
        &self,
        page: u32,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Customer>, RepositoryError>> + Send;
    /// Stores `customer` at `customer.version + 1` if the stored one is at `customer.version`
    /// (none is stored, for 0), in one atomic conditional write, and returns it as stored.
    /// `Conflict` when the stored version differs, `NotFound` when a customer saved before is
    /// gone, `DuplicateEmail` when another customer has its address.
    fn save(
        &self,
        customer: &Customer,
    ) -> impl Future<Output = Result<Customer, RepositoryError>> + Send;
    /// Deletes a customer; `NotFound` when there is none.
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    /// How many customers there are.
    fn count(&self) -> impl Future<Output = Result<u64, RepositoryError>> + Send;
}

/// `customer` at the version after its own.
pub(crate) fn next_version(customer: &Customer) -> Customer {
    Customer {
        version: customer.version + 1,
        ..customer.clone()
    }
}

/// Why a conditional save of `customer` matched nothing, given what is stored under its id.
pub(crate) fn refusal(customer: &Customer, stored: Option<&Customer>) -> RepositoryError {
    match stored {
        None if customer.version > 0 => RepositoryError::NotFound(customer.id.clone()),
        _ => RepositoryError::Conflict(customer.id.clone()),
    }
}

/// Where a page starts.
pub(crate) fn offset(page: u32, limit: u32) -> u64 {
    u64::from(page.max(1) - 1) * u64::from(limit)
}
