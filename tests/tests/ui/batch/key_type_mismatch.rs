use std::collections::HashMap;

use cache_runtime::{cached, Cache};

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.{id}", ttl = 60, batch = id in ids)]
    async fn find_by_ids(&self, ids: &[u64]) -> HashMap<String, String> {
        ids.iter().map(|id| (id.to_string(), id.to_string())).collect()
    }
}

fn main() {}
