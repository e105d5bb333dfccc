//! Steps every grant shares: verify PKCE, mint the access token (only through `claims_for`, after
//! the policy gate of [`crate::gate`] admitted it), the ID token and a refresh token.

use super::TokenResponse;
use crate::error::{OAuthError, oauth};
use crate::provider::Provider;
use crate::random;
use aws_lc_rs::digest;
use portico_model::{Actor, Client, FamilyId, Grant, Product, Scope, Sid, TenantId, TokenContext, User, claims_for};
use portico_store::AuditEvent;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

/// RFC 7636 §4.6: `BASE64URL(SHA256(code_verifier)) == code_challenge`.
pub fn verify_pkce(challenge: Option<&str>, verifier: Option<&str>) -> Result<(), OAuthError> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(oauth!(InvalidGrant, "code_verifier given but the authorization request had no code_challenge")),
        (Some(_), None) => Err(oauth!(InvalidGrant, "code_verifier is required")),
        (Some(challenge), Some(verifier)) => {
            // RFC 7636 §4.1: 43 to 128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
            let well_formed = (43..=128).contains(&verifier.len()) && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            let computed = random::b64url(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref());
            if well_formed && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes())) {
                Ok(())
            } else {
                Err(oauth!(InvalidGrant, "code_verifier does not match the code_challenge"))
            }
        }
    }
}

/// How the user authenticated, carried from the session into every token.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthInfo {
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
}

impl AuthInfo {
    /// How the subject of an access token authenticated, carried into the tokens made from it.
    pub fn of(c: &portico_model::AccessClaims) -> Self {
        Self {
            auth_time: c.auth_time.unwrap_or(c.iat),
            amr: c.amr.clone().unwrap_or_default(),
            acr: c.acr.clone().unwrap_or_default(),
        }
    }
}

/// Everything needed to mint a user's tokens.
pub struct UserTokens<'a> {
    pub client: &'a Client,
    pub product: &'a Product,
    pub tenant: Option<&'a TenantId>,
    pub user: &'a User,
    pub grant: &'a Grant,
    pub scope: &'a str,
    pub sid: Option<&'a Sid>,
    pub family: &'a FamilyId,
    pub auth: &'a AuthInfo,
    pub nonce: Option<&'a str>,
    /// The acting client (RFC 8693 `act`), for a token made by token exchange.
    pub act: Option<Actor>,
    /// The DPoP key the tokens are bound to (RFC 9449), if the request proved one.
    pub jkt: Option<&'a str>,
}

/// Signs an access token for a user (RFC 9068). Its `jti` names its family, so revoking the
/// family makes it introspect inactive.
pub fn mint_user_access(p: &Provider, t: &UserTokens<'_>, now: i64) -> Result<String, OAuthError> {
    let config = p.config();
    // A token names its tenant or none: never a tenant that is gone (the gate refused that
    // already; this keeps a token without `org_id` from being made for a tenant-aware product).
    let tenant = match t.tenant {
        None => None,
        Some(id) => Some(config.tenant(id).ok_or_else(|| oauth!(InvalidGrant, "the organization does not exist"))?),
    };
    let ctx = TokenContext {
        issuer: &p.issuer,
        subject: t.user.id.as_str(),
        client_id: &t.client.id,
        scope: t.scope,
        now,
        jti: format!("{}.{}", t.family, random::id("")),
        sid: t.sid,
        auth_time: Some(t.auth.auth_time),
        acr: Some(&t.auth.acr),
        amr: Some(&t.auth.amr),
        act: t.act.clone(),
        jkt: t.jkt,
    };
    let claims = claims_for(&ctx, t.product, tenant, Some(t.grant));
    Ok(p.keys().sign(t.client.signing_alg, portico_claims::ACCESS_TOKEN_TYP, &claims, now)?)
}

/// OpenID Connect Core §2 ID token claims.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub azp: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub acr: String,
    pub amr: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
}

/// Signs an ID token when the scope has `openid`.
pub fn mint_id_token(p: &Provider, t: &UserTokens<'_>, now: i64) -> Result<Option<String>, OAuthError> {
    if !Scope::has(t.scope, "openid") {
        return Ok(None);
    }
    let claims = IdClaims {
        iss: p.issuer.clone(),
        sub: t.user.id.as_str().to_owned(),
        aud: t.client.id.as_str().to_owned(),
        azp: t.client.id.as_str().to_owned(),
        exp: now + p.settings.id_token_ttl,
        iat: now,
        auth_time: t.auth.auth_time,
        nonce: t.nonce.map(str::to_owned),
        acr: t.auth.acr.clone(),
        amr: t.auth.amr.clone(),
        sid: t.sid.map(|s| s.as_str().to_owned()),
        name: Scope::has(t.scope, "profile").then(|| t.user.name.clone()),
        email: Scope::has(t.scope, "email").then(|| t.user.email.clone()),
        email_verified: Scope::has(t.scope, "email").then_some(t.user.email_verified),
    };
    Ok(Some(p.keys().sign(t.client.signing_alg, "JWT", &claims, now)?))
}

/// What a refresh token stands for, stored under its hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefreshData {
    pub scope: String,
    pub auth: AuthInfo,
    /// RFC 9449 §5: a public client's refresh token is bound to the DPoP key it was issued
    /// with, and is refreshed only with a proof of that key (rotation keeps the binding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

/// Whether this grant earns a refresh token: the client may refresh and asked for `offline_access`.
pub fn wants_refresh(client: &Client, scope: &str) -> bool {
    client.allows(portico_model::GrantType::RefreshToken) && Scope::has(scope, "offline_access")
}

/// The family id named by an access token's `jti`, if it was issued to a user.
pub fn family_of_jti(jti: &str) -> Option<&str> {
    jti.split_once('.').map(|(f, _)| f).filter(|f| f.starts_with("fam_"))
}

/// Mints a user's access token, ID token (scope `openid`) and — when the client may refresh and
/// asked for `offline_access` — a refresh token in the family; audits the issuance; answers with
/// the tenant's id and current handle.
pub async fn user_token_response(p: &Provider, t: &UserTokens<'_>, grant_type: &str, ip: Option<String>, now: i64) -> Result<TokenResponse, OAuthError> {
    let access_token = mint_user_access(p, t, now)?;
    let id_token = mint_id_token(p, t, now)?;
    let refresh_token = if wants_refresh(t.client, t.scope) {
        let rt = random::token();
        let rd = RefreshData {
            scope: t.scope.to_owned(),
            auth: t.auth.clone(),
            // A confidential client's refresh tokens are bound by its authentication instead.
            jkt: t.jkt.filter(|_| t.client.is_public()).map(str::to_owned),
        };
        p.store
            .insert_refresh(
                &random::hash(&rt),
                t.family.as_str(),
                &serde_json::to_string(&rd).expect("serializes"),
                now,
                t.product.refresh_expiry(p.settings.refresh_ttl, t.auth.auth_time, now),
            )
            .await?;
        Some(rt)
    } else {
        None
    };
    p.writer.record(
        AuditEvent::new(now, "token.issued", t.user.id.as_str())
            .product(t.product.slug.as_str())
            .tenant(t.tenant.map(|x| x.as_str()))
            .ip(ip)
            .data(serde_json::json!({"grant_type": grant_type, "client_id": t.client.id.as_str(), "family": t.family})),
    );
    Ok(TokenResponse {
        refresh_token,
        id_token,
        ..TokenResponse::bearer(access_token, t.product.access_token_ttl, t.scope.to_owned())
            .bound(t.jkt)
            .with_tenant(p, t.tenant, now)
    })
}

/// Whether the token family `id` is still live: a code, a hand-off and a refresh die with the
/// family they came from (signing out, a password change, a replay revoke it).
pub async fn family_live(p: &Provider, id: &FamilyId) -> Result<bool, portico_store::StoreError> {
    Ok(p.store.family(id).await?.is_some_and(|f| f.revoked_at.is_none()))
}
