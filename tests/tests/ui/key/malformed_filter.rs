use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.email.{email | sha-256}", ttl = 300)]
    async fn find_by_email(&self, email: &str) -> Option<String> {
        Some(email.to_string())
    }
}

fn main() {}
