//! The second step of signing in (`/login/mfa`), and the step-up a product asks of a session
//! without a second factor (`/login/second-factor`). Between the password and the code no session
//! exists: the protocol keeps the waiting sign-in under the handle in the browser's cookie.

use super::flow::{Checked, CheckedForScript, CsrfForm, Flow, csrf_form};
use super::html;
use super::pages::{PasskeyForm, with_cookie};
use crate::app::AppState;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use portico_protocol::authorize::AuthRequest;
use portico_protocol::interaction::{self, FactorAnswer, FactorError, FactorView, StepUpView};
use portico_protocol::totp::Enrollment;
use serde::Deserialize;

const LOGIN_OPTIONS: &str = "/login/mfa/passkey/options";
const STEP_UP_OPTIONS: &str = "/login/second-factor/passkey/options";

#[derive(askama::Template)]
#[template(path = "second_factor.html")]
struct CodePage<'a> {
    title: &'a str,
    wide: bool,
    intro: &'a str,
    error: Option<&'a str>,
    passkey: &'a html::Fragment,
    action: &'a str,
    csrf: &'a str,
    req: Option<&'a str>,
    label: &'a str,
    hint: &'a str,
}

/// Why a factor was refused, in the user's words.
fn refusal(e: FactorError) -> &'static str {
    match e {
        FactorError::WrongCode => "That code is not right, or was used already. Enter the current one.",
        FactorError::Locked => "Too many wrong codes: codes from your app are refused for a few minutes. Try again later, or use a recovery code.",
        FactorError::PasskeyRefused => "That passkey was not accepted. Try again, or enter a code.",
    }
}

/// A second-factor page: it may run the passkey script, and its forms end at the redirect URI
/// of the request it signs in for.
fn factor_response(status: StatusCode, page: &impl askama::Template, return_to: Option<&str>) -> Response {
    html::forms_may_reach(html::scripted(html::view(status, page)), return_to)
}

/// The code page (posting to `action`): a passkey button for a user with passkeys (`options`
/// starts that ceremony), and the code form (a code from the app, or a recovery code).
fn code_page(s: &AppState, flow: &Flow, v: &FactorView, action: &str, options: &str) -> Response {
    let (csrf, cookie) = flow.csrf(s);
    let with_passkey = v.factors.passkeys && super::passkey::available(s);
    let passkey = PasskeyForm {
        id: "passkey-verify",
        action,
        options,
        mode: "get",
        csrf: &csrf,
        req: v.req.as_deref(),
        next: None,
        name_field: false,
        label: "Use a passkey",
        class: "",
    };
    let (intro, label, hint) = match (v.factors.totp, with_passkey) {
        (true, true) => (
            "Use your passkey, or enter the 6-digit code from your authenticator app.",
            "Code",
            "No phone at hand? Enter one of your recovery codes instead.",
        ),
        (true, false) => (
            "Enter the 6-digit code from your authenticator app.",
            "Code",
            "No phone at hand? Enter one of your recovery codes instead.",
        ),
        (false, _) => (
            "Use your passkey to continue.",
            "Recovery code",
            "No passkey at hand? Enter one of your recovery codes.",
        ),
    };
    let page = CodePage {
        title: "Two-step verification",
        wide: false,
        intro,
        error: v.error.map(refusal),
        passkey: &if with_passkey { html::fragment(&passkey) } else { html::Fragment::default() },
        action,
        csrf: &csrf,
        req: v.req.as_deref(),
        label,
        hint,
    };
    let status = if v.error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    with_cookie(factor_response(status, &page, v.return_to.as_deref()), cookie)
}

#[derive(Deserialize)]
pub struct CodeForm {
    csrf: Option<String>,
    code: Option<String>,
    /// A passkey's answer instead of a code, and its ceremony's token.
    credential: Option<String>,
    token: Option<String>,
    /// The step-up's request, and whether its code confirms a new authenticator.
    req: Option<String>,
    enrol: Option<String>,
}

csrf_form!(CodeForm);

impl CodeForm {
    fn answer(&self) -> FactorAnswer {
        match self.credential.as_deref().filter(|c| !c.is_empty()) {
            Some(credential) => FactorAnswer::Passkey {
                token: self.token.clone().unwrap_or_default(),
                credential: credential.to_owned(),
            },
            None => FactorAnswer::Code(self.code.clone().unwrap_or_default()),
        }
    }
}

/// `GET /login/mfa`.
pub async fn code_form(State(s): State<AppState>, flow: Flow) -> Response {
    let i = interaction::second_factor_page(&flow.cx(&s)).await;
    flow.answer(&s, i, |v| code_page(&s, &flow, &v, "/login/mfa", LOGIN_OPTIONS))
}

/// `POST /login/mfa`.
pub async fn code_submit(State(s): State<AppState>, flow: Flow, Checked(f): Checked<CodeForm>) -> Response {
    let i = interaction::second_factor(&flow.cx(&s), f.answer()).await;
    flow.answer(&s, i, |v| code_page(&s, &flow, &v, "/login/mfa", LOGIN_OPTIONS))
}

/// `POST /login/mfa/passkey/options`: the passkey ceremony of the waiting sign-in's user.
pub async fn passkey_options(State(s): State<AppState>, flow: Flow, _: CheckedForScript<CsrfForm>) -> Response {
    match interaction::second_factor_options(&flow.cx(&s)).await {
        Some(started) => super::passkey::options(started),
        None => super::api::Problem::new(StatusCode::BAD_REQUEST, "This sign-in has expired. Start again.").into_response(),
    }
}

/// `POST /login/second-factor/passkey/options`: the passkey ceremony of the signed-in user stepping up.
pub async fn step_up_passkey_options(State(s): State<AppState>, flow: Flow, _: CheckedForScript<CsrfForm>) -> Response {
    match interaction::step_up_options(&flow.cx(&s)).await {
        Some(started) => super::passkey::options(started),
        None => super::api::Problem::new(StatusCode::BAD_REQUEST, "You are signed out. Start again.").into_response(),
    }
}

#[derive(Deserialize)]
pub struct StepUpQuery {
    req: Option<String>,
}

/// `GET /login/second-factor`.
pub async fn second_factor_form(State(s): State<AppState>, flow: Flow, Query(q): Query<StepUpQuery>) -> Response {
    let i = interaction::step_up_page(&flow.cx(&s), q.req.as_deref().unwrap_or("")).await;
    flow.answer(&s, i, |v| step_up_page(&s, &flow, v))
}

/// `POST /login/second-factor`.
pub async fn second_factor_submit(State(s): State<AppState>, flow: Flow, Checked(f): Checked<CodeForm>) -> Response {
    let req = f.req.clone().unwrap_or_default();
    let i = interaction::step_up(&flow.cx(&s), &req, f.answer(), f.enrol.is_some()).await;
    flow.answer(&s, i, |v| step_up_page(&s, &flow, v))
}

fn step_up_page(s: &AppState, flow: &Flow, v: StepUpView) -> Response {
    match v {
        StepUpView::Code(v) => code_page(s, flow, &v, "/login/second-factor", STEP_UP_OPTIONS),
        StepUpView::Offer { req, email } => {
            let (csrf, cookie) = flow.csrf(s);
            let offer = super::enrolment::offer(&csrf, &email, &format!("/login/second-factor?req={}", req.id));
            let page = super::enrolment::OfferPage {
                title: "Two-step verification",
                wide: false,
                heading: "Two-step verification",
                intro: Some("This application asks for two-step verification for this sign-in."),
                offer,
            };
            let page = html::scripted(html::view(StatusCode::OK, &page));
            with_cookie(html::forms_may_reach(page, Some(&req.redirect_uri)), cookie)
        }
        StepUpView::Enrol { req, enrollment } => enrol_page(s, &flow.headers, &enrollment, Some(&req)),
        StepUpView::RecoveryCodes { req, codes } => {
            super::mfa::recovery_page(&codes, "Your authenticator app is on", &super::flow::url(&interaction::Place::Resume(req.id)))
        }
    }
}

#[derive(askama::Template)]
#[template(path = "totp_enrol.html")]
struct EnrolPage<'a> {
    title: &'a str,
    wide: bool,
    qr: &'a str,
    secret: &'a str,
    action: &'a str,
    csrf: &'a str,
    /// The step-up's request: the form carries it, and a passkey may be added instead.
    req: Option<&'a str>,
    passkey: &'a html::Fragment,
}

/// The enrolment form (QR code, key, first code): on the account page, or (`req`) as the step-up
/// of a request, where a passkey may be added instead.
pub fn enrol_page(s: &AppState, headers: &axum::http::HeaderMap, e: &Enrollment, req: Option<&AuthRequest>) -> Response {
    let (csrf, cookie) = super::cookies::csrf_token(s, headers);
    let qr = base64::engine::general_purpose::STANDARD.encode(e.qr_svg.as_bytes());
    let passkey = PasskeyForm {
        id: "passkey-add",
        action: "/account/passkeys",
        options: "/account/passkeys/options",
        mode: "create",
        csrf: &csrf,
        req: req.map(|r| r.id.as_str()),
        next: None,
        name_field: false,
        label: "Add a passkey instead",
        class: "secondary",
    };
    let page = EnrolPage {
        // The step-up's page keeps the step's title; the account page's names what it does.
        title: if req.is_some() {
            "Two-step verification"
        } else {
            "Set up an authenticator app"
        },
        wide: false,
        qr: &qr,
        secret: &e.secret,
        action: if req.is_some() { "/login/second-factor" } else { "/account/totp/confirm" },
        csrf: &csrf,
        req: req.map(|r| r.id.as_str()),
        passkey: &req.map(|_| passkey.render_if(s)).unwrap_or_default(),
    };
    let resp = match req {
        Some(r) => factor_response(StatusCode::OK, &page, Some(&r.redirect_uri)),
        None => html::view(StatusCode::OK, &page),
    };
    with_cookie(resp, cookie)
}
