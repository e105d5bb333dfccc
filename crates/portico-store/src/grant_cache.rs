//! Client grants held in memory for `client_credentials` on SQLite: the one read a service
//! token needed (the client itself comes from the configuration snapshot). Client grants change
//! rarely, and on SQLite every change is one of these:
//!
//! - a transaction of this process that puts or revokes a client grant, or applies
//!   configuration (which may remove a tenant and its grants): its commit forgets every entry
//!   before [`crate::Tx::commit`] returns (or fails, or is cancelled), so a revocation through
//!   the admin API counts for the next request;
//! - `portico apply` in another process (the only other writer of client grants: the CLI's
//!   `grant` commands change users' grants): its transaction moves `config_version`, and the
//!   once-a-second reload that picks up the rest of that change (a removed client or tenant, a
//!   new secret) forgets them ([`Store::forget_client_grants`]), so the grants are never older
//!   than the configuration they are judged with. That poll runs about once a second, after
//!   the upkeep's sweep of expired rows when one is due (every minute).
//!
//! On PostgreSQL nothing is held: several nodes share the database, and a revocation on one must
//! count on the others at once. Holding them there waits for a cross-node notification (each
//! node forgetting them on it, and whenever its listener reconnects).
//!
//! What an entry holds are the rows: expiry and tenant coverage are still judged per request.
//! A reader takes the generation before it reads the store; forgetting (after a commit) empties
//! the cache and moves the generation, both under the lock that holding a read takes too, so a
//! read that overlapped a commit is dropped instead of held.

use crate::{Result, Store};
use portico_model::{ClientId, Grant, Grantee, ProductSlug};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The most (client, product) pairs held; past it the cache starts over. Clients and products
/// both come from the configuration, so this bounds a misconfiguration, not an attacker.
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct ClientGrants {
    generation: AtomicU64,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    /// client → product → the rows (nested, so a lookup by two `&str` allocates nothing).
    by_client: HashMap<Box<str>, HashMap<Box<str>, Arc<[Grant]>>>,
    len: usize,
}

impl ClientGrants {
    /// The held rows. A panic while they were held leaves nothing half-done (each change is one
    /// map operation), and `forget` runs in a drop guard, where a second panic would abort: so a
    /// poisoned lock is taken over, not unwrapped.
    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, client: &str, product: &str) -> Option<Arc<[Grant]>> {
        let held = self.lock();
        held.by_client.get(client)?.get(product).cloned()
    }

    /// The generation a read about to start is held under ([`ClientGrants::put`]).
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn put(&self, client: &str, product: &str, read_under: u64, grants: Arc<[Grant]>) {
        let mut held = self.lock();
        // Checked under the lock that `forget` takes too: a read that a commit overtook is dropped.
        if read_under != self.generation() {
            return;
        }
        if held.len >= MAX_ENTRIES {
            *held = Held::default();
        }
        let products = held.by_client.entry(client.into()).or_default();
        let fresh = products.insert(product.into(), grants).is_none();
        held.len += usize::from(fresh);
    }

    pub(crate) fn forget(&self) {
        let mut held = self.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        *held = Held::default();
    }
}

impl Store {
    /// A client's grants for one product (any status), as [`Store::grants_for`] reads them; on
    /// SQLite from memory while no client grant has changed since (the module's text says what
    /// counts as a change).
    pub async fn client_grants_for(&self, client: &ClientId, product: &ProductSlug) -> Result<Arc<[Grant]>> {
        let held = matches!(self.backend, crate::Backend::Sqlite(_));
        if held && let Some(grants) = self.client_grants.get(client.as_str(), product.as_str()) {
            return Ok(grants);
        }
        let read_under = self.client_grants.generation();
        let grants: Arc<[Grant]> = self.grants_for(&Grantee::Client(client.clone()), product).await?.into();
        if held {
            self.client_grants.put(client.as_str(), product.as_str(), read_under, grants.clone());
        }
        Ok(grants)
    }

    /// Forgets every client grant held in memory: for when another process changed the
    /// configuration (its `config_version` moved), which may have changed client grants, or
    /// when it could not be told whether it did.
    pub fn forget_client_grants(&self) {
        self.client_grants.forget();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grants() -> Arc<[Grant]> {
        Arc::from(Vec::new())
    }

    #[test]
    fn a_read_overtaken_by_a_commit_is_not_held() {
        let cache = ClientGrants::default();
        let read_under = cache.generation();
        cache.forget(); // a commit lands while the read is on its way
        cache.put("bot", "reports", read_under, grants());
        assert!(cache.get("bot", "reports").is_none());
        // A read under the current generation is held, for its own pair only.
        cache.put("bot", "reports", cache.generation(), grants());
        assert!(cache.get("bot", "reports").is_some());
        assert!(cache.get("bot", "billing").is_none() && cache.get("feed", "reports").is_none());
        cache.forget();
        assert!(cache.get("bot", "reports").is_none());
    }

    /// Every statement that writes `grants` sits in a function that tells the cache: `put_grant`
    /// and `revoke_grant` (grants.rs) and `apply_config`'s tenant removal (config.rs). A new
    /// writer elsewhere must do the same, and then be added here.
    #[test]
    fn grants_are_written_only_where_the_cache_is_told() {
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut writers = Vec::new();
        let mut dirs = vec![crates.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() && !path.ends_with("migrations") && !path.ends_with("tests") {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("grant_cache.rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for verb in ["INSERT INTO grants", "UPDATE grants", "DELETE FROM grants", "REPLACE INTO grants"] {
                        let found = text.matches(verb).count();
                        if found > 0 {
                            let name = path.strip_prefix(crates).unwrap().display().to_string();
                            writers.push((name, verb, found));
                        }
                    }
                }
            }
        }
        writers.sort();
        let expected = [
            ("portico-store/src/config.rs".to_owned(), "UPDATE grants", 1),
            ("portico-store/src/grants.rs".to_owned(), "INSERT INTO grants", 1),
            ("portico-store/src/grants.rs".to_owned(), "UPDATE grants", 1),
        ];
        assert_eq!(writers, expected);
    }

    #[test]
    fn the_cache_starts_over_past_its_bound() {
        let cache = ClientGrants::default();
        for i in 0..=MAX_ENTRIES {
            cache.put(&format!("client-{i}"), "reports", 0, grants());
        }
        let held = cache.held.lock().unwrap();
        assert_eq!(held.len, 1);
        assert_eq!(held.by_client.len(), 1);
    }
}
