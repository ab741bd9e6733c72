use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    // `limit` shapes the result but not the key: page 1 of 20 and page 1 of 50 would collide.
    #[cached(key = "customer.list.active.page.{page}", ttl = 300)]
    async fn find_active_customers(&self, page: u32, limit: u32) -> Vec<u32> {
        (page * limit..(page + 1) * limit).collect()
    }
}

fn main() {}
