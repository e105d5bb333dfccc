//! DPoP-bound access tokens at a product's API (RFC 9449 §7). A token whose `cnf.jkt` names a key
//! is accepted only with `Authorization: DPoP <token>` and a `DPoP` proof of that key for this
//! request: its method, its URL (the product's public origin and the request's path), and `ath`,
//! the hash of the token — checked by `portico-jose`, the rules Portico itself applies. Each
//! proof is good once: its `jti` is remembered in this process until the proof could no longer
//! be accepted (several replicas each remember their own; a proof replayed at another replica is
//! caught only by its short life).

use portico_jose::dpop::{MAX_AGE, SKEW};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// The most proofs remembered at once. Past it, expired ones are forgotten; if none has expired,
/// new proofs are refused rather than old ones forgotten (a replay must never pass).
const MAX_SEEN: usize = 100_000;

/// The proofs seen, by key thumbprint and `jti`, with the time each may be forgotten.
#[derive(Default)]
pub(crate) struct SeenProofs {
    held: Mutex<HashMap<String, i64>>,
}

impl SeenProofs {
    /// Whether this is the first time the proof `jkt`/`jti` with this `iat` is seen (and records
    /// it).
    pub fn first(&self, jkt: &str, jti: &str, iat: i64, now: i64) -> bool {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.len() >= MAX_SEEN {
            held.retain(|_, until| *until > now);
            if held.len() >= MAX_SEEN {
                return false;
            }
        }
        let key = format!("{jkt}\u{0}{jti}");
        match held.get(&key) {
            Some(until) if *until > now => false,
            _ => {
                held.insert(key, iat + MAX_AGE + SKEW);
                true
            }
        }
    }
}

/// The public origin of `audience`, when it is a URL: where a product's API is reached by default.
pub(crate) fn origin_of(audience: &str) -> Option<String> {
    let url = url::Url::parse(audience).ok()?;
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}
