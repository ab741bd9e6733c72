use std::rc::Rc;

use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    // The value (`u64`) can be cached, but the future must be `Send`: so must the error.
    #[cached(key = "customer.age.{id}", ttl = 600)]
    async fn age(&self, id: u64) -> Result<u64, Rc<str>> {
        Ok(id)
    }
}

fn main() {}
