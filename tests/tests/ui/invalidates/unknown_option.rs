use cache_runtime::{invalidates, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    // `key` is #[cached]'s; #[invalidates] takes `keys = [...]`.
    #[invalidates(key = "customer.{id}")]
    async fn delete(&self, id: u64) -> Result<(), String> {
        let _ = id;
        Ok(())
    }
}

fn main() {}
