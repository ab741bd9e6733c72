//! A cache bounded by memory (`CacheBuilder::max_memory`): entries are weighed by what they
//! hold, and the in-process tier keeps their estimated bytes under the budget.

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_runtime::{cached, Cache};

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Document {
    id: u32,
    body: String,
}

/// Not serializable: only its inline size can be seen.
#[derive(Clone)]
struct Opaque {
    _body: String,
}

struct Docs {
    cache: Cache,
    loads: AtomicUsize,
}

impl Docs {
    fn new(cache: Cache) -> Self {
        Docs {
            cache,
            loads: AtomicUsize::new(0),
        }
    }

    #[cached(key = "doc.{id}.{len}", ttl = 600, tags = ["doc", "doc.{id}"])]
    async fn find(&self, id: u32, len: usize) -> Document {
        self.loads.fetch_add(1, Ordering::SeqCst);
        Document {
            id,
            body: "x".repeat(len),
        }
    }

    #[cached(key = "opaque.{id}.{len}", ttl = 600)]
    async fn opaque(&self, id: u32, len: usize) -> Opaque {
        self.loads.fetch_add(1, Ordering::SeqCst);
        Opaque {
            _body: "x".repeat(len),
        }
    }
}

fn weighed(docs: &Docs) -> (u64, u64) {
    let tier = docs.cache.in_process_tier().expect("an in-process tier");
    (tier.weighed_size(), tier.entry_count())
}

#[tokio::test]
async fn an_entry_weighs_its_value_heap_and_a_fixed_overhead() {
    let docs = Docs::new(Cache::builder().max_memory(10_000_000).build());
    docs.find(1, 10).await;
    let (small, count) = weighed(&docs);
    assert_eq!(count, 1);
    assert!(
        (300..1_000).contains(&small),
        "an entry with a 10-byte body weighs its overhead, not more: {small}"
    );
    docs.find(2, 50_000).await;
    let (both, count) = weighed(&docs);
    assert_eq!(count, 2);
    let large = both - small;
    assert!(
        (50_000..51_000).contains(&large),
        "a 50,000-byte body is counted: {large}"
    );
    docs.opaque(3, 50_000).await;
    let (all, _) = weighed(&docs);
    assert!(
        all - both < 1_000,
        "a value that is not serializable counts its inline size only: {}",
        all - both
    );
}

/// A cache of 1 MB filled with 2,000 entries of `size` bytes: what it keeps, which must weigh
/// no more than the budget, and how many entries that is.
async fn filled_under_the_budget(size: usize) -> (Docs, u64) {
    const BUDGET: u64 = 1_000_000;
    let docs = Docs::new(Cache::builder().max_memory(BUDGET).build());
    for id in 0..2_000 {
        docs.find(id, size).await;
    }
    let (bytes, kept) = weighed(&docs);
    assert!(
        bytes <= BUDGET,
        "{bytes} bytes held for a budget of {BUDGET}"
    );
    (docs, kept)
}

#[tokio::test]
async fn the_budget_holds_fewer_large_entries_than_small_ones_and_stays_under_it() {
    let (_, large) = filled_under_the_budget(10_000).await;
    assert!(
        (1..=100).contains(&large),
        "at most 100 entries of over 10,000 bytes fit in 1 MB: {large}"
    );

    let (docs, small) = filled_under_the_budget(10).await;
    assert!(
        small > 10 * large,
        "small entries fit by the thousand ({small}), large ones by the dozen ({large})"
    );

    // What is kept is served: a second pass loads only what was evicted.
    let before = docs.loads.load(Ordering::SeqCst);
    for id in 0..2_000 {
        docs.find(id, 10).await;
    }
    let reloaded = docs.loads.load(Ordering::SeqCst) - before;
    assert!(
        reloaded < 2_000,
        "the entries kept were hits ({reloaded} of 2,000 reloaded)"
    );
}

#[tokio::test]
async fn max_entries_after_max_memory_bounds_by_count_again() {
    let docs = Docs::new(Cache::builder().max_memory(1).max_entries(10).build());
    for id in 0..5 {
        docs.find(id, 1_000).await;
    }
    let (weight, count) = weighed(&docs);
    assert_eq!(
        count, 5,
        "bounded by count: five entries of any size fit in 10"
    );
    assert_eq!(weight, 5, "each entry weighs one");
}
