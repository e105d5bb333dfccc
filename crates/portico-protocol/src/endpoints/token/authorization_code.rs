//! `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5).
//!
//! A code is single use: "If an authorization code is used more than once, the authorization
//! server MUST deny the request and SHOULD revoke (when possible) all tokens previously issued
//! based on that authorization code" (RFC 6749 §4.1.2) — the whole family is revoked.

use super::issue::{self, AuthInfo, UserTokens};
use super::{TokenRequest, TokenResponse};
use crate::authorize::CodeData;
use crate::error::{ErrorCode, OAuthError, oauth};
use crate::gate;
use crate::provider::Provider;
use crate::random;
use portico_model::{Client, FamilyId, TenantId};
use portico_store::{AuditEvent, CodeConsumption, Store};

pub async fn grant(p: &Provider, client: &Client, req: TokenRequest, now: i64) -> Result<TokenResponse, OAuthError> {
    let code = req.code.as_deref().ok_or_else(|| oauth!(InvalidRequest, "code is required"))?;
    let (family, data) = consume(&p.store, client, &random::hash(code), req.ip.as_deref(), now).await?;
    // A device's code is redeemed by its device's poll, never here (it never left Portico).
    if data.redirect_uri == crate::device::DEVICE_REDIRECT {
        return Err(oauth!(InvalidGrant, BAD_CODE).detail("a device's code"));
    }
    // "ensure that the redirect_uri parameter is present if [it] was included in the initial authorization request … and if included ensure that their values are identical."
    if req.redirect_uri.as_deref() != Some(data.redirect_uri.as_str()) {
        return Err(oauth!(InvalidGrant, "redirect_uri does not match the authorization request"));
    }
    issue::verify_pkce(data.code_challenge.as_deref(), req.code_verifier.as_deref())?;
    // RFC 9449 §10.1: a code bound to a key is redeemed only with a proof of that key.
    if data.dpop_jkt.is_some() && data.dpop_jkt != req.dpop_jkt {
        return Err(oauth!(InvalidGrant, "the authorization code is bound to a DPoP key: prove it").detail("code redeemed without its dpop_jkt's proof"));
    }
    tokens(p, client, family, data, req.dpop_jkt.as_deref(), req.ip, "authorization_code", now).await
}

/// Redeems the code a device's approval issued to its record (RFC 8628 §3.4, by
/// `token::device_code`): spent once, as any code, and minted through the same gate.
pub(super) async fn redeem_for_device(
    p: &Provider,
    client: &Client,
    code_hash: &str,
    jkt: Option<&str>,
    ip: Option<String>,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let (family, data) = consume(&p.store, client, code_hash, ip.as_deref(), now).await?;
    if data.redirect_uri != crate::device::DEVICE_REDIRECT {
        return Err(oauth!(InvalidGrant, BAD_CODE).detail("not a device's code"));
    }
    tokens(p, client, family, data, jkt, ip, "device_code", now).await
}

/// The tokens a spent code stands for, if the policy gate still admits them.
#[allow(clippy::too_many_arguments)] // what one redemption needs; a struct would only rename them
async fn tokens(
    p: &Provider,
    client: &Client,
    family: FamilyId,
    data: CodeData,
    jkt: Option<&str>,
    ip: Option<String>,
    grant_type: &'static str,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let config = p.config();
    let product = config
        .product_by_audience(&data.audience)
        .ok_or_else(|| oauth!(InvalidGrant, "the product is no longer registered"))?;
    let tenant = data.tenant.as_deref().map(TenantId::new);
    let auth = AuthInfo {
        auth_time: data.auth_time,
        amr: data.amr.clone(),
        acr: data.acr.clone(),
    };
    let mint = gate::Mint {
        user: &data.user_id,
        product,
        tenant: tenant.as_ref(),
        client: Some(client),
        // A code dies with its session: signing out (anywhere, or a password change) revoked the
        // family the code was issued into.
        session_live: issue::family_live(p, &family).await?,
        auth: &auth,
        acr_mfa_requested: false,
        scope: &data.scope,
    };
    let (user, grant) = gate::admit(p, &mint, now).await?.map_err(|r| gate::refused(ErrorCode::InvalidGrant, r))?;
    let t = UserTokens {
        client,
        product,
        tenant: tenant.as_ref(),
        user: &user,
        grant: &grant,
        scope: &data.scope,
        sid: Some(&data.sid),
        family: &family,
        auth: &auth,
        nonce: data.nonce.as_deref(),
        act: None,
        jkt,
    };
    issue::user_token_response(p, &t, grant_type, ip, now).await
}

const BAD_CODE: &str = "the authorization code is invalid, expired or already used";

/// Spends the code, once: a replay revokes what the code issued (audited), a code of another
/// client is spent and its family revoked, an expired one is refused. Returns its family and data.
///
/// A refusal that must be remembered commits before it answers (STYLE.md rule 7): consume →
/// already consumed → revoke the family → audit → commit → `invalid_grant`.
async fn consume(store: &Store, client: &Client, code_hash: &str, ip: Option<&str>, now: i64) -> Result<(FamilyId, CodeData), OAuthError> {
    let mut tx = store.write().await?;
    let (family, data, expires_at) = match tx.consume_code(code_hash, now).await? {
        CodeConsumption::Consumed { family, data, expires_at } => (family, data, expires_at),
        CodeConsumption::AlreadyConsumed { family } => {
            tx.revoke_family(&family, "code_replayed", now).await?;
            tx.audit(
                AuditEvent::new(now, "token.code_replayed", format!("client:{}", client.id))
                    .ip(ip.map(str::to_owned))
                    .data(serde_json::json!({"family": family})),
            );
            tx.commit().await?;
            return Err(oauth!(InvalidGrant, BAD_CODE));
        }
        CodeConsumption::NotFound => return Err(oauth!(InvalidGrant, BAD_CODE)),
    };
    let data: CodeData = match serde_json::from_str(&data) {
        Ok(data) => data,
        Err(e) => {
            // Spent all the same: an unreadable code is never presented twice.
            tx.commit().await?;
            return Err(OAuthError::server(e));
        }
    };
    // RFC 6749 §4.1.3: "ensure that the authorization code was issued to the authenticated confidential client".
    if data.client_id != client.id.as_str() {
        tx.revoke_family(&family, "code_stolen", now).await?;
        tx.audit(
            AuditEvent::new(now, "token.code_stolen", format!("client:{}", client.id))
                .ip(ip.map(str::to_owned))
                .data(serde_json::json!({"family": family, "issued_to": data.client_id})),
        );
        tx.commit().await?;
        return Err(oauth!(InvalidGrant, BAD_CODE).detail("code of another client"));
    }
    tx.commit().await?;
    if now >= expires_at {
        return Err(oauth!(InvalidGrant, BAD_CODE).detail("expired"));
    }
    Ok((family, data))
}
