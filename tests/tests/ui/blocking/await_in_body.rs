use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

async fn fetch(id: u64) -> String {
    id.to_string()
}

impl Repo {
    // A blocking function's body is a plain block, as in any `fn`.
    #[cached(key = "customer.{id}", ttl = 60)]
    fn find(&self, id: u64) -> String {
        fetch(id).await
    }
}

fn main() {}
