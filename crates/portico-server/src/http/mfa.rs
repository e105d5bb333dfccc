//! The second step of signing in (`/login/mfa`) and TOTP enrolment on the account page. Between
//! the password and the code no session exists: a short-lived pending sign-in, named by a random
//! cookie whose hash is the key it is stored under, remembers who and where to.

use super::api::Problem;
use super::html::{self, esc};
use super::oauth::{request_form, request_page};
use super::pages::{bad_form, current_user, expired, request_for_form, signed_in, with_cookie};
use super::passkey;
use super::{client_ip, cookies, now};
use crate::app::AppState;
use axum::extract::{ConnectInfo, Form, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use portico_model::{User, UserId};
use portico_protocol::authorize::AuthRequest;
use portico_protocol::enrolment::{self, FactorChange};
use portico_protocol::login::{self, Factors};
use portico_protocol::{random, totp};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

const WRONG_CODE: &str = "That code is not right, or was used already. Enter the current one.";
const LOCKED: &str = "Too many wrong codes: codes from your app are refused for a few minutes. Try again later, or use a recovery code.";

/// Why a code was refused, in the user's words.
async fn refusal(s: &AppState, user: &UserId) -> &'static str {
    if totp::locked(&s.provider, user, now()).await.unwrap_or(false) {
        LOCKED
    } else {
        WRONG_CODE
    }
}

/// How long the code may take after the password.
const PENDING_TTL: i64 = 300;

#[derive(Serialize, Deserialize)]
struct Pending {
    user: String,
    req: Option<String>,
    /// The redirect URI of that request: where this page's forms end.
    #[serde(default)]
    return_to: Option<String>,
    next: Option<String>,
}

fn pending_key(token: &str) -> String {
    format!("mfa_{}", random::hash(token))
}

fn unavailable() -> Response {
    html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in is unavailable right now. Try again.")
}

/// After a correct password: remember the sign-in and ask for the code.
pub async fn challenge(s: &AppState, user: &User, req: Option<&AuthRequest>, next: Option<&'static str>, n: i64) -> Response {
    let token = random::token();
    let pending = Pending {
        user: user.id.as_str().to_owned(),
        req: req.map(|r| r.id.clone()),
        return_to: req.map(|r| r.redirect_uri.clone()),
        next: next.map(str::to_owned),
    };
    let data = serde_json::to_string(&pending).expect("serializes");
    if s.provider.store.put_auth_request(&pending_key(&token), &data, n + PENDING_TTL).await.is_err() {
        return unavailable();
    }
    let cookie = cookies::set(s, cookies::mfa_name(s), &token, Some(PENDING_TTL));
    with_cookie(html::secure(Redirect::to("/login/mfa").into_response(), None), Some(cookie))
}

async fn pending(s: &AppState, headers: &HeaderMap) -> Option<(String, Pending)> {
    let token = cookies::get(headers, cookies::mfa_name(s))?;
    let key = pending_key(token);
    let data = s.provider.store.auth_request(&key, now()).await.ok()??;
    Some((key, serde_json::from_str(&data).ok()?))
}

/// The second-factor page, posting to `action` with `hidden` fields: a passkey button for a user
/// with passkeys (`options` starts that ceremony), and the code form (a code from the app, or a
/// recovery code).
fn code_page(s: &AppState, csrf: &str, action: &str, hidden: &str, error: Option<&str>, f: Factors, options: &str) -> String {
    let err = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))).unwrap_or_default();
    let with_passkey = f.passkeys && passkey::available(s);
    let key = if with_passkey {
        let form = passkey::form("passkey-verify", action, options, "get", csrf, hidden, "Use a passkey", "");
        format!("{form}{}", passkey::SCRIPT_TAG)
    } else {
        String::new()
    };
    let (intro, label, hint) = if f.totp {
        (
            "Enter the 6-digit code from your authenticator app.",
            "Code",
            "No phone at hand? Enter one of your recovery codes instead.",
        )
    } else {
        (
            "Use your passkey to continue.",
            "Recovery code",
            "No passkey at hand? Enter one of your recovery codes.",
        )
    };
    let intro = if with_passkey && f.totp {
        "Use your passkey, or enter the 6-digit code from your authenticator app."
    } else {
        intro
    };
    format!(
        "<h1>Two-step verification</h1><p>{intro}</p>{err}{key}\
         <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">{hidden}\
         <label for=\"code\">{label}</label><input id=\"code\" name=\"code\" type=\"text\" maxlength=\"16\" autocomplete=\"one-time-code\" required{}>\
         <button type=\"submit\" class=\"{}\">Verify</button></form>\
         <p class=\"muted\">{hint}</p>",
        esc(csrf),
        if with_passkey { "" } else { " autofocus" },
        if with_passkey { "secondary" } else { "" },
    )
}

/// A second-factor page: it may run the passkey script, and its forms end at `return_to` (the
/// redirect URI of the request it signs in for).
fn factor_page(status: StatusCode, body: &str, return_to: Option<&str>) -> Response {
    let resp = html::scripted((status, axum::response::Html(html::page("Two-step verification", body, false))).into_response());
    html::forms_may_reach(resp, return_to)
}

/// The user's factors, or the answer when they cannot be read.
async fn factors_of(s: &AppState, user: &UserId) -> Result<Factors, Response> {
    login::factors(&s.provider, user).await.map_err(|e| {
        tracing::error!(error = %e, "second-factor lookup failed");
        unavailable()
    })
}

const LOGIN_OPTIONS: &str = "/login/mfa/passkey/options";
const STEP_UP_OPTIONS: &str = "/login/second-factor/passkey/options";

pub async fn code_form(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let Some((_, pending)) = pending(&s, &headers).await else {
        return expired();
    };
    let f = match factors_of(&s, &UserId::new(&pending.user)).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let (csrf, cookie) = cookies::csrf_token(&s, &headers);
    with_cookie(
        factor_page(
            StatusCode::OK,
            &code_page(&s, &csrf, "/login/mfa", "", None, f, LOGIN_OPTIONS),
            pending.return_to.as_deref(),
        ),
        cookie,
    )
}

/// `POST /login/mfa/passkey/options`: the passkey ceremony of the pending sign-in's user.
pub async fn passkey_options(State(s): State<AppState>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let Some((_, pending)) = pending(&s, &headers).await else {
        return Problem::new(StatusCode::BAD_REQUEST, "This sign-in has expired. Start again.").into_response();
    };
    verification_options(&s, &headers, f.csrf.as_deref(), &UserId::new(&pending.user)).await
}

/// `POST /login/second-factor/passkey/options`: the passkey ceremony of the signed-in user stepping up.
pub async fn step_up_passkey_options(State(s): State<AppState>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let Some((_, user)) = session_user(&s, &headers).await else {
        return Problem::new(StatusCode::BAD_REQUEST, "You are signed out. Start again.").into_response();
    };
    verification_options(&s, &headers, f.csrf.as_deref(), &user.id).await
}

async fn verification_options(s: &AppState, headers: &HeaderMap, csrf: Option<&str>, user: &UserId) -> Response {
    if !cookies::csrf_ok(s, headers, csrf) {
        return passkey::refused_csrf();
    }
    passkey::options(portico_protocol::passkey::start_verification(&s.provider, user, now()).await)
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: Option<String>,
    code: Option<String>,
    /// A passkey's answer instead of a code, and its ceremony's token.
    credential: Option<String>,
    token: Option<String>,
}

/// The second factor a form carries: a passkey's answer, or a code. `Ok(Some(amr))` when it passed.
async fn check_factor(
    s: &AppState,
    user: &User,
    code: Option<&str>,
    token: Option<&str>,
    credential: Option<&str>,
    ip: Option<String>,
    n: i64,
) -> Result<Option<&'static str>, Response> {
    let p = &s.provider;
    if let Some(credential) = credential.filter(|c| !c.is_empty()) {
        return match portico_protocol::passkey::finish_sign_in(p, token.unwrap_or(""), credential, Some(&user.id), ip, n).await {
            Ok(_) => Ok(Some("hwk")),
            Err(portico_protocol::passkey::PasskeyError::Store(e)) => {
                tracing::error!(error = %e, "passkey check failed");
                Err(unavailable())
            }
            Err(_) => Ok(None),
        };
    }
    match totp::second_factor(p, user, code.unwrap_or(""), ip, n).await {
        Ok(true) => Ok(Some("otp")),
        Ok(false) => Ok(None),
        Err(e) => {
            tracing::error!(error = %e, "second-factor check failed");
            Err(unavailable())
        }
    }
}

/// Why a factor was refused, in the user's words.
async fn factor_refusal(s: &AppState, user: &UserId, passkey: bool) -> &'static str {
    if passkey {
        "That passkey was not accepted. Try again, or enter a code."
    } else {
        refusal(s, user).await
    }
}

pub async fn code_submit(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<CodeForm>) -> Response {
    let n = now();
    let Some((key, pending)) = pending(&s, &headers).await else {
        return expired();
    };
    if !cookies::csrf_ok(&s, &headers, f.csrf.as_deref()) {
        return bad_form();
    }
    let p = &s.provider;
    let ip = client_ip(Some(&addr));
    let Ok(Some(user)) = p.store.user_by_id(&UserId::new(&pending.user)).await else {
        return unavailable();
    };
    if !user.is_active() {
        return expired();
    }
    let factor = match check_factor(&s, &user, f.code.as_deref(), f.token.as_deref(), f.credential.as_deref(), ip.clone(), n).await {
        Ok(Some(factor)) => factor,
        Ok(None) => {
            let factors = match factors_of(&s, &user.id).await {
                Ok(f) => f,
                Err(resp) => return resp,
            };
            let (csrf, _) = cookies::csrf_token(&s, &headers);
            let why = factor_refusal(&s, &user.id, f.credential.is_some()).await;
            let body = code_page(&s, &csrf, "/login/mfa", "", Some(why), factors, LOGIN_OPTIONS);
            return factor_page(StatusCode::UNAUTHORIZED, &body, pending.return_to.as_deref());
        }
        Err(resp) => return resp,
    };
    // The application's request this sign-in goes back to, checked for this browser first: a
    // refusal there must not have spent the second-factor step.
    let req = match request_for_form(&s, &headers, pending.req.as_deref()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    // The pending sign-in is spent, whatever follows; taken out in one statement, so two answers
    // sent at once cannot both start a session.
    match p.store.take_auth_request(&key, n).await {
        Ok(Some(_)) => {}
        Ok(None) => return expired(),
        Err(_) => return unavailable(),
    }
    let next = super::pages::local_next(pending.next.as_deref());
    let mut resp = signed_in(&s, &headers, &user, vec!["pwd".into(), factor.into()], req, next, ip, n).await;
    resp.headers_mut()
        .append(header::SET_COOKIE, cookies::set(&s, cookies::mfa_name(&s), "", Some(0)));
    resp
}

/// The account page's section on the second factor.
pub async fn account_section(s: &AppState, user: &UserId, csrf: &str) -> Result<String, portico_store::StoreError> {
    let on = totp::enrolled(&s.provider, user).await?;
    let (left, last_used) = s.provider.store.recovery_codes_left(user).await?;
    let recovery = format!(
        "<p>Recovery codes: <strong>{left}</strong> of {} left{}.</p>\
         <form method=\"post\" action=\"/account/recovery/new\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label for=\"new-code\">For new recovery codes (the old ones stop working), enter a code from the app</label>\
         <input id=\"new-code\" class=\"short\" name=\"code\" type=\"text\" inputmode=\"numeric\" maxlength=\"6\" autocomplete=\"one-time-code\" required>\
         <button class=\"secondary small\" type=\"submit\">New recovery codes</button></form>",
        totp::RECOVERY_CODES,
        last_used.map(|t| format!("; one was used on {}", super::account::when(t))).unwrap_or_default(),
        esc(csrf)
    );
    Ok(if on {
        format!(
            "<h2>Two-step verification</h2><p>Authenticator app: <strong>on</strong>. Signing in asks for a code from it.</p>{recovery}\
             <form method=\"post\" action=\"/account/totp/remove\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <label for=\"off-code\">To turn it off, enter a code from the app</label>\
             <input id=\"off-code\" class=\"short\" name=\"code\" type=\"text\" inputmode=\"numeric\" maxlength=\"6\" autocomplete=\"one-time-code\" required>\
             <button class=\"secondary small\" type=\"submit\">Turn off</button></form>",
            esc(csrf)
        )
    } else {
        format!(
            "<h2>Two-step verification</h2><p>Add an authenticator app: signing in will then ask for a code from it.</p>\
             <form method=\"post\" action=\"/account/totp/start\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button class=\"small\" type=\"submit\">Set up an authenticator app</button></form>",
            esc(csrf)
        )
    })
}

/// The recovery codes, shown this once.
pub(crate) fn recovery_page(codes: &[String], title: &str, next: &str) -> Response {
    html::view(
        StatusCode::OK,
        &RecoveryPage {
            title: "Recovery codes",
            wide: false,
            heading: title,
            codes,
            next,
        },
    )
}

#[derive(askama::Template)]
#[template(path = "recovery_codes.html")]
struct RecoveryPage<'a> {
    title: &'a str,
    wide: bool,
    heading: &'a str,
    codes: &'a [String],
    /// Where "Done" leads: a local path.
    next: &'a str,
}

/// The signed-in user behind an account-page form that changes a factor, with a valid CSRF token
/// and a session that may change factors ([`enrolment::may_change_factors`]); otherwise the answer.
async fn account_form(s: &AppState, headers: &HeaderMap, csrf: Option<&str>) -> Result<User, Response> {
    let Some((session, user)) = session_user(s, headers).await else {
        return Err(html::secure(Redirect::to("/login?next=/account").into_response(), None));
    };
    if !cookies::csrf_ok(s, headers, csrf) {
        return Err(bad_form());
    }
    match enrolment::may_change_factors(&s.provider, &session, now()).await {
        Ok(FactorChange::Allowed) => Ok(user),
        Ok(FactorChange::EmailLinkNeeded) => Err(super::enrolment::offer_page(s, headers, &user.email, "/account")),
        Ok(FactorChange::SecondFactorNeeded) => Err(html::html(
            StatusCode::FORBIDDEN,
            "Two-step verification",
            &format!(
                "<h1>Sign in again</h1><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/account\">Back to your account</a></p>",
                esc(passkey::SIGN_IN_AGAIN)
            ),
        )),
        Err(e) => {
            tracing::error!(error = %e, "second-factor lookup failed");
            Err(unavailable())
        }
    }
}

/// The enrolment form (QR code, key, first code), posting to `action` with `hidden` fields.
fn enrol_page(csrf: &str, e: &totp::Enrollment, action: &str, hidden: &str) -> String {
    let qr = base64::engine::general_purpose::STANDARD.encode(e.qr_svg.as_bytes());
    format!(
        "<h1>Set up an authenticator app</h1><p>Scan this code with your authenticator app, or type the key into it.</p>\
         <p><img class=\"qr\" alt=\"QR code for your authenticator app\" width=\"200\" height=\"200\" src=\"data:image/svg+xml;base64,{qr}\"></p>\
         <p class=\"muted\">Key: <code id=\"secret\">{}</code></p>\
         <form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">{hidden}\
         <label for=\"code\">Code from the app</label><input id=\"code\" name=\"code\" type=\"text\" inputmode=\"numeric\" maxlength=\"6\" autocomplete=\"one-time-code\" required autofocus>\
         <button type=\"submit\">Turn on</button></form>",
        esc(&e.secret),
        esc(csrf)
    )
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

pub async fn enrol_start(State(s): State<AppState>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    let user = match account_form(&s, &headers, f.csrf.as_deref()).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    match totp::start(&s.provider, &user, now()).await {
        Ok(Some(e)) => {
            let (csrf, cookie) = cookies::csrf_token(&s, &headers);
            with_cookie(
                html::html(
                    StatusCode::OK,
                    "Set up an authenticator app",
                    &enrol_page(&csrf, &e, "/account/totp/confirm", ""),
                ),
                cookie,
            )
        }
        // Already on: the account page says so.
        Ok(None) => html::secure(Redirect::to("/account").into_response(), None),
        Err(e) => {
            tracing::error!(error = %e, "starting TOTP enrolment failed");
            unavailable()
        }
    }
}

/// What an account-page form that takes a code from the app does once the code is right.
#[derive(Clone, Copy)]
enum CodeAction {
    /// Confirm the enrolment (the code comes from the pending secret) and show recovery codes.
    TurnOn,
    /// Replace the recovery codes: a stolen session alone cannot make itself a way past the second factor.
    NewRecoveryCodes,
    /// Remove the authenticator and its recovery codes: nor can a stolen session turn it off.
    TurnOff,
}

async fn code_action(s: AppState, addr: SocketAddr, headers: HeaderMap, f: CodeForm, action: CodeAction) -> Response {
    let user = match account_form(&s, &headers, f.csrf.as_deref()).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let (p, ip, n) = (&s.provider, client_ip(Some(&addr)), now());
    let confirming = matches!(action, CodeAction::TurnOn);
    let result = match totp::check(p, &user, f.code.as_deref().unwrap_or(""), confirming, ip.clone(), n).await {
        Ok(true) => match action {
            CodeAction::TurnOn => totp::new_recovery_codes(p, &user.id, ip, n)
                .await
                .map(|c| recovery_page(&c, "Your authenticator app is on", "/account")),
            CodeAction::NewRecoveryCodes => totp::new_recovery_codes(p, &user.id, ip, n)
                .await
                .map(|c| recovery_page(&c, "New recovery codes", "/account")),
            CodeAction::TurnOff => totp::remove(p, &user.id, ip, n)
                .await
                .map(|_| html::secure(Redirect::to("/account").into_response(), None)),
        },
        Ok(false) => {
            let outcome = match action {
                CodeAction::TurnOn => "The authenticator app is not turned on. Start again from your account page and enter the code the app shows now.",
                CodeAction::NewRecoveryCodes => "Your recovery codes are unchanged.",
                CodeAction::TurnOff => "The authenticator app stays on.",
            };
            Ok(html::html(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Two-step verification",
                &format!("<h1>That code did not match</h1><p class=\"error\" role=\"alert\">{outcome}</p><p><a href=\"/account\">Back to your account</a></p>"),
            ))
        }
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a two-step verification change failed");
        unavailable()
    })
}

pub async fn enrol_confirm(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<CodeForm>) -> Response {
    code_action(s, addr, headers, f, CodeAction::TurnOn).await
}

pub async fn recovery_new(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<CodeForm>) -> Response {
    code_action(s, addr, headers, f, CodeAction::NewRecoveryCodes).await
}

pub async fn remove(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<CodeForm>) -> Response {
    code_action(s, addr, headers, f, CodeAction::TurnOff).await
}

/// The session of the browser and its user.
pub(crate) async fn session_user(s: &AppState, headers: &HeaderMap) -> Option<(portico_store::SsoSession, User)> {
    let session = current_user(s, headers).await?;
    let user = s.provider.store.user_by_id(&session.user_id).await.ok()??;
    Some((session, user))
}

#[derive(Deserialize)]
pub struct StepUpQuery {
    req: Option<String>,
}

fn resume(req: &str) -> String {
    format!("/oauth2/authorize/resume?req={req}")
}

/// A product that requires a second factor, a session without one: ask for a code — or, for a
/// user who has no authenticator yet, lead them through setting one up — then resume.
pub async fn second_factor_form(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<StepUpQuery>,
) -> Response {
    let req = match request_page(&s, &headers, &addr, q.req.as_deref().unwrap_or("")).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let Some((session, user)) = session_user(&s, &headers).await else {
        // Signed out meanwhile: the authorization starts over at the login form.
        return html::secure(Redirect::to(&resume(&req.id)).into_response(), None);
    };
    let (csrf, cookie) = cookies::csrf_token(&s, &headers);
    let hidden = format!("<input type=\"hidden\" name=\"req\" value=\"{}\">", esc(&req.id));
    let factors = match factors_of(&s, &user.id).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let change = match enrolment::may_change_factors_given(&s.provider, &session, factors, now()).await {
        Ok(c) => c,
        Err(_) => return unavailable(),
    };
    let body = match factors.any() {
        true => code_page(&s, &csrf, "/login/second-factor", &hidden, None, factors, STEP_UP_OPTIONS),
        // No factor yet, and this user's products refuse one set up by a password alone.
        false if change == FactorChange::EmailLinkNeeded => {
            let offer = super::enrolment::offer(&csrf, &user.email, &format!("/login/second-factor?req={}", req.id));
            format!("<h1>Two-step verification</h1><p class=\"muted\">This application requires two-step verification.</p>{offer}")
        }
        false => match totp::start(&s.provider, &user, now()).await {
            Ok(Some(e)) => {
                let intro = "<p class=\"muted\">This application requires two-step verification. Set it up now to continue.</p>";
                let key = if passkey::available(&s) {
                    let form = passkey::form(
                        "passkey-add",
                        "/account/passkeys",
                        "/account/passkeys/options",
                        "create",
                        &csrf,
                        &hidden,
                        "Add a passkey instead",
                        "secondary",
                    );
                    format!(
                        "<p class=\"muted\">Or use a passkey: your device's screen lock or a security key.</p>{form}{}",
                        passkey::SCRIPT_TAG
                    )
                } else {
                    String::new()
                };
                let hidden = format!("{hidden}<input type=\"hidden\" name=\"enrol\" value=\"1\">");
                let page = enrol_page(&csrf, &e, "/login/second-factor", &hidden).replacen("</h1>", &format!("</h1>{intro}"), 1);
                format!("{page}{key}")
            }
            Ok(None) => code_page(&s, &csrf, "/login/second-factor", &hidden, None, factors, STEP_UP_OPTIONS),
            Err(_) => return unavailable(),
        },
    };
    with_cookie(factor_page(StatusCode::OK, &body, Some(&req.redirect_uri)), cookie)
}

#[derive(Deserialize)]
pub struct StepUpForm {
    csrf: Option<String>,
    req: String,
    code: Option<String>,
    enrol: Option<String>,
    credential: Option<String>,
    token: Option<String>,
}

pub async fn second_factor_submit(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<StepUpForm>,
) -> Response {
    let req = match request_form(&s, &headers, &f.req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    if !cookies::csrf_ok(&s, &headers, f.csrf.as_deref()) {
        return bad_form();
    }
    let Some((session, user)) = session_user(&s, &headers).await else {
        return html::secure(Redirect::to(&resume(&req.id)).into_response(), None);
    };
    let (p, ip, n) = (&s.provider, client_ip(Some(&addr)), now());
    if f.credential.as_deref().is_some_and(|c| !c.is_empty()) {
        let passed = match check_factor(&s, &user, None, f.token.as_deref(), f.credential.as_deref(), ip, n).await {
            Ok(passed) => passed.is_some(),
            Err(resp) => return resp,
        };
        if passed && login::add_factor(p, &session, "hwk").await.is_err() {
            return unavailable();
        }
        return if passed {
            html::secure(Redirect::to(&resume(&req.id)).into_response(), None)
        } else {
            step_up_refused(&s, &headers, &req, &user.id, true).await
        };
    }
    let enrolling = f.enrol.is_some();
    let passed = match totp::step_up(p, &session, &user, f.code.as_deref().unwrap_or(""), enrolling, ip.clone(), n).await {
        Ok(x) => x,
        Err(e) => {
            tracing::error!(error = %e, "step-up failed");
            return unavailable();
        }
    };
    match (passed, enrolling) {
        (true, true) => match totp::new_recovery_codes(p, &user.id, ip, n).await {
            Ok(codes) => recovery_page(&codes, "Your authenticator app is on", &resume(&req.id)),
            Err(_) => unavailable(),
        },
        (true, false) => html::secure(Redirect::to(&resume(&req.id)).into_response(), None),
        // A wrong first code: start the setup again (a new key).
        (false, true) => html::secure(Redirect::to(&format!("/login/second-factor?req={}", req.id)).into_response(), None),
        (false, false) => step_up_refused(&s, &headers, &req, &user.id, false).await,
    }
}

/// The step-up page again, saying why the factor was refused.
async fn step_up_refused(s: &AppState, headers: &HeaderMap, req: &AuthRequest, user: &UserId, passkey: bool) -> Response {
    let factors = match factors_of(s, user).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let (csrf, _) = cookies::csrf_token(s, headers);
    let hidden = format!("<input type=\"hidden\" name=\"req\" value=\"{}\">", esc(&req.id));
    let why = factor_refusal(s, user, passkey).await;
    factor_page(
        StatusCode::UNAUTHORIZED,
        &code_page(s, &csrf, "/login/second-factor", &hidden, Some(why), factors, STEP_UP_OPTIONS),
        Some(&req.redirect_uri),
    )
}
