//! CORS headers (the Fetch standard's CORS protocol) on the endpoints browser-based clients call.
//! Which origin may call which endpoint is [`portico_protocol::cors`]'s rule; this writes it.

use crate::app::AppState;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What a page may read of an answer besides the CORS-safelisted headers: the nonce for its next
/// DPoP proof, the challenge of a refusal, the wait of a rate limit.
const EXPOSED: HeaderValue = HeaderValue::from_static("DPoP-Nonce, WWW-Authenticate, Retry-After");
/// What a pre-flight may ask to send: the token or client credentials, a DPoP proof, the form.
const ALLOWED_HEADERS: HeaderValue = HeaderValue::from_static("Authorization, Content-Type, DPoP");
/// How long a browser may keep a pre-flight's answer (seconds). Short: a client removed from the
/// suite should stop being allowed soon, though the request itself is judged anew every time.
const PREFLIGHT_MAX_AGE: HeaderValue = HeaderValue::from_static("600");

/// The request's `Origin`: `None` when it has none (not a cross-origin browser request). Sent
/// twice, or not as text, it is an origin no client registered.
pub fn origin(headers: &HeaderMap) -> Option<String> {
    let mut all = headers.get_all(header::ORIGIN).iter();
    let first = all.next()?;
    if all.next().is_some() {
        return Some(String::new());
    }
    Some(first.to_str().unwrap_or("").to_owned())
}

/// A public document (discovery, JWKS): any page may read it; no credentials.
pub fn public(mut resp: Response) -> Response {
    resp.headers_mut().insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    resp
}

/// The pre-flight of a public document.
pub async fn public_preflight() -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    resp
}

/// The pre-flight of the token and revocation endpoints.
pub async fn preflight_post(s: axum::extract::State<AppState>, headers: HeaderMap) -> Response {
    preflight(&s, &headers, "POST")
}

/// The pre-flight of the UserInfo endpoint.
pub async fn preflight_userinfo(s: axum::extract::State<AppState>, headers: HeaderMap) -> Response {
    preflight(&s, &headers, "GET, POST")
}

/// A pre-flight carries no body and so names no client: it is allowed for an origin some client
/// registered, and the request that follows is judged against its own client. Any other origin
/// gets an answer without CORS headers, which the browser takes as a refusal.
fn preflight(s: &AppState, headers: &HeaderMap, methods: &'static str) -> Response {
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static(methods));
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    let Some(origin) = origin(headers) else { return resp };
    if !portico_protocol::cors::any_client_allows(&s.provider, &origin) {
        return resp;
    }
    let Ok(value) = HeaderValue::from_str(&origin) else { return resp };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(methods));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOWED_HEADERS);
    h.insert(header::ACCESS_CONTROL_MAX_AGE, PREFLIGHT_MAX_AGE);
    resp
}

/// The origin of a request that names its client (token, revocation, PAR, device authorization),
/// when that client registered it: `Ok(None)` for a request that is not cross-origin; refused
/// (before anything changes) for any other origin.
pub fn of_client(
    s: &AppState,
    headers: &HeaderMap,
    creds: &portico_protocol::client_auth::ClientCredentials,
) -> Result<Option<String>, portico_protocol::OAuthError> {
    portico_protocol::cors::check_client(&s.provider, creds.claimed_id().as_deref(), origin(headers).as_deref())
}

/// The answer to a request from `origin`, which its client registered: that page may read it.
pub fn allow(mut resp: Response, origin: Option<&str>) -> Response {
    let Some(value) = origin.and_then(|o| HeaderValue::from_str(o).ok()) else {
        return resp;
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSED);
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    resp
}

/// Introspection and hand-off are for backends: a request a web page sent (it carries `Origin`)
/// is refused before anything is read or made.
pub fn backend_only(headers: &HeaderMap) -> Result<(), portico_protocol::OAuthError> {
    match origin(headers) {
        None => Ok(()),
        Some(o) => Err(portico_protocol::OAuthError {
            origin_refused: true,
            ..portico_protocol::OAuthError::new(portico_protocol::ErrorCode::InvalidRequest, "this endpoint is for backends, not web pages")
                .detail(format!("origin {o:?}"))
        }),
    }
}
