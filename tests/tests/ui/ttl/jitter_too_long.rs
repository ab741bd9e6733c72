use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    // Both longer than 10 years (and so accepted before: the jitter is below the TTL).
    #[cached(key = "customer.{id}", ttl = "1000000d", jitter = "999999d")]
    async fn find_by_id(&self, id: u64) -> Option<String> {
        Some(id.to_string())
    }
}

fn main() {}
