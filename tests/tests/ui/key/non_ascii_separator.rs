use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    // Values keep `·` unencoded: ("x", "y·z") and ("x·y", "z") would both render "p.x·y·z".
    #[cached(key = "p.{a}·{b}", ttl = 60)]
    async fn one(&self, a: &str, b: &str) -> String {
        format!("{a}{b}")
    }
}

fn main() {}
