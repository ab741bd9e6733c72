//! The in-memory store: the embedded default, for `demo` and `serve` without MongoDB.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::RwLock;

use super::{next_version, offset, refusal, CustomerStore};
use crate::domain::{Customer, CustomerStatus, RepositoryError};

/// Customers in a map, lost when the process ends.
#[derive(Clone, Default)]
pub struct InMemoryCustomerStore {
    rows: Arc<RwLock<HashMap<String, Customer>>>,
}

/// Whether `customer`'s address is `lowercased` (an address passed through
/// [`str::to_lowercase`]), ignoring case. Case is folded with Unicode `to_lowercase`, as the
/// `lower` filter of the cache key and the MongoDB store's `email_lower` fold it, so that the
/// cache never keeps one answer for two spellings that the store tells apart, or the reverse.
fn has_email(customer: &Customer, lowercased: &str) -> bool {
    customer.email.to_lowercase() == lowercased
}

impl CustomerStore for InMemoryCustomerStore {
    async fn get(&self, id: &str) -> Result<Option<Customer>, RepositoryError> {
        Ok(self.rows.read().await.get(id).cloned())
    }

    async fn get_many(&self, ids: &[String]) -> Result<HashMap<String, Customer>, RepositoryError> {
        let rows = self.rows.read().await;
        Ok(ids
            .iter()
            .filter_map(|id| Some((id.clone(), rows.get(id)?.clone())))
            .collect())
    }

    async fn get_by_email(&self, email: &str) -> Result<Option<Customer>, RepositoryError> {
        let email = email.to_lowercase();
        Ok(self
            .rows
            .read()
            .await
            .values()
            .find(|c| has_email(c, &email))
            .cloned())
    }

    async fn active(&self, page: u32, limit: u32) -> Result<Vec<Customer>, RepositoryError> {
        let rows = self.rows.read().await;
        let mut active: Vec<&Customer> = rows
            .values()
            .filter(|c| c.status == CustomerStatus::Active)
            .collect();
        active.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(active
            .into_iter()
            .skip(offset(page, limit) as usize)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn save(&self, customer: &Customer) -> Result<Customer, RepositoryError> {
        let mut rows = self.rows.write().await;
        let stored = rows.get(&customer.id);
        if stored.map_or(0, |c| c.version) != customer.version {
            return Err(refusal(customer, stored));
        }
        let email = customer.email.to_lowercase();
        if rows
            .values()
            .any(|c| c.id != customer.id && has_email(c, &email))
        {
            return Err(RepositoryError::DuplicateEmail(customer.email.clone()));
        }
        let saved = next_version(customer);
        rows.insert(saved.id.clone(), saved.clone());
        Ok(saved)
    }

    async fn remove(&self, id: &str) -> Result<(), RepositoryError> {
        match self.rows.write().await.remove(id) {
            Some(_) => Ok(()),
            None => Err(RepositoryError::NotFound(id.to_owned())),
        }
    }

    async fn count(&self) -> Result<u64, RepositoryError> {
        Ok(self.rows.read().await.len() as u64)
    }
}
