//! Shared fixtures: a customer store that counts its loads, can be held on a barrier and can
//! be told to fail, and a third-party backend that records every operation.
#![allow(dead_code)]

pub mod capture;
pub mod recording;
pub mod redis_cluster;
pub mod redis_server;
pub mod repo;
pub mod shared_redis;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use cache_runtime::{CacheTags, TagSink};
use parking_lot::Mutex;
use tokio::sync::Semaphore;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub email: String,
    pub active: bool,
}

impl Customer {
    pub fn new(id: &str, name: &str, email: &str) -> Self {
        Customer {
            id: id.into(),
            name: name.into(),
            email: email.into(),
            active: true,
        }
    }
}

impl CacheTags for Customer {
    fn cache_tags(&self, tags: &mut TagSink) {
        tags.push(format_args!("customer.{}", self.id));
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    Unavailable,
}

/// Rows, a load counter, a failure switch and an optional gate that holds every load until
/// the test releases it.
#[derive(Clone, Default)]
pub struct Store {
    rows: Arc<Mutex<BTreeMap<String, Customer>>>,
    pub loads: Arc<AtomicUsize>,
    pub failing: Arc<AtomicBool>,
    gate: Arc<Mutex<Option<Gate>>>,
}

#[derive(Clone)]
pub struct Gate {
    /// Released once per load that has reached the gate.
    pub reached: Arc<Semaphore>,
    /// Each permit lets one held load go on.
    pub release: Arc<Semaphore>,
}

impl Store {
    pub fn with(customers: &[Customer]) -> Self {
        let store = Store::default();
        for c in customers {
            store.put(c.clone());
        }
        store
    }

    pub fn put(&self, customer: Customer) {
        self.rows.lock().insert(customer.id.clone(), customer);
    }

    pub fn remove(&self, id: &str) {
        self.rows.lock().remove(id);
    }

    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }

    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// From now on every load stops at the gate.
    pub fn hold(&self) -> Gate {
        let gate = Gate {
            reached: Arc::new(Semaphore::new(0)),
            release: Arc::new(Semaphore::new(0)),
        };
        *self.gate.lock() = Some(gate.clone());
        gate
    }

    pub fn open(&self) {
        *self.gate.lock() = None;
    }

    async fn enter(&self) -> Result<(), StoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let gate = self.gate.lock().clone();
        if let Some(gate) = gate {
            gate.reached.add_permits(1);
            gate.release.acquire().await.expect("gate open").forget();
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable);
        }
        Ok(())
    }

    /// Reads the row *after* the gate, like a database read that started late.
    pub async fn get(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        self.enter().await?;
        Ok(self.rows.lock().get(id).cloned())
    }

    /// Reads the rows of `ids` that exist, in one load, *after* the gate.
    pub async fn get_many(
        &self,
        ids: &[String],
    ) -> Result<std::collections::HashMap<String, Customer>, StoreError> {
        self.enter().await?;
        let rows = self.rows.lock();
        Ok(ids
            .iter()
            .filter_map(|id| rows.get(id).map(|c| (id.clone(), c.clone())))
            .collect())
    }

    /// Reads the row *before* the gate: the reader saw the old row, then stalled.
    pub async fn get_then_stall(&self, id: &str) -> Result<Option<Customer>, StoreError> {
        let row = self.rows.lock().get(id).cloned();
        self.enter().await?;
        Ok(row)
    }

    pub async fn by_email(&self, email: &str) -> Result<Option<Customer>, StoreError> {
        let row = self
            .rows
            .lock()
            .values()
            .find(|c| c.email.eq_ignore_ascii_case(email))
            .cloned();
        self.enter().await?;
        Ok(row)
    }

    pub async fn active(&self, page: u32, limit: u32) -> Result<Vec<Customer>, StoreError> {
        let rows: Vec<Customer> = self
            .rows
            .lock()
            .values()
            .filter(|c| c.active)
            .skip(((page.max(1) - 1) * limit) as usize)
            .take(limit as usize)
            .cloned()
            .collect();
        self.enter().await?;
        Ok(rows)
    }

    pub async fn save(&self, customer: &Customer) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable);
        }
        self.put(customer.clone());
        Ok(())
    }
}

/// Waits until `n` loads have reached the gate; fails (instead of hanging) when they do not
/// arrive within 10 s.
pub async fn reached(gate: &Gate, n: u32) {
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        gate.reached.acquire_many(n),
    )
    .await
    .unwrap_or_else(|_| panic!("{n} load(s) never reached the gate"))
    .expect("gate")
    .forget();
}

pub fn ann() -> Customer {
    Customer::new("1", "Ann", "ann@example.com")
}

pub fn bob() -> Customer {
    Customer::new("2", "Bob", "bob@example.com")
}

/// Waits for a state, not for a time: polls every millisecond, and fails (instead of
/// hanging) when the state does not come within 10 s.
pub async fn until(mut condition: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if condition() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("condition never became true");
}

/// The row of the method whose name ends with `suffix` (default names carry the module path).
pub fn row<'a>(stats: &'a cache_runtime::Stats, suffix: &str) -> &'a cache_runtime::MethodStats {
    stats
        .methods
        .iter()
        .find(|m| m.method.ends_with(suffix))
        .unwrap_or_else(|| panic!("no method ending with {suffix:?} in {stats:?}"))
}
