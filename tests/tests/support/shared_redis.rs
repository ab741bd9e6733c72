//! One test body, two deployments: a `redis-server` ([`RedisServer`]) or a Redis Cluster of
//! three primaries and three replicas ([`RedisCluster`]), behind what the Redis suite asks of
//! them: a backend, the keys of a pattern, the commands run (summed over every primary), the
//! node holding a key, the namespace's meta and tag keys, and the pub/sub clients.
//!
//! The key layout differs: on one server the namespace's meta key is `ns:m` and its tag
//! versions `ns:t:<gen>:<tag>`; on a cluster they share the slot of `{ns}` (`{ns}:m`,
//! `{ns}:t:<gen>:<tag>`). Entries are `ns:e:...` on both, spread over the primaries of a
//! cluster.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use cache_runtime::backend::{RedisBackend, RedisBuilder};

use super::redis_cluster::{self, RedisCluster};
use super::redis_server::RedisServer;

pub enum SharedRedis {
    Server(RedisServer),
    Cluster(RedisCluster),
}

/// Whether a test may run on a deployment other tests use too, or needs one of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `REDIS_URL` (or `REDIS_CLUSTER_NODES`) when set, else a deployment of the test's own.
    Shared,
    /// Always a deployment of the test's own: the test counts every command run, or kills
    /// every subscription.
    Own,
}

impl SharedRedis {
    /// One `redis-server`.
    pub fn server(access: Access) -> SharedRedis {
        SharedRedis::Server(match access {
            Access::Shared => RedisServer::shared(),
            Access::Own => RedisServer::start(),
        })
    }

    /// A Redis Cluster.
    pub fn cluster(access: Access) -> SharedRedis {
        SharedRedis::Cluster(match access {
            Access::Shared => RedisCluster::shared(),
            Access::Own => RedisCluster::start(),
        })
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, SharedRedis::Cluster(_))
    }

    /// A backend builder on this deployment, in namespace `ns` (on a cluster, with a 2 s
    /// timeout: six nodes share the test machine).
    pub fn builder(&self, ns: &str) -> RedisBuilder {
        match self {
            SharedRedis::Server(server) => RedisBackend::builder(&server.url).namespace(ns),
            SharedRedis::Cluster(cluster) => RedisBackend::cluster(cluster.urls())
                .namespace(ns)
                .timeout(Duration::from_secs(2)),
        }
    }

    /// A backend on this deployment, in namespace `ns`.
    pub fn backend(&self, ns: &str) -> RedisBackend {
        self.builder(ns).build().expect("a valid URL")
    }

    /// The primaries (`host:port`) of a cluster; nothing for one server.
    fn primaries(&self) -> Vec<String> {
        match self {
            SharedRedis::Server(_) => Vec::new(),
            SharedRedis::Cluster(cluster) => cluster.primaries(),
        }
    }

    /// Every key matching `pattern` (`SCAN MATCH`), on every primary, sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        match self {
            SharedRedis::Server(server) => server.scan(pattern),
            SharedRedis::Cluster(cluster) => {
                let mut keys: Vec<String> = cluster
                    .primaries()
                    .iter()
                    .flat_map(|node| cluster.scan(node, pattern))
                    .collect();
                keys.sort();
                keys
            }
        }
    }

    /// The nodes holding at least one key matching `pattern`: the server, or some of the
    /// cluster's primaries.
    pub fn holders(&self, pattern: &str) -> Vec<String> {
        match self {
            SharedRedis::Server(server) if !server.scan(pattern).is_empty() => {
                vec![server.url.clone()]
            }
            SharedRedis::Server(_) => Vec::new(),
            SharedRedis::Cluster(cluster) => cluster
                .primaries()
                .into_iter()
                .filter(|node| !cluster.scan(node, pattern).is_empty())
                .collect(),
        }
    }

    /// How many times each command ran (`INFO commandstats`, commands run inside scripts
    /// included), summed over every primary.
    pub fn commandstats(&self) -> BTreeMap<String, u64> {
        match self {
            SharedRedis::Server(server) => {
                let info: String = redis::cmd("INFO")
                    .arg("commandstats")
                    .query(&mut server.connection())
                    .unwrap();
                parse_commandstats(&info)
            }
            SharedRedis::Cluster(_) => {
                let mut sum = BTreeMap::new();
                for node in self.primaries() {
                    for (command, calls) in redis_cluster::commandstats(&node) {
                        *sum.entry(command).or_insert(0) += calls;
                    }
                }
                sum
            }
        }
    }

    /// Forgets what every primary counted (`CONFIG RESETSTAT`).
    pub fn reset_stats(&self) {
        match self {
            SharedRedis::Server(server) => {
                let _: () = redis::cmd("CONFIG")
                    .arg("RESETSTAT")
                    .query(&mut server.connection())
                    .unwrap();
            }
            SharedRedis::Cluster(_) => {
                for node in self.primaries() {
                    redis_cluster::reset_stats(&node);
                }
            }
        }
    }

    /// Whether `command` (as `INFO commandstats` names it) is not a cache's: the test's own
    /// (`INFO`, `CONFIG RESETSTAT`; `CLUSTER NODES` on a cluster) or, on a cluster, what the
    /// cluster client and the nodes may send besides (`CLUSTER SLOTS`, a new connection's
    /// `HELLO`, `CLIENT SETINFO`, `READONLY`, replication). `INFO` is also what a cluster's
    /// scripts run to learn their node's `run_id`.
    pub fn is_bookkeeping(&self, command: &str) -> bool {
        let own = matches!(command, "info" | "config|resetstat");
        match self {
            SharedRedis::Server(_) => own,
            SharedRedis::Cluster(_) => {
                own || command.starts_with("cluster|")
                    || command.starts_with("client|")
                    || command.starts_with("command")
                    || matches!(
                        command,
                        "replconf" | "psync" | "readonly" | "hello" | "ping"
                    )
            }
        }
    }

    /// A connection to the node holding `key` (which must exist): the server, or the
    /// cluster's primary for the key's slot.
    pub fn connection_for(&self, key: &str) -> redis::Connection {
        match self {
            SharedRedis::Server(server) => server.connection(),
            SharedRedis::Cluster(cluster) => redis_cluster::connect(&cluster.holder(key)),
        }
    }

    /// Runs `cmd` (about `key`) on the node holding `key`.
    pub fn query_on_key_node<T: redis::FromRedisValue>(&self, key: &str, cmd: &redis::Cmd) -> T {
        cmd.query(&mut self.connection_for(key))
            .unwrap_or_else(|e| panic!("a command on the node of {key}: {e}"))
    }

    /// The namespace's meta key (its generation and invalidation sequence).
    pub fn meta_key(&self, ns: &str) -> String {
        match self {
            SharedRedis::Server(_) => format!("{ns}:m"),
            SharedRedis::Cluster(_) => format!("{{{ns}}}:m"),
        }
    }

    /// The Redis key of `tag`'s version in the namespace's current generation.
    pub fn tag_key(&self, ns: &str, tag: &str) -> String {
        let meta = self.meta_key(ns);
        let generation: String =
            self.query_on_key_node(&meta, redis::cmd("HGET").arg(&meta).arg("gen"));
        let control = meta.strip_suffix(":m").unwrap();
        format!("{control}:t:{generation}:{tag}")
    }

    /// How many scripts an L2 hit runs for an instance without an in-process tier (hence
    /// without a feed to vouch for the versions its entry carries): one on one server; on a
    /// cluster, one on the entry's node, then one on the node of the namespace's tag versions.
    pub fn l2_only_hit_round_trips(&self) -> u64 {
        match self {
            SharedRedis::Server(_) => 1,
            SharedRedis::Cluster(_) => 2,
        }
    }

    /// Kills every pub/sub client (`CLIENT KILL TYPE pubsub`) on every node, replicas
    /// included (a cluster's feed subscribes through any node); returns how many.
    pub fn kill_subscriptions(&self) -> u64 {
        let kill = |conn: &mut redis::Connection| -> u64 {
            redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query(conn)
                .unwrap()
        };
        match self {
            SharedRedis::Server(server) => kill(&mut server.connection()),
            SharedRedis::Cluster(cluster) => cluster
                .live_nodes()
                .iter()
                .map(|node| kill(&mut redis_cluster::connect(node)))
                .sum(),
        }
    }
}

/// `INFO commandstats`, as calls by command name.
fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}
