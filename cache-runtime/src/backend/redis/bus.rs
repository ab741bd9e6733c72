//! The invalidation feed: what instances publish on the namespace's channel, and the task
//! that follows it for a cache.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::mpsc;

use super::Shared;
use crate::backend::FeedEvent;
use crate::LOG_TARGET;

/// Separates a message's kind, origin and body; no tag contains it.
const SEP: char = '\u{1e}';

/// One message on the invalidation channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Message {
    /// These tags were invalidated.
    Invalidated { origin: String, tags: Vec<String> },
    /// The namespace was cleared.
    Cleared { origin: String },
    /// An instance is alive (and its subscription hears its own heartbeats).
    Heartbeat { origin: String },
}

impl Message {
    pub(super) fn encode(&self) -> String {
        match self {
            Message::Invalidated { origin, tags } => {
                format!("i{SEP}{origin}{SEP}{}", tags.join("\0"))
            }
            Message::Cleared { origin } => format!("c{SEP}{origin}{SEP}"),
            Message::Heartbeat { origin } => format!("h{SEP}{origin}{SEP}"),
        }
    }

    pub(super) fn parse(bytes: &[u8]) -> Option<Message> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, SEP);
        let (kind, origin, body) = (parts.next()?, parts.next()?.to_owned(), parts.next()?);
        Some(match kind {
            "i" => Message::Invalidated {
                origin,
                tags: body
                    .split('\0')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            },
            "c" => Message::Cleared { origin },
            "h" => Message::Heartbeat { origin },
            _ => return None,
        })
    }

    /// What a cache following the feed does with it. Its own messages are applied too: other
    /// caches may share this backend, and re-applying an invalidation only bumps a version.
    fn event(self) -> Option<FeedEvent> {
        match self {
            Message::Invalidated { tags, .. } => Some(FeedEvent::Invalidated(tags)),
            Message::Cleared { .. } => Some(FeedEvent::Cleared),
            Message::Heartbeat { .. } => None,
        }
    }
}

/// Keeps a subscription to the invalidation channel, reconnecting with backoff, and turns
/// messages into feed events. Ends when the cache drops the feed.
pub(super) async fn follow(shared: Arc<Shared>, tx: mpsc::UnboundedSender<FeedEvent>) {
    use futures_util::StreamExt;
    let mut backoff = Duration::from_millis(50);
    // Whether a subscription failed or broke before: then connecting ends an outage.
    let mut outage = false;
    // Which subscriber to try: the one Redis, or the cluster's seeds in turn.
    let mut attempt = 0usize;
    loop {
        let subscribers = shared.link.subscribers();
        let client = &subscribers[attempt % subscribers.len()];
        attempt = attempt.wrapping_add(1);
        let connected = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&shared.channel).await?;
            redis::RedisResult::Ok(pubsub)
        };
        match tokio::time::timeout(shared.timeout.max(Duration::from_millis(500)), connected).await
        {
            Ok(Ok(pubsub)) => {
                let connected_at = std::time::Instant::now();
                // Anything may have happened while we were away: reads wait for writers
                // that queued invalidations to deliver them.
                if outage {
                    shared.breaker.recovered();
                }
                outage = true;
                if tx.send(FeedEvent::Connected).is_err() {
                    return;
                }
                let mut messages = pubsub.into_on_message();
                // A subscription can die without the socket noticing (no FIN, no traffic): a
                // heartbeat we publish ourselves must come back, or the feed counts as broken.
                let mut beat = tokio::time::interval(shared.heartbeat);
                let mut last_heard = tokio::time::Instant::now();
                let heartbeat = Message::Heartbeat {
                    origin: shared.origin.clone(),
                }
                .encode();
                let mut generations = GenerationWatch::default();
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        _ = tx.closed() => return,
                        _ = beat.tick() => {
                            if last_heard.elapsed() > shared.heartbeat * 3 {
                                tracing::event!(
                                    target: LOG_TARGET,
                                    tracing::Level::WARN,
                                    cache.op = "error",
                                    "invalidation feed silent: reconnecting"
                                );
                                break;
                            }
                            let connect = shared.link.connected();
                            if let Ok(Ok(mut connected)) =
                                tokio::time::timeout(shared.timeout, connect).await
                            {
                                let publish = connected
                                    .conn
                                    .publish::<_, _, i64>(&shared.channel, &heartbeat);
                                let _ = tokio::time::timeout(shared.timeout, publish).await;
                            }
                            if shared.link.is_cluster() && generations.moved(&shared).await {
                                tracing::event!(
                                    target: LOG_TARGET,
                                    tracing::Level::WARN,
                                    cache.op = "error",
                                    "the namespace's generation moved without a clear: its node \
                                     failed over or lost data, and messages may be lost; \
                                     in-process entries are dropped"
                                );
                                if tx.send(FeedEvent::Connected).is_err() {
                                    return;
                                }
                            }
                            continue;
                        }
                    };
                    let Some(message) = message else { break };
                    last_heard = tokio::time::Instant::now();
                    let Some(event) =
                        Message::parse(message.get_payload_bytes()).and_then(Message::event)
                    else {
                        continue;
                    };
                    if matches!(event, FeedEvent::Cleared) {
                        generations.cleared();
                    }
                    if tx.send(event).is_err() {
                        return;
                    }
                }
                // A connection that held for a while starts the backoff over.
                if connected_at.elapsed() > Duration::from_secs(5) {
                    backoff = Duration::from_millis(50);
                }
                tracing::event!(
                    target: LOG_TARGET,
                    tracing::Level::WARN,
                    cache.op = "error",
                    "invalidation feed disconnected: \
                     in-process entries are bypassed until it is back"
                );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let origin = "00ff".to_owned();
        for message in [
            Message::Invalidated {
                origin: origin.clone(),
                tags: vec!["customer.1".into(), "customer.list".into()],
            },
            Message::Invalidated {
                origin: origin.clone(),
                tags: vec![],
            },
            Message::Cleared {
                origin: origin.clone(),
            },
            Message::Heartbeat { origin },
        ] {
            assert_eq!(Message::parse(message.encode().as_bytes()), Some(message));
        }
        assert_eq!(Message::parse(b"garbage"), None);
        assert_eq!(Message::parse(b"x\x1eo\x1e"), None);
        assert_eq!(Message::parse(&[0xff, 0x1e]), None);
    }
}

/// On a cluster, the feed's subscription may be on another node than the namespace's tag
/// versions: when that node fails over (or loses its data), the subscription holds, yet
/// messages it published may be lost. Each heartbeat therefore touches the namespace's
/// generation (a stamp of no tags, which starts a new generation on a failed-over node, as any
/// script does); a generation that moved without a clear heard on the feed counts as a broken
/// feed.
#[derive(Default)]
struct GenerationWatch {
    last: Option<u64>,
    cleared: bool,
}

impl GenerationWatch {
    /// Whether the generation moved since the last heartbeat without a clear heard on the feed.
    async fn moved(&mut self, shared: &Arc<Shared>) -> bool {
        let backend = super::RedisBackend {
            inner: shared.clone(),
        };
        let Ok(now) = crate::backend::Backend::stamp_versions(&backend, &[]).await else {
            return false;
        };
        let moved = self
            .last
            .is_some_and(|last| last != now.generation && !self.cleared);
        self.last = Some(now.generation);
        self.cleared = false;
        moved
    }

    /// A clear was heard: the next move of the generation is its own.
    fn cleared(&mut self) {
        self.cleared = true;
    }
}
