use std::collections::HashMap;

use cache_runtime::{cached, Cache};

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.{id}", ttl = 60, batch = id in ids)]
    async fn find_by_ids(&self, ids: &str) -> HashMap<String, String> {
        HashMap::from([(ids.to_owned(), ids.to_owned())])
    }
}

fn main() {}
