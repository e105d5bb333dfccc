//! Passwords on the hosted pages: "forgot your password" (a reset link by mail), the reset form
//! behind the link, the change form on `/account`, and the strength meter every new-password field
//! shows as the user types (it asks `/password/strength`, which gives the verdict the server will
//! give on submit).

use super::flow::{Account, Checked, csrf_form};
use super::html;
use super::{client_ip, cookies, now};
use crate::app::AppState;
use crate::mail::Job;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Redirect, Response};
use portico_protocol::reset::{self, PasswordRefusal};
use portico_protocol::throttle;
use serde::Deserialize;
use std::net::SocketAddr;

pub const SCRIPT: &str = include_str!("password.js");

pub async fn script() -> Response {
    html::script(SCRIPT)
}

/// A new-password field named `name` with its strength meter; `context` (email, name) is what
/// the meter counts against the password when the page has no such fields.
pub fn new_password_field(s: &AppState, name: &str, label: &str, context: Option<(&str, &str)>) -> html::Fragment {
    html::fragment(&NewPasswordField {
        label,
        name,
        min: s.provider.settings.password.min_length,
        max: portico_protocol::password_policy::MAX_LENGTH,
        context,
    })
}

/// The new-password field (`new_password_field.html`), an include of the forms that set one.
#[derive(askama::Template)]
#[template(path = "new_password_field.html")]
struct NewPasswordField<'a> {
    label: &'a str,
    name: &'a str,
    min: usize,
    max: usize,
    /// The email and name the meter counts against the password, when the form has no such fields.
    context: Option<(&'a str, &'a str)>,
}

/// A page with a password meter (it runs Portico's own script).
pub fn scripted_page(status: StatusCode, title: &str, body: &html::Fragment) -> Response {
    html::scripted((status, Html(html::page(title, body, false))).into_response())
}

fn unavailable() -> Response {
    html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "This is unavailable right now. Try again.")
}

/// The answer when a mail-sending page is used too often from one address.
pub fn too_many(wait: u64) -> Response {
    let mut resp = html::Message::new("Too many requests", "Too many requests")
        .alert(&format!("Too many requests from your network. Try again in {wait} seconds."))
        .page(StatusCode::TOO_MANY_REQUESTS);
    resp.headers_mut().insert(header::RETRY_AFTER, wait.into());
    resp
}

/// The per-address rate of the pages that send mail: the 429 to answer when it is used up.
pub fn mail_rate(s: &AppState, ip: Option<&str>) -> Option<Response> {
    s.mail_limits.check(ip.unwrap_or("")).map(too_many)
}

/// Reset, sign-up and verification need mail; without `smtp_url` their pages are not there.
pub fn no_mail() -> Response {
    html::Message::new("Not available", "Not available")
        .text(vec![html::t(
            "This Portico does not send mail, so this page is not available. Ask your administrator.",
        )])
        .page(StatusCode::NOT_FOUND)
}

#[derive(Deserialize)]
pub struct StrengthForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
}

/// The meter's reading for a password as typed. It costs a few milliseconds of CPU, so it runs
/// off the async workers, and one address gets `STRENGTH_PER_MINUTE` readings a minute (typing
/// with the page's 150 ms pause asks a few a second at most).
pub async fn strength(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, Form(f): Form<StrengthForm>) -> Response {
    if let Some(wait) = s.strength_limits.check(&addr.ip().to_string()) {
        let mut resp = StatusCode::TOO_MANY_REQUESTS.into_response();
        resp.headers_mut().insert(header::RETRY_AFTER, wait.into());
        return resp;
    }
    // The context words are the caller's input too: bounded like the fields they come from.
    if f.email.len() > MAX_EMAIL || f.name.len() > MAX_NAME || f.password.len() > MAX_PASSWORD_BYTES {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    }
    let Some(reading) = s.provider.settings.password.strength_async(&f.password, &[&f.email, &f.name]).await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let mut resp = Json(reading).into_response();
    resp.headers_mut().insert(header::CACHE_CONTROL, "no-store".parse().expect("ascii"));
    resp
}

/// The longest email (RFC 5321's 254, with room), name and password (256 characters of up to 4
/// bytes) a meter reading takes.
const MAX_EMAIL: usize = 320;
const MAX_NAME: usize = 256;
const MAX_PASSWORD_BYTES: usize = 1024;

/// Meter readings allowed per client IP per minute.
pub const STRENGTH_PER_MINUTE: u32 = 300;

fn forgot_page(csrf: &str) -> html::Fragment {
    html::fragment(&ForgotPage { csrf })
}

#[derive(askama::Template)]
#[template(path = "forgot.html")]
struct ForgotPage<'a> {
    csrf: &'a str,
}

pub async fn forgot_form(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if s.mailer.is_none() {
        return no_mail();
    }
    let (csrf, cookie) = cookies::csrf_token(&s, &headers);
    super::pages::with_cookie(html::html(StatusCode::OK, "Forgot your password", &forgot_page(&csrf)), cookie)
}

#[derive(Deserialize)]
pub struct ForgotForm {
    email: String,
    csrf: Option<String>,
}

csrf_form!(ForgotForm);

/// Queues the reset and answers at once, the same page whether or not the email has an account.
pub async fn forgot_submit(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, Checked(f): Checked<ForgotForm>) -> Response {
    let Some(mailer) = &s.mailer else { return no_mail() };
    let ip = client_ip(Some(&addr));
    if let Some(resp) = mail_rate(&s, ip.as_deref()) {
        return resp;
    }
    mailer.submit(Job::Reset {
        email: f.email.trim().to_owned(),
        ip,
    });
    let within = portico_protocol::mail::lifetime(s.provider.settings.reset_link_ttl);
    html::Message::new("Check your email", "Check your email")
        .text(vec![html::t(format!(
            "If an account uses that email, a link to choose a new password is on its way. It works once, for {within}."
        ))])
        .muted(vec![
            html::t("No mail? Check the spam folder, or the address you typed. "),
            html::a("/login", "Back to sign in"),
        ])
        .page(StatusCode::OK)
}

#[derive(Deserialize)]
pub struct TokenQuery {
    token: Option<String>,
}

fn dead_link() -> Response {
    html::Message::new("Link expired", "This link no longer works")
        .alert("It was used already, it expired, or the password was changed since it was sent.")
        .link("/password/forgot", "Ask for a new link")
        .page(StatusCode::BAD_REQUEST)
}

fn reset_page(s: &AppState, csrf: &str, token: &str, user: &portico_model::User, error: Option<&str>) -> html::Fragment {
    html::fragment(&ResetPage {
        email: &user.email,
        error,
        csrf,
        token,
        password_field: &new_password_field(s, "new_password", "New password", Some((&user.email, &user.name))),
    })
}

#[derive(askama::Template)]
#[template(path = "reset.html")]
struct ResetPage<'a> {
    email: &'a str,
    error: Option<&'a str>,
    csrf: &'a str,
    token: &'a str,
    /// The new-password field with its strength meter, escaped where it is made.
    password_field: &'a html::Fragment,
}

pub async fn reset_form(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<TokenQuery>) -> Response {
    let Some(token) = q.token else { return dead_link() };
    let user = match reset::link_user(&s.provider, &token, now(&s)).await {
        Ok(Some(u)) => u,
        Ok(None) => return dead_link(),
        Err(e) => {
            tracing::error!(error = %e, "reset link lookup failed");
            return unavailable();
        }
    };
    let (csrf, cookie) = cookies::csrf_token(&s, &headers);
    super::pages::with_cookie(
        scripted_page(StatusCode::OK, "Choose a new password", &reset_page(&s, &csrf, &token, &user, None)),
        cookie,
    )
}

#[derive(Deserialize)]
pub struct ResetForm {
    token: String,
    new_password: String,
    csrf: Option<String>,
}

csrf_form!(ResetForm);

pub async fn reset_submit(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Checked(f): Checked<ResetForm>,
) -> Response {
    let p = &s.provider;
    match reset::complete(p, &f.token, &f.new_password, client_ip(Some(&addr)), now(&s)).await {
        Ok(Ok(_)) => {
            let page = html::Message::new("Password changed", "Your password is changed")
                .text(vec![html::t("You were signed out everywhere. Sign in again with the new password.")])
                .button("/login?next=/account", "Sign in")
                .page(StatusCode::OK);
            super::logout::clear_session(&s, page)
        }
        Ok(Err(PasswordRefusal::Weak(why))) => match reset::link_user(p, &f.token, now(&s)).await {
            Ok(Some(user)) => {
                let (csrf, _) = cookies::csrf_token(&s, &headers);
                scripted_page(
                    StatusCode::BAD_REQUEST,
                    "Choose a new password",
                    &reset_page(&s, &csrf, &f.token, &user, Some(&why.to_string())),
                )
            }
            _ => dead_link(),
        },
        Ok(Err(_)) => dead_link(),
        Err(e) => {
            tracing::error!(error = %e, "password reset failed");
            unavailable()
        }
    }
}

fn change_page(s: &AppState, csrf: &str, user: &portico_model::User, error: Option<&str>) -> html::Fragment {
    html::fragment(&ChangePage {
        error,
        csrf,
        email: &user.email,
        password_field: &new_password_field(s, "new_password", "New password", Some((&user.email, &user.name))),
    })
}

#[derive(askama::Template)]
#[template(path = "change_password.html")]
struct ChangePage<'a> {
    error: Option<&'a str>,
    csrf: &'a str,
    email: &'a str,
    /// The new-password field with its strength meter, escaped where it is made.
    password_field: &'a html::Fragment,
}

pub async fn change_form(State(s): State<AppState>, Account { user, .. }: Account, headers: HeaderMap) -> Response {
    let (csrf, cookie) = cookies::csrf_token(&s, &headers);
    super::pages::with_cookie(
        scripted_page(StatusCode::OK, "Change your password", &change_page(&s, &csrf, &user, None)),
        cookie,
    )
}

#[derive(Deserialize)]
pub struct ChangeForm {
    current_password: String,
    new_password: String,
    csrf: Option<String>,
}

csrf_form!(ChangeForm);

/// Changes the password of the signed-in user; the current one is asked (a stolen session alone
/// cannot), and wrong answers count towards the account's sign-in throttle.
pub async fn change_submit(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Account { session, user }: Account,
    headers: HeaderMap,
    Checked(f): Checked<ChangeForm>,
) -> Response {
    let p = &s.provider;
    let ip = client_ip(Some(&addr));
    let again = |status: StatusCode, message: &str| {
        let (csrf, _) = cookies::csrf_token(&s, &headers);
        scripted_page(status, "Change your password", &change_page(&s, &csrf, &user, Some(message)))
    };
    let gate = match throttle::reserve(p, &user.email, ip.as_deref(), p.clock.now_ms()).await {
        Ok(g) => g,
        Err(_) => return unavailable(),
    };
    if let Some(wait) = gate.wait {
        let mut resp = again(StatusCode::TOO_MANY_REQUESTS, &format!("Too many attempts. Try again in {wait} seconds."));
        resp.headers_mut().insert(header::RETRY_AFTER, wait.into());
        return resp;
    }
    match reset::change(p, &session, &f.current_password, &f.new_password, ip.clone(), now(&s)).await {
        Ok(Ok(())) => {
            if throttle::succeeded(p, &user.email, ip.as_deref(), p.clock.now_ms()).await.is_err() {
                return unavailable();
            }
            html::secure(Redirect::to("/account?done=password").into_response(), None)
        }
        // Counted already, when the attempt was reserved.
        Ok(Err(PasswordRefusal::WrongCurrent)) => again(StatusCode::BAD_REQUEST, "Your current password is not right."),
        // The current password was right (it is checked first): the attempt is given back.
        Ok(Err(PasswordRefusal::Weak(why))) => {
            if throttle::succeeded(p, &user.email, ip.as_deref(), p.clock.now_ms()).await.is_err() {
                return unavailable();
            }
            again(StatusCode::BAD_REQUEST, &why.to_string())
        }
        Ok(Err(PasswordRefusal::LinkDead)) | Err(_) => unavailable(),
    }
}
