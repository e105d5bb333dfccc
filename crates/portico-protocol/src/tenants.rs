//! Tenant references. A token names its tenant by the tenant's stable opaque id (`ten_…`); every
//! reference Portico itself puts into a URL or a page is a short-lived **handle** (`th_…`) that
//! rotates every `period` seconds and still resolves for one more period after, so a page shown
//! just before a rotation keeps working.
//!
//! A handle is `th_` + base64url of the first 16 bytes of HMAC-SHA256(key, period number ‖ tenant
//! id), the key derived from the KEK: every node computes the same handles, nothing is stored, and
//! without the key a handle can be neither forged nor linked to another period's handle.

use crate::kek::Kek;
use crate::snapshot::Snapshot;
use portico_model::{Tenant, TenantId};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Handles of every tenant for the current and the previous period, rebuilt when the period or
/// the configuration changes.
struct HandleMap {
    period_no: i64,
    config_version: i64,
    to_tenant: HashMap<String, TenantId>,
}

pub struct TenantHandles {
    period: i64,
    cache: RwLock<Option<Arc<HandleMap>>>,
}

impl TenantHandles {
    /// `period`: seconds between rotations (at least 60).
    pub fn new(period: i64) -> Self {
        Self {
            period: period.max(60),
            cache: RwLock::new(None),
        }
    }

    fn compute(kek: &Kek, tenant: &TenantId, period_no: i64) -> String {
        let mut data = period_no.to_be_bytes().to_vec();
        data.extend_from_slice(tenant.as_str().as_bytes());
        format!("th_{}", crate::random::b64url(&kek.handle_tag(&data).as_ref()[..16]))
    }

    /// The tenant's current handle.
    pub fn handle(&self, kek: &Kek, tenant: &TenantId, now: i64) -> String {
        Self::compute(kek, tenant, now.div_euclid(self.period))
    }

    /// The tenant a handle names, if it was minted in this period or the one before.
    pub fn resolve(&self, kek: &Kek, config: &Snapshot, handle: &str, now: i64) -> Option<TenantId> {
        if !handle.starts_with("th_") {
            return None;
        }
        let period_no = now.div_euclid(self.period);
        let cached = self.cache.read().expect("handle cache").clone();
        let map = match cached {
            Some(m) if m.period_no == period_no && m.config_version == config.version => m,
            _ => {
                let mut to_tenant = HashMap::with_capacity(config.tenants.len() * 2);
                for t in &config.tenants {
                    for n in [period_no - 1, period_no] {
                        to_tenant.insert(Self::compute(kek, &t.id, n), t.id.clone());
                    }
                }
                let m = Arc::new(HandleMap {
                    period_no,
                    config_version: config.version,
                    to_tenant,
                });
                *self.cache.write().expect("handle cache") = Some(m.clone());
                m
            }
        };
        map.to_tenant.get(handle).cloned()
    }
}

/// A tenant named by a reference from outside: its opaque id, its slug, or a live handle.
pub fn find<'c>(p: &crate::Provider, config: &'c Snapshot, reference: &str, now: i64) -> Option<&'c Tenant> {
    match p.tenant_handles.resolve(&p.kek, config, reference, now) {
        Some(id) => config.tenant(&id),
        None => config.tenant_by_ref(reference),
    }
}

/// One choice on the tenant picker: a handle (never the tenant's id) and the name shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PickerEntry {
    pub handle: String,
    pub name: String,
    /// The tenant this user entered last in this product: listed first and focused.
    pub last_used: bool,
}

/// The tenants `user` may enter in `product`, for the picker: the last one used first, then by name.
pub async fn picker_entries(
    p: &crate::Provider,
    user: &portico_model::UserId,
    product: &portico_model::Product,
    now: i64,
) -> Result<Vec<PickerEntry>, portico_store::StoreError> {
    let config = p.config();
    let grants = p.store.grants_for(&portico_model::Grantee::User(user.clone()), &product.slug).await?;
    let last = p.store.last_tenant(user, product.slug.as_str()).await?;
    let mut entries: Vec<PickerEntry> = portico_model::enterable_tenants(&grants, product, &config.tenants, now)
        .into_iter()
        .map(|t| PickerEntry {
            handle: p.tenant_handles.handle(&p.kek, &t.id, now),
            name: t.name.clone(),
            last_used: last.as_deref() == Some(t.id.as_str()),
        })
        .collect();
    // Stable: names stay in order behind the last-used one.
    entries.sort_by_key(|e| !e.last_used);
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_store::ConfigDocs;

    fn snapshot() -> Snapshot {
        Snapshot::build(
            ConfigDocs {
                version: 1,
                tenants: vec![Tenant {
                    id: TenantId::new("ten_a"),
                    slug: "acme".into(),
                    name: "Acme".into(),
                    domains: vec![],
                }],
                ..Default::default()
            },
            "https://id.example.test",
        )
    }

    #[test]
    fn a_handle_resolves_for_its_period_and_one_more_then_never() {
        let kek = Kek::from_bytes(&[7; 32]);
        let h = TenantHandles::new(1800);
        let config = snapshot();
        let id = TenantId::new("ten_a");
        let minted = h.handle(&kek, &id, 1800 * 10 + 1799);
        assert!(minted.starts_with("th_") && !minted.contains("ten_a"));
        assert_eq!(h.resolve(&kek, &config, &minted, 1800 * 10), Some(id.clone()));
        assert_eq!(h.resolve(&kek, &config, &minted, 1800 * 11 + 1799), Some(id.clone()), "grace period");
        assert_eq!(h.resolve(&kek, &config, &minted, 1800 * 12), None, "expired after the grace period");
        assert_eq!(h.resolve(&kek, &config, &minted, 1800 * 10 - 1), None, "not valid before its period");
        assert_ne!(h.handle(&kek, &id, 1800 * 11), minted, "rotates");
    }

    #[test]
    fn another_key_makes_other_handles_and_guesses_resolve_to_nothing() {
        let config = snapshot();
        let h = TenantHandles::new(1800);
        let minted = h.handle(&Kek::from_bytes(&[7; 32]), &TenantId::new("ten_a"), 0);
        assert_eq!(h.resolve(&Kek::from_bytes(&[8; 32]), &config, &minted, 0), None);
        for guess in ["th_", "ten_a", "acme", "th_AAAAAAAAAAAAAAAAAAAAAA"] {
            assert_eq!(h.resolve(&Kek::from_bytes(&[7; 32]), &config, guess, 0), None, "{guess}");
        }
    }
}
