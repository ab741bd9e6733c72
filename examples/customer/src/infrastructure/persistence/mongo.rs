//! The MongoDB store, on the official driver: a unique index on the lower-cased e-mail, the
//! active list sorted by `created_at` descending, pagination with skip/limit, and saves
//! conditional on the stored version (one `replaceOne` filtered on id and version).

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{ClientOptions, IndexOptions};
use mongodb::{Client, Collection, IndexModel};
use serde::{Deserialize, Serialize};

use super::{next_version, offset, refusal, CustomerStore};
use crate::domain::{Customer, CustomerStatus, RepositoryError};

/// A customer as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CustomerDocument {
    #[serde(rename = "_id")]
    id: String,
    name: String,
    email: String,
    email_lower: String,
    status: CustomerStatus,
    created_at: i64,
    /// Absent (or null) in documents stored before versions existed: version 0.
    #[serde(default)]
    version: Option<u64>,
}

impl From<&Customer> for CustomerDocument {
    fn from(c: &Customer) -> Self {
        CustomerDocument {
            id: c.id.clone(),
            name: c.name.clone(),
            email: c.email.clone(),
            email_lower: c.email.to_lowercase(),
            status: c.status,
            created_at: c.created_at,
            version: Some(c.version),
        }
    }
}

impl From<CustomerDocument> for Customer {
    fn from(d: CustomerDocument) -> Self {
        Customer {
            id: d.id,
            name: d.name,
            email: d.email,
            status: d.status,
            created_at: d.created_at,
            version: d.version.unwrap_or(0),
        }
    }
}

/// Customers in the `customers` collection of a database.
#[derive(Clone)]
pub struct MongoCustomerStore {
    collection: Collection<CustomerDocument>,
}

fn unavailable(e: mongodb::error::Error) -> RepositoryError {
    RepositoryError::Unavailable(e.to_string())
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        _ => {
            e.to_string().contains("E11000")
                || e.to_string().to_lowercase().contains("duplicate key")
        }
    }
}

impl MongoCustomerStore {
    /// Connects to `uri` (e.g. `mongodb://127.0.0.1:27017/?directConnection=true`) and makes
    /// sure the indexes exist. Fails when the server cannot be reached within 5 s.
    pub async fn connect(uri: &str, database: &str) -> Result<Self, RepositoryError> {
        let options = ClientOptions::parse(uri).await.map_err(unavailable)?;
        Self::with_options(options, database).await
    }

    /// Like [`connect`](Self::connect), with driver options (e.g. a command monitor).
    pub async fn with_options(
        mut options: ClientOptions,
        database: &str,
    ) -> Result<Self, RepositoryError> {
        options
            .server_selection_timeout
            .get_or_insert(std::time::Duration::from_secs(5));
        options
            .connect_timeout
            .get_or_insert(std::time::Duration::from_secs(5));
        let client = Client::with_options(options).map_err(unavailable)?;
        let collection = client
            .database(database)
            .collection::<CustomerDocument>("customers");
        let unique_email = IndexModel::builder()
            .keys(doc! { "email_lower": 1 })
            .options(
                IndexOptions::builder()
                    .unique(true)
                    .name("email_unique".to_owned())
                    .build(),
            )
            .build();
        collection
            .create_index(unique_email)
            .await
            .map_err(unavailable)?;
        let by_status = IndexModel::builder()
            .keys(doc! { "status": 1, "created_at": -1 })
            .build();
        collection
            .create_index(by_status)
            .await
            .map_err(unavailable)?;
        Ok(MongoCustomerStore { collection })
    }

    async fn find_one(&self, filter: Document) -> Result<Option<Customer>, RepositoryError> {
        Ok(self
            .collection
            .find_one(filter)
            .await
            .map_err(unavailable)?
            .map(Customer::from))
    }
}

impl CustomerStore for MongoCustomerStore {
    async fn get(&self, id: &str) -> Result<Option<Customer>, RepositoryError> {
        self.find_one(doc! { "_id": id }).await
    }

    async fn get_many(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Customer>, RepositoryError> {
        let cursor = self
            .collection
            .find(doc! { "_id": { "$in": ids } })
            .await
            .map_err(unavailable)?;
        let documents: Vec<CustomerDocument> = cursor.try_collect().await.map_err(unavailable)?;
        Ok(documents
            .into_iter()
            .map(Customer::from)
            .map(|customer| (customer.id.clone(), customer))
            .collect())
    }

    async fn get_by_email(&self, email: &str) -> Result<Option<Customer>, RepositoryError> {
        self.find_one(doc! { "email_lower": email.to_lowercase() })
            .await
    }

    async fn active(&self, page: u32, limit: u32) -> Result<Vec<Customer>, RepositoryError> {
        let cursor = self
            .collection
            .find(doc! { "status": "active" })
            .sort(doc! { "created_at": -1, "_id": 1 })
            .skip(offset(page, limit))
            .limit(i64::from(limit))
            .await
            .map_err(unavailable)?;
        let documents: Vec<CustomerDocument> = cursor.try_collect().await.map_err(unavailable)?;
        Ok(documents.into_iter().map(Customer::from).collect())
    }

    async fn save(&self, customer: &Customer) -> Result<Customer, RepositoryError> {
        let saved = next_version(customer);
        let never_saved = customer.version == 0;
        let stored_at = if never_saved {
            // None stored (the upsert inserts), or one stored before versions existed (no
            // version, or a null one: `null` matches both).
            doc! { "_id": &customer.id, "version": { "$in": [null, 0_i64] } }
        } else {
            let version = i64::try_from(customer.version).unwrap_or(i64::MAX);
            doc! { "_id": &customer.id, "version": version }
        };
        let outcome = self
            .collection
            .replace_one(stored_at, CustomerDocument::from(&saved))
            .upsert(never_saved)
            .await;
        match outcome {
            Ok(written) if written.matched_count == 1 || written.upserted_id.is_some() => Ok(saved),
            Ok(_) => Err(refusal(customer, self.get(&customer.id).await?.as_ref())),
            // On the address, or on `_id` when another save created the customer first; the
            // server's message does not always say which index, so the stored rows do.
            Err(e) if is_duplicate_key(&e) => match self.get_by_email(&customer.email).await? {
                Some(other) if other.id != customer.id => {
                    Err(RepositoryError::DuplicateEmail(customer.email.clone()))
                }
                _ => Err(refusal(customer, self.get(&customer.id).await?.as_ref())),
            },
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RepositoryError> {
        let result = self
            .collection
            .delete_one(doc! { "_id": id })
            .await
            .map_err(unavailable)?;
        if result.deleted_count == 0 {
            return Err(RepositoryError::NotFound(id.to_owned()));
        }
        Ok(())
    }

    async fn count(&self) -> Result<u64, RepositoryError> {
        self.collection
            .count_documents(doc! {})
            .await
            .map_err(unavailable)
    }
}
