//! The JWKS cache. Verification reads the current key set through a lock held only to clone an
//! `Arc` (never across a fetch), so a token with a known key never waits on the network. Fetches
//! are single-flight: the background refresh (before `max-age` runs out, clamped to 60 s – 24 h)
//! and the refetch an unknown `kid` triggers take one async lock, and an unknown `kid` triggers at
//! most one refetch per cooldown however many callers ask. A failed refresh keeps the last good
//! set serving, up to `max_stale` past its freshness; a successful one replaces the set whole, so
//! a key the issuer stopped publishing is dropped at once. An answer without a `keys` array, or
//! without one usable key, counts as a failure (it would otherwise refuse every token).

use crate::clock::Clock;
use crate::source::{KeySource, SourceError};
use jsonwebtoken::Algorithm;
use portico_jose::jwks::{Key, KeySet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

/// The shortest time a key set is considered fresh, whatever `max-age` says (seconds).
pub const MIN_MAX_AGE: i64 = 60;
/// The longest time a key set is considered fresh, whatever `max-age` says (seconds).
pub const MAX_MAX_AGE: i64 = 24 * 3600;
/// Freshness when the source names none.
pub const DEFAULT_MAX_AGE: i64 = 300;

/// How the cache behaves (set through the guard's builder).
#[derive(Clone, Copy, Debug)]
pub struct CachePolicy {
    /// At most one refetch for unknown `kid`s per this many seconds.
    pub cooldown: i64,
    /// How long past its freshness a set keeps serving when refreshes fail.
    pub max_stale: i64,
}

struct Loaded {
    set: KeySet,
    fresh_until: i64,
}

/// What a key lookup found.
pub(crate) enum Lookup {
    Found(Arc<Key>),
    Unknown,
    /// The set is older than `max_stale` allows: nothing is served until a refresh succeeds.
    Expired,
}

pub(crate) struct Cache {
    source: Arc<dyn KeySource>,
    clock: Arc<dyn Clock>,
    allowed: Vec<Algorithm>,
    pub policy: CachePolicy,
    loaded: RwLock<Arc<Loaded>>,
    fetching: tokio::sync::Mutex<()>,
    attempts: AtomicU64,
    last_attempt: AtomicI64,
    next_refresh: AtomicI64,
}

impl Cache {
    /// Fetches the first set; fails when the source fails or publishes no usable key.
    pub async fn load(source: Arc<dyn KeySource>, clock: Arc<dyn Clock>, allowed: Vec<Algorithm>, policy: CachePolicy) -> Result<Arc<Cache>, SourceError> {
        let empty = Arc::new(Loaded {
            set: KeySet::default(),
            fresh_until: i64::MIN,
        });
        let cache = Arc::new(Cache {
            source,
            clock,
            allowed,
            policy,
            loaded: RwLock::new(empty),
            fetching: tokio::sync::Mutex::new(()),
            attempts: AtomicU64::new(0),
            last_attempt: AtomicI64::new(i64::MIN),
            next_refresh: AtomicI64::new(i64::MIN),
        });
        cache.refresh().await?;
        if cache.current().set.keys.is_empty() {
            return Err(SourceError::Invalid {
                url: "jwks_uri".into(),
                reason: "no usable signing key for the allowed algorithms".into(),
            });
        }
        Ok(cache)
    }

    /// Starts the background refresh; it stops when the last guard holding the cache is dropped.
    pub fn spawn_refresher(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(refresher(weak));
    }

    fn current(&self) -> Arc<Loaded> {
        self.loaded.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Fetch attempts so far (ok or not).
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::SeqCst)
    }

    /// One fetch. Callers hold `fetching` (or are `load`, before anyone can call).
    async fn refresh(&self) -> Result<(), SourceError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let now = self.clock.now();
        self.last_attempt.store(now, Ordering::SeqCst);
        match self.source.fetch().await {
            Ok(fetched) if !fetched.jwks.get("keys").is_some_and(serde_json::Value::is_array) => self.failed(
                now,
                SourceError::Invalid {
                    url: "jwks_uri".into(),
                    reason: "no \"keys\" array (RFC 7517 §5)".into(),
                },
            ),
            Ok(fetched) => {
                let (set, skipped) = KeySet::parse(&fetched.jwks, &self.allowed);
                if set.keys.is_empty() {
                    // An answer without one usable key would refuse every token: keep the last good set.
                    return self.failed(
                        now,
                        SourceError::Invalid {
                            url: "jwks_uri".into(),
                            reason: "no usable signing key".into(),
                        },
                    );
                }
                if skipped > 0 {
                    tracing::warn!(skipped, usable = set.keys.len(), "portico-guard: skipped unusable keys in the issuer's JWK Set");
                }
                let max_age = fetched
                    .max_age
                    .map_or(DEFAULT_MAX_AGE, |a| a.min(MAX_MAX_AGE as u64) as i64)
                    .clamp(MIN_MAX_AGE, MAX_MAX_AGE);
                *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Loaded {
                    set,
                    fresh_until: now + max_age,
                });
                self.next_refresh.store(now + max_age * 4 / 5, Ordering::SeqCst);
                metrics::counter!("portico_guard_jwks_fetches_total", "result" => "ok").increment(1);
                Ok(())
            }
            Err(e) => self.failed(now, e),
        }
    }

    fn failed(&self, now: i64, e: SourceError) -> Result<(), SourceError> {
        self.next_refresh.store(now + self.policy.cooldown.max(1), Ordering::SeqCst);
        metrics::counter!("portico_guard_jwks_fetches_total", "result" => "error").increment(1);
        tracing::warn!(error = %e, "portico-guard: refreshing the issuer's keys failed; the last good set keeps serving");
        Err(e)
    }

    /// The key `kid`, refetching the set at most once per cooldown when it is unknown.
    pub async fn lookup(&self, kid: &str) -> Lookup {
        if let Some(found) = self.known(kid) {
            return found;
        }
        let seen = self.attempts();
        let _flight = self.fetching.lock().await;
        if let Some(found) = self.known(kid) {
            return found;
        }
        // Someone else fetched while this caller waited: their answer is the answer.
        if self.attempts() != seen {
            return Lookup::Unknown;
        }
        let last = self.last_attempt.load(Ordering::SeqCst);
        if self.clock.now().saturating_sub(last) < self.policy.cooldown {
            return Lookup::Unknown;
        }
        let _ = self.refresh().await;
        self.known(kid).unwrap_or(Lookup::Unknown)
    }

    fn known(&self, kid: &str) -> Option<Lookup> {
        let loaded = self.current();
        let key = loaded.set.keys.get(kid)?;
        let now = self.clock.now();
        if now > loaded.fresh_until {
            if now > loaded.fresh_until.saturating_add(self.policy.max_stale) {
                return Some(Lookup::Expired);
            }
            metrics::counter!("portico_guard_stale_keys_served_total").increment(1);
        }
        Some(Lookup::Found(key.clone()))
    }

    /// Refreshes now (single-flight with every other fetch), whatever the cooldown.
    pub async fn refresh_now(&self) -> Result<(), SourceError> {
        let _flight = self.fetching.lock().await;
        self.refresh().await
    }

    fn wait(&self) -> Duration {
        let due = self.next_refresh.load(Ordering::SeqCst);
        Duration::from_secs(due.saturating_sub(self.clock.now()).clamp(1, MAX_MAX_AGE) as u64)
    }
}

async fn refresher(cache: Weak<Cache>) {
    loop {
        let Some(wait) = cache.upgrade().map(|c| c.wait()) else { return };
        tokio::time::sleep(wait).await;
        let Some(c) = cache.upgrade() else { return };
        let _ = c.refresh_now().await;
    }
}
