//! The policy gate at the source: reads what [`portico_model::admit`] decides on — the user, their
//! grants for the product, their consent to a third-party client — and asks it. Every path that
//! mints a user's token calls [`admit`] or [`admit_with`] (DESIGN.md, "one policy gate"); each
//! answers a [`Refusal`] as its own protocol says.

use crate::error::{ErrorCode, OAuthError};
use crate::provider::Provider;
use crate::token::issue::AuthInfo;
use portico_model::{Client, Grant, Grantee, MintFacts, Product, Refusal, TenantId, User, UserId};
use portico_store::StoreError;

/// One token about to be minted for a user.
#[derive(Clone, Copy, Debug)]
pub struct Mint<'a> {
    pub user: &'a UserId,
    pub product: &'a Product,
    pub tenant: Option<&'a TenantId>,
    /// The client the token is for; `None` only while it is not known (a hand-off code).
    pub client: Option<&'a Client>,
    /// Whether the session the token comes from is still live.
    pub session_live: bool,
    pub auth: &'a AuthInfo,
    /// This request's `acr` preference is met only by a second factor the session lacks: step up.
    pub acr_mfa_requested: bool,
    pub scope: &'a str,
}

/// The gate's answer: the user and the grant the token carries, or the rule it breaks.
pub type Admission = Result<(User, Grant), Refusal>;

/// Reads the user and their grants for the product, then decides.
pub async fn admit(p: &Provider, m: &Mint<'_>, now: i64) -> Result<Admission, StoreError> {
    let user = p.store.user_by_id(m.user).await?;
    let grants = p.store.grants_for(&Grantee::User(m.user.clone()), &m.product.slug).await?;
    admit_with(p, m, user, &grants, now).await
}

/// Decides on a user and grants the caller already read (refresh reads them with the token).
pub async fn admit_with(p: &Provider, m: &Mint<'_>, user: Option<User>, grants: &[Grant], now: i64) -> Result<Admission, StoreError> {
    let Some(user) = user.filter(|u| &u.id == m.user) else {
        return Ok(Err(Refusal::UserInactive));
    };
    // Consent is read only where it counts: a client that is not first-party.
    let consented = match m.client {
        Some(c) if !c.first_party => p.store.consent(m.user, c.id.as_str(), m.product.slug.as_str()).await?,
        _ => None,
    };
    let config = p.config();
    let facts = MintFacts {
        user: Some(&user),
        grants,
        product: m.product,
        tenant: m.tenant,
        tenants: &config.tenants,
        client: m.client,
        session_live: m.session_live,
        auth_time: m.auth.auth_time,
        amr: &m.auth.amr,
        acr_mfa_requested: m.acr_mfa_requested,
        scope: m.scope,
        consented: consented.as_deref(),
        now,
    };
    Ok(portico_model::admit(&facts).cloned().map(|grant| (user, grant)))
}

/// A refusal as an OAuth error with `code` (`invalid_grant` at the token endpoint,
/// `invalid_request` for a token exchange's subject, RFC 8693 §2.2.2).
pub fn refused(code: ErrorCode, r: Refusal) -> OAuthError {
    OAuthError::new(code, r.description()).detail(r.as_str())
}
