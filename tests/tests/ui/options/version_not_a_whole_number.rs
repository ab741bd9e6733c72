use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.{id}", ttl = 600, version = 0)]
    async fn find_by_id(&self, id: u64) -> Option<String> {
        Some(id.to_string())
    }

    #[cached(key = "customer.email.{email}", ttl = 600, version = "2")]
    async fn find_by_email(&self, email: &str) -> Option<String> {
        Some(email.to_owned())
    }
}

fn main() {}
