//! Which web origins a browser-based client may call Portico from (the Fetch standard's CORS
//! protocol; the HTTP layer writes the headers).
//!
//! - Discovery and JWKS are public documents: any origin reads them.
//! - The token, revocation, UserInfo, pushed-authorization and device-authorization endpoints
//!   answer a cross-origin request only from an origin the client it names registered in
//!   `web_origins`. A request from any other origin is
//!   refused **before anything changes** (a code stays unredeemed, a token unrevoked): a browser
//!   sends a form-encoded POST cross-origin without asking first, so hiding the answer would not be
//!   enough. (This binds browsers; a server presenting the same code or token is stopped by PKCE
//!   and rotation, not by CORS.)
//! - A pre-flight names no client (it carries no body), so it is allowed for an origin some client
//!   registered; the request itself is then judged against its own client.
//! - Credentials (cookies) never cross: no answer says `Access-Control-Allow-Credentials`.
//! - Introspection, hand-off and the admin API are for backends and answer no origin at all.

use crate::error::{OAuthError, oauth};
use crate::provider::Provider;
use crate::snapshot::Snapshot;
use portico_model::Client;

/// Whether `client` accepts browser requests from `origin` (the `Origin` header exactly as the
/// browser serialized it): one of its `web_origins`, or one of them on a tenant's own domain.
pub fn client_allows(config: &Snapshot, client: &Client, origin: &str) -> bool {
    config.web_origin_of(client, origin).is_some()
}

/// Whether some client accepts `origin`: what a pre-flight, which names no client, can be told.
pub fn any_client_allows(p: &Provider, origin: &str) -> bool {
    let config = p.config();
    config.clients().any(|e| client_allows(&config, &e.client, origin))
}

/// A cross-origin request to an endpoint that names its client (`client_id`, Basic or an
/// assertion): `Ok(None)` when the request is not cross-origin (no `Origin` header), `Ok(Some)`
/// when the client registered the origin; otherwise refused, and the answer carries no CORS header.
pub fn check_client(p: &Provider, client_id: Option<&str>, origin: Option<&str>) -> Result<Option<String>, OAuthError> {
    let Some(origin) = origin else { return Ok(None) };
    let config = p.config();
    let allowed = client_id
        .and_then(|id| config.client(id).map(|e| client_allows(&config, &e.client, origin)))
        .unwrap_or(false);
    if allowed { Ok(Some(origin.to_owned())) } else { Err(refused(origin)) }
}

/// The refusal of a request from an origin its client did not register.
pub fn refused(origin: &str) -> OAuthError {
    OAuthError {
        origin_refused: true,
        ..oauth!(InvalidRequest, "this client does not accept requests from this web origin").detail(format!("origin {origin:?}"))
    }
}
