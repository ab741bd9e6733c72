use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "order.{id}", ttl = 600, tags = ["order", "customer.{customer_id}"])]
    async fn find_order(&self, id: u64) -> Option<String> {
        Some(id.to_string())
    }
}

fn main() {}
