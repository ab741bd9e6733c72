use std::future::Future;
use std::pin::Pin;

use cache_runtime::{cached, invalidates, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    // Asynchronous without `async` (what `#[async_trait]` writes): not a blocking function.
    #[invalidates(tags = ["customer.{id}"])]
    fn delete(&self, id: u64) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + '_>> {
        let _ = id;
        Box::pin(async { Ok(()) })
    }

    #[cached(key = "customer.{id}", ttl = 60)]
    fn find(&self, id: u64) -> impl Future<Output = Option<String>> {
        async move { Some(id.to_string()) }
    }
}

fn main() {}
