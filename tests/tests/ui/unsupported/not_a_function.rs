use cache_runtime::cached;

#[cached(key = "customer", ttl = 600)]
struct Customer {
    id: u64,
}

fn main() {}
