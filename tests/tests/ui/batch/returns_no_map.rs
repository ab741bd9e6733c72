use cache_runtime::{cached, Cache};

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.{id}", ttl = 60, batch = id in ids)]
    async fn find_by_ids(&self, ids: &[String]) -> Result<Vec<String>, String> {
        Ok(ids.to_vec())
    }
}

fn main() {}
