//! Verifying Portico's own access tokens (for introspection, userinfo and revocation): signature
//! by a published key with the algorithm that key is for (so `alg: none` and algorithm swaps fail),
//! `typ: at+jwt` (RFC 9068 §4), issuer and expiry, then liveness at the source.

use crate::error::{OAuthError, oauth};
use crate::provider::Provider;
use crate::token::issue::family_of_jti;
use jsonwebtoken::{Algorithm, Validation};
use portico_model::{AccessClaims, ClientId, Grantee, Product, TenantId, UserId};

fn algorithm(alg: portico_model::SigningAlg) -> Algorithm {
    match alg {
        portico_model::SigningAlg::EdDSA => Algorithm::EdDSA,
        portico_model::SigningAlg::ES256 => Algorithm::ES256,
        portico_model::SigningAlg::RS256 => Algorithm::RS256,
    }
}

/// The claims of a JWS Portico signed: a published key, the algorithm that key is for, the
/// expected `typ`, Portico as issuer, and the `required` claims present. Expiry is the caller's.
fn decode_own<T: serde::de::DeserializeOwned>(p: &Provider, token: &str, typ: &str, required: &[&str], now: i64) -> Option<T> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.typ.as_deref() != Some(typ) {
        return None;
    }
    let keys = p.keys();
    let (alg, key) = keys.verifier(header.kid.as_deref()?, now, p.key_retention())?;
    if header.alg != algorithm(alg) {
        return None;
    }
    let mut v = Validation::new(algorithm(alg));
    v.set_issuer(&[&p.issuer]);
    v.validate_aud = false;
    v.validate_exp = false;
    v.leeway = 0;
    v.set_required_spec_claims(required);
    Some(jsonwebtoken::decode::<T>(token, key, &v).ok()?.claims)
}

/// The claims of a well-formed, correctly signed, unexpired Portico access token.
pub fn decode_access_token(p: &Provider, token: &str, now: i64) -> Option<AccessClaims> {
    let claims: AccessClaims = decode_own(p, token, "at+jwt", &["exp", "iss", "sub", "aud"], now)?;
    (claims.exp > now).then_some(claims)
}

/// The claims of an ID token Portico issued, expired or not (RP-Initiated Logout 1.0 §2: an
/// `id_token_hint` is accepted after its `exp`), as long as its signing key is still published.
pub fn decode_id_token_hint(p: &Provider, token: &str, now: i64) -> Option<crate::token::issue::IdClaims> {
    decode_own(p, token, "JWT", &["iss", "sub", "aud", "iat"], now)
}

/// Whether a decoded access token is still good at the source (invariant 4): not revoked, and
/// for a user its family not revoked, the user active and still holding the grant; for a client,
/// the client still registered for the product and, when the token carries roles, the client's
/// grant still active. A client's token is checked in one read: introspection's hot path.
pub async fn is_live(p: &Provider, c: &AccessClaims, now: i64) -> Result<bool, portico_store::StoreError> {
    let config = p.config();
    let Some(product) = config.product_by_audience(&c.aud) else {
        return Ok(false);
    };
    if c.sub.starts_with("usr_") {
        if !p.store.access_token_live(&c.jti, family_of_jti(&c.jti)).await? {
            return Ok(false);
        }
        let Some(user) = p.store.user_by_id(&UserId::new(&c.sub)).await? else {
            return Ok(false);
        };
        if !user.is_active() {
            return Ok(false);
        }
        let grants = p.store.grants_for(&Grantee::User(user.id), &product.slug).await?;
        let tenant = c.org_id.as_deref().map(TenantId::new);
        return Ok(portico_model::require_active_grant(&grants, product, tenant.as_ref(), now).is_ok());
    }
    let registered = config
        .client(&c.sub)
        .is_some_and(|e| e.client.product == product.slug || e.client.resources.contains(&product.slug));
    if !registered {
        return Ok(false);
    }
    if c.roles.is_empty() {
        return p.store.access_token_live(&c.jti, None).await;
    }
    // Roles came from a grant to the client: revoking or expiring it ends the token at once.
    p.store
        .client_token_live(&c.jti, &Grantee::Client(ClientId::new(&c.sub)), &product.slug, now)
        .await
}

/// The subject a product's backend presents for its own user (hand-off, token exchange): a live
/// access token for `product` whose subject is a user. Anything else is `invalid_request`
/// (RFC 8693 §2.2.2: a subject_token "invalid for any reason").
pub async fn own_user_token(p: &Provider, token: Option<&str>, product: &Product, now: i64) -> Result<AccessClaims, OAuthError> {
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| oauth!(InvalidRequest, "subject_token is required"))?;
    let bad = || oauth!(InvalidRequest, "the subject_token is invalid, expired or not for this client's product");
    let claims = decode_access_token(p, token, now).ok_or_else(bad)?;
    if claims.aud != product.audience.as_str() || !claims.sub.starts_with("usr_") || !is_live(p, &claims, now).await? {
        return Err(bad());
    }
    Ok(claims)
}
