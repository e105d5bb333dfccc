//! Who may get which token. Each invariant of DESIGN.md lives in exactly one function here, and
//! every grant path calls it: `resolve_audience` (one product per token), `require_active_grant`
//! (no grant, no token) and `claims_for` (only that product's roles, at most one tenant).

use crate::claims::AccessClaims;
use crate::concepts::*;
use crate::ids::*;
use std::collections::BTreeSet;

/// Why a policy check refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// RFC 8707 `invalid_target`: the resource is unknown or not allowed for this client.
    #[error("the requested resource is not a product this client may ask tokens for")]
    InvalidTarget,
    /// Invariant 3: no active grant for (user, product, tenant).
    #[error("no active grant for this product and tenant")]
    NoGrant,
    /// The user is disabled.
    #[error("the user is not active")]
    UserInactive,
}

/// Picks the one product a token will be for (RFC 8707 `resource`).
///
/// Without `resource` it is the client's own product. With it, the audience must be the client's
/// own product or one listed in the client's `resources`.
pub fn resolve_audience<'p>(
    client: &Client,
    resource: Option<&str>,
    product_by_audience: impl Fn(&str) -> Option<&'p Product>,
    product_by_slug: impl Fn(&ProductSlug) -> Option<&'p Product>,
) -> Result<&'p Product, PolicyError> {
    match resource {
        None => product_by_slug(&client.product).ok_or(PolicyError::InvalidTarget),
        Some(aud) => {
            let product = product_by_audience(aud).ok_or(PolicyError::InvalidTarget)?;
            if product.slug == client.product || client.resources.contains(&product.slug) {
                Ok(product)
            } else {
                Err(PolicyError::InvalidTarget)
            }
        }
    }
}

/// The grant that lets `user` hold tokens for `product` in `tenant`, or `NoGrant`.
///
/// A tenant-aware product needs a tenant; a grant for one tenant covers only that tenant, an
/// all-tenants grant covers any. A revoked or expired grant covers nothing.
pub fn require_active_grant<'g>(grants: &'g [Grant], product: &Product, tenant: Option<&TenantId>, now: i64) -> Result<&'g Grant, PolicyError> {
    if product.tenant_aware != tenant.is_some() {
        return Err(PolicyError::NoGrant);
    }
    // A grant naming the tenant itself wins over an all-tenants grant: its roles are the specific ones.
    let mut candidates = grants
        .iter()
        .filter(|g| g.product == product.slug && g.is_active_at(now) && g.scope.covers(tenant));
    let first = candidates.next().ok_or(PolicyError::NoGrant)?;
    Ok(candidates
        .chain(std::iter::once(first))
        .find(|g| matches!(g.scope, GrantScope::One(_) | GrantScope::NoTenant))
        .unwrap_or(first))
}

/// The tenants a user may enter in `product`: every tenant of an all-tenants grant, else the
/// tenants named by active grants. Sorted by name.
pub fn enterable_tenants<'t>(grants: &[Grant], product: &Product, tenants: &'t [Tenant], now: i64) -> Vec<&'t Tenant> {
    let active: Vec<&Grant> = grants.iter().filter(|g| g.product == product.slug && g.is_active_at(now)).collect();
    let mut out: Vec<&Tenant> = tenants.iter().filter(|t| active.iter().any(|g| g.scope.covers(Some(&t.id)))).collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// What a token is about: who, through which client, for which session.
#[derive(Clone, Debug)]
pub struct TokenContext<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub client_id: &'a ClientId,
    pub scope: &'a str,
    pub now: i64,
    pub jti: String,
    pub sid: Option<&'a Sid>,
    pub auth_time: Option<i64>,
    pub acr: Option<&'a str>,
    pub amr: Option<&'a [String]>,
    /// The acting client, for a token made by token exchange.
    pub act: Option<crate::claims::Actor>,
    /// The DPoP key the token is bound to (its JWK thumbprint), if any.
    pub jkt: Option<&'a str>,
}

/// Builds access-token claims: the only way to make them.
///
/// The audience is `product`'s; roles are the grant's roles that `product` defines (a role name
/// the product does not define carries nothing); permissions are the union of those roles'
/// permissions; the tenant is at most one.
pub fn claims_for(ctx: &TokenContext<'_>, product: &Product, tenant: Option<&Tenant>, grant: Option<&Grant>) -> AccessClaims {
    let mut roles = BTreeSet::new();
    let mut permissions = BTreeSet::new();
    if let Some(grant) = grant.filter(|g| g.product == product.slug) {
        for role in &grant.roles {
            if let Some(perms) = product.roles.get(role) {
                roles.insert(role.clone());
                permissions.extend(perms.iter().cloned());
            }
        }
    }
    AccessClaims {
        iss: ctx.issuer.to_owned(),
        sub: ctx.subject.to_owned(),
        aud: product.audience.as_str().to_owned(),
        client_id: ctx.client_id.as_str().to_owned(),
        scope: ctx.scope.to_owned(),
        iat: ctx.now,
        exp: ctx.now + product.access_token_ttl,
        nbf: None,
        jti: ctx.jti.clone(),
        sid: ctx.sid.map(|s| s.as_str().to_owned()),
        auth_time: ctx.auth_time,
        acr: ctx.acr.map(str::to_owned),
        amr: ctx.amr.map(<[String]>::to_vec),
        org_id: tenant.map(|t| t.id.as_str().to_owned()),
        org_name: tenant.map(|t| t.name.clone()),
        all_tenants: (tenant.is_some() && grant.is_some_and(|g| g.scope == GrantScope::AllTenants)).then_some(true),
        roles: roles.into_iter().collect(),
        permissions: permissions.into_iter().collect(),
        act: ctx.act.clone(),
        cnf: ctx.jkt.map(|jkt| portico_claims::Confirmation { jkt: jkt.to_owned() }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A product with `viewer` and `editor` roles (also the gate's tests' fixture).
    pub(crate) fn product(slug: &str, tenant_aware: bool) -> Product {
        let mut roles = BTreeMap::new();
        roles.insert("viewer".into(), vec![format!("read:{slug}")]);
        roles.insert("editor".into(), vec![format!("read:{slug}"), format!("write:{slug}")]);
        Product {
            slug: ProductSlug::new(slug),
            name: slug.into(),
            audience: Audience::new(format!("https://{slug}.example.test")),
            access_token_ttl: 600,
            mfa: MfaPolicy::Optional,
            mfa_enrolment: Default::default(),
            single_session: false,
            tenant_aware,
            signup: false,
            handoff_to: vec![],
            exchange_to: vec![],
            session_idle: None,
            session_absolute: None,
            refresh_reuse_grace: 0,
            roles,
        }
    }

    fn grant(product: &str, scope: GrantScope, roles: &[&str]) -> Grant {
        Grant {
            grantee: Grantee::User(UserId::new("usr_1")),
            product: ProductSlug::new(product),
            scope,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            status: GrantStatus::Active,
            granted_by: "test".into(),
            granted_at: 0,
            expires_at: None,
        }
    }

    /// A confidential, first-party client of `product` (also the gate's tests' fixture).
    pub(crate) fn client(product: &str, resources: &[&str]) -> Client {
        Client {
            id: ClientId::new(format!("{product}-web")),
            product: ProductSlug::new(product),
            kind: ClientKind::Confidential,
            name: String::new(),
            auth_method: AuthMethod::ClientSecretBasic,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            web_origins: vec![],
            grant_types: vec![GrantType::AuthorizationCode],
            resources: resources.iter().map(|r| ProductSlug::new(*r)).collect(),
            backchannel_logout_uri: None,
            first_party: true,
            signing_alg: SigningAlg::EdDSA,
            application_type: crate::ApplicationType::Web,
            require_pushed_authorization_requests: false,
            keys: None,
            dpop_bound_access_tokens: false,
            handoff_uri: None,
            domain_templates: Default::default(),
            initiate_login_uri: None,
        }
    }

    #[test]
    fn audience_defaults_to_own_product_and_refuses_unlisted_ones() {
        let products = [product("crm", false), product("reports", false), product("billing", false)];
        let by_aud = |a: &str| products.iter().find(|p| p.audience.as_str() == a);
        let by_slug = |s: &ProductSlug| products.iter().find(|p| &p.slug == s);
        let c = client("crm", &["reports"]);
        assert_eq!(resolve_audience(&c, None, by_aud, by_slug).unwrap().slug.as_str(), "crm");
        let reports = resolve_audience(&c, Some("https://reports.example.test"), by_aud, by_slug);
        assert_eq!(reports.unwrap().slug.as_str(), "reports");
        for refused in ["https://billing.example.test", "https://crm.example.test/", "*", ""] {
            assert_eq!(
                resolve_audience(&c, Some(refused), by_aud, by_slug),
                Err(PolicyError::InvalidTarget),
                "{refused}"
            );
        }
    }

    #[test]
    fn no_grant_no_token_and_expired_or_revoked_grants_count_for_nothing() {
        let crm = product("crm", false);
        assert_eq!(require_active_grant(&[], &crm, None, 10), Err(PolicyError::NoGrant));
        let other = [grant("reports", GrantScope::NoTenant, &["viewer"])];
        assert_eq!(require_active_grant(&other, &crm, None, 10), Err(PolicyError::NoGrant));
        let mut expired = grant("crm", GrantScope::NoTenant, &["viewer"]);
        expired.expires_at = Some(10);
        assert!(require_active_grant(std::slice::from_ref(&expired), &crm, None, 9).is_ok());
        assert_eq!(require_active_grant(&[expired], &crm, None, 10), Err(PolicyError::NoGrant));
        let mut revoked = grant("crm", GrantScope::NoTenant, &["viewer"]);
        revoked.status = GrantStatus::Revoked;
        assert_eq!(require_active_grant(&[revoked], &crm, None, 10), Err(PolicyError::NoGrant));
    }

    #[test]
    fn tenant_grants_cover_only_their_tenant() {
        let crm = product("crm", true);
        let acme = TenantId::new("ten_a");
        let globex = TenantId::new("ten_g");
        let grants = [grant("crm", GrantScope::One(acme.clone()), &["viewer"])];
        assert!(require_active_grant(&grants, &crm, Some(&acme), 0).is_ok());
        assert_eq!(require_active_grant(&grants, &crm, Some(&globex), 0), Err(PolicyError::NoGrant));
        assert_eq!(require_active_grant(&grants, &crm, None, 0), Err(PolicyError::NoGrant));
        let all = [grant("crm", GrantScope::AllTenants, &["viewer"])];
        assert!(require_active_grant(&all, &crm, Some(&globex), 0).is_ok());
    }

    #[test]
    fn claims_carry_only_the_products_own_roles() {
        let crm = product("crm", false);
        let g = grant("crm", GrantScope::NoTenant, &["editor", "admin", "reports:viewer"]);
        let ctx = TokenContext {
            issuer: "https://id.example.test",
            subject: "usr_1",
            client_id: &ClientId::new("crm-web"),
            scope: "openid",
            now: 100,
            jti: "j".into(),
            sid: None,
            auth_time: None,
            acr: None,
            amr: None,
            act: None,
            jkt: None,
        };
        let claims = claims_for(&ctx, &crm, None, Some(&g));
        assert_eq!(claims.aud, "https://crm.example.test");
        assert_eq!(claims.roles, vec!["editor"]);
        assert_eq!(claims.permissions, vec!["read:crm", "write:crm"]);
        assert_eq!(claims.exp, 700);
        let foreign = grant("reports", GrantScope::NoTenant, &["editor"]);
        let claims = claims_for(&ctx, &crm, None, Some(&foreign));
        assert!(claims.roles.is_empty() && claims.permissions.is_empty());
    }
}
