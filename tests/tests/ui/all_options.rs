//! Every option of #[cached] and #[invalidates], used as documented: this must compile.

#![deny(warnings)]

use std::sync::LazyLock;

use cache_runtime::{cached, invalidates, Cache, CacheTags, TagSink};

#[derive(Clone, Debug)]
pub struct Customer {
    pub id: String,
    pub email: String,
}

impl CacheTags for Customer {
    fn cache_tags(&self, tags: &mut TagSink) {
        tags.push(format_args!("customer.{}", self.id));
    }
}

#[derive(Clone, Debug)]
pub struct StoreError;

#[derive(Clone)]
pub struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(
        key = "customer.email.{email | trim | lower | sha256}.region.{region}",
        ttl = "10m",
        tags = ["customer", "customer.region.{region | upper}"],
        swr = 60,
        lock = "2s",
        beta = 1.0,
        jitter = "30s",
        cache = self.cache,
        cache_none = false,
        condition = !email.is_empty(),
        unless = result.as_ref().is_some_and(|c| c.id.is_empty()),
        result_tags,
        ignore = [trace],
        name = "customer.by_email",
        version = 2,
    )]
    pub async fn find_by_email(&self, email: &str, region: &str, trace: u64) -> Result<Option<Customer>, StoreError> {
        let _ = (region, trace);
        Ok(Some(Customer { id: "1".into(), email: email.into() }))
    }

    #[cached(
        key = "customer.list.page.{page}.limit.{limit}",
        ttl = 300,
        result_tags = result.iter().map(|c| format!("customer.{}", c.id)),
    )]
    pub async fn list(&self, page: u32, limit: u32) -> Result<Vec<Customer>, StoreError> {
        let _ = (page, limit);
        Ok(Vec::new())
    }

    #[invalidates(
        tags = ["customer.{customer.id}", "customer.list"],
        keys = ["customer.email.{customer.email | trim | lower | sha256}"],
        cache = self.cache,
        name = "customer.save",
    )]
    pub async fn save(&self, customer: &Customer) -> Result<(), StoreError> {
        let _ = customer;
        Ok(())
    }
}

static CACHE: LazyLock<Cache> = LazyLock::new(|| Cache::in_memory(1_000));

#[cached(key = "square.{n}", ttl = 60, cache = CACHE)]
async fn square(n: u64) -> u64 {
    n * n
}

#[invalidates(keys = ["square.{n}"], cache = CACHE)]
async fn forget_square(n: u64) {
    let _ = n;
}

fn main() {
    let repo = Repo { cache: Cache::in_memory(1_000) };
    let _ = repo.find_by_email("ann@example.com", "eu", 7);
    let _ = repo.list(1, 20);
    let _ = repo.save(&Customer { id: "1".into(), email: "ann@example.com".into() });
    let _ = square(3);
    let _ = forget_square(3);
}
