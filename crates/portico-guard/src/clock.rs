//! Time, injectable: the guard reads seconds since the epoch from a [`Clock`], so tests pin it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Where the guard reads the time (seconds since the Unix epoch).
pub trait Clock: Send + Sync + 'static {
    /// Now, in seconds since the Unix epoch.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl SystemClock {
    /// Now, in seconds since the Unix epoch.
    pub fn now_secs(self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        self.now_secs()
    }
}

/// A clock that moves only when told to: for tests ("a token used at `exp` + 11 s is refused").
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock reading `now`.
    pub fn at(now: i64) -> Self {
        Self(Arc::new(AtomicI64::new(now)))
    }

    /// A clock reading the system time now, then moved only by [`ManualClock::advance`].
    pub fn starting_now() -> Self {
        Self::at(SystemClock.now_secs())
    }

    /// What the clock reads (as [`Clock::now`], without importing the trait).
    pub fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Moves the clock forward by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        ManualClock::now(self)
    }
}
