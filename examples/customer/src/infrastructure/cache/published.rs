//! With Redis, each `serve` instance publishes its counters and its most-read keys every
//! second (`customer-example:stats:<instance>`, expiring after 10 s), so that the console's
//! `stats` and `warm` see what the running instances see.

use std::collections::BTreeMap;
use std::time::Duration;

use cache_runtime::{Cache, MethodStats};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

const PREFIX: &str = "customer-example:stats:";

/// One method's counters, as published.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedMethod {
    /// Fresh hits.
    pub hits: u64,
    /// Misses.
    pub misses: u64,
    /// Stale hits.
    pub stale_hits: u64,
    /// Backend errors.
    pub backend_errors: u64,
}

/// What one instance publishes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedStats {
    /// Per method.
    pub methods: BTreeMap<String, PublishedMethod>,
    /// The most-read keys of `find_by_id`, with counts.
    pub hot_keys: Vec<(String, u64)>,
}

impl PublishedStats {
    /// This process's view.
    pub fn of(cache: &Cache, hot_method: &str) -> Self {
        let methods = cache
            .stats()
            .methods
            .iter()
            .map(|m: &MethodStats| {
                (
                    m.method.to_owned(),
                    PublishedMethod {
                        hits: m.hits,
                        misses: m.misses,
                        stale_hits: m.stale_hits,
                        backend_errors: m.backend_errors,
                    },
                )
            })
            .collect();
        PublishedStats {
            methods,
            hot_keys: cache.hot_keys(hot_method, 1_000),
        }
    }

    /// Adds another instance's view.
    pub fn add(&mut self, other: PublishedStats) {
        for (name, m) in other.methods {
            let sum = self.methods.entry(name).or_default();
            sum.hits += m.hits;
            sum.misses += m.misses;
            sum.stale_hits += m.stale_hits;
            sum.backend_errors += m.backend_errors;
        }
        let mut keys: BTreeMap<String, u64> = self.hot_keys.drain(..).collect();
        for (key, count) in other.hot_keys {
            *keys.entry(key).or_default() += count;
        }
        self.hot_keys = keys.into_iter().collect();
        self.hot_keys
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    }
}

/// Publishes and reads instances' statistics in Redis.
#[derive(Clone)]
pub struct StatsPublisher {
    client: redis::Client,
}

impl StatsPublisher {
    /// On the Redis at `url`.
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(StatsPublisher {
            client: redis::Client::open(url)?,
        })
    }

    /// Publishes `cache`'s statistics every second, as `instance`, until the process ends.
    pub fn spawn(&self, cache: Cache, instance: String, hot_method: &'static str) {
        let client = self.client.clone();
        tokio::spawn(async move {
            let key = format!("{PREFIX}{instance}");
            let mut connection = None;
            loop {
                if connection.is_none() {
                    connection = client.get_multiplexed_async_connection().await.ok();
                }
                if let (Some(conn), Ok(json)) = (
                    connection.as_mut(),
                    serde_json::to_string(&PublishedStats::of(&cache, hot_method)),
                ) {
                    let published: Result<(), redis::RedisError> =
                        conn.set_ex(&key, json, 10).await;
                    if published.is_err() {
                        connection = None; // reconnect next time
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// The sum of what the running instances published, and how many did.
    pub async fn collect(&self) -> Result<(PublishedStats, usize), redis::RedisError> {
        let mut conn = self.client.get_multiplexed_async_connection().await?;
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{PREFIX}*"))
                .arg("COUNT")
                .arg(100)
                .query_async(&mut conn)
                .await?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut sum = PublishedStats::default();
        let mut instances = 0;
        for key in keys {
            let json: Option<String> = conn.get(&key).await?;
            if let Some(stats) = json.and_then(|j| serde_json::from_str::<PublishedStats>(&j).ok())
            {
                sum.add(stats);
                instances += 1;
            }
        }
        Ok((sum, instances))
    }
}
