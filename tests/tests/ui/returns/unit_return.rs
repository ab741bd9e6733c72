use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.touch.{id}", ttl = 600)]
    async fn touch(&self, id: u64) {
        let _ = id;
    }
}

fn main() {}
