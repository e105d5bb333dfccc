//! The sign-in interaction over HTTP: the [`Flow`] extractor (what the browser brings: its
//! binding, session and second-factor cookies, its address), the [`Checked`] form extractor (a
//! form whose CSRF token matches its cookie), and [`Flow::answer`], which turns the protocol's
//! [`Interaction`] into a response: a redirect, the client's authorization response, a page, or
//! a refusal in the user's words.

use super::{client_ip, cookies, html, user_agent};
use crate::app::AppState;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use portico_protocol::authorize::{Origin, Step};
use portico_protocol::interaction::{Browser, Cookie, Cx, Failed, Interaction, Place, Refusal, Then};
use std::net::SocketAddr;

/// What the browser brings to a request of the sign-in interaction.
pub struct Flow {
    pub headers: HeaderMap,
    pub browser: Browser,
    /// The binding cookie to set when the answer binds this browser afresh.
    binding_cookie: Option<HeaderValue>,
}

impl FromRequestParts<AppState> for Flow {
    type Rejection = Response;

    /// Refused without the peer's address: the per-address limits and the throttle count by it,
    /// and must not fail open (Portico's accept loop always gives it).
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let Some(ConnectInfo(addr)) = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied() else {
            tracing::error!("a sign-in request without its peer's address");
            return Err(refusal(Refusal::Unavailable(Failed::SignIn)));
        };
        Ok(Flow::new(s, parts.headers.clone(), Some(&addr)))
    }
}

impl Flow {
    pub fn new(s: &AppState, headers: HeaderMap, addr: Option<&SocketAddr>) -> Self {
        let (binding, binding_cookie) = cookies::binding(s, &headers);
        let owned = |name: &str| cookies::get(&headers, name).map(str::to_owned);
        let browser = Browser {
            bound: cookies::binding_hash(s, &headers),
            binding: portico_protocol::random::hash(&binding),
            binding_is_new: binding_cookie.is_some(),
            session: owned(cookies::session_name(s)),
            second_factor: owned(cookies::mfa_name(s)),
            sent_cookies: headers.contains_key(header::COOKIE),
            from: Origin {
                ip: client_ip(addr),
                user_agent: user_agent(&headers),
            },
        };
        Self {
            headers,
            browser,
            binding_cookie,
        }
    }

    /// The context of one protocol call.
    pub fn cx<'a>(&'a self, s: &'a AppState) -> Cx<'a> {
        Cx {
            p: &s.provider,
            browser: &self.browser,
            admit: &*s.pending_limits,
            ceremonies: &*s.ceremony_limits,
            now: super::now(s),
        }
    }

    /// A CSRF token for the page's forms, and its cookie when the browser has none yet.
    pub fn csrf(&self, s: &AppState) -> (String, Option<HeaderValue>) {
        cookies::csrf_token(s, &self.headers)
    }

    /// The response to `i`: `show` renders its view.
    pub fn answer<V>(&self, s: &AppState, i: Interaction<V>, show: impl FnOnce(V) -> Response) -> Response {
        let mut resp = match i.then {
            Then::Go(place) => html::secure(Redirect::to(&url(&place)).into_response(), None),
            Then::Respond(r) => super::oauth::respond(r),
            Then::Show(v) => show(v),
            Then::Refuse(r) => refusal(r),
        };
        for c in i.cookies {
            let value = match c {
                Cookie::Binding => self.binding_cookie.clone(),
                Cookie::Session(v) => Some(cookies::set(s, cookies::session_name(s), &v, None)),
                Cookie::SecondFactor(Some(v)) => Some(cookies::set(
                    s,
                    cookies::mfa_name(s),
                    &v,
                    Some(portico_protocol::interaction::pending::SECOND_FACTOR_TTL),
                )),
                Cookie::SecondFactor(None) => Some(cookies::set(s, cookies::mfa_name(s), "", Some(0))),
                Cookie::ClearSession => Some(cookies::set(s, cookies::session_name(s), "", Some(0))),
            };
            if let Some(v) = value {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        resp
    }
}

/// The path of a place in the flow.
pub fn url(place: &Place) -> String {
    match place {
        Place::Step(step, id) => format!("{}?req={id}", step_path(*step)),
        Place::Resume(id) => format!("/oauth2/authorize/resume?req={id}"),
        Place::SecondFactor => "/login/mfa".to_owned(),
        Place::Local(path) => (*path).to_owned(),
        Place::DeviceDone(approved) => format!("/device/done?approved={}", u8::from(*approved)),
    }
}

fn step_path(step: Step) -> &'static str {
    match step {
        Step::Login => "/login",
        Step::Consent => "/consent",
        Step::TenantPicker => "/select-tenant",
        Step::SecondFactor => "/login/second-factor",
    }
}

/// A refusal, in the user's words.
pub fn refusal(r: Refusal) -> Response {
    let (status, message) = match r {
        Refusal::BadRequest(msg) => (StatusCode::BAD_REQUEST, msg),
        Refusal::Expired => (StatusCode::BAD_REQUEST, EXPIRED),
        Refusal::OtherBrowser => (
            StatusCode::FORBIDDEN,
            "This sign-in was started in another browser. Go back to the application and start again here.",
        ),
        Refusal::NeedsCookies => (
            StatusCode::BAD_REQUEST,
            "Signing in needs cookies. Allow cookies for this site, then go back to the application and start again.",
        ),
        Refusal::NotWaiting => (
            StatusCode::BAD_REQUEST,
            "This sign-in is not waiting for that step. Go back to the application and start again.",
        ),
        Refusal::BadLogout(message) => {
            return html::Message::new("Sign out", "This sign-out request cannot be completed")
                .alert(message)
                .page(StatusCode::BAD_REQUEST);
        }
        Refusal::Unavailable(what) => (StatusCode::INTERNAL_SERVER_ERROR, unavailable(what)),
        Refusal::BadDeviceCode => (
            StatusCode::BAD_REQUEST,
            "That code is not right, or it has expired. Check the code on your device.",
        ),
    };
    html::error_page(status, message)
}

const EXPIRED: &str = "This sign-in request has expired. Go back to the application and start again.";

fn unavailable(what: Failed) -> &'static str {
    match what {
        Failed::SignIn => "Sign-in is unavailable right now. Try again.",
        Failed::Authorization => "The sign-in could not be completed. Try again.",
        Failed::Consent => "The consent could not be saved. Try again.",
        Failed::Organizations => "The organizations could not be loaded. Try again.",
        Failed::SignOut => "Signing out is unavailable right now. Try again.",
    }
}

/// A form whose CSRF token does not match its cookie.
pub fn bad_form() -> Response {
    html::error_page(
        StatusCode::FORBIDDEN,
        "The form expired or was not sent from this site. Reload the page and try again.",
    )
}

/// A form of nothing but its CSRF token (a button that posts).
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    pub csrf: Option<String>,
}

csrf_form!(CsrfForm);

/// The signed-in user of this browser: its live SSO session and that session's user. Without one
/// the browser is sent to sign in, and back to its account page after.
pub struct Account {
    pub session: portico_store::SsoSession,
    pub user: portico_model::User,
}

impl Account {
    /// The browser's account, if it is signed in; `Err` when the store failed.
    pub async fn of(s: &AppState, headers: &HeaderMap) -> Result<Option<Account>, portico_store::StoreError> {
        let Some(cookie) = cookies::get(headers, cookies::session_name(s)) else {
            return Ok(None);
        };
        let found = portico_protocol::login::signed_in(&s.provider, cookie, super::now(s)).await?;
        Ok(found.map(|(session, user)| Account { session, user }))
    }
}

impl FromRequestParts<AppState> for Account {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        match Account::of(s, &parts.headers).await {
            Ok(Some(account)) => Ok(account),
            Ok(None) => Err(html::secure(Redirect::to("/login?next=/account").into_response(), None)),
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                Err(html::error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Your account is unavailable right now. Try again.",
                ))
            }
        }
    }
}

/// A form that carries a CSRF token (field `csrf`).
pub trait CsrfField {
    fn csrf(&self) -> Option<&str>;
}

/// A form whose CSRF token matches the browser's cookie; any other is refused ([`bad_form`])
/// before a handler sees it.
pub struct Checked<T>(pub T);

impl<T> FromRequest<AppState> for Checked<T>
where
    T: serde::de::DeserializeOwned + CsrfField + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Self::Rejection> {
        checked_form(req, s).await?.map(Checked).ok_or_else(bad_form)
    }
}

/// As [`Checked`], for a form a page's script posts and whose answer it reads as JSON: a failed
/// check is a problem document.
pub struct CheckedForScript<T>(pub T);

impl<T> FromRequest<AppState> for CheckedForScript<T>
where
    T: serde::de::DeserializeOwned + CsrfField + Send,
{
    type Rejection = Response;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Self::Rejection> {
        checked_form(req, s).await?.map(CheckedForScript).ok_or_else(super::passkey::refused_csrf)
    }
}

/// The form, `None` when its CSRF token does not match the cookie; a malformed form is refused.
async fn checked_form<T: serde::de::DeserializeOwned + CsrfField>(req: Request, s: &AppState) -> Result<Option<T>, Response> {
    let headers = req.headers().clone();
    let axum::Form(form) = axum::Form::<T>::from_request(req, s).await.map_err(IntoResponse::into_response)?;
    Ok(cookies::csrf_ok(s, &headers, form.csrf()).then_some(form))
}

/// Implements [`CsrfField`] for forms whose token is the field `csrf: Option<String>`.
macro_rules! csrf_form {
    ($($t:ty),* $(,)?) => {
        $(impl $crate::http::flow::CsrfField for $t {
            fn csrf(&self) -> Option<&str> {
                self.csrf.as_deref()
            }
        })*
    };
}
pub(crate) use csrf_form;

impl Flow {
    /// The request a page (GET) outside the flow names, if any (see
    /// [`interaction::page_request`]); otherwise the answer.
    pub async fn page_request(&self, s: &AppState, id: Option<&str>) -> Result<Option<portico_protocol::authorize::AuthRequest>, Response> {
        let Some(id) = id else { return Ok(None) };
        match portico_protocol::interaction::page_request(&self.cx(s), id).await {
            Ok(r) => Ok(Some(r)),
            Err(i) => Err(self.answer(s, i, |v| match v {})),
        }
    }

    /// As [`Flow::page_request`], for a form: only the browser that started the request moves it on.
    pub async fn form_request(&self, s: &AppState, id: Option<&str>) -> Result<Option<portico_protocol::authorize::AuthRequest>, Response> {
        let Some(id) = id else { return Ok(None) };
        match portico_protocol::interaction::form_request(&self.cx(s), id).await {
            Ok(r) => Ok(Some(r)),
            Err(i) => Err(self.answer(s, i, |v| match v {})),
        }
    }
}
