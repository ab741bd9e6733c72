use cache_runtime::{invalidates, Cache};

struct Customer {
    id: String,
}

struct Repo {
    cache: Cache,
}

impl Repo {
    #[invalidates(tags = ["customer.{customer.idd}"])]
    async fn save(&self, customer: &Customer) -> Result<(), String> {
        let _ = &customer.id;
        Ok(())
    }
}

fn main() {}
