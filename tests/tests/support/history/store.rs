//! The store the history is dated by, and the repository over it, annotated as a user would.
//!
//! Every write takes its version from one global counter, under the store's lock, and the
//! customer it writes carries that version; so every value a read returns says which write it
//! comes from. The store keeps the log of applied writes (version, row, the recorded call that
//! made it) for the checker. Loads read the row first, then take a small random time (a
//! database answer that arrives late, so that loads overlap writes), and a few fail, each
//! failure with a token of its own so that the checker can tell a store error from anything
//! else.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_runtime::{cached, invalidates, Cache, CacheTags, TagSink};
use parking_lot::Mutex;

tokio::task_local! {
    /// The recorded call a write belongs to: the store's log names it for each version.
    pub static OP: u64;
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub email: String,
    pub active: bool,
    /// Set by the store when it applies the write.
    pub version: u64,
}

impl CacheTags for Customer {
    fn cache_tags(&self, tags: &mut TagSink) {
        tags.push_encoded("customer.", &self.id);
    }
}

/// A failure the store injected, by its token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError(pub u64);

/// One applied write: the row after it (`None`: deleted).
#[derive(Clone, Debug)]
pub struct Applied {
    pub version: u64,
    pub id: String,
    pub row: Option<Customer>,
    /// The recorded call; `None` for the rows seeded before the run.
    pub op: Option<u64>,
    /// When it was applied.
    pub at: Instant,
}

/// How often loads and writes fail, per mille.
const LOAD_FAILURES: u32 = 20;
const WRITE_FAILURES: u32 = 10;
/// Loads and writes take up to this long.
const LATENCY: Duration = Duration::from_millis(4);

struct State {
    next_version: u64,
    rows: BTreeMap<String, Option<Customer>>,
    /// The number of each id's current e-mail address (`<id>-<n>@example.test`); addresses are
    /// never reused by another id.
    email_numbers: BTreeMap<String, u64>,
    applied: Vec<Applied>,
    injected: Vec<(u64, Instant)>,
    next_token: u64,
    rng: fastrand::Rng,
}

#[derive(Clone)]
pub struct Store {
    state: Arc<Mutex<State>>,
    failing: Arc<AtomicBool>,
}

pub fn email(id: &str, n: u64) -> String {
    format!("{id}-{n}@example.test")
}

/// The id an address belongs to (`s3-7@example.test` is one of `s3`'s).
pub fn email_owner(address: &str) -> String {
    address
        .to_ascii_lowercase()
        .split_once('-')
        .map(|(id, _)| id.to_owned())
        .unwrap_or_default()
}

impl Store {
    pub fn new(seed: u64) -> Store {
        Store {
            state: Arc::new(Mutex::new(State {
                next_version: 1,
                rows: BTreeMap::new(),
                email_numbers: BTreeMap::new(),
                applied: Vec::new(),
                injected: Vec::new(),
                next_token: 1,
                rng: fastrand::Rng::with_seed(seed ^ 0x5702e),
            })),
            failing: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Rows for `ids`, before the run (not recorded calls).
    pub fn seed(&self, ids: &[String]) {
        let mut state = self.state.lock();
        for id in ids {
            state.email_numbers.insert(id.clone(), 0);
            let row = Customer {
                id: id.clone(),
                name: format!("{id}-seed"),
                email: email(id, 0),
                active: true,
                version: 0,
            };
            apply(&mut state, id, Some(row), None);
        }
    }

    /// Whether loads and writes fail now and then (off while the test checks convergence).
    pub fn inject_failures(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// The row now, read past any cache (what a write starts from).
    pub fn row(&self, id: &str) -> Option<Customer> {
        self.state.lock().rows.get(id).cloned().flatten()
    }

    pub fn email_number(&self, id: &str) -> u64 {
        self.state
            .lock()
            .email_numbers
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    /// A new address for `id`.
    pub fn next_email(&self, id: &str) -> String {
        let mut state = self.state.lock();
        let n = state.email_numbers.entry(id.to_owned()).or_insert(0);
        *n += 1;
        email(id, *n)
    }

    pub fn applied(&self) -> Vec<Applied> {
        self.state.lock().applied.clone()
    }

    /// Injected failures: token and when the store returned it.
    pub fn injected(&self) -> Vec<(u64, Instant)> {
        self.state.lock().injected.clone()
    }

    /// The rows now.
    pub fn rows(&self) -> BTreeMap<String, Option<Customer>> {
        self.state.lock().rows.clone()
    }

    fn draw(&self, failures: u32) -> (Duration, bool) {
        let mut state = self.state.lock();
        let delay = Duration::from_micros(state.rng.u64(0..=LATENCY.as_micros() as u64));
        let fail = self.failing.load(Ordering::SeqCst) && state.rng.u32(0..1000) < failures;
        (delay, fail)
    }

    fn fail(&self) -> StoreError {
        let mut state = self.state.lock();
        let token = state.next_token;
        state.next_token += 1;
        state.injected.push((token, Instant::now()));
        StoreError(token)
    }

    /// A load: reads at once, answers after a small random time, or fails.
    async fn load<T>(&self, read: impl FnOnce(&State) -> T) -> Result<T, StoreError> {
        let value = read(&self.state.lock());
        let (delay, fail) = self.draw(LOAD_FAILURES);
        tokio::time::sleep(delay).await;
        if fail {
            return Err(self.fail());
        }
        Ok(value)
    }

    /// A write: after a small random time, fails or is applied with the next version.
    async fn write(&self, id: &str, row: Option<Customer>) -> Result<u64, StoreError> {
        self.update(id, |_| row).await
    }

    /// A write of what `change` makes of the row at the moment it is applied.
    async fn update(
        &self,
        id: &str,
        change: impl FnOnce(Option<Customer>) -> Option<Customer>,
    ) -> Result<u64, StoreError> {
        let (delay, fail) = self.draw(WRITE_FAILURES);
        tokio::time::sleep(delay).await;
        if fail {
            return Err(self.fail());
        }
        let op = OP.try_with(|op| *op).ok();
        let mut state = self.state.lock();
        let row = change(state.rows.get(id).cloned().flatten());
        Ok(apply(&mut state, id, row, op))
    }
}

fn apply(state: &mut State, id: &str, mut row: Option<Customer>, op: Option<u64>) -> u64 {
    let version = state.next_version;
    state.next_version += 1;
    if let Some(row) = &mut row {
        row.version = version;
    }
    state.rows.insert(id.to_owned(), row.clone());
    state.applied.push(Applied {
        version,
        id: id.to_owned(),
        row,
        op,
        at: Instant::now(),
    });
    version
}

/// One application's part of the store: the ids starting with `prefix` (the in-process-only
/// instance has ids of its own, which no other instance reads).
#[derive(Clone)]
pub struct StoreView {
    pub store: Store,
    pub prefix: &'static str,
}

impl StoreView {
    pub async fn get(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.store.load(|s| s.rows.get(id).cloned().flatten()).await
    }

    pub async fn by_email(&self, address: &str) -> Result<Option<Customer>, StoreError> {
        let address = address.to_ascii_lowercase();
        let prefix = self.prefix;
        self.store
            .load(|s| {
                s.rows
                    .values()
                    .flatten()
                    .find(|c| c.id.starts_with(prefix) && c.email.to_ascii_lowercase() == address)
                    .cloned()
            })
            .await
    }

    /// Active customers of this view, by id, a page at a time.
    pub async fn active(&self, page: u32, limit: u32) -> Result<Vec<Customer>, StoreError> {
        let prefix = self.prefix;
        self.store
            .load(|s| {
                s.rows
                    .values()
                    .flatten()
                    .filter(|c| c.id.starts_with(prefix) && c.active)
                    .skip(((page.max(1) - 1) * limit) as usize)
                    .take(limit as usize)
                    .cloned()
                    .collect()
            })
            .await
    }

    pub async fn upsert(&self, customer: &Customer) -> Result<u64, StoreError> {
        self.store.write(&customer.id, Some(customer.clone())).await
    }

    pub async fn remove(&self, id: &str) -> Result<u64, StoreError> {
        self.store.write(id, None).await
    }

    /// A write behind the cache's back, as an operator's script would do it: renames the
    /// customer in place (a deleted one stays deleted, with a new version), so that
    /// `customer.<id>` covers every cached view it changes.
    pub async fn rename_behind_the_cache(&self, id: &str, name: &str) -> Result<u64, StoreError> {
        self.store
            .update(id, |row| {
                row.map(|c| Customer {
                    name: name.to_owned(),
                    ..c
                })
            })
            .await
    }
}

/// The customer repository, annotated as a user would: short TTLs so that entries also expire
/// during a run, `swr` on two methods, a cross-instance `lock` on the list, `unless` on the
/// e-mail lookup.
#[derive(Clone)]
pub struct Repo {
    pub store: StoreView,
    pub cache: Cache,
}

impl Repo {
    #[cached(key = "customer.{id}", ttl = "5s", tags = ["customer", "customer.{id}"], swr = "3s")]
    pub async fn find_by_id(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.store.get(id).await
    }

    /// Lookups of deactivated customers are not kept.
    #[cached(
        key = "customer.email.{email | lower | sha256}",
        ttl = "3s",
        tags = ["customer", "customer.email", "customer.email.{email | lower | sha256}"],
        result_tags,
        unless = result.as_ref().is_some_and(|c| !c.active)
    )]
    pub async fn find_by_email(&self, email: &str) -> Result<Option<Customer>, StoreError> {
        self.store.by_email(email).await
    }

    #[cached(
        key = "customer.list.active.page.{page}.limit.{limit}",
        ttl = "2s",
        swr = "1s",
        tags = ["customer.list", "customer.list.active"],
        result_tags,
        lock = "300ms"
    )]
    pub async fn find_active(&self, page: u32, limit: u32) -> Result<Vec<Customer>, StoreError> {
        self.store.active(page, limit).await
    }

    /// Drops every view of the customer (its e-mail lookups through their result tags), the
    /// lists, and a cached "nobody has this address" for its address.
    #[invalidates(tags = [
        "customer.{customer.id}",
        "customer.list",
        "customer.email.{customer.email | lower | sha256}"
    ])]
    pub async fn save(&self, customer: &Customer) -> Result<(), StoreError> {
        self.store.upsert(customer).await.map(drop)
    }

    /// A new address: the old address's lookups and the new one's "nobody" go too.
    #[invalidates(tags = [
        "customer.{customer.id}",
        "customer.list",
        "customer.email.{customer.email | lower | sha256}",
        "customer.email.{old_email | lower | sha256}"
    ])]
    pub async fn change_email(
        &self,
        customer: &Customer,
        old_email: &str,
    ) -> Result<(), StoreError> {
        let _ = old_email;
        self.store.upsert(customer).await.map(drop)
    }

    #[invalidates(tags = [
        "customer.{customer.id}",
        "customer.list",
        "customer.email.{customer.email | lower | sha256}"
    ])]
    pub async fn delete(&self, customer: &Customer) -> Result<(), StoreError> {
        self.store.remove(&customer.id).await.map(drop)
    }
}
