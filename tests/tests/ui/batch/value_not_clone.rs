use std::collections::HashMap;

use cache_runtime::{cached, Cache};

/// Not `Clone`: a cached value is cloned out of the cache on every hit.
struct Customer {
    name: String,
}

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.{id}", ttl = 60, batch = id in ids)]
    async fn find_by_ids(&self, ids: &[String]) -> HashMap<String, Customer> {
        ids.iter()
            .map(|id| (id.clone(), Customer { name: id.clone() }))
            .collect()
    }
}

fn main() {}
