//! Single flight: concurrent misses on one key share one load.
//!
//! The first caller to miss becomes the leader and runs the body; later callers subscribe to
//! the flight and wait. A leader that is cancelled or panics drops its [`FlightGuard`], which
//! tells the waiters the flight was abandoned: they look the key up again and one of them
//! leads a new load, so nobody hangs and the key is never wedged.

use std::any::Any;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

const SHARDS: usize = 16;

/// How a flight ended.
pub(crate) enum Outcome {
    /// The load produced this value (of the method's value type).
    Value(Arc<dyn Any + Send + Sync>),
    /// The load failed with this shareable error (of the method's error type).
    Error(Arc<dyn Any + Send + Sync>),
    /// The load failed with an error that cannot be shared: each waiter runs its own body.
    Failed,
    /// The leader went away (cancelled, panicked) or was overtaken: look again.
    Retry,
}

/// A finished flight, with what a waiter needs to check that no invalidation overtook it.
pub(crate) struct Landing {
    pub(crate) outcome: Outcome,
    pub(crate) started_at: u64,
    pub(crate) tag_hashes: Vec<u64>,
    /// The shared backend's versions the value was loaded under, when it has them: a waiter
    /// that cannot rely on its log (it does not follow the backend's invalidation feed, or
    /// the feed is broken) checks they are still current.
    pub(crate) shared: Option<SharedStamp>,
}

/// Tag versions of a shared backend, with their generation.
pub(crate) struct SharedStamp {
    pub(crate) generation: u64,
    pub(crate) tags: Vec<(String, u64)>,
}

type Slot = watch::Sender<Option<Arc<Landing>>>;
type Shard = Mutex<HashMap<Box<[u8]>, Arc<Slot>, foldhash::fast::RandomState>>;

/// The running flights of one cache. Cheap to clone: its guards hold it (not the cache) to
/// remove their flight.
#[derive(Clone)]
pub(crate) struct Flights(Arc<Running>);

struct Running {
    shards: Box<[Shard]>,
    hasher: foldhash::fast::RandomState,
}

/// How a waiter hears of its flight's landing.
pub(crate) type Receiver = watch::Receiver<Option<Arc<Landing>>>;

pub(crate) enum Joined {
    Leader(FlightGuard),
    Waiter(Receiver),
}

impl Flights {
    pub(crate) fn new() -> Self {
        Flights(Arc::new(Running {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }))
    }

    fn shard(&self, key: &[u8]) -> &Shard {
        &self.0.shards[self.0.hasher.hash_one(key) as usize % SHARDS]
    }

    /// Joins the flight for `key`, or starts one.
    pub(crate) fn join(&self, key: &[u8]) -> Joined {
        let mut shard = self.shard(key).lock();
        if let Some(slot) = shard.get(key) {
            return Joined::Waiter(slot.subscribe());
        }
        let slot = Arc::new(watch::Sender::new(None));
        shard.insert(key.into(), slot.clone());
        Joined::Leader(FlightGuard {
            flights: self.clone(),
            key: key.into(),
            slot,
            landed: false,
        })
    }

    /// Whether a flight is running for `key`.
    pub(crate) fn running(&self, key: &[u8]) -> bool {
        self.shard(key).lock().contains_key(key)
    }

    fn remove(&self, key: &[u8], slot: &Arc<Slot>) {
        let mut shard = self.shard(key).lock();
        if shard.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            shard.remove(key);
        }
    }
}

/// Held by the leader of a flight; dropping it unfinished releases the waiters.
pub(crate) struct FlightGuard {
    flights: Flights,
    key: Box<[u8]>,
    slot: Arc<Slot>,
    landed: bool,
}

impl FlightGuard {
    /// Ends the flight with `landing`.
    pub(crate) fn land(mut self, landing: Landing) {
        self.flights.remove(&self.key, &self.slot);
        self.slot.send_replace(Some(Arc::new(landing)));
        self.landed = true;
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if !self.landed {
            self.flights.remove(&self.key, &self.slot);
            self.slot.send_replace(Some(Arc::new(Landing {
                outcome: Outcome::Retry,
                started_at: 0,
                tag_hashes: Vec::new(),
                shared: None,
            })));
        }
    }
}

/// Waits for the flight `rx` belongs to.
pub(crate) async fn wait(mut rx: Receiver) -> Option<Arc<Landing>> {
    match rx.wait_for(Option::is_some).await {
        Ok(landing) => landing.clone(),
        Err(_) => None,
    }
}
