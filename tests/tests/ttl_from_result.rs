//! `ttl = <expr over result>` and `swr = <expr over result>`: each value's lifetime computed
//! when it is stored, checked, and replaced by the documented fallback (logged) when it cannot
//! be one. Judged against a manual clock, counting loads.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_runtime::{
    cached, observe, Cache, CallOutcome, Clock, ManualClock, COMPUTED_TTL_FALLBACK,
};
use support::capture::capture;
use support::until;

#[derive(Clone, Debug, PartialEq)]
struct Quote {
    price: u64,
    valid_for: Duration,
    grace_secs: i64,
}

#[derive(Clone)]
struct Prices {
    cache: Cache,
    loads: std::sync::Arc<AtomicUsize>,
    /// What the next load of a quote says about its own lifetime.
    next: std::sync::Arc<parking_lot::Mutex<(Duration, i64)>>,
}

impl Prices {
    /// A short negative cache: 30 s for "no such customer", 10 minutes for one.
    #[cached(key = "customer.{id}", ttl = if result.is_none() { 30 } else { 600 })]
    async fn customer(&self, id: u32) -> Result<Option<String>, String> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        Ok(id.is_multiple_of(2).then(|| format!("customer {id}")))
    }

    /// As long as the value says, a `Duration`; then stale for its grace, in seconds.
    #[cached(key = "quote.{sku}", ttl = result.valid_for, swr = result.grace_secs)]
    async fn quote(&self, sku: u32) -> Quote {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let (valid_for, grace_secs) = *self.next.lock();
        Quote {
            price: u64::from(sku) * 10,
            valid_for,
            grace_secs,
        }
    }

    /// A bare `swr` is as long again as the computed TTL.
    #[cached(key = "rate.{sku}", ttl = result.valid_for, swr)]
    async fn rate(&self, sku: u32) -> Quote {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let (valid_for, grace_secs) = *self.next.lock();
        Quote {
            price: u64::from(sku),
            valid_for,
            grace_secs,
        }
    }
}

fn prices() -> (Prices, ManualClock) {
    let (clock, hand) = Clock::manual();
    let prices = Prices {
        cache: Cache::builder().clock(clock).build(),
        loads: Default::default(),
        next: std::sync::Arc::new(parking_lot::Mutex::new((Duration::from_secs(5), 0))),
    };
    (prices, hand)
}

impl Prices {
    fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }

    fn next(&self, valid_for: Duration, grace_secs: i64) {
        *self.next.lock() = (valid_for, grace_secs);
    }
}

#[tokio::test]
async fn a_missing_customer_is_cached_for_30_seconds_and_a_found_one_for_10_minutes() {
    let (p, hand) = prices();
    assert_eq!(p.customer(1).await, Ok(None));
    assert_eq!(p.customer(2).await, Ok(Some("customer 2".into())));
    assert_eq!(p.loads(), 2);

    hand.advance(Duration::from_millis(29_999));
    p.customer(1).await.unwrap();
    p.customer(2).await.unwrap();
    assert_eq!(p.loads(), 2, "both still cached");
    hand.advance(Duration::from_millis(1));
    p.customer(1).await.unwrap();
    p.customer(2).await.unwrap();
    assert_eq!(
        p.loads(),
        3,
        "the miss expired after 30 s, the customer did not"
    );

    hand.advance(Duration::from_secs(570));
    p.customer(2).await.unwrap();
    assert_eq!(p.loads(), 4, "the customer expired after 600 s");
}

#[tokio::test]
async fn a_duration_in_the_value_is_its_ttl_and_its_grace_the_stale_window() {
    let (p, hand) = prices();
    p.next(Duration::from_millis(5_500), 2);
    assert_eq!(p.quote(7).await.price, 70);
    hand.advance(Duration::from_millis(5_499));
    p.quote(7).await;
    assert_eq!(p.loads(), 1, "fresh for 5.5 s");

    // Stale for 2 s more: served at once, refreshed in the background.
    p.next(Duration::from_secs(60), 0);
    hand.advance(Duration::from_millis(1_500));
    p.quote(7).await;
    until(|| p.loads() == 2).await;
    // The refreshed value has its own lifetime: 60 s, no grace.
    hand.advance(Duration::from_secs(59));
    p.quote(7).await;
    assert_eq!(p.loads(), 2);
    hand.advance(Duration::from_secs(1));
    p.quote(7).await;
    assert_eq!(p.loads(), 3, "expired without a stale window");
}

#[tokio::test]
async fn a_bare_swr_is_as_long_again_as_the_computed_ttl() {
    let (p, hand) = prices();
    p.next(Duration::from_secs(4), 0);
    p.rate(1).await;
    hand.advance(Duration::from_millis(7_999));
    let (_, observed) = observe(p.rate(1)).await;
    assert_eq!(
        observed[0].outcome,
        CallOutcome::Stale,
        "4 s past its 4 s TTL, within the window"
    );
    until(|| p.loads() == 2).await;

    p.next(Duration::from_secs(4), 0);
    hand.advance(Duration::from_secs(8));
    let (_, observed) = observe(p.rate(1)).await;
    assert_eq!(
        observed[0].outcome,
        CallOutcome::Miss,
        "past TTL and window"
    );
}

#[tokio::test]
async fn a_zero_negative_or_absurd_ttl_falls_back_to_60_seconds_and_is_logged() {
    assert_eq!(COMPUTED_TTL_FALLBACK, Duration::from_secs(60));
    for (valid_for, grace, what) in [
        (Duration::ZERO, 0, "ttl"),
        (Duration::from_micros(300), 0, "ttl"),
        (Duration::MAX, 0, "ttl"),
        (Duration::from_secs(5), -3, "swr"),
        (Duration::from_secs(5), i64::MAX, "swr"),
    ] {
        let (events, _guard) = capture();
        let (p, hand) = prices();
        p.next(valid_for, grace);
        p.quote(1).await;
        let refused: Vec<_> = events
            .events()
            .into_iter()
            .filter(|e| e.get("cache.op").map(String::as_str) == Some(what))
            .collect();
        assert_eq!(refused.len(), 1, "{valid_for:?}, {grace}: {refused:?}");
        assert_eq!(refused[0]["level"], "WARN");
        assert!(
            refused[0]["message"].contains("from the result"),
            "{:?}",
            refused[0]
        );
        let ttl = if what == "ttl" {
            COMPUTED_TTL_FALLBACK
        } else {
            valid_for
        };
        // A refused `swr` is no stale window: the entry is a miss right at its TTL.
        hand.advance(ttl - Duration::from_millis(1));
        p.quote(1).await;
        assert_eq!(p.loads(), 1, "{valid_for:?}, {grace}: kept for {ttl:?}");
        hand.advance(Duration::from_millis(1));
        p.quote(1).await;
        assert_eq!(p.loads(), 2, "{valid_for:?}, {grace}: gone after {ttl:?}");
    }
}
