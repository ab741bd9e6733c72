//! The customer application: a hexagonal re-creation of the PHP original (a tag-aware cached
//! customer repository, an update command handler, a cache warmer and a cache console) on
//! `cache-runtime`, MongoDB and Redis.
//!
//! `cargo run -p customer-example -- demo` runs on embedded defaults; `MONGODB_URI` selects
//! MongoDB and `REDIS_URL` the shared two-tier cache.

use std::process::ExitCode;

use clap::Parser;

use customer_example::infrastructure::config::Config;
use customer_example::infrastructure::console::{report, run_configured, Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Serve { .. }) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = Config::from_env();
    match run_configured(&config, cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}", report(&error));
            ExitCode::FAILURE
        }
    }
}
