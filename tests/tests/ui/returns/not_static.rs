use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    // The value borrows from the argument: it cannot outlive the call in the cache.
    #[cached(key = "trimmed.{text}", ttl = 600)]
    async fn trimmed<'a>(&self, text: &'a str) -> &'a str {
        text.trim()
    }
}

fn main() {}
