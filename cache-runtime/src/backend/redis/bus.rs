//! The invalidation feed: what instances publish on the namespace's channel, and the task
//! that follows it for a cache.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::mpsc;

use super::known::KnownVersions;
use super::Shared;
use crate::backend::FeedEvent;
use crate::LOG_TARGET;

/// Separates a message's kind, origin and body; no tag contains it.
const SEP: char = '\u{1e}';

/// One message on the invalidation channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Message {
    /// These tags were invalidated, by invalidation number `seq` of generation `gen` when
    /// the message says so (`origin@gen:seq`: older instances read it as an opaque origin).
    Invalidated {
        origin: String,
        at: Option<Position>,
        tags: Vec<String>,
    },
    /// The namespace was cleared; its new generation, when the sender said it.
    Cleared {
        origin: String,
        generation: Option<u64>,
    },
    /// An instance is alive (and its subscription hears its own heartbeats). On a cluster it
    /// is published from the tags' node, with the sequence there (`origin@gen:seq`).
    Heartbeat {
        origin: String,
        at: Option<Position>,
    },
}

/// Where an invalidation stands in the namespace's sequence: its generation and number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Position {
    pub(super) generation: u64,
    pub(super) seq: u64,
}

impl Position {
    /// `gen:seq`.
    fn parse(text: &str) -> Option<Position> {
        let (generation, seq) = text.split_once(':')?;
        Some(Position {
            generation: generation.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// `kind␞origin@` and `␞body`: a message, but for its position, which goes between.
fn around_position(kind: char, origin: &str, body: &str) -> (String, String) {
    (format!("{kind}{SEP}{origin}@"), format!("{SEP}{body}"))
}

/// `kind␞origin[@gen:seq]␞body`.
fn frame(kind: char, origin: &str, at: Option<Position>, body: &str) -> String {
    match at {
        Some(Position { generation, seq }) => {
            let (head, tail) = around_position(kind, origin, body);
            format!("{head}{generation}:{seq}{tail}")
        }
        None => format!("{kind}{SEP}{origin}{SEP}{body}"),
    }
}

impl Message {
    /// The message of an invalidation of `tags` by `origin`, as a head and a tail between
    /// which the invalidation script writes its position (`gen:seq`).
    pub(super) fn invalidated_around_position(origin: &str, tags: &[String]) -> (String, String) {
        around_position('i', origin, &tags.join("\0"))
    }

    /// The message of a heartbeat of `origin` published by a script, as a head and a tail
    /// between which the script writes the position of the namespace's sequence (`gen:seq`).
    pub(super) fn heartbeat_around_position(origin: &str) -> (String, String) {
        around_position('h', origin, "")
    }

    pub(super) fn encode(&self) -> String {
        match self {
            Message::Invalidated { origin, at, tags } => frame('i', origin, *at, &tags.join("\0")),
            Message::Cleared { origin, generation } => {
                let generation = generation.map(|g| g.to_string()).unwrap_or_default();
                frame('c', origin, None, &generation)
            }
            Message::Heartbeat { origin, at } => frame('h', origin, *at, ""),
        }
    }

    pub(super) fn parse(bytes: &[u8]) -> Option<Message> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, SEP);
        let (kind, origin, body) = (parts.next()?, parts.next()?, parts.next()?);
        let (origin, at) = match origin.split_once('@') {
            Some((origin, position)) => (origin.to_owned(), Position::parse(position)),
            None => (origin.to_owned(), None),
        };
        Some(match kind {
            "i" => Message::Invalidated {
                origin,
                at,
                tags: body
                    .split('\0')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            },
            "c" => Message::Cleared {
                origin,
                generation: body.parse().ok(),
            },
            "h" => Message::Heartbeat { origin, at },
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
    /// When the follower ends, what it anchored is no longer watched.
    struct Unanchor(Arc<Shared>);
    impl Drop for Unanchor {
        fn drop(&mut self) {
            self.0.known.unanchor();
        }
    }
    let _unanchor = Unanchor(shared.clone());
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
                // Until a heartbeat anchors it, the feed vouches for no tag version. On a
                // cluster, the feed counts as connected once a heartbeat of the tags' node
                // arrives, from which on every lost invalidation is noticed (`Sequence`).
                shared.known.unanchor();
                if !shared.link.is_cluster() && tx.send(FeedEvent::Connected).is_err() {
                    return;
                }
                let mut messages = pubsub.into_on_message();
                // A subscription can die without the socket noticing (no FIN, no traffic): a
                // heartbeat we publish ourselves must come back, or the feed counts as broken.
                let mut beat = tokio::time::interval(shared.heartbeat);
                let mut last_heard = tokio::time::Instant::now();
                let heartbeat = Message::Heartbeat {
                    origin: shared.origin.clone(),
                    at: None,
                }
                .encode();
                let around = Message::heartbeat_around_position(&shared.origin);
                let mut generations = GenerationWatch::default();
                // What this subscription heard of the sequence since a heartbeat's position.
                let mut heard = Sequence::default();
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
                            if shared.link.is_cluster() {
                                let backend = super::RedisBackend {
                                    inner: shared.clone(),
                                };
                                let beat = backend.heartbeat_from_the_tags_node(&around).await;
                                let event =
                                    generations.observe(beat.as_ref().ok().map(|p| p.generation));
                                match (&event, &beat) {
                                    (Some(FeedEvent::Connected), Ok(at)) => {
                                        shared.known.moved_to(Some(at.generation));
                                        heard = Sequence::default();
                                    }
                                    (Some(_), _) => {
                                        shared.known.unanchor();
                                        heard = Sequence::default();
                                    }
                                    (None, _) => {}
                                }
                                if let Some(event) = event {
                                    if tx.send(event).is_err() {
                                        return;
                                    }
                                }
                                continue;
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
                            continue;
                        }
                    };
                    let Some(message) = message else { break };
                    last_heard = tokio::time::Instant::now();
                    let Some(message) = Message::parse(message.get_payload_bytes()) else {
                        continue;
                    };
                    if let Message::Cleared { generation, .. } = &message {
                        generations.cleared(*generation);
                    }
                    for event in heard.message(&shared.known, message) {
                        if tx.send(event).is_err() {
                            return;
                        }
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
                shared.known.unanchor();
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
                at: Some(Position {
                    generation: 42,
                    seq: 7,
                }),
                tags: vec!["customer.1".into(), "customer.list".into()],
            },
            Message::Invalidated {
                origin: origin.clone(),
                at: None,
                tags: vec![],
            },
            Message::Cleared {
                origin: origin.clone(),
                generation: Some(42),
            },
            Message::Cleared {
                origin: origin.clone(),
                generation: None,
            },
            Message::Heartbeat {
                origin: origin.clone(),
                at: None,
            },
            Message::Heartbeat {
                origin,
                at: Some(Position {
                    generation: 1,
                    seq: 0,
                }),
            },
        ] {
            assert_eq!(Message::parse(message.encode().as_bytes()), Some(message));
        }
        assert_eq!(
            Message::parse("c\u{1e}o\u{1e}".as_bytes()),
            Some(Message::Cleared {
                origin: "o".into(),
                generation: None
            }),
            "a clear from an older instance"
        );
        // As the invalidation script writes it, between head and tail.
        let tags = ["a".to_owned(), "b".to_owned()];
        let (head, tail) = Message::invalidated_around_position("o", &tags);
        assert_eq!(
            Message::parse(format!("{head}3:9{tail}").as_bytes()),
            Some(Message::Invalidated {
                origin: "o".into(),
                at: Some(Position {
                    generation: 3,
                    seq: 9
                }),
                tags: tags.to_vec(),
            })
        );
        assert_eq!(
            Message::parse("i\u{1e}o@x:1\u{1e}a".as_bytes()),
            Some(Message::Invalidated {
                origin: "o".into(),
                at: None,
                tags: vec!["a".into()],
            }),
            "an unreadable position still invalidates"
        );
        assert_eq!(Message::parse(b"garbage"), None);
        assert_eq!(Message::parse(b"x\x1eo\x1e"), None);
        assert_eq!(Message::parse(&[0xff, 0x1e]), None);
    }

    fn invalidated(generation: u64, seq: u64, tag: &str) -> Message {
        Message::Invalidated {
            origin: "o".into(),
            at: Some(Position { generation, seq }),
            tags: vec![tag.into()],
        }
    }

    fn heartbeat(generation: u64, seq: u64) -> Message {
        Message::Heartbeat {
            origin: "o".into(),
            at: Some(Position { generation, seq }),
        }
    }

    #[test]
    fn a_heartbeat_heard_anchors_and_one_after_a_lost_invalidation_starts_over() {
        let known = KnownVersions::default();
        let mut sequence = Sequence::default();
        assert_eq!(
            sequence.message(&known, heartbeat(1, 10)),
            vec![FeedEvent::Connected],
            "the first heartbeat connects the feed"
        );
        assert!(known.vouches_for(1, 10, [("a", 3)]));
        // 11 arrives, 12 is lost on the way, 13 arrives: the heartbeat at 13 tells.
        sequence.message(&known, invalidated(1, 11, "b"));
        sequence.message(&known, invalidated(1, 13, "c"));
        assert!(
            known.vouches_for(1, 10, [("a", 3)]),
            "12 (of a) not heard yet"
        );
        assert_eq!(
            sequence.message(&known, heartbeat(1, 13)),
            vec![FeedEvent::Connected],
            "in-process entries are dropped"
        );
        assert!(
            !known.vouches_for(1, 12, [("a", 3)]),
            "entries checked before the heartbeat ask the tags' node"
        );
        assert!(known.vouches_for(1, 13, [("a", 3)]), "anchored anew");
        // Nothing lost since: nothing dropped.
        sequence.message(&known, invalidated(1, 14, "a"));
        assert!(sequence.message(&known, heartbeat(1, 14)).is_empty());
        assert!(!known.vouches_for(1, 14, [("a", 13)]));
    }

    #[test]
    fn an_invalidation_without_a_position_unanchors_until_the_next_heartbeat() {
        let known = KnownVersions::default();
        let mut sequence = Sequence::default();
        sequence.message(&known, heartbeat(1, 10));
        let old = Message::Invalidated {
            origin: "older".into(),
            at: None,
            tags: vec!["a".into()],
        };
        assert_eq!(
            sequence.message(&known, old),
            vec![FeedEvent::Invalidated(vec!["a".into()])]
        );
        assert!(!known.vouches_for(1, 10, [("a", 3)]));
        // The next heartbeat was published after that invalidation took its number; whether
        // others were lost before it, nobody can tell: the feed starts over.
        assert_eq!(
            sequence.message(&known, heartbeat(1, 11)),
            vec![FeedEvent::Connected]
        );
        assert!(known.vouches_for(1, 11, [("a", 11)]));
        assert!(!known.vouches_for(1, 10, [("a", 3)]));
    }

    #[test]
    fn a_clear_moves_the_generation_and_old_heartbeats_anchor_nothing() {
        let known = KnownVersions::default();
        let mut sequence = Sequence::default();
        sequence.message(&known, heartbeat(1, 10));
        let cleared = Message::Cleared {
            origin: "o".into(),
            generation: Some(2),
        };
        assert_eq!(sequence.message(&known, cleared), vec![FeedEvent::Cleared]);
        // Published before the clear: it tells nothing.
        assert!(sequence.message(&known, heartbeat(1, 10)).is_empty());
        assert!(!known.is_anchored());
        // The clear started generation 2 at 0: every invalidation since is accounted for.
        sequence.message(&known, invalidated(2, 1, "a"));
        assert!(sequence.message(&known, heartbeat(2, 1)).is_empty());
        assert!(known.vouches_for(2, 1, [("a", 1)]));
        assert!(!known.vouches_for(1, 10, []));
        // One lost after the clear is noticed.
        sequence.message(&known, invalidated(2, 3, "a"));
        assert_eq!(
            sequence.message(&known, heartbeat(2, 3)),
            vec![FeedEvent::Connected]
        );
    }

    #[test]
    fn a_heartbeat_tells_whether_every_invalidation_before_it_arrived() {
        let at = |seq| Position { generation: 1, seq };
        let mut heard = Heard::from(at(10));
        assert!(heard.covers(at(10)));
        heard.invalidation(at(12));
        assert!(!heard.covers(at(12)), "11 is missing");
        heard.invalidation(at(11));
        heard.invalidation(at(9)); // before the start
        assert!(heard.covers(at(12)));
        assert!(!heard.covers(at(13)));
        assert!(
            !heard.covers(Position {
                generation: 2,
                seq: 0
            }),
            "another generation"
        );
        heard.invalidation(Position {
            generation: 2,
            seq: 13,
        });
        assert!(!heard.covers(at(13)));
    }

    #[test]
    fn the_generation_watch_starts_over_when_the_tags_node_fails_or_its_generation_moves() {
        let mut watch = GenerationWatch::default();
        assert!(
            watch.observe(Some(1)).is_none(),
            "the first look sets the baseline"
        );
        assert!(watch.observe(Some(1)).is_none());
        // A clear heard on the feed explains the move to its generation.
        watch.cleared(Some(2));
        assert!(watch.observe(Some(2)).is_none());
        // Not a move to another one (a failover right after the clear).
        assert!(matches!(watch.observe(Some(3)), Some(FeedEvent::Connected)));
        // A failing heartbeat bypasses the in-process tier once, until one succeeds.
        assert!(matches!(watch.observe(None), Some(FeedEvent::Disconnected)));
        assert!(watch.observe(None).is_none());
        assert!(matches!(watch.observe(Some(3)), Some(FeedEvent::Connected)));
        assert!(watch.observe(Some(3)).is_none());
    }
}

/// What one subscription heard of the namespace's sequence, and what it tells the tag
/// versions this instance knows (`known.rs`) and the cache.
#[derive(Default)]
struct Sequence(Option<Heard>);

impl Sequence {
    /// Applies `message` to `known`, and returns what the cache must hear of it.
    fn message(&mut self, known: &KnownVersions, message: Message) -> Vec<FeedEvent> {
        let mut events = Vec::new();
        match &message {
            Message::Cleared { generation, .. } => {
                known.moved_to(*generation);
                // A clear starts its generation at 0, in the script that publishes it.
                self.0 = generation.map(|generation| Heard::from(Position { generation, seq: 0 }));
            }
            Message::Invalidated {
                at: Some(at), tags, ..
            } => {
                known.heard(at.generation, at.seq, tags.iter().map(String::as_str));
                if let Some(heard) = &mut self.0 {
                    heard.invalidation(*at);
                }
            }
            Message::Invalidated { at: None, .. } => {
                // Of an older instance: its number in the sequence is unknown.
                known.unanchor();
                self.0 = None;
            }
            Message::Heartbeat { at: Some(at), .. } if known.left_behind(at.generation) => {}
            Message::Heartbeat { at: Some(at), .. } => {
                // Every invalidation numbered up to `at` was published before it, from the
                // same node: this subscription heard them all, or lost some. Without a
                // record of this generation (a new subscription, a move, an invalidation
                // without a number), it cannot tell: it starts over from here too.
                let heard_all = self.0.as_ref().is_some_and(|h| h.covers(*at));
                if !heard_all {
                    if self
                        .0
                        .as_ref()
                        .is_some_and(|h| h.generation == at.generation)
                    {
                        tracing::event!(
                            target: LOG_TARGET,
                            tracing::Level::WARN,
                            cache.op = "error",
                            "invalidation feed lost messages: in-process entries are dropped"
                        );
                    }
                    self.0 = Some(Heard::from(*at));
                    known.unanchor();
                    events.push(FeedEvent::Connected);
                }
                known.anchor(at.generation, at.seq);
            }
            Message::Heartbeat { at: None, .. } => {}
        }
        events.extend(message.event());
        events
    }
}

/// What one subscription heard of the namespace's sequence since a heartbeat's position:
/// invalidations take consecutive numbers, so a heartbeat published at `seq` tells whether
/// every one up to it arrived.
struct Heard {
    generation: u64,
    /// Every number up to this one was heard.
    complete: u64,
    /// Numbers heard above `complete`.
    above: std::collections::BTreeSet<u64>,
}

impl Heard {
    fn from(at: Position) -> Self {
        Heard {
            generation: at.generation,
            complete: at.seq,
            above: Default::default(),
        }
    }

    fn invalidation(&mut self, at: Position) {
        if at.generation != self.generation || at.seq <= self.complete {
            return;
        }
        self.above.insert(at.seq);
        while self.above.remove(&(self.complete + 1)) {
            self.complete += 1;
        }
    }

    fn covers(&self, at: Position) -> bool {
        at.generation == self.generation && self.complete >= at.seq
    }
}

/// On a cluster, the feed's subscription may be on another node than the namespace's tag
/// versions, whose messages reach it over the cluster bus. Each heartbeat is therefore
/// published from the tag versions' node (so that a subscription that stops hearing that node
/// falls silent and reconnects), and reads the generation there, which a promoted replica
/// starts anew. The watch turns what it sees into feed events:
/// - a heartbeat that fails: the tag versions' node may be failing over, and its last messages
///   lost, so the in-process tier is bypassed (`Disconnected`) until one succeeds again, and
///   then starts over (`Connected`);
/// - a generation that moved, unless to the one a clear heard on the feed announced: it
///   starts over (`Connected`).
#[derive(Default)]
struct GenerationWatch {
    last: Option<u64>,
    /// The generation the last clear heard on the feed started.
    announced: Option<u64>,
    /// Whether the last heartbeat failed.
    failing: bool,
}

impl GenerationWatch {
    /// What a heartbeat that saw `generation` (`None`: it failed) means for the feed.
    fn observe(&mut self, generation: Option<u64>) -> Option<FeedEvent> {
        let Some(now) = generation else {
            if self.failing {
                return None;
            }
            self.failing = true;
            tracing::event!(
                target: LOG_TARGET,
                tracing::Level::WARN,
                cache.op = "error",
                "the node of the namespace's tag versions does not answer: in-process entries \
                 are bypassed until it does"
            );
            return Some(FeedEvent::Disconnected);
        };
        let moved = self
            .last
            .is_some_and(|last| last != now && self.announced != Some(now));
        self.last = Some(now);
        if std::mem::take(&mut self.failing) || moved {
            tracing::event!(
                target: LOG_TARGET,
                tracing::Level::WARN,
                cache.op = "error",
                "the node of the namespace's tag versions failed, failed over or lost data: \
                 messages may be lost, so in-process entries are dropped"
            );
            return Some(FeedEvent::Connected);
        }
        None
    }

    /// A clear heard on the feed, which started `generation` (when it said so).
    fn cleared(&mut self, generation: Option<u64>) {
        self.announced = generation;
    }
}
