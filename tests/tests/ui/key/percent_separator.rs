use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    // `%` begins every escape: ("1", "2.3") and ("1.2", "3") would both render "q.1%2E2%2E3".
    #[cached(key = "q.{a}%2E{b}", ttl = 60)]
    async fn one(&self, a: &str, b: &str) -> String {
        format!("{a}{b}")
    }
}

fn main() {}
