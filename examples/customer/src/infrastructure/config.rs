//! Configuration from the environment: `MONGODB_URI` selects MongoDB, `REDIS_URL` the
//! two-tier cache; with neither, everything is embedded (in-memory store, in-process cache).

use cache_runtime::backend::{BackendError, RedisBackend};
use cache_runtime::Cache;

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `REDIS_URL` is not a Redis URL.
    #[error("invalid REDIS_URL {url:?}")]
    InvalidRedisUrl {
        /// The URL given.
        url: String,
        /// Why the backend refused it.
        #[source]
        source: BackendError,
    },
}

/// Where the application keeps its data and its cache.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// MongoDB, when set.
    pub mongodb_uri: Option<String>,
    /// The database name (`MONGODB_DATABASE`, default `customers`).
    pub database: String,
    /// Redis, when set: the cache is shared by every instance.
    pub redis_url: Option<String>,
}

impl Config {
    /// Reads `MONGODB_URI`, `MONGODB_DATABASE` and `REDIS_URL`.
    pub fn from_env() -> Self {
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Config {
            mongodb_uri: non_empty("MONGODB_URI"),
            database: non_empty("MONGODB_DATABASE").unwrap_or_else(|| "customers".to_owned()),
            redis_url: non_empty("REDIS_URL"),
        }
    }

    /// The cache: two tiers over Redis when configured, else in process.
    pub fn cache(&self) -> Result<Cache, ConfigError> {
        match &self.redis_url {
            None => Ok(Cache::in_memory(100_000)),
            Some(url) => {
                let backend = RedisBackend::builder(url.as_str())
                    .namespace("customer-example")
                    .build()
                    .map_err(|source| ConfigError::InvalidRedisUrl {
                        url: url.clone(),
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
        let cache = match &self.redis_url {
            Some(_) => "a cache shared through Redis (L1 in process, L2 in Redis)",
            None => "an in-process cache (not shared with any other process)",
        };
        format!("{store}, {cache}")
    }
}
