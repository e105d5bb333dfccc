//! Two-step verification on the account page: the authenticator app (set up, turn off) and the
//! recovery codes. Every change passes the factor rule ([`enrolment::may_change_factors`]).

use super::flow::{Account, Checked, CsrfForm, csrf_form};
use super::html;
use super::{client_ip, now, passkey};
use crate::app::AppState;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use portico_model::User;
use portico_protocol::enrolment::{self, FactorChange};
use portico_protocol::totp;
use serde::Deserialize;
use std::net::SocketAddr;

fn unavailable() -> Response {
    html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in is unavailable right now. Try again.")
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: Option<String>,
    code: Option<String>,
}

csrf_form!(CodeForm);

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

/// The signed-in user behind an account-page form that changes a factor (its CSRF token checked
/// by [`Checked`]), when the session may change factors ([`enrolment::may_change_factors`]); otherwise the answer.
async fn account_form(s: &AppState, headers: &HeaderMap, Account { session, user }: Account) -> Result<User, Response> {
    match enrolment::may_change_factors(&s.provider, &session, now(s)).await {
        Ok(FactorChange::Allowed) => Ok(user),
        Ok(FactorChange::EmailLinkNeeded) => Err(super::enrolment::offer_page(s, headers, &user.email, "/account")),
        Ok(FactorChange::SecondFactorNeeded) => Err(html::Message::new("Two-step verification", "Sign in again")
            .alert(passkey::SIGN_IN_AGAIN)
            .link("/account", "Back to your account")
            .page(StatusCode::FORBIDDEN)),
        Err(e) => {
            tracing::error!(error = %e, "second-factor lookup failed");
            Err(unavailable())
        }
    }
}

pub async fn enrol_start(State(s): State<AppState>, headers: HeaderMap, account: Account, Checked(_): Checked<CsrfForm>) -> Response {
    let user = match account_form(&s, &headers, account).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    match totp::start(&s.provider, &user, now(&s)).await {
        Ok(Some(e)) => super::second_factor::enrol_page(&s, &headers, &e, None),
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

async fn code_action(s: AppState, addr: SocketAddr, headers: HeaderMap, account: Account, f: CodeForm, action: CodeAction) -> Response {
    let user = match account_form(&s, &headers, account).await {
        Ok(u) => u,
        Err(resp) => return resp,
    };
    let (p, ip, n) = (&s.provider, client_ip(Some(&addr)), now(&s));
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
            Ok(html::Message::new("Two-step verification", "That code did not match")
                .alert(outcome)
                .link("/account", "Back to your account")
                .page(StatusCode::UNPROCESSABLE_ENTITY))
        }
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a two-step verification change failed");
        unavailable()
    })
}

pub async fn enrol_confirm(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    account: Account,
    Checked(f): Checked<CodeForm>,
) -> Response {
    code_action(s, addr, headers, account, f, CodeAction::TurnOn).await
}

pub async fn recovery_new(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    account: Account,
    Checked(f): Checked<CodeForm>,
) -> Response {
    code_action(s, addr, headers, account, f, CodeAction::NewRecoveryCodes).await
}

pub async fn remove(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    account: Account,
    Checked(f): Checked<CodeForm>,
) -> Response {
    code_action(s, addr, headers, account, f, CodeAction::TurnOff).await
}
