//! Signing in: the login page, the password and its throttle, a passwordless passkey, and the
//! session that starts once every factor passed.

use super::pending::{self, Kind};
use super::steps::form_request;
use super::{Cookie, Cx, Failed, Interaction, Place, failed};
use crate::authorize::AuthRequest;
use crate::passkey::PasskeyError;
use crate::{login, passkey, random, throttle};
use portico_model::{Amr, User};
use serde::{Deserialize, Serialize};

/// The local pages a sign-in not started by an application may return to: only Portico's own
/// `/account` (never a URL from the query: no open redirect).
pub fn local_next(next: Option<&str>) -> Option<&'static str> {
    (next == Some("/account")).then_some("/account")
}

/// What the login page shows.
#[derive(Debug)]
pub struct LoginView {
    /// The application's request this sign-in is for, if any.
    pub req: Option<AuthRequest>,
    /// Where a sign-in for no request goes afterwards.
    pub next: Option<&'static str>,
    /// The email filled in: the request's `login_hint`, or what was typed.
    pub email: String,
    /// The product the request is for, by name.
    pub product: Option<String>,
    pub error: Option<LoginError>,
}

/// Why the password was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Too many failures for this email or from this address: seconds to wait.
    Throttled(i64),
    /// Unknown email, wrong password and disabled user alike.
    WrongPassword,
}

fn login_view(cx: &Cx<'_>, req: Option<AuthRequest>, next: Option<&str>, email: String, error: Option<LoginError>) -> LoginView {
    let product = req
        .as_ref()
        .and_then(|r| cx.p.config().product_by_audience(&r.audience).map(|p| p.name.clone()));
    LoginView {
        req,
        next: local_next(next),
        email,
        product,
        error,
    }
}

/// The request a sign-in page names, if it names one: checked for this browser (a page restarts
/// one from another browser).
async fn page_request(cx: &Cx<'_>, id: Option<&str>) -> Result<Option<AuthRequest>, Interaction> {
    match id {
        Some(id) => super::steps::page_request(cx, id).await.map(Some),
        None => Ok(None),
    }
}

/// As [`page_request`], for a form: only the browser that started the request moves it on.
pub(super) async fn optional_form_request(cx: &Cx<'_>, id: Option<&str>) -> Result<Option<AuthRequest>, Interaction> {
    match id {
        Some(id) => form_request(cx, id).await.map(Some),
        None => Ok(None),
    }
}

/// `GET /login`.
pub async fn login_page(cx: &Cx<'_>, req: Option<&str>, next: Option<&str>) -> Interaction<LoginView> {
    match page_request(cx, req).await {
        Ok(req) => {
            let email = req.as_ref().and_then(|r| r.login_hint.clone()).unwrap_or_default();
            Interaction::show(login_view(cx, req, next, email, None))
        }
        Err(answer) => answer.into_any(),
    }
}

/// `POST /login`: the password. Too many failures for this email (known or not) or from this
/// address: wait, unchecked. Otherwise the attempt is counted before the password is checked, and
/// given back on success. A user with a second factor passes it before any session exists.
pub async fn sign_in(cx: &Cx<'_>, req: Option<&str>, next: Option<&str>, email: &str, password: &str) -> Interaction<LoginView> {
    let req = match optional_form_request(cx, req).await {
        Ok(r) => r,
        Err(answer) => return answer.into_any(),
    };
    let (p, ip) = (cx.p, cx.browser.from.ip.clone());
    let refuse = |req, why| Interaction::show(login_view(cx, req, next, email.to_owned(), Some(why)));
    let gate = match throttle::reserve(p, email, ip.as_deref(), p.clock.now_ms()).await {
        Ok(gate) => gate,
        Err(e) => return failed(Failed::SignIn, e),
    };
    if let Some(wait) = gate.wait {
        return refuse(req, LoginError::Throttled(wait));
    }
    let user = match login::check_password(p, email, password, ip.clone(), cx.now).await {
        Ok(u) => u,
        Err(e) => return failed(Failed::SignIn, e),
    };
    let Some(user) = user else {
        return refuse(req, LoginError::WrongPassword);
    };
    if let Err(e) = throttle::succeeded(p, email, ip.as_deref(), p.clock.now_ms()).await {
        return failed(Failed::SignIn, e);
    }
    match login::factors(p, &user.id).await {
        Ok(f) if f.any() => wait_for_second_factor(cx, &user, req.as_ref(), local_next(next)).await,
        Ok(_) => signed_in(cx, &user, &[Amr::Pwd], req, local_next(next)).await.into_any(),
        Err(e) => failed(Failed::SignIn, e),
    }
}

/// A sign-in past its password, waiting for the second factor.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct WaitingSignIn {
    pub user: String,
    pub req: Option<String>,
    /// The redirect URI of that request: where the second-factor page's forms end.
    pub return_to: Option<String>,
    pub next: Option<String>,
}

/// Remembers the sign-in under a random handle (the browser's cookie) and sends it to the code page.
async fn wait_for_second_factor<V>(cx: &Cx<'_>, user: &User, req: Option<&AuthRequest>, next: Option<&'static str>) -> Interaction<V> {
    let handle = random::token();
    let waiting = WaitingSignIn {
        user: user.id.as_str().to_owned(),
        req: req.map(|r| r.id.clone()),
        return_to: req.map(|r| r.redirect_uri.clone()),
        next: next.map(str::to_owned),
    };
    if let Err(e) = pending::put(&cx.p.store, &cx.p.settings, Kind::SecondFactor, &handle, &waiting, cx.now).await {
        return failed(Failed::SignIn, e);
    }
    Interaction::go(Place::SecondFactor).with(Cookie::SecondFactor(Some(handle)))
}

/// Starts the SSO session of a user who has passed every factor (`methods`) and sends the
/// browser on: back into the authorization request it came with, or to a local page.
pub(super) async fn signed_in(cx: &Cx<'_>, user: &User, methods: &[Amr], req: Option<AuthRequest>, next: Option<&'static str>) -> Interaction {
    let b = cx.browser;
    let ip = b.from.ip.as_deref().unwrap_or("");
    let (cookie, session) = match login::start_session(cx.p, user, methods, &b.from.user_agent, ip, cx.now).await {
        Ok(x) => x,
        Err(e) => return failed(Failed::SignIn, e),
    };
    let place = match req {
        Some(mut r) => {
            // Earned by this session alone: whoever else resumes the request has not signed in.
            r.advance(&session, |g| g.login_done = true);
            if let Err(e) = super::request::save(&cx.p.store, &cx.p.settings, &r).await {
                return failed(Failed::SignIn, e);
            }
            Place::Resume(r.id)
        }
        None => Place::Local(next.unwrap_or("/")),
    };
    Interaction::go(place).with(Cookie::Session(cookie))
}

/// `POST /login/passkey`: signs in whoever's passkey answered the challenge (with user
/// verification: possession and a PIN or biometric, `hwk` and `mfa`). A refused passkey is
/// [`PasskeyRefused`].
pub async fn passkey_sign_in(cx: &Cx<'_>, req: Option<&str>, next: Option<&str>, token: &str, credential: &str) -> Interaction<PasskeyRefused> {
    let req = match optional_form_request(cx, req).await {
        Ok(r) => r,
        Err(answer) => return answer.into_any(),
    };
    match passkey::finish_sign_in(cx.p, token, credential, None, cx.browser.from.ip.clone(), cx.now).await {
        Ok(user) => signed_in(cx, &user, &[Amr::Hwk, Amr::Mfa], req, local_next(next)).await.into_any(),
        Err(PasskeyError::Store(e)) => failed(Failed::SignIn, e),
        Err(PasskeyError::Expired) => Interaction::show(PasskeyRefused { expired: true }),
        Err(_) => Interaction::show(PasskeyRefused { expired: false }),
    }
}

/// A passkey that did not sign in: its ceremony had expired (or was used), or it was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasskeyRefused {
    pub expired: bool,
}
