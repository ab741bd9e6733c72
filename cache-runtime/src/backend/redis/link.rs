//! The connection to Redis: one multiplexed connection, replaced when it breaks, whose server
//! is known by its `run_id`; and the circuit breaker in front of it.
//!
//! Every command goes over a connection opened by [`Link::connected`], which asks the server
//! for its `run_id` before the connection is used. A Redis restart always breaks the TCP
//! connection, so a command can never reach a restarted server under the old `run_id`: the
//! scripts compare it with the one the namespace was written under and start a new generation
//! when they differ (see `scripts.rs`).
//!
//! On a Redis Cluster the connection is the `redis` crate's cluster connection, which follows
//! `MOVED` and `ASK` redirections to whichever node holds a key. A script then reads the
//! `run_id` of the node it runs on itself (`INFO server`), and [`Connected::boot`] is empty.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisFuture, Value};

use crate::backend::{BackendError, BackendErrorKind};

/// A connection to one Redis, or to a cluster.
#[derive(Clone)]
pub(super) enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// An open connection and the `run_id` of the server process it reached (empty on a
/// cluster, where each script reads its node's).
#[derive(Clone)]
pub(super) struct Connected {
    pub(super) conn: Conn,
    pub(super) boot: Arc<str>,
    serial: u64,
}

/// Where the commands go.
enum Target {
    /// One Redis (perhaps with replicas).
    Single(Client),
    /// A Redis Cluster, by its seed nodes; the clients of the seeds carry the feed.
    Cluster {
        client: Box<ClusterClient>,
        seeds: Vec<Client>,
    },
}

pub(super) struct Link {
    target: Target,
    config: AsyncConnectionConfig,
    current: Mutex<Option<Connected>>,
    connecting: tokio::sync::Mutex<()>,
    serial: AtomicU64,
}

impl Link {
    pub(super) fn new(client: Client, timeout: Duration) -> Self {
        Link::with_target(Target::Single(client), timeout)
    }

    /// A link to the cluster whose seed nodes are `seeds`.
    pub(super) fn cluster(seeds: Vec<Client>, timeout: Duration) -> redis::RedisResult<Self> {
        let infos = seeds.iter().map(|seed| seed.get_connection_info().clone());
        let client = ClusterClient::builder(infos)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()?;
        let client = Box::new(client);
        Ok(Link::with_target(
            Target::Cluster { client, seeds },
            timeout,
        ))
    }

    fn with_target(target: Target, timeout: Duration) -> Self {
        Link {
            target,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout)),
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            serial: AtomicU64::new(0),
        }
    }

    /// Whether this is a cluster.
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster { .. })
    }

    /// The clients a subscription may use, in the order to try them: the one Redis, or every
    /// seed node of a cluster (a `PUBLISH` reaches every node of a cluster).
    pub(super) fn subscribers(&self) -> &[Client] {
        match &self.target {
            Target::Single(client) => std::slice::from_ref(client),
            Target::Cluster { seeds, .. } => seeds,
        }
    }

    /// The open connection, or a new one once its server has told its `run_id`.
    pub(super) async fn connected(&self) -> redis::RedisResult<Connected> {
        if let Some(connected) = self.current.lock().clone() {
            return Ok(connected);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(connected) = self.current.lock().clone() {
            return Ok(connected);
        }
        let (conn, boot) = match &self.target {
            Target::Single(client) => {
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await?;
                let info: String = redis::cmd("INFO")
                    .arg("server")
                    .query_async(&mut conn)
                    .await?;
                let boot = run_id(&info).ok_or_else(|| {
                    redis::RedisError::from((redis::ErrorKind::Parse, "INFO server has no run_id"))
                })?;
                (Conn::Single(conn), Arc::from(boot))
            }
            Target::Cluster { client, .. } => (
                Conn::Cluster(client.get_async_connection().await?),
                Arc::from(""),
            ),
        };
        let connected = Connected {
            conn,
            boot,
            serial: self.serial.fetch_add(1, Ordering::Relaxed),
        };
        *self.current.lock() = Some(connected.clone());
        Ok(connected)
    }

    /// Drops the current connection, whatever it is (after a timeout). A cluster's connection
    /// stays: it repairs its links to each node itself, and opening a new one waits for every
    /// node, so one unreachable host would make every rebuild time out.
    pub(super) fn discard_current(&self) {
        if self.is_cluster() {
            return;
        }
        *self.current.lock() = None;
    }

    /// Drops `broken` so that the next command opens a new connection (and learns the
    /// server's `run_id` again). Not a cluster's: see [`discard_current`](Self::discard_current).
    pub(super) fn discard(&self, broken: &Connected) {
        if self.is_cluster() {
            return;
        }
        let mut current = self.current.lock();
        if current.as_ref().is_some_and(|c| c.serial == broken.serial) {
            *current = None;
        }
    }
}

/// The `run_id` line of `INFO server`.
pub(super) fn run_id(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .map(str::trim)
        .filter(|id| !id.is_empty())
}

/// Counts failures and, after `threshold` in a row, fails reads at once for `cooldown`. After
/// a failure, reads also wait out a short settling time once Redis answers again, so that
/// instances that queued invalidations during the outage can deliver them first. Monotonic
/// time throughout: a wall clock stepping backwards changes nothing.
pub(super) struct Breaker {
    origin: Instant,
    failures: AtomicU32,
    /// Nanoseconds since `origin` until which the circuit is open.
    open_until: AtomicU64,
    /// Nanoseconds since `origin` until which reads settle (0: not settling).
    settle_until: AtomicU64,
    /// Whether a failure happened since the last success.
    failed: std::sync::atomic::AtomicBool,
    threshold: u32,
    cooldown: Duration,
    settle: Duration,
}

impl Breaker {
    pub(super) fn new(threshold: u32, cooldown: Duration, settle: Duration) -> Self {
        Breaker {
            origin: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            settle_until: AtomicU64::new(0),
            failed: std::sync::atomic::AtomicBool::new(false),
            threshold: threshold.max(1),
            cooldown,
            settle,
        }
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    fn later(&self, by: Duration) -> u64 {
        self.now().saturating_add(by.as_nanos() as u64)
    }

    /// Whether the circuit is open.
    pub(super) fn is_open(&self) -> bool {
        self.now() < self.open_until.load(Ordering::Acquire)
    }

    pub(super) fn check(&self) -> Result<(), BackendError> {
        if self.is_open() {
            return Err(BackendError::new(
                BackendErrorKind::Unavailable,
                "redis circuit breaker open",
            ));
        }
        Ok(())
    }

    /// Whether reads should still stay away after an outage.
    pub(super) fn settling(&self) -> bool {
        self.now() < self.settle_until.load(Ordering::Acquire)
    }

    pub(super) fn success(&self) {
        self.failures.store(0, Ordering::Release);
        if self.failed.swap(false, Ordering::AcqRel) {
            self.open_until.store(0, Ordering::Release);
            self.settle_until
                .store(self.later(self.settle), Ordering::Release);
        }
    }

    /// Something else saw an outage end (the invalidation feed reconnected): reads settle.
    pub(super) fn recovered(&self) {
        self.settle_until
            .store(self.later(self.settle), Ordering::Release);
    }

    pub(super) fn failure(&self) {
        self.failed.store(true, Ordering::Release);
        if self.failures.fetch_add(1, Ordering::AcqRel) + 1 >= self.threshold {
            self.open_until
                .store(self.later(self.cooldown), Ordering::Release);
            self.failures.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_is_read_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:9827b8ac1da6\r\ntcp_port:6379\r\n";
        assert_eq!(run_id(info), Some("9827b8ac1da6"));
        assert_eq!(run_id("# Server\r\n"), None);
    }

    #[test]
    fn breaker_opens_after_threshold_and_settles_after_recovery() {
        let breaker = Breaker::new(2, Duration::from_secs(60), Duration::from_secs(60));
        breaker.failure();
        assert!(!breaker.is_open());
        breaker.failure();
        assert!(breaker.is_open());
        assert!(!breaker.settling());
        breaker.success();
        assert!(!breaker.is_open(), "a success closes the circuit");
        assert!(breaker.settling(), "and reads settle for a while");
    }
}
