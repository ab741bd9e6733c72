//! The Redis backend: entries, tag versions and the invalidation feed in one Redis, shared by
//! every instance of an application.
//!
//! Layout, under a namespace prefix `ns`:
//! - `ns:e:<scope>:<key>`: a hash with `v` (the envelope: expiry, tag versions, encoded value)
//!   and `t` (the tag names, NUL-separated), expiring at the end of the entry's stale window;
//! - `ns:t:<tag>`: the tag's version, an integer, living at least as long as the longest-lived
//!   entry that carries it (so versions never restart under a live entry), or one hour when
//!   only an invalidation created it;
//! - `ns:invalidate`: the pub/sub channel of the invalidation feed.
//!
//! A hit is one `EVALSHA` (the value and the current versions of its tags); stamping tags one
//! `MGET`; a store one `EVALSHA`; invalidating any number of tags one `EVALSHA` (the bumps
//! and the `PUBLISH`). Every operation has a timeout and goes through a circuit breaker.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Client, Script};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{
    envelope, Backend, BackendError, BackendErrorKind, BackendFuture, EntryKey, Feed, FeedEvent,
    Fetched, LockToken, StoredEntry,
};
use crate::codec::{Codec, MessagePack};

const GET: &str = r"
local h = redis.pcall('HMGET', KEYS[1], 'v', 't')
if h.err then return { '', '' } end
if not h[1] then
  if redis.call('EXISTS', KEYS[1]) == 0 then return nil end
  return { '', '' }
end
local out = { h[1], h[2] or '' }
if h[2] and #h[2] > 0 then
  for tag in string.gmatch(h[2], '([^%z]+)') do
    out[#out + 1] = redis.call('GET', ARGV[1] .. tag) or ''
  end
end
return out
";

const PUT: &str = r"
local kind = redis.call('TYPE', KEYS[1]).ok
if kind ~= 'hash' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 't', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if #ARGV[2] > 0 then
  for tag in string.gmatch(ARGV[2], '([^%z]+)') do
    local k = ARGV[4] .. tag
    redis.call('SET', k, '0', 'NX', 'PX', ARGV[3])
    redis.call('PEXPIRE', k, ARGV[3], 'GT')
  end
end
return 1
";

const INVALIDATE: &str = r"
local v = redis.call('INCR', KEYS[2])
for i = 3, #ARGV do
  local k = ARGV[1] .. ARGV[i]
  if redis.call('EXISTS', k) == 1 then
    redis.call('SET', k, v, 'KEEPTTL')
  else
    redis.call('SET', k, v, 'PX', 3600000)
  end
end
redis.call('PUBLISH', KEYS[1], ARGV[2])
return v
";

const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

const MAX_KEY: usize = 200;
const ORIGIN_SEP: char = '\u{1e}';

/// Counts failures and, after `threshold` in a row, fails every call at once for `cooldown`.
struct Breaker {
    failures: AtomicU32,
    open_until_ms: AtomicU64,
    threshold: u32,
    cooldown: Duration,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Breaker {
    fn check(&self) -> Result<(), BackendError> {
        if now_ms() < self.open_until_ms.load(Ordering::Acquire) {
            return Err(BackendError::new(
                BackendErrorKind::Unavailable,
                "redis circuit breaker open",
            ));
        }
        Ok(())
    }
    fn success(&self) {
        self.failures.store(0, Ordering::Release);
    }
    fn failure(&self) {
        if self.failures.fetch_add(1, Ordering::AcqRel) + 1 >= self.threshold {
            self.open_until_ms.store(
                now_ms() + self.cooldown.as_millis() as u64,
                Ordering::Release,
            );
            self.failures.store(0, Ordering::Release);
        }
    }
}

/// Configures a [`RedisBackend`].
pub struct RedisBuilder {
    url: String,
    namespace: String,
    timeout: Duration,
    codec: Arc<dyn Codec>,
    breaker_threshold: u32,
    breaker_cooldown: Duration,
    heartbeat: Duration,
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

    /// After `failures` failed operations in a row, every operation fails at once for
    /// `cooldown` (default 3 failures, 1 s), so that a dead Redis adds no latency.
    pub fn circuit_breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker_threshold = failures.max(1);
        self.breaker_cooldown = cooldown;
        self
    }

    /// The backend. Nothing is connected yet: the first operation connects.
    pub fn build(self) -> Result<RedisBackend, BackendError> {
        let client = Client::open(self.url.as_str()).map_err(|e| {
            BackendError::new(
                BackendErrorKind::Other,
                format!("invalid Redis URL {:?}", self.url),
            )
            .with_source(e)
        })?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(|e| {
                BackendError::new(
                    BackendErrorKind::Other,
                    "cannot set up the Redis connection",
                )
                .with_source(e)
            })?;
        let ns = self.namespace;
        Ok(RedisBackend {
            inner: Arc::new(Shared {
                client,
                manager,
                entry_prefix: format!("{ns}:e:"),
                tag_prefix: format!("{ns}:t:"),
                channel: format!("{ns}:invalidate"),
                sequence: format!("{ns}:seq"),
                heartbeat: self.heartbeat,
                timeout: self.timeout,
                codec: self.codec,
                breaker: Breaker {
                    failures: AtomicU32::new(0),
                    open_until_ms: AtomicU64::new(0),
                    threshold: self.breaker_threshold,
                    cooldown: self.breaker_cooldown,
                },
                origin: format!("{:016x}", fastrand::u64(..)),
                get: Script::new(GET),
                put: Script::new(PUT),
                invalidate: Script::new(INVALIDATE),
                unlock: Script::new(UNLOCK),
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
    client: Client,
    manager: ConnectionManager,
    entry_prefix: String,
    tag_prefix: String,
    channel: String,
    sequence: String,
    timeout: Duration,
    heartbeat: Duration,
    codec: Arc<dyn Codec>,
    breaker: Breaker,
    origin: String,
    get: Script,
    put: Script,
    invalidate: Script,
    unlock: Script,
}

fn redis_error(e: redis::RedisError) -> BackendError {
    let kind = if e.is_timeout() {
        BackendErrorKind::Timeout
    } else {
        BackendErrorKind::Unavailable
    };
    BackendError::new(kind, "redis").with_source(e)
}

impl RedisBackend {
    /// Starts configuring a backend on the Redis at `url` (`redis://host:port/db`).
    pub fn builder(url: impl Into<String>) -> RedisBuilder {
        RedisBuilder {
            url: url.into(),
            namespace: "cache".into(),
            timeout: Duration::from_millis(250),
            codec: Arc::new(MessagePack),
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_secs(1),
            heartbeat: Duration::from_secs(1),
        }
    }

    /// Whether the circuit breaker is open: Redis failed repeatedly, and calls skip it until the
    /// cooldown ends.
    pub fn is_circuit_open(&self) -> bool {
        self.inner.breaker.check().is_err()
    }

    /// The Redis key of an entry: over-long keys are hashed.
    pub fn entry_key(&self, key: &EntryKey<'_>) -> String {
        let shared = &self.inner;
        if key.key.len() > MAX_KEY {
            let digest: String = Sha256::digest(key.key.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("{}{:016x}:h:{digest}", shared.entry_prefix, key.scope)
        } else {
            format!("{}{:016x}:{}", shared.entry_prefix, key.scope, key.key)
        }
    }

    /// Runs one Redis operation under the timeout and the circuit breaker.
    async fn run<T>(
        &self,
        op: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, BackendError> {
        let shared = &self.inner;
        shared.breaker.check()?;
        match tokio::time::timeout(shared.timeout, op).await {
            Ok(Ok(value)) => {
                shared.breaker.success();
                Ok(value)
            }
            Ok(Err(e)) => {
                // A reply error is Redis answering, not Redis failing: it does not open the
                // circuit.
                if !matches!(
                    e.kind(),
                    redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError)
                ) {
                    shared.breaker.failure();
                }
                Err(redis_error(e))
            }
            Err(_) => {
                shared.breaker.failure();
                Err(BackendError::new(
                    BackendErrorKind::Timeout,
                    format!("redis did not answer within {:?}", shared.timeout),
                ))
            }
        }
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
        let current: Vec<u64> = parts
            .map(|v| {
                std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u64::MAX)
            })
            .collect();
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
            },
            current_versions: current,
        }))
    }

    /// The message that tells other instances about an invalidation.
    fn message(&self, tags: &[String]) -> String {
        let mut message = format!("i{ORIGIN_SEP}{}{ORIGIN_SEP}", self.inner.origin);
        message.push_str(&tags.join("\0"));
        message
    }
}

impl Backend for RedisBackend {
    fn get<'a>(&'a self, key: EntryKey<'a>) -> BackendFuture<'a, Option<Fetched>> {
        Box::pin(async move {
            if key.serde.is_none() {
                return Ok(None);
            }
            let redis_key = self.entry_key(&key);
            let mut conn = self.inner.manager.clone();
            let reply: Option<Vec<Vec<u8>>> = self
                .run(
                    self.inner
                        .get
                        .key(&redis_key)
                        .arg(&self.inner.tag_prefix)
                        .invoke_async(&mut conn),
                )
                .await?;
            match reply {
                None => Ok(None),
                Some(parts) => self.decode(&key, parts),
            }
        })
    }

    fn stamp_versions<'a>(
        &'a self,
        tags: &'a [String],
    ) -> BackendFuture<'a, (Vec<u64>, Option<u64>)> {
        Box::pin(async move {
            let mut keys: Vec<String> = tags
                .iter()
                .map(|t| format!("{}{t}", self.inner.tag_prefix))
                .collect();
            keys.push(self.inner.sequence.clone());
            let mut conn = self.inner.manager.clone();
            let mut values: Vec<Option<u64>> = self.run(async { conn.mget(&keys).await }).await?;
            let watermark = values.pop().flatten().unwrap_or(0);
            Ok((
                values.into_iter().map(|v| v.unwrap_or(0)).collect(),
                Some(watermark),
            ))
        })
    }

    fn tag_versions<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, Vec<u64>> {
        Box::pin(async move {
            if tags.is_empty() {
                return Ok(Vec::new());
            }
            let keys: Vec<String> = tags
                .iter()
                .map(|t| format!("{}{t}", self.inner.tag_prefix))
                .collect();
            let mut conn = self.inner.manager.clone();
            let values: Vec<Option<u64>> = self.run(async { conn.mget(&keys).await }).await?;
            Ok(values.into_iter().map(|v| v.unwrap_or(0)).collect())
        })
    }

    fn put<'a>(&'a self, key: EntryKey<'a>, entry: StoredEntry) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            let Some(serde) = key.serde else {
                return Err(BackendError::new(BackendErrorKind::Other, format!("{}: the value type is not Serialize + DeserializeOwned; kept in process only", key.method)));
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
            let ttl = entry.meta.stale_until.saturating_sub(now_ms()).max(1) + 1_000;
            let redis_key = self.entry_key(&key);
            let mut conn = self.inner.manager.clone();
            let _: i64 = self
                .run(
                    self.inner
                        .put
                        .key(&redis_key)
                        .arg(bytes)
                        .arg(tags)
                        .arg(ttl)
                        .arg(&self.inner.tag_prefix)
                        .invoke_async(&mut conn),
                )
                .await?;
            Ok(())
        })
    }

    fn invalidate_tags<'a>(&'a self, tags: &'a [String]) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.inner.manager.clone();
            let mut invocation = self.inner.invalidate.key(&self.inner.channel);
            invocation.key(&self.inner.sequence);
            invocation
                .arg(&self.inner.tag_prefix)
                .arg(self.message(tags));
            for tag in tags {
                invocation.arg(tag);
            }
            let _: i64 = self.run(invocation.invoke_async(&mut conn)).await?;
            Ok(())
        })
    }

    fn clear(&self) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            let escaped: String = self
                .inner
                .entry_prefix
                .chars()
                .flat_map(|c| match c {
                    '*' | '?' | '[' | ']' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect();
            let pattern = format!("{escaped}*");
            let mut conn = self.inner.manager.clone();
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = self
                    .run(
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(500)
                            .query_async(&mut conn),
                    )
                    .await?;
                if !keys.is_empty() {
                    let _: i64 = self
                        .run(redis::cmd("UNLINK").arg(&keys).query_async(&mut conn))
                        .await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            let message = format!("c{ORIGIN_SEP}{}{ORIGIN_SEP}", self.inner.origin);
            let _: i64 = self.run(conn.publish(&self.inner.channel, message)).await?;
            Ok(())
        })
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
            let lock_key = format!("{}:lock", self.entry_key(&key));
            let mut conn = self.inner.manager.clone();
            let set: Option<String> = self
                .run(
                    redis::cmd("SET")
                        .arg(&lock_key)
                        .arg(token)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl.as_millis() as u64)
                        .query_async(&mut conn),
                )
                .await?;
            Ok(set.map(|_| LockToken(token)))
        })
    }

    fn unlock<'a>(&'a self, key: EntryKey<'a>, token: LockToken) -> BackendFuture<'a, ()> {
        Box::pin(async move {
            let lock_key = format!("{}:lock", self.entry_key(&key));
            let mut conn = self.inner.manager.clone();
            let _: i64 = self
                .run(
                    self.inner
                        .unlock
                        .key(&lock_key)
                        .arg(token.0)
                        .invoke_async(&mut conn),
                )
                .await?;
            Ok(())
        })
    }

    fn feed(&self) -> Option<Feed> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = self.inner.clone();
        tokio::runtime::Handle::try_current()
            .ok()?
            .spawn(subscribe(shared, tx));
        Some(rx)
    }
}

/// Keeps a subscription to the invalidation channel, reconnecting with backoff, and turns
/// messages of other instances into feed events. Ends when the cache drops the feed.
async fn subscribe(shared: Arc<Shared>, tx: mpsc::UnboundedSender<FeedEvent>) {
    use futures_util::StreamExt;
    let mut backoff = Duration::from_millis(50);
    loop {
        let connected = async {
            let mut pubsub = shared.client.get_async_pubsub().await?;
            pubsub.subscribe(&shared.channel).await?;
            redis::RedisResult::Ok(pubsub)
        };
        match tokio::time::timeout(shared.timeout.max(Duration::from_millis(500)), connected).await
        {
            Ok(Ok(pubsub)) => {
                let connected_at = std::time::Instant::now();
                if tx.send(FeedEvent::Connected).is_err() {
                    return;
                }
                let mut messages = pubsub.into_on_message();
                // A subscription can die without the socket noticing (no FIN, no traffic): a
                // heartbeat we publish ourselves must come back, or the feed counts as broken.
                let mut beat = tokio::time::interval(shared.heartbeat);
                let mut last_heard = tokio::time::Instant::now();
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        _ = tx.closed() => return,
                        _ = beat.tick() => {
                            if last_heard.elapsed() > shared.heartbeat * 3 {
                                tracing::event!(target: "cache_runtime", tracing::Level::WARN, cache.op = "error", "invalidation feed silent: reconnecting");
                                break;
                            }
                            let mut conn = shared.manager.clone();
                            let ping = format!("h{ORIGIN_SEP}{}{ORIGIN_SEP}", shared.origin);
                            let _ = tokio::time::timeout(shared.timeout, conn.publish::<_, _, i64>(&shared.channel, ping)).await;
                            continue;
                        }
                    };
                    let Some(message) = message else { break };
                    last_heard = tokio::time::Instant::now();
                    let Ok(text) = std::str::from_utf8(message.get_payload_bytes()) else {
                        continue;
                    };
                    let mut parts = text.splitn(3, ORIGIN_SEP);
                    let (Some(kind), Some(origin), rest) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        continue;
                    };
                    // Our own messages are applied too: other caches may share this backend,
                    // and re-applying an invalidation only bumps a version again.
                    let _ = origin;
                    let event = match kind {
                        "i" => FeedEvent::Invalidated(
                            rest.unwrap_or_default()
                                .split('\0')
                                .filter(|t| !t.is_empty())
                                .map(str::to_owned)
                                .collect(),
                        ),
                        "c" => FeedEvent::Cleared,
                        _ => continue,
                    };
                    if tx.send(event).is_err() {
                        return;
                    }
                }
                // A connection that held for a while starts the backoff over.
                if connected_at.elapsed() > Duration::from_secs(5) {
                    backoff = Duration::from_millis(50);
                }
                tracing::event!(target: "cache_runtime", tracing::Level::WARN, cache.op = "error", "invalidation feed disconnected: in-process entries are bypassed until it is back");
                if tx.send(FeedEvent::Disconnected).is_err() {
                    return;
                }
            }
            _ => {
                if tx.is_closed() {
                    return;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = tx.closed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}
