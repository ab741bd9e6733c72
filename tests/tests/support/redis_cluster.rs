//! A real Redis Cluster for a test: three primaries and three replicas of its own, started with
//! `redis-server --cluster-enabled yes` on free loopback ports and joined with
//! `redis-cli --cluster create`, or the one `REDIS_CLUSTER_NODES` names (comma-separated
//! `host:port` seeds). A test that cannot get one fails, loudly.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisCluster {
    /// `host:port` of every node (of the test's own cluster), or the seeds given.
    pub nodes: Vec<String>,
    children: Vec<Child>,
    dir: Option<PathBuf>,
}

/// The first port the kernel hands out to `bind(0)` and to outgoing connections
/// (`ip_local_port_range`; 32768 when it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A loopback port whose cluster bus port (port + 10000) is free too, both below the kernel's
/// ephemeral range: a port picked by `bind(0)` and released could be handed to a client
/// connection's local end, or to another test's pick, before the node binds it (a node that
/// cannot bind its bus port exits, and the test then waits for a node that never comes). Within
/// this process every pick is new; across processes the start is random and each pick is
/// checked by binding both ports.
fn free_cluster_port(taken: &[u16]) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOWEST: u16 = 10_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let Some(span) = ephemeral_start()
        .checked_sub(10_000 + LOWEST)
        .filter(|span| *span >= 1_000)
    else {
        panic!(
            "the ephemeral port range starts at {}: no room below it for cluster ports and their \
             bus ports (port + 10000)",
            ephemeral_start()
        );
    };
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (fastrand_port_salt() % u64::from(span)) as u32,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let port = LOWEST + (NEXT.fetch_add(1, Ordering::Relaxed) % u32::from(span)) as u16;
        if taken.contains(&port) {
            continue;
        }
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
    panic!(
        "no loopback port below the ephemeral range with a free cluster bus port (port + 10000)"
    );
}

impl RedisCluster {
    /// `REDIS_CLUSTER_NODES` when set, else a cluster of the test's own.
    pub fn shared() -> RedisCluster {
        match std::env::var("REDIS_CLUSTER_NODES") {
            Ok(nodes) if !nodes.trim().is_empty() => RedisCluster {
                nodes: nodes.split(',').map(|n| n.trim().to_owned()).collect(),
                children: Vec::new(),
                dir: None,
            },
            _ => RedisCluster::start(),
        }
    }

    /// Three primaries and three replicas, with a node timeout of 1 s.
    pub fn start() -> RedisCluster {
        let dir = std::env::temp_dir().join(format!(
            "cache-tests-cluster-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ u128::from(fastrand_port_salt())
        ));
        std::fs::create_dir_all(&dir).expect("create a directory for the cluster's nodes");
        let mut ports = Vec::new();
        for _ in 0..6 {
            let port = free_cluster_port(&ports);
            ports.push(port);
        }
        let mut cluster = RedisCluster {
            nodes: ports.iter().map(|p| format!("127.0.0.1:{p}")).collect(),
            children: Vec::new(),
            dir: Some(dir.clone()),
        };
        for port in &ports {
            cluster.children.push(spawn_node(&dir, *port));
        }
        for node in &cluster.nodes {
            wait_for(node, |conn| {
                redis::cmd("PING").query::<String>(conn).is_ok()
            });
        }
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&cluster.nodes)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run redis-cli --cluster create");
        assert!(created.success(), "redis-cli --cluster create failed");
        cluster.wait_until_ok();
        cluster
    }

    /// Waits until every node reports `cluster_state:ok` with every slot served, and every
    /// replica is in sync with its primary (a replica still syncing cannot take over: it
    /// would count its data as too old).
    pub fn wait_until_ok(&self) {
        for node in &self.nodes {
            wait_for(node, |conn| {
                let info: String = match redis::cmd("CLUSTER").arg("INFO").query(conn) {
                    Ok(info) => info,
                    Err(_) => return false,
                };
                if !(info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")) {
                    return false;
                }
                let replication: String = match redis::cmd("INFO").arg("replication").query(conn) {
                    Ok(info) => info,
                    Err(_) => return false,
                };
                !replication.contains("role:slave") || replication.contains("master_link_status:up")
            });
        }
    }

    /// The seeds, as `redis://` URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("redis://{n}")).collect()
    }

    /// The primaries, as `host:port`.
    pub fn primaries(&self) -> Vec<String> {
        self.listed(|flags| {
            flags.contains(&"master") && !flags.iter().any(|f| f.starts_with("fail"))
        })
    }

    /// Every node that is not failing, replicas included, as `host:port`.
    pub fn live_nodes(&self) -> Vec<String> {
        self.listed(|flags| {
            !flags
                .iter()
                .any(|f| matches!(*f, "fail" | "fail?" | "noaddr"))
        })
    }

    /// The nodes `CLUSTER NODES` lists (asked of any node that answers) whose flags pass
    /// `keep`, as `host:port`, sorted.
    fn listed(&self, keep: impl Fn(&[&str]) -> bool) -> Vec<String> {
        let nodes: String = self
            .nodes
            .iter()
            .find_map(|node| {
                let client = redis::Client::open(format!("redis://{node}")).ok()?;
                let mut conn = client
                    .get_connection_with_timeout(Duration::from_secs(1))
                    .ok()?;
                conn.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
                redis::cmd("CLUSTER").arg("NODES").query(&mut conn).ok()
            })
            .expect("a cluster node that answers CLUSTER NODES");
        let mut listed: Vec<String> = nodes
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let address = fields.nth(1)?;
                let flags: Vec<&str> = fields.next()?.split(',').collect();
                keep(&flags).then(|| address.split('@').next().unwrap_or(address).to_owned())
            })
            .collect();
        listed.sort();
        listed
    }

    /// Every key of `node` matching `pattern` (`SCAN MATCH`), sorted.
    pub fn scan(&self, node: &str, pattern: &str) -> Vec<String> {
        super::redis_server::scan_keys(&mut connect(node), pattern)
    }

    /// The primary holding `key`.
    pub fn holder(&self, key: &str) -> String {
        self.primaries()
            .into_iter()
            .find(|node| {
                let exists: i64 = redis::cmd("EXISTS")
                    .arg(key)
                    .query(&mut connect(node))
                    .unwrap_or(0);
                exists == 1
            })
            .unwrap_or_else(|| panic!("no primary holds {key}"))
    }

    /// Kills `node` (`SIGKILL`), as a crash would; its replica takes over after the node
    /// timeout (1 s). Waits until the cluster is whole again.
    pub fn kill(&mut self, node: &str) {
        let index = self
            .nodes
            .iter()
            .position(|n| n == node)
            .expect("a node of the test's own cluster");
        let mut child = self.children.remove(index);
        let _ = child.kill();
        let _ = child.wait();
        self.nodes.remove(index);
        self.wait_until_ok();
    }

    /// Kills `node` (`SIGKILL`) and waits until its replica took over (the cluster serves every
    /// slot without it); then restarts it on its port, from its cluster configuration and
    /// without data, so that it rejoins as the replica of its successor, and waits until the
    /// cluster is whole. Returns how long the node was down.
    pub fn fail_over(&mut self, node: &str) -> Duration {
        let index = self
            .nodes
            .iter()
            .position(|n| n == node)
            .expect("a node of the test's own cluster");
        let start = Instant::now();
        let _ = self.children[index].kill();
        let _ = self.children[index].wait();
        for other in self.nodes.iter().filter(|n| *n != node) {
            // First the others agree it failed, then its replica serves its slots.
            wait_for(other, |conn| {
                let nodes: String = match redis::cmd("CLUSTER").arg("NODES").query(conn) {
                    Ok(nodes) => nodes,
                    Err(_) => return false,
                };
                nodes.lines().any(|line| {
                    let mut fields = line.split_whitespace();
                    let address = fields.nth(1).unwrap_or("");
                    let flags = fields.next().unwrap_or("");
                    address.split('@').next() == Some(node) && flags.split(',').any(|f| f == "fail")
                })
            });
            wait_for(other, |conn| {
                let info: String = match redis::cmd("CLUSTER").arg("INFO").query(conn) {
                    Ok(info) => info,
                    Err(_) => return false,
                };
                info.contains("cluster_state:ok") && info.contains("cluster_slots_fail:0")
            });
        }
        let down = start.elapsed();
        let port = node.rsplit(':').next().unwrap().parse().unwrap();
        let dir = self.dir.clone().expect("the test's own cluster");
        self.children[index] = spawn_node(&dir, port);
        self.wait_until_ok();
        down
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) `node`: connections stay open, nothing
    /// answers. A freeze longer than the node timeout (1 s) fails the node over.
    pub fn signal(&self, node: &str, signal: &str) {
        let index = self
            .nodes
            .iter()
            .position(|n| n == node)
            .expect("a node of the test's own cluster");
        let pid = self.children[index].id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// A handle naming the same nodes, for code that must not own the cluster (it does not
    /// stop the nodes when dropped).
    pub fn attach(&self) -> RedisCluster {
        RedisCluster {
            nodes: self.nodes.clone(),
            children: Vec::new(),
            dir: None,
        }
    }

    /// How many hash slots `node` serves.
    pub fn slots_of(&self, node: &str) -> u32 {
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut connect(node))
            .unwrap();
        let line = nodes
            .lines()
            .find(|line| line.contains("myself"))
            .expect("CLUSTER NODES names the node itself");
        line.split_whitespace()
            .skip(8)
            .filter(|range| !range.starts_with('['))
            .map(|range| match range.split_once('-') {
                Some((from, to)) => to.parse::<u32>().unwrap() - from.parse::<u32>().unwrap() + 1,
                None => 1,
            })
            .sum()
    }

    /// The cluster id of `node`.
    pub fn node_id(&self, node: &str) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut connect(node))
            .unwrap()
    }

    /// Moves `slots` hash slots from `from` to `to` with `redis-cli --cluster reshard`, keys
    /// and all, while the cluster serves.
    pub fn reshard(&self, from: &str, to: &str, slots: u32) {
        self.wait_until_nodes_agree(from);
        let output = Command::new("redis-cli")
            .args(["--cluster", "reshard", from])
            .args(["--cluster-from", &self.node_id(from)])
            .args(["--cluster-to", &self.node_id(to)])
            .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster reshard");
        assert!(
            output.status.success(),
            "redis-cli --cluster reshard failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        self.wait_until_ok();
    }

    /// Waits until `redis-cli --cluster check` finds every node agreeing on the slots (right
    /// after the cluster was created or changed, their views converge over a moment), which
    /// `reshard` requires.
    fn wait_until_nodes_agree(&self, node: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let check = Command::new("redis-cli")
                .args(["--cluster", "check", node])
                .output()
                .expect("run redis-cli --cluster check");
            let out = String::from_utf8_lossy(&check.stdout);
            if check.status.success() && !out.contains("[ERR]") && !out.contains("[WARNING]") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster's nodes never agreed within 30 s: {out}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts moving the slot of `key` from `from` to `to` (`CLUSTER SETSLOT ... IMPORTING`
    /// and `MIGRATING`) and leaves it there: keys not yet moved are served by `from`, others
    /// are answered with `ASK`.
    pub fn start_migrating(&self, key: &str, from: &str, to: &str) {
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut connect(from))
            .unwrap();
        let set = |node: &str, state: &str, other: &str| {
            let _: () = redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg(state)
                .arg(self.node_id(other))
                .query(&mut connect(node))
                .unwrap();
        };
        set(to, "IMPORTING", from);
        set(from, "MIGRATING", to);
    }

    /// How many times `command` ran, summed over every primary (`INFO commandstats`).
    pub fn calls(&self, command: &str) -> u64 {
        self.primaries()
            .iter()
            .map(|node| calls_on(node, command))
            .sum()
    }
}

fn fastrand_port_salt() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish()
}

/// How many times `command` ran on `node` (`INFO commandstats`).
pub fn calls_on(node: &str, command: &str) -> u64 {
    let field = format!("cmdstat_{}:calls=", command.to_lowercase());
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut connect(node))
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&field))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
}

/// Every command `node` ran (`INFO commandstats`), by name.
pub fn commandstats(node: &str) -> std::collections::BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut connect(node))
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .next()?
                .strip_prefix("calls=")?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// Forgets what `node` counted (`CONFIG RESETSTAT`).
pub fn reset_stats(node: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut connect(node))
        .unwrap();
}

/// A plain connection to one node (no redirections followed).
pub fn connect(node: &str) -> redis::Connection {
    redis::Client::open(format!("redis://{node}"))
        .unwrap()
        .get_connection()
        .unwrap_or_else(|e| panic!("connect to the cluster node {node}: {e}"))
}

/// A cluster node on `port`, its files in `dir`: a node timeout of 1 s, no persistence.
fn spawn_node(dir: &std::path::Path, port: u16) -> Child {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
        .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start redis-server ({e}): install it (apt-get install redis-server) \
                 or set REDIS_CLUSTER_NODES"
            )
        })
}

/// How long a node may take to be ready. Generous: the tests of a binary start their clusters
/// at once (54 processes on a 2-core machine), and a start was seen taking over 20 s.
const READY_WITHIN: Duration = Duration::from_secs(90);

fn wait_for(node: &str, mut ready: impl FnMut(&mut redis::Connection) -> bool) {
    let deadline = Instant::now() + READY_WITHIN;
    loop {
        let ok = redis::Client::open(format!("redis://{node}"))
            .ok()
            .and_then(|client| client.get_connection().ok())
            .is_some_and(|mut conn| ready(&mut conn));
        if ok {
            return;
        }
        if Instant::now() >= deadline {
            let said = |what: &str| -> String {
                redis::Client::open(format!("redis://{node}"))
                    .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                    .and_then(|mut conn| redis::cmd("CLUSTER").arg(what).query(&mut conn))
                    .unwrap_or_else(|e| format!("(no answer: {e})"))
            };
            panic!(
                "the cluster node {node} was not ready within {READY_WITHIN:?}; CLUSTER \
                 INFO:\n{}\nCLUSTER NODES:\n{}",
                said("INFO"),
                said("NODES")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// What `MONITOR` on a node showed, line by line, until it was stopped.
pub struct Monitor {
    node: String,
    /// Sent as `ECHO` by [`stop`](Self::stop): the last line the watcher waits for.
    end: String,
    lines: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Monitor {
    /// Starts watching `node`; returns once `MONITOR` is on.
    pub fn start(node: &str) -> Monitor {
        let mut conn = connect(node);
        let _: redis::Value = redis::cmd("MONITOR").query(&mut conn).unwrap();
        // Whole lines only: a read that timed out mid-line would lose the rest of it (and
        // with an `EVALSHA` line, which keys its script declared). The watcher stops at the
        // end marker instead; the timeout only bounds a watcher that never sees it.
        conn.set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        let end = format!("monitor-end-{}", fastrand_port_salt());
        let marker = end.clone();
        let lines = std::thread::spawn(move || {
            let mut lines = Vec::new();
            loop {
                match conn.recv_response() {
                    Ok(redis::Value::SimpleString(line)) if line.contains(&marker) => return lines,
                    Ok(redis::Value::SimpleString(line)) => lines.push(line),
                    Ok(_) => {}
                    Err(e) => panic!("MONITOR stopped before its end marker: {e}"),
                }
            }
        });
        Monitor {
            node: node.to_owned(),
            end,
            lines: Some(lines),
        }
    }

    /// Stops watching once every command the node ran before this call has arrived, and
    /// returns the lines.
    pub fn stop(mut self) -> Vec<String> {
        let mut conn = connect(&self.node);
        let _: String = redis::cmd("ECHO").arg(&self.end).query(&mut conn).unwrap();
        self.lines
            .take()
            .unwrap()
            .join()
            .expect("the monitor thread")
    }
}

/// The quoted arguments of a `MONITOR` line, and whether it ran inside a script (`[0 lua]`).
pub fn monitor_line(line: &str) -> (bool, Vec<String>) {
    let Some((source, rest)) = line.split_once("] ") else {
        return (false, Vec::new());
    };
    let in_script = source.ends_with(" lua");
    let mut args = Vec::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '"' {
            continue;
        }
        let mut arg = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('x') => {
                        let hex: String = chars.by_ref().take(2).collect();
                        arg.push(u8::from_str_radix(&hex, 16).unwrap_or(b'?') as char);
                    }
                    Some('n') => arg.push('\n'),
                    Some('r') => arg.push('\r'),
                    Some('t') => arg.push('\t'),
                    Some(other) => arg.push(other),
                    None => {}
                },
                c => arg.push(c),
            }
        }
        args.push(arg);
    }
    (in_script, args)
}
