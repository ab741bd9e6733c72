use cache_runtime::{invalidates, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[invalidates(name = "customer.save")]
    async fn save(&self, id: u64) -> Result<(), String> {
        let _ = id;
        Ok(())
    }
}

fn main() {}
