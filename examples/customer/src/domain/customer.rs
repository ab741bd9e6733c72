//! The customer entity.

use serde::{Deserialize, Serialize};

/// Whether a customer shows up in the active list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CustomerStatus {
    /// Listed.
    Active,
    /// Not listed.
    Inactive,
}

/// A change that breaks a rule of the domain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCustomer {
    /// A customer has a name.
    #[error("the name is empty")]
    EmptyName,
    /// An e-mail address has a user and a host with a dot.
    #[error("{0:?} is not an e-mail address")]
    NotAnEmailAddress(String),
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
    /// How many times it has been saved: 0 for a customer never saved. A save succeeds only
    /// while the stored customer is still at this version, and stores the next one
    /// (optimistic concurrency); the HTTP API gives it as the `ETag`. Customers stored or
    /// cached before versions existed read as 0.
    #[serde(default)]
    pub version: u64,
}

impl Customer {
    /// Changes the name.
    pub fn update_name(&mut self, name: &str) -> Result<(), InvalidCustomer> {
        let name = name.trim();
        if name.is_empty() {
            return Err(InvalidCustomer::EmptyName);
        }
        self.name = name.to_owned();
        Ok(())
    }

    /// Changes the e-mail address.
    pub fn update_email(&mut self, email: &str) -> Result<(), InvalidCustomer> {
        let email = email.trim();
        let valid = email
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'));
        if !valid {
            return Err(InvalidCustomer::NotAnEmailAddress(email.to_owned()));
        }
        self.email = email.to_owned();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> Customer {
        Customer {
            id: "c1".into(),
            name: "Ann".into(),
            email: "ann@example.com".into(),
            status: CustomerStatus::Active,
            created_at: 0,
            version: 0,
        }
    }

    #[test]
    fn a_change_that_breaks_a_rule_is_refused_and_changes_nothing() {
        let mut customer = ann();
        assert_eq!(customer.update_name("  "), Err(InvalidCustomer::EmptyName));
        let refused = customer.update_email(" ann@localhost ");
        assert_eq!(
            refused,
            Err(InvalidCustomer::NotAnEmailAddress("ann@localhost".into()))
        );
        assert_eq!(
            refused.unwrap_err().to_string(),
            r#""ann@localhost" is not an e-mail address"#
        );
        assert_eq!(customer, ann());
    }

    #[test]
    fn changes_are_trimmed() {
        let mut customer = ann();
        customer.update_name(" Anna ").unwrap();
        customer.update_email(" anna@example.com ").unwrap();
        assert_eq!(
            (customer.name.as_str(), customer.email.as_str()),
            ("Anna", "anna@example.com")
        );
    }
}
