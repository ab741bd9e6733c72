use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    // "1" renders "x.1b" and so does "1b" with the literal removed: a separator is needed.
    #[cached(key = "x.{a}b", ttl = 60)]
    async fn one(&self, a: &str) -> String {
        a.to_string()
    }
}

fn main() {}
