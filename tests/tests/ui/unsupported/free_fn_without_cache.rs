use cache_runtime::cached;

#[cached(key = "square.{n}", ttl = 60)]
async fn square(n: u64) -> u64 {
    n * n
}

fn main() {}
