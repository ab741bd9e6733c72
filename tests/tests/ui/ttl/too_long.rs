use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    // Longer than 10 years: now + ttl would overflow on every miss.
    #[cached(key = "customer.{id}", ttl = 18446744073709551615)]
    async fn find_by_id(&self, id: u64) -> Option<String> {
        Some(id.to_string())
    }
}

fn main() {}
