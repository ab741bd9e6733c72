use cache_runtime::{invalidates, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[invalidates(tags = ["customer.{id}"])]
    fn delete(&self, id: u64) -> Result<(), String> {
        let _ = id;
        Ok(())
    }
}

fn main() {}
