//! Why a request was refused, and the answer RFC 6750 §3 prescribes: 401 with
//! `WWW-Authenticate: Bearer error="invalid_token"` for a token that does not verify (a bare
//! `Bearer` challenge when there is none, §3.1), 403 with `error="insufficient_scope"` for a valid
//! token that may not do this, 400 `invalid_request` for a malformed request. Bodies carry a fixed
//! description per reason, never anything from the token.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Why a token was not accepted. The name (`as_str`) is the `reason` label of the
/// `portico_guard_verifications_total` metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Not a compact JWS, or a header or payload that does not parse.
    Malformed,
    /// Longer than [`crate::MAX_TOKEN_BYTES`].
    Oversized,
    /// The header's `typ` is not the one expected (an ID token, a logout token…).
    Type,
    /// An algorithm outside the allow-list, or one the key does not admit.
    Algorithm,
    /// `iss` is not exactly the issuer.
    Issuer,
    /// `aud` is missing, names another product, or names more than one.
    Audience,
    /// A required claim is missing or has the wrong type.
    Claims,
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `nbf` or `iat` lies in the future (beyond the leeway).
    NotYetValid,
    /// No key with the token's `kid`.
    UnknownKey,
    /// The signature does not verify.
    Signature,
    /// The cached keys are older than the guard's stale limit and could not be refreshed.
    StaleKeys,
    /// The session ended (back-channel logout) after the token was issued.
    SessionEnded,
    /// Introspection answered `active: false`.
    Inactive,
    /// A check that needs a service (introspection, the session marks) could not be made: refused.
    Unavailable,
    /// The token is bound to a DPoP key (`cnf.jkt`, RFC 9449 §6.1) and came as a bearer token:
    /// without a proof of that key it is worth nothing (§7.1).
    DpopBound,
    /// A DPoP request whose proof is missing, malformed, for another request, key or token, too
    /// old or seen before — or whose token is not bound.
    DpopProof,
}

impl Reason {
    /// A stable name, for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Missing => "missing",
            Reason::Malformed => "malformed",
            Reason::Oversized => "oversized",
            Reason::Type => "type",
            Reason::Algorithm => "algorithm",
            Reason::Issuer => "issuer",
            Reason::Audience => "audience",
            Reason::Claims => "claims",
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::UnknownKey => "unknown_key",
            Reason::Signature => "signature",
            Reason::StaleKeys => "stale_keys",
            Reason::SessionEnded => "session_ended",
            Reason::Inactive => "inactive",
            Reason::Unavailable => "unavailable",
            Reason::DpopBound => "dpop_bound",
            Reason::DpopProof => "dpop_proof",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Reason::Missing => "an access token is required",
            Reason::Expired => "the access token has expired",
            Reason::SessionEnded | Reason::Inactive => "the access token is no longer valid",
            Reason::Audience => "the access token is not meant for this API",
            Reason::Unavailable | Reason::StaleKeys => "the access token cannot be checked right now",
            Reason::DpopBound => "the access token is DPoP-bound: present it with a DPoP proof",
            Reason::DpopProof => "the DPoP proof is invalid",
            _ => "the access token is invalid",
        }
    }
}

/// A refused request. Return it from a handler (it is a response) or let the extractor and the
/// gates return it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no token, or one that does not verify.
    Unauthorized(Reason),
    /// 403: a valid token that lacks what the route requires (`scope`, when one scope would do).
    Forbidden {
        /// What was missing, for logs (`permission write:contacts`, `tenant`).
        missing: String,
        /// The scope to name in the challenge (RFC 6750 §3: `scope="…"`), when a scope was required.
        scope: Option<String>,
    },
    /// 400: the request itself is malformed (two `Authorization` headers, a repeated parameter).
    BadRequest(&'static str),
}

impl Refusal {
    pub(crate) fn forbidden(missing: impl Into<String>) -> Self {
        Refusal::Forbidden {
            missing: missing.into(),
            scope: None,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Unauthorized(r) => write!(f, "unauthorized: {}", r.as_str()),
            Refusal::Forbidden { missing, .. } => write!(f, "forbidden: missing {missing}"),
            Refusal::BadRequest(why) => write!(f, "bad request: {why}"),
        }
    }
}

impl std::error::Error for Refusal {}

fn answer(status: StatusCode, challenge: String, error: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": error, "error_description": description });
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        headers.insert(header::WWW_AUTHENTICATE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            // §3.1: "If the request lacks any authentication information … the resource server
            // SHOULD NOT include an error code or other error information."
            Refusal::Unauthorized(Reason::Missing) => {
                let mut response = StatusCode::UNAUTHORIZED.into_response();
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            // RFC 9449 §7.1: a DPoP refusal challenges with the DPoP scheme.
            Refusal::Unauthorized(r @ (Reason::DpopBound | Reason::DpopProof)) => {
                let error = if r == Reason::DpopProof { "invalid_dpop_proof" } else { "invalid_token" };
                answer(
                    StatusCode::UNAUTHORIZED,
                    format!(
                        "DPoP error=\"{error}\", error_description=\"{}\", algs=\"{}\"",
                        r.description(),
                        portico_jose::jwks::supported_names()
                    ),
                    error,
                    r.description(),
                )
            }
            Refusal::Unauthorized(r @ (Reason::Unavailable | Reason::StaleKeys)) => {
                answer(StatusCode::SERVICE_UNAVAILABLE, "Bearer".into(), "temporarily_unavailable", r.description())
            }
            Refusal::Unauthorized(r) => answer(
                StatusCode::UNAUTHORIZED,
                format!("Bearer error=\"invalid_token\", error_description=\"{}\"", r.description()),
                "invalid_token",
                r.description(),
            ),
            Refusal::Forbidden { scope, .. } => {
                let challenge = match &scope {
                    Some(s) => format!("Bearer error=\"insufficient_scope\", scope=\"{s}\""),
                    None => "Bearer error=\"insufficient_scope\"".to_owned(),
                };
                answer(StatusCode::FORBIDDEN, challenge, "insufficient_scope", "the access token does not allow this")
            }
            Refusal::BadRequest(why) => answer(StatusCode::BAD_REQUEST, "Bearer error=\"invalid_request\"".into(), "invalid_request", why),
        }
    }
}
