use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    // Every mistake is reported at once, each on its own token, in the order of the source.
    #[cached(
        key = "customer.{idd}",
        ttl = 0,
        tags = ["customer.{id | lowercase}"],
        swr = "10 minutes",
        refresh = true,
        beta = 0.0,
    )]
    fn find_by_id(&self, id: u64) -> Option<String> {
        Some(id.to_string())
    }
}

fn main() {}
