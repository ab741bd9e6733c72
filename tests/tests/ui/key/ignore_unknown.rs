use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.list.page.{page}", ttl = 300, ignore = [limt])]
    async fn find_customers(&self, page: u32, limit: u32) -> Vec<u32> {
        (page * limit..(page + 1) * limit).collect()
    }
}

fn main() {}
