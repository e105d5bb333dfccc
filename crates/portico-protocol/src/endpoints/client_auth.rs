//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3.1): `client_secret_basic`, `client_secret_post`, and `none` for public clients.

use crate::error::{OAuthError, oauth};
use crate::provider::Provider;
use crate::snapshot::ClientEntry;
use portico_model::AuthMethod;

/// What a request presented to authenticate its client.
#[derive(Clone, Debug, Default)]
pub struct ClientCredentials {
    /// From `Authorization: Basic`, already form-url-decoded (RFC 6749 §2.3.1).
    pub basic: Option<(String, portico_model::Secret)>,
    /// `client_id` in the body.
    pub client_id: Option<String>,
    /// `client_secret` in the body.
    pub client_secret: Option<portico_model::Secret>,
}

/// Authenticates the client, or answers `invalid_client` / `invalid_request`.
pub fn authenticate_client(p: &Provider, creds: &ClientCredentials) -> Result<ClientEntry, OAuthError> {
    let challenge = creds.basic.is_some();
    let fail = |e: OAuthError| OAuthError {
        basic_challenge: challenge,
        ..e
    };
    // "The client MUST NOT use more than one authentication method in each request."
    if creds.basic.is_some() && creds.client_secret.is_some() {
        return Err(oauth!(InvalidRequest, "use exactly one client authentication method"));
    }
    let (id, secret, method) = match (&creds.basic, &creds.client_id, &creds.client_secret) {
        (Some((id, secret)), body_id, None) => {
            if body_id.as_ref().is_some_and(|b| b != id) {
                return Err(oauth!(InvalidRequest, "client_id in the body differs from the authenticated client"));
            }
            (id.as_str(), Some(secret), AuthMethod::ClientSecretBasic)
        }
        (None, Some(id), Some(secret)) => (id.as_str(), Some(secret), AuthMethod::ClientSecretPost),
        (None, Some(id), None) => (id.as_str(), None, AuthMethod::None),
        _ => return Err(fail(oauth!(InvalidClient, "client authentication failed"))),
    };
    let config = p.config();
    let entry = config
        .client(id)
        .cloned()
        .ok_or_else(|| fail(oauth!(InvalidClient, "client authentication failed").detail(format!("unknown client {id:?}"))))?;
    if entry.client.auth_method != method {
        return Err(fail(oauth!(InvalidClient, "client authentication failed").detail(format!(
            "client {id} is registered for {} but used {}",
            entry.client.auth_method.as_str(),
            method.as_str()
        ))));
    }
    if let Some(secret) = secret {
        let ok = entry.secret_hash.as_deref().is_some_and(|h| p.kek.verify_client_secret(secret.expose(), h));
        if !ok {
            return Err(fail(
                oauth!(InvalidClient, "client authentication failed").detail(format!("wrong secret for {id}")),
            ));
        }
    }
    Ok(entry)
}
