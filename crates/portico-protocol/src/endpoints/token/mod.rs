//! The token endpoint (RFC 6749 §3.2): authenticate the client, check the grant type is allowed,
//! then dispatch to one module per grant. Shared steps live in [`issue`].

pub mod authorization_code;
pub mod client_credentials;
pub mod device_code;
pub mod issue;
pub mod refresh_token;
pub mod token_exchange;

use crate::client_auth::{ClientCredentials, authenticate_client};
use crate::error::{ErrorCode, OAuthError, oauth};
use crate::provider::Provider;
use portico_model::GrantType;
use portico_store::AuditEvent;
use serde::Serialize;

/// A token request's body parameters (client credentials travel separately).
#[derive(Clone, Debug, Default)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub resource: Vec<String>,
    /// RFC 8693 §2.1.
    pub audience: Option<String>,
    pub subject_token: Option<String>,
    pub subject_token_type: Option<String>,
    pub requested_token_type: Option<String>,
    pub actor_token: Option<String>,
    /// Portico's extension for `client_credentials` at a tenant-aware product: the one tenant
    /// (its id, slug or handle) the service's token is for.
    pub organization: Option<String>,
    /// RFC 8628 §3.4.
    pub device_code: Option<String>,
    /// The `DPoP` header (RFC 9449 §5).
    pub dpop: crate::dpop::Presented,
    /// The thumbprint of the key a verified proof was signed with: the tokens are bound to it.
    /// Set by the endpoint once the proof checked out, never by the caller.
    pub dpop_jkt: Option<String>,
    pub ip: Option<String>,
}

/// RFC 6749 §5.1.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// RFC 8693 §2.2.1, for token exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
    /// The token's tenant: its stable id, and its current handle for links and `organization`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_handle: Option<String>,
    /// A hand-off's opaque `context`, returned to the product that redeemed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
}

impl TokenResponse {
    /// A bearer access token and nothing else yet.
    pub fn bearer(access_token: String, expires_in: i64, scope: String) -> Self {
        Self {
            access_token,
            token_type: "Bearer",
            expires_in,
            scope,
            refresh_token: None,
            id_token: None,
            issued_token_type: None,
            org_id: None,
            org_handle: None,
            context: None,
        }
    }

    /// The token type of an access token bound to `jkt` (RFC 9449 §5: `DPoP`), or `Bearer`.
    pub fn bound(self, jkt: Option<&str>) -> Self {
        Self {
            token_type: if jkt.is_some() { "DPoP" } else { "Bearer" },
            ..self
        }
    }

    /// Names the token's tenant: its id and its current handle.
    pub fn with_tenant(self, p: &Provider, tenant: Option<&portico_model::TenantId>, now: i64) -> Self {
        Self {
            org_id: tenant.map(|t| t.as_str().to_owned()),
            org_handle: tenant.map(|t| p.tenant_handles.handle(&p.kek, t, now)),
            ..self
        }
    }
}

/// Handles one token request. Returns the grant type (for metrics) with the outcome. Every
/// refusal is an audit event naming the client that asked (as it named itself), the grant type,
/// the error and the address.
pub async fn exchange(p: &Provider, creds: &ClientCredentials, req: TokenRequest, now: i64) -> (Option<GrantType>, Result<TokenResponse, OAuthError>) {
    let grant = req.grant_type.as_deref().and_then(GrantType::parse);
    let ip = req.ip.clone();
    let outcome = exchange_inner(p, creds, grant, req, now).await;
    // A device polling while its user has not answered is no refusal (RFC 8628 §3.5): not
    // audited, or every poll of anyone's public client would be a record.
    let refused = outcome
        .as_ref()
        .err()
        .filter(|e| !matches!(e.code, ErrorCode::AuthorizationPending | ErrorCode::SlowDown));
    if let Some(e) = refused {
        let claimed = creds.claimed_id().unwrap_or_default();
        // The name is the caller's input: bounded, and no client is made up from it.
        let claimed: String = claimed.chars().take(128).collect();
        let mut event = AuditEvent::new(now, "token.refused", format!("client:{claimed}"))
            .ip(ip)
            .data(serde_json::json!({
                "grant_type": grant.map(|g| g.label()).unwrap_or("unknown"),
                "error": e.code.as_str(),
                "description": e.description,
            }));
        event.product = p.config().client(&claimed).map(|c| c.client.product.as_str().to_owned());
        p.writer.record(event);
    }
    (grant, outcome)
}

async fn exchange_inner(
    p: &Provider,
    creds: &ClientCredentials,
    grant: Option<GrantType>,
    mut req: TokenRequest,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    if req.grant_type.is_none() {
        return Err(oauth!(InvalidRequest, "grant_type is required"));
    }
    let entry = authenticate_client(p, creds, now).await?;
    let Some(grant) = grant else {
        return Err(oauth!(UnsupportedGrantType, "unsupported grant_type"));
    };
    if !entry.client.allows(grant) {
        return Err(oauth!(UnauthorizedClient, "this client may not use this grant type"));
    }
    // RFC 8707 §2: one product per token.
    if req.resource.len() > 1 {
        return Err(oauth!(InvalidTarget, "a token is for exactly one resource"));
    }
    // RFC 9449 §5: a proof binds what this request gets to its key; a client registered for
    // bound tokens (§5.2, `dpop_bound_access_tokens`) gets none without one.
    // (No URL is built for the many requests that bring no proof.)
    let proof = if req.dpop.proof.is_some() || req.dpop.several {
        crate::dpop::verify(p, &req.dpop, "POST", &format!("{}/oauth2/token", p.issuer), None, now).await?
    } else {
        None
    };
    if proof.is_none() && entry.client.dpop_bound_access_tokens {
        return Err(oauth!(InvalidDpopProof, "this client's tokens are DPoP-bound: send a DPoP proof"));
    }
    req.dpop_jkt = proof.map(|proof| proof.jkt);
    match grant {
        GrantType::AuthorizationCode => authorization_code::grant(p, &entry.client, req, now).await,
        GrantType::RefreshToken => refresh_token::grant(p, &entry.client, req, now).await,
        GrantType::ClientCredentials => client_credentials::grant(p, &entry.client, req, now).await,
        GrantType::TokenExchange => token_exchange::grant(p, &entry.client, req, now).await,
        GrantType::DeviceCode => device_code::grant(p, &entry.client, req, now).await,
    }
}
