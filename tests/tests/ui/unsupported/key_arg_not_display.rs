use cache_runtime::{cached, Cache};

struct CustomerId(u64);

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.{id}", ttl = 600)]
    async fn find_by_id(&self, id: CustomerId) -> Option<String> {
        Some(id.0.to_string())
    }
}

fn main() {}
