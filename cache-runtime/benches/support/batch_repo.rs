//! A repository with a single-id method and the batch method sharing its entries.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cache_runtime::Cache;

use super::customer::{customer, Customer};

pub struct Repo {
    pub cache: Cache,
}

impl Repo {
    #[cache_runtime::cached(key = "customer.{id}", ttl = 600, tags = ["customer", "customer.{id}"])]
    pub async fn find_by_id(&self, id: &str) -> Result<Option<Customer>, Infallible> {
        Ok(Some(customer(id)))
    }

    #[cache_runtime::cached(
        key = "customer.{id}",
        ttl = 600,
        tags = ["customer", "customer.{id}"],
        batch = id in ids,
        shares = find_by_id
    )]
    pub async fn find_by_ids(
        &self,
        ids: &[String],
    ) -> Result<HashMap<String, Customer>, Infallible> {
        Ok(ids.iter().map(|id| (id.clone(), customer(id))).collect())
    }
}

/// The time of `iters` batches of 100 ids, each the first 50 of `ids` (cached) and 50 ids never
/// seen (numbered by `next`); building each batch is not timed.
#[allow(dead_code)] // benches/instructions.rs counts all-hit batches only
pub async fn time_half_missed(
    repo: &Repo,
    ids: &[String],
    next: &AtomicU64,
    iters: u64,
) -> Duration {
    let mut elapsed = Duration::ZERO;
    for _ in 0..iters {
        let mut batch: Vec<String> = ids[..50].to_vec();
        for _ in 0..50 {
            batch.push(format!("n{}", next.fetch_add(1, Ordering::Relaxed)));
        }
        let started = Instant::now();
        black_box(repo.find_by_ids(&batch).await.unwrap());
        elapsed += started.elapsed();
    }
    elapsed
}
