//! A gate that stops reads after they read, while held: a transaction test's reader is held
//! there between the write and the commit.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Semaphore;

/// Stops reads after they read, while held.
pub struct ReadGate {
    /// Whether reads stop.
    pub held: AtomicBool,
    /// A permit per read that stopped.
    pub reached: Semaphore,
    /// A permit lets one stopped read go on.
    pub release: Semaphore,
}

impl ReadGate {
    pub fn new() -> Self {
        ReadGate {
            held: AtomicBool::new(false),
            reached: Semaphore::new(0),
            release: Semaphore::new(0),
        }
    }

    /// Called by a read after it read: waits for a permit while the gate is held.
    pub async fn pass(&self) {
        if self.held.load(Ordering::SeqCst) {
            self.reached.add_permits(1);
            self.release.acquire().await.unwrap().forget();
        }
    }
}
