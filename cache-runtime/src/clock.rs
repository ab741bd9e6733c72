//! The time source that decides freshness.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where a [`Cache`](crate::Cache) reads the current time from.
///
/// Freshness and stale windows are decided against wall-clock milliseconds since the Unix
/// epoch, so that entries written by one process can be judged by another. Tests use
/// [`Clock::manual`] to move time by hand instead of sleeping.
///
/// ```
/// use std::time::Duration;
/// let (clock, handle) = cache_runtime::Clock::manual();
/// let before = clock.now_millis();
/// handle.advance(Duration::from_secs(2));
/// assert_eq!(clock.now_millis(), before + 2_000);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

/// Moves a [`Clock::manual`] clock forward.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock { manual: None }
    }

    /// A clock that starts at the current system time and only moves when told to.
    pub fn manual() -> (Self, ManualClock) {
        let now = Arc::new(AtomicU64::new(system_millis()));
        (
            Clock {
                manual: Some(now.clone()),
            },
            ManualClock { now },
        )
    }

    /// Milliseconds since the Unix epoch.
    #[inline]
    pub fn now_millis(&self) -> u64 {
        match &self.manual {
            None => system_millis(),
            Some(now) => now.load(Ordering::Acquire),
        }
    }
}

impl ManualClock {
    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(by))
            });
    }
}

/// Wall-clock milliseconds. On Linux, the coarse clock: a few nanoseconds instead of a few
/// dozen, at the resolution of the kernel tick (1–4 ms), plenty for TTLs.
#[inline]
pub(crate) fn system_millis() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
            return ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000;
        }
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
