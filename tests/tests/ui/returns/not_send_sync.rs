use std::rc::Rc;

use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "customer.name.{id}", ttl = 600)]
    async fn name(&self, id: u64) -> Rc<String> {
        Rc::new(id.to_string())
    }
}

fn main() {}
