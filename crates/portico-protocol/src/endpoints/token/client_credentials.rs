//! `grant_type=client_credentials` (RFC 6749 §4.4): service-to-service. The token's `sub` is the
//! client; its audience is the client's product or one it may call (`resource`); its roles are
//! those a grant gives the client for that product. A client without an active grant for the
//! product gets no token at all (invariant 3). At a tenant-aware product the request names one
//! tenant (`organization`) and the token carries that tenant only if the client's grant covers
//! it (invariant 5); an unknown tenant and one the grant does not cover answer alike.

use super::{TokenRequest, TokenResponse};
use crate::error::{OAuthError, oauth};
use crate::provider::Provider;
use crate::random;
use portico_model::{Client, TokenContext, claims_for};
use portico_store::AuditEvent;

pub async fn grant(p: &Provider, client: &Client, req: TokenRequest, now: i64) -> Result<TokenResponse, OAuthError> {
    // RFC 6749 §4.4: "The client credentials grant type MUST only be used by confidential clients."
    if client.is_public() {
        return Err(oauth!(UnauthorizedClient, "public clients may not use client_credentials"));
    }
    let config = p.config();
    let product = config.resolve_audience(client, req.resource.first().map(String::as_str))?;
    let tenant = match (product.tenant_aware, req.organization.as_deref()) {
        (false, None) => None,
        (false, Some(_)) => return Err(oauth!(InvalidRequest, "this product has no organizations")),
        (true, None) => return Err(oauth!(InvalidRequest, "organization is required for this product")),
        (true, Some(reference)) => crate::tenants::find(p, &config, reference, now),
    };
    // On SQLite from memory while no client grant changed: `portico_store::grant_cache` says
    // what counts as a change, and when it counts.
    let grants = p.store.client_grants_for(&client.id, &product.slug).await?;
    // Invariant 3 holds for clients too: no grant, no token (not even a token without roles).
    // An organization that does not exist meets the same refusal as one the grant does not cover.
    // (`require_active_grant` refuses a tenant-aware product without a tenant, so an unknown
    // organization takes the very path of a forbidden one.)
    let no_grant = || oauth!(InvalidGrant, "the client has no active grant for this product and organization");
    let grant = portico_model::require_active_grant(&grants, product, tenant.map(|t| &t.id), now).map_err(|_| no_grant())?;
    let held: Vec<&str> = grant.roles.iter().filter_map(|r| product.roles.get(r)).flatten().map(String::as_str).collect();
    // The scope is a list of the product's permissions the client holds; asking for more is refused.
    let scope: Vec<&str> = req.scope.as_deref().unwrap_or("").split(' ').filter(|s| !s.is_empty()).collect();
    if scope.iter().any(|s| !held.contains(s)) {
        return Err(oauth!(InvalidScope, "the client does not hold the requested scope for this product"));
    }
    let scope = scope.join(" ");
    let ctx = TokenContext {
        issuer: &p.issuer,
        subject: client.id.as_str(),
        client_id: &client.id,
        scope: &scope,
        now,
        jti: random::id(""),
        sid: None,
        auth_time: None,
        acr: None,
        amr: None,
        act: None,
        jkt: req.dpop_jkt.as_deref(),
    };
    let claims = claims_for(&ctx, product, tenant, Some(grant));
    let access_token = p.keys().sign(client.signing_alg, portico_claims::ACCESS_TOKEN_TYP, &claims, now)?;
    p.writer.record(
        AuditEvent::new(now, "token.issued", format!("client:{}", client.id))
            .product(product.slug.as_str())
            .tenant(tenant.map(|t| t.id.as_str()))
            .ip(req.ip)
            .data(serde_json::json!({"grant_type": "client_credentials", "jti": claims.jti})),
    );
    Ok(TokenResponse::bearer(access_token, product.access_token_ttl, scope).bound(req.dpop_jkt.as_deref()))
}
