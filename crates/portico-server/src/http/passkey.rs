//! Passkeys on the hosted pages: passwordless sign-in from the login page, the second factor at
//! `/login/mfa` and `/login/second-factor` (their handlers take the browser's answer beside the
//! code), and the account page's list (add, rename, remove). Each ceremony starts with a POST that
//! returns its options as JSON and finishes with a form POST carrying the browser's answer.

use super::api::Problem;
use super::flow::{Account, Checked, CheckedForScript, CsrfForm, Flow, csrf_form};
use super::html;

use super::{client_ip, now};
use crate::app::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Redirect, Response};
use portico_model::UserId;
use portico_protocol::enrolment::FactorChange;
use portico_protocol::interaction::{self, PasskeyRefused};
use portico_protocol::passkey::{self, PasskeyError, Started};
use portico_store::StoreError;
use serde::Deserialize;
use std::net::SocketAddr;

pub const SCRIPT: &str = include_str!("passkey.js");

pub async fn script() -> Response {
    html::script(SCRIPT)
}

/// Whether this deployment can offer passkeys (its issuer has a domain name).
pub fn available(s: &AppState) -> bool {
    s.provider.webauthn.is_some()
}

/// The answer to a ceremony's start: its options as JSON, or a problem document. `Ok(None)`: the
/// user has no passkey.
pub fn options(r: Result<Option<Started>, PasskeyError>) -> Response {
    match r {
        Ok(None) => Problem::new(StatusCode::NOT_FOUND, "You have no passkey.").into_response(),
        Ok(Some(started)) => {
            let mut resp = Json(started).into_response();
            resp.headers_mut().insert(header::CACHE_CONTROL, "no-store".parse().expect("ascii"));
            resp
        }
        Err(PasskeyError::Unavailable) => Problem::new(StatusCode::NOT_FOUND, "Passkeys are not available on this server.").into_response(),
        Err(PasskeyError::TooMany(wait)) => too_many(wait),
        Err(e) => {
            tracing::error!(error = %e, "starting a passkey ceremony failed");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Passkeys are unavailable right now.").into_response()
        }
    }
}

/// A passwordless ceremony is a stored write anyone can cause, counted once its form's CSRF token
/// matched (so a page on another site cannot spend an address's allowance): so many per address
/// (`pending_requests_per_minute`; refused without the peer's address). Those of a sign-in under
/// way are counted per user ([`passkey::allowance`]): a flood of passwordless ones from a shared
/// address starves no one's second factor.
fn ceremony_refused(s: &AppState, addr: &SocketAddr) -> Option<Response> {
    let Some(ip) = client_ip(Some(addr)) else {
        return Some(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Passkeys are unavailable right now.").into_response());
    };
    s.ceremony_limits.check(&ip).map(too_many)
}

fn too_many(wait: u64) -> Response {
    let mut resp = Problem::new(StatusCode::TOO_MANY_REQUESTS, "Too many passkey requests. Try again later.").into_response();
    resp.headers_mut().insert(header::RETRY_AFTER, wait.into());
    resp
}

pub fn refused_csrf() -> Response {
    Problem::new(StatusCode::FORBIDDEN, "The page expired. Reload it and try again.").into_response()
}

/// `POST /login/passkey/options`: a passwordless ceremony.
pub async fn login_options(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, _: CheckedForScript<CsrfForm>) -> Response {
    if let Some(refused) = ceremony_refused(&s, &addr) {
        return refused;
    }
    options(passkey::start_discovery(&s.provider, now(&s)).await.map(Some))
}

#[derive(Deserialize)]
pub struct FinishForm {
    csrf: Option<String>,
    token: Option<String>,
    credential: Option<String>,
    req: Option<String>,
    next: Option<String>,
    name: Option<String>,
}

csrf_form!(FinishForm);

/// `POST /login/passkey`: signs in whoever's passkey answered the challenge.
pub async fn login_finish(State(s): State<AppState>, flow: Flow, Checked(f): Checked<FinishForm>) -> Response {
    let (token, credential) = (f.token.unwrap_or_default(), f.credential.unwrap_or_default());
    let i = interaction::passkey_sign_in(&flow.cx(&s), f.req.as_deref(), f.next.as_deref(), &token, &credential).await;
    flow.answer(&s, i, |r| refused(r, f.req.as_deref(), f.next.as_deref()))
}

/// A passwordless sign-in that failed: back to the login page to try again.
fn refused(r: PasskeyRefused, req: Option<&str>, next: Option<&str>) -> Response {
    let message = if r.expired {
        "The passkey request expired. Try again."
    } else {
        "That passkey was not accepted."
    };
    let again = match (req, interaction::local_next(next)) {
        (Some(r), _) => format!("/login?req={r}"),
        (None, Some(n)) => format!("/login?next={n}"),
        (None, None) => "/login".to_owned(),
    };
    html::Message::new("Passkey", "Passkey not accepted")
        .alert(message)
        .button(&again, "Try again")
        .page(StatusCode::UNAUTHORIZED)
}

/// `POST /account/passkeys/options`: registering a new passkey for the signed-in user.
pub async fn register_options(State(s): State<AppState>, headers: HeaderMap, _: CheckedForScript<CsrfForm>) -> Response {
    let unavailable = || Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Passkeys are unavailable right now.").into_response();
    let account = match Account::of(&s, &headers).await {
        Ok(Some(account)) => account,
        Ok(None) => return Problem::new(StatusCode::FORBIDDEN, "Sign in again to add a passkey.").into_response(),
        Err(_) => return unavailable(),
    };
    match may_change_factors(&s, &account).await {
        Ok(FactorChange::Allowed) => match passkey::allowance(&*s.ceremony_limits, &account.user.id) {
            Ok(()) => options(passkey::start_registration(&s.provider, &account.user, now(&s)).await.map(Some)),
            Err(e) => options(Err(e)),
        },
        Ok(refused) => Problem::new(StatusCode::FORBIDDEN, refusal(refused)).into_response(),
        Err(_) => Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Passkeys are unavailable right now.").into_response(),
    }
}

pub const SIGN_IN_AGAIN: &str = "Sign in again with your second factor to change how you sign in.";
pub const LINK_FIRST: &str = "Setting up two-step verification starts with a link we mail you: ask for it on your account page.";

fn refusal(refused: FactorChange) -> &'static str {
    match refused {
        FactorChange::EmailLinkNeeded => LINK_FIRST,
        _ => SIGN_IN_AGAIN,
    }
}

/// Whether this session may add or remove a passkey ([`portico_protocol::enrolment::may_change_factors`]).
async fn may_change_factors(s: &AppState, account: &Account) -> Result<FactorChange, StoreError> {
    portico_protocol::enrolment::may_change_factors(&s.provider, &account.session, now(s)).await
}

fn to_account() -> Response {
    html::secure(Redirect::to("/account").into_response(), None)
}

fn account_error(status: StatusCode, message: &str) -> Response {
    html::Message::new("Passkeys", "Passkeys")
        .alert(message)
        .link("/account", "Back to your account")
        .page(status)
}

/// `POST /account/passkeys`: stores the new passkey under the name the user gave it.
pub async fn register_finish(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    account: Account,
    flow: Flow,
    Checked(f): Checked<FinishForm>,
) -> Response {
    match may_change_factors(&s, &account).await {
        Ok(FactorChange::Allowed) => {}
        Ok(refused) => return account_error(StatusCode::FORBIDDEN, refusal(refused)),
        Err(_) => return account_error(StatusCode::INTERNAL_SERVER_ERROR, "Your account is unavailable right now. Try again."),
    }
    let user = account.user;
    let (p, ip, n) = (&s.provider, client_ip(Some(&addr)), now(&s));
    let name = f.name.unwrap_or_default();
    // Set up while an application waits for a second factor: back to that step, to use it.
    let then = match flow.form_request(&s, f.req.as_deref()).await {
        Ok(Some(r)) => format!("/login/second-factor?req={}", r.id),
        Ok(None) => "/account".to_owned(),
        Err(resp) => return resp,
    };
    match passkey::finish_registration(p, &user, &f.token.unwrap_or_default(), &name, &f.credential.unwrap_or_default(), ip.clone(), n).await {
        Ok(_) => first_factor_codes(&s, &user.id, &then, ip, n).await,
        Err(PasskeyError::Duplicate) => account_error(StatusCode::CONFLICT, "That passkey is registered already."),
        Err(PasskeyError::Expired) => account_error(StatusCode::BAD_REQUEST, "The request expired. Add the passkey again."),
        Err(PasskeyError::Refused(why)) => {
            tracing::info!(why = %why, "a passkey registration was refused");
            account_error(StatusCode::BAD_REQUEST, "The passkey could not be registered.")
        }
        Err(e) => {
            tracing::error!(error = %e, "registering a passkey failed");
            account_error(StatusCode::INTERNAL_SERVER_ERROR, "Your account is unavailable right now. Try again.")
        }
    }
}

/// After a passkey is added: a user who has no recovery codes yet gets them now, shown once
/// (a lost authenticator must not lock them out); otherwise back to the account page.
async fn first_factor_codes(s: &AppState, user: &UserId, then: &str, ip: Option<String>, n: i64) -> Response {
    let p = &s.provider;
    match portico_protocol::totp::recovery_codes_left(p, user).await {
        Ok((0, None)) => match portico_protocol::totp::new_recovery_codes(p, user, ip, n).await {
            Ok(codes) => super::mfa::recovery_page(&codes, "Your passkey is added", then),
            Err(_) => account_error(StatusCode::INTERNAL_SERVER_ERROR, "Your account is unavailable right now. Try again."),
        },
        _ => html::secure(Redirect::to(then).into_response(), None),
    }
}

#[derive(Deserialize)]
pub struct ChangeForm {
    csrf: Option<String>,
    id: Option<String>,
    name: Option<String>,
}

csrf_form!(ChangeForm);

/// `POST /account/passkeys/rename` and `…/remove`.
async fn change(s: AppState, addr: SocketAddr, account: Account, f: ChangeForm, remove: bool) -> Response {
    if remove {
        match may_change_factors(&s, &account).await {
            Ok(FactorChange::Allowed) => {}
            Ok(refused) => return account_error(StatusCode::FORBIDDEN, refusal(refused)),
            Err(_) => return account_error(StatusCode::INTERNAL_SERVER_ERROR, "Your account is unavailable right now. Try again."),
        }
    }
    let user = account.user;
    let (p, ip, n, id) = (&s.provider, client_ip(Some(&addr)), now(&s), f.id.unwrap_or_default());
    let done = if remove {
        passkey::remove(p, &user.id, &id, ip, n).await
    } else {
        passkey::rename(p, &user.id, &id, f.name.as_deref().unwrap_or(""), ip, n).await
    };
    match done {
        // Not one of this user's passkeys: nothing changed, the list shows what there is.
        Ok(_) => to_account(),
        Err(e) => {
            tracing::error!(error = %e, "changing a passkey failed");
            account_error(StatusCode::INTERNAL_SERVER_ERROR, "Your account is unavailable right now. Try again.")
        }
    }
}

pub async fn rename(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, account: Account, Checked(f): Checked<ChangeForm>) -> Response {
    change(s, addr, account, f, false).await
}

pub async fn remove(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, account: Account, Checked(f): Checked<ChangeForm>) -> Response {
    change(s, addr, account, f, true).await
}
