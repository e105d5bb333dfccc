//! Sign-in throttling against password guessing, spraying and stuffing. Failed attempts are
//! counted per account (keyed by the email as typed, so an unknown email is throttled exactly like
//! a known one and the answer reveals nothing) and per client IP. Past a number of free failures
//! each next attempt must wait 1, 2, 4 … 60 seconds; past a higher number the key is locked for
//! the lock duration. Failures older than the lock duration are forgotten; a successful sign-in
//! forgets the account's. While a key is blocked, no password is even checked. Each attempt is
//! counted *before* its password is checked (a reservation, atomic in the store) and given back
//! when it succeeds: fifty attempts sent at once verify no more passwords than fifty sent one after
//! another would. Times here are in milliseconds (`now_ms`), so a one-second wait is one second,
//! not "until the clock ticks".

use crate::provider::Provider;
use portico_store::{AuditEvent, StoreError};

/// The limits, from the deployment's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Failures per account before each next attempt waits.
    pub account_delay_after: i64,
    /// Failures per account that lock it for `lock` seconds.
    pub account_lock_after: i64,
    pub ip_delay_after: i64,
    pub ip_lock_after: i64,
    /// Seconds a lock lasts; also how long failures are remembered.
    pub lock: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            account_delay_after: 5,
            account_lock_after: 10,
            ip_delay_after: 20,
            ip_lock_after: 100,
            lock: 900,
        }
    }
}

/// The longest growing delay before a lock.
pub const MAX_DELAY: i64 = 60;

/// When (ms) the next attempt may come after `failures` failures; `lock` in seconds.
pub fn blocked_until(failures: i64, delay_after: i64, lock_after: i64, lock: i64, now_ms: i64) -> i64 {
    if failures >= lock_after {
        now_ms + lock * 1000
    } else if failures >= delay_after {
        let doublings = u32::try_from(failures - delay_after).unwrap_or(u32::MAX).min(6);
        now_ms + (1i64 << doublings).min(MAX_DELAY) * 1000
    } else {
        0
    }
}

fn account_key(email: &str) -> String {
    format!("acct:{}", crate::random::hash(&email.trim().to_lowercase()))
}

fn ip_key(ip: &str) -> String {
    format!("ip:{}", address_key(ip))
}

/// What an address-keyed limit counts for `ip`: an IPv4 address itself, an IPv6 address's /64
/// (one subscriber's network: a host can pick any of its 2^64 addresses, so counting each alone
/// would let it go around every limit).
pub fn address_key(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
        Ok(std::net::IpAddr::V6(v6)) => v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_default(),
        _ => ip.to_owned(),
    }
}

/// What the throttle says of a sign-in attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// Seconds until it may be attempted; `None` when it may now (and it was counted).
    pub wait: Option<i64>,
}

/// Reserves a sign-in attempt for `email` from `ip`: counted now, against the account and the IP,
/// unless either is blocked — then it waits, unchecked and uncounted. A refusal is audited (the
/// account by the hash of what was typed, never the text: a password typed into the email field
/// must not land in the log), and so is a key that starts to wait or is locked.
pub async fn reserve(p: &Provider, email: &str, ip: Option<&str>, now_ms: i64) -> Result<Gate, StoreError> {
    let l = p.settings.throttle;
    let account = account_key(email);
    let on_account = move |f| blocked_until(f, l.account_delay_after, l.account_lock_after, l.lock, now_ms);
    let on_ip = move |f| blocked_until(f, l.ip_delay_after, l.ip_lock_after, l.lock, now_ms);
    let ip_k = ip.map(ip_key);
    let mut keys: Vec<(&str, &(dyn Fn(i64) -> i64 + Sync))> = vec![(&account, &on_account)];
    if let Some(k) = &ip_k {
        keys.push((k, &on_ip));
    }
    let reserved = p.store.throttle_reserve(&keys, now_ms, now_ms - l.lock * 1000).await?;
    let counted = match reserved {
        Ok(counted) => counted,
        Err(until) => {
            // Retry-After is whole seconds: round up, so an attempt at the time given is let through.
            let wait = (until - now_ms + 999) / 1000;
            p.writer.record(
                AuditEvent::new(now_ms / 1000, "login.throttled", "anonymous")
                    .ip(ip.map(str::to_owned))
                    .data(serde_json::json!({"account": account, "retry_after": wait})),
            );
            return Ok(Gate { wait: Some(wait) });
        }
    };
    let limits = [
        ("account", l.account_delay_after, l.account_lock_after),
        ("ip", l.ip_delay_after, l.ip_lock_after),
    ];
    for ((failures, until), (kind, delay_after, lock_after)) in counted.into_iter().zip(limits) {
        if until > now_ms && (failures == delay_after || failures == lock_after) {
            let what = if failures >= lock_after { "login.locked" } else { "login.delayed" };
            p.writer.record(
                AuditEvent::new(now_ms / 1000, what, "anonymous")
                    .ip(ip.map(str::to_owned))
                    .data(serde_json::json!({"key": kind, "account": account, "failures": failures, "until": until / 1000})),
            );
        }
    }
    Ok(Gate { wait: None })
}

/// A reserved attempt that succeeded: the account's failures are forgotten, and the IP gets this
/// attempt back (not its earlier failures: one good password must not reset a spray from the
/// same address).
pub async fn succeeded(p: &Provider, email: &str, ip: Option<&str>, now_ms: i64) -> Result<(), StoreError> {
    let l = p.settings.throttle;
    p.store.throttle_clear(&account_key(email)).await?;
    if let Some(ip) = ip {
        let on_ip = move |f| blocked_until(f, l.ip_delay_after, l.ip_lock_after, l.lock, now_ms);
        p.store.throttle_forgive(&ip_key(ip), &on_ip).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_lock() {
        let waits: Vec<i64> = (1..=11).map(|f| blocked_until(f, 5, 10, 900, 0) / 1000).collect();
        assert_eq!(waits, [0, 0, 0, 0, 1, 2, 4, 8, 16, 900, 900]);
        assert_eq!(blocked_until(30, 5, 100, 900, 0), MAX_DELAY * 1000, "capped below the lock");
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_ipv4_alone() {
        assert_eq!(address_key("2001:db8:1:2:aaaa::1"), address_key("2001:db8:1:2:bbbb::2"));
        assert_eq!(address_key("2001:db8:1:2::9"), "2001:db8:1:2::/64");
        assert_ne!(address_key("2001:db8:1:3::1"), address_key("2001:db8:1:2::1"));
        assert_eq!(address_key("192.0.2.1"), "192.0.2.1");
        assert_eq!(address_key("::ffff:192.0.2.1"), "192.0.2.1");
    }

    #[test]
    fn the_account_key_ignores_case_and_spaces_and_hides_the_text() {
        assert_eq!(account_key(" Ada@Example.test "), account_key("ada@example.test"));
        assert!(!account_key("ada@example.test").contains("ada"));
    }
}
