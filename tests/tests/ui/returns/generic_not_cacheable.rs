use cache_runtime::{cached, Cache};

struct Repo {
    cache: Cache,
}

impl Repo {
    // `T` is only `Default`: the cache cannot clone it or share it between threads.
    #[cached(key = "default.{id}", ttl = 600)]
    async fn default_of<T: Default>(&self, id: u64) -> T {
        let _ = id;
        T::default()
    }
}

fn main() {}
