use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
    tenant: u64,
}

impl Repo {
    #[cached(key = "tenant.{self.tenant}.customer.{id}", ttl = 600)]
    async fn find_by_id(&self, id: u64) -> Option<String> {
        Some(format!("{}/{id}", self.tenant))
    }
}

fn main() {}
