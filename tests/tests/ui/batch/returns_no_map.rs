use cache_runtime::{cached, Cache};

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

impl Repo {
    // An option over the value adds no error of its own.
    #[cached(key = "customer.{id}", ttl = 60, batch = id in ids, unless = result.is_none())]
    async fn find_by_ids(&self, ids: &[String]) -> Result<Vec<String>, String> {
        Ok(ids.to_vec())
    }
}

fn main() {}
