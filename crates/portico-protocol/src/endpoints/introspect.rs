//! Token introspection (RFC 7662). A product may introspect only tokens for its own audience:
//! anything else answers `{"active": false}`, exactly as an unknown token does.

use crate::client_auth::{ClientCredentials, authenticate_client};
use crate::error::{OAuthError, oauth};
use crate::provider::Provider;
use crate::random;
use crate::verify::{decode_access_token, live};

use serde_json::{Value, json};

pub async fn introspect(p: &Provider, creds: &ClientCredentials, token: Option<&str>, now: i64) -> Result<Value, OAuthError> {
    let entry = authenticate_client(p, creds, now).await?;
    // Discovery advertises no `none` for this endpoint: a public client holds no secret that
    // could keep others from reading tokens through it.
    if entry.client.is_public() {
        return Err(OAuthError {
            basic_challenge: true,
            ..oauth!(InvalidClient, "client authentication failed")
        }
        .detail("public clients may not introspect"));
    }
    let token = token.filter(|t| !t.is_empty()).ok_or_else(|| oauth!(InvalidRequest, "token is required"))?;
    let inactive = json!({"active": false});
    let config = p.config();
    let Some(own) = config.product(&entry.client.product) else {
        return Ok(inactive);
    };
    if let Some(c) = decode_access_token(p, token, now) {
        if c.aud != own.audience.as_str() {
            return Ok(inactive);
        }
        let Some(held) = live(p, &c, now).await? else {
            return Ok(inactive);
        };
        // What the token may do now: its roles as the live grant still gives them.
        // RFC 9449 §6.2: a bound token's introspection names its key and its type.
        let token_type = if c.cnf.is_some() { "DPoP" } else { "Bearer" };
        let mut out = json!({
            "active": true, "token_type": token_type, "iss": c.iss, "sub": c.sub, "aud": c.aud,
            "client_id": c.client_id, "exp": c.exp, "iat": c.iat, "jti": c.jti,
            "roles": held.roles, "permissions": held.permissions,
        });
        if !c.scope.is_empty() {
            out["scope"] = json!(c.scope);
        }
        if let Some(org) = c.org_id {
            out["org_id"] = json!(org);
        }
        if let Some(sid) = c.sid {
            out["sid"] = json!(sid);
        }
        if let Some(cnf) = c.cnf {
            out["cnf"] = json!({"jkt": cnf.jkt});
        }
        return Ok(out);
    }
    // A refresh token of a client of the same product.
    if let Some(found) = p.store.peek_refresh(&random::hash(token)).await? {
        let f = &found.family;
        let live = found.rotated_at.is_none() && f.revoked_at.is_none() && now < found.expires_at;
        if live && f.product == own.slug {
            return Ok(json!({
                "active": true, "token_type": "refresh_token", "iss": p.issuer, "sub": f.subject,
                "aud": own.audience.as_str(), "client_id": f.client_id, "exp": found.expires_at,
            }));
        }
    }
    Ok(inactive)
}
