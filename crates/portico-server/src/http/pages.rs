//! Hosted pages: login (fields `email` and `password`), consent and the tenant picker. Every form
//! carries a CSRF token checked against its cookie.

use super::html::{self, esc};
use super::oauth::{proceed, request_form, request_page, save_request};
use super::{client_ip, cookies, now, user_agent};
use crate::app::AppState;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use portico_protocol::authorize::{self, AuthRequest, Step};
use portico_protocol::{login, throttle};
use serde::Deserialize;
use std::net::SocketAddr;

pub async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css"), (header::CACHE_CONTROL, "public, max-age=3600")], html::CSS).into_response()
}

#[derive(Deserialize)]
pub struct ReqQuery {
    req: Option<String>,
    /// Where a login not started by an application goes afterwards: only Portico's own
    /// `/account` (never a URL from the query: no open redirect).
    next: Option<String>,
}

/// The local pages a login may return to.
pub fn local_next(next: Option<&str>) -> Option<&'static str> {
    (next == Some("/account")).then_some("/account")
}

/// The authorization request a form carries, if it names one; the "expired" page when it names
/// one that is gone, a refusal when another browser started it.
pub async fn request_for_form(s: &AppState, headers: &HeaderMap, id: Option<&str>) -> Result<Option<AuthRequest>, Response> {
    match id {
        Some(id) => request_form(s, headers, id).await.map(Some),
        None => Ok(None),
    }
}

/// As [`request_for_form`], for a page (GET): a request another browser started starts over in this one.
pub async fn request_for_page(s: &AppState, headers: &HeaderMap, addr: &SocketAddr, id: Option<&str>) -> Result<Option<AuthRequest>, Response> {
    match id {
        Some(id) => request_page(s, headers, addr, id).await.map(Some),
        None => Ok(None),
    }
}

pub fn with_cookie(mut resp: Response, cookie: Option<axum::http::HeaderValue>) -> Response {
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// A form whose CSRF token does not match its cookie.
pub fn bad_form() -> Response {
    html::error_page(
        StatusCode::FORBIDDEN,
        "The form expired or was not sent from this site. Reload the page and try again.",
    )
}

pub fn expired() -> Response {
    html::error_page(
        StatusCode::BAD_REQUEST,
        "This sign-in request has expired. Go back to the application and start again.",
    )
}

fn login_page(s: &AppState, csrf: &str, req: Option<&AuthRequest>, next: Option<&str>, email: &str, error: Option<&str>, product: Option<&str>) -> String {
    let next = local_next(next);
    // The passkey form carries the same hidden fields (made by hand until it has a template).
    let hidden = match (req, next) {
        (Some(r), _) => format!("<input type=\"hidden\" name=\"req\" value=\"{}\">", esc(&r.id)),
        (None, Some(n)) => format!("<input type=\"hidden\" name=\"next\" value=\"{n}\">"),
        (None, None) => String::new(),
    };
    html::render(&LoginPage {
        title: "Sign in",
        wide: false,
        product,
        error,
        csrf,
        req: req.map(|r| r.id.as_str()),
        next,
        email,
        passwordless: &passwordless(s, csrf, &hidden),
        // "Forgot your password?" and, for a product that takes sign-ups, "Create an account": both
        // need mail to go out.
        mail: s.mailer.is_some(),
        signup: req.filter(|r| super::signup::offered(s, r).is_some()).map(|r| r.id.as_str()),
    })
}

#[derive(askama::Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    title: &'a str,
    wide: bool,
    product: Option<&'a str>,
    error: Option<&'a str>,
    csrf: &'a str,
    req: Option<&'a str>,
    next: Option<&'a str>,
    email: &'a str,
    /// The passkey button's form and script, escaped where it is made.
    passwordless: &'a str,
    mail: bool,
    signup: Option<&'a str>,
}

/// The login page's passkey button: passwordless sign-in with a discoverable passkey.
fn passwordless(s: &AppState, csrf: &str, hidden: &str) -> String {
    if !super::passkey::available(s) {
        return String::new();
    }
    let form = super::passkey::form(
        "passkey-login",
        "/login/passkey",
        "/login/passkey/options",
        "get",
        csrf,
        hidden,
        "Sign in with a passkey",
        "secondary",
    );
    format!("{form}{}", super::passkey::SCRIPT_TAG)
}

/// The login page (a whole page, from [`login_page`]): it may run the passkey script, and its
/// forms end at the client of `req`.
fn login_response(status: StatusCode, page: &str, req: Option<&AuthRequest>) -> Response {
    let resp = html::scripted((status, axum::response::Html(page.to_owned())).into_response());
    html::forms_may_reach(resp, req.map(|r| r.redirect_uri.as_str()))
}

fn product_name(s: &AppState, req: &AuthRequest) -> Option<String> {
    s.provider.config().product_by_audience(&req.audience).map(|p| p.name.clone())
}

pub async fn login_form(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, Query(q): Query<ReqQuery>) -> Response {
    let req = match request_for_page(&s, &headers, &addr, q.req.as_deref()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let (csrf, cookie) = cookies::csrf_token(&s, &headers);
    let email = req.as_ref().and_then(|r| r.login_hint.clone()).unwrap_or_default();
    let product = req.as_ref().and_then(|r| product_name(&s, r));
    with_cookie(
        login_response(
            StatusCode::OK,
            &login_page(&s, &csrf, req.as_ref(), q.next.as_deref(), &email, None, product.as_deref()),
            req.as_ref(),
        ),
        cookie,
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    csrf: Option<String>,
    req: Option<String>,
    next: Option<String>,
}

pub async fn login_submit(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    let n = now();
    let req = match request_for_form(&s, &headers, f.req.as_deref()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !cookies::csrf_ok(&s, &headers, f.csrf.as_deref()) {
        return bad_form();
    }
    let p = &s.provider;
    let ip = client_ip(Some(&addr));
    let unavailable = |e: portico_store::StoreError| {
        tracing::error!(error = %e, "login lookup failed");
        html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in is unavailable right now. Try again.")
    };
    let refuse = |status: StatusCode, message: &str| {
        let (csrf, _) = cookies::csrf_token(&s, &headers);
        let product = req.as_ref().and_then(|r| product_name(&s, r));
        let body = login_page(&s, &csrf, req.as_ref(), f.next.as_deref(), &f.email, Some(message), product.as_deref());
        login_response(status, &body, req.as_ref())
    };
    // Too many failures for this email (known or not) or from this address: wait, unchecked.
    // Otherwise the attempt is counted before the password is checked, and given back on success.
    let gate = match throttle::reserve(p, &f.email, ip.as_deref(), throttle::now_ms()).await {
        Ok(gate) => gate,
        Err(e) => return unavailable(e),
    };
    if let Some(wait) = gate.wait {
        let mut resp = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many sign-in attempts. Try again in {wait} seconds."),
        );
        resp.headers_mut().insert(header::RETRY_AFTER, wait.into());
        return resp;
    }
    let user = match login::check_password(p, &f.email, &f.password, ip.clone(), n).await {
        Ok(u) => u,
        Err(e) => return unavailable(e),
    };
    if user.is_some()
        && let Err(e) = throttle::succeeded(p, &f.email, ip.as_deref(), throttle::now_ms()).await
    {
        return unavailable(e);
    }
    let Some(user) = user else {
        return refuse(StatusCode::UNAUTHORIZED, "Wrong email or password.");
    };
    // A user with a second factor (an authenticator app, a passkey) passes it before any session exists.
    match login::factors(p, &user.id).await.map(login::Factors::any) {
        Ok(true) => return super::mfa::challenge(&s, &user, req.as_ref(), local_next(f.next.as_deref()), n).await,
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, "second-factor lookup failed");
            return html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in is unavailable right now. Try again.");
        }
    }
    signed_in(&s, &headers, &user, vec!["pwd".into()], req, local_next(f.next.as_deref()), ip, n).await
}

/// Starts the SSO session of a user who has passed every factor (`amr`) and sends the browser on:
/// back into the authorization request it came with, or to a local page.
pub async fn signed_in(
    s: &AppState,
    headers: &HeaderMap,
    user: &portico_model::User,
    amr: Vec<String>,
    req: Option<AuthRequest>,
    next: Option<&'static str>,
    ip: Option<String>,
    n: i64,
) -> Response {
    let unavailable = || html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in is unavailable right now. Try again.");
    let (cookie, session) = match login::start_session(&s.provider, user, amr, &user_agent(headers), ip.as_deref().unwrap_or(""), n).await {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "session start failed");
            return unavailable();
        }
    };
    let set = cookies::set(s, cookies::session_name(s), &cookie, None);
    let target = match req {
        Some(mut r) => {
            // Earned by this session alone: whoever else resumes the request has not signed in.
            r.advance(&session, |g| g.login_done = true);
            if save_request(s, &r).await.is_err() {
                return unavailable();
            }
            format!("/oauth2/authorize/resume?req={}", r.id)
        }
        None => next.unwrap_or("/").to_owned(),
    };
    with_cookie(html::secure(Redirect::to(&target).into_response(), None), Some(set))
}

pub async fn consent_form(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, Query(q): Query<ReqQuery>) -> Response {
    let req = match request_page(&s, &headers, &addr, q.req.as_deref().unwrap_or("")).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    // Shown only to the session the request waits for; anyone else gets the request decided anew.
    let session = current_user(&s, &headers).await;
    if !session.as_ref().is_some_and(|x| req.waits_for(Step::Consent, x)) {
        return proceed(&s, &headers, &addr, req).await;
    }
    let config = s.provider.config();
    let client = config.client(&req.client_id).map(|e| e.client.name.clone()).unwrap_or_default();
    let product = product_name(&s, &req).unwrap_or_default();
    let tenant = req
        .waiting
        .as_ref()
        .and_then(|w| w.tenant.as_deref())
        .and_then(|t| config.tenant(&portico_model::TenantId::new(t)))
        .map(|t| t.name.clone());
    let (csrf, cookie) = cookies::csrf_token(&s, &headers);
    let view = ConsentPage {
        title: "Allow access",
        wide: false,
        client: if client.is_empty() { &req.client_id } else { &client },
        product: &product,
        tenant: tenant.as_deref(),
        scopes: req.scope.iter().map(|sc| describe_scope(sc)).collect(),
        csrf: &csrf,
        req: &req.id,
    };
    let page = html::forms_may_reach(html::view(StatusCode::OK, &view), Some(&req.redirect_uri));
    with_cookie(page, cookie)
}

/// What a scope lets the client do, in the user's words (an unknown scope by its name).
fn describe_scope(scope: &str) -> &str {
    match scope {
        "openid" => "Know who you are",
        "profile" => "See your name",
        "email" => "See your email address",
        "offline_access" => "Stay signed in when you are not using it",
        other => other,
    }
}

#[derive(askama::Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    title: &'a str,
    wide: bool,
    client: &'a str,
    product: &'a str,
    tenant: Option<&'a str>,
    scopes: Vec<&'a str>,
    csrf: &'a str,
    req: &'a str,
}

#[derive(askama::Template)]
#[template(path = "select_tenant.html")]
struct TenantPage<'a> {
    title: &'a str,
    wide: bool,
    product: &'a str,
    entries: &'a [portico_protocol::tenants::PickerEntry],
    csrf: &'a str,
    req: &'a str,
}

#[derive(Deserialize)]
pub struct DecisionForm {
    csrf: Option<String>,
    req: String,
    decision: Option<String>,
    organization: Option<String>,
}

/// The browser's SSO session behind its cookie, if the session is live.
pub async fn current_user(s: &AppState, headers: &HeaderMap) -> Option<portico_store::SsoSession> {
    let c = cookies::get(headers, cookies::session_name(s))?;
    login::session_from_cookie(&s.provider, c, now()).await.ok().flatten()
}

/// A form for a step the request does not wait at (for this session): nothing changes.
fn not_waiting() -> Response {
    html::error_page(
        StatusCode::BAD_REQUEST,
        "This sign-in is not waiting for that step. Go back to the application and start again.",
    )
}

pub async fn consent_submit(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<DecisionForm>,
) -> Response {
    let mut req = match request_form(&s, &headers, &f.req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !cookies::csrf_ok(&s, &headers, f.csrf.as_deref()) {
        return bad_form();
    }
    let Some(session) = current_user(&s, &headers).await else {
        return proceed(&s, &headers, &addr, req).await;
    };
    // Only the session the request waits for, at the consent step, may answer it.
    if !req.waits_for(Step::Consent, &session) {
        return not_waiting();
    }
    let p = &s.provider;
    // Answered once: of two answers sent at once only one goes on (and makes a code).
    if !matches!(p.store.take_auth_request(&req.id, now()).await, Ok(Some(_))) {
        return expired();
    }
    if f.decision.as_deref() != Some("allow") {
        let _ = p.store.finish_auth_request(&req.id, now()).await;
        return super::oauth::respond(authorize::deny(
            p,
            &req,
            portico_protocol::ErrorCode::AccessDenied,
            "the user denied the request",
        ));
    }
    let Some(product) = p.config().product_by_audience(&req.audience).map(|x| x.slug.clone()) else {
        return expired();
    };
    let n = now();
    let event = portico_store::AuditEvent::new(n, "consent.granted", session.user_id.as_str())
        .product(product.as_str())
        .data(serde_json::json!({"client_id": req.client_id, "scope": req.scope_string()}));
    if p.store
        .put_consent(&session.user_id, &req.client_id, product.as_str(), &req.scope_string(), n, &[event])
        .await
        .is_err()
    {
        return html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "The consent could not be saved. Try again.");
    }
    req.advance(&session, |g| g.consent_done = true);
    proceed(&s, &headers, &addr, req).await
}

pub async fn tenant_form(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, Query(q): Query<ReqQuery>) -> Response {
    let req = match request_page(&s, &headers, &addr, q.req.as_deref().unwrap_or("")).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let Some(session) = current_user(&s, &headers).await.filter(|x| req.waits_for(Step::TenantPicker, x)) else {
        return proceed(&s, &headers, &addr, req).await;
    };
    let p = &s.provider;
    let config = p.config();
    let Some(product) = config.product_by_audience(&req.audience) else {
        return expired();
    };
    let Ok(entries) = portico_protocol::tenants::picker_entries(p, &session.user_id, product, now()).await else {
        return html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "The organizations could not be loaded. Try again.");
    };
    let (csrf, cookie) = cookies::csrf_token(&s, &headers);
    // Buttons in a list: Tab moves between them, Enter picks; the last one used has the focus.
    let view = TenantPage {
        title: "Choose an organization",
        wide: false,
        product: &product.name,
        entries: &entries,
        csrf: &csrf,
        req: &req.id,
    };
    let page = html::forms_may_reach(html::view(StatusCode::OK, &view), Some(&req.redirect_uri));
    with_cookie(page, cookie)
}

pub async fn tenant_submit(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<DecisionForm>) -> Response {
    let mut req = match request_form(&s, &headers, &f.req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !cookies::csrf_ok(&s, &headers, f.csrf.as_deref()) {
        return bad_form();
    }
    let Some(session) = current_user(&s, &headers).await else {
        return proceed(&s, &headers, &addr, req).await;
    };
    // Only the session the request waits for, at the picker, chooses its tenant; once.
    if !req.waits_for(Step::TenantPicker, &session) {
        return not_waiting();
    }
    if !matches!(s.provider.store.take_auth_request(&req.id, now()).await, Ok(Some(_))) {
        return expired();
    }
    // Kept with the request: bounded like the `organization` parameter it stands for (a longer
    // one names no tenant, and the picker shows again).
    let limit = authorize::MAX_PARAM.iter().find(|(k, _)| *k == "organization").map_or(0, |(_, l)| *l);
    let choice = f.organization.filter(|o| !o.is_empty() && o.len() <= limit);
    req.advance(&session, |g| g.organization = choice);
    proceed(&s, &headers, &addr, req).await
}
