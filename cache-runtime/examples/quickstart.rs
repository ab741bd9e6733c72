//! A repository over a slow "database", showing what each call did.
//!
//! `cargo run -p cache-runtime --example quickstart`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cache_runtime::{cached, invalidates, Cache, CacheTags, TagSink};

#[derive(Clone, Debug, PartialEq)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub email: String,
}

impl CacheTags for Customer {
    fn cache_tags(&self, tags: &mut TagSink) {
        tags.push(format_args!("customer.{}", self.id));
    }
}

#[derive(Clone, Debug)]
pub struct StoreError(String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "store error: {}", self.0)
    }
}

#[derive(Clone)]
pub struct CustomerRepository {
    rows: Arc<Mutex<HashMap<String, Customer>>>,
    cache: Cache,
}

impl CustomerRepository {
    async fn slow_read<T>(
        &self,
        f: impl FnOnce(&HashMap<String, Customer>) -> T,
    ) -> Result<T, StoreError> {
        tokio::time::sleep(Duration::from_millis(30)).await; // a database round trip
        let rows = self.rows.lock().map_err(|e| StoreError(e.to_string()))?;
        Ok(f(&rows))
    }

    #[cached(key = "customer.{id}", ttl = 600, tags = ["customer", "customer.{id}"], swr = 60)]
    pub async fn find_by_id(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.slow_read(|rows| rows.get(id).cloned()).await
    }

    #[cached(key = "customer.email.{email | lower | sha256}", ttl = 300, tags = ["customer.email"], result_tags)]
    pub async fn find_by_email(&self, email: &str) -> Result<Option<Customer>, StoreError> {
        self.slow_read(|rows| {
            rows.values()
                .find(|c| c.email.eq_ignore_ascii_case(email))
                .cloned()
        })
        .await
    }

    #[invalidates(tags = ["customer.{customer.id}", "customer.list"])]
    pub async fn save(&self, customer: &Customer) -> Result<(), StoreError> {
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.rows
            .lock()
            .map_err(|e| StoreError(e.to_string()))?
            .insert(customer.id.clone(), customer.clone());
        Ok(())
    }
}

async fn timed<T: std::fmt::Debug>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let value = f.await;
    println!(
        "{what:<44} {:>8.2} ms  {value:?}",
        start.elapsed().as_secs_f64() * 1000.0
    );
    value
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let repo = CustomerRepository {
        rows: Arc::default(),
        cache: Cache::in_memory(10_000),
    };
    let ann = Customer {
        id: "1".into(),
        name: "Ann".into(),
        email: "ann@example.com".into(),
    };
    if let Err(e) = repo.save(&ann).await {
        eprintln!("{e}");
        return;
    }

    timed("find_by_id(1)            miss", repo.find_by_id("1"))
        .await
        .unwrap();
    timed("find_by_id(1)            hit", repo.find_by_id("1"))
        .await
        .unwrap();
    timed(
        "find_by_email(ANN@...)   miss",
        repo.find_by_email("ANN@example.com"),
    )
    .await
    .unwrap();
    timed(
        "find_by_email(ann@...)   hit",
        repo.find_by_email("ann@example.com"),
    )
    .await
    .unwrap();

    let moved = Customer {
        email: "ann@new.example".into(),
        ..ann
    };
    timed("save(e-mail changed)     invalidate", repo.save(&moved))
        .await
        .unwrap();
    timed(
        "find_by_email(old)       miss: gone",
        repo.find_by_email("ann@example.com"),
    )
    .await
    .unwrap();
    timed(
        "find_by_id(1)            miss: reloaded",
        repo.find_by_id("1"),
    )
    .await
    .unwrap();

    println!("\n{}", repo.cache.stats());
}
