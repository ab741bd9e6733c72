use std::collections::HashMap;

use cache_runtime::{cached, Cache};

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.{id}", ttl = 60, swr = 30, lock, batch = id in ids)]
    async fn find_by_ids(&self, ids: &[String]) -> HashMap<String, String> {
        ids.iter().map(|id| (id.clone(), id.clone())).collect()
    }

    #[cached(key = "customer.{id}", ttl = 60, batch = id in ids)]
    fn blocking(&self, ids: &[String]) -> HashMap<String, String> {
        ids.iter().map(|id| (id.clone(), id.clone())).collect()
    }
}

fn main() {}
