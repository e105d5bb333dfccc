//! Hosted pages of the sign-in: login (fields `email` and `password`), consent and the tenant
//! picker. Each handler extracts, makes one call into `portico_protocol::interaction` and renders
//! its answer; every form's CSRF token is checked by [`Checked`] before.

use super::flow::{Checked, Flow, csrf_form};
use super::html;
use crate::app::AppState;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use portico_protocol::interaction::{self, ConsentView, LoginError, LoginView, TenantView};
use serde::Deserialize;

pub use super::flow::bad_form;

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

pub fn with_cookie(mut resp: Response, cookie: Option<axum::http::HeaderValue>) -> Response {
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
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
    /// The passkey button's form and script, rendered from its own template.
    passwordless: &'a html::Fragment,
    mail: bool,
    signup: Option<&'a str>,
}

/// A passkey ceremony's form (`passkey_form.html`): it finishes at `action`, and its button
/// (shown by the script) starts the ceremony at `options`.
#[derive(askama::Template)]
#[template(path = "passkey_form.html")]
pub struct PasskeyForm<'a> {
    pub id: &'a str,
    pub action: &'a str,
    pub options: &'a str,
    /// `get` (sign in) or `create` (register).
    pub mode: &'a str,
    pub csrf: &'a str,
    pub req: Option<&'a str>,
    pub next: Option<&'a str>,
    /// A field naming the passkey being registered.
    pub name_field: bool,
    pub label: &'a str,
    pub class: &'a str,
}

impl PasskeyForm<'_> {
    /// The form, when this server can do passkeys; otherwise nothing.
    pub fn render_if(&self, s: &AppState) -> html::Fragment {
        if super::passkey::available(s) {
            html::fragment(self)
        } else {
            html::Fragment::default()
        }
    }
}

/// The login page: it may run the passkey script, and its forms end at the client of the request.
fn login_page(s: &AppState, flow: &Flow, v: LoginView) -> Response {
    let (csrf, cookie) = flow.csrf(s);
    let req = v.req.as_ref().map(|r| r.id.as_str());
    let message = v.error.map(|e| match e {
        LoginError::Throttled(wait) => format!("Too many sign-in attempts. Try again in {wait} seconds."),
        LoginError::WrongPassword => "Wrong email or password.".to_owned(),
    });
    let passwordless = PasskeyForm {
        id: "passkey-login",
        action: "/login/passkey",
        options: "/login/passkey/options",
        mode: "get",
        csrf: &csrf,
        req,
        next: v.next,
        name_field: false,
        label: "Sign in with a passkey",
        class: "secondary",
    };
    let page = LoginPage {
        title: "Sign in",
        wide: false,
        product: v.product.as_deref(),
        error: message.as_deref(),
        csrf: &csrf,
        req,
        next: v.next,
        email: &v.email,
        passwordless: &passwordless.render_if(s),
        // "Forgot your password?" and, for a product that takes sign-ups, "Create an account": both
        // need mail to go out.
        mail: s.mailer.is_some(),
        signup: v.req.as_ref().filter(|r| super::signup::offered(s, r).is_some()).map(|r| r.id.as_str()),
    };
    let status = match v.error {
        None => StatusCode::OK,
        Some(LoginError::Throttled(_)) => StatusCode::TOO_MANY_REQUESTS,
        Some(LoginError::WrongPassword) => StatusCode::UNAUTHORIZED,
    };
    let mut resp = html::scripted(html::view(status, &page));
    if let Some(LoginError::Throttled(wait)) = v.error {
        resp.headers_mut().insert(header::RETRY_AFTER, wait.into());
    }
    with_cookie(html::forms_may_reach(resp, v.req.as_ref().map(|r| r.redirect_uri.as_str())), cookie)
}

pub async fn login_form(State(s): State<AppState>, flow: Flow, Query(q): Query<ReqQuery>) -> Response {
    let i = interaction::login_page(&flow.cx(&s), q.req.as_deref(), q.next.as_deref()).await;
    flow.answer(&s, i, |v| login_page(&s, &flow, v))
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    csrf: Option<String>,
    req: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct DecisionForm {
    csrf: Option<String>,
    req: String,
    decision: Option<String>,
    organization: Option<String>,
}

csrf_form!(LoginForm, DecisionForm);

pub async fn login_submit(State(s): State<AppState>, flow: Flow, Checked(f): Checked<LoginForm>) -> Response {
    let i = interaction::sign_in(&flow.cx(&s), f.req.as_deref(), f.next.as_deref(), &f.email, &f.password).await;
    flow.answer(&s, i, |v| login_page(&s, &flow, v))
}

pub async fn consent_form(State(s): State<AppState>, flow: Flow, Query(q): Query<ReqQuery>) -> Response {
    let i = interaction::consent_page(&flow.cx(&s), q.req.as_deref().unwrap_or("")).await;
    flow.answer(&s, i, |v| consent_page(&s, &flow, v))
}

fn consent_page(s: &AppState, flow: &Flow, v: ConsentView) -> Response {
    let (csrf, cookie) = flow.csrf(s);
    let view = ConsentPage {
        title: "Allow access",
        wide: false,
        client: &v.client,
        product: &v.product,
        tenant: v.tenant.as_deref(),
        device: v.device.as_deref(),
        account: v.account.as_deref(),
        scopes: v.req.scope.iter().map(|sc| describe_scope(sc)).collect(),
        csrf: &csrf,
        req: &v.req.id,
    };
    let page = html::forms_may_reach(html::view(StatusCode::OK, &view), Some(&v.req.redirect_uri));
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
    device: Option<&'a str>,
    account: Option<&'a str>,
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

pub async fn consent_submit(State(s): State<AppState>, flow: Flow, Checked(f): Checked<DecisionForm>) -> Response {
    let allow = f.decision.as_deref() == Some("allow");
    let i = interaction::consent(&flow.cx(&s), &f.req, allow).await;
    flow.answer(&s, i, |v| match v {})
}

pub async fn tenant_form(State(s): State<AppState>, flow: Flow, Query(q): Query<ReqQuery>) -> Response {
    let i = interaction::tenant_page(&flow.cx(&s), q.req.as_deref().unwrap_or("")).await;
    flow.answer(&s, i, |v| tenant_page(&s, &flow, v))
}

/// Buttons in a list: Tab moves between them, Enter picks; the last one used has the focus.
fn tenant_page(s: &AppState, flow: &Flow, v: TenantView) -> Response {
    let (csrf, cookie) = flow.csrf(s);
    let view = TenantPage {
        title: "Choose an organization",
        wide: false,
        product: &v.product,
        entries: &v.entries,
        csrf: &csrf,
        req: &v.req.id,
    };
    let page = html::forms_may_reach(html::view(StatusCode::OK, &view), Some(&v.req.redirect_uri));
    with_cookie(page, cookie)
}

pub async fn tenant_submit(State(s): State<AppState>, flow: Flow, Checked(f): Checked<DecisionForm>) -> Response {
    let i = interaction::choose_tenant(&flow.cx(&s), &f.req, f.organization).await;
    flow.answer(&s, i, |v| match v {})
}
