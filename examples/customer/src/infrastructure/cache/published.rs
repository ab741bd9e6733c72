//! With Redis, each `serve` instance publishes its counters and its most-read keys every
//! second, as one field of the hash `{customer-example}:stats` (the field is the instance, the
//! value the statistics and when they were published), so that the console's `stats` and
//! `warm` see what the running instances see. One key: the same commands on one Redis and on
//! a cluster. What an instance published more than 10 s ago is left out, and removed.

use std::collections::BTreeMap;
use std::time::Duration;

use cache_runtime::{Cache, MethodStats};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use serde::{Deserialize, Serialize};

use crate::infrastructure::config::SharedRedis;

const KEY: &str = "{customer-example}:stats";

/// How long an instance's statistics count after it published them.
const FRESH_MS: i64 = 10_000;

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

/// What one instance publishes, and when.
#[derive(Serialize, Deserialize)]
struct Published {
    at_ms: i64,
    stats: PublishedStats,
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

/// One Redis, or a cluster.
#[derive(Clone)]
enum Client {
    Single(redis::Client),
    Cluster(Box<ClusterClient>),
}

/// A connection to one Redis, or to a cluster.
enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(conn) => conn.req_packed_command(cmd),
            Connection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(conn) => conn.get_db(),
            Connection::Cluster(conn) => conn.get_db(),
        }
    }
}

impl Client {
    async fn connect(&self) -> redis::RedisResult<Connection> {
        Ok(match self {
            Client::Single(client) => {
                Connection::Single(client.get_multiplexed_async_connection().await?)
            }
            Client::Cluster(client) => Connection::Cluster(client.get_async_connection().await?),
        })
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Publishes and reads instances' statistics in Redis.
#[derive(Clone)]
pub struct StatsPublisher {
    client: Client,
}

impl StatsPublisher {
    /// On the shared Redis.
    pub fn new(shared: &SharedRedis) -> Result<Self, redis::RedisError> {
        let client = match shared {
            SharedRedis::Url(url) => Client::Single(redis::Client::open(url.as_str())?),
            SharedRedis::Cluster(seeds) => {
                Client::Cluster(Box::new(ClusterClient::new(seeds.clone())?))
            }
        };
        Ok(StatsPublisher { client })
    }

    /// Publishes `cache`'s statistics every second, as `instance`, until the process ends.
    pub fn spawn(&self, cache: Cache, instance: String, hot_method: &'static str) {
        let client = self.client.clone();
        tokio::spawn(async move {
            let mut connection = None;
            loop {
                if connection.is_none() {
                    connection = client.connect().await.ok();
                }
                let published = Published {
                    at_ms: now_ms(),
                    stats: PublishedStats::of(&cache, hot_method),
                };
                if let (Some(conn), Ok(json)) =
                    (connection.as_mut(), serde_json::to_string(&published))
                {
                    // The hash goes a minute after the last instance stopped publishing.
                    let sent: Result<(), redis::RedisError> = redis::pipe()
                        .cmd("HSET")
                        .arg(KEY)
                        .arg(&instance)
                        .arg(json)
                        .ignore()
                        .cmd("PEXPIRE")
                        .arg(KEY)
                        .arg(60_000)
                        .ignore()
                        .query_async(conn)
                        .await;
                    if sent.is_err() {
                        connection = None; // reconnect next time
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// The sum of what the running instances published, and how many did.
    pub async fn collect(&self) -> Result<(PublishedStats, usize), redis::RedisError> {
        let mut conn = self.client.connect().await?;
        let all: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(KEY)
            .query_async(&mut conn)
            .await?;
        let now = now_ms();
        let mut sum = PublishedStats::default();
        let mut instances = 0;
        let mut gone = Vec::new();
        for (instance, json) in all {
            match serde_json::from_str::<Published>(&json) {
                Ok(published) if now - published.at_ms <= FRESH_MS => {
                    sum.add(published.stats);
                    instances += 1;
                }
                _ => gone.push(instance),
            }
        }
        if !gone.is_empty() {
            let _: i64 = redis::cmd("HDEL")
                .arg(KEY)
                .arg(&gone)
                .query_async(&mut conn)
                .await?;
        }
        Ok((sum, instances))
    }
}
