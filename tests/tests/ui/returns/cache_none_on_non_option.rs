use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.list.{page}", ttl = 600, cache_none = false)]
    async fn list(&self, page: u32) -> Vec<u32> {
        vec![page]
    }
}

fn main() {}
