use cache_runtime::{cached, Cache};

#[derive(Clone)]
struct Repo {
    cache: Cache,
    loads: u64,
}

impl Repo {
    #[cached(key = "customer.{id}", ttl = 600, swr = 60)]
    async fn find_by_id(&mut self, id: u64) -> Option<String> {
        self.loads += 1;
        Some(id.to_string())
    }
}

fn main() {}
