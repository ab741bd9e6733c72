//! Following a shared backend's invalidation feed: other instances' invalidations and clears
//! applied to this instance's in-process tier, and whether that tier can be trusted.

use std::sync::atomic::Ordering;
use std::sync::Weak;

use super::Inner;
use crate::backend::{Feed, FeedEvent};
use crate::LOG_TARGET;

/// Applies a shared backend's feed to the in-process tier, until the cache is dropped.
pub(super) async fn follow(
    inner: Weak<Inner>,
    mut feed: Feed,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    loop {
        let event = tokio::select! {
            event = feed.recv() => event,
            _ = &mut stop => None,
        };
        let (Some(event), Some(inner)) = (event, inner.upgrade()) else {
            return;
        };
        let Some(local) = &inner.local else { return };
        match event {
            FeedEvent::Invalidated(tags) => {
                inner.log.record(tags.iter().map(|t| inner.log.hash(t)));
                local.invalidate_tags(&tags);
                tracing::event!(
                    target: LOG_TARGET,
                    tracing::Level::DEBUG,
                    cache.op = "invalidate",
                    cache.tags = ?tags,
                    "invalidated by another instance"
                );
            }
            FeedEvent::Cleared => {
                inner.log.record_all();
                local.clear();
            }
            FeedEvent::Connected => {
                // Events may have been missed while disconnected: start over.
                inner.log.record_all();
                local.clear();
                inner.trusted.store(true, Ordering::Release);
            }
            FeedEvent::Disconnected => inner.trusted.store(false, Ordering::Release),
        }
        // Counted once applied: whoever sees the count move sees its effect.
        inner.feed_events.fetch_add(1, Ordering::Release);
    }
}
