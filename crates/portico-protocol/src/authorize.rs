//! The authorization endpoint (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2, RFC 7636, RFC 8707,
//! RFC 9207): validate the request, then decide — show login, show consent, answer an error at
//! the redirect URI, or issue a code.

use crate::error::{ErrorCode, OAuthError, oauth};
use crate::gate;
use crate::provider::Provider;
use crate::random;
use crate::token::issue::AuthInfo;
use portico_model::{Grantee, PolicyError, Product, Refusal, Sid, Tenant, UserId};
use portico_store::{AuditEvent, Family, ProductSessionStart, SsoSession};
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
    pub acr_values: Option<String>,
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
            ..self.clone()
        }
    }
    fn has_prompt(&self, value: &str) -> bool {
        self.prompt.iter().any(|p| p == value)
    }
}

/// Where an authorization response goes and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthResponse {
    pub redirect_uri: String,
    pub mode: ResponseMode,
    pub params: Vec<(String, String)>,
    /// For `web_message`: the only origin that may receive the response, and frame the page.
    pub web_origin: Option<String>,
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

/// The origin (scheme, host, port) of a URL, as browsers serialize it.
fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let o = u.origin();
    o.is_tuple().then(|| o.ascii_serialization())
}

/// The longest value Portico keeps of each parameter it stores with a pending request (bytes);
/// a longer one is `invalid_request`. Nothing from outside is stored without a bound.
pub const MAX_PARAM: [(&str, usize); 14] = [
    ("client_id", 128),
    ("redirect_uri", 2048),
    ("response_type", 32),
    ("response_mode", 32),
    ("scope", 512),
    ("state", MAX_STATE),
    ("nonce", 512),
    ("code_challenge", 128),
    ("prompt", 64),
    ("max_age", 20),
    ("login_hint", 320),
    ("acr_values", 256),
    ("resource", 2048),
    ("organization", 128),
];
const MAX_STATE: usize = 1024;
/// Any other parameter (ignored, never stored), and all of them together.
pub const MAX_OTHER_PARAM: usize = 4096;
pub const MAX_PARAMS_TOTAL: usize = 16 * 1024;
pub const MAX_PARAMS: usize = 64;

/// The parameter that breaks a length limit, if any.
fn oversized(params: &[(String, String)]) -> Option<String> {
    let total: usize = params.iter().map(|(k, v)| k.len() + v.len()).sum();
    if params.len() > MAX_PARAMS || total > MAX_PARAMS_TOTAL {
        return Some("the request as a whole".into());
    }
    params
        .iter()
        .find(|(k, v)| {
            let limit = MAX_PARAM.iter().find(|(n, _)| n == k).map_or(MAX_OTHER_PARAM, |(_, l)| *l);
            k.len() > 64 || v.len() > limit
        })
        .map(|(k, _)| k.chars().take(64).collect())
}

/// Validates raw request parameters (query or form, in order, duplicates kept).
pub fn validate(p: &Provider, params: &[(String, String)], now: i64) -> Result<AuthRequest, AuthorizeError> {
    let count = |k: &str| params.iter().filter(|(n, _)| n == k).count();
    let get = |k: &str| params.iter().find(|(n, v)| n == k && !v.is_empty()).map(|(_, v)| v.clone());
    // RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once."
    if count("client_id") > 1 || count("redirect_uri") > 1 {
        return Err(AuthorizeError::Page("The request names its client or redirect URI more than once."));
    }
    // Too large to trust its redirect URI either: an error page.
    let big = oversized(params);
    if big
        .as_deref()
        .is_some_and(|k| ["client_id", "redirect_uri", "the request as a whole"].contains(&k))
    {
        return Err(AuthorizeError::Page("The request is too large."));
    }
    let config = p.config();
    let Some(entry) = get("client_id").and_then(|id| config.client(&id).cloned()) else {
        return Err(AuthorizeError::Page("The application that sent you here is not registered."));
    };
    let client = entry.client;
    let Some(redirect_uri) = get("redirect_uri") else {
        return Err(AuthorizeError::Page("The request has no redirect_uri."));
    };
    if client.registered_redirect(&redirect_uri).is_none() {
        return Err(AuthorizeError::Page("The redirect URI is not registered for this application."));
    }
    // An oversized state is not echoed back (the request is refused for it below).
    let state = get("state").filter(|v| v.len() <= MAX_STATE);
    let mode = match get("response_mode").as_deref() {
        None | Some("query") => ResponseMode::Query,
        Some("fragment") => ResponseMode::Fragment,
        Some("form_post") => ResponseMode::FormPost,
        Some("web_message") => ResponseMode::WebMessage,
        Some(_) => {
            let e = oauth!(InvalidRequest, "unsupported response_mode");
            return Err(AuthorizeError::Redirect(
                Box::new(error_response(p, &redirect_uri, ResponseMode::Query, None, state.as_deref(), &e)),
                e,
            ));
        }
    };
    // A web message goes to the redirect URI's origin, and only when the client registered it;
    // otherwise nobody gets one (and no code is made for nobody).
    let web_origin = match mode {
        ResponseMode::WebMessage => Some(
            origin_of(&redirect_uri)
                .filter(|o| client.web_origins.iter().any(|w| w == o))
                .ok_or(AuthorizeError::Page("This application's origin is not registered for web messages."))?,
        ),
        _ => None,
    };
    let fail = |e: OAuthError| AuthorizeError::Redirect(Box::new(error_response(p, &redirect_uri, mode, web_origin.as_deref(), state.as_deref(), &e)), e);

    if let Some(k) = big {
        return Err(fail(oauth!(InvalidRequest, "a parameter is longer than Portico accepts").detail(k)));
    }
    if let Some((dup, _)) = params.iter().find(|(k, _)| count(k) > 1 && k != "resource") {
        return Err(fail(oauth!(InvalidRequest, "a parameter is repeated").detail(dup.clone())));
    }
    match get("response_type").as_deref() {
        None => return Err(fail(oauth!(InvalidRequest, "response_type is required"))),
        Some("code") => {}
        Some(_) => return Err(fail(oauth!(UnsupportedResponseType, "only response_type=code is supported"))),
    }
    if get("request").is_some() {
        return Err(fail(oauth!(RequestNotSupported, "request objects are not supported")));
    }
    if get("request_uri").is_some() {
        return Err(fail(oauth!(RequestUriNotSupported, "request_uri is not supported")));
    }
    if !client.allows(portico_model::GrantType::AuthorizationCode) {
        return Err(fail(oauth!(UnauthorizedClient, "this client may not use the authorization code grant")));
    }
    let scope: Vec<String> = get("scope")
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if scope.iter().any(|s| !SCOPES.contains(&s.as_str())) {
        return Err(fail(oauth!(InvalidScope, "unknown scope")));
    }
    // RFC 7636 §4.3 and RFC 9700 §2.1.1: S256 only; required for public clients.
    let code_challenge = get("code_challenge");
    match (get("code_challenge_method").as_deref(), &code_challenge) {
        (Some("S256"), Some(_)) => {}
        (None, Some(_)) => return Err(fail(oauth!(InvalidRequest, "code_challenge_method must be S256"))),
        (Some(_), Some(_)) => return Err(fail(oauth!(InvalidRequest, "only the S256 code_challenge_method is supported"))),
        (Some(_), None) => return Err(fail(oauth!(InvalidRequest, "code_challenge_method without code_challenge"))),
        (None, None) if client.is_public() => return Err(fail(oauth!(InvalidRequest, "PKCE (code_challenge with S256) is required for public clients"))),
        (None, None) => {}
    }
    if let Some(c) = &code_challenge {
        // RFC 7636 §4.2: BASE64URL(SHA256(verifier)) is 43 characters.
        if c.len() != 43 || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(fail(oauth!(InvalidRequest, "code_challenge is not an S256 challenge")));
        }
    }
    let prompt: Vec<String> = get("prompt")
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if prompt.iter().any(|v| !["none", "login", "consent", "select_account"].contains(&v.as_str())) {
        return Err(fail(oauth!(InvalidRequest, "unsupported prompt value")));
    }
    // OIDC Core §3.1.2.1: "If this parameter contains none with any other value, an error is returned."
    if prompt.len() > 1 && prompt.iter().any(|v| v == "none") {
        return Err(fail(oauth!(InvalidRequest, "prompt=none cannot be combined with other values")));
    }
    let max_age = match get("max_age") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|m| *m >= 0)
                .ok_or_else(|| fail(oauth!(InvalidRequest, "max_age must be a non-negative integer")))?,
        ),
    };
    // RFC 8707: one product per token, so at most one resource.
    let resources: Vec<&String> = params.iter().filter(|(k, v)| k == "resource" && !v.is_empty()).map(|(_, v)| v).collect();
    if resources.len() > 1 {
        return Err(fail(oauth!(InvalidTarget, "a token is for exactly one resource")));
    }
    let product = config
        .resolve_audience(&client, resources.first().map(|s| s.as_str()))
        .map_err(|_| fail(oauth!(InvalidTarget, "the resource is not a product this client may ask tokens for")))?;
    Ok(AuthRequest {
        id: random::token(),
        client_id: client.id.as_str().to_owned(),
        redirect_uri,
        response_mode: mode,
        state,
        nonce: get("nonce"),
        scope,
        code_challenge,
        prompt,
        max_age,
        login_hint: get("login_hint"),
        acr_values: get("acr_values"),
        audience: product.audience.as_str().to_owned(),
        organization: get("organization"),
        created_at: now,
        browser: String::new(),
        progress: None,
        waiting: None,
        restarted: false,
        web_origin,
    })
}

/// Where an authorization request came from: the browser's address and user agent.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: String,
}

/// Decides a validated request for the browser's SSO session (if any): the request-level rules
/// (`prompt`, `max_age`, the tenant to enter), then the policy gate every minting path shares
/// ([`crate::gate`]), then a code.
pub async fn decide(p: &Provider, req: AuthRequest, session: Option<&SsoSession>, from: &Origin, now: i64) -> Result<AuthorizeOutcome, OAuthError> {
    let ip = from.ip.clone();
    let fail = |e: OAuthError| {
        Ok(AuthorizeOutcome::Respond(error_response(
            p,
            &req.redirect_uri,
            req.response_mode,
            req.web_origin.as_deref(),
            req.state.as_deref(),
            &e,
        )))
    };
    // Progress counts only in the session that earned it.
    let progress = req.progress_in(session).cloned().unwrap_or_default();
    let prompt_none = req.has_prompt("none");
    let wants_login = (req.has_prompt("login") || req.has_prompt("select_account")) && !progress.login_done;
    // `max_age`, and a product's own session lifetime, which acts as one it always sends.
    let config = p.config();
    let product = config.product_by_audience(&req.audience).cloned();
    let too_old = |s: &SsoSession| {
        (req.max_age.is_some_and(|m| now - s.auth_time > m) || product.as_ref().is_some_and(|x| x.needs_fresh_login(s.auth_time, now))) && !progress.login_done
    };
    let session = match session {
        Some(s) if !wants_login && !too_old(s) => s,
        _ if prompt_none => return fail(oauth!(LoginRequired, "the user is not signed in")),
        _ => return Ok(AuthorizeOutcome::ShowLogin(waiting(req, Step::Login, None, None))),
    };
    let Some(client) = config.client(&req.client_id).map(|e| e.client.clone()) else {
        return fail(oauth!(AccessDenied, "the client is no longer registered"));
    };
    let Some(product) = product else {
        return fail(oauth!(InvalidTarget, "the product is no longer registered"));
    };
    let user = p.store.user_by_id(&session.user_id).await?;
    let grants = p.store.grants_for(&Grantee::User(session.user_id.clone()), &product.slug).await?;
    let denied = || oauth!(AccessDenied, "the user has no access to this product or organization");
    let tenant: Option<Tenant> = if product.tenant_aware {
        let enterable: Vec<Tenant> = portico_model::enterable_tenants(&grants, &product, &config.tenants, now)
            .into_iter()
            .cloned()
            .collect();
        match req.organization.as_ref().or(progress.organization.as_ref()) {
            // An unknown tenant and one the user may not enter get the same answer.
            // The tenant's id, slug or a live handle; an expired handle names nothing.
            Some(reference) => match crate::tenants::find(p, &config, reference, now).filter(|t| enterable.iter().any(|e| e.id == t.id)) {
                Some(t) => Some(t.clone()),
                None => return refuse(p, &req, session, &product, fail(denied()), "no_grant", now, ip).await,
            },
            None if enterable.len() == 1 => enterable.into_iter().next(),
            None if enterable.is_empty() => return refuse(p, &req, session, &product, fail(denied()), "no_grant", now, ip).await,
            None if prompt_none => return fail(oauth!(InteractionRequired, "the user must choose an organization")),
            None => {
                return Ok(AuthorizeOutcome::ShowTenantPicker(
                    waiting(req, Step::TenantPicker, Some(session), None),
                    enterable,
                ));
            }
        }
    } else {
        None
    };
    let tenant_id = tenant.as_ref().map(|t| t.id.as_str().to_owned());
    // A second factor: the product may always want one; this request may ask for the MFA level
    // (`acr_values`, OIDC Core §3.1.2.1), so a product can demand it for a sensitive action.
    let acr_mfa_requested = req
        .acr_values
        .as_deref()
        .is_some_and(|v| v.split(' ').any(|a| a == portico_model::Acr::Mfa.as_str()));
    let auth = AuthInfo {
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        acr: session.acr.clone(),
    };
    let scope = req.scope_string();
    let mint = gate::Mint {
        user: &session.user_id,
        product: &product,
        tenant: tenant.as_ref().map(|t| &t.id),
        client: Some(&client),
        // `session` is the browser's live SSO session: the caller looked it up by its cookie.
        session_live: true,
        auth: &auth,
        acr_mfa_requested,
        scope: &scope,
    };
    let refusal = gate::admit_with(p, &mint, user, &grants, now).await?.err();
    // `prompt=consent`: ask again even when a consent on record covers the scope.
    let reconsent = !client.first_party && req.has_prompt("consent") && !progress.consent_done;
    match refusal {
        None if reconsent => {}
        None => {
            return issue_code(p, &req, session, &product, tenant.as_ref(), from, now)
                .await
                .map(AuthorizeOutcome::Respond);
        }
        Some(Refusal::FreshSignInRequired) if prompt_none => return fail(oauth!(LoginRequired, "the product requires a fresh sign-in")),
        Some(Refusal::FreshSignInRequired) => return Ok(AuthorizeOutcome::ShowLogin(waiting(req, Step::Login, None, None))),
        Some(Refusal::SecondFactorRequired) if prompt_none => return fail(oauth!(InteractionRequired, "this product requires a second factor")),
        Some(Refusal::SecondFactorRequired) => {
            return Ok(AuthorizeOutcome::ShowSecondFactor(waiting(req, Step::SecondFactor, Some(session), tenant_id)));
        }
        Some(Refusal::ConsentRequired) => {}
        Some(r) => return refuse(p, &req, session, &product, fail(denied()), r.as_str(), now, ip).await,
    }
    if prompt_none {
        return fail(oauth!(ConsentRequired, "the user has not consented to this client for this product"));
    }
    let name = product.name.clone();
    Ok(AuthorizeOutcome::ShowConsent(waiting(req, Step::Consent, Some(session), tenant_id), name))
}

/// The request, marked as waiting at `step` for `session`.
fn waiting(mut req: AuthRequest, step: Step, session: Option<&SsoSession>, tenant: Option<String>) -> AuthRequest {
    req.waiting = Some(Waiting {
        step,
        session: session.map(|s| s.id.clone()),
        tenant,
    });
    req
}

async fn refuse(
    p: &Provider,
    req: &AuthRequest,
    session: &SsoSession,
    product: &Product,
    outcome: Result<AuthorizeOutcome, OAuthError>,
    reason: &str,
    now: i64,
    ip: Option<String>,
) -> Result<AuthorizeOutcome, OAuthError> {
    p.writer.record(
        AuditEvent::new(now, "authorize.refused", session.user_id.as_str())
            .product(product.slug.as_str())
            .ip(ip)
            .data(serde_json::json!({"client_id": req.client_id, "reason": reason})),
    );
    outcome
}

/// What an authorization code stands for, stored under the code's hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CodeData {
    pub client_id: String,
    pub redirect_uri: String,
    pub user_id: UserId,
    pub audience: String,
    pub tenant: Option<String>,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub sid: Sid,
}

async fn issue_code(
    p: &Provider,
    req: &AuthRequest,
    session: &SsoSession,
    product: &Product,
    tenant: Option<&Tenant>,
    from: &Origin,
    now: i64,
) -> Result<AuthResponse, OAuthError> {
    let config = p.config();
    let notify = |c: &str| config.notifies_logout(c);
    let start = ProductSessionStart {
        sso_id: &session.id,
        client_id: &req.client_id,
        product: product.slug.as_str(),
        new_sid: &Sid::new(random::id("sid_")),
        ip: from.ip.as_deref().unwrap_or(""),
        user_agent: &from.user_agent,
        single: product.single_session,
        now,
    };
    let sid = p.store.product_session(&start, &notify).await?;
    if product.single_session {
        p.logout_due.notify_one();
    }
    let code = random::token();
    let data = CodeData {
        client_id: req.client_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        user_id: session.user_id.clone(),
        audience: product.audience.as_str().to_owned(),
        tenant: tenant.map(|t| t.id.as_str().to_owned()),
        scope: req.scope_string(),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        acr: session.acr.clone(),
        sid: sid.clone(),
    };
    let family = Family {
        id: random::id("fam_"),
        subject: session.user_id.as_str().to_owned(),
        client_id: req.client_id.clone(),
        product: product.slug.as_str().to_owned(),
        tenant: tenant.map(|t| t.id.as_str().to_owned()).unwrap_or_default(),
        sid: Some(sid.as_str().to_owned()),
        created_at: now,
        revoked_at: None,
    };
    p.store
        .issue_code(
            &random::hash(&code),
            &family,
            &serde_json::to_string(&data).expect("serializes"),
            now + p.settings.code_ttl,
        )
        .await?;
    p.writer.record(
        AuditEvent::new(now, "authorize.code_issued", session.user_id.as_str())
            .product(product.slug.as_str())
            .tenant(tenant.map(|t| t.id.as_str()))
            .ip(from.ip.clone())
            .data(serde_json::json!({"client_id": req.client_id, "sid": sid.as_str()})),
    );
    let mut params = vec![("code".to_owned(), code)];
    if let Some(s) = &req.state {
        params.push(("state".into(), s.clone()));
    }
    params.push(("iss".into(), p.issuer.clone()));
    Ok(AuthResponse {
        redirect_uri: req.redirect_uri.clone(),
        mode: req.response_mode,
        params,
        web_origin: req.web_origin.clone(),
    })
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
