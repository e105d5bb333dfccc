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

/// The most proofs remembered at once, and for one key. Past either, expired ones are forgotten;
/// if none has expired, new proofs are refused rather than old ones forgotten (a replay must never
/// pass). The cap per key keeps one holder of a bound token from filling the memory for everyone.
const MAX_SEEN: usize = 100_000;
const MAX_SEEN_PER_KEY: usize = 2_000;

/// The proofs seen, by key thumbprint, then `jti`, with the time each may be forgotten.
#[derive(Default)]
pub(crate) struct SeenProofs {
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    by_key: HashMap<String, HashMap<String, i64>>,
    len: usize,
    /// When expired proofs were last forgotten: a full map is walked at most once a second.
    swept_at: i64,
}

impl Held {
    fn forget_expired(&mut self, now: i64) {
        if self.swept_at == now {
            return;
        }
        self.swept_at = now;
        for jtis in self.by_key.values_mut() {
            jtis.retain(|_, until| *until > now);
        }
        self.by_key.retain(|_, jtis| !jtis.is_empty());
        self.len = self.by_key.values().map(HashMap::len).sum();
    }
}

impl SeenProofs {
    /// Whether this is the first time the proof `jkt`/`jti` with this `iat` is seen (and records
    /// it).
    pub fn first(&self, jkt: &str, jti: &str, iat: i64, now: i64) -> bool {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let of_key = held.by_key.get(jkt).map_or(0, HashMap::len);
        if held.len >= MAX_SEEN || of_key >= MAX_SEEN_PER_KEY {
            held.forget_expired(now);
            let of_key = held.by_key.get(jkt).map_or(0, HashMap::len);
            if held.len >= MAX_SEEN || of_key >= MAX_SEEN_PER_KEY {
                metrics::counter!("portico_guard_dpop_proofs_refused_full_total").increment(1);
                return false;
            }
        }
        let jtis = held.by_key.entry(jkt.to_owned()).or_default();
        match jtis.get(jti) {
            Some(until) if *until > now => false,
            Some(_) => {
                jtis.insert(jti.to_owned(), iat + MAX_AGE + SKEW);
                true
            }
            None => {
                jtis.insert(jti.to_owned(), iat + MAX_AGE + SKEW);
                held.len += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_good_once_and_one_key_cannot_fill_the_memory_for_all() {
        let seen = SeenProofs::default();
        assert!(seen.first("k", "j", 100, 100));
        assert!(!seen.first("k", "j", 100, 200), "replayed within its life");
        for i in 0..MAX_SEEN_PER_KEY - 1 {
            assert!(seen.first("flood", &i.to_string(), 100, 100));
        }
        assert!(seen.first("flood", "last", 100, 100));
        assert!(!seen.first("flood", "one more", 100, 100), "the flooding key is refused");
        assert!(seen.first("other", "j", 100, 100), "other keys are not");
        // Once the flood's proofs can no longer be accepted, they are forgotten.
        assert!(seen.first("flood", "later", 1000, 1000));
    }
}
