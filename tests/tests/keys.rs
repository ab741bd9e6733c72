//! Key templates: unambiguous encoding, per-method key spaces, filters, rendered keys without
//! raw PII.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{cached, Cache};
use support::capture::capture;
use support::repo::CustomerRepository;
use support::{ann, Store};

struct Pairs {
    cache: Cache,
    calls: AtomicUsize,
}

impl Pairs {
    #[cached(key = "x.{a}.{b}", ttl = 60)]
    async fn join(&self, a: &str, b: &str) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        format!("{a}|{b}")
    }

    #[cached(key = "t.{s | trim | lower}", ttl = 60)]
    async fn normalized(&self, s: &str) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        s.trim().to_lowercase()
    }

    #[cached(key = "shared.{n}", ttl = 60, name = "same-name")]
    async fn as_number(&self, n: u32) -> u32 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        n
    }
}

mod elsewhere {
    use super::*;

    impl Pairs {
        // The same method name and key as `as_number`, but another value type.
        #[cached(key = "shared.{n}", ttl = 60, name = "same-name")]
        pub(super) async fn as_text(&self, n: u32) -> String {
            self.calls.fetch_add(1, Ordering::SeqCst);
            n.to_string()
        }
    }
}

fn pairs() -> Pairs {
    Pairs {
        cache: Cache::in_memory(100),
        calls: AtomicUsize::new(0),
    }
}

#[tokio::test]
async fn different_argument_tuples_never_share_a_key() {
    let p = pairs();
    assert_eq!(p.join("1.2", "3").await, "1.2|3");
    assert_eq!(p.join("1", "2.3").await, "1|2.3");
    assert_eq!(p.join("1.2", "3").await, "1.2|3");
    assert_eq!(p.join("1", "2.3").await, "1|2.3");
    assert_eq!(p.join("%2E", "").await, "%2E|");
    assert_eq!(p.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn filters_normalize_before_the_key_is_built() {
    let p = pairs();
    assert_eq!(p.normalized("  Mixed Case ").await, "mixed case");
    assert_eq!(p.normalized("mixed CASE").await, "mixed case");
    assert_eq!(p.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn one_method_never_reads_another_methods_entry() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    assert_eq!(repo.find_by_email("Ann@Example.com").await, Ok(Some(ann())));
    // The rendered key of find_by_email is customer.email.<sha256>; find_by_id with the id
    // "email.<sha256>" would render the same text without encoding and method scopes.
    let hash = sha256_hex("ann@example.com");
    assert_eq!(repo.find_by_id(&format!("email.{hash}")).await, Ok(None));
    assert_eq!(
        repo.store.loads(),
        2,
        "find_by_id must have missed and asked the store"
    );
}

#[tokio::test]
async fn a_value_of_another_type_under_the_same_key_is_a_miss_not_a_panic() {
    let p = pairs();
    assert_eq!(p.as_number(7).await, 7);
    assert_eq!(p.as_text(7).await, "7");
    assert_eq!(p.as_number(7).await, 7);
    assert_eq!(p.as_text(7).await, "7");
    // Each read found the other type's value and reloaded.
    assert_eq!(p.calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn rendered_keys_in_logs_carry_the_hash_not_the_email() {
    let (events, _guard) = capture();
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    repo.find_by_email("ann@example.com").await.unwrap();
    repo.find_by_email("ann@example.com").await.unwrap();
    let keys: Vec<String> = events
        .events()
        .iter()
        .filter_map(|e| e.get("cache.key").cloned())
        .collect();
    assert!(!keys.is_empty());
    let expected = format!("customer.email.{}", sha256_hex("ann@example.com"));
    assert!(keys.iter().all(|k| *k == expected), "{keys:?}");
    assert!(events
        .events()
        .iter()
        .all(|e| e.values().all(|v| !v.contains("ann@"))));
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An id with a `Display` of its own: rendered through `Display`, not as its inner string.
struct Tagged(&'static str);

impl std::fmt::Display for Tagged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t-{}", self.0)
    }
}

struct Typed {
    cache: Cache,
}

impl Typed {
    #[cached(key = "k.{a}.{b}.{c}.{d}", ttl = 60)]
    async fn mixed(&self, a: &str, b: String, c: i64, d: u8) -> u32 {
        1
    }

    #[cached(key = "k.{a}.{b}.{c}.{d}", ttl = 60)]
    async fn displayed(&self, a: Tagged, b: bool, c: char, d: std::net::Ipv4Addr) -> u32 {
        2
    }

    #[cached(key = "k.{a}", ttl = 60)]
    async fn generic<T: std::fmt::Display + Sync>(&self, a: T) -> u32 {
        3
    }
}

#[tokio::test]
async fn each_kind_of_argument_renders_its_display_text_encoded() {
    let typed = Typed {
        cache: Cache::in_memory(100),
    };
    let keys = |observed: Vec<cache_runtime::Observed>| -> Vec<String> {
        observed.into_iter().map(|o| o.key).collect()
    };
    let (_, seen) = cache_runtime::observe(typed.mixed("a.b", "c d".to_owned(), -7, 255)).await;
    assert_eq!(keys(seen), ["k.a%2Eb.c%20d.-7.255"]);
    let (_, seen) = cache_runtime::observe(typed.displayed(
        Tagged("x"),
        true,
        '%',
        std::net::Ipv4Addr::new(10, 0, 0, 1),
    ))
    .await;
    assert_eq!(keys(seen), ["k.t-x.true.%25.10%2E0%2E0%2E1"]);
    let (_, seen) = cache_runtime::observe(typed.generic("a.b")).await;
    assert_eq!(keys(seen), ["k.a%2Eb"]);
    let (_, seen) = cache_runtime::observe(typed.generic(Tagged("y"))).await;
    assert_eq!(keys(seen), ["k.t-y"]);
}
