//! The second factor: after the password (`/login/mfa`, before any session exists), and as a
//! step-up when a product requires one of a session that has none (`/login/second-factor`), where
//! a user without a factor is led through setting one up.

use super::pending::{self, Kind};
use super::sign_in::{WaitingSignIn, local_next, optional_form_request, signed_in};
use super::steps::{form_request, page_request};
use super::{Cookie, Cx, Failed, Interaction, Place, Refusal, failed};
use crate::authorize::{AuthRequest, Step};
use crate::enrolment::{self, FactorChange};
use crate::login::{self, Factors};
use crate::passkey::{self, PasskeyError, Started};
use crate::totp::{self, Enrollment};
use portico_model::{Amr, User, UserId};
use portico_store::{SsoSession, StoreError};

/// What a second factor form sent. Its `Debug` leaves out the code and the ceremony's token: each
/// is a live factor until used.
#[derive(Clone)]
pub enum FactorAnswer {
    /// A code from the authenticator app, or a recovery code.
    Code(String),
    /// A passkey's answer to its ceremony (`token`).
    Passkey { token: String, credential: String },
}

impl std::fmt::Debug for FactorAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(_) => f.write_str("Code(..)"),
            Self::Passkey { .. } => f.write_str("Passkey { .. }"),
        }
    }
}

/// Why a factor was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorError {
    WrongCode,
    /// Too many wrong codes: codes from the app are refused for a while (recovery codes are not).
    Locked,
    PasskeyRefused,
}

/// The code page: a passkey button for a user with passkeys, and the code form.
#[derive(Debug)]
pub struct FactorView {
    pub factors: Factors,
    /// The step-up's request (its forms carry it); `None` after a password.
    pub req: Option<String>,
    /// Where its forms end: the redirect URI of the request it signs in for.
    pub return_to: Option<String>,
    pub error: Option<FactorError>,
}

/// What the step-up page shows. No `Debug`: it may hold a new authenticator's secret and recovery
/// codes.
pub enum StepUpView {
    /// Ask for a factor the user has.
    Code(FactorView),
    /// No factor yet, and a product of the user's refuses one set up by a password alone: the
    /// mailed link first.
    Offer { req: AuthRequest, email: String },
    /// No factor yet: set up an authenticator app (or a passkey) now.
    Enrol { req: AuthRequest, enrollment: Enrollment },
    /// The authenticator is on: its recovery codes, shown once, then the request goes on.
    RecoveryCodes { req: AuthRequest, codes: Vec<String> },
}

async fn waiting(cx: &Cx<'_>) -> Result<Option<WaitingSignIn>, StoreError> {
    match cx.browser.second_factor.as_deref() {
        Some(handle) => pending::get(&cx.p.store, Kind::SecondFactor, handle, cx.now).await,
        None => Ok(None),
    }
}

async fn view(cx: &Cx<'_>, user: &UserId, req: Option<String>, return_to: Option<String>, error: Option<FactorError>) -> Result<FactorView, StoreError> {
    Ok(FactorView {
        factors: login::factors(cx.p, user).await?,
        req,
        return_to,
        error,
    })
}

/// `GET /login/mfa`.
pub async fn second_factor_page(cx: &Cx<'_>) -> Interaction<FactorView> {
    let w = match waiting(cx).await {
        Ok(Some(w)) => w,
        Ok(None) => return Interaction::refuse(Refusal::Expired),
        Err(e) => return failed(Failed::SignIn, e),
    };
    match view(cx, &UserId::new(&w.user), None, w.return_to, None).await {
        Ok(v) => Interaction::show(v),
        Err(e) => failed(Failed::SignIn, e),
    }
}

/// `POST /login/mfa/passkey/options`: the passkey ceremony of the waiting sign-in's user;
/// `None` when the sign-in has expired.
pub async fn second_factor_options(cx: &Cx<'_>) -> Option<Result<Option<Started>, PasskeyError>> {
    match waiting(cx).await {
        Ok(Some(w)) => {
            let user = UserId::new(&w.user);
            if let Err(e) = passkey::allowance(cx.ceremonies, &user) {
                return Some(Err(e));
            }
            Some(passkey::start_verification(cx.p, &user, cx.now).await)
        }
        Ok(None) => None,
        Err(e) => Some(Err(e.into())),
    }
}

/// `POST /login/second-factor/passkey/options`: the ceremony of the signed-in user stepping up;
/// `None` when signed out.
pub async fn step_up_options(cx: &Cx<'_>) -> Option<Result<Option<Started>, PasskeyError>> {
    let (_, user) = cx.signed_in_user().await?;
    if let Err(e) = passkey::allowance(cx.ceremonies, &user.id) {
        return Some(Err(e));
    }
    Some(passkey::start_verification(cx.p, &user.id, cx.now).await)
}

/// Checks a factor of `user`: the `amr` value it earns, or `None` when refused.
async fn check(cx: &Cx<'_>, user: &User, answer: &FactorAnswer) -> Result<Option<Amr>, StoreError> {
    let ip = cx.browser.from.ip.clone();
    match answer {
        FactorAnswer::Passkey { token, credential } => match passkey::finish_sign_in(cx.p, token, credential, Some(&user.id), ip, cx.now).await {
            Ok(_) => Ok(Some(Amr::Hwk)),
            Err(PasskeyError::Store(e)) => Err(e),
            Err(_) => Ok(None),
        },
        FactorAnswer::Code(code) => Ok(totp::second_factor(cx.p, user, code, ip, cx.now).await?.then_some(Amr::Otp)),
    }
}

/// Why `answer` was refused.
async fn refusal(cx: &Cx<'_>, user: &UserId, answer: &FactorAnswer) -> Result<FactorError, StoreError> {
    Ok(match answer {
        FactorAnswer::Passkey { .. } => FactorError::PasskeyRefused,
        FactorAnswer::Code(_) if totp::locked(cx.p, user, cx.now).await? => FactorError::Locked,
        FactorAnswer::Code(_) => FactorError::WrongCode,
    })
}

/// `POST /login/mfa`: the second factor after the password. The waiting sign-in is spent once
/// the factor passed (taken out in one statement, so two answers sent at once cannot both start
/// a session), and only after the request it goes back to was checked for this browser: a
/// refusal there must not spend it.
pub async fn second_factor(cx: &Cx<'_>, answer: FactorAnswer) -> Interaction<FactorView> {
    let w = match waiting(cx).await {
        Ok(Some(w)) => w,
        Ok(None) => return Interaction::refuse(Refusal::Expired),
        Err(e) => return failed(Failed::SignIn, e),
    };
    let user = match cx.p.store.user_by_id(&UserId::new(&w.user)).await {
        Ok(Some(u)) => u,
        Ok(None) => return failed(Failed::SignIn, "the waiting sign-in's user is gone"),
        Err(e) => return failed(Failed::SignIn, e),
    };
    if !user.is_active() {
        return Interaction::refuse(Refusal::Expired);
    }
    let factor = match check(cx, &user, &answer).await {
        Ok(Some(f)) => f,
        Ok(None) => {
            let refused = match refusal(cx, &user.id, &answer).await {
                Ok(why) => view(cx, &user.id, None, w.return_to, Some(why)).await,
                Err(e) => Err(e),
            };
            return refused.map_or_else(|e| failed(Failed::SignIn, e), Interaction::show);
        }
        Err(e) => return failed(Failed::SignIn, e),
    };
    let req = match optional_form_request(cx, w.req.as_deref()).await {
        Ok(r) => r,
        Err(answer) => return answer.into_any(),
    };
    let handle = cx.browser.second_factor.as_deref().unwrap_or_default();
    match pending::take::<WaitingSignIn>(&cx.p.store, Kind::SecondFactor, handle, cx.now).await {
        Ok(Some(_)) => {}
        Ok(None) => return Interaction::refuse(Refusal::Expired),
        Err(e) => return failed(Failed::SignIn, e),
    }
    signed_in(cx, &user, &[Amr::Pwd, factor], req, local_next(w.next.as_deref()))
        .await
        .with(Cookie::SecondFactor(None))
        .into_any()
}

/// The step-up page for the request and the signed-in user.
async fn step_up_view(cx: &Cx<'_>, req: AuthRequest, session: &SsoSession, user: &User) -> Result<StepUpView, StoreError> {
    let factors = login::factors(cx.p, &user.id).await?;
    let code = |req: AuthRequest| {
        StepUpView::Code(FactorView {
            factors,
            return_to: Some(req.redirect_uri.clone()),
            req: Some(req.id),
            error: None,
        })
    };
    if factors.any() {
        return Ok(code(req));
    }
    if enrolment::may_change_factors_given(cx.p, session, factors, cx.now).await? == FactorChange::EmailLinkNeeded {
        return Ok(StepUpView::Offer {
            req,
            email: user.email.clone(),
        });
    }
    Ok(match totp::start(cx.p, user, cx.now).await? {
        Some(enrollment) => StepUpView::Enrol { req, enrollment },
        None => code(req),
    })
}

/// `GET /login/second-factor`: a product requires a second factor, the session has none: ask for
/// one — or, for a user who has none yet, lead them through setting one up — then resume.
pub async fn step_up_page(cx: &Cx<'_>, id: &str) -> Interaction<StepUpView> {
    let req = match page_request(cx, id).await {
        Ok(r) => r,
        Err(answer) => return answer.into_any(),
    };
    // Signed out meanwhile: the authorization starts over at the login form.
    let Some((session, user)) = cx.signed_in_user().await else {
        return Interaction::go(Place::Resume(req.id));
    };
    step_up_view(cx, req, &session, &user)
        .await
        .map_or_else(|e| failed(Failed::SignIn, e), Interaction::show)
}

/// `POST /login/second-factor`: the step-up's factor, or (`enrolling`) the first code of the
/// authenticator just set up.
pub async fn step_up(cx: &Cx<'_>, id: &str, answer: FactorAnswer, enrolling: bool) -> Interaction<StepUpView> {
    let req = match form_request(cx, id).await {
        Ok(r) => r,
        Err(answer) => return answer.into_any(),
    };
    let Some((session, user)) = cx.signed_in_user().await else {
        return Interaction::go(Place::Resume(req.id));
    };
    let (p, ip, now) = (cx.p, cx.browser.from.ip.clone(), cx.now);
    let passed = match &answer {
        FactorAnswer::Passkey { .. } => match check(cx, &user, &answer).await {
            Ok(Some(factor)) => login::add_factor(&p.store, &session, factor).await.map(|_| true),
            Ok(None) => Ok(false),
            Err(e) => Err(e),
        },
        FactorAnswer::Code(code) => totp::step_up(p, &session, &user, code, enrolling, ip.clone(), now).await,
    };
    let enrolled = enrolling && matches!(answer, FactorAnswer::Code(_));
    match passed {
        Err(e) => failed(Failed::SignIn, e),
        Ok(true) if enrolled => match totp::new_recovery_codes(p, &user.id, ip, now).await {
            Ok(codes) => Interaction::show(StepUpView::RecoveryCodes { req, codes }),
            Err(e) => failed(Failed::SignIn, e),
        },
        Ok(true) => Interaction::go(Place::Resume(req.id)),
        // A wrong first code: start the setup again (a new key).
        Ok(false) if enrolled => Interaction::go(Place::Step(Step::SecondFactor, req.id)),
        Ok(false) => {
            let refused = match refusal(cx, &user.id, &answer).await {
                Ok(why) => view(cx, &user.id, Some(req.id.clone()), Some(req.redirect_uri.clone()), Some(why)).await,
                Err(e) => Err(e),
            };
            refused.map_or_else(|e| failed(Failed::SignIn, e), |v| Interaction::show(StepUpView::Code(v)))
        }
    }
}
