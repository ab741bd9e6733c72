//! Batch read-through (`batch = id in ids`): one entry per id, shared with the single-id
//! method, only misses reach the body, per-id single flight and invalidation races, and the
//! shared tier in one round trip. Loads are counted and held on gates.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use cache_runtime::{cached, invalidates, Cache, CallOutcome};
use parking_lot::Mutex;
use support::recording::RecordingBackend;
use support::{ann, bob, reached, row, until, Customer, Store, StoreError};

#[derive(Clone)]
struct Repo {
    store: Store,
    cache: Cache,
    /// The ids each run of a batch body was given.
    batches: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Repo {
    fn new(store: Store, cache: Cache) -> Repo {
        Repo {
            store,
            cache,
            batches: Arc::default(),
        }
    }

    #[cached(key = "customer.{id}", ttl = 600, tags = ["customer", "customer.{id}"])]
    async fn find_by_id(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.store.get(id).await
    }

    #[cached(
        key = "customer.{id}",
        ttl = 600,
        tags = ["customer", "customer.{id}"],
        batch = id in ids,
        shares = find_by_id
    )]
    async fn find_by_ids(&self, ids: &[String]) -> Result<HashMap<String, Customer>, StoreError> {
        self.batches.lock().push(ids.to_vec());
        self.store.get_many(ids).await
    }

    /// Absent ids are not cached.
    #[cached(
        key = "customer.{id}",
        ttl = 600,
        tags = ["customer.{id}"],
        batch = id in ids,
        cache_none = false,
        name = "existing"
    )]
    async fn find_existing(
        &self,
        ids: Vec<String>,
    ) -> Result<BTreeMap<String, Customer>, StoreError> {
        self.batches.lock().push(ids.clone());
        Ok(self.store.get_many(&ids).await?.into_iter().collect())
    }

    /// A page of customers, whose body fills their entries with what it read.
    #[cached(key = "customer.list.{page}", ttl = 60, tags = ["customer.list"], result_tags)]
    async fn find_active(&self, page: u32) -> Result<Vec<Customer>, StoreError> {
        let page = self.store.active(page, 10).await?;
        let ids: Vec<String> = page.iter().map(|c| c.id.clone()).collect();
        let loaded: HashMap<String, Customer> =
            page.iter().map(|c| (c.id.clone(), c.clone())).collect();
        self.remember(&ids, &loaded).await?;
        Ok(page)
    }

    /// Stores the customers a list read, in `find_by_id`'s entries (those not cached).
    #[cached(
        key = "customer.{id}",
        ttl = 600,
        tags = ["customer", "customer.{id}"],
        batch = id in ids,
        shares = find_by_id,
        ignore = [loaded],
        name = "remember"
    )]
    async fn remember(
        &self,
        ids: &[String],
        loaded: &HashMap<String, Customer>,
    ) -> Result<HashMap<String, Customer>, StoreError> {
        Ok(ids
            .iter()
            .filter_map(|id| Some((id.clone(), loaded.get(id)?.clone())))
            .collect())
    }

    #[invalidates(tags = ["customer.{customer.id}"])]
    async fn save(&self, customer: &Customer) -> Result<(), StoreError> {
        self.store.save(customer).await
    }

    fn batches(&self) -> Vec<Vec<String>> {
        self.batches.lock().clone()
    }
}

/// The method's coalesced calls; 0 before its first call.
fn coalesced(cache: &Cache, suffix: &str) -> u64 {
    let stats = cache.stats();
    let method = stats.methods.iter().find(|m| m.method.ends_with(suffix));
    method.map_or(0, |m| m.coalesced)
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| id.to_string()).collect()
}

fn cat() -> Customer {
    Customer::new("3", "Cat", "cat@example.com")
}

fn repo() -> Repo {
    Repo::new(Store::with(&[ann(), bob(), cat()]), Cache::in_memory(1_000))
}

#[tokio::test]
async fn only_the_ids_that_missed_reach_the_body_and_the_result_has_every_existing_id() {
    let repo = repo();
    let first = repo.find_by_ids(&ids(&["1", "2"])).await.unwrap();
    assert_eq!(first.len(), 2);
    assert_eq!(first["1"], ann());
    let second = repo.find_by_ids(&ids(&["1", "2", "3", "9"])).await.unwrap();
    assert_eq!(
        second,
        HashMap::from([
            ("1".into(), ann()),
            ("2".into(), bob()),
            ("3".into(), cat())
        ])
    );
    assert_eq!(repo.batches(), vec![ids(&["1", "2"]), ids(&["3", "9"])]);
    // All hits now, "9" included (cached as not found): the body does not run.
    let third = repo.find_by_ids(&ids(&["9", "3", "1"])).await.unwrap();
    assert_eq!(third.len(), 2);
    assert_eq!(repo.store.loads(), 2);
    let stats = repo.cache.stats();
    let batch = row(&stats, "find_by_ids");
    assert_eq!(
        (batch.hits, batch.misses, batch.loads),
        (5, 4, 4),
        "{batch:?}"
    );
}

/// A batch counts its in-process hits at once, but reports each id's outcome to `observe`,
/// and samples each hit for the hot keys, as single calls do.
#[tokio::test]
async fn each_id_of_a_batch_is_observed_and_counted_and_its_hits_are_sampled() {
    let repo = repo();
    repo.find_by_ids(&ids(&["1", "2"])).await.unwrap();
    let (found, seen) = cache_runtime::observe(repo.find_by_ids(&ids(&["2", "3", "1"]))).await;
    assert_eq!(found.unwrap().len(), 3);
    let seen: Vec<(&str, CallOutcome)> = seen.iter().map(|o| (o.key.as_str(), o.outcome)).collect();
    assert_eq!(
        seen,
        vec![
            ("customer.2", CallOutcome::Hit),
            ("customer.1", CallOutcome::Hit),
            ("customer.3", CallOutcome::Miss)
        ]
    );
    for _ in 0..200 {
        repo.find_by_ids(&ids(&["1", "2", "3"])).await.unwrap();
    }
    let stats = repo.cache.stats();
    let batch = row(&stats, "find_by_ids");
    assert_eq!(
        (batch.hits, batch.misses, batch.loads),
        (602, 3, 3),
        "{batch:?}"
    );
    // A miss counts 1 and a sampled hit (one in 16) 16: 200 hits of each key count about 200.
    let hot = repo.cache.hot_keys(batch.method, 3);
    assert_eq!(hot.len(), 3, "{hot:?}");
    for (key, count) in &hot {
        assert!(
            ["customer.1", "customer.2", "customer.3"].contains(&key.as_str()) && *count >= 100,
            "{hot:?}"
        );
    }
}

/// A batch whose look-up panics half-way (here in an id's `Display`) still counts the hits it
/// made before the panic.
#[tokio::test]
async fn hits_before_a_panic_in_the_look_up_are_counted() {
    #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    struct Id(&'static str);
    impl std::fmt::Display for Id {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            assert_ne!(self.0, "boom", "an id that cannot be rendered");
            f.write_str(self.0)
        }
    }
    #[derive(Clone)]
    struct Ids {
        cache: Cache,
    }
    impl Ids {
        #[cached(key = "id.{id}", ttl = 60, batch = id in ids)]
        async fn find(&self, ids: &[Id]) -> BTreeMap<Id, u8> {
            ids.iter().map(|id| (id.clone(), 1)).collect()
        }
    }
    let repo = Ids {
        cache: Cache::in_memory(100),
    };
    repo.find(&[Id("a"), Id("b")]).await;
    let panicking = repo.clone();
    let outcome = tokio::spawn(async move {
        panicking.find(&[Id("a"), Id("b"), Id("boom")]).await;
    })
    .await;
    assert!(outcome.unwrap_err().is_panic());
    let stats = repo.cache.stats();
    let row = row(&stats, "find");
    assert_eq!((row.hits, row.misses, row.loads), (2, 2, 2), "{row:?}");
}

/// As for a single call (`read_through.rs`), a batch's load is boxed: the method's future
/// holds its arguments and the box.
#[tokio::test]
async fn a_batch_call_s_future_is_its_arguments_and_a_box() {
    let repo = repo();
    let ids = ids(&["c1"]);
    let call = repo.find_by_ids(&ids);
    let size = std::mem::size_of_val(&call);
    assert!(size <= 256, "the future of find_by_ids is {size} bytes");
    call.await.unwrap();
}

#[tokio::test]
async fn entries_are_shared_with_the_single_id_method_both_ways() {
    let repo = repo();
    repo.find_by_ids(&ids(&["1", "2"])).await.unwrap();
    assert_eq!(repo.find_by_id("1").await.unwrap(), Some(ann()));
    assert_eq!(repo.find_by_id("2").await.unwrap(), Some(bob()));
    assert_eq!(
        repo.store.loads(),
        1,
        "the single method hit the batch's entries"
    );

    assert_eq!(repo.find_by_id("3").await.unwrap(), Some(cat()));
    assert_eq!(repo.find_by_id("7").await.unwrap(), None);
    let got = repo.find_by_ids(&ids(&["3", "7", "1"])).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got["3"], cat());
    assert_eq!(
        repo.store.loads(),
        3,
        "the batch hit the single method's entries"
    );
    assert_eq!(repo.batches().len(), 1);
}

#[tokio::test]
async fn absent_ids_are_not_cached_with_cache_none_false_and_duplicates_load_once() {
    let repo = repo();
    let got = repo
        .find_existing(ids(&["1", "8", "1", "8"]))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(repo.batches(), vec![ids(&["1", "8"])]);
    repo.find_existing(ids(&["1", "8"])).await.unwrap();
    assert_eq!(repo.batches()[1], ids(&["8"]), "8 was not cached as absent");
}

#[tokio::test]
async fn a_failed_batch_returns_its_error_and_stores_nothing() {
    let repo = repo();
    repo.store.fail(true);
    assert_eq!(
        repo.find_by_ids(&ids(&["1", "2"])).await,
        Err(StoreError::Unavailable)
    );
    repo.store.fail(false);
    assert_eq!(repo.find_by_ids(&ids(&["1", "2"])).await.unwrap().len(), 2);
    assert_eq!(repo.batches().len(), 2);
}

#[tokio::test]
async fn a_write_invalidates_the_batch_entries_of_its_ids() {
    let repo = repo();
    repo.find_by_ids(&ids(&["1", "2"])).await.unwrap();
    let renamed = Customer::new("1", "Ann B", "ann@example.com");
    repo.save(&renamed).await.unwrap();
    let got = repo.find_by_ids(&ids(&["1", "2"])).await.unwrap();
    assert_eq!(got["1"], renamed);
    assert_eq!(repo.batches()[1], ids(&["1"]), "2 was still cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_batches_load_each_id_once() {
    let repo = repo();
    let gate = repo.store.hold();
    let first = tokio::spawn({
        let repo = repo.clone();
        async move { repo.find_by_ids(&ids(&["1", "2", "3"])).await }
    });
    reached(&gate, 1).await;
    // 2 and 3 are being loaded by the first batch: the second waits for them and loads 4.
    let second = tokio::spawn({
        let repo = repo.clone();
        async move { repo.find_by_ids(&ids(&["2", "3", "4"])).await }
    });
    // The second batch waits for "2" (the lowest key) before it could lead "4".
    until(|| coalesced(&repo.cache, "::find_by_ids") >= 1).await;
    gate.release.add_permits(2);
    let (first, second) = (
        first.await.unwrap().unwrap(),
        second.await.unwrap().unwrap(),
    );
    assert_eq!(first.len(), 3);
    assert_eq!(second.len(), 2, "2 and 3 exist, 4 does not");
    assert_eq!(second["2"], bob());
    let mut batches = repo.batches();
    batches.sort();
    assert_eq!(batches, vec![ids(&["1", "2", "3"]), ids(&["4"])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_waits_for_a_single_call_loading_one_of_its_ids() {
    let repo = repo();
    let gate = repo.store.hold();
    let single = tokio::spawn({
        let repo = repo.clone();
        async move { repo.find_by_id("2").await }
    });
    reached(&gate, 1).await;
    let batch = tokio::spawn({
        let repo = repo.clone();
        async move { repo.find_by_ids(&ids(&["1", "2"])).await }
    });
    // The batch leads "1" and waits for the single call's "2" before its body runs.
    until(|| coalesced(&repo.cache, "::find_by_ids") >= 1).await;
    gate.release.add_permits(2);
    assert_eq!(single.await.unwrap().unwrap(), Some(bob()));
    let got = batch.await.unwrap().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(repo.batches(), vec![ids(&["1"])]);
    assert_eq!(repo.store.loads(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_a_batch_load_keeps_that_id_out_of_the_cache() {
    let store = Store::with(&[ann(), bob()]);
    let repo = Repo::new(store.clone(), Cache::in_memory(1_000));
    let gate = store.hold();
    let batch = tokio::spawn({
        let repo = repo.clone();
        async move { repo.find_by_ids(&ids(&["1", "2"])).await }
    });
    reached(&gate, 1).await;
    // The row of 2 changes and its invalidation returns while the batch's load is running
    // (the load reads after the gate, so it sees the new row, but may not store it: the
    // history rule is that a load that began before an invalidation is not stored).
    let renamed = Customer::new("2", "Bob B", "bob@example.com");
    repo.save(&renamed).await.unwrap();
    gate.release.add_permits(1);
    let got = batch.await.unwrap().unwrap();
    assert_eq!(got.len(), 2);
    store.open();
    // 1 was stored; 2 was not, and is loaded again.
    let again = repo.find_by_ids(&ids(&["1", "2"])).await.unwrap();
    assert_eq!(again["2"], renamed);
    assert_eq!(repo.batches(), vec![ids(&["1", "2"]), ids(&["2"])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_on_an_overtaken_batch_load_loads_for_itself() {
    let store = Store::with(&[ann(), bob()]);
    let repo = Repo::new(store.clone(), Cache::in_memory(1_000));
    let gate = store.hold();
    let batch = tokio::spawn({
        let repo = repo.clone();
        async move { repo.find_by_ids(&ids(&["1", "2"])).await }
    });
    reached(&gate, 1).await;
    let single = tokio::spawn({
        let repo = repo.clone();
        async move { repo.find_by_id("2").await }
    });
    until(|| coalesced(&repo.cache, "::find_by_id") >= 1).await;
    let renamed = Customer::new("2", "Bob B", "bob@example.com");
    repo.save(&renamed).await.unwrap();
    gate.release.add_permits(2);
    batch.await.unwrap().unwrap();
    // The batch's value of 2 began before the invalidation: the waiter does not take it.
    assert_eq!(single.await.unwrap().unwrap(), Some(renamed));
    assert_eq!(store.loads(), 2);
}

#[tokio::test]
async fn condition_false_runs_the_body_with_every_id_uncached() {
    #[derive(Clone)]
    struct Gated {
        store: Store,
        cache: Cache,
    }
    impl Gated {
        #[cached(key = "c.{id}", ttl = 60, batch = id in ids, condition = ids.len() < 3)]
        async fn find(&self, ids: &[String]) -> Result<HashMap<String, Customer>, StoreError> {
            self.store.get_many(ids).await
        }
    }
    let gated = Gated {
        store: Store::with(&[ann(), bob(), cat()]),
        cache: Cache::in_memory(100),
    };
    gated.find(&ids(&["1", "2"])).await.unwrap();
    let all = gated.find(&ids(&["1", "2", "3"])).await.unwrap();
    assert_eq!(all.len(), 3);
    gated.find(&ids(&["1", "2", "3"])).await.unwrap();
    assert_eq!(
        gated.store.loads(),
        3,
        "the large batches bypassed the cache"
    );
    gated.find(&ids(&["1", "2"])).await.unwrap();
    assert_eq!(gated.store.loads(), 3);
}

/// `condition` false with no ids at all: the body runs once, with none (it used to panic
/// counting the bypass against the first id).
#[tokio::test]
async fn condition_false_with_no_ids_runs_the_body_once() {
    #[derive(Clone)]
    struct Gated {
        store: Store,
        cache: Cache,
    }
    impl Gated {
        #[cached(key = "c.{id}", ttl = 60, batch = id in ids, condition = !ids.is_empty())]
        async fn find(&self, ids: &[String]) -> Result<HashMap<String, Customer>, StoreError> {
            self.store.get_many(ids).await
        }
    }
    let gated = Gated {
        store: Store::with(&[ann()]),
        cache: Cache::in_memory(100),
    };
    assert!(gated.find(&[]).await.unwrap().is_empty());
    assert_eq!(gated.store.loads(), 1);
    // Stats count ids, and there were none.
    let stats = gated.cache.stats();
    let row = row(&stats, "find");
    assert_eq!((row.bypassed, row.hits, row.loads), (0, 0, 0), "{row:?}");
    gated.find(&ids(&["1"])).await.unwrap();
    assert_eq!(gated.store.loads(), 2);
}

/// Every return and argument shape the attribute accepts, hit and missed: a bare map, ids as
/// `&Vec<Id>`, a value type the method is generic over, and a `Result` of a `Result` of a
/// map (the inner error is an error too: returned, not cached).
#[tokio::test]
async fn each_accepted_shape_caches_per_id() {
    #[derive(Clone)]
    struct Shapes {
        store: Store,
        cache: Cache,
    }
    impl Shapes {
        #[allow(clippy::ptr_arg)] // `&Vec<Id>` is the shape under test
        #[cached(key = "bare.{id}", ttl = 60, batch = id in ids)]
        async fn bare(&self, ids: &Vec<String>) -> HashMap<String, Customer> {
            self.store.get_many(ids).await.unwrap()
        }

        #[cached(key = "generic.{id}", ttl = 60, batch = id in ids, ignore = [make])]
        async fn generic<T>(&self, ids: &[String], make: fn(Customer) -> T) -> BTreeMap<String, T>
        where
            T: Clone + Send + Sync + 'static,
        {
            let found = self.store.get_many(ids).await.unwrap();
            found.into_iter().map(|(id, c)| (id, make(c))).collect()
        }

        #[cached(key = "nested.{id}", ttl = 60, batch = id in ids, ignore = [inner_error])]
        async fn nested(
            &self,
            ids: Vec<String>,
            inner_error: bool,
        ) -> Result<Result<HashMap<String, Customer>, String>, StoreError> {
            let found = self.store.get_many(&ids).await?;
            Ok(if inner_error {
                Err("inner".to_owned())
            } else {
                Ok(found)
            })
        }
    }
    let shapes = Shapes {
        store: Store::with(&[ann(), bob()]),
        cache: Cache::in_memory(100),
    };
    let both = ids(&["1", "2"]);
    for _ in 0..2 {
        let found = shapes.bare(&both).await;
        assert_eq!(
            found,
            HashMap::from([("1".into(), ann()), ("2".into(), bob())])
        );
    }
    assert_eq!(shapes.store.loads(), 1);

    for _ in 0..2 {
        let names = shapes.generic(&both, |c| c.name).await;
        assert_eq!(
            names.values().collect::<Vec<_>>(),
            [&ann().name, &bob().name]
        );
    }
    assert_eq!(shapes.store.loads(), 2);

    assert_eq!(
        shapes.nested(both.clone(), true).await.unwrap(),
        Err("inner".to_owned())
    );
    assert_eq!(shapes.store.loads(), 3);
    for _ in 0..2 {
        let found = shapes.nested(both.clone(), false).await.unwrap().unwrap();
        assert_eq!(found.len(), 2);
    }
    assert_eq!(
        shapes.store.loads(),
        4,
        "the inner error was not cached; the map was"
    );
}

#[tokio::test]
async fn over_a_shared_tier_a_batch_reads_and_writes_in_one_call_each() {
    let backend = RecordingBackend::with_feed();
    let store = Store::with(&[ann(), bob(), cat()]);
    let one = Repo::new(
        store.clone(),
        Cache::builder().backend(backend.clone()).build(),
    );
    let two = Repo::new(
        store.clone(),
        Cache::builder().backend(backend.clone()).build(),
    );
    until(|| one.cache.feed_connected() && two.cache.feed_connected()).await;
    let ops = &backend.ops;

    one.find_by_ids(&ids(&["1", "2", "3", "4"])).await.unwrap();
    assert_eq!(ops.get_batches.load(Ordering::SeqCst), 1);
    assert_eq!(ops.put_batches.load(Ordering::SeqCst), 1);
    assert_eq!(ops.puts.load(Ordering::SeqCst), 4, "4 cached as not found");
    assert_eq!(
        ops.tag_reads.load(Ordering::SeqCst),
        1,
        "one stamp for every id"
    );

    // Another instance: half of its ids are in the shared tier, half nowhere.
    let got = two.find_by_ids(&ids(&["1", "2", "5", "6"])).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(ops.get_batches.load(Ordering::SeqCst), 2);
    assert_eq!(ops.gets.load(Ordering::SeqCst), 8, "no single gets");
    assert_eq!(ops.put_batches.load(Ordering::SeqCst), 2);
    assert_eq!(two.batches(), vec![ids(&["5", "6"])]);
    assert_eq!(row(&two.cache.stats(), "find_by_ids").l2_hits, 2);
    // Promoted into the second instance's in-process tier.
    assert_eq!(two.find_by_id("1").await.unwrap(), Some(ann()));
    assert_eq!(ops.get_batches.load(Ordering::SeqCst), 2);
    assert_eq!(ops.gets.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn a_shared_tier_that_fails_falls_back_to_the_body_for_every_missing_id() {
    let backend = RecordingBackend::with_feed();
    let repo = Repo::new(
        Store::with(&[ann(), bob()]),
        Cache::builder().backend(backend.clone()).build(),
    );
    until(|| repo.cache.feed_connected()).await;
    backend.set_down(true);
    let got = repo.find_by_ids(&ids(&["1", "2"])).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(repo.batches(), vec![ids(&["1", "2"])]);
    assert!(row(&repo.cache.stats(), "find_by_ids").backend_errors >= 1);
}

#[tokio::test]
async fn a_list_fills_the_entries_of_the_items_it_read() {
    let repo = repo();
    assert_eq!(repo.find_active(1).await.unwrap().len(), 3);
    assert_eq!(repo.store.loads(), 1);
    for customer in [ann(), bob(), cat()] {
        assert_eq!(repo.find_by_id(&customer.id).await.unwrap(), Some(customer));
    }
    assert_eq!(repo.store.loads(), 1, "the list's read filled them");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_overtaken_by_a_write_during_the_list_load_is_not_stored() {
    let store = Store::with(&[ann(), bob()]);
    let repo = Repo::new(store.clone(), Cache::in_memory(1_000));
    let gate = store.hold();
    // The list reads the rows, then stalls; a write of Bob returns meanwhile.
    let list = tokio::spawn({
        let repo = repo.clone();
        async move { repo.find_active(1).await }
    });
    reached(&gate, 1).await;
    let renamed = Customer::new("2", "Bob B", "bob@example.com");
    repo.save(&renamed).await.unwrap();
    gate.release.add_permits(1);
    assert_eq!(list.await.unwrap().unwrap().len(), 2);
    store.open();
    // Bob's old row, read before the write, was not stored; Ann's was.
    assert_eq!(repo.find_by_id("2").await.unwrap(), Some(renamed));
    assert_eq!(repo.find_by_id("1").await.unwrap(), Some(ann()));
    assert_eq!(store.loads(), 2, "the list, then Bob");
}

#[tokio::test]
async fn each_id_is_logged_as_a_single_call_would_be() {
    let (events, _guard) = support::capture::capture();
    let repo = repo();
    repo.find_by_id("1").await.unwrap();
    events.clear();
    repo.find_by_ids(&ids(&["1", "2", "3"])).await.unwrap();
    let keys = |op: &str| -> Vec<String> {
        let mut keys: Vec<String> = events
            .ops(op)
            .iter()
            .map(|e| e["cache.key"].clone())
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(keys("hit"), ["customer.1"]);
    assert_eq!(keys("miss"), ["customer.2", "customer.3"]);
    assert!(events.ops("miss").iter().all(|e| e["ok"] == "true"));
    assert!(events
        .ops("miss")
        .iter()
        .all(|e| e["cache.method"].ends_with("find_by_ids")));
}
