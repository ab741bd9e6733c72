use cache_runtime::{cached, Cache};

struct Customer {
    id: u64,
}

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.{id}", ttl = 600)]
    async fn find_by_id(&self, id: u64) -> Option<Customer> {
        Some(Customer { id })
    }
}

fn main() {}
