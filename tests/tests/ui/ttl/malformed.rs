use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.{id}", ttl = "10 minutes")]
    async fn find_by_id(&self, id: u64) -> Option<String> {
        Some(id.to_string())
    }
}

fn main() {}
