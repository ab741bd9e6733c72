use cache_runtime::{cached, Cache};

#[derive(Clone)]
struct Customer {
    id: u64,
}

struct Repo {
    cache: Cache,
}

impl Repo {
    // Bare `result_tags` asks the value for its tags through `CacheTags`.
    #[cached(key = "customer.{id}", ttl = 600, result_tags)]
    async fn find_by_id(&self, id: u64) -> Option<Customer> {
        Some(Customer { id })
    }
}

fn main() {}
