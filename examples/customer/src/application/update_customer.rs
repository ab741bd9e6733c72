//! Updating a customer's name and e-mail address.

use std::time::Instant;

use serde::Deserialize;

use crate::domain::{Customer, CustomerRepository, RepositoryError};

/// How many times a change without a [`Precondition`] is tried when concurrent changes keep
/// winning: then it fails with [`RepositoryError::Conflict`].
pub const ATTEMPTS: usize = 5;

/// The versions a change may start from: the HTTP API's `If-Match`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Precondition {
    /// Whatever version is stored. A change that loses a race to another is applied again to
    /// a fresh read, up to [`ATTEMPTS`] times in all.
    #[default]
    Any,
    /// One of these versions. A change that finds another stored fails with
    /// [`RepositoryError::Conflict`], and is not retried: it was asked to apply to what the
    /// caller saw.
    OneOf(Vec<u64>),
}

impl Precondition {
    fn admits(&self, version: u64) -> bool {
        match self {
            Precondition::Any => true,
            Precondition::OneOf(versions) => versions.contains(&version),
        }
    }
}

/// Changes to a customer; absent fields stay as they are.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UpdateCustomerCommand {
    /// The customer.
    #[serde(skip)]
    pub id: String,
    /// The versions the change may apply to.
    #[serde(skip)]
    pub precondition: Precondition,
    /// A new name.
    pub name: Option<String>,
    /// A new e-mail address.
    pub email: Option<String>,
}

/// Loads the customer (from the cache when possible), applies the changes and saves it on
/// condition that the store still has the version it loaded; the repository's
/// `#[invalidates]` drops every cached view of it.
///
/// A cached copy may be stale (another instance changed the customer), and a concurrent
/// change may save first: either way the save is refused with `Conflict`, and the change is
/// applied again to a fresh read that bypasses the cache (once with a [`Precondition`], up to
/// [`ATTEMPTS`] times without). No change is lost and none resurrects old fields.
#[derive(Clone)]
pub struct UpdateCustomerCommandHandler<R> {
    repository: R,
}

impl<R: CustomerRepository> UpdateCustomerCommandHandler<R> {
    /// A handler over `repository`.
    pub fn new(repository: R) -> Self {
        UpdateCustomerCommandHandler { repository }
    }

    /// Runs the command; returns the customer as saved, at its new version.
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
        let mut attempts = 0;
        let result = self.apply(&command, &mut attempts).await;
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        match &result {
            Ok(customer) => tracing::info!(
                correlation_id,
                customer_id = %command.id,
                version = customer.version,
                attempts,
                duration_ms,
                "customer updated"
            ),
            Err(error) => tracing::warn!(
                correlation_id,
                customer_id = %command.id,
                attempts,
                duration_ms,
                %error,
                "customer update failed"
            ),
        }
        result
    }

    /// Reads, changes and saves until the save is accepted or may not be retried; counts the
    /// saves tried in `attempts`.
    async fn apply(
        &self,
        command: &UpdateCustomerCommand,
        attempts: &mut usize,
    ) -> Result<Customer, RepositoryError> {
        let mut fresh = false;
        loop {
            let read = if fresh {
                self.repository.find_by_id_fresh(&command.id).await?
            } else {
                self.repository.find_by_id(&command.id).await?
            };
            let Some(mut customer) = read else {
                if fresh {
                    return Err(RepositoryError::NotFound(command.id.clone()));
                }
                // A cached "not found" may predate the customer's creation elsewhere.
                fresh = true;
                continue;
            };
            if !command.precondition.admits(customer.version) {
                if fresh {
                    return Err(RepositoryError::Conflict(command.id.clone()));
                }
                // The cached copy may be behind the version asked for.
                fresh = true;
                continue;
            }
            if let Some(name) = &command.name {
                customer.update_name(name)?;
            }
            if let Some(email) = &command.email {
                customer.update_email(email)?;
            }
            *attempts += 1;
            match self.repository.save(&customer).await {
                Err(RepositoryError::Conflict(_)) if may_retry(command, fresh, *attempts) => {
                    fresh = true;
                }
                saved => return saved,
            }
        }
    }
}

/// Whether a save refused with `Conflict` is tried again from a fresh read: always when the
/// change started from a cached copy, which may have been stale; otherwise only without a
/// precondition, up to [`ATTEMPTS`] saves.
fn may_retry(command: &UpdateCustomerCommand, fresh: bool, attempts: usize) -> bool {
    !fresh || (command.precondition == Precondition::Any && attempts < ATTEMPTS)
}
