//! The authorization endpoint (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2, RFC 7636, RFC 8707,
//! RFC 9207): [`validate`] the request, then [`decide`] — show login, show consent, answer an
//! error at the redirect URI, or issue a code (`code.rs`).

mod code;
mod decide;
mod validate;

pub use code::CodeData;
pub use decide::decide;
pub use validate::{MAX_OTHER_PARAM, MAX_PARAM, MAX_PARAMS, MAX_PARAMS_TOTAL, validate};
pub(crate) use validate::{limit_of, words};

use crate::error::{ErrorCode, OAuthError, oauth};
use crate::provider::Provider;
use crate::random;
use portico_model::{PolicyError, Tenant};
use portico_store::SsoSession;
use serde::{Deserialize, Serialize};

/// Scopes Portico understands at the authorization endpoint.
pub const SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    Fragment,
    FormPost,
    /// OAuth 2.0 Web Message Response Mode (draft): posted with `postMessage` to the window that
    /// opened or framed the authorization, at the redirect URI's origin when the client registered
    /// it in `web_origins`.
    WebMessage,
}

/// A validated authorization request, kept in the store while the user logs in or consents.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthRequest {
    pub id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub response_mode: ResponseMode,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub scope: Vec<String>,
    pub code_challenge: Option<String>,
    pub prompt: Vec<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// The acceptable `acr` values, space-separated in order of preference: `acr_values`, or
    /// those the `claims` parameter named.
    pub acr_values: Option<String>,
    /// The `claims` parameter made `acr` an Essential Claim.
    #[serde(default)]
    pub acr_essential: bool,
    /// The product's audience (RFC 8707 `resource`), resolved at validation.
    pub audience: String,
    pub organization: Option<String>,
    pub created_at: i64,
    /// The hash of the browser binding cookie set at `/oauth2/authorize`: the request goes on only
    /// in the browser that started it. Another browser that presents its id starts over.
    #[serde(default)]
    pub browser: String,
    /// What the user did for this request, valid only in the SSO session that did it.
    #[serde(default)]
    pub progress: Option<Progress>,
    /// The step the request waits at, and for which session.
    #[serde(default)]
    pub waiting: Option<Waiting>,
    /// Made by [`AuthRequest::restarted`]: another browser presented the original.
    #[serde(default)]
    pub restarted: bool,
    /// For `web_message`: the origin the response is posted to (the redirect URI's, and
    /// registered); `None` posts nothing.
    #[serde(default)]
    pub web_origin: Option<String>,
    /// Pushed by its client (RFC 9126): its `request_uri` was good once, so another browser that
    /// presents the request's id is refused, never started over with it.
    #[serde(default)]
    pub pushed: bool,
    /// For a device's approval (RFC 8628): the user code of the device authorization it answers.
    /// Its answer goes to that record, never to a redirect URI.
    #[serde(default)]
    pub device: Option<String>,
    /// RFC 9449 §10: the DPoP key (its thumbprint) the code is bound to; the token request must
    /// prove it.
    #[serde(default)]
    pub dpop_jkt: Option<String>,
    /// The redirect URI is one of a tenant's own domains (a client's `{tenant_domain}` template):
    /// `organization` is that tenant, and the session it starts cannot switch to another.
    #[serde(default)]
    pub tenant_pinned: bool,
    /// The stored record this request was read from, exactly: a step takes the request out only
    /// if the store still holds it ([`crate::interaction::pending::take_if_unchanged`]).
    #[serde(skip)]
    pub stored: Option<String>,
}

/// What a user has done for a pending request. It counts only in the SSO session that earned it:
/// a request resumed by anyone else (another user, another session) has none of it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The SSO session that earned it.
    pub session: String,
    /// Signed in for this request: `prompt=login`, `select_account` and `max_age` are met.
    pub login_done: bool,
    /// Consented on this request: `prompt=consent` is met.
    pub consent_done: bool,
    /// The tenant chosen at the picker (an id, slug or handle).
    pub organization: Option<String>,
}

/// A step of the sign-in interaction a request can wait at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Login,
    TenantPicker,
    SecondFactor,
    Consent,
}

/// Where a stored request waits: the step, the SSO session it waits for (none at the login step),
/// and the tenant resolved so far (for the consent page). The consent and tenant forms answer only
/// for that session ([`AuthRequest::waits_for`]); the second-factor step needs no such check: it
/// adds a factor to the caller's own session, then the request is decided again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub step: Step,
    pub session: Option<String>,
    pub tenant: Option<String>,
}

impl AuthRequest {
    pub fn scope_string(&self) -> String {
        self.scope.join(" ")
    }

    /// Whether the request waits at `step` for this SSO session: only then may that step's form
    /// (consent, the tenant picker) move it on.
    pub fn waits_for(&self, step: Step, session: &SsoSession) -> bool {
        self.waiting
            .as_ref()
            .is_some_and(|w| w.step == step && w.session.as_deref() == Some(session.id.as_str()))
    }

    /// The progress earned in this session, if any.
    pub fn progress_in(&self, session: Option<&SsoSession>) -> Option<&Progress> {
        self.progress.as_ref().filter(|g| session.is_some_and(|s| s.id == g.session))
    }

    /// Records progress earned in `session`; what another session earned is dropped.
    pub fn advance(&mut self, session: &SsoSession, change: impl FnOnce(&mut Progress)) {
        let mut progress = self.progress_in(Some(session)).cloned().unwrap_or_else(|| Progress {
            session: session.id.clone(),
            ..Progress::default()
        });
        change(&mut progress);
        self.progress = Some(progress);
    }

    /// The same request, as if just made in the browser bound by `browser`: no progress, no step.
    pub fn restarted(&self, browser: String, now: i64) -> Self {
        Self {
            id: random::token(),
            created_at: now,
            browser,
            progress: None,
            waiting: None,
            restarted: true,
            stored: None,
            ..self.clone()
        }
    }
    /// The authentication context this request asked for.
    pub fn acr_request(&self) -> portico_model::AcrRequest {
        portico_model::AcrRequest::new(self.acr_values.as_deref().unwrap_or("").split(' '), self.acr_essential)
    }

    /// What the request's `acr` preference means for `session` (`prompt=none`: the user cannot
    /// be asked to step up).
    pub fn acr_outcome(&self, session: &SsoSession) -> portico_model::AcrOutcome {
        self.acr_request().outcome(portico_model::Acr::of(&session.amr), !self.has_prompt("none"))
    }

    /// The `acr` claim of a code issued for this request in `session`: the strongest listed value
    /// the session meets, or (nothing asked, or a voluntary preference unmet) the session's own
    /// level.
    pub fn acr_claim(&self, session: &SsoSession) -> &'static str {
        let level = portico_model::Acr::of(&session.amr);
        match self.acr_request().outcome(level, false) {
            portico_model::AcrOutcome::Met(a) | portico_model::AcrOutcome::Unmet(a) => a.as_str(),
            _ => level.as_str(),
        }
    }

    fn has_prompt(&self, value: &str) -> bool {
        self.prompt.iter().any(|p| p == value)
    }
}

/// Where an authorization response goes and how. Its `Debug` names the parameters, never their
/// values (one is the authorization code).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthResponse {
    pub redirect_uri: String,
    pub mode: ResponseMode,
    pub params: Vec<(String, String)>,
    /// For `web_message`: the only origin that may receive the response, and frame the page.
    pub web_origin: Option<String>,
}

impl std::fmt::Debug for AuthResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.params.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("AuthResponse")
            .field("redirect_uri", &self.redirect_uri)
            .field("mode", &self.mode)
            .field("params", &names)
            .field("web_origin", &self.web_origin)
            .finish()
    }
}

/// Why validation stopped.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The client or redirect URI cannot be trusted: show an error page, never redirect
    /// (RFC 6749 §4.1.2.1).
    Page(&'static str),
    /// An error for the client, sent to its verified redirect URI.
    Redirect(Box<AuthResponse>, OAuthError),
}

/// What to do with a valid request.
#[derive(Debug)]
pub enum AuthorizeOutcome {
    ShowLogin(AuthRequest),
    ShowConsent(AuthRequest, String),
    /// The user holds grants in several tenants and named none.
    ShowTenantPicker(AuthRequest, Vec<Tenant>),
    /// The product requires a second factor the session has not passed: ask for it (or lead the
    /// user through setting one up), then resume.
    ShowSecondFactor(AuthRequest),
    Respond(AuthResponse),
}

fn error_response(p: &Provider, redirect_uri: &str, mode: ResponseMode, web_origin: Option<&str>, state: Option<&str>, err: &OAuthError) -> AuthResponse {
    let mut params = vec![
        ("error".to_owned(), err.code.as_str().to_owned()),
        ("error_description".to_owned(), err.description.to_owned()),
    ];
    if let Some(s) = state {
        params.push(("state".into(), s.to_owned()));
    }
    params.push(("iss".into(), p.issuer.clone()));
    AuthResponse {
        redirect_uri: redirect_uri.to_owned(),
        mode,
        params,
        web_origin: web_origin.map(str::to_owned),
    }
}

/// Where an authorization request came from: the browser's address and user agent.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: String,
}

/// An error answer for a stored request (the user cancelled consent, say).
pub fn deny(p: &Provider, req: &AuthRequest, code: ErrorCode, description: &'static str) -> AuthResponse {
    error_response(
        p,
        &req.redirect_uri,
        req.response_mode,
        req.web_origin.as_deref(),
        req.state.as_deref(),
        &OAuthError::new(code, description),
    )
}

impl From<PolicyError> for OAuthError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::InvalidTarget => oauth!(InvalidTarget, "the resource is not a product this client may ask tokens for"),
            PolicyError::NoGrant => oauth!(InvalidGrant, "the user has no active grant for this product"),
            PolicyError::UserInactive => oauth!(InvalidGrant, "the user is not active"),
        }
    }
}
