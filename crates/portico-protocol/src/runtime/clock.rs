//! The provider's clock: the seconds every request is answered at and the background tasks (the
//! outbox, the mail worker, the sweeper) read, and milliseconds for what counts time finer (the
//! sign-in throttle). It is the system's clock; a test moves it forward instead of sleeping. (The
//! server's per-address and per-client rate limits keep their own clock.)

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// The system clock, plus however far [`Clock::advance`] moved it.
#[derive(Debug, Default)]
pub struct Clock {
    ahead_ms: AtomicI64,
}

impl Clock {
    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        system + self.ahead_ms.load(Ordering::Relaxed)
    }

    /// Seconds since the Unix epoch: the `now` every protocol function takes.
    pub fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Moves this clock forward by `by` (tests: what a sleep would have waited). It never goes back.
    pub fn advance(&self, by: Duration) {
        self.ahead_ms.fetch_add(by.as_millis() as i64, Ordering::Relaxed);
    }
}
