use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    // A bad attribute: the function is still emitted, so callers and the rest of the crate
    // keep type-checking.
    #[cached(key = "customer.{id}", ttl = 0)]
    async fn find_by_id(&self, id: u64) -> Option<String> {
        Some(id.to_string())
    }
}

async fn caller(repo: &Repo) -> Option<String> {
    repo.find_by_id(1).await
}

fn unrelated() -> u32 {
    "not a number"
}

fn main() {
    let _ = caller;
    let _ = unrelated;
}
