//! The browser side of signing in, as one state machine behind typed outcomes: the pending
//! authorization request, the password and its throttle, the second factor, the tenant picker,
//! consent, the resume that ends in a code, and RP-initiated logout. Each browser request is one call here and one
//! [`Interaction`] back; the server words the [`Refusal`]s, renders the views and sets the
//! [`Cookie`]s. Every state between two requests is a [`pending`] state; the authorization
//! request is bound to the browser that started it, the waiting second factor is named by that
//! browser's cookie.

mod logout;
pub mod pending;
mod request;
mod second_factor;
mod sign_in;
mod steps;

pub use logout::{LogoutView, confirm_logout};
pub use request::still_waiting;
pub use second_factor::{
    FactorAnswer, FactorError, FactorView, StepUpView, second_factor, second_factor_options, second_factor_page, step_up, step_up_options, step_up_page,
};
pub use sign_in::{LoginError, LoginView, PasskeyRefused, local_next, login_page, passkey_sign_in, sign_in};
pub use steps::{ConsentView, TenantView, authorize, choose_tenant, consent, consent_page, enter_device_code, form_request, page_request, resume, tenant_page};

use crate::authorize::{AuthResponse, Origin, Step};
use crate::provider::Provider;
use portico_store::SsoSession;

/// What a browser brings to a step of the interaction. Its `Debug` leaves out the cookie values.
#[derive(Clone, Default)]
pub struct Browser {
    /// The hash of the binding cookie it sent, whatever its form.
    pub bound: Option<String>,
    /// The hash of the binding a request it starts is bound to: its own cookie's when that is
    /// well-formed, else a fresh one (then [`Cookie::Binding`] in the answer gives it the cookie).
    pub binding: String,
    /// Whether [`Browser::binding`] is fresh.
    pub binding_is_new: bool,
    /// The value of its SSO session cookie.
    pub session: Option<String>,
    /// The value of its pending second factor's cookie.
    pub second_factor: Option<String>,
    /// Whether it sent any cookie at all.
    pub sent_cookies: bool,
    pub from: Origin,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("bound", &self.bound.is_some())
            .field("binding_is_new", &self.binding_is_new)
            .field("session", &self.session.is_some())
            .field("second_factor", &self.second_factor.is_some())
            .field("sent_cookies", &self.sent_cookies)
            .field("from", &self.from)
            .finish()
    }
}

/// The context of one browser request: the provider, the browser, the clock, and the rate at
/// which this browser's address may leave new pending requests (seconds to wait when over it).
pub struct Cx<'a> {
    pub p: &'a Provider,
    pub browser: &'a Browser,
    pub admit: &'a dyn PendingLimit,
    /// The rate of passkey ceremonies per user ([`crate::passkey::allowance`]).
    pub ceremonies: &'a dyn PendingLimit,
    pub now: i64,
}

/// The rate at which one key (an address, a user) may leave new pending states: each is a row
/// its holder can cause.
pub trait PendingLimit: Send + Sync {
    /// `None` when `key` may leave another; otherwise the seconds to wait.
    fn wait(&self, key: &str) -> Option<u64>;
}

impl Cx<'_> {
    /// The browser's live SSO session, if any (a store failure reads as none, and is logged).
    pub async fn session(&self) -> Option<SsoSession> {
        let cookie = self.browser.session.as_deref()?;
        crate::login::session_from_cookie(self.p, cookie, self.now).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "session lookup failed");
            None
        })
    }

    /// The browser's live SSO session and its user.
    pub async fn signed_in_user(&self) -> Option<(SsoSession, portico_model::User)> {
        let cookie = self.browser.session.as_deref()?;
        crate::login::signed_in(self.p, cookie, self.now).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "session lookup failed");
            None
        })
    }
}

/// A cookie the answer sets. Its `Debug` names the cookie, never its value.
#[derive(Clone, PartialEq, Eq)]
pub enum Cookie {
    /// Bind the browser with its fresh binding ([`Browser::binding_is_new`]).
    Binding,
    /// The SSO session just started: its cookie's value.
    Session(String),
    /// The handle of the sign-in waiting for its second factor; `None` clears it.
    SecondFactor(Option<String>),
    /// The session is over (or was never here): clear its cookie.
    ClearSession,
}

impl std::fmt::Debug for Cookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cookie::Binding => "Binding",
            Cookie::Session(_) => "Session(…)",
            Cookie::SecondFactor(Some(_)) => "SecondFactor(…)",
            Cookie::SecondFactor(None) => "SecondFactor(cleared)",
            Cookie::ClearSession => "Session(cleared)",
        })
    }
}

/// Where the browser goes next inside Portico.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// A step's page, for the request `id`.
    Step(Step, String),
    /// Decide the request `id` again (`/oauth2/authorize/resume`).
    Resume(String),
    /// The page of the sign-in waiting for its second factor (`/login/mfa`).
    SecondFactor,
    /// A local page: `/account` or `/`.
    Local(&'static str),
    /// A device's approval is recorded: approved, or denied.
    DeviceDone(bool),
}

/// Why a step did not go on. The server words each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The authorization request cannot be trusted with a redirect (RFC 6749 §4.1.2.1).
    BadRequest(&'static str),
    /// The request (or the pending sign-in) is gone.
    Expired,
    /// A form for a request another browser started.
    OtherBrowser,
    /// A browser that keeps no cookie came back to a request restarted for it moments ago.
    NeedsCookies,
    /// A form for a step the request does not wait at, for this session.
    NotWaiting,
    /// A logout request that cannot be carried out (RP-Initiated Logout §3: shown, never
    /// redirected).
    BadLogout(&'static str),
    /// The store failed; what could not be done.
    Unavailable(Failed),
    /// A user code at `/device` that names no device waiting for approval.
    BadDeviceCode,
}

/// What the store failure stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed {
    SignIn,
    Authorization,
    Consent,
    Organizations,
    SignOut,
}

/// How a step ends.
#[derive(Debug)]
pub enum Then<V> {
    /// Send the browser to a page of Portico.
    Go(Place),
    /// Send the authorization response to the client.
    Respond(AuthResponse),
    /// Show this page.
    Show(V),
    Refuse(Refusal),
}

/// The answer to one browser request: how it ends, and the cookies it sets.
#[derive(Debug)]
pub struct Interaction<V = NoView> {
    pub then: Then<V>,
    pub cookies: Vec<Cookie>,
}

/// The view of a step that shows none.
#[derive(Debug)]
pub enum NoView {}

impl<V> Interaction<V> {
    pub fn go(place: Place) -> Self {
        Then::Go(place).into()
    }

    pub fn refuse(r: Refusal) -> Self {
        Then::Refuse(r).into()
    }

    pub fn show(v: V) -> Self {
        Then::Show(v).into()
    }

    /// The same answer, also setting `cookie`.
    pub fn with(mut self, cookie: Cookie) -> Self {
        self.cookies.push(cookie);
        self
    }

    /// A step's answer as another step's (which shows its own view, if any).
    pub fn widen<W>(self, f: impl FnOnce(V) -> W) -> Interaction<W> {
        let then = match self.then {
            Then::Go(p) => Then::Go(p),
            Then::Respond(r) => Then::Respond(r),
            Then::Show(v) => Then::Show(f(v)),
            Then::Refuse(r) => Then::Refuse(r),
        };
        Interaction { then, cookies: self.cookies }
    }
}

impl Interaction<NoView> {
    /// An answer that shows nothing, as the answer of a step that may show `W`.
    pub fn into_any<W>(self) -> Interaction<W> {
        self.widen(|v| match v {})
    }
}

impl<V> From<Then<V>> for Interaction<V> {
    fn from(then: Then<V>) -> Self {
        Self { then, cookies: Vec::new() }
    }
}

/// A store failure, logged, as the refusal the user sees.
fn failed<V>(what: Failed, e: impl std::fmt::Display) -> Interaction<V> {
    tracing::error!(error = %e, ?what, "the sign-in interaction failed");
    Interaction::refuse(Refusal::Unavailable(what))
}
