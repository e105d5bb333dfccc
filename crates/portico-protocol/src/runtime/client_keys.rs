//! The public keys of `private_key_jwt` clients: a registered JWK Set read once per set, and a
//! `jwks_uri` fetched with a timeout and a size limit (`portico-jose`), then held for what its
//! `Cache-Control` allows (between [`MIN_HOLD`] and [`MAX_HOLD`], [`DEFAULT_HOLD`] when it says
//! nothing). An assertion naming a `kid` the held set lacks fetches again — the client rotated —
//! at most once per [`REFETCH_COOLDOWN`], so made-up key ids cannot make Portico fetch on every
//! request. A fetch that fails keeps the set held before, until it is [`STALE_LIMIT`] old.

use jsonwebtoken::Algorithm;
use portico_jose::jwks::{KeySet, SUPPORTED};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

pub const DEFAULT_HOLD: i64 = 300;
pub const MIN_HOLD: i64 = 30;
pub const MAX_HOLD: i64 = 3600;
pub const REFETCH_COOLDOWN: i64 = 30;
pub const STALE_LIMIT: i64 = 24 * 3600;
/// The most sets held at once (registered and fetched): the keys are the configuration's, so
/// past this the registry has changed a great deal, and everything is read again.
const MAX_HELD: usize = 1024;

struct Held {
    set: Arc<KeySet>,
    fetched_at: i64,
    fresh_until: i64,
}

#[derive(Default)]
pub struct ClientKeys {
    http: OnceLock<portico_jose::fetch::Client>,
    fetched: Mutex<HashMap<String, Held>>,
    registered: Mutex<HashMap<String, Arc<KeySet>>>,
}

impl ClientKeys {
    /// The usable keys of a registered set.
    pub fn registered(&self, set: &serde_json::Value) -> Arc<KeySet> {
        let text = set.to_string();
        let mut held = self.registered.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(keys) = held.get(&text) {
            return keys.clone();
        }
        if held.len() >= MAX_HELD {
            held.clear();
        }
        let keys = Arc::new(KeySet::parse(set, &SUPPORTED).0);
        held.insert(text, keys.clone());
        keys
    }

    /// The usable keys published at `uri`, fetched when none are held fresh, or when `kid` is not
    /// among them (at most once per cooldown). The error says why, for the logs.
    pub async fn fetched(&self, uri: &str, kid: Option<&str>, alg: Algorithm, now: i64) -> Result<Arc<KeySet>, String> {
        let held = {
            let held = self.fetched.lock().unwrap_or_else(PoisonError::into_inner);
            held.get(uri).map(|h| (h.set.clone(), h.fetched_at, h.fresh_until))
        };
        if let Some((set, fetched_at, fresh_until)) = &held {
            let has_key = set.find(kid, alg).is_some();
            if now < *fresh_until && (has_key || now - fetched_at < REFETCH_COOLDOWN) {
                return Ok(set.clone());
            }
        }
        let http = self.http.get_or_init(portico_jose::fetch::client);
        match portico_jose::fetch::get_json(http, uri).await {
            Ok((jwks, max_age)) => {
                let set = Arc::new(KeySet::parse(&jwks, &SUPPORTED).0);
                let hold = max_age.map_or(DEFAULT_HOLD, |a| i64::try_from(a).unwrap_or(MAX_HOLD)).clamp(MIN_HOLD, MAX_HOLD);
                let mut held = self.fetched.lock().unwrap_or_else(PoisonError::into_inner);
                if held.len() >= MAX_HELD {
                    held.clear();
                }
                held.insert(
                    uri.to_owned(),
                    Held {
                        set: set.clone(),
                        fetched_at: now,
                        fresh_until: now + hold,
                    },
                );
                Ok(set)
            }
            // The keys held before still verify what they verified, for a while.
            Err(e) => match held {
                Some((set, fetched_at, _)) if now - fetched_at < STALE_LIMIT => {
                    tracing::warn!(error = %e, "a client's jwks_uri could not be fetched; its keys held before are used");
                    Ok(set)
                }
                _ => Err(format!("the client's jwks_uri could not be fetched: {e}")),
            },
        }
    }
}
