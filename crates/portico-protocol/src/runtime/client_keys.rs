//! The public keys of `private_key_jwt` clients published at a `jwks_uri` (a registered JWK Set is
//! read with the configuration snapshot): fetched with a timeout and a size limit (`portico-jose`), then held for what its
//! `Cache-Control` allows (between [`MIN_HOLD`] and [`MAX_HOLD`], [`DEFAULT_HOLD`] when it says
//! nothing). An assertion naming a `kid` the held set lacks fetches again — the client rotated —
//! at most once per [`REFETCH_COOLDOWN`], so made-up key ids cannot make Portico fetch on every
//! request; a failed fetch waits as long before the next. A URL that cannot be reached (or whose
//! server fails) keeps the set held before, until it is [`STALE_LIMIT`] old; one that answers that
//! the set is gone is believed.

use jsonwebtoken::Algorithm;
use portico_jose::fetch::SourceError;
use portico_jose::jwks::{KeySet, SUPPORTED};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

pub const DEFAULT_HOLD: i64 = 300;
pub const MIN_HOLD: i64 = 30;
pub const MAX_HOLD: i64 = 3600;
pub const REFETCH_COOLDOWN: i64 = 30;
pub const STALE_LIMIT: i64 = 3600;
/// The most sets held at once: the URLs are the configuration's, so
/// past this the registry has changed a great deal, and everything is read again.
const MAX_HELD: usize = 1024;

#[derive(Clone)]
struct Held {
    /// `None` after a failed fetch with nothing worth keeping.
    set: Option<Arc<KeySet>>,
    fetched_at: i64,
    fresh_until: i64,
    /// The last fetch started, whatever came of it.
    attempted_at: i64,
}

impl Held {
    /// Nothing held yet; a fetch started at `now`.
    fn attempting(now: i64) -> Self {
        Self {
            set: None,
            fetched_at: 0,
            fresh_until: 0,
            attempted_at: now,
        }
    }
}

#[derive(Default)]
pub struct ClientKeys {
    http: OnceLock<portico_jose::fetch::Client>,
    fetched: Mutex<HashMap<String, Held>>,
    /// One fetch of a URL at a time: requests that arrive meanwhile wait for its answer.
    flights: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ClientKeys {
    /// The usable keys published at `uri`, fetched when none are held fresh, or when `kid` is not
    /// among them — at most once per cooldown, successful or not, so neither made-up key ids nor
    /// a URL that is down make Portico fetch on every request. Requests that arrive during a
    /// fetch wait for it and use its answer. The error says why, for the logs.
    pub async fn fetched(&self, uri: &str, kid: Option<&str>, alg: Algorithm, now: i64) -> Result<Arc<KeySet>, String> {
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            if flights.len() >= MAX_HELD {
                flights.clear();
            }
            flights.entry(uri.to_owned()).or_default().clone()
        };
        let _one_at_a_time = flight.lock().await;
        let held = {
            let mut all = self.fetched.lock().unwrap_or_else(PoisonError::into_inner);
            let held = all.get(uri).cloned();
            let fresh_with_key = held
                .as_ref()
                .is_some_and(|h| now < h.fresh_until && h.set.as_ref().is_some_and(|s| s.find(kid, alg).is_some()));
            let cooling = held.as_ref().is_some_and(|h| now - h.attempted_at < REFETCH_COOLDOWN);
            if fresh_with_key || cooling {
                return match held.and_then(|h| h.set) {
                    Some(set) => Ok(set),
                    None => Err("the client's jwks_uri failed moments ago".into()),
                };
            }
            if all.len() >= MAX_HELD {
                all.clear();
            }
            let entry = all.entry(uri.to_owned()).or_insert_with(|| Held::attempting(now));
            entry.attempted_at = now;
            held
        };
        let http = self.http.get_or_init(portico_jose::fetch::client);
        let result = portico_jose::fetch::get_json(http, uri).await;
        let mut all = self.fetched.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = all.entry(uri.to_owned()).or_insert_with(|| Held::attempting(now));
        match result {
            Ok((jwks, max_age)) => {
                let set = Arc::new(KeySet::parse(&jwks, &SUPPORTED).0);
                let hold = max_age.map_or(DEFAULT_HOLD, |a| i64::try_from(a).unwrap_or(MAX_HOLD)).clamp(MIN_HOLD, MAX_HOLD);
                *entry = Held {
                    set: Some(set.clone()),
                    fetched_at: now,
                    fresh_until: now + hold,
                    attempted_at: now,
                };
                Ok(set)
            }
            Err(e) => {
                // The keys held before still verify what they verified, for a while, when the URL
                // could not be reached or its server failed; an answer that says the set is gone
                // (404, not a JWK Set, too large) is taken at its word.
                let outage = matches!(e, SourceError::Unreachable { .. }) || matches!(e, SourceError::Status { status, .. } if status >= 500);
                let kept = held.and_then(|h| h.set.filter(|_| outage && now - h.fetched_at < STALE_LIMIT));
                entry.set = kept.clone();
                match kept {
                    Some(set) => {
                        tracing::warn!(error = %e, "a client's jwks_uri could not be fetched; its keys held before are used");
                        Ok(set)
                    }
                    None => Err(format!("the client's jwks_uri could not be fetched: {e}")),
                }
            }
        }
    }
}
