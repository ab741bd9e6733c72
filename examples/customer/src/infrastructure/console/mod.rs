//! The console: the PHP `cache:customer warm|invalidate|clear` command and more, as clap
//! subcommands of one binary.

mod demo;

use std::error::Error;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use cache_runtime::backend::BackendError;
use cache_runtime::Cache;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use metrics_exporter_prometheus::PrometheusBuilder;

use super::cache::{
    repository_methods, CachedCustomerRepository, CustomerCacheWarmer, PublishedStats,
    StatsPublisher,
};
use super::config::{Config, ConfigError, SharedRedis};
use super::persistence::{CustomerStore, InMemoryCustomerStore, MongoCustomerStore};
use crate::application::ATTEMPTS;
use crate::domain::{Customer, CustomerRepository, CustomerStatus, RepositoryError};

/// The customer application and its cache console.
#[derive(Debug, Parser)]
#[command(name = "customer-example", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP JSON API (one instance of the application).
    Serve {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
    },
    /// Warm the cache: the most-read customers and the first pages of the active list.
    Warm {
        /// How many of the most-read customers.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// How many pages of the active list (20 per page).
        #[arg(long, default_value_t = 5)]
        pages: u32,
    },
    /// Invalidate a customer's entries, or tags.
    Invalidate {
        /// The customer whose entries to drop (tag `customer.<id>`).
        #[arg(long)]
        customer_id: Option<String>,
        /// Tags to invalidate; repeat for several.
        #[arg(long)]
        tags: Vec<String>,
    },
    /// Drop every entry of the cache.
    Clear,
    /// Per-method hits, misses and hit ratio, as the running instances see them.
    Stats,
    /// Load demo customers.
    Seed {
        /// How many.
        #[arg(long, default_value_t = 100)]
        count: u32,
    },
    /// A short scripted walk-through printing what each call did.
    Demo,
}

/// Why a command failed. Its text says what failed; [`report`] adds why, from its sources.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// `MONGODB_URI` is set and the server cannot be reached.
    #[error("cannot reach MongoDB at {uri}")]
    Unreachable {
        /// The URI.
        uri: String,
        /// What the store said.
        #[source]
        source: RepositoryError,
    },
    /// The environment names something unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `serve` could not install the Prometheus recorder.
    #[error("cannot install the metrics recorder")]
    Metrics(#[source] metrics_exporter_prometheus::BuildError),
    /// `serve` could not listen.
    #[error("cannot listen on {addr}")]
    Listen {
        /// Where it tried.
        addr: SocketAddr,
        /// Why it could not.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server stopped on an error.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
    /// `serve` could not set up the publication of its statistics in Redis.
    #[error("cannot publish this instance's statistics to Redis")]
    PublishStats(#[source] redis::RedisError),
    /// `warm` or `stats` could not read what the instances published.
    #[error("cannot read the instances' statistics from Redis")]
    ReadStats(#[source] redis::RedisError),
    /// The progress bar's template is wrong.
    #[error("invalid progress bar template")]
    ProgressTemplate(#[source] indicatif::style::TemplateError),
    /// A warm-up read failed.
    #[error("cannot warm the cache")]
    Warm(#[source] RepositoryError),
    /// `invalidate` was given both a customer and tags.
    #[error("give either --customer-id or --tags, not both")]
    BothTargets,
    /// `invalidate` was given nothing to invalidate.
    #[error("nothing to invalidate: give --customer-id ID or --tags TAG (repeatable)")]
    NothingToInvalidate,
    /// The shared tier refused an invalidation (it stays queued and is retried).
    #[error("the invalidation is queued, Redis refused it")]
    Invalidate(#[source] BackendError),
    /// The cache could not be cleared.
    #[error("cannot clear the cache")]
    Clear(#[source] BackendError),
    /// `seed` could not save a customer.
    #[error("cannot save customer {id}")]
    Seed {
        /// The customer.
        id: String,
        /// Why.
        #[source]
        source: RepositoryError,
    },
    /// A call of the walk-through failed.
    #[error("the walk-through failed")]
    Demo(#[source] RepositoryError),
}

/// `error` as the console shows it: `error: <what failed>`, then a `  caused by: <why>` line
/// for each of its sources. A source that says just what the one before it said (a Redis
/// error and the I/O error inside it) is not repeated.
pub fn report(error: &(dyn Error + 'static)) -> String {
    let mut text = format!("error: {error}");
    let mut said = error.to_string();
    let mut cause = error.source();
    while let Some(source) = cause {
        let why = source.to_string();
        if why != said {
            text.push_str(&format!("\n  caused by: {why}"));
        }
        said = why;
        cause = source.source();
    }
    text
}

/// Printed by the commands that act on the cache when there is no shared one.
const LOCAL_ONLY: &str = concat!(
    "note: REDIS_URL is not set, so there is no shared cache: this acts on this process's own ",
    "in-memory cache only, not on running `serve` instances"
);

/// Runs a command on the store `config` selects: MongoDB when `MONGODB_URI` is set, else a
/// new in-memory store.
pub async fn run_configured(config: &Config, command: Command) -> Result<(), ConsoleError> {
    match &config.mongodb_uri {
        Some(uri) => {
            let store = MongoCustomerStore::connect(uri, &config.database)
                .await
                .map_err(|source| ConsoleError::Unreachable {
                    uri: uri.clone(),
                    source,
                })?;
            run(store, config, command).await
        }
        None => run(InMemoryCustomerStore::default(), config, command).await,
    }
}

/// Runs a command over `store`.
pub async fn run<S: CustomerStore>(
    store: S,
    config: &Config,
    command: Command,
) -> Result<(), ConsoleError> {
    let repository = match command {
        Command::Demo => return demo::run(store).await.map_err(ConsoleError::Demo),
        Command::Serve { addr } => return serve(store, config, addr).await,
        _ => repository(store, config).await?,
    };
    match command {
        Command::Warm { limit, pages } => warm(repository, config, limit, pages).await,
        Command::Invalidate { customer_id, tags } => {
            invalidate(repository.cache(), config, customer_id, tags).await
        }
        Command::Clear => clear(repository.cache(), config).await,
        Command::Stats => stats(config).await,
        Command::Seed { count } => seed(&repository, config, count).await,
        Command::Serve { .. } | Command::Demo => unreachable!("handled above"),
    }
}

/// `store` behind the cache `config` describes, once that cache hears the other instances'
/// invalidations (or has waited two seconds for them).
async fn repository<S: CustomerStore>(
    store: S,
    config: &Config,
) -> Result<CachedCustomerRepository<S>, ConsoleError> {
    let cache = config.cache()?;
    if config.redis.is_some() {
        wait_for_feed(&cache).await;
    }
    Ok(CachedCustomerRepository::new(store, cache))
}

async fn wait_for_feed(cache: &Cache) {
    for _ in 0..100 {
        if cache.feed_connected() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Says, on standard error, that the command acts on this process's cache only, when there is
/// no shared one.
fn note_when_not_shared(config: &Config) {
    if config.redis.is_none() {
        eprintln!("{LOCAL_ONLY}");
    }
}

/// What the running instances published, summed, and how many they are.
async fn published_stats(shared: &SharedRedis) -> Result<(PublishedStats, usize), ConsoleError> {
    StatsPublisher::new(shared)
        .map_err(ConsoleError::ReadStats)?
        .collect()
        .await
        .map_err(ConsoleError::ReadStats)
}

/// Milliseconds since the Unix epoch.
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn serve<S: CustomerStore>(
    store: S,
    config: &Config,
    addr: SocketAddr,
) -> Result<(), ConsoleError> {
    // Installed before the cache exists, so that every counter of the cache registers with it.
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .map_err(ConsoleError::Metrics)?;
    let repository = repository(store, config).await?;
    if let Some(shared) = &config.redis {
        let instance = format!("{}-{:08x}", std::process::id(), fastrand::u32(..));
        StatsPublisher::new(shared)
            .map_err(ConsoleError::PublishStats)?
            .spawn(
                repository.cache().clone(),
                instance,
                repository_methods::FIND_BY_ID,
            );
    }
    let listen_error = |source| ConsoleError::Listen { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(listen_error)?;
    let local = listener.local_addr().map_err(listen_error)?;
    println!("listening on http://{local} ({})", config.describe());
    axum::serve(listener, super::http::router(repository, metrics))
        .await
        .map_err(ConsoleError::Serve)
}

async fn warm<S: CustomerStore>(
    repository: CachedCustomerRepository<S>,
    config: &Config,
    limit: usize,
    pages: u32,
) -> Result<(), ConsoleError> {
    let hot = match &config.redis {
        Some(shared) => {
            let (stats, instances) = published_stats(shared).await?;
            println!("access statistics from {instances} running instance(s)");
            stats.hot_keys
        }
        None => {
            note_when_not_shared(config);
            repository
                .cache()
                .hot_keys(repository_methods::FIND_BY_ID, limit)
        }
    };
    let ids = CustomerCacheWarmer::<CachedCustomerRepository<S>>::top_ids(&hot, limit);
    if ids.is_empty() {
        println!("no access statistics yet: no customer to warm by popularity");
    }
    let bar = progress_bar(ids.len() as u64 + u64::from(pages))?;
    let report = CustomerCacheWarmer::new(repository)
        .warm(&ids, pages, 20, || bar.inc(1))
        .await
        .map_err(ConsoleError::Warm)?;
    bar.finish_and_clear();
    println!(
        concat!(
            "warmed {} customers ({} of the most read were already cached, {} no longer exist) ",
            "and {} pages in {:.1} ms"
        ),
        report.customers,
        report.already_warm,
        report.missing,
        report.pages,
        report.duration.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// A bar of `steps` steps on a terminal, a hidden one otherwise.
fn progress_bar(steps: u64) -> Result<ProgressBar, ConsoleError> {
    let bar = if std::io::stdout().is_terminal() {
        ProgressBar::new(steps)
    } else {
        ProgressBar::hidden()
    };
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
        .map_err(ConsoleError::ProgressTemplate)?;
    bar.set_style(style);
    Ok(bar)
}

async fn invalidate(
    cache: &Cache,
    config: &Config,
    customer_id: Option<String>,
    tags: Vec<String>,
) -> Result<(), ConsoleError> {
    let tags: Vec<String> = match (customer_id, tags.is_empty()) {
        (Some(id), true) => vec![format!("customer.{}", cache_runtime::encode_value(&id))],
        (None, false) => tags,
        (Some(_), false) => return Err(ConsoleError::BothTargets),
        (None, true) => return Err(ConsoleError::NothingToInvalidate),
    };
    note_when_not_shared(config);
    cache
        .invalidate_tags(&tags)
        .await
        .map_err(ConsoleError::Invalidate)?;
    println!("invalidated tags: {}", tags.join(", "));
    Ok(())
}

async fn clear(cache: &Cache, config: &Config) -> Result<(), ConsoleError> {
    note_when_not_shared(config);
    cache.clear().await.map_err(ConsoleError::Clear)?;
    println!("cache cleared");
    Ok(())
}

async fn stats(config: &Config) -> Result<(), ConsoleError> {
    let Some(shared) = &config.redis else {
        println!(concat!(
            "REDIS_URL is not set (nor REDIS_CLUSTER_NODES): there is no shared state, so this ",
            "process cannot see the ",
            "statistics of running `serve` instances (each reports its own on GET /metrics)"
        ));
        return Ok(());
    };
    let (stats, instances) = published_stats(shared).await?;
    print_stats(&stats, instances);
    Ok(())
}

fn print_stats(stats: &PublishedStats, instances: usize) {
    println!("{instances} running instance(s)");
    println!(
        "{:<45} {:>10} {:>10} {:>10} {:>8}",
        "method", "hits", "misses", "stale", "ratio"
    );
    for (method, m) in &stats.methods {
        let total = m.hits + m.stale_hits + m.misses;
        let ratio = if total == 0 {
            0.0
        } else {
            (m.hits + m.stale_hits) as f64 / total as f64
        };
        println!(
            "{method:<45} {:>10} {:>10} {:>10} {:>8.3}",
            m.hits, m.misses, m.stale_hits, ratio
        );
    }
}

/// Saves `customer`, over the stored one if there is one (seeding again resets the fields).
async fn reseed<S: CustomerStore>(
    repository: &CachedCustomerRepository<S>,
    mut customer: Customer,
) -> Result<(), ConsoleError> {
    let failed = |source| ConsoleError::Seed {
        id: customer.id.clone(),
        source,
    };
    for _ in 1..ATTEMPTS {
        match repository.save(&customer).await {
            // Another writer got in first (or deleted it): over what is stored now.
            Err(RepositoryError::Conflict(_) | RepositoryError::NotFound(_)) => {
                let stored = repository.find_by_id_fresh(&customer.id).await;
                customer.version = stored.map_err(failed)?.map_or(0, |c| c.version);
            }
            saved => return saved.map(drop).map_err(failed),
        }
    }
    repository.save(&customer).await.map(drop).map_err(failed)
}

async fn seed<S: CustomerStore>(
    repository: &CachedCustomerRepository<S>,
    config: &Config,
    count: u32,
) -> Result<(), ConsoleError> {
    let now = now_millis();
    for i in 0..count {
        let customer = Customer {
            id: format!("c{i:05}"),
            name: format!("Customer {i}"),
            email: format!("customer{i}@example.com"),
            status: if i % 10 == 9 {
                CustomerStatus::Inactive
            } else {
                CustomerStatus::Active
            },
            created_at: now - i64::from(i) * 1_000,
            version: 0,
        };
        reseed(repository, customer).await?;
    }
    if config.mongodb_uri.is_none() {
        eprintln!(concat!(
            "note: MONGODB_URI is not set: the customers went into this process's in-memory ",
            "store and are gone when it exits"
        ));
    }
    println!("seeded {count} customers");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_gives_what_failed_then_each_cause() {
        let error = ConsoleError::Seed {
            id: "c00001".into(),
            source: RepositoryError::Unavailable("connection refused".into()),
        };
        assert_eq!(
            report(&error),
            concat!(
                "error: cannot save customer c00001\n",
                "  caused by: database unavailable: connection refused"
            )
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let redis = redis::RedisError::from(io);
        assert_eq!(
            redis.to_string(),
            "refused",
            "a Redis error says what its cause says"
        );
        assert_eq!(
            report(&ConsoleError::ReadStats(redis)),
            concat!(
                "error: cannot read the instances' statistics from Redis\n",
                "  caused by: refused"
            )
        );
        assert_eq!(
            report(&ConsoleError::NothingToInvalidate),
            "error: nothing to invalidate: give --customer-id ID or --tags TAG (repeatable)"
        );
    }
}
