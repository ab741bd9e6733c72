use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "point.{x}", ttl = 600)]
    async fn point(&self, (x, y): (u32, u32)) -> u32 {
        x + y
    }
}

fn main() {}
