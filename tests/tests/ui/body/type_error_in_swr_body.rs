use cache_runtime::{cached, Cache};

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.name.{id}", ttl = 600, swr = 60)]
    async fn name(&self, id: &str) -> Result<String, String> {
        Ok(id.len())
    }
}

fn main() {}
