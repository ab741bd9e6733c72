//! Real servers and a tiny HTTP client for the customer application's tests.
#![allow(dead_code)]

pub mod app;
pub mod http;
pub mod mongo;
#[path = "../../../../tests/tests/support/redis_cluster.rs"]
pub mod redis_cluster;
#[path = "../../../../tests/tests/support/redis_server.rs"]
pub mod redis_server;
