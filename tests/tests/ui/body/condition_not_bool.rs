use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "search.{query}", ttl = 60, condition = query.len())]
    async fn search(&self, query: &str) -> Vec<String> {
        vec![query.to_string()]
    }
}

fn main() {}
