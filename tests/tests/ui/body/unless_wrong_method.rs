use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "feed.{user}", ttl = 60, unless = result.is_blank())]
    async fn feed(&self, user: u64) -> Vec<String> {
        vec![user.to_string()]
    }
}

fn main() {}
