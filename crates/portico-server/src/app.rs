//! The router: `app()` builds it so tests can call it without a socket.

use crate::http::{account, api, cors, demo, device, enrolment, logout, mfa, oauth, openapi, ops, pages, passkey, password, second_factor, signup};
use axum::Router;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use portico_protocol::Provider;
use std::sync::Arc;

/// What every handler reads: one `Arc`, so the per-request clone axum makes of the state is one
/// reference count, not one per field (on two cores each contended count costs).
#[derive(Clone)]
pub struct AppState(Arc<AppInner>);

impl AppState {
    pub fn new(inner: AppInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppInner;
    fn deref(&self) -> &AppInner {
        &self.0
    }
}

pub struct AppInner {
    pub provider: Arc<Provider>,
    pub metrics: PrometheusHandle,
    /// `Secure` cookies with the `__Host-` prefix (the issuer is https).
    pub secure_cookies: bool,
    /// The developer demo (`portico dev`): client secrets it may use for the built-in relying party.
    pub demo: Option<Arc<demo::Demo>>,
    /// Per-client limits at the token endpoint.
    pub client_limits: Arc<crate::http::limits::ClientLimits>,
    /// Outgoing mail (`smtp_url`); without it there is no sign-up, reset or email verification.
    pub mailer: Option<Arc<crate::mail::Mailer>>,
    /// Requests that send mail, per client IP.
    pub mail_limits: Arc<crate::http::limits::AddressLimits>,
    /// Password meter readings, per client IP.
    pub strength_limits: Arc<crate::http::limits::AddressLimits>,
    /// Unauthenticated writes, per client IP: new pending authorization requests, and passkey
    /// sign-in ceremonies (each its own allowance).
    pub pending_limits: Arc<crate::http::limits::AddressLimits>,
    pub ceremony_limits: Arc<crate::http::limits::AddressLimits>,
    /// User codes typed at `/device`, per client IP (RFC 8628 §5.1).
    pub device_limits: Arc<crate::http::limits::AddressLimits>,
    /// Proxies whose forwarding headers name the client.
    pub trusted_proxies: Arc<crate::http::proxy::TrustedProxies>,
}

/// The routes, each counted in the request metrics (`crate::Served` adds what every request
/// passes through).
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(oauth::discovery).options(cors::public_preflight))
        .route("/.well-known/oauth-authorization-server", get(oauth::discovery).options(cors::public_preflight))
        .route("/oauth2/jwks", get(oauth::jwks).options(cors::public_preflight))
        .route("/oauth2/authorize", get(oauth::authorize_get).post(oauth::authorize_post))
        .route("/oauth2/authorize/resume", get(oauth::authorize_resume))
        .route("/oauth2/token", post(oauth::token).options(cors::preflight_post))
        .route("/oauth2/par", post(oauth::push_authorization_request).options(cors::preflight_post))
        .route("/oauth2/device_authorization", post(device::authorize_device).options(cors::preflight_post))
        .route("/device", get(device::device_form).post(device::device_submit))
        .route("/device/done", get(device::device_done))
        .route("/oauth2/handoff", post(oauth::handoff))
        .route("/oauth2/introspect", post(oauth::introspect))
        .route("/oauth2/revoke", post(oauth::revoke).options(cors::preflight_post))
        .route("/oauth2/logout", get(logout::logout_get).post(logout::logout_post))
        .route("/oauth2/userinfo", get(oauth::userinfo).post(oauth::userinfo).options(cors::preflight_userinfo))
        .route("/api/v1/grants", get(api::list_grants).post(api::add_grant).delete(api::revoke_grant))
        .route("/api/v1/users/{id}/disable", post(api::disable_user))
        .route("/api/v1/users/{id}/enable", post(api::enable_user))
        .route("/api/v1/users/{id}/sessions", get(api::list_sessions).delete(api::end_all_sessions))
        .route("/api/v1/users/{id}/sessions/{session}", axum::routing::delete(api::end_session))
        .route("/api/v1/openapi.json", get(openapi::openapi))
        .route("/account", get(account::page))
        .route("/account/sessions/end", post(account::end_one))
        .route("/account/sessions/end-all", post(account::end_all))
        .route("/account/totp/start", post(mfa::enrol_start))
        .route("/account/totp/confirm", post(mfa::enrol_confirm))
        .route("/account/totp/remove", post(mfa::remove))
        .route("/account/recovery/new", post(mfa::recovery_new))
        .route("/account/passkeys", post(passkey::register_finish))
        .route("/account/passkeys/options", post(passkey::register_options))
        .route("/account/passkeys/rename", post(passkey::rename))
        .route("/account/passkeys/remove", post(passkey::remove))
        .route("/login/passkey", post(passkey::login_finish))
        .route("/login/passkey/options", post(passkey::login_options))
        .route("/login/mfa/passkey/options", post(second_factor::passkey_options))
        .route("/login/second-factor/passkey/options", post(second_factor::step_up_passkey_options))
        .route("/login/mfa", get(second_factor::code_form).post(second_factor::code_submit))
        .route(
            "/login/second-factor",
            get(second_factor::second_factor_form).post(second_factor::second_factor_submit),
        )
        .route("/login", get(pages::login_form).post(pages::login_submit))
        .route("/password/forgot", get(password::forgot_form).post(password::forgot_submit))
        .route("/password/reset", get(password::reset_form).post(password::reset_submit))
        .route("/password/strength", post(password::strength))
        .route("/account/password", get(password::change_form).post(password::change_submit))
        .route("/account/verify-email", get(signup::verify_form).post(signup::verify_submit))
        .route("/account/verify-email/send", post(signup::verify_send))
        .route("/account/factor-link", get(enrolment::form).post(enrolment::open))
        .route("/account/factor-link/send", post(enrolment::send))
        .route("/signup", get(signup::signup_form).post(signup::signup_submit))
        .route("/signup/confirm", get(signup::confirm_form).post(signup::confirm_submit))
        .route("/static/password.js", get(password::script))
        .route("/dev/mail", get(demo::mail))
        .route("/consent", get(pages::consent_form).post(pages::consent_submit))
        .route("/select-tenant", get(pages::tenant_form).post(pages::tenant_submit))
        .route("/static/portico.css", get(pages::stylesheet))
        .route("/static/passkey.js", get(passkey::script))
        .route("/", get(demo::home))
        .route("/demo/login/{client}", get(demo::start))
        .route("/demo/callback/{client}", get(demo::callback))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        // Counted per route: the one layer that needs the matched route, so the one applied to
        // each route (every layer given to `Router::layer` is boxed and cloned per request: the
        // others wrap the whole router once: `crate::Served`).
        .layer(crate::http::track::TrackLayer)
        .with_state(state)
}
