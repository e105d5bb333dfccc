//! The token endpoint (RFC 6749 §3.2): authenticate the client, check the grant type is allowed,
//! then dispatch to one module per grant. Shared steps live in [`issue`].

pub mod authorization_code;
pub mod client_credentials;
pub mod issue;
pub mod refresh_token;

use crate::client_auth::{ClientCredentials, authenticate_client};
use crate::error::{OAuthError, oauth};
use crate::provider::Provider;
use portico_model::GrantType;
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
}

/// Handles one token request. Returns the grant type (for metrics) with the outcome.
pub async fn exchange(p: &Provider, creds: &ClientCredentials, req: TokenRequest, now: i64) -> (Option<GrantType>, Result<TokenResponse, OAuthError>) {
    let grant = req.grant_type.as_deref().and_then(GrantType::parse);
    (grant, exchange_inner(p, creds, grant, req, now).await)
}

async fn exchange_inner(p: &Provider, creds: &ClientCredentials, grant: Option<GrantType>, req: TokenRequest, now: i64) -> Result<TokenResponse, OAuthError> {
    if req.grant_type.is_none() {
        return Err(oauth!(InvalidRequest, "grant_type is required"));
    }
    let entry = authenticate_client(p, creds)?;
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
    match grant {
        GrantType::AuthorizationCode => authorization_code::grant(p, &entry.client, req, now).await,
        GrantType::RefreshToken => refresh_token::grant(p, &entry.client, req, now).await,
        GrantType::ClientCredentials => client_credentials::grant(p, &entry.client, req, now).await,
        GrantType::TokenExchange => Err(oauth!(UnsupportedGrantType, "token exchange is not available yet")),
    }
}
