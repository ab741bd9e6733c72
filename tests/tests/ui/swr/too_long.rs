use cache_runtime::{cached, Cache};

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

impl Repo {
    // One day longer than the maximum of 10 years.
    #[cached(key = "customer.{id}", ttl = 600, swr = "3651d")]
    async fn find_by_id(&self, id: u64) -> Option<String> {
        Some(id.to_string())
    }
}

fn main() {}
