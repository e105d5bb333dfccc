//! OAuth 2.0 / OpenID Connect endpoints. Each handler extracts, calls one protocol function and
//! maps its outcome to a response.

use super::flow::Flow;
use super::{client_ip, cors, html, now};
use crate::app::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use portico_model::Secret;
use portico_protocol::authorize::{AuthResponse, ResponseMode};
use portico_protocol::client_auth::ClientCredentials;
use portico_protocol::interaction;
use portico_protocol::token::{self, TokenRequest};
use portico_protocol::{OAuthError, introspect as introspection, revoke as revocation, userinfo as user_info};
use std::net::SocketAddr;

/// One `IntoResponse` for protocol errors: RFC 6749 §5.2 JSON, the right status, and
/// `WWW-Authenticate` where a 401 needs it.
pub struct OAuthJsonError(pub OAuthError);

impl IntoResponse for OAuthJsonError {
    fn into_response(self) -> Response {
        let e = self.0;
        if e.code == portico_protocol::ErrorCode::ServerError {
            tracing::error!(detail = %e.detail, "server error");
        } else if !e.detail.is_empty() {
            tracing::info!(error = e.code.as_str(), detail = %e.detail, "request refused");
        }
        let mut status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST);
        // RFC 9449 §7.1: a protected resource refuses a DPoP request with 401 and a DPoP challenge.
        if e.dpop_challenge {
            status = StatusCode::UNAUTHORIZED;
        }
        // RFC 6750 §3.1: a request without any access token learns only that one is needed.
        if e.no_credentials {
            let mut resp = no_store(StatusCode::UNAUTHORIZED.into_response());
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"portico\""));
            return resp;
        }
        let mut resp = (status, Json(e.body())).into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(nonce) = e.dpop_nonce.as_deref().and_then(|n| HeaderValue::from_str(n).ok()) {
            h.insert(DPOP_NONCE, nonce);
        }
        if e.dpop_challenge {
            let v = format!(
                "DPoP error=\"{}\", error_description=\"{}\", algs=\"{}\"",
                e.code.as_str(),
                e.description,
                portico_jose::jwks::supported_names()
            );
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_str(&v).expect("ascii"));
        } else if e.code == portico_protocol::ErrorCode::InvalidToken {
            let v = format!("Bearer error=\"invalid_token\", error_description=\"{}\"", e.description);
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_str(&v).expect("ascii"));
        } else if status == StatusCode::UNAUTHORIZED && e.basic_challenge {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"portico\""));
        }
        resp
    }
}

pub(super) fn no_store(mut resp: Response) -> Response {
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

/// A JSON document that caches may keep for five minutes (discovery, JWKS), from bytes serialized
/// beforehand: these two answer far more often than they change.
fn public_json(bytes: std::sync::Arc<[u8]>) -> Response {
    let headers = [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=300")];
    // The body shares the cached bytes: no copy per request.
    (headers, axum::body::Bytes::from_owner(bytes)).into_response()
}

pub async fn discovery(State(s): State<AppState>) -> Response {
    cors::public(public_json(s.provider.discovery_json()))
}

pub async fn jwks(State(s): State<AppState>) -> Response {
    let p = &s.provider;
    cors::public(public_json(p.keys().jwks_bytes(now(&s), p.key_retention())))
}

/// Parses `application/x-www-form-urlencoded` keeping order and duplicates.
pub fn form_pairs(body: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    serde_urlencoded::from_bytes(body).map_err(|_| OAuthError::new(portico_protocol::ErrorCode::InvalidRequest, "the body is not form-encoded"))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: both parts form-url-encoded)
/// and the body.
pub(super) fn client_credentials(headers: &HeaderMap, form: &[(String, String)]) -> Result<ClientCredentials, OAuthError> {
    let invalid = || OAuthError {
        basic_challenge: true,
        ..OAuthError::new(portico_protocol::ErrorCode::InvalidClient, "client authentication failed")
    };
    let basic = match headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        Some(v) if v.len() > 6 && v[..6].eq_ignore_ascii_case("basic ") => {
            let raw = base64::engine::general_purpose::STANDARD.decode(v[6..].trim()).map_err(|_| invalid())?;
            let text = String::from_utf8(raw).map_err(|_| invalid())?;
            let (id, secret) = text.split_once(':').ok_or_else(invalid)?;
            Some((
                percent_decode(id).ok_or_else(invalid)?,
                Secret::new(percent_decode(secret).ok_or_else(invalid)?),
            ))
        }
        _ => None,
    };
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    Ok(ClientCredentials {
        basic,
        client_id: field("client_id"),
        client_secret: field("client_secret").map(Secret::new),
        client_assertion: field("client_assertion"),
        client_assertion_type: field("client_assertion_type"),
    })
}

/// A form-encoded OAuth request's parameters, refused when one is repeated
/// ([`portico_protocol::params::Params::reject_repeated`], the rule every endpoint shares).
pub(super) fn oauth_form(body: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    let form = form_pairs(body)?;
    portico_protocol::params::Params(&form).reject_repeated()?;
    Ok(form)
}

pub async fn token(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Bytes) -> Response {
    let mut allowed = None;
    let result = async {
        let form = oauth_form(&body)?;
        let creds = client_credentials(&headers, &form)?;
        allowed = cors::of_client(&s, &headers, &creds)?;
        if let Some(wait) = over_limit(&s, &creds, &addr) {
            return Ok(Err(wait));
        }
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let req = TokenRequest {
            grant_type: field("grant_type"),
            code: field("code"),
            redirect_uri: field("redirect_uri"),
            code_verifier: field("code_verifier"),
            refresh_token: field("refresh_token"),
            scope: field("scope"),
            resource: form.iter().filter(|(k, _)| k == "resource").map(|(_, v)| v.clone()).collect(),
            audience: field("audience"),
            subject_token: field("subject_token"),
            subject_token_type: field("subject_token_type"),
            requested_token_type: field("requested_token_type"),
            actor_token: field("actor_token"),
            organization: field("organization"),
            device_code: field("device_code"),
            dpop: dpop_presented(&headers),
            dpop_jkt: None,
            ip: client_ip(Some(&addr)),
        };
        let (grant, outcome) = token::exchange(&s.provider, &creds, req, now(&s)).await;
        let label = grant.map(|g| g.label()).unwrap_or("unknown");
        match &outcome {
            Ok(_) => metrics::counter!("portico_tokens_issued_total", "grant_type" => label).increment(1),
            Err(e) => metrics::counter!("portico_tokens_refused_total", "grant_type" => label, "error" => e.code.as_str()).increment(1),
        }
        outcome.map(Ok)
    }
    .await;
    let resp = match result {
        Ok(Ok(t)) => no_store(Json(t).into_response()),
        Ok(Err(wait)) => too_many(wait),
        Err(e) => OAuthJsonError(e).into_response(),
    };
    cors::allow(with_dpop_nonce(&s, resp), allowed.as_deref())
}

/// RFC 9449 §8.2 and §9: when nonces are required, every answer of an endpoint that takes DPoP
/// proofs carries the nonce to use next.
pub(super) fn with_dpop_nonce(s: &AppState, mut resp: Response) -> Response {
    if s.provider.settings.dpop_nonces && !resp.headers().contains_key(DPOP_NONCE) {
        let nonce = portico_protocol::dpop::nonce(&s.provider, now(s));
        resp.headers_mut().insert(DPOP_NONCE, HeaderValue::from_str(&nonce).expect("base64url"));
    }
    resp
}

const DPOP_NONCE: &str = "dpop-nonce";

/// The access token of the `Authorization` header (RFC 6750 §2.1 `Bearer`, RFC 9449 §7.1 `DPoP`),
/// and whether it came with the `DPoP` scheme. Never from the URL.
pub(super) fn access_token(headers: &HeaderMap) -> Option<(&str, bool)> {
    let v = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())?;
    let scheme = |name: &str| v.len() > name.len() && v[..name.len()].eq_ignore_ascii_case(name);
    match (scheme("bearer "), scheme("dpop ")) {
        (true, _) => Some((v[7..].trim(), false)),
        (false, true) => Some((v[5..].trim(), true)),
        (false, false) => None,
    }
}

/// What a protected resource of Portico's needs to check a DPoP-bound token: the scheme, the
/// proof, and the request's method and URL.
pub(super) fn dpop_at(s: &AppState, method: &axum::http::Method, headers: &HeaderMap, path: &str) -> portico_protocol::dpop::AtResource {
    let dpop_scheme = access_token(headers).is_some_and(|(_, dpop)| dpop);
    portico_protocol::dpop::AtResource {
        dpop_scheme,
        proof: dpop_presented(headers),
        method: method.as_str().to_owned(),
        htu: format!("{}{path}", s.provider.issuer),
    }
}

/// The request's `DPoP` header (RFC 9449 §4.1), and whether it came more than once.
fn dpop_presented(headers: &HeaderMap) -> portico_protocol::dpop::Presented {
    let mut all = headers.get_all("dpop").iter();
    // A header that is not text is a proof all the same, one that fails: never "no proof".
    let first = all.next().map(|v| v.to_str().unwrap_or("\u{0}").to_owned());
    portico_protocol::dpop::Presented {
        several: all.next().is_some(),
        proof: first,
    }
}

/// `429 Too Many Requests` with `Retry-After` (RFC 6585 §4). The body is an OAuth error;
/// RFC 6749 defines none for a rate limit at the token endpoint, so it borrows
/// `temporarily_unavailable` from the authorization endpoint's (§4.1.2.1).
pub(super) fn too_many(wait: u64) -> Response {
    let body = serde_json::json!({"error": "temporarily_unavailable", "error_description": "too many requests from this client: try again later"});
    let mut resp = no_store((StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response());
    resp.headers_mut().insert(header::RETRY_AFTER, wait.max(1).into());
    resp
}

/// Seconds a registered client over its request rate must wait; audited (sampled).
pub(super) fn over_limit(s: &AppState, creds: &ClientCredentials, addr: &SocketAddr) -> Option<u64> {
    // No limit configured: not even the registry lookup on this hot path.
    if !s.client_limits.enabled() {
        return None;
    }
    let id = creds.claimed_id()?;
    let id = id.as_str();
    s.provider.config().client(id)?;
    let (wait, audit) = s.client_limits.check(id)?;
    metrics::counter!("portico_token_requests_throttled_total").increment(1);
    if audit {
        let event = portico_store::AuditEvent::new(now(s), "token.throttled", format!("client:{id}"))
            .ip(client_ip(Some(addr)))
            .data(serde_json::json!({"client_id": id, "retry_after": wait}));
        s.provider.writer.record(event);
    }
    Some(wait)
}

/// Seconds to wait for a request that leaves a pending state behind (a pushed request, a device
/// authorization): over its client's rate, or — for a public client, which names itself and so
/// is a write anyone can cause — over its address's allowance of pending writes.
pub(super) fn pending_write_limit(s: &AppState, creds: &ClientCredentials, addr: &SocketAddr) -> Option<u64> {
    if let Some(wait) = over_limit(s, creds, addr) {
        return Some(wait);
    }
    let unauthenticated = creds.basic.is_none() && creds.client_secret.is_none() && creds.client_assertion.is_none();
    client_ip(Some(addr)).filter(|_| unauthenticated).and_then(|ip| s.pending_limits.check(&ip))
}

/// `POST /oauth2/par` (RFC 9126): a client pushes its authorization request; `201 Created`.
pub async fn push_authorization_request(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Bytes) -> Response {
    let mut allowed = None;
    let result = async {
        let form = oauth_form(&body)?;
        let creds = client_credentials(&headers, &form)?;
        // A web page only from an origin its client registered, as at the token endpoint.
        allowed = cors::of_client(&s, &headers, &creds)?;
        if let Some(wait) = pending_write_limit(&s, &creds, &addr) {
            return Ok(Err(wait));
        }
        portico_protocol::par::push(&s.provider, &creds, &dpop_presented(&headers), &form, now(&s))
            .await
            .map(Ok)
    }
    .await;
    let resp = match result {
        Ok(Ok(r)) => no_store((StatusCode::CREATED, Json(r)).into_response()),
        Ok(Err(wait)) => too_many(wait),
        Err(e) => OAuthJsonError(e).into_response(),
    };
    cors::allow(with_dpop_nonce(&s, resp), allowed.as_deref())
}

/// `POST /oauth2/handoff`: a product's backend asks for a hand-off code for another product.
pub async fn handoff(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        cors::backend_only(&headers)?;
        let form = oauth_form(&body)?;
        let creds = client_credentials(&headers, &form)?;
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let req = portico_protocol::handoff::HandoffRequest {
            subject_token: field("subject_token"),
            dpop: dpop_presented(&headers),
            resource: form.iter().filter(|(k, _)| k == "resource").map(|(_, v)| v.clone()).collect(),
            organization: field("organization"),
            context: field("context"),
            ip: client_ip(Some(&addr)),
        };
        portico_protocol::handoff::create(&s.provider, &creds, req, now(&s)).await
    }
    .await;
    let resp = match result {
        Ok(r) => no_store(Json(r).into_response()),
        Err(e) => OAuthJsonError(e).into_response(),
    };
    with_dpop_nonce(&s, resp)
}

pub async fn introspect(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        cors::backend_only(&headers)?;
        let form = oauth_form(&body)?;
        let creds = client_credentials(&headers, &form)?;
        let token = form.iter().find(|(k, _)| k == "token").map(|(_, v)| v.as_str());
        introspection::introspect(&s.provider, &creds, token, now(&s)).await
    }
    .await;
    match result {
        Ok(v) => no_store(Json(v).into_response()),
        Err(e) => OAuthJsonError(e).into_response(),
    }
}

pub async fn revoke(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Bytes) -> Response {
    let mut allowed = None;
    let result = async {
        let form = oauth_form(&body)?;
        let creds = client_credentials(&headers, &form)?;
        allowed = cors::of_client(&s, &headers, &creds)?;
        let token = form.iter().find(|(k, _)| k == "token").map(|(_, v)| v.as_str());
        revocation::revoke(&s.provider, &creds, token, client_ip(Some(&addr)), now(&s)).await
    }
    .await;
    let resp = match result {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(e) => OAuthJsonError(e).into_response(),
    };
    cors::allow(resp, allowed.as_deref())
}

/// RFC 6750 §2.1 header or §2.2 form body, or RFC 9449 §7.1's `DPoP` scheme; never the query
/// (invariant 7).
pub async fn userinfo(State(s): State<AppState>, method: axum::http::Method, headers: HeaderMap, body: Bytes) -> Response {
    // RFC 6750 §2 and RFC 9449 §4.3: one way of presenting the token, once.
    if headers.get_all(header::AUTHORIZATION).iter().count() > 1 {
        let e = portico_protocol::OAuthError::new(portico_protocol::ErrorCode::InvalidRequest, "send one Authorization header");
        return OAuthJsonError(e).into_response();
    }
    let from_header = access_token(&headers).map(|(token, _)| token.to_owned());
    let from_body = form_pairs(&body)
        .ok()
        .and_then(|f| f.into_iter().find(|(k, _)| k == "access_token").map(|(_, v)| v));
    let presented = user_info::Presented {
        token: from_header.or(from_body),
        at: dpop_at(&s, &method, &headers, "/oauth2/userinfo"),
        origin: cors::origin(&headers),
    };
    let outcome = user_info::userinfo(&s.provider, &presented, now(&s)).await;
    // A success means the token's client registered the origin; a refusal that names no client
    // (the token did not verify) may be read by any origin some client registered.
    let allowed = presented.origin.as_deref().filter(|o| match &outcome {
        Ok(_) => true,
        Err(e) => !e.origin_refused && portico_protocol::cors::any_client_allows(&s.provider, o),
    });
    let resp = match outcome {
        Ok(v) => no_store(Json(v).into_response()),
        Err(e) => OAuthJsonError(e).into_response(),
    };
    cors::allow(with_dpop_nonce(&s, resp), allowed)
}

pub async fn authorize_get(State(s): State<AppState>, flow: Flow, RawQuery(q): RawQuery) -> Response {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(q.as_deref().unwrap_or("")).unwrap_or_default();
    let i = interaction::authorize(&flow.cx(&s), &params).await;
    flow.answer(&s, i, |v| match v {})
}

pub async fn authorize_post(State(s): State<AppState>, flow: Flow, body: Bytes) -> Response {
    let params = form_pairs(&body).unwrap_or_default();
    let i = interaction::authorize(&flow.cx(&s), &params).await;
    flow.answer(&s, i, |v| match v {})
}

#[derive(serde::Deserialize)]
pub struct ResumeQuery {
    req: String,
}

/// After login, consent or the tenant picker: decide the stored request again.
pub async fn authorize_resume(State(s): State<AppState>, flow: Flow, Query(q): Query<ResumeQuery>) -> Response {
    let i = interaction::resume(&flow.cx(&s), &q.req).await;
    flow.answer(&s, i, |v| match v {})
}

/// Sends an authorization response the way its response mode says.
pub fn respond(resp: AuthResponse) -> Response {
    match resp.mode {
        ResponseMode::Query => html::secure(Redirect::to(&query_redirect(&resp)).into_response(), None),
        ResponseMode::Fragment => {
            let encoded = serde_urlencoded::to_string(&resp.params).expect("pairs encode");
            html::secure(Redirect::to(&format!("{}#{encoded}", resp.redirect_uri)).into_response(), None)
        }
        ResponseMode::FormPost => {
            let nonce = portico_protocol::random::token();
            let page = FormPostPage {
                title: "Signing in",
                wide: false,
                action: &resp.redirect_uri,
                params: &resp.params,
                nonce: &nonce,
            };
            let page = html::secure((StatusCode::OK, axum::response::Html(html::render(&page))).into_response(), Some(&nonce));
            html::forms_may_reach(page, Some(&resp.redirect_uri))
        }
        ResponseMode::WebMessage => web_message(&resp),
    }
}

/// The redirect URI with the response's parameters added to its query.
fn query_redirect(resp: &AuthResponse) -> String {
    let encoded = serde_urlencoded::to_string(&resp.params).expect("pairs encode");
    let sep = if resp.redirect_uri.contains('?') { '&' } else { '?' };
    format!("{}{sep}{encoded}", resp.redirect_uri)
}

/// The Form Post Response Mode answer: the parameters as hidden fields, posted to the redirect URI
/// by a script this page's nonce allows (a button without scripts).
#[derive(askama::Template)]
#[template(path = "form_post.html")]
struct FormPostPage<'a> {
    title: &'a str,
    wide: bool,
    action: &'a str,
    params: &'a [(String, String)],
    nonce: &'a str,
}

/// JSON that is safe inside a `<script>` element (`<`, `>`, `&`, U+2028 and U+2029 as `\\u`
/// escapes): the one value besides [`html::Fragment`] a page embeds unescaped, in the web message
/// page's script.
struct ScriptJson(String);

impl ScriptJson {
    fn of(v: &serde_json::Value) -> Self {
        let json = v.to_string();
        Self(
            json.replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026")
                .replace('\u{2028}', "\\u2028")
                .replace('\u{2029}', "\\u2029"),
        )
    }
}

impl std::fmt::Display for ScriptJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(askama::Template)]
#[template(path = "web_message.html")]
struct WebMessagePage<'a> {
    title: &'a str,
    wide: bool,
    nonce: &'a str,
    message: ScriptJson,
    /// The client's registered origin; `None` when it has none (nothing is posted).
    origin: Option<ScriptJson>,
    /// The same response as a redirect to the redirect URI, for a page with neither opener nor
    /// parent: a popup its opener's `Cross-Origin-Opener-Policy` cut off lands back on the app.
    fallback: ScriptJson,
}

/// The Web Message Response Mode answer: a page that posts `{type: "authorization_response",
/// response: {…}}` to its opener (a popup) or parent (an iframe), with the target origin set to the
/// client's registered origin, so no other page can read it; and that only that origin may frame.
/// Without a registered origin it posts nothing. A page with neither opener nor parent (a popup
/// whose opener sent `Cross-Origin-Opener-Policy: same-origin`, which severs the two) redirects
/// to the registered redirect URI with the response in the query instead, as the code flow would.
fn web_message(resp: &AuthResponse) -> Response {
    let nonce = portico_protocol::random::token();
    let response: serde_json::Map<String, serde_json::Value> = resp.params.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect();
    let message = serde_json::json!({"type": "authorization_response", "response": response});
    let page = WebMessagePage {
        title: "Signing in",
        wide: false,
        nonce: &nonce,
        message: ScriptJson::of(&message),
        origin: resp.web_origin.as_ref().map(|o| ScriptJson::of(&serde_json::json!(o))),
        fallback: ScriptJson::of(&serde_json::json!(query_redirect(resp))),
    };
    html::secure_framed_by(
        (StatusCode::OK, axum::response::Html(html::render(&page))).into_response(),
        Some(&nonce),
        resp.web_origin.as_deref(),
    )
}
