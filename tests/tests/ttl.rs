//! TTL in seconds or as a duration string, and jitter, judged against a manual clock.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{cached, Cache, Clock, ManualClock};

struct Timed {
    cache: Cache,
    calls: AtomicUsize,
}

impl Timed {
    #[cached(key = "seconds.{n}", ttl = 10)]
    async fn seconds(&self, n: u32) -> u32 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        n
    }

    #[cached(key = "millis.{n}", ttl = "250ms")]
    async fn millis(&self, n: u32) -> u32 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        n
    }

    #[cached(key = "jittered.{n}", ttl = "100s", jitter = "50s")]
    async fn jittered(&self, n: u32) -> u32 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        n
    }
}

fn timed() -> (Timed, ManualClock) {
    let (clock, hand) = Clock::manual();
    (
        Timed {
            cache: Cache::builder().clock(clock).build(),
            calls: AtomicUsize::new(0),
        },
        hand,
    )
}

#[tokio::test]
async fn an_entry_lives_exactly_its_ttl() {
    let (t, hand) = timed();
    t.seconds(1).await;
    hand.advance(Duration::from_millis(9_999));
    t.seconds(1).await;
    assert_eq!(t.calls.load(Ordering::SeqCst), 1);
    hand.advance(Duration::from_millis(1));
    t.seconds(1).await;
    assert_eq!(t.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn duration_strings_are_understood() {
    let (t, hand) = timed();
    t.millis(1).await;
    hand.advance(Duration::from_millis(249));
    t.millis(1).await;
    assert_eq!(t.calls.load(Ordering::SeqCst), 1);
    hand.advance(Duration::from_millis(1));
    t.millis(1).await;
    assert_eq!(t.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn jitter_spreads_expiries_between_ttl_minus_jitter_and_ttl() {
    let (t, hand) = timed();
    for n in 0..200 {
        t.jittered(n).await;
    }
    hand.advance(Duration::from_millis(49_999));
    for n in 0..200 {
        t.jittered(n).await;
    }
    assert_eq!(
        t.calls.load(Ordering::SeqCst),
        200,
        "nothing expires before ttl - jitter"
    );

    hand.advance(Duration::from_secs(25)); // 75 s: somewhere in the window
    for n in 0..200 {
        t.jittered(n).await;
    }
    let reloaded = t.calls.load(Ordering::SeqCst) - 200;
    assert!(
        reloaded > 0 && reloaded < 200,
        "expiries are spread, {reloaded} of 200 expired at 75 s"
    );

    hand.advance(Duration::from_secs(100)); // everything from the first round is gone
    let before = t.calls.load(Ordering::SeqCst);
    for n in 0..200 {
        t.jittered(n).await;
    }
    assert_eq!(t.calls.load(Ordering::SeqCst) - before, 200);
}
