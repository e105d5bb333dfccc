//! The in-memory copy of the suite's configuration (products, clients, tenants), rebuilt whenever
//! the store's `config_version` moves, so the hot path never reads configuration from the store.

use portico_model::{Client, ClientId, Product, ProductSlug, Tenant, TenantId};
use portico_store::ConfigDocs;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Clone)]
pub struct ClientEntry {
    pub client: Arc<Client>,
    pub secret_hash: Option<String>,
    /// A `private_key_jwt` client's registered JWK Set, read once when the snapshot is built (a
    /// `jwks_uri` is fetched and held by [`crate::client_keys`] instead).
    pub registered_keys: Option<Arc<portico_jose::jwks::KeySet>>,
}

#[derive(Default)]
pub struct Snapshot {
    pub version: i64,
    products: HashMap<ProductSlug, Product>,
    by_audience: HashMap<String, ProductSlug>,
    clients: HashMap<ClientId, ClientEntry>,
    pub tenants: Vec<Tenant>,
    /// Each tenant domain and its tenant (a domain names one tenant: the suite file checks it).
    by_domain: HashMap<String, TenantId>,
}

impl Snapshot {
    /// Builds the snapshot; Portico's own `portico-admin` product (audience `<issuer>/api`) is
    /// always part of it.
    pub fn build(mut docs: ConfigDocs, issuer: &str) -> Self {
        // The built-in product is Portico's own: nothing stored may take its slug or its audience.
        let admin = portico_model::admin::product(issuer);
        docs.products.retain(|p| p.slug != admin.slug && p.audience != admin.audience);
        docs.products.push(admin);
        let by_audience = docs.products.iter().map(|p| (p.audience.as_str().to_owned(), p.slug.clone())).collect();
        Self {
            version: docs.version,
            products: docs.products.into_iter().map(|p| (p.slug.clone(), p)).collect(),
            by_audience,
            clients: docs
                .clients
                .into_iter()
                .map(|(c, secret_hash)| {
                    let registered_keys = match &c.keys {
                        Some(portico_model::ClientKeys::Jwks(set)) => Some(Arc::new(portico_jose::jwks::KeySet::parse(set, &portico_jose::jwks::SUPPORTED).0)),
                        _ => None,
                    };
                    (
                        c.id.clone(),
                        ClientEntry {
                            client: Arc::new(c),
                            secret_hash,
                            registered_keys,
                        },
                    )
                })
                .collect(),
            by_domain: domain_map(&docs.tenants),
            tenants: docs.tenants,
        }
    }

    pub fn client(&self, id: &str) -> Option<&ClientEntry> {
        self.clients.get(&ClientId::new(id))
    }
    /// Whether a client is told of its sessions' end (it has a back-channel logout URI).
    pub fn notifies_logout(&self, client_id: &str) -> bool {
        self.client(client_id).is_some_and(|e| e.client.backchannel_logout_uri.is_some())
    }
    pub fn product(&self, slug: &ProductSlug) -> Option<&Product> {
        self.products.get(slug)
    }
    pub fn product_by_audience(&self, aud: &str) -> Option<&Product> {
        self.by_audience.get(aud).and_then(|s| self.products.get(s))
    }
    pub fn products(&self) -> impl Iterator<Item = &Product> {
        self.products.values()
    }
    pub fn clients(&self) -> impl Iterator<Item = &ClientEntry> {
        self.clients.values()
    }
    pub fn tenant(&self, id: &TenantId) -> Option<&Tenant> {
        self.tenants.iter().find(|t| &t.id == id)
    }
    /// A tenant named by its id or its slug.
    pub fn tenant_by_ref(&self, reference: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| t.id.as_str() == reference || t.slug == reference)
    }
    /// A page a product registers once (`handoff_uri`, `initiate_login_uri`): the suite file allows
    /// one client of a product to; should the store hold more, the lowest client id's, always.
    pub fn page_of(&self, product: &ProductSlug, page: impl Fn(&Client) -> Option<&str>) -> Option<String> {
        self.clients
            .values()
            .filter(|e| &e.client.product == product)
            .filter_map(|e| page(&e.client).map(|u| (e.client.id.as_str(), u)))
            .min()
            .map(|(_, u)| u.to_owned())
    }
    /// The tenant whose domain `presented` carries in the place of `{tenant_domain}` in one of
    /// `templates`, exactly.
    pub fn tenant_through(&self, templates: &[String], presented: &str) -> Option<&Tenant> {
        templates
            .iter()
            .filter_map(|t| portico_model::domains::domain_in(t, presented))
            .find_map(|d| self.by_domain.get(d))
            .and_then(|id| self.tenant(id))
    }
    /// Whether `presented` is one of `client`'s redirect URIs: `Some(None)` when registered as
    /// such, `Some(Some(tenant))` through a `{tenant_domain}` template (it names that tenant).
    pub fn redirect_of(&self, client: &Client, presented: &str) -> Option<Option<&Tenant>> {
        if client.registered_redirect(presented).is_some() {
            return Some(None);
        }
        self.tenant_through(&client.domain_templates.redirect_uris, presented).map(Some)
    }
    /// Whether `presented` is one of `client`'s post-logout redirect URIs.
    pub fn post_logout_redirect_of(&self, client: &Client, presented: &str) -> bool {
        client.registered_post_logout_redirect(presented).is_some()
            || self.tenant_through(&client.domain_templates.post_logout_redirect_uris, presented).is_some()
    }
    /// Whether `origin` is one of `client`'s web origins, as [`Snapshot::redirect_of`] answers.
    pub fn web_origin_of(&self, client: &Client, origin: &str) -> Option<Option<&Tenant>> {
        if client.web_origins.iter().any(|w| w == origin) {
            return Some(None);
        }
        self.tenant_through(&client.domain_templates.web_origins, origin).map(Some)
    }
    /// The longest access-token lifetime of any product.
    pub fn max_access_ttl(&self) -> i64 {
        self.products.values().map(|p| p.access_token_ttl).max().unwrap_or(600)
    }
    /// Resolves a token's product: the audience it names, which the client may ask for.
    pub fn resolve_audience(&self, client: &Client, resource: Option<&str>) -> Result<&Product, portico_model::PolicyError> {
        portico_model::resolve_audience(client, resource, |a| self.product_by_audience(a), |s| self.product(s))
    }
}

/// Each tenant domain and its tenant. The suite file lets a domain name one tenant; should the
/// store hold one named by two (tenants kept from an earlier file), it names none.
fn domain_map(tenants: &[Tenant]) -> HashMap<String, TenantId> {
    let mut map: HashMap<String, Option<TenantId>> = HashMap::new();
    for t in tenants {
        for d in &t.domains {
            map.entry(d.clone())
                .and_modify(|v| {
                    if v.as_ref() != Some(&t.id) {
                        *v = None;
                    }
                })
                .or_insert_with(|| Some(t.id.clone()));
        }
    }
    map.into_iter().filter_map(|(d, t)| t.map(|t| (d, t))).collect()
}
