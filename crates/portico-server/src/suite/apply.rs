//! Applying a validated suite: the store is made to match the file in one transaction, and only
//! where the file differs from it; each change is reported and audited.

use super::{GrantTarget, Suite, SuiteGrant};
use portico_model::*;
use portico_protocol::kek::Kek;
use portico_protocol::{password, random};
use portico_store::{AuditEvent, ConfigChange, ConfigDocs, Store};
use std::collections::HashMap;

/// What applying changes: the store's changes, one line each for the operator, and their audit.
struct Plan<'a> {
    actor: &'a str,
    now: i64,
    changes: Vec<ConfigChange>,
    report: Vec<String>,
    audit: Vec<AuditEvent>,
}

impl Plan<'_> {
    fn note(&mut self, what: String, kind: &str, change: ConfigChange) {
        self.audit
            .push(AuditEvent::new(self.now, kind, self.actor).data(serde_json::json!({"change": what})));
        self.report.push(what);
        self.changes.push(change);
    }
}

fn verb(found: bool) -> &'static str {
    if found { "updated" } else { "created" }
}

impl Suite {
    /// Makes the store match the file; returns one line per change.
    pub async fn apply(&self, store: &Store, kek: &Kek, actor: &str, now: i64) -> anyhow::Result<Vec<String>> {
        let current = store.load_config().await?;
        let mut plan = Plan {
            actor,
            now,
            changes: Vec::new(),
            report: Vec::new(),
            audit: Vec::new(),
        };
        self.plan_products(&current, &mut plan);
        self.plan_clients(&current, kek, &mut plan);
        let tenant_ids = self.plan_tenants(store, &current, &mut plan).await?;
        let user_ids = self.plan_users(store, &mut plan).await?;
        for g in &self.grants {
            plan_grant(store, g, &tenant_ids, &user_ids, &mut plan).await?;
        }
        if !plan.changes.is_empty() {
            let mut tx = store.write().await?;
            tx.apply_config(&plan.changes, now).await?;
            for event in plan.audit {
                tx.audit(event);
            }
            tx.commit().await?;
        }
        Ok(plan.report)
    }

    fn plan_products(&self, current: &ConfigDocs, plan: &mut Plan<'_>) {
        for p in &self.products {
            match current.products.iter().find(|c| c.slug == p.slug) {
                Some(c) if c == p => {}
                found => plan.note(
                    format!("{} product {}", verb(found.is_some()), p.slug),
                    "suite.product_changed",
                    ConfigChange::UpsertProduct(p.clone()),
                ),
            }
        }
    }

    fn plan_clients(&self, current: &ConfigDocs, kek: &Kek, plan: &mut Plan<'_>) {
        for (c, secret) in &self.clients {
            // The same secret, whichever way it was stored (a hash from before per-purpose keys
            // too): unchanged, so re-applying a file reports nothing.
            let same_secret = |stored: &Option<String>| match (secret, stored) {
                (None, None) => true,
                (Some(s), Some(h)) => kek.verify_client_secret(s.expose(), h),
                _ => false,
            };
            match current.clients.iter().find(|(x, _)| x.id == c.id) {
                Some((x, h)) if x == c && same_secret(h) => {}
                found => {
                    let new_hash = secret.as_ref().map(|s| kek.hash_client_secret(s.expose()));
                    plan.note(
                        format!("{} client {}", verb(found.is_some()), c.id),
                        "suite.client_changed",
                        ConfigChange::UpsertClient(c.clone(), new_hash),
                    );
                }
            }
        }
    }

    /// Tenants keep their ids; a new one gets one. Returns every tenant's id by slug.
    async fn plan_tenants(&self, store: &Store, current: &ConfigDocs, plan: &mut Plan<'_>) -> anyhow::Result<HashMap<String, String>> {
        let mut tenant_ids: HashMap<String, String> = store.tenant_ids_by_slug().await?.into_iter().collect();
        for (slug, name, domains) in &self.tenants {
            let id = tenant_ids.entry(slug.clone()).or_insert_with(|| random::id("ten_")).clone();
            let t = Tenant {
                id: TenantId::new(id),
                slug: slug.clone(),
                name: name.clone(),
                domains: domains.clone(),
            };
            match current.tenants.iter().find(|x| x.slug == *slug) {
                Some(x) if *x == t => {}
                found => plan.note(
                    format!("{} tenant {}", verb(found.is_some()), slug),
                    "suite.tenant_changed",
                    ConfigChange::UpsertTenant(t),
                ),
            }
        }
        Ok(tenant_ids)
    }

    /// Users are created, or updated where their name or password differ. Returns the ids of
    /// the file's users by lowercase email.
    async fn plan_users(&self, store: &Store, plan: &mut Plan<'_>) -> anyhow::Result<HashMap<String, UserId>> {
        let mut user_ids: HashMap<String, UserId> = HashMap::new();
        for (email, name, password) in &self.users {
            let hashed = |pw: &Secret| password::hash_async(pw.expose().to_owned());
            match store.user_by_email(email).await? {
                Some((u, hash)) => {
                    let same_pw = match password {
                        None => true,
                        Some(pw) => password::verify(pw.expose().to_owned(), hash).await,
                    };
                    if u.name != *name || !same_pw {
                        let new_hash = match password {
                            Some(pw) if !same_pw => Some(hashed(pw).await),
                            _ => None,
                        };
                        let change = ConfigChange::UpdateUser(u.id.clone(), name.clone(), new_hash);
                        plan.note(format!("updated user {email}"), "suite.user_changed", change);
                    }
                    user_ids.insert(email.to_lowercase(), u.id);
                }
                None => {
                    let u = User {
                        id: UserId::new(random::id(portico_model::USER_ID_PREFIX)),
                        email: email.clone(),
                        email_verified: true,
                        name: name.clone(),
                        status: UserStatus::Active,
                        created_at: plan.now,
                    };
                    let hash = match password {
                        Some(pw) => Some(hashed(pw).await),
                        None => None,
                    };
                    user_ids.insert(email.to_lowercase(), u.id.clone());
                    plan.note(format!("created user {email}"), "suite.user_created", ConfigChange::CreateUser(u, hash));
                }
            }
        }
        Ok(user_ids)
    }
}

/// A grant is put unless an active one with the same scope, roles and expiry exists.
async fn plan_grant(
    store: &Store,
    g: &SuiteGrant,
    tenant_ids: &HashMap<String, String>,
    user_ids: &HashMap<String, UserId>,
    plan: &mut Plan<'_>,
) -> anyhow::Result<()> {
    let grantee = match &g.target {
        GrantTarget::User(email) => match user_ids.get(email) {
            Some(id) => Grantee::User(id.clone()),
            None => match store.user_by_email(email).await? {
                Some((u, _)) => Grantee::User(u.id),
                None => anyhow::bail!("user {email} vanished while applying"),
            },
        },
        GrantTarget::Client(c) => Grantee::Client(ClientId::new(c)),
    };
    let scope = match g.tenant.as_deref() {
        None => GrantScope::NoTenant,
        Some("*") => GrantScope::AllTenants,
        Some(slug) => GrantScope::One(TenantId::new(tenant_ids.get(slug).expect("validated tenant").clone())),
    };
    let existing = store.grants_for(&grantee, &ProductSlug::new(&g.product)).await?;
    let unchanged = existing
        .iter()
        .any(|x| x.scope == scope && x.status == GrantStatus::Active && x.roles == g.roles && x.expires_at == g.expires);
    if unchanged {
        return Ok(());
    }
    let who = match &g.target {
        GrantTarget::User(e) => e.clone(),
        GrantTarget::Client(c) => format!("client {c}"),
    };
    let what = format!(
        "granted {} on {}{} to {who}",
        g.roles.join(","),
        g.product,
        g.tenant.as_deref().map(|t| format!(" (tenant {t})")).unwrap_or_default()
    );
    let grant = Grant {
        grantee,
        product: ProductSlug::new(&g.product),
        scope,
        roles: g.roles.clone(),
        status: GrantStatus::Active,
        granted_by: plan.actor.to_owned(),
        granted_at: plan.now,
        expires_at: g.expires,
    };
    plan.note(what, "grant.added", ConfigChange::PutGrant(grant));
    Ok(())
}
