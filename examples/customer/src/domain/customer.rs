//! The customer entity.

use cache_runtime::{CacheTags, TagSink};
use serde::{Deserialize, Serialize};

use super::RepositoryError;

/// Whether a customer shows up in the active list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CustomerStatus {
    /// Listed.
    Active,
    /// Not listed.
    Inactive,
}

/// A customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its e-mail address, unique (case-insensitively) among customers.
    pub email: String,
    /// Whether it is listed.
    pub status: CustomerStatus,
    /// Creation time, milliseconds since the Unix epoch; the active list is newest first.
    pub created_at: i64,
}

impl Customer {
    /// Changes the name.
    pub fn update_name(&mut self, name: &str) -> Result<(), RepositoryError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(RepositoryError::Invalid("the name is empty".into()));
        }
        self.name = name.to_owned();
        Ok(())
    }

    /// Changes the e-mail address.
    pub fn update_email(&mut self, email: &str) -> Result<(), RepositoryError> {
        let email = email.trim();
        let valid = email
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'));
        if !valid {
            return Err(RepositoryError::Invalid(format!(
                "{email:?} is not an e-mail address"
            )));
        }
        self.email = email.to_owned();
        Ok(())
    }
}

/// Every cached view of a customer carries `customer.<id>`, so saving or deleting it drops
/// them all: its id lookup, every e-mail lookup that found it (the old address included), and
/// every list page it is on.
impl CacheTags for Customer {
    fn cache_tags(&self, tags: &mut TagSink) {
        // Encoded as the `customer.{id}` templates encode it, so that the tags match.
        tags.push_encoded("customer.", &self.id);
    }
}
