//! Token revocation (RFC 7009). Revoking a refresh token revokes its family (and so the access
//! tokens issued with it); revoking an access token records its `jti` until it expires. An
//! invalid or unknown token still answers 200 (§2.2).

use crate::client_auth::{ClientCredentials, authenticate_client};
use crate::error::{OAuthError, oauth};
use crate::provider::Provider;
use crate::random;
use crate::verify::decode_access_token;
use portico_store::AuditEvent;

pub async fn revoke(p: &Provider, creds: &ClientCredentials, token: Option<&str>, ip: Option<String>, now: i64) -> Result<(), OAuthError> {
    let entry = authenticate_client(p, creds, now).await?;
    let client = &entry.client;
    let token = token.filter(|t| !t.is_empty()).ok_or_else(|| oauth!(InvalidRequest, "token is required"))?;
    let actor = format!("client:{}", client.id);
    if let Some(found) = p.store.peek_refresh(&random::hash(token)).await? {
        // §2.1: "The authorization server first validates the client credentials … and then verifies whether the token was issued to the client making the revocation request."
        if found.family.client_id == client.id {
            let event = AuditEvent::new(now, "token.revoked", actor)
                .product(found.family.product.as_str())
                .ip(ip)
                .data(serde_json::json!({"family": found.family.id}));
            let mut tx = p.store.write().await?;
            tx.revoke_family(&found.family.id, "revoked_by_client", now).await?;
            tx.audit(event);
            tx.commit().await?;
        }
        return Ok(());
    }
    if let Some(c) = decode_access_token(p, token, now).filter(|c| c.client_id == client.id.as_str()) {
        let event = AuditEvent::new(now, "token.revoked", actor).ip(ip).data(serde_json::json!({"jti": c.jti}));
        let mut tx = p.store.write().await?;
        tx.revoke_jti(&c.jti, c.exp).await?;
        tx.audit(event);
        tx.commit().await?;
    }
    Ok(())
}
