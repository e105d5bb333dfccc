//! What a user does with their account, and its rules: signing in with a password ([`login`]) and
//! its [`throttle`], the authenticator app and recovery codes ([`totp`]), [`passkey`]s, who may
//! change factors ([`enrolment`]), passwords ([`password`], [`password_policy`], [`reset`]),
//! [`signup`], and the [`mail`] these send. Here too: the account page's facts about the
//! signed-in user ([`overview`]).

pub mod enrolment;
pub mod login;
pub mod mail;
pub mod passkey;
pub mod password;
pub mod password_policy;
pub mod reset;
pub mod signup;
pub mod throttle;
pub mod totp;

use crate::provider::Provider;
use enrolment::FactorChange;
use login::Factors;
use portico_model::{Grantee, User, UserId, domains};
use portico_store::{PasskeyRow, SessionInfo, SsoSession, StoreError};

/// What the account page shows.
#[derive(Debug)]
pub struct Overview {
    pub user: User,
    /// The user's live sessions: this one first, then the others, most recently active first.
    pub sessions: Vec<SessionInfo>,
    pub passkeys: Vec<PasskeyRow>,
    pub factors: Factors,
    /// Whether this session may change the factors ([`enrolment::may_change_factors`]).
    pub change: FactorChange,
    /// Recovery codes left, and when one was last used.
    pub recovery_left: i64,
    pub recovery_last_used: Option<i64>,
}

/// The overview for `session` and its `user` (as the session's lookup read it).
pub async fn overview(p: &Provider, session: &SsoSession, user: User, now: i64) -> Result<Overview, StoreError> {
    let mut sessions = p.store.sessions_of(&user.id, now).await?;
    sessions.sort_by_key(|x| x.id != session.id);
    let passkeys = p.store.passkeys_of(&user.id).await?;
    let factors = Factors {
        totp: crate::totp::enrolled(p, &user.id).await?,
        passkeys: !passkeys.is_empty(),
    };
    let change = enrolment::may_change_factors_given(p, session, factors, now).await?;
    let (recovery_left, recovery_last_used) = crate::totp::recovery_codes_left(p, &user.id).await?;
    Ok(Overview {
        user,
        sessions,
        passkeys,
        factors,
        change,
        recovery_left,
        recovery_last_used,
    })
}

/// A line of the account page's launcher: a product the user may enter (an active grant), in one
/// of its tenants for a product with tenants, and where to go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub product: String,
    /// The tenant's name, for a product with tenants.
    pub tenant: Option<String>,
    /// The tenant's own domains (the permitted-domains list).
    pub domains: Vec<String>,
    /// The product's page that starts a sign-in (OIDC Core §4, with `iss`): one per tenant domain
    /// when the page follows them, else one (with `organization`, a handle, for a tenant).
    pub links: Vec<LaunchLink>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchLink {
    /// The host the link goes to.
    pub host: String,
    pub url: String,
}

/// The launcher: every product the user holds an active grant for (never Portico's own admin
/// product), each tenant the grants let them enter, with the tenant's domains and links to the
/// product's `initiate_login_uri`. Products by name, tenants by name.
pub async fn launcher(p: &Provider, user: &UserId, now: i64) -> Result<Vec<Launch>, StoreError> {
    let grants = p.store.grants_of(&Grantee::User(user.clone())).await?;
    let config = p.config();
    let mut products: Vec<_> = config
        .products()
        .filter(|x| x.slug.as_str() != portico_model::admin::SLUG)
        .filter(|x| grants.iter().any(|g| g.product == x.slug && g.is_active_at(now)))
        .collect();
    products.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::new();
    for product in products {
        let page = config.page_of(&product.slug, |c| c.initiate_login_uri.as_deref());
        let link = |url: String, extra: Option<(&str, String)>| -> Option<LaunchLink> {
            let mut url = url::Url::parse(&url).ok()?;
            url.query_pairs_mut().append_pair("iss", &p.issuer);
            if let Some((k, v)) = extra {
                url.query_pairs_mut().append_pair(k, &v);
            }
            Some(LaunchLink {
                host: url.host_str().unwrap_or("").to_owned(),
                url: url.into(),
            })
        };
        if !product.tenant_aware {
            out.push(Launch {
                product: product.name.clone(),
                tenant: None,
                domains: vec![],
                links: page.and_then(|u| link(u, None)).into_iter().collect(),
            });
            continue;
        }
        for tenant in portico_model::enterable_tenants(&grants, product, &config.tenants, now) {
            let links = match &page {
                Some(u) if u.contains(domains::TENANT_DOMAIN) => tenant.domains.iter().filter_map(|d| link(domains::expand(u, d), None)).collect(),
                Some(u) => link(u.clone(), Some(("organization", p.tenant_handles.handle(&p.kek, &tenant.id, now))))
                    .into_iter()
                    .collect(),
                None => vec![],
            };
            out.push(Launch {
                product: product.name.clone(),
                tenant: Some(tenant.name.clone()),
                domains: tenant.domains.clone(),
                links,
            });
        }
    }
    Ok(out)
}
