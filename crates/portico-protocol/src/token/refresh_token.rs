//! `grant_type=refresh_token` (RFC 6749 §6) with rotation (RFC 9700 §4.14.2): every use returns a
//! new refresh token; presenting a rotated one revokes its whole family.

use super::issue::{self, RefreshData, UserTokens, has_scope};
use super::{TokenRequest, TokenResponse};
use crate::error::{ErrorCode, OAuthError, oauth};
use crate::gate;
use crate::provider::Provider;
use crate::random;
use portico_model::{Client, ProductSlug, Sid, TenantId, UserId};
use portico_store::{AuditEvent, RefreshRotation, Rotation};

const INVALID: &str = "the refresh token is invalid, expired or revoked";

pub async fn grant(p: &Provider, client: &Client, req: TokenRequest, now: i64) -> Result<TokenResponse, OAuthError> {
    let presented = req
        .refresh_token
        .as_deref()
        .ok_or_else(|| oauth!(InvalidRequest, "refresh_token is required"))?;
    let old_hash = random::hash(presented);
    // One read: the token, its family, the user and the user's grants for the family's product.
    let Some(ctx) = p.store.refresh_context(&old_hash).await? else {
        return Err(oauth!(InvalidGrant, INVALID));
    };
    let found = &ctx.token;
    let family = &found.family;
    let reuse = || {
        let event = AuditEvent::new(now, "token.refresh_reused", format!("client:{}", client.id))
            .product(family.product.clone())
            .ip(req.ip.clone())
            .data(serde_json::json!({"family": family.id}));
        async move { p.store.revoke_family(&family.id, "refresh_reused", now, &[event]).await }
    };
    // RFC 6749 §6: "validate the refresh token … and ensure that the refresh token was issued to the authenticated client".
    if family.client_id != client.id.as_str() {
        return Err(oauth!(InvalidGrant, INVALID).detail("refresh token of another client"));
    }
    if found.rotated_at.is_some() {
        reuse().await?;
        return Err(oauth!(InvalidGrant, INVALID).detail("rotated refresh token presented again"));
    }
    if family.revoked_at.is_some() || now >= found.expires_at {
        return Err(oauth!(InvalidGrant, INVALID));
    }
    let data: RefreshData = serde_json::from_str(&found.data).map_err(OAuthError::server)?;
    // RFC 6749 §6: the scope "MUST NOT include any scope not originally granted".
    let scope = match req.scope.as_deref() {
        None => data.scope.clone(),
        Some(asked) => {
            if asked.split(' ').filter(|s| !s.is_empty()).any(|s| !has_scope(&data.scope, s)) {
                return Err(oauth!(InvalidScope, "the scope exceeds what was originally granted"));
            }
            asked.to_owned()
        }
    };
    let config = p.config();
    let product = config
        .product(&ProductSlug::new(&family.product))
        .ok_or_else(|| oauth!(InvalidGrant, INVALID))?;
    // The refresh token is bound to its product: `resource` may only name it again.
    if req.resource.first().is_some_and(|r| r != product.audience.as_str()) {
        return Err(oauth!(InvalidTarget, "a refresh token only yields tokens for its own product"));
    }
    let tenant = (!family.tenant.is_empty()).then(|| TenantId::new(&family.tenant));
    // The gate, on the user and grants read with the token (its subject is the family's). The
    // product's own session lifetime stops refresh here too.
    let mint = gate::Mint {
        user: &UserId::new(&family.subject),
        product,
        tenant: tenant.as_ref(),
        client: Some(client),
        session_live: family.revoked_at.is_none(),
        auth: &data.auth,
        acr_mfa_requested: false,
        scope: &data.scope,
    };
    let admitted = gate::admit_with(p, &mint, ctx.user.clone(), &ctx.grants, now).await?;
    let (user, grant) = admitted.map_err(|r| gate::refused(ErrorCode::InvalidGrant, r))?;
    let new_rt = random::token();
    let new_data = RefreshData {
        scope: data.scope.clone(),
        auth: data.auth.clone(),
    };
    let rotation = p
        .writer
        .rotate_refresh(Rotation {
            old_hash: old_hash.clone(),
            family_id: family.id.clone(),
            new_hash: random::hash(&new_rt),
            new_data: serde_json::to_string(&new_data).expect("serializes"),
            now,
            new_expires_at: product.refresh_expiry(p.settings.refresh_ttl, data.auth.auth_time, now),
        })
        .await?;
    if rotation == RefreshRotation::Reused {
        reuse().await?;
        return Err(oauth!(InvalidGrant, INVALID).detail("concurrent reuse"));
    }
    let sid = family.sid.as_deref().map(Sid::new);
    let t = UserTokens {
        client,
        product,
        tenant: tenant.as_ref(),
        user: &user,
        grant: &grant,
        scope: &scope,
        sid: sid.as_ref(),
        family: &family.id,
        auth: &data.auth,
        nonce: None,
        act: None,
    };
    let access_token = issue::mint_user_access(p, &t, now)?;
    let id_token = issue::mint_id_token(p, &t, now)?;
    p.writer.record(
        AuditEvent::new(now, "token.issued", user.id.as_str())
            .product(product.slug.as_str())
            .tenant(tenant.as_ref().map(|t| t.as_str()))
            .ip(req.ip)
            .data(serde_json::json!({"grant_type": "refresh_token", "client_id": client.id.as_str(), "family": family.id})),
    );
    Ok(TokenResponse {
        refresh_token: Some(new_rt),
        id_token,
        ..TokenResponse::bearer(access_token, product.access_token_ttl, scope).with_tenant(p, tenant.as_ref(), now)
    })
}
