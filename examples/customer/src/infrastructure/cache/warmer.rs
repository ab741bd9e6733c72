//! Warms the cache from what was really read: the most-read keys of `find_by_id` (recorded by
//! the runtime; with Redis, summed over what the running instances publish), and the first
//! pages of the active list. There is no hard-coded list of ids.

use std::time::{Duration, Instant};

use crate::domain::{CustomerRepository, RepositoryError};
use cache_runtime::{decode_value, encode_value, CallOutcome};

/// What a warm-up did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WarmReport {
    /// Customers loaded into the cache.
    pub customers: usize,
    /// Customers among the most read that were already cached.
    pub already_warm: usize,
    /// Ids among the most read that no longer exist.
    pub missing: usize,
    /// Pages of the active list loaded.
    pub pages: usize,
    /// How long it took.
    pub duration: Duration,
}

/// How many ids the warmer loads with one batch call.
pub const WARM_BATCH: usize = 100;

/// Loads the hot entries into the cache through the repository.
pub struct CustomerCacheWarmer<R> {
    repository: R,
}

/// The id in a rendered `customer.{id}` key.
pub fn id_of_key(key: &str) -> Option<String> {
    decode_value(key.strip_prefix("customer.")?)
}

impl<R: CustomerRepository> CustomerCacheWarmer<R> {
    /// A warmer over `repository`.
    pub fn new(repository: R) -> Self {
        CustomerCacheWarmer { repository }
    }

    /// The ids of the `limit` most-read customers, given the hot keys of `find_by_id`.
    pub fn top_ids(hot_keys: &[(String, u64)], limit: usize) -> Vec<String> {
        hot_keys
            .iter()
            .filter_map(|(key, _)| id_of_key(key))
            .take(limit)
            .collect()
    }

    /// Warms `ids` and the first `pages` pages of `page_size` active customers; `progress` is
    /// called after each step.
    pub async fn warm(
        &self,
        ids: &[String],
        pages: u32,
        page_size: u32,
        mut progress: impl FnMut(),
    ) -> Result<WarmReport, RepositoryError> {
        let started = Instant::now();
        let mut report = WarmReport::default();
        tracing::info!(customers = ids.len(), pages, "cache warm-up started");
        // A batch at a time: the ids not cached are read from the store in one query.
        for chunk in ids.chunks(WARM_BATCH) {
            let (found, observed) =
                cache_runtime::observe(self.repository.find_by_ids(chunk)).await;
            let found = found?;
            let hits: Vec<&str> = observed
                .iter()
                .filter(|o| o.outcome == CallOutcome::Hit)
                .map(|o| o.key.as_str())
                .collect();
            for id in chunk {
                match found.get(id) {
                    Some(_)
                        if hits.contains(&format!("customer.{}", encode_value(id)).as_str()) =>
                    {
                        report.already_warm += 1
                    }
                    Some(_) => report.customers += 1,
                    None => report.missing += 1,
                }
                progress();
            }
        }
        for page in 1..=pages {
            self.repository
                .find_active_customers(page, page_size)
                .await?;
            report.pages += 1;
            progress();
        }
        report.duration = started.elapsed();
        tracing::info!(
            warmed = report.customers,
            missing = report.missing,
            pages = report.pages,
            duration_ms = report.duration.as_secs_f64() * 1000.0,
            "cache warm-up done"
        );
        Ok(report)
    }
}
