//! Faults injected into the test's own `redis-server` and proxies while the workload runs, one
//! at a time, each switchable (`HISTORY_FAULTS`), and a watcher of Redis's eviction events
//! that tells which of the cache's keys were evicted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use super::proxy::{Mode, Proxy};
use crate::support::redis_cluster::RedisCluster;
use crate::support::redis_server::RedisServer;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// A small `maxmemory` (allkeys-lru) and a filler writing junk.
    Evict,
    /// `SIGSTOP`, then `SIGCONT`.
    Freeze,
    /// `SIGKILL`, then a restart without persistence (empty).
    Kill,
    /// A snapshot, invalidations after it, then `SIGKILL` and a restart from the snapshot.
    Restore,
    /// `CLIENT KILL TYPE pubsub` or `TYPE normal`.
    ClientKill,
    /// One instance's proxy delays or blackholes its traffic.
    Proxy,
    /// On a cluster: `SIGKILL` of a primary; its replica takes over, then the node restarts
    /// empty and rejoins as a replica.
    Failover,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Evict,
        FaultKind::Freeze,
        FaultKind::Kill,
        FaultKind::Restore,
        FaultKind::ClientKill,
        FaultKind::Proxy,
    ];

    /// What a cluster is put through (freezes longer than the node timeout fail over too).
    pub const CLUSTER: [FaultKind; 3] = [
        FaultKind::Failover,
        FaultKind::Freeze,
        FaultKind::ClientKill,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Evict => "evict",
            FaultKind::Freeze => "freeze",
            FaultKind::Kill => "kill",
            FaultKind::Restore => "restore",
            FaultKind::ClientKill => "clientkill",
            FaultKind::Proxy => "proxy",
            FaultKind::Failover => "failover",
        }
    }

    /// Whether it can break an instance's invalidation feed (eviction does not).
    pub fn breaks_feed(self) -> bool {
        self != FaultKind::Evict
    }
}

/// `HISTORY_FAULTS`: a comma-separated list of kinds among `all`, `all` (the default) or
/// `none`.
pub fn from_env(all: &[FaultKind]) -> Vec<FaultKind> {
    let spec = std::env::var("HISTORY_FAULTS").unwrap_or_default();
    let spec = spec.trim();
    if spec.is_empty() || spec == "all" {
        return all.to_vec();
    }
    if spec == "none" {
        return Vec::new();
    }
    spec.split(',')
        .map(|name| {
            let name = name.trim();
            all.iter()
                .copied()
                .find(|k| k.name() == name)
                .unwrap_or_else(|| {
                    let names: Vec<&str> = all.iter().map(|k| k.name()).collect();
                    panic!(
                        "HISTORY_FAULTS: unknown fault {name:?} here ({}, all, none)",
                        names.join(", ")
                    )
                })
        })
        .collect()
}

/// One injected fault: while it lasted (for a restore: the crash and restart), and on what.
#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: FaultKind,
    pub detail: String,
    pub start: Instant,
    pub end: Instant,
    /// The instance behind the faulted proxy; `None` for faults of the server (all instances).
    pub instance: Option<usize>,
}

impl Fault {
    pub fn duration(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }
}

/// Eviction events of the cache's namespace, by kind of key.
#[derive(Default)]
pub struct Evictions {
    /// `tag`, `seq`, `entry`, `lock`, `other`: how many evicted.
    pub by_kind: Mutex<BTreeMap<&'static str, u64>>,
    /// The names evicted (without the namespace), with counts, for the report.
    pub names: Mutex<BTreeMap<String, u64>>,
    /// `INFO evicted_keys`, summed over the evict faults (it restarts with the server).
    pub info_evicted: Mutex<u64>,
}

impl Evictions {
    pub fn record(&self, ns: &str, key: &str) {
        let Some(rest) = key.strip_prefix(ns).and_then(|k| k.strip_prefix(':')) else {
            return; // junk, or another namespace
        };
        let kind = if rest.starts_with("t:") {
            "tag"
        } else if rest == "seq" {
            "seq"
        } else if rest.ends_with(":lock") {
            "lock"
        } else if rest.starts_with("e:") {
            "entry"
        } else {
            "other"
        };
        *self.by_kind.lock().entry(kind).or_default() += 1;
        if kind != "entry" && kind != "lock" {
            *self.names.lock().entry(rest.to_owned()).or_default() += 1;
        }
    }

    pub fn total(&self) -> u64 {
        self.by_kind.lock().values().sum()
    }
}

/// Follows `__keyevent@0__:evicted` (the server runs with `notify-keyspace-events Ee`),
/// reconnecting after kills and restarts, until `stop`.
pub async fn watch_evictions(
    url: String,
    ns: String,
    evictions: Arc<Evictions>,
    mut stop: watch::Receiver<bool>,
) {
    use futures_util::StreamExt;
    let client = redis::Client::open(url.as_str()).expect("redis url");
    while !*stop.borrow() {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe("__keyevent@0__:evicted").await?;
            redis::RedisResult::Ok(pubsub)
        };
        if let Ok(Ok(pubsub)) = tokio::time::timeout(Duration::from_secs(1), subscribed).await {
            let mut messages = pubsub.into_on_message();
            loop {
                tokio::select! {
                    message = messages.next() => match message {
                        Some(message) => {
                            if let Ok(key) = message.get_payload::<String>() {
                                evictions.record(&ns, &key);
                            }
                        }
                        None => break,
                    },
                    _ = stop.changed() => return,
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// What the faults strike: the test's own `redis-server`, or its own cluster.
pub enum Target {
    Server(RedisServer),
    /// A cluster, and the key whose node holds the namespace's tag versions: every other
    /// failover strikes that node.
    Cluster {
        cluster: RedisCluster,
        tags_key: String,
    },
}

/// Injects faults one at a time until `until`, then leaves everything healed.
pub struct Injector {
    pub target: Target,
    /// Proxies and the instance behind each.
    pub proxies: Vec<(usize, Arc<Proxy>)>,
    pub kinds: Vec<FaultKind>,
    pub rng: fastrand::Rng,
    pub evictions: Arc<Evictions>,
    pub log: Vec<Fault>,
}

/// The `maxmemory` outside evict faults (the server starts with it).
pub const ROOMY: &str = "256mb";

impl Injector {
    pub async fn run(mut self, until: Instant) -> Injector {
        if self.kinds.is_empty() {
            tokio::time::sleep_until(until.into()).await;
            return self;
        }
        let mut order = self.kinds.clone();
        self.rng.shuffle(&mut order);
        for n in 0.. {
            let pause = Duration::from_millis(self.rng.u64(300..=1200));
            tokio::time::sleep(pause).await;
            if Instant::now() >= until {
                break;
            }
            let kind = order[n % order.len()];
            match kind {
                FaultKind::Evict => self.evict().await,
                FaultKind::Freeze => self.freeze().await,
                FaultKind::Kill => self.kill().await,
                FaultKind::Restore => self.restore().await,
                FaultKind::ClientKill => self.client_kill().await,
                FaultKind::Proxy => self.proxy().await,
                FaultKind::Failover => self.fail_over().await,
            }
        }
        self
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(self.rng.u64(from..=to))
    }

    fn push(&mut self, kind: FaultKind, detail: String, start: Instant, instance: Option<usize>) {
        self.log.push(Fault {
            kind,
            detail,
            start,
            end: Instant::now(),
            instance,
        });
    }

    /// The server, or on a cluster one of the nodes at random.
    fn url(&mut self) -> String {
        match &self.target {
            Target::Server(server) => server.url.clone(),
            Target::Cluster { cluster, .. } => {
                let urls = cluster.urls();
                urls[self.rng.usize(..urls.len())].clone()
            }
        }
    }

    fn server(&mut self) -> Option<&mut RedisServer> {
        match &mut self.target {
            Target::Server(server) => Some(server),
            Target::Cluster { .. } => None,
        }
    }

    async fn connection(&mut self) -> Option<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url()).ok()?;
        tokio::time::timeout(
            Duration::from_secs(1),
            client.get_multiplexed_async_connection(),
        )
        .await
        .ok()?
        .ok()
    }

    async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Option<T> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(Duration::from_secs(2), cmd.query_async(&mut conn))
            .await
            .ok()?
            .ok()
    }

    async fn info_u64(&mut self, field: &str) -> u64 {
        let info: String = self.query(&redis::cmd("INFO")).await.unwrap_or_default();
        info.lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// `maxmemory` just above what is used, then 64 KiB junk values every 10 ms: Redis evicts
    /// (allkeys-lru) the cache's keys along with the junk.
    async fn evict(&mut self) {
        if self.server().is_none() {
            return;
        }
        let duration = self.millis(1000, 2500);
        let used = self.info_u64("used_memory").await;
        let evicted_before = self.info_u64("evicted_keys").await;
        let cache_keys_before = self.evictions.total();
        let start = Instant::now();
        let _: Option<()> = self
            .query(
                redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("maxmemory")
                    .arg(used + 256 * 1024),
            )
            .await;
        let junk: Vec<u8> = (0..64 * 1024).map(|_| self.rng.u8(..)).collect();
        let mut written = 0u64;
        if let Some(mut conn) = self.connection().await {
            while start.elapsed() < duration {
                let mut set = redis::cmd("SET");
                set.arg(format!("junk:{written}")).arg(&junk);
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), set.query_async::<()>(&mut conn))
                        .await;
                written += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let _: Option<()> = self
                .query(redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(ROOMY))
                .await;
            for batch in (0..written).collect::<Vec<_>>().chunks(500) {
                let keys: Vec<String> = batch.iter().map(|n| format!("junk:{n}")).collect();
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(keys);
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    unlink.query_async::<i64>(&mut conn),
                )
                .await;
            }
        }
        let evicted = self
            .info_u64("evicted_keys")
            .await
            .saturating_sub(evicted_before);
        *self.evictions.info_evicted.lock() += evicted;
        // Let the last eviction events arrive before counting them for this fault.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let cache_keys = self.evictions.total() - cache_keys_before;
        self.push(
            FaultKind::Evict,
            format!(
                "{} junk values, evicted_keys +{evicted}, of them the cache's {cache_keys}",
                written
            ),
            start,
            None,
        );
    }

    async fn freeze(&mut self) {
        let duration = self.millis(300, 2000);
        let start = Instant::now();
        let detail = match &mut self.target {
            Target::Server(server) => {
                server.freeze();
                tokio::time::sleep(duration).await;
                server.thaw();
                format!("SIGSTOP for {duration:?}")
            }
            Target::Cluster { cluster, .. } => {
                let primaries = tokio::task::block_in_place(|| cluster.primaries());
                let node = primaries[self.rng.usize(..primaries.len())].clone();
                cluster.signal(&node, "-STOP");
                tokio::time::sleep(duration).await;
                cluster.signal(&node, "-CONT");
                tokio::task::block_in_place(|| cluster.wait_until_ok());
                format!("SIGSTOP of primary {node} for {duration:?}, then the cluster whole")
            }
        };
        self.push(FaultKind::Freeze, detail, start, None);
    }

    async fn fail_over(&mut self) {
        let Target::Cluster { cluster, tags_key } = &mut self.target else {
            return;
        };
        let start = Instant::now();
        let tags_node = tokio::task::block_in_place(|| cluster.holder(tags_key));
        let before = self.log.iter();
        let strike_tags_node = before.filter(|f| f.kind == FaultKind::Failover).count() % 2 == 0;
        let node = if strike_tags_node {
            tags_node.clone()
        } else {
            let others: Vec<String> = tokio::task::block_in_place(|| cluster.primaries())
                .into_iter()
                .filter(|p| *p != tags_node)
                .collect();
            others[self.rng.usize(..others.len())].clone()
        };
        let down = tokio::task::block_in_place(|| cluster.fail_over(&node));
        let which = if strike_tags_node {
            "the tag versions' "
        } else {
            ""
        };
        self.push(
            FaultKind::Failover,
            format!("SIGKILL of {which}primary {node}, replica serving after {down:?}, rejoined"),
            start,
            None,
        );
    }

    async fn kill(&mut self) {
        let down = self.millis(200, 1500);
        let Some(server) = self.server() else { return };
        let start = Instant::now();
        server.kill();
        tokio::time::sleep(down).await;
        tokio::task::block_in_place(|| server.restart());
        self.push(
            FaultKind::Kill,
            format!("SIGKILL, down {down:?}, restarted empty"),
            start,
            None,
        );
    }

    async fn restore(&mut self) {
        let age = self.millis(800, 2500);
        let Some(server) = self.server() else { return };
        if tokio::task::block_in_place(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| server.save()))
        })
        .is_err()
        {
            return; // the server was busy; no snapshot, no fault
        }
        tokio::time::sleep(age).await;
        let start = Instant::now();
        let Some(server) = self.server() else { return };
        tokio::task::block_in_place(|| server.crash_and_restore());
        self.push(
            FaultKind::Restore,
            format!("SIGKILL, restarted from a snapshot {age:?} old"),
            start,
            None,
        );
    }

    async fn client_kill(&mut self) {
        let kind = if self.rng.bool() { "pubsub" } else { "normal" };
        let start = Instant::now();
        let killed: Option<i64> = self
            .query(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg(kind))
            .await;
        self.push(
            FaultKind::ClientKill,
            format!("CLIENT KILL TYPE {kind}: {} clients", killed.unwrap_or(-1)),
            start,
            None,
        );
    }

    async fn proxy(&mut self) {
        if self.proxies.is_empty() {
            return;
        }
        let (instance, proxy) = self.proxies[self.rng.usize(..self.proxies.len())].clone();
        let duration = self.millis(300, 2000);
        let mode = if self.rng.bool() {
            Mode::Delay(self.millis(50, 400))
        } else {
            Mode::Blackhole
        };
        let drop_all = mode == Mode::Blackhole && self.rng.bool();
        let start = Instant::now();
        proxy.set(mode);
        tokio::time::sleep(duration).await;
        if drop_all {
            proxy.drop_connections();
        }
        proxy.set(Mode::Pass);
        let what = match mode {
            Mode::Delay(d) => format!("delay {d:?}"),
            _ if drop_all => "blackhole, then every connection dropped".to_owned(),
            _ => "blackhole".to_owned(),
        };
        self.push(
            FaultKind::Proxy,
            format!("{what} for {duration:?}"),
            start,
            Some(instance),
        );
    }
}
