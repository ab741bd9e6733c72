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
    // An option over the value adds no error of its own.
    #[cached(
        key = "customer.{id}",
        ttl = 60,
        batch = id in ids,
        unless = result.as_ref().is_some_and(|c| c.name.is_empty())
    )]
    async fn find_by_ids(&self, ids: &[String]) -> HashMap<String, Customer> {
        ids.iter()
            .map(|id| (id.clone(), Customer { name: id.clone() }))
            .collect()
    }
}

fn main() {}
