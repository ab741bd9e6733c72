//! The domain: the customer and the repository port. No infrastructure here.

mod customer;
mod repository;

pub use customer::{Customer, CustomerStatus, InvalidCustomer};
pub use repository::{CustomerRepository, RepositoryError};
