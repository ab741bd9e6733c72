//! The Redis backend: entries, tag versions and the invalidation feed in one Redis or a Redis
//! Cluster, shared by every instance of an application.
//!
//! The key layout and the rules that keep versions safe whatever Redis loses are in
//! `scripts.rs`; the connection, which learns the server's `run_id`, and the circuit breaker
//! in `link.rs`; the feed in `bus.rs`; on a cluster, the tag versions the feed vouches for in
//! `known.rs`.
//!
//! On one Redis a hit is one `EVALSHA` (the value and the current versions of its tags). On a
//! cluster, where entries spread over the primaries and the namespace's tag versions share
//! one slot, a hit is one `EVALSHA` on the entry's node when the feed vouches for its
//! versions, else two at once (the entry, and the versions on the tags' node). Stamping tags
//! is one `EVALSHA`; a store one (two on a cluster: the check, then the entry); invalidating
//! any number of tags one (the bumps and the `PUBLISH`). Every operation has a timeout; reads
//! and stores go through a circuit breaker.

mod bus;
mod cluster_batch;
mod known;
mod link;
mod scripts;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::Client;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use self::bus::{Message, Position};
use self::known::KnownVersions;
use self::link::{Breaker, Connected, Link};
use self::scripts::Scripts;
use super::{
    envelope, Backend, BackendError, BackendErrorKind, BackendFuture, EntryKey, Feed, Fetched,
    LockToken, StoredEntry, Versions,
};
use crate::codec::{Codec, MessagePack};
use crate::LOG_TARGET;

/// Keys longer than this are stored under their SHA-256.
const MAX_KEY: usize = 200;
/// How long an invalidation waits for Redis while the circuit breaker is open.
const PROBE_TIMEOUT: Duration = Duration::from_millis(50);
/// The longest expiry given to Redis (10 years, in ms): anything longer is clamped.
const MAX_TTL_MS: u64 = 10 * 365 * 24 * 3600 * 1000;

/// Configures a [`RedisBackend`].
pub struct RedisBuilder {
    target: Topology,
    namespace: String,
    timeout: Duration,
    codec: Arc<dyn Codec>,
    breaker_threshold: u32,
    breaker_cooldown: Duration,
    settle: Duration,
    heartbeat: Duration,
}

/// One Redis (perhaps with replicas), or a cluster.
enum Topology {
    Single(String),
    Cluster(Vec<String>),
}

impl RedisBuilder {
    /// How often each instance publishes a heartbeat on the invalidation channel (default
    /// 1 s). A subscription that hears nothing, not even its own heartbeat, for three periods
    /// counts as broken: the in-process tier is bypassed, then flushed once it is back.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_millis(10));
        self
    }

    /// The prefix of every key, so that several applications or tenants share one Redis
    /// (default `cache`).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long one Redis operation may take before it counts as failed (default 250 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The byte format of values (default [`MessagePack`]).
    pub fn codec(mut self, codec: impl Codec) -> Self {
        self.codec = Arc::new(codec);
        self
    }

    /// After `failures` failed operations in a row, reads and stores fail at once for
    /// `cooldown` (default 3 failures, 1 s), so that a dead Redis adds no latency. A success
    /// (such as the background replay of a queued invalidation) closes it early.
    pub fn circuit_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker_threshold = failures.max(1);
        self.breaker_cooldown = cooldown;
        self
    }

    /// After an outage this instance noticed (a failed operation, or its invalidation feed
    /// reconnecting), how long reads keep away from Redis once it answers again (default
    /// 300 ms), so that instances that queued invalidations during the outage deliver them
    /// first. Their replay tries every 50 ms.
    pub fn settle_after_outage(mut self, settle: Duration) -> Self {
        self.settle = settle;
        self
    }

    /// The backend. Nothing is connected yet: the first operation connects.
    pub fn build(self) -> Result<RedisBackend, BackendError> {
        let open = |url: &str| {
            Client::open(url).map_err(|e| {
                BackendError::new(
                    BackendErrorKind::Other,
                    format!("invalid Redis URL {url:?}"),
                )
                .with_source(e)
            })
        };
        let ns = self.namespace;
        // On a cluster, the namespace's meta key and tag versions share one hash slot (so that
        // a script can reach them all), while entries and locks spread over every node.
        let (link, control) = match &self.target {
            Topology::Single(url) => (Link::new(open(url)?, self.timeout), ns.clone()),
            Topology::Cluster(seeds) => {
                if ns.is_empty() || ns.contains(['{', '}']) {
                    return Err(BackendError::new(
                        BackendErrorKind::Other,
                        format!(
                            "namespace {ns:?}: on a Redis Cluster it becomes a hash tag \
                             ({{namespace}}), so it must be non-empty, without braces"
                        ),
                    ));
                }
                if seeds.is_empty() {
                    return Err(BackendError::new(
                        BackendErrorKind::Other,
                        "a Redis Cluster needs at least one seed node",
                    ));
                }
                let seeds = seeds.iter().map(|s| open(s)).collect::<Result<_, _>>()?;
                let link = Link::cluster(seeds, self.timeout).map_err(|e| {
                    BackendError::new(BackendErrorKind::Other, "invalid Redis Cluster seeds")
                        .with_source(e)
                })?;
                (link, format!("{{{ns}}}"))
            }
        };
        Ok(RedisBackend {
            inner: Arc::new(Shared {
                link,
                meta: format!("{control}:m"),
                entry_prefix: format!("{ns}:e:"),
                tag_prefix: format!("{control}:t:"),
                lock_prefix: format!("{ns}:l:"),
                channel: format!("{ns}:invalidate"),
                heartbeat: self.heartbeat,
                timeout: self.timeout,
                codec: self.codec,
                breaker: Breaker::new(self.breaker_threshold, self.breaker_cooldown, self.settle),
                origin: format!("{:016x}", fastrand::u64(..)),
                scripts: Scripts::new(),
                known: KnownVersions::default(),
                generation: AtomicU64::new(0),
            }),
        })
    }
}

/// A [`Backend`] on Redis. Cheap to clone.
///
/// ```no_run
/// use cache_runtime::backend::RedisBackend;
/// use cache_runtime::Cache;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisBackend::builder("redis://127.0.0.1:6379").namespace("shop").build()?;
/// let cache = Cache::builder().max_entries(100_000).backend(redis).build(); // L1 moka + L2 Redis
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Shared>,
}

struct Shared {
    link: Link,
    meta: String,
    entry_prefix: String,
    tag_prefix: String,
    lock_prefix: String,
    channel: String,
    timeout: Duration,
    heartbeat: Duration,
    codec: Arc<dyn Codec>,
    breaker: Breaker,
    origin: String,
    scripts: Scripts,
    /// On a cluster, what the feed tells about tag versions.
    known: KnownVersions,
    /// The namespace's generation as last seen (0: none yet), whose tag keys the stamp and
    /// invalidation scripts are given.
    generation: AtomicU64,
}

fn redis_error(e: redis::RedisError) -> BackendError {
    let kind = if e.is_timeout() {
        BackendErrorKind::Timeout
    } else {
        BackendErrorKind::Unavailable
    };
    BackendError::new(kind, "redis").with_source(e)
}

/// Whether the breaker applies: reads and stores fail fast while it is open; invalidations
/// and clears always try, so that they go through as soon as Redis answers.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Gate {
    Breaker,
    Always,
}

impl RedisBackend {
    /// Starts configuring a backend on the Redis at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisBuilder {
        RedisBackend::with_topology(Topology::Single(url.into()))
    }

    /// Starts configuring a backend on the Redis Cluster reached through `seeds`
    /// (`redis://host:port` of some of its nodes). Entries spread over every node; the
    /// namespace's tag versions live together on one (see the README).
    ///
    /// ```no_run
    /// use cache_runtime::backend::RedisBackend;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let seeds = ["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"];
    /// let redis = RedisBackend::cluster(seeds).namespace("shop").build()?;
    /// # let _ = redis;
    /// # Ok(()) }
    /// ```
    pub fn cluster<I>(seeds: I) -> RedisBuilder
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        RedisBackend::with_topology(Topology::Cluster(
            seeds.into_iter().map(Into::into).collect(),
        ))
    }

    fn with_topology(target: Topology) -> RedisBuilder {
        RedisBuilder {
            target,
            namespace: "cache".into(),
            timeout: Duration::from_millis(250),
            codec: Arc::new(MessagePack),
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_secs(1),
            settle: Duration::from_millis(300),
            heartbeat: Duration::from_secs(1),
        }
    }

    /// On a cluster, whether this backend's invalidation feed (followed by a cache with an
    /// in-process tier) currently vouches for tag versions: that cache's L2 hits of entries
    /// stored since then read the entry's node alone, not the node of the namespace's tag
    /// versions (see the README). Always `false` on one Redis, where a hit is one round trip
    /// anyway.
    pub fn feed_vouches_for_versions(&self) -> bool {
        self.inner.known.is_anchored()
    }

    /// Whether the circuit breaker is open: Redis failed repeatedly, and reads skip it until
    /// the cooldown ends or an invalidation gets through.
    pub fn is_circuit_open(&self) -> bool {
        self.inner.breaker.is_open()
    }

    /// The Redis key of an entry. Short keys are `<ns>:e:<scope>:<key>`; keys over 200 bytes
    /// are `<ns>:e:<scope>#<sha256>`: the character after the scope tells the two spaces
    /// apart, so no short key names a long key's entry.
    pub fn entry_key(&self, key: &EntryKey<'_>) -> String {
        format!("{}{}", self.inner.entry_prefix, scoped(key))
    }

    /// Runs one Redis operation on a connection whose server is known, under the timeout and
    /// (for `Gate::Breaker`) the circuit breaker.
    async fn run<T, F, Fut>(&self, gate: Gate, op: F) -> Result<T, BackendError>
    where
        F: FnOnce(Connected) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let shared = &self.inner;
        if gate == Gate::Breaker {
            shared.breaker.check()?;
        }
        let attempt = async {
            let connected = shared.link.connected().await.map_err(|e| (e, None))?;
            op(connected.clone())
                .await
                .map_err(|e| (e, Some(connected)))
        };
        // While the circuit is open, an invalidation is a probe: it waits a short time only.
        let timeout = if gate == Gate::Always && shared.breaker.is_open() {
            shared.timeout.min(PROBE_TIMEOUT)
        } else {
            shared.timeout
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(value)) => {
                shared.breaker.success();
                Ok(value)
            }
            Ok(Err((e, connected))) => {
                // A reply error is Redis answering, not Redis failing: it does not open the
                // circuit, and the connection stays.
                if !matches!(
                    e.kind(),
                    redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
                ) {
                    shared.breaker.failure();
                    if let Some(connected) = connected {
                        shared.link.discard(&connected);
                    }
                }
                Err(redis_error(e))
            }
            Err(_) => {
                shared.breaker.failure();
                // The connection may be stuck (a frozen server, a black hole): open a new
                // one next time, which also learns the server's run_id again.
                shared.link.discard_current();
                Err(BackendError::new(
                    BackendErrorKind::Timeout,
                    format!("redis did not answer within {timeout:?}"),
                ))
            }
        }
    }

    /// Invokes `script` with the meta key first, the run id and a candidate generation first.
    fn invocation<'s>(
        &self,
        script: &'s redis::Script,
        connected: &Connected,
        key: Option<&str>,
    ) -> redis::ScriptInvocation<'s> {
        let mut invocation = script.key(&self.inner.meta);
        if let Some(key) = key {
            invocation.key(key);
        }
        invocation
            .arg(&*connected.boot)
            .arg(fastrand::u64(1..).to_string())
            .arg(&self.inner.tag_prefix);
        invocation
    }

    fn decode(
        &self,
        key: &EntryKey<'_>,
        parts: Vec<Vec<u8>>,
    ) -> Result<Option<Fetched>, BackendError> {
        let Some(serde) = key.serde else {
            return Ok(None);
        };
        let corrupt = |why: &str| {
            BackendError::new(
                BackendErrorKind::Corrupt,
                format!("entry {:?}: {why}", key.key),
            )
        };
        let mut parts = parts.into_iter();
        let raw = parts.next().ok_or_else(|| corrupt("empty reply"))?;
        let names = parts.next().ok_or_else(|| corrupt("no tag list"))?;
        let names: Vec<String> = String::from_utf8_lossy(&names)
            .split('\0')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        let env = envelope::read(&raw).ok_or_else(|| corrupt("not an envelope"))?;
        if env.codec != self.inner.codec.name() {
            return Err(corrupt("written with another codec"));
        }
        if env.type_name != (serde.type_name)() {
            return Err(corrupt("written for another value type"));
        }
        // A missing tag key reads as a version no entry carries: outdated.
        let current: Vec<u64> = parts.map(|v| parse_u64(&v).unwrap_or(u64::MAX)).collect();
        if current.len() != env.versions.len() || names.len() != env.versions.len() {
            return Err(corrupt("tag count mismatch"));
        }
        let mut value = None;
        self.inner
            .codec
            .decode(env.payload, &mut |de| {
                value = Some((serde.deserialize)(de)?);
                Ok(())
            })
            .map_err(|e| corrupt(&format!("undecodable value: {e}")))?;
        let value = value.ok_or_else(|| corrupt("no value"))?;
        Ok(Some(Fetched {
            entry: StoredEntry {
                value,
                meta: env.meta,
                tags: names.into_iter().zip(env.versions).collect(),
                generation: 0,
            },
            current_versions: current,
        }))
    }

    /// A read on a cluster: the entry where it hashes, and the versions of its tags where the
    /// namespace's tags live, unless (`trusting_feed`) the feed vouches for them
    /// (`known.rs`). Without a feed to trust, the versions of the call's tags (`call_tags`, in
    /// the generation last seen) are read at the same time as the entry; only an entry of
    /// another generation or with other tags (from its result) needs a second look. The reply
    /// has the single-node script's shape.
    async fn cluster_get(
        &self,
        redis_key: &str,
        call_tags: &[String],
        trusting_feed: bool,
    ) -> Result<Option<Vec<Vec<u8>>>, BackendError> {
        let read_entry = self.run(Gate::Breaker, |mut c| {
            let invocation = self.inner.scripts.read_entry.key(redis_key);
            async move {
                invocation
                    .invoke_async::<Option<Vec<Vec<u8>>>>(&mut c.conn)
                    .await
            }
        });
        let expected = self.inner.generation.load(Ordering::Acquire);
        let (read, early) = if trusting_feed || expected == 0 || call_tags.is_empty() {
            (read_entry.await, None)
        } else {
            let expected = expected.to_string();
            let keys = self.tag_keys(&expected, call_tags.iter().map(String::as_str));
            let early = self.versions(expected.as_bytes(), &keys);
            let (read, early) = futures_util::future::join(read_entry, early).await;
            (read, Some((expected, early)))
        };
        let Some(mut parts) = read? else {
            return Ok(None);
        };
        let [raw, names, generation, checked_at] = parts.as_slice() else {
            return Ok(Some(parts)); // unreadable: decoding reports it
        };
        let (Ok(names), Ok(generation)) =
            (std::str::from_utf8(names), std::str::from_utf8(generation))
        else {
            return Ok(Some(parts)); // unreadable: decoding reports it
        };
        let tags: Vec<&str> = names.split('\0').filter(|t| !t.is_empty()).collect();
        if trusting_feed {
            if let Some(versions) = self.vouched_versions(raw, &tags, generation, checked_at) {
                parts.truncate(2);
                parts.extend(versions.iter().map(|v| v.to_string().into_bytes()));
                return Ok(Some(parts));
            }
        }
        // The versions read with the entry, when they are those of its tags in its generation.
        if let Some((expected, Ok(Some(early)))) = &early {
            let of_entry: Option<Vec<Vec<u8>>> = (expected == generation)
                .then(|| {
                    tags.iter()
                        .map(|tag| {
                            let at = call_tags.iter().position(|t| t == tag)?;
                            early.get(at).cloned()
                        })
                        .collect()
                })
                .flatten();
            if let Some(versions) = of_entry {
                parts.truncate(2);
                parts.extend(versions);
                return Ok(Some(parts));
            }
        }
        let tag_keys = self.tag_keys(generation, tags.iter().copied());
        let Some(versions) = self.versions(generation.as_bytes(), &tag_keys).await? else {
            return Ok(None); // of another generation
        };
        if let Some(current) = parse_u64(generation.as_bytes()) {
            self.inner.generation.store(current, Ordering::Release);
        }
        parts.truncate(2);
        parts.extend(versions);
        Ok(Some(parts))
    }

    /// The versions under `keys` (tag keys of `generation`) on the tags' node: `None` when the
    /// namespace is in another generation, `''` for a missing key.
    async fn versions(
        &self,
        generation: &[u8],
        keys: &[String],
    ) -> Result<Option<Vec<Vec<u8>>>, BackendError> {
        self.run(Gate::Breaker, |mut c| {
            let mut invocation = self.invocation(&self.inner.scripts.versions, &c, None);
            invocation.arg(generation);
            for key in keys {
                invocation.key(key);
            }
            async move { invocation.invoke_async(&mut c.conn).await }
        })
        .await
    }

    /// The keys of `tags`' versions in `generation`.
    fn tag_keys<'t>(
        &self,
        generation: &str,
        tags: impl IntoIterator<Item = &'t str>,
    ) -> Vec<String> {
        let prefix = &self.inner.tag_prefix;
        tags.into_iter()
            .map(|tag| format!("{prefix}{generation}:{tag}"))
            .collect()
    }

    /// Runs `script` (stamp or invalidate) with the keys of `tags` in the generation last seen,
    /// once more if the namespace is in another one (the reply is then `{gen}` alone).
    async fn with_tag_keys(
        &self,
        gate: Gate,
        script: &redis::Script,
        tags: &[String],
        args: &[&str],
    ) -> Result<Vec<Vec<u8>>, BackendError> {
        for _ in 0..3 {
            let expected = self.inner.generation.load(Ordering::Acquire).to_string();
            let keys = self.tag_keys(&expected, tags.iter().map(String::as_str));
            let reply: Vec<Vec<u8>> = self
                .run(gate, |mut c| {
                    let mut invocation = self.invocation(script, &c, None);
                    for arg in args {
                        invocation.arg(*arg);
                    }
                    invocation.arg(&expected);
                    for key in &keys {
                        invocation.key(key);
                    }
                    async move { invocation.invoke_async(&mut c.conn).await }
                })
                .await?;
            let Some(generation) = reply.first().and_then(|g| parse_u64(g)) else {
                return Ok(reply); // the caller says what is wrong with it
            };
            self.inner.generation.store(generation, Ordering::Release);
            if reply.len() > 1 {
                return Ok(reply);
            }
        }
        Err(BackendError::new(
            BackendErrorKind::Other,
            "the namespace's generation kept moving",
        ))
    }

    /// The versions an entry carries, when the feed vouches that they are current.
    fn vouched_versions(
        &self,
        raw: &[u8],
        tags: &[&str],
        generation: &str,
        checked_at: &[u8],
    ) -> Option<Vec<u64>> {
        let (generation, checked_at) = (generation.parse().ok()?, parse_u64(checked_at)?);
        let versions = envelope::read(raw)?.versions;
        (tags.len() == versions.len()
            && self.inner.known.vouches_for(
                generation,
                checked_at,
                tags.iter().copied().zip(versions.iter().copied()),
            ))
        .then_some(versions)
    }

    /// Deletes the keys matching `pattern`: on one Redis a batch at a time, on a cluster on
    /// every primary.
    async fn unlink_matching(&self, pattern: &str) -> Result<(), BackendError> {
        if self.inner.link.is_cluster() {
            return self.unlink_matching_on_every_primary(pattern).await;
        }
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .run(Gate::Always, |mut c| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut c.conn)
                        .await
                })
                .await?;
            if !keys.is_empty() {
                let _: i64 = self
                    .run(Gate::Always, |mut c| async move {
                        redis::cmd("UNLINK")
                            .arg(&keys)
                            .query_async(&mut c.conn)
                            .await
                    })
                    .await?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }
}

impl RedisBackend {
    /// On a cluster, publishes a heartbeat (`head`, the position there, `tail`) from the node of
    /// the namespace's tag versions, and returns that position (generation and sequence).
    async fn heartbeat_from_the_tags_node(
        &self,
        (head, tail): &(String, String),
    ) -> Result<Position, BackendError> {
        let reply: Vec<String> = self
            .run(Gate::Always, |mut c| {
                let mut invocation = self.invocation(&self.inner.scripts.heartbeat, &c, None);
                invocation.arg(&self.inner.channel).arg(head).arg(tail);
                async move { invocation.invoke_async(&mut c.conn).await }
            })
            .await?;
        let at = parse_position(&reply).ok_or_else(|| {
            BackendError::new(BackendErrorKind::Other, "unexpected reply to the heartbeat")
        })?;
        // The tag keys of the next stamp or invalidation are in this generation.
        self.inner
            .generation
            .store(at.generation, Ordering::Release);
        Ok(at)
    }

    /// [`unlink_matching`](Self::unlink_matching) on a cluster: `SCAN` on each primary (from
    /// `CLUSTER NODES`, reached with the first seed's credentials and TLS settings), and
    /// `UNLINK` of each key found (keys of a batch hash to different slots). A primary that
    /// fails does not stop the others; the first failure is returned.
    async fn unlink_matching_on_every_primary(&self, pattern: &str) -> Result<(), BackendError> {
        let nodes: String = self
            .run(Gate::Always, |mut c| async move {
                redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut c.conn)
                    .await
            })
            .await?;
        let seed = self.inner.link.subscribers()[0]
            .get_connection_info()
            .clone();
        let mut first_failure = None;
        for address in primaries(&nodes) {
            let Some(node) = like_seed(&seed, address) else {
                continue;
            };
            let client = Client::open(node).map_err(redis_error)?;
            let scan_node = async {
                let mut conn = client.get_multiplexed_async_connection().await?;
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(500)
                        .query_async(&mut conn)
                        .await?;
                    if !keys.is_empty() {
                        let mut unlink = redis::pipe();
                        for key in &keys {
                            unlink.cmd("UNLINK").arg(key).ignore();
                        }
                        let () = unlink.query_async(&mut conn).await?;
                    }
                    if next == 0 {
                        return redis::RedisResult::Ok(());
                    }
                    cursor = next;
                }
            };
            let deadline = self.inner.timeout.saturating_mul(40);
            let failure = match tokio::time::timeout(deadline, scan_node).await {
                Ok(result) => result.err().map(redis_error),
                Err(_) => Some(BackendError::new(
                    BackendErrorKind::Timeout,
                    format!("clearing the keys of {address} took longer than {deadline:?}"),
                )),
            };
            first_failure = first_failure.or(failure);
        }
        first_failure.map_or(Ok(()), Err)
    }
}

/// The addresses (`host:port`) of the primaries in a `CLUSTER NODES` reply that are not
/// failing.
fn primaries(nodes: &str) -> Vec<&str> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = fields.nth(1)?;
            let flags = fields.next()?;
            let primary = flags.split(',').any(|f| f == "master")
                && !flags.split(',').any(|f| f == "fail" || f == "fail?");
            primary.then(|| address.split('@').next().unwrap_or(address))
        })
        .collect()
}

/// How to reach the node at `address` (`host:port`, as `CLUSTER NODES` gives it): as `seed`
/// is reached (credentials, database, TLS), at another address.
fn like_seed(seed: &redis::ConnectionInfo, address: &str) -> Option<redis::ConnectionInfo> {
    use redis::ConnectionAddr;
    let (host, port) = address.rsplit_once(':')?;
    let (host, port) = (host.to_owned(), port.parse().ok()?);
    let addr = match seed.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host,
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host, port),
    };
    Some(seed.clone().set_addr(addr))
}

/// Whether Redis said `TRYAGAIN` (a multi-key command on a migrating slot whose keys are split
/// between the two nodes), or did not answer in time: the cluster client retries `TRYAGAIN`
/// until the timeout.
fn is_try_again(error: &BackendError) -> bool {
    if error.kind() == BackendErrorKind::Timeout {
        return true;
    }
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<redis::RedisError>())
        .is_some_and(|e| e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::TryAgain))
}

/// `<scope>:<key>`, or `<scope>#<sha256 of key>` for long keys.
fn scoped(key: &EntryKey<'_>) -> String {
    if key.key.len() > MAX_KEY {
        let digest: String = Sha256::digest(key.key.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{:016x}#{digest}", key.scope)
    } else {
        format!("{:016x}:{}", key.scope, key.key)
    }
}

fn parse_u64(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// A `{gen, seq}` reply.
fn parse_position(reply: &[String]) -> Option<Position> {
    let [generation, seq] = reply else {
        return None;
    };
    Some(Position {
        generation: generation.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

/// A `SCAN MATCH` pattern matching every key that starts with `prefix`.
fn prefix_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

/// The stamp script's reply: `{gen, seq, version...}`.
fn parse_stamp(reply: Vec<Vec<u8>>, tags: usize) -> Result<Versions, BackendError> {
    let bad = || {
        BackendError::new(
            BackendErrorKind::Other,
            "unexpected reply to the stamp script",
        )
    };
    let numbers: Vec<u64> = reply
        .iter()
        .map(|part| parse_u64(part))
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    let [generation, seq, versions @ ..] = numbers.as_slice() else {
        return Err(bad());
    };
    if versions.len() != tags {
        return Err(bad());
    }
    Ok(Versions {
        tags: versions.to_vec(),
        watermark: Some(*seq),
        generation: *generation,
    })
}

impl RedisBackend {
    async fn read(
        &self,
        key: EntryKey<'_>,
        trusting_feed: bool,
    ) -> Result<Option<Fetched>, BackendError> {
        {
            if key.serde.is_none() {
                return Ok(None);
            }
            if self.inner.breaker.settling() {
                return Err(BackendError::new(
                    BackendErrorKind::Unavailable,
                    "redis answers again after an outage: reads wait for queued invalidations",
                ));
            }
            let redis_key = self.entry_key(&key);
            let reply = if self.inner.link.is_cluster() {
                self.cluster_get(&redis_key, key.tags, trusting_feed)
                    .await?
            } else {
                self.run(Gate::Breaker, |mut c| {
                    let invocation = self.invocation(&self.inner.scripts.get, &c, Some(&redis_key));
                    async move { invocation.invoke_async(&mut c.conn).await }
                })
                .await?
            };
            match reply {
                None => Ok(None),
                Some(parts) => self.decode(&key, parts),
            }
        }
    }
}

/// An entry ready to be written: its key, envelope, tags and expiry.
struct PreparedPut {
    redis_key: String,
    bytes: Vec<u8>,
    /// The tags, NUL-separated.
    tags: String,
    ttl: u64,
    /// The tags' keys in the stamp's generation.
    tag_keys: Vec<String>,
    versions: Vec<u64>,
}

impl RedisBackend {
    /// Encodes `entry` of `key` for a write.
    fn prepare_put(
        &self,
        key: &EntryKey<'_>,
        entry: &StoredEntry,
    ) -> Result<PreparedPut, BackendError> {
        let Some(serde) = key.serde else {
            return Err(BackendError::new(
                BackendErrorKind::Other,
                format!(
                    "{}: the value type is not Serialize + DeserializeOwned; kept in process only",
                    key.method
                ),
            ));
        };
        if entry.tags.iter().any(|(t, _)| t.contains('\0')) {
            return Err(BackendError::new(
                BackendErrorKind::Other,
                "a tag contains NUL",
            ));
        }
        let value = (serde.serialize)(&*entry.value).ok_or_else(|| {
            BackendError::new(BackendErrorKind::Other, "value of an unexpected type")
        })?;
        let payload = self.inner.codec.encode(value).map_err(|e| {
            BackendError::new(BackendErrorKind::Other, "cannot encode the value").with_source(e)
        })?;
        let versions: Vec<u64> = entry.tags.iter().map(|(_, v)| *v).collect();
        let bytes = envelope::write(
            self.inner.codec.name(),
            (serde.type_name)(),
            &entry.meta,
            &versions,
            &payload,
        );
        let tags = entry
            .tags
            .iter()
            .map(|(t, _)| t.as_str())
            .collect::<Vec<_>>()
            .join("\0");
        let now = crate::clock::system_millis();
        let ttl = entry
            .meta
            .stale_until
            .saturating_sub(now)
            .saturating_add(1_000)
            .min(MAX_TTL_MS);
        let generation = entry.generation.to_string();
        Ok(PreparedPut {
            redis_key: self.entry_key(key),
            bytes,
            tags,
            ttl,
            tag_keys: self.tag_keys(&generation, entry.tags.iter().map(|(t, _)| t.as_str())),
            versions,
        })
    }

    /// The invocation of `script` (`put`, or on a cluster `check`) for `put`: the keys of
    /// its tags in the stamp's `generation`, then (one Redis) the entry's.
    fn put_invocation<'s>(
        &self,
        script: &'s redis::Script,
        connected: &Connected,
        put: &PreparedPut,
        generation: &str,
        cluster: bool,
    ) -> redis::ScriptInvocation<'s> {
        let mut invocation = self.invocation(script, connected, None);
        for key in &put.tag_keys {
            invocation.key(key);
        }
        let envelope: &[u8] = if cluster {
            &[]
        } else {
            invocation.key(&put.redis_key);
            &put.bytes
        };
        invocation
            .arg(generation)
            .arg(envelope)
            .arg(&put.tags)
            .arg(put.ttl);
        for version in &put.versions {
            invocation.arg(*version);
        }
        invocation
    }
}

impl Backend for RedisBackend {
    fn get<'a>(&'a self, key: EntryKey<'a>) -> BackendFuture<'a, Option<Fetched>> {
        Box::pin(self.read(key, false))
    }

    /// On a cluster, an entry the feed vouches for is read from its node alone (see
    /// `known.rs`); otherwise as [`get`](Backend::get).
    fn get_trusting_feed<'a>(&'a self, key: EntryKey<'a>) -> BackendFuture<'a, Option<Fetched>> {
        Box::pin(self.read(key, true))
    }

    /// On one Redis, one pipeline of `get` scripts; on a cluster, the entries one pipeline
    /// per slot, then their tags' versions in one call (`cluster_batch.rs`).
    fn get_many<'a>(
        &'a self,
        keys: &'a [EntryKey<'a>],
        trusting_feed: bool,
    ) -> BackendFuture<'a, Vec<Result<Option<Fetched>, BackendError>>> {
        Box::pin(async move {
            if self.inner.breaker.settling() {
                return Err(BackendError::new(
                    BackendErrorKind::Unavailable,
                    "redis answers again after an outage: reads wait for queued invalidations",
                ));
            }
            if self.inner.link.is_cluster() {
                return self.cluster_get_many(keys, trusting_feed).await;
            }
            let readable: Vec<String> = keys
                .iter()
                .filter(|key| key.serde.is_some())
                .map(|key| self.entry_key(key))
                .collect();
            let mut replies = if readable.is_empty() {
                Vec::new()
            } else {
                let script = &self.inner.scripts.get;
                self.run(Gate::Breaker, |mut c| {
                    let mut pipe = redis::pipe();
                    pipe.load_script(script).ignore();
                    for key in &readable {
                        pipe.invoke_script(&self.invocation(script, &c, Some(key)));
                    }
                    async move {
                        pipe.query_async::<Vec<Option<Vec<Vec<u8>>>>>(&mut c.conn)
                            .await
                    }
                })
                .await?
            }
            .into_iter();
            Ok(keys
                .iter()
                .map(|key| match key.serde {
                    None => Ok(None),
                    Some(_) => match replies.next().flatten() {
                        None => Ok(None),
                        Some(parts) => self.decode(key, parts),
                    },
                })
                .collect())
        })
    }

    fn stamp_versions<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, Versions> {
        Box::pin(async move {
            let stamp = &self.inner.scripts.stamp;
            let reply = self.with_tag_keys(Gate::Breaker, stamp, tags, &[]).await?;
            parse_stamp(reply, tags.len())
        })
    }

    fn tag_versions<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, Vec<u64>> {
        Box::pin(async move { Ok(self.stamp_versions(tags).await?.tags) })
    }

    fn put<'a>(&'a self, key: EntryKey<'a>, entry: StoredEntry) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            let put = self.prepare_put(&key, &entry)?;
            let generation = entry.generation.to_string();
            // One Redis checks and writes in one script; on a cluster, the check runs where
            // the tags are, then the entry is written where it hashes.
            let cluster = self.inner.link.is_cluster();
            let script = match cluster {
                true => &self.inner.scripts.check,
                false => &self.inner.scripts.put,
            };
            let stored: i64 = self
                .run(Gate::Breaker, |mut c| {
                    let invocation = self.put_invocation(script, &c, &put, &generation, cluster);
                    async move { invocation.invoke_async(&mut c.conn).await }
                })
                .await?;
            // On a cluster, the check answered the sequence at which it found the stamp current.
            if stored >= 0 && cluster {
                let _: i64 = self
                    .run(Gate::Breaker, |mut c| {
                        let mut invocation = self.inner.scripts.write_entry.key(&put.redis_key);
                        invocation
                            .arg(&put.bytes)
                            .arg(&put.tags)
                            .arg(&generation)
                            .arg(put.ttl)
                            .arg(stored);
                        async move { invocation.invoke_async(&mut c.conn).await }
                    })
                    .await?;
            }
            Ok(())
        })
    }

    /// On one Redis, one pipeline of `put` scripts; on a cluster, one pipeline of checks on
    /// the tags' node, then the entries one pipeline per slot (`cluster_batch.rs`).
    fn put_many<'a>(&'a self, entries: Vec<(EntryKey<'a>, StoredEntry)>) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            let mut first_error = None;
            let mut puts = Vec::with_capacity(entries.len());
            for (key, entry) in &entries {
                match self.prepare_put(key, entry) {
                    Ok(put) => puts.push((put, entry.generation.to_string())),
                    Err(error) => first_error = first_error.or(Some(error)),
                }
            }
            if !puts.is_empty() && self.inner.link.is_cluster() {
                self.cluster_put_many(&puts).await?;
            } else if !puts.is_empty() {
                let script = &self.inner.scripts.put;
                let _: Vec<i64> = self
                    .run(Gate::Breaker, |mut c| {
                        let mut pipe = redis::pipe();
                        pipe.load_script(script).ignore();
                        for (put, generation) in &puts {
                            pipe.invoke_script(
                                &self.put_invocation(script, &c, put, generation, false),
                            );
                        }
                        async move { pipe.query_async(&mut c.conn).await }
                    })
                    .await?;
            }
            first_error.map_or(Ok(()), Err)
        })
    }

    fn invalidate_tags<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            let (head, tail) = Message::invalidated_around_position(&self.inner.origin, tags);
            let script = &self.inner.scripts.invalidate;
            let args = [self.inner.channel.as_str(), &head, &tail];
            let reply = match self.with_tag_keys(Gate::Always, script, tags, &args).await {
                Ok(reply) => reply,
                // A cluster refuses a script whose keys are split by a migrating slot
                // (`TRYAGAIN`, which the cluster client retries until the timeout): the variant
                // that finds its keys itself, and skips those it cannot reach.
                Err(error) if self.inner.link.is_cluster() && is_try_again(&error) => {
                    self.run(Gate::Always, |mut c| {
                        let script = &self.inner.scripts.invalidate_migrating;
                        let mut invocation = self.invocation(script, &c, None);
                        invocation.arg(&args[..]);
                        for tag in tags {
                            invocation.arg(tag);
                        }
                        async move { invocation.invoke_async(&mut c.conn).await }
                    })
                    .await?
                }
                Err(error) => return Err(error),
            };
            let reply: Vec<String> = reply
                .into_iter()
                .map(|part| String::from_utf8_lossy(&part).into_owned())
                .collect();
            // Heard here before the call returns, whenever the feed delivers it.
            if let Some(at) = parse_position(&reply) {
                let tags = tags.iter().map(String::as_str);
                self.inner.known.heard(at.generation, at.seq, tags);
            } else {
                self.inner.known.unanchor();
            }
            Ok(())
        })
    }

    fn clear(&self) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            // The message names the new generation, so that a cluster's generation watch
            // (`bus.rs`) tells this clear from a failover.
            let generation = fastrand::u64(1..);
            let message = Message::Cleared {
                origin: self.inner.origin.clone(),
                generation: Some(generation),
            }
            .encode();
            self.inner.known.unanchor();
            let cleared = self
                .run(Gate::Always, |mut c| {
                    let mut invocation = self.inner.scripts.clear.key(&self.inner.meta);
                    invocation
                        .arg(&*c.boot)
                        .arg(generation.to_string())
                        .arg(&self.inner.channel)
                        .arg(&message);
                    async move { invocation.invoke_async::<i64>(&mut c.conn).await }
                })
                .await;
            cleared?;
            // A heartbeat published before, heard after, describes the old generation: it
            // anchors nothing.
            self.inner.known.moved_to(Some(generation));
            self.inner.generation.store(generation, Ordering::Release);
            // The new generation already outdated everything; deleting only frees memory.
            for prefix in [&self.inner.entry_prefix, &self.inner.tag_prefix] {
                if let Err(error) = self.unlink_matching(&prefix_pattern(prefix)).await {
                    tracing::event!(
                        target: LOG_TARGET,
                        tracing::Level::WARN,
                        cache.op = "error",
                        %error,
                        "clear: outdated entries are left to expire"
                    );
                    break;
                }
            }
            Ok(())
        })
    }

    fn healthy(&self) -> bool {
        !self.inner.breaker.is_open()
    }

    fn stores_bytes(&self) -> bool {
        true
    }

    fn try_lock<'a>(
        &'a self,
        key: EntryKey<'a>,
        ttl: Duration,
    ) -> BackendFuture<'a, Option<LockToken>> {
        Box::pin(async move {
            let token = fastrand::u64(1..);
            let lock_key = format!("{}{}", self.inner.lock_prefix, scoped(&key));
            let ttl_ms = (ttl.as_millis() as u64).clamp(1, MAX_TTL_MS);
            let set: Option<String> = self
                .run(Gate::Breaker, |mut c| async move {
                    redis::cmd("SET")
                        .arg(&lock_key)
                        .arg(token)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(&mut c.conn)
                        .await
                })
                .await?;
            Ok(set.map(|_| LockToken(token)))
        })
    }

    fn unlock<'a>(&'a self, key: EntryKey<'a>, token: LockToken) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            let lock_key = format!("{}{}", self.inner.lock_prefix, scoped(&key));
            let _: i64 = self
                .run(Gate::Breaker, |mut c| {
                    let mut invocation = self.inner.scripts.unlock.key(&lock_key);
                    invocation.arg(token.0);
                    async move { invocation.invoke_async(&mut c.conn).await }
                })
                .await?;
            Ok(())
        })
    }

    fn feed(&self) -> Option<Feed> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = self.inner.clone();
        tokio::runtime::Handle::try_current()
            .ok()?
            .spawn(bus::follow(shared, tx));
        Some(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> EntryKey<'_> {
        EntryKey {
            method: "m",
            scope: 7,
            key: text,
            serde: None,
            tags: &[],
        }
    }

    #[test]
    fn short_and_hashed_keys_live_in_disjoint_spaces() {
        let long = "x".repeat(MAX_KEY + 1);
        let hashed = scoped(&key(&long));
        let digest = hashed.split_once('#').expect("hashed form").1;
        assert_eq!(hashed, format!("{:016x}#{digest}", 7));
        // A short key spelling the hashed form's tail cannot reach it.
        for spelled in [
            format!("h:{digest}"),
            format!("#{digest}"),
            digest.to_owned(),
        ] {
            assert_ne!(scoped(&key(&spelled)), hashed);
        }
        assert_eq!(scoped(&key("customer.1")), format!("{:016x}:customer.1", 7));
    }

    #[test]
    fn stamp_replies_parse() {
        let reply = vec![b"42".to_vec(), b"7".to_vec(), b"3".to_vec(), b"7".to_vec()];
        assert_eq!(
            parse_stamp(reply, 2).unwrap(),
            Versions {
                tags: vec![3, 7],
                watermark: Some(7),
                generation: 42
            }
        );
        assert!(parse_stamp(vec![b"42".to_vec()], 0).is_err());
        assert!(parse_stamp(vec![b"x".to_vec(), b"1".to_vec()], 0).is_err());
    }

    #[test]
    fn a_primary_is_reached_as_the_seed_is() {
        use redis::IntoConnectionInfo;
        let seed = "redis://user:secret@10.0.0.1:7000/0"
            .into_connection_info()
            .unwrap();
        let node = like_seed(&seed, "10.0.0.2:7001").unwrap();
        assert_eq!(
            node.addr(),
            &redis::ConnectionAddr::Tcp("10.0.0.2".into(), 7001)
        );
        assert_eq!(node.redis_settings().username(), Some("user"));
        assert_eq!(node.redis_settings().password(), Some("secret"));
        assert!(like_seed(&seed, "no port").is_none());
    }

    #[test]
    fn scan_patterns_escape_the_prefix() {
        assert_eq!(prefix_pattern("a*b?:e:"), "a\\*b\\?:e:*");
    }
}
