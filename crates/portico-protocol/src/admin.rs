//! Grant administration and deprovisioning, shared by the admin API and the CLI: grants are the
//! only door (invariant 3), and a change takes effect at once (invariant 4). Every change is an
//! audit event naming who made it.
//!
//! The admin API authenticates callers with access tokens for Portico's built-in `portico-admin`
//! product (audience `<issuer>/api`), checked like any product checks its tokens: signature,
//! audience, liveness at the source, and the permission the operation needs.

use crate::provider::Provider;
use crate::snapshot::Snapshot;
use crate::verify::{decode_access_token, live};
use portico_model::{Grant, GrantScope, GrantStatus, Grantee, ProductSlug, User, UserId, UserStatus, admin, spec};
use portico_store::{AuditEvent, Store, StoreError};
use serde::{Deserialize, Serialize};

/// Why an admin operation was refused. The server maps each to an RFC 9457 problem.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// 401: no bearer token, or one that is not a live `portico-admin` token.
    #[error("an access token for the admin API is required")]
    Unauthenticated,
    /// 403: the token lacks the permission.
    #[error("the token lacks the permission {0}")]
    Forbidden(&'static str),
    /// 403: a grant of `portico-admin` is changed by a caller who is not an admin.
    #[error("only a holder of the admin role may grant, change or revoke roles of portico-admin")]
    AdminOnly,
    /// 404
    #[error("{0}")]
    NotFound(String),
    /// 422: a field is invalid (field, message).
    #[error("{0}: {1}")]
    Invalid(&'static str, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who called, and from where: the audit log's actor and address, and what it may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub actor: String,
    pub ip: Option<String>,
    pub authority: Authority,
}

/// What a caller may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authority {
    /// The `portico` command line on the server's machine: whoever runs it holds the store.
    Cli,
    /// An admin API token: the `portico-admin` roles its live grant gives it now.
    Roles(Vec<String>),
}

impl Caller {
    /// The `portico` command line on the server's machine.
    pub fn cli() -> Self {
        Self {
            actor: "cli".into(),
            ip: None,
            authority: Authority::Cli,
        }
    }

    /// Whether the caller holds `admin`: only such a caller hands out, changes or takes away a
    /// role of `portico-admin`, so no caller gives anyone (itself included) more than it holds.
    fn is_admin(&self) -> bool {
        match &self.authority {
            Authority::Cli => true,
            Authority::Roles(r) => r.iter().any(|x| x == "admin"),
        }
    }

    fn event(&self, kind: &str, now: i64) -> AuditEvent {
        AuditEvent::new(now, kind, self.actor.clone()).ip(self.ip.clone())
    }
}

/// Checks the bearer token for the admin API and that it carries `permission`: the permissions
/// its live grant gives it now, not those it was minted with (invariant 4).
/// A DPoP-bound token (RFC 9449 §7) only with the `DPoP` scheme and a proof of its key for this
/// request (`at`); never as a bearer token.
pub async fn authenticate(
    p: &Provider,
    bearer: Option<&str>,
    at: &crate::dpop::AtResource,
    permission: &'static str,
    ip: Option<String>,
    now: i64,
) -> Result<Caller, AdminError> {
    let token = bearer.ok_or(AdminError::Unauthenticated)?;
    let claims = decode_access_token(p, token, now).ok_or(AdminError::Unauthenticated)?;
    let audience = admin::product(&p.issuer).audience;
    if claims.aud != audience.as_str() {
        return Err(AdminError::Unauthenticated);
    }
    match crate::dpop::bound_request(p, at, token, claims.cnf.as_ref(), now).await {
        Ok(()) => {}
        Err(e) if e.code == crate::ErrorCode::ServerError => return Err(AdminError::Store(portico_store::StoreError::Corrupt(e.detail))),
        Err(e) => {
            tracing::info!(detail = %e.detail, "admin API: a DPoP-bound token without its proof");
            return Err(AdminError::Unauthenticated);
        }
    }
    let live = live(p, &claims, now).await?.ok_or(AdminError::Unauthenticated)?;
    if !live.permissions.iter().any(|x| x == permission) {
        return Err(AdminError::Forbidden(permission));
    }
    Ok(Caller {
        actor: portico_model::Subject::of_claim(&claims.sub).actor(),
        ip,
        authority: Authority::Roles(live.roles),
    })
}

/// Grants of the built-in `portico-admin` need an admin (DESIGN.md): a `grant-manager` cannot make
/// itself, or anyone, an admin, nor take an admin's grant away.
fn may_touch(by: &Caller, product: &ProductSlug) -> Result<(), AdminError> {
    if product.as_str() == admin::SLUG && !by.is_admin() {
        return Err(AdminError::AdminOnly);
    }
    Ok(())
}

/// A grant as the API shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct GrantView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub product: String,
    /// The tenant's slug, `*` for every tenant, absent for a product without tenants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub status: &'static str,
    pub granted_by: String,
    pub granted_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

fn view(config: &Snapshot, g: &Grant) -> GrantView {
    let (user, client) = match &g.grantee {
        Grantee::User(u) => (Some(u.as_str().to_owned()), None),
        Grantee::Client(c) => (None, Some(c.as_str().to_owned())),
    };
    GrantView {
        user,
        client,
        product: g.product.as_str().to_owned(),
        tenant: match &g.scope {
            GrantScope::NoTenant => None,
            GrantScope::AllTenants => Some("*".to_owned()),
            GrantScope::One(id) => Some(config.tenant(id).map_or_else(|| id.as_str().to_owned(), |t| t.slug.clone())),
        },
        roles: g.roles.clone(),
        status: g.status.as_str(),
        granted_by: g.granted_by.clone(),
        granted_at: g.granted_at,
        expires_at: g.expires_at,
    }
}

/// Which grant: its holder, product and tenant. The holder is a user (id or email) or a client.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantKey {
    pub user: Option<String>,
    pub client: Option<String>,
    pub product: String,
    /// Tenant slug or id, or `*` for every tenant; absent for a product without tenants.
    pub tenant: Option<String>,
}

/// A grant to make (or replace).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    pub user: Option<String>,
    pub client: Option<String>,
    pub product: String,
    pub tenant: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Unix seconds after which the grant covers nothing.
    pub expires_at: Option<i64>,
}

impl NewGrant {
    pub fn key(&self) -> GrantKey {
        GrantKey {
            user: self.user.clone(),
            client: self.client.clone(),
            product: self.product.clone(),
            tenant: self.tenant.clone(),
        }
    }
}

/// A user named by id (`usr_…`) or email.
pub async fn find_user(store: &Store, reference: &str) -> Result<User, AdminError> {
    let found = if reference.starts_with(portico_model::USER_ID_PREFIX) {
        store.user_by_id(&UserId::new(reference)).await?
    } else {
        store.user_by_email(reference).await?.map(|(u, _)| u)
    };
    found.ok_or_else(|| AdminError::NotFound(format!("no user {reference:?}")))
}

fn invalid(e: spec::FieldError) -> AdminError {
    AdminError::Invalid(e.field, e.message)
}

/// Resolves and checks a grant key against the configuration.
async fn resolve(store: &Store, config: &Snapshot, key: &GrantKey) -> Result<(Grantee, ProductSlug, GrantScope), AdminError> {
    let product = config
        .product(&ProductSlug::new(&key.product))
        .ok_or_else(|| AdminError::Invalid("product", format!("no product {:?}", key.product)))?;
    let grantee = match (&key.user, &key.client) {
        (Some(u), None) => Grantee::User(find_user(store, u).await?.id),
        (None, Some(c)) => Grantee::Client(
            config
                .client(c)
                .map(|e| e.client.id.clone())
                .ok_or_else(|| AdminError::NotFound(format!("no client {c:?}")))?,
        ),
        _ => return Err(AdminError::Invalid("user", "name exactly one of user or client".into())),
    };
    spec::grant_tenant(product, key.tenant.as_deref(), |t| config.tenant_by_ref(t).is_some()).map_err(invalid)?;
    let scope = match key.tenant.as_deref() {
        None => GrantScope::NoTenant,
        Some("*") => GrantScope::AllTenants,
        Some(t) => GrantScope::One(config.tenant_by_ref(t).map(|x| x.id.clone()).expect("checked above")),
    };
    Ok((grantee, product.slug.clone(), scope))
}

/// Every grant, or those of one user, as the API shows them.
pub async fn list_grants(store: &Store, config: &Snapshot, user: Option<&str>) -> Result<Vec<GrantView>, AdminError> {
    let grants = match user {
        Some(u) => store.grants_of(&Grantee::User(find_user(store, u).await?.id)).await?,
        None => store.list_grants().await?,
    };
    Ok(grants.iter().map(|g| view(config, g)).collect())
}

/// Grants roles (replacing the grant's roles and expiry if it exists, and making it active).
pub async fn add_grant(store: &Store, config: &Snapshot, new: &NewGrant, by: &Caller, now: i64) -> Result<GrantView, AdminError> {
    let (grantee, product, scope) = resolve(store, config, &new.key()).await?;
    may_touch(by, &product)?;
    spec::grant_roles(config.product(&product).expect("resolved"), &new.roles).map_err(invalid)?;
    if new.expires_at.is_some_and(|e| e <= now) {
        return Err(AdminError::Invalid("expires_at", "must be in the future".into()));
    }
    let g = Grant {
        grantee,
        product,
        scope,
        roles: new.roles.clone(),
        status: GrantStatus::Active,
        granted_by: by.actor.clone(),
        granted_at: now,
        expires_at: new.expires_at,
    };
    let event = by
        .event("grant.added", now)
        .product(g.product.as_str())
        .tenant((!g.scope.key().is_empty()).then(|| g.scope.key().to_owned()))
        .data(serde_json::json!({"grantee": g.grantee.key(), "roles": g.roles, "expires_at": g.expires_at}));
    let mut tx = store.write().await?;
    tx.put_grant(&g).await?;
    tx.audit(event);
    tx.commit().await?;
    Ok(view(config, &g))
}

/// Revokes a grant: the families it let be issued are revoked and their product sessions end, in
/// one transaction that also queues their back-channel logout notices. `NotFound` when there is no
/// active grant.
pub async fn revoke_grant(store: &Store, config: &Snapshot, key: &GrantKey, by: &Caller, now: i64) -> Result<(), AdminError> {
    let (grantee, product, scope) = resolve(store, config, key).await?;
    may_touch(by, &product)?;
    let event = by
        .event("grant.revoked", now)
        .product(product.as_str())
        .tenant((!scope.key().is_empty()).then(|| scope.key().to_owned()))
        .data(serde_json::json!({"grantee": grantee.key()}));
    let notify = |c: &str| config.notifies_logout(c);
    let mut tx = store.write().await?;
    if !tx.revoke_grant(&grantee, &product, &scope, &by.actor, now, &notify).await? {
        return Err(AdminError::NotFound("no active grant for that holder, product and tenant".into()));
    }
    tx.audit(event);
    tx.commit().await?;
    Ok(())
}

/// Disables (deprovisions) or re-enables a user. Disabling ends every session (queuing their
/// back-channel logout notices) and revokes every token family in the same transaction; login is
/// refused from then on. Returns the user and whether the status changed (an unchanged status is
/// not audited).
pub async fn set_user_status(store: &Store, config: &Snapshot, reference: &str, status: UserStatus, by: &Caller, now: i64) -> Result<(User, bool), AdminError> {
    let user = find_user(store, reference).await?;
    let kind = if status == UserStatus::Disabled { "user.disabled" } else { "user.enabled" };
    let event = by.event(kind, now).data(serde_json::json!({"user": user.id.as_str()}));
    let notify = |c: &str| config.notifies_logout(c);
    let mut tx = store.write().await?;
    let changed = tx.set_user_status(&user.id, status, now, &notify).await?;
    if changed {
        tx.audit(event);
    }
    tx.commit().await?;
    Ok((User { status, ..user }, changed))
}

/// A user's live sessions on every device, each with the product sessions opened in it.
pub async fn list_sessions(store: &Store, reference: &str, now: i64) -> Result<Vec<portico_store::SessionInfo>, AdminError> {
    let user = find_user(store, reference).await?;
    Ok(store.sessions_of(&user.id, now).await?)
}

/// Ends one of a user's sessions (`session`), or all of them: their product sessions end, their
/// refresh tokens die and the products are told. Returns how many ended; `NotFound` when the named
/// session is not a live session of that user.
pub async fn end_sessions(p: &Provider, reference: &str, session: Option<&str>, by: &Caller, now: i64) -> Result<usize, AdminError> {
    let user = find_user(&p.store, reference).await?;
    match session {
        None => Ok(crate::logout::end_all_sessions(p, &user.id, &by.actor, "admin", by.ip.clone(), now).await?),
        Some(id) => {
            if crate::logout::end_session(p, id, &user.id, &by.actor, "admin", by.ip.clone(), now).await? {
                Ok(1)
            } else {
                Err(AdminError::NotFound(format!("no live session {id:?} of that user")))
            }
        }
    }
}

/// The shortest password an operator may set by skipping the policy.
pub const MIN_BYPASS_LENGTH: usize = 8;

/// A new user's password, checked by the deployment's policy — or not, when the operator says so.
pub enum NewPassword<'a> {
    /// Checked by the policy sign-up, reset and change use ([`crate::password_policy`]).
    Checked(String, &'a crate::password_policy::PasswordPolicy),
    /// The operator chose to skip the policy; the audit event says so.
    OperatorBypass(String),
}

/// The floor an operator's password keeps when the policy is skipped by name (`user add
/// --skip-password-policy`, and every password in a suite file, which is the operator's): no empty
/// or few-character password becomes a way in.
pub fn bypass_floor(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_BYPASS_LENGTH {
        return Err(format!("must be at least {MIN_BYPASS_LENGTH} characters, even when the policy is skipped"));
    }
    Ok(())
}

/// Adds a user (unverified email, active), audited as `by`'s. The one door for a user made by an
/// operator; `password` is checked by the policy unless the operator bypasses it by name.
pub async fn add_user(store: &Store, email: &str, name: &str, password: Option<NewPassword<'_>>, by: &Caller, now: i64) -> Result<User, AdminError> {
    if !email.contains('@') || email.len() > 254 {
        return Err(AdminError::Invalid("email", format!("{email:?} is not an email address")));
    }
    let (plain, bypass) = match password {
        None => (None, false),
        Some(NewPassword::Checked(pw, policy)) => {
            policy
                .check_async(&pw, &[email, name])
                .await
                .map_err(|r| AdminError::Invalid("password", r.to_string()))?;
            (Some(pw), false)
        }
        Some(NewPassword::OperatorBypass(pw)) => {
            bypass_floor(&pw).map_err(|m| AdminError::Invalid("password", m))?;
            (Some(pw), true)
        }
    };
    let hash = match plain {
        Some(pw) => Some(crate::password::hash_async(pw).await),
        None => None,
    };
    let user = User {
        id: UserId::new(crate::random::id(portico_model::USER_ID_PREFIX)),
        email: email.to_owned(),
        email_verified: false,
        name: name.to_owned(),
        status: UserStatus::Active,
        created_at: now,
    };
    let event = by
        .event("user.created", now)
        .data(serde_json::json!({"user": user.id.as_str(), "password_policy_bypassed": bypass}));
    let mut tx = store.write().await?;
    tx.insert_user(&user, hash.as_deref(), &[]).await.map_err(|e| match e {
        StoreError::Conflict(_) => AdminError::Invalid("email", format!("a user with email {email} already exists")),
        e => e.into(),
    })?;
    tx.audit(event);
    tx.commit().await?;
    Ok(user)
}
