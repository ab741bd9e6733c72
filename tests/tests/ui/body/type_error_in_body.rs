use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.count.{id}", ttl = 600)]
    async fn count(&self, id: u64) -> u64 {
        let _ = id;
        String::from("many")
    }
}

fn main() {}
