//! Per-client limits at the token endpoint: each registered client may send so many requests per
//! second (bursts of twice that pass), counted on this node with GCRA (the `governor` crate). Only
//! registered client ids are counted, so made-up ids cannot grow the table.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

pub struct ClientLimits {
    requests: Option<DefaultKeyedRateLimiter<String>>,
    /// At most one audit event per client per second while it is over its limit.
    audits: DefaultKeyedRateLimiter<String>,
}

impl ClientLimits {
    /// `per_second` requests per client; 0 for no limit.
    pub fn new(per_second: u32) -> Self {
        let requests = NonZeroU32::new(per_second).map(|n| {
            let burst = n.saturating_mul(NonZeroU32::new(2).expect("two"));
            RateLimiter::keyed(Quota::per_second(n).allow_burst(burst))
        });
        Self {
            requests,
            audits: RateLimiter::keyed(Quota::per_second(NonZeroU32::MIN)),
        }
    }

    /// Whether any limit is set (`token_requests_per_client` > 0).
    pub fn enabled(&self) -> bool {
        self.requests.is_some()
    }

    /// `None` when `client` may go on; otherwise the whole seconds to wait, and whether this
    /// refusal is the one to audit.
    pub fn check(&self, client: &str) -> Option<(u64, bool)> {
        let limiter = self.requests.as_ref()?;
        let key = client.to_owned();
        let not_until = limiter.check_key(&key).err()?;
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let audit = self.audits.check_key(&key).is_ok();
        Some((wait.as_secs() + u64::from(wait.subsec_nanos() > 0), audit))
    }
}

/// A rate per client IP: for pages that send mail (reset, sign-up, verification), so one address
/// cannot flood inboxes or the queue (`mail_requests_per_minute`), and for the password meter.
/// Bursts of a minute's worth pass; 0 is no limit.
pub struct AddressLimits {
    requests: Option<DefaultKeyedRateLimiter<String>>,
}

impl AddressLimits {
    pub fn per_minute(per_minute: u32) -> Self {
        let requests = NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n).allow_burst(n)));
        Self { requests }
    }

    /// `None` when `ip` may go on; otherwise the whole seconds to wait.
    pub fn check(&self, ip: &str) -> Option<u64> {
        let limiter = self.requests.as_ref()?;
        // IPv6 per /64, as the sign-in throttle counts.
        let not_until = limiter.check_key(&portico_protocol::throttle::address_key(ip)).err()?;
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    }

    /// Forgets addresses whose allowance is full again (keeps the table small).
    pub fn sweep(&self) {
        if let Some(r) = &self.requests {
            r.retain_recent();
        }
    }
}

impl portico_protocol::interaction::PendingLimit for AddressLimits {
    fn wait(&self, ip: &str) -> Option<u64> {
        self.check(ip)
    }
}
