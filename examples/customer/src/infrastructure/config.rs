//! Configuration from the environment: `MONGODB_URI` selects MongoDB, `REDIS_URL` (one Redis)
//! or `REDIS_CLUSTER_NODES` (a Redis Cluster's seed nodes) the two-tier cache; with neither,
//! everything is embedded (in-memory store, in-process cache).

use cache_runtime::backend::{BackendError, RedisBackend};
use cache_runtime::Cache;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `REDIS_URL` or `REDIS_CLUSTER_NODES` is not usable.
    #[error("invalid {shared}")]
    InvalidRedisUrl {
        /// What was given.
        shared: SharedRedis,
        /// Why the backend refused it.
        #[source]
        source: BackendError,
    },
}

/// The Redis every instance shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SharedRedis {
    /// One Redis (`REDIS_URL`).
    Url(String),
    /// A Redis Cluster, by seed nodes (`REDIS_CLUSTER_NODES`: `host:port` or `redis://` URLs,
    /// comma-separated).
    Cluster(Vec<String>),
}

impl SharedRedis {
    /// The backend on it.
    pub fn backend(&self) -> Result<RedisBackend, BackendError> {
        let builder = match self {
            SharedRedis::Url(url) => RedisBackend::builder(url.as_str()),
            SharedRedis::Cluster(seeds) => RedisBackend::cluster(seeds.iter().cloned()),
        };
        builder.namespace("customer-example").build()
    }
}

impl std::fmt::Display for SharedRedis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SharedRedis::Url(url) => write!(f, "REDIS_URL {url:?}"),
            SharedRedis::Cluster(seeds) => write!(f, "REDIS_CLUSTER_NODES {:?}", seeds.join(",")),
        }
    }
}

/// Where the application keeps its data and its cache.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// MongoDB, when set.
    pub mongodb_uri: Option<String>,
    /// The database name (`MONGODB_DATABASE`, default `customers`).
    pub database: String,
    /// Redis, when set: the cache is shared by every instance.
    pub redis: Option<SharedRedis>,
}

impl Config {
    /// Reads `MONGODB_URI`, `MONGODB_DATABASE`, and `REDIS_CLUSTER_NODES` or else
    /// `REDIS_URL`.
    pub fn from_env() -> Self {
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let cluster = non_empty("REDIS_CLUSTER_NODES").map(|nodes| {
            let seeds = nodes.split(',').map(str::trim).filter(|n| !n.is_empty());
            let url = |n: &str| match n.contains("://") {
                true => n.to_owned(),
                false => format!("redis://{n}"),
            };
            SharedRedis::Cluster(seeds.map(url).collect())
        });
        Config {
            mongodb_uri: non_empty("MONGODB_URI"),
            database: non_empty("MONGODB_DATABASE").unwrap_or_else(|| "customers".to_owned()),
            redis: cluster.or_else(|| non_empty("REDIS_URL").map(SharedRedis::Url)),
        }
    }

    /// The cache: two tiers over Redis when configured, else in process.
    pub fn cache(&self) -> Result<Cache, ConfigError> {
        match &self.redis {
            None => Ok(Cache::in_memory(100_000)),
            Some(shared) => {
                let backend = shared
                    .backend()
                    .map_err(|source| ConfigError::InvalidRedisUrl {
                        shared: shared.clone(),
                        source,
                    })?;
                Ok(Cache::builder()
                    .max_entries(100_000)
                    .backend(backend)
                    .build())
            }
        }
    }

    /// A line saying what is shared and what is not.
    pub fn describe(&self) -> String {
        let store = match &self.mongodb_uri {
            Some(_) => format!("MongoDB database {:?}", self.database),
            None => "an in-memory store (lost when this process ends)".to_owned(),
        };
        let cache = match &self.redis {
            Some(SharedRedis::Url(_)) => {
                "a cache shared through Redis (L1 in process, L2 in Redis)"
            }
            Some(SharedRedis::Cluster(_)) => {
                "a cache shared through a Redis Cluster (L1 in process, L2 in the cluster)"
            }
            None => "an in-process cache (not shared with any other process)",
        };
        format!("{store}, {cache}")
    }
}
