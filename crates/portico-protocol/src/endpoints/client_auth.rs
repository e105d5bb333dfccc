//! Client authentication at the token, introspection, revocation, hand-off and pushed
//! authorization request endpoints (RFC 6749 §2.3): `client_secret_basic`, `client_secret_post`,
//! `private_key_jwt` (RFC 7523 §2.2, in [`crate::client_assertion`]), and `none` for public
//! clients. A client authenticates only by the one method it is registered for.

use crate::client_assertion::{self, JWT_BEARER};
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
    /// `client_assertion` and `client_assertion_type` in the body (RFC 7521 §4.2).
    pub client_assertion: Option<String>,
    pub client_assertion_type: Option<String>,
}

impl ClientCredentials {
    /// The client the request says it is, unverified: for audit and rate limits only.
    pub fn claimed_id(&self) -> Option<String> {
        let assertion = || self.client_assertion.as_deref().and_then(client_assertion::claimed_client);
        self.basic.as_ref().map(|(id, _)| id.clone()).or(self.client_id.clone()).or_else(assertion)
    }
}

/// Authenticates the client, or answers `invalid_client` / `invalid_request`.
pub async fn authenticate_client(p: &Provider, creds: &ClientCredentials, now: i64) -> Result<ClientEntry, OAuthError> {
    let challenge = creds.basic.is_some();
    let fail = |e: OAuthError| OAuthError {
        basic_challenge: challenge,
        ..e
    };
    let methods = [creds.basic.is_some(), creds.client_secret.is_some(), creds.client_assertion.is_some()];
    // "The client MUST NOT use more than one authentication method in each request."
    if methods.iter().filter(|m| **m).count() > 1 {
        return Err(oauth!(InvalidRequest, "use exactly one client authentication method"));
    }
    match (&creds.client_assertion, creds.client_assertion_type.as_deref()) {
        (Some(assertion), Some(JWT_BEARER)) => {
            return client_assertion::authenticate(p, assertion, creds.client_id.as_deref(), now).await;
        }
        (Some(_), None) => return Err(oauth!(InvalidRequest, "client_assertion needs client_assertion_type")),
        (Some(_), Some(_)) => return Err(oauth!(InvalidRequest, "unsupported client_assertion_type")),
        (None, Some(_)) => return Err(oauth!(InvalidRequest, "client_assertion_type without client_assertion")),
        (None, None) => {}
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
