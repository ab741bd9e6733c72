//! Read-through: hits skip the body, misses store, errors pass through; return shapes are
//! decided by traits (aliases work); `cache_none`, `condition`, `unless`; where the cache comes
//! from; methods, trait impls, generic and free functions.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

use cache_runtime::{cached, Cache};
use support::repo::CustomerRepository;
use support::{ann, Customer, Store, StoreError};

#[tokio::test]
async fn a_hit_does_not_run_the_body() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(repo.store.loads(), 1);
    let stats = repo.cache.stats();
    let row = support::row(&stats, "find_by_id");
    assert_eq!((row.hits, row.misses, row.loads), (2, 1, 1));
}

/// A cached method's future holds its arguments and, on a miss, a box: the load's state (the
/// shared look-up, the flight, the body's future) is allocated only when it runs, so that a
/// hit neither builds nor moves it, and a caller that boxes or spawns the call copies a few
/// words. (The load's state is over 2 KB: it was inline before.)
#[tokio::test]
async fn a_cached_call_s_future_is_its_arguments_and_a_box() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    let call = repo.find_by_id("1");
    let size = std::mem::size_of_val(&call);
    assert!(size <= 128, "the future of find_by_id is {size} bytes");
    assert_eq!(call.await, Ok(Some(ann())));
    assert_eq!(repo.store.loads(), 1);
}

#[tokio::test]
async fn err_is_returned_untouched_and_not_stored() {
    let repo = CustomerRepository::new(Store::with(&[ann()]));
    repo.store.fail(true);
    assert_eq!(repo.find_by_id("1").await, Err(StoreError::Unavailable));
    assert_eq!(repo.find_by_id("1").await, Err(StoreError::Unavailable));
    assert_eq!(repo.store.loads(), 2, "an Err must not be cached");
    repo.store.fail(false);
    assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(repo.find_by_id("1").await, Ok(Some(ann())));
    assert_eq!(repo.store.loads(), 3);
    let stats = repo.cache.stats();
    let row = support::row(&stats, "find_by_id");
    assert_eq!(row.load_errors, 2);
}

#[tokio::test]
async fn none_is_cached_by_default() {
    let repo = CustomerRepository::new(Store::default());
    assert_eq!(repo.find_by_id("404").await, Ok(None));
    assert_eq!(repo.find_by_id("404").await, Ok(None));
    assert_eq!(repo.store.loads(), 1);
}

struct Counting {
    cache: Cache,
    calls: AtomicUsize,
}

impl Counting {
    fn new() -> Self {
        Counting {
            cache: Cache::in_memory(1000),
            calls: AtomicUsize::new(0),
        }
    }
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    #[cached(key = "maybe.{id}", ttl = 60, cache_none = false)]
    async fn maybe(&self, id: u32) -> Result<Option<u32>, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(id.is_multiple_of(2).then_some(id))
    }

    #[cached(key = "plain.{n}", ttl = 60)]
    async fn plain(&self, n: u64) -> u64 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        n * 2
    }

    #[cached(key = "option.{n}", ttl = 60)]
    async fn option(&self, n: u64) -> Option<String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        (n > 0).then(|| n.to_string())
    }

    #[cached(key = "aliased.{n}", ttl = 60)]
    async fn aliased(&self, n: u64) -> AppResult<u64> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if n == 0 {
            Err(NotClone("zero".into()))
        } else {
            Ok(n)
        }
    }

    #[cached(key = "cond.{n}", ttl = 60, condition = n < 100)]
    async fn conditional(&self, n: u64) -> u64 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        n
    }

    #[cached(key = "unless.{n}", ttl = 60, unless = result.is_empty())]
    async fn unless_empty(&self, n: usize) -> Vec<usize> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        (0..n).collect()
    }

    #[cached(key = "owned.{name}.{first}", ttl = 60, ignore = [tags])]
    async fn owned(&self, name: String, first: String, mut tags: Vec<String>) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tags.push(name);
        tags.push(first);
        tags.join("+")
    }
}

#[derive(Debug, PartialEq)]
struct NotClone(String);
type AppResult<T> = Result<T, NotClone>;

#[tokio::test]
async fn cache_none_false_skips_none() {
    let c = Counting::new();
    assert_eq!(c.maybe(1).await, Ok(None));
    assert_eq!(c.maybe(1).await, Ok(None));
    assert_eq!(
        c.calls(),
        2,
        "None must not be stored with cache_none = false"
    );
    assert_eq!(c.maybe(2).await, Ok(Some(2)));
    assert_eq!(c.maybe(2).await, Ok(Some(2)));
    assert_eq!(c.calls(), 3);
}

#[tokio::test]
async fn plain_and_option_returns_are_cached_whole() {
    let c = Counting::new();
    assert_eq!(c.plain(21).await, 42);
    assert_eq!(c.plain(21).await, 42);
    assert_eq!(c.option(0).await, None);
    assert_eq!(c.option(0).await, None);
    assert_eq!(c.option(7).await.as_deref(), Some("7"));
    assert_eq!(c.option(7).await.as_deref(), Some("7"));
    assert_eq!(c.calls(), 3);
}

#[tokio::test]
async fn a_type_alias_of_result_is_a_result() {
    let c = Counting::new();
    assert_eq!(c.aliased(0).await, Err(NotClone("zero".into())));
    assert_eq!(c.aliased(0).await, Err(NotClone("zero".into())));
    assert_eq!(c.calls(), 2, "Err through an alias must not be cached");
    assert_eq!(c.aliased(5).await, Ok(5));
    assert_eq!(c.aliased(5).await, Ok(5));
    assert_eq!(c.calls(), 3);
}

#[tokio::test]
async fn condition_false_bypasses_the_cache() {
    let c = Counting::new();
    c.conditional(1000).await;
    c.conditional(1000).await;
    assert_eq!(c.calls(), 2);
    c.conditional(1).await;
    c.conditional(1).await;
    assert_eq!(c.calls(), 3);
    let stats = c.cache.stats();
    let row = support::row(&stats, "conditional");
    assert_eq!((row.bypassed, row.hits, row.misses), (2, 1, 1));
}

#[tokio::test]
async fn unless_true_does_not_store() {
    let c = Counting::new();
    assert!(c.unless_empty(0).await.is_empty());
    assert!(c.unless_empty(0).await.is_empty());
    assert_eq!(c.calls(), 2);
    assert_eq!(c.unless_empty(2).await, vec![0, 1]);
    assert_eq!(c.unless_empty(2).await, vec![0, 1]);
    assert_eq!(c.calls(), 3);
}

#[tokio::test]
async fn owned_and_mut_arguments_work() {
    let c = Counting::new();
    assert_eq!(
        c.owned("a".into(), "1".into(), vec!["x".into()]).await,
        "x+a+1"
    );
    assert_eq!(
        c.owned("a".into(), "1".into(), vec!["y".into()]).await,
        "x+a+1",
        "tags is ignored"
    );
    assert_eq!(
        c.owned("b".into(), "1".into(), vec!["x".into()]).await,
        "x+b+1"
    );
    assert_eq!(c.calls(), 2);
}

// A free function naming a static cache.
static SQUARES: LazyLock<Cache> = LazyLock::new(|| Cache::in_memory(100));
static SQUARE_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cached(key = "square.{n}", ttl = 60, cache = SQUARES)]
async fn square(n: u64) -> u64 {
    SQUARE_CALLS.fetch_add(1, Ordering::SeqCst);
    n * n
}

#[tokio::test]
async fn free_function_with_a_static_cache() {
    assert_eq!(square(9).await, 81);
    assert_eq!(square(9).await, 81);
    assert_eq!(SQUARE_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(SQUARES.stats().methods.len(), 1);
}

// A trait with native async fn, implemented with #[cached].
trait CustomerReader {
    async fn name_of(&self, id: &str) -> Result<Option<String>, StoreError>;
}

struct Reader {
    store: Store,
    cache: Arc<Cache>,
}

impl CustomerReader for Reader {
    #[cached(key = "name.{id}", ttl = 60)]
    async fn name_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self.store.get(id).await?.map(|c| c.name))
    }
}

#[tokio::test]
async fn trait_impl_methods_work() {
    let reader = Reader {
        store: Store::with(&[ann()]),
        cache: Arc::new(Cache::in_memory(10)),
    };
    assert_eq!(reader.name_of("1").await, Ok(Some("Ann".into())));
    assert_eq!(reader.name_of("1").await, Ok(Some("Ann".into())));
    assert_eq!(reader.store.loads(), 1);
}

// A generic function with a where clause.
struct Generic {
    cache: Cache,
    calls: AtomicUsize,
}

impl Generic {
    #[cached(key = "generic.{id}", ttl = 60)]
    async fn describe<I>(&self, id: I) -> String
    where
        I: std::fmt::Display + Send + Sync,
    {
        self.calls.fetch_add(1, Ordering::SeqCst);
        format!("<{id}>")
    }
}

#[tokio::test]
async fn generic_functions_work() {
    let g = Generic {
        cache: Cache::in_memory(10),
        calls: AtomicUsize::new(0),
    };
    assert_eq!(g.describe(7u8).await, "<7>");
    assert_eq!(g.describe(7u64).await, "<7>");
    assert_eq!(g.describe("7").await, "<7>");
    assert_eq!(
        g.calls.load(Ordering::SeqCst),
        1,
        "same rendered key, same value type"
    );
}

#[tokio::test]
async fn cached_futures_are_send() {
    fn assert_send<T: Send>(_: T) {}
    let repo = CustomerRepository::new(Store::default());
    assert_send(repo.find_by_id("1"));
    assert_send(repo.find_active(1, 20));
    assert_send(repo.save(&ann()));
    // And they run on a multi-threaded runtime's worker.
    let repo2 = repo.clone();
    let found = tokio::spawn(async move { repo2.find_by_email("ANN@example.com").await })
        .await
        .unwrap();
    assert_eq!(found, Ok(None));
}

#[tokio::test]
async fn the_list_page_key_includes_limit() {
    let customers: Vec<Customer> = (0..60)
        .map(|i| Customer::new(&format!("{i:02}"), "n", &format!("{i}@x")))
        .collect();
    let repo = CustomerRepository::new(Store::with(&customers));
    assert_eq!(repo.find_active(1, 20).await.unwrap().len(), 20);
    assert_eq!(repo.find_active(1, 50).await.unwrap().len(), 50);
    assert_eq!(repo.find_active(1, 20).await.unwrap().len(), 20);
    assert_eq!(repo.store.loads(), 2);
}
