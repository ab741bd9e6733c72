use cache_runtime::{cached, Cache};

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.{id}", ttl = 600, lock = 0)]
    async fn find_by_id(&self, id: u64) -> Option<String> {
        Some(id.to_string())
    }
}

fn main() {}
