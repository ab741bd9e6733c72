//! The repository port.

use std::future::Future;

use super::{Customer, InvalidCustomer};

/// What can go wrong in a repository.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    /// No customer has this id.
    #[error("customer {0} not found")]
    NotFound(String),
    /// Another customer has this e-mail address.
    #[error("e-mail address {0} is already taken")]
    DuplicateEmail(String),
    /// The input breaks a rule of the domain. Its text includes the rule's, so the rule is not
    /// also given as its [`source`](std::error::Error::source).
    #[error("invalid input: {0}")]
    Invalid(InvalidCustomer),
    /// The stored customer is not at the version a change started from (or was required to
    /// start from): another change was saved in between.
    #[error("customer {0} is not at the version the change started from")]
    Conflict(String),
    /// The database could not be reached or failed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl From<InvalidCustomer> for RepositoryError {
    fn from(invalid: InvalidCustomer) -> Self {
        RepositoryError::Invalid(invalid)
    }
}

/// Customers, wherever they are kept.
pub trait CustomerRepository: Clone + Send + Sync + 'static {
    /// The customer with this id.
    fn find_by_id(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Customer>, RepositoryError>> + Send;
    /// The customers with these ids that exist.
    fn find_by_ids(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<std::collections::HashMap<String, Customer>, RepositoryError>> + Send;
    /// The customer with this e-mail address (case-insensitive).
    fn find_by_email(
        &self,
        email: &str,
    ) -> impl Future<Output = Result<Option<Customer>, RepositoryError>> + Send;
    /// A page (from 1) of active customers, newest first.
    fn find_active_customers(
        &self,
        page: u32,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Customer>, RepositoryError>> + Send;
    /// The customer with this id as the store has it now, never a cached copy: the read that
    /// a change retries from after a [`Conflict`](RepositoryError::Conflict). A cached
    /// repository also drops its cached views of the customer, which proved stale.
    fn find_by_id_fresh(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<Customer>, RepositoryError>> + Send;
    /// Saves a customer if the stored one is still at `customer.version` (none is stored, for
    /// version 0), and returns it as saved, at the next version. Fails with `Conflict` when
    /// the stored version differs, `NotFound` when a customer that had been saved is gone, and
    /// `DuplicateEmail` when another customer has its e-mail address.
    fn save(
        &self,
        customer: &Customer,
    ) -> impl Future<Output = Result<Customer, RepositoryError>> + Send;
    /// Deletes a customer. Fails with `NotFound` when there is none.
    fn delete(
        &self,
        customer: &Customer,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
}
