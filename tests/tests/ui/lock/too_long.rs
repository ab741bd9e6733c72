use cache_runtime::{cached, Cache};

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

impl Repo {
    // Longer than 10 years.
    #[cached(key = "customer.{id}", ttl = 600, lock = 18446744073709551615)]
    async fn find_by_id(&self, id: u64) -> Option<String> {
        Some(id.to_string())
    }
}

fn main() {}
