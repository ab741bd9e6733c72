//! Updating a customer's name and e-mail address.

use std::time::Instant;

use serde::Deserialize;

use crate::domain::{Customer, CustomerRepository, RepositoryError};

/// Changes to a customer; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UpdateCustomerCommand {
    /// The customer.
    #[serde(skip)]
    pub id: String,
    /// A new name.
    pub name: Option<String>,
    /// A new e-mail address.
    pub email: Option<String>,
}

/// Loads the customer (from the cache when possible), applies the changes and saves it; the
/// repository's `#[invalidates]` drops every cached view of it.
#[derive(Clone)]
pub struct UpdateCustomerCommandHandler<R> {
    repository: R,
}

impl<R: CustomerRepository> UpdateCustomerCommandHandler<R> {
    /// A handler over `repository`.
    pub fn new(repository: R) -> Self {
        UpdateCustomerCommandHandler { repository }
    }

    /// Runs the command; returns the updated customer.
    pub async fn handle(
        &self,
        command: UpdateCustomerCommand,
    ) -> Result<Customer, RepositoryError> {
        let correlation_id = format!("{:032x}", fastrand::u128(..));
        let started = Instant::now();
        let changed: Vec<&str> = [
            command.name.as_ref().map(|_| "name"),
            command.email.as_ref().map(|_| "email"),
        ]
        .into_iter()
        .flatten()
        .collect();
        tracing::info!(
            correlation_id,
            customer_id = %command.id,
            changed_fields = ?changed,
            "processing UpdateCustomerCommand"
        );
        let result = self.apply(&command).await;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(_) => tracing::info!(
                correlation_id,
                customer_id = %command.id,
                duration_ms,
                "customer updated"
            ),
            Err(error) => tracing::warn!(
                correlation_id,
                customer_id = %command.id,
                duration_ms,
                %error,
                "customer update failed"
            ),
        }
        result
    }

    async fn apply(&self, command: &UpdateCustomerCommand) -> Result<Customer, RepositoryError> {
        let mut customer = self
            .repository
            .find_by_id(&command.id)
            .await?
            .ok_or_else(|| RepositoryError::NotFound(command.id.clone()))?;
        if let Some(name) = &command.name {
            customer.update_name(name)?;
        }
        if let Some(email) = &command.email {
            customer.update_email(email)?;
        }
        self.repository.save(&customer).await?;
        Ok(customer)
    }
}
