use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    // ("1", "23") and ("12", "3") would both render "x.123".
    #[cached(key = "x.{a}{b}", ttl = 60)]
    async fn pair(&self, a: &str, b: &str) -> String {
        format!("{a}{b}")
    }
}

fn main() {}
