//! Adapters: persistence (MongoDB, in memory), the cached repository and its warmer, the
//! console and the HTTP API.

pub mod cache;
pub mod config;
pub mod console;
pub mod http;
pub mod persistence;
