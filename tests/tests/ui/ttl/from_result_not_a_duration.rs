use cache_runtime::{cached, Cache};

#[derive(Clone)]
struct Repo {
    cache: Cache,
}

#[derive(Clone)]
struct Quote {
    label: String,
    weight: f64,
}

impl Repo {
    #[cached(key = "quote.{id}", ttl = result.label.clone())]
    async fn by_label(&self, id: u64) -> Quote {
        Quote { label: id.to_string(), weight: 1.0 }
    }

    #[cached(key = "weighted.{id}", ttl = 60, swr = result.weight * 2.0)]
    async fn by_weight(&self, id: u64) -> Quote {
        Quote { label: id.to_string(), weight: 1.0 }
    }
}

fn main() {}
