use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    // A blocking function caches in process only: no other instance to wait for.
    #[cached(key = "report.{day}", ttl = "1h", lock = "10s")]
    fn report(&self, day: u32) -> String {
        day.to_string()
    }
}

fn main() {}
