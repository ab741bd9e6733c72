//! A repository with a single-id method and the batch method sharing its entries.

use std::collections::HashMap;
use std::convert::Infallible;

use cache_runtime::Cache;

use super::customer::{customer, Customer};

pub struct Repo {
    pub cache: Cache,
}

impl Repo {
    #[cache_runtime::cached(key = "customer.{id}", ttl = 600, tags = ["customer", "customer.{id}"])]
    pub async fn find_by_id(&self, id: &str) -> Result<Option<Customer>, Infallible> {
        Ok(Some(customer(id)))
    }

    #[cache_runtime::cached(
        key = "customer.{id}",
        ttl = 600,
        tags = ["customer", "customer.{id}"],
        batch = id in ids,
        shares = find_by_id
    )]
    pub async fn find_by_ids(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Customer>, Infallible> {
        Ok(ids.iter().map(|id| (id.clone(), customer(id))).collect())
    }
}
