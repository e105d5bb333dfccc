//! OpenID Connect Back-Channel Logout 1.0, the product's side: an axum handler for the
//! `backchannel_logout_uri` that validates the logout token as §2.6 requires and records the
//! session as ended, so the guard refuses that session's access tokens from then on.
//!
//! ```no_run
//! # async fn run(guard: portico_guard::Guard) {
//! let app: axum::Router = axum::Router::new().route("/backchannel-logout", guard.logout_route());
//! # }
//! ```
//!
//! Validation (§2.6): a compact JWS with `typ: logout+jwt`, signed by the issuer's key with an
//! allowed algorithm; `iss` exactly the issuer; `aud` one of the clients configured with
//! [`crate::GuardBuilder::logout_client`]; `iat` no older than [`MAX_AGE`] and not in the future,
//! `exp` not past; `events` holding the back-channel-logout member as a JSON object; `sid` or
//! `sub`; no `nonce`; a `jti` not seen before (a replay cache kept until the token's `exp`).
//! §2.8: success answers 200, failure 400 with `invalid_request`; both `Cache-Control: no-store`.

use crate::Guard;
use crate::refusal::Reason;
use crate::verify;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portico_claims::{BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_TYP, LogoutClaims};
use std::collections::HashMap;
use std::sync::Mutex;

/// The oldest logout token accepted, by its `iat` (seconds), beyond the leeway.
pub const MAX_AGE: i64 = 300;
/// The most `jti`s remembered at once; beyond that (after dropping expired ones) tokens are
/// refused with 503, and the issuer retries.
pub const REPLAY_CAPACITY: usize = 100_000;
/// The largest request body the receiver reads.
pub const MAX_BODY: usize = 16 * 1024;

/// What went wrong with a logout request (for logs; the answer is always `invalid_request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogoutRefusal {
    /// The body was not one `logout_token` form parameter.
    Request,
    /// The token failed a check.
    Token(Reason),
    /// `events` lacks the back-channel-logout event.
    Event,
    /// Neither `sid` nor `sub`.
    NoSubject,
    /// A `nonce` was present.
    Nonce,
    /// The `jti` was seen before.
    Replayed,
    /// The guard could not record the mark (the store failed or is full).
    Unavailable,
}

/// The replay cache and the accepted audiences.
pub(crate) struct Receiver {
    audiences: Vec<String>,
    seen: Mutex<HashMap<String, i64>>,
}

impl Receiver {
    pub fn new(audiences: Vec<String>) -> Self {
        Self {
            audiences,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers `jti` until `until`; false when it was already there.
    fn first_use(&self, jti: &str, until: i64, now: i64) -> Result<bool, LogoutRefusal> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.get(jti).is_some_and(|u| *u > now) {
            return Ok(false);
        }
        if seen.len() >= REPLAY_CAPACITY {
            seen.retain(|_, u| *u > now);
            if seen.len() >= REPLAY_CAPACITY {
                return Err(LogoutRefusal::Unavailable);
            }
        }
        seen.insert(jti.to_owned(), until);
        Ok(true)
    }

    fn forget(&self, jti: &str) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).remove(jti);
    }
}

impl Guard {
    /// Validates a logout token (§2.6) and records its session (or, without `sid`, every session
    /// of its `sub`) as ended. Returns the claims.
    pub async fn accept_logout_token(&self, token: &str) -> Result<LogoutClaims, LogoutRefusal> {
        let i = &self.inner;
        let parts = verify::parse::<LogoutClaims>(token, LOGOUT_TOKEN_TYP, &i.algorithms).map_err(LogoutRefusal::Token)?;
        let c = &parts.claims;
        let now = i.clock.now();
        if c.iss != i.issuer {
            return Err(LogoutRefusal::Token(Reason::Issuer));
        }
        if !i.logout.audiences.contains(&c.aud) {
            return Err(LogoutRefusal::Token(Reason::Audience));
        }
        verify::times(now, i.leeway, c.iat, None, c.exp).map_err(LogoutRefusal::Token)?;
        if c.iat < now - MAX_AGE - i.leeway {
            return Err(LogoutRefusal::Token(Reason::Expired));
        }
        if !c.events.get(BACKCHANNEL_LOGOUT_EVENT).is_some_and(serde_json::Value::is_object) {
            return Err(LogoutRefusal::Event);
        }
        let (sid, sub) = (c.sid.as_deref().filter(|s| !s.is_empty()), c.sub.as_deref().filter(|s| !s.is_empty()));
        if c.nonce.is_some() {
            return Err(LogoutRefusal::Nonce);
        }
        if c.jti.is_empty() || (sid.is_none() && sub.is_none()) {
            return Err(if c.jti.is_empty() {
                LogoutRefusal::Token(Reason::Claims)
            } else {
                LogoutRefusal::NoSubject
            });
        }
        self.signature(&parts).await.map_err(LogoutRefusal::Token)?;
        // Remembered while the token could still be accepted: until its `exp`, and never past the
        // oldest `iat` accepted (whoever signed it chose `exp`).
        let accepted_until = c.exp.min(c.iat.saturating_add(MAX_AGE)).saturating_add(i.leeway);
        if !i.logout.first_use(&c.jti, accepted_until, now)? {
            return Err(LogoutRefusal::Replayed);
        }
        let until = now.saturating_add(i.mark_lifetime);
        // Tokens carry the issuer's `iat`; the mark covers up to the later of the issuer's and
        // this clock, so a product clock behind Portico's lets no earlier token through.
        let now = now.max(c.iat);
        let marked = match (sid, sub) {
            (Some(sid), _) => i.marks.end_session(sid, now, until).await,
            (None, Some(sub)) => i.marks.end_subject(sub, now, until).await,
            (None, None) => return Err(LogoutRefusal::NoSubject),
        };
        if let Err(e) = marked {
            // Not recorded, so not used: the issuer's retry of this very token must succeed.
            i.logout.forget(&c.jti);
            tracing::error!(error = %e, "portico-guard: recording a back-channel logout failed");
            return Err(LogoutRefusal::Unavailable);
        }
        Ok(parts.claims)
    }

    /// The receiver as an axum route: `POST` with a form body holding one `logout_token`.
    pub fn logout_route<S: Clone + Send + Sync + 'static>(&self) -> axum::routing::MethodRouter<S> {
        axum::routing::post(receive)
            .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
            .with_state(self.clone())
    }
}

/// The one `logout_token` of a form body; a repeated or missing one is refused.
fn logout_token(headers: &HeaderMap, body: &[u8]) -> Result<String, LogoutRefusal> {
    let form = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';')
            .next()
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    });
    if !form {
        return Err(LogoutRefusal::Request);
    }
    let mut tokens = url::form_urlencoded::parse(body)
        .filter(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned());
    match (tokens.next(), tokens.next()) {
        (Some(t), None) => Ok(t),
        _ => Err(LogoutRefusal::Request),
    }
}

async fn receive(State(guard): State<Guard>, headers: HeaderMap, body: Bytes) -> Response {
    let outcome = match logout_token(&headers, &body) {
        Ok(token) => guard.accept_logout_token(&token).await.map(|_| ()),
        Err(e) => Err(e),
    };
    let label = match outcome {
        Ok(()) => "ok",
        Err(LogoutRefusal::Unavailable) => "unavailable",
        Err(_) => "refused",
    };
    metrics::counter!("portico_guard_logout_tokens_total", "outcome" => label).increment(1);
    let mut response = match outcome {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::info!(refusal = ?e, "portico-guard: refused a back-channel logout token");
            let status = if e == LogoutRefusal::Unavailable {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::BAD_REQUEST
            };
            (status, axum::Json(serde_json::json!({ "error": "invalid_request" }))).into_response()
        }
    };
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
