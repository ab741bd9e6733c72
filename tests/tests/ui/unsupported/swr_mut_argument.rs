use cache_runtime::{cached, Cache};

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(key = "page.{page}", ttl = 600, swr = 60, ignore = [buffer])]
    async fn page(&self, page: u32, buffer: &mut Vec<u32>) -> Vec<u32> {
        buffer.push(page);
        buffer.clone()
    }
}

fn main() {}
