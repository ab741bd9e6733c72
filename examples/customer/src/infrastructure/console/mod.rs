//! The console: the PHP `cache:customer warm|invalidate|clear` command and more, as clap
//! subcommands of one binary.

mod demo;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::time::Duration;

use cache_runtime::Cache;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::cache::{CachedCustomerRepository, CustomerCacheWarmer, PublishedStats, StatsPublisher};
use super::config::Config;
use super::persistence::CustomerStore;
use crate::domain::{Customer, CustomerRepository, CustomerStatus};

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

/// Runs a command over `store`.
pub async fn run<S: CustomerStore>(
    store: S,
    config: &Config,
    command: Command,
) -> Result<(), String> {
    if let Command::Demo = command {
        return demo::run(store).await;
    }
    // Installed before the cache exists, so that every counter of the cache registers with it.
    let metrics = match command {
        Command::Serve { .. } => Some(
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .map_err(|e| format!("cannot install the metrics recorder: {e}"))?,
        ),
        _ => None,
    };
    let cache = config.cache()?;
    if config.redis_url.is_some() {
        wait_for_feed(&cache).await;
    }
    let repository = CachedCustomerRepository::new(store, cache.clone());
    let shared = config.redis_url.is_some();
    let local_only = "note: REDIS_URL is not set, so there is no shared cache: this acts on this process's own in-memory cache only, not on running `serve` instances";
    match command {
        Command::Serve { addr } => {
            let metrics = metrics.expect("installed for serve");
            serve(repository, config, addr, metrics).await
        }
        Command::Warm { limit, pages } => {
            let hot = match &config.redis_url {
                Some(url) => {
                    let (stats, instances) = StatsPublisher::new(url)
                        .map_err(|e| e.to_string())?
                        .collect()
                        .await
                        .map_err(|e| {
                            format!("cannot read the instances' statistics from Redis: {e}")
                        })?;
                    println!("access statistics from {instances} running instance(s)");
                    stats.hot_keys
                }
                None => {
                    eprintln!("{local_only}");
                    cache.hot_keys(super::cache::repository_methods::FIND_BY_ID, limit)
                }
            };
            let ids = CustomerCacheWarmer::<CachedCustomerRepository<S>>::top_ids(&hot, limit);
            if ids.is_empty() {
                println!("no access statistics yet: no customer to warm by popularity");
            }
            let steps = ids.len() as u64 + u64::from(pages);
            let bar = if std::io::stdout().is_terminal() {
                ProgressBar::new(steps)
            } else {
                ProgressBar::hidden()
            };
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
                    .map_err(|e| e.to_string())?,
            );
            let report = CustomerCacheWarmer::new(repository)
                .warm(&ids, pages, 20, || bar.inc(1))
                .await
                .map_err(|e| e.to_string())?;
            bar.finish_and_clear();
            println!(
                "warmed {} customers ({} of the most read were already cached, {} no longer exist) and {} pages in {:.1} ms",
                report.customers,
                report.already_warm,
                report.missing,
                report.pages,
                report.duration.as_secs_f64() * 1000.0
            );
            Ok(())
        }
        Command::Invalidate { customer_id, tags } => {
            let tags: Vec<String> = match (customer_id, tags.is_empty()) {
                (Some(id), true) => vec![format!("customer.{}", cache_runtime::encode_value(&id))],
                (None, false) => tags,
                (Some(_), false) => {
                    return Err("give either --customer-id or --tags, not both".into())
                }
                (None, true) => {
                    return Err(
                        "nothing to invalidate: give --customer-id ID or --tags TAG (repeatable)"
                            .into(),
                    )
                }
            };
            if !shared {
                eprintln!("{local_only}");
            }
            cache
                .invalidate_tags(&tags)
                .await
                .map_err(|e| format!("the invalidation is queued, Redis refused it: {e}"))?;
            println!("invalidated tags: {}", tags.join(", "));
            Ok(())
        }
        Command::Clear => {
            if !shared {
                eprintln!("{local_only}");
            }
            cache
                .clear()
                .await
                .map_err(|e| format!("cannot clear the cache: {e}"))?;
            println!("cache cleared");
            Ok(())
        }
        Command::Stats => {
            let Some(url) = &config.redis_url else {
                println!("REDIS_URL is not set: there is no shared state, so this process cannot see the statistics of running `serve` instances (each reports its own on GET /metrics)");
                return Ok(());
            };
            let (stats, instances) = StatsPublisher::new(url)
                .map_err(|e| e.to_string())?
                .collect()
                .await
                .map_err(|e| format!("cannot read statistics from Redis: {e}"))?;
            print_stats(&stats, instances);
            Ok(())
        }
        Command::Seed { count } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
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
                };
                repository
                    .save(&customer)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if config.mongodb_uri.is_none() {
                eprintln!("note: MONGODB_URI is not set: the customers went into this process's in-memory store and are gone when it exits");
            }
            println!("seeded {count} customers");
            Ok(())
        }
        Command::Demo => unreachable!("handled above"),
    }
}

async fn wait_for_feed(cache: &Cache) {
    for _ in 0..100 {
        if cache.feed_connected() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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

async fn serve<S: CustomerStore>(
    repository: CachedCustomerRepository<S>,
    config: &Config,
    addr: SocketAddr,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> Result<(), String> {
    if let Some(url) = &config.redis_url {
        let instance = format!("{}-{:08x}", std::process::id(), fastrand::u32(..));
        StatsPublisher::new(url).map_err(|e| e.to_string())?.spawn(
            repository.cache().clone(),
            instance,
            super::cache::repository_methods::FIND_BY_ID,
        );
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on http://{local} ({})", config.describe());
    axum::serve(listener, super::http::router(repository, metrics))
        .await
        .map_err(|e| e.to_string())
}
