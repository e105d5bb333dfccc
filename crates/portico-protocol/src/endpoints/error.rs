//! `OAuthError`: an RFC error code, a fixed description that is safe to show, and an internal
//! detail for logs only.

use std::fmt;

/// Error codes of RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 8707 §2, RFC 7009 §2.2.1,
/// RFC 8628 §3.5, RFC 9449 §5 and §8, and OpenID Connect Core §3.1.2.6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidScope,
    InvalidTarget,
    AccessDenied,
    ServerError,
    LoginRequired,
    ConsentRequired,
    InteractionRequired,
    RequestNotSupported,
    RequestUriNotSupported,
    InvalidToken,
    UnsupportedTokenType,
    /// RFC 6749 §4.1.2.1: the server cannot handle the request now (a rate limit).
    TemporarilyUnavailable,
    /// RFC 8628 §3.5: the user has not yet approved the device.
    AuthorizationPending,
    /// RFC 8628 §3.5: polling too fast; the interval grows by 5 seconds.
    SlowDown,
    /// RFC 8628 §3.5: the device code has expired.
    ExpiredToken,
    /// RFC 9449 §5: the DPoP proof is missing where required, or invalid.
    InvalidDpopProof,
    /// RFC 9449 §8: the proof must carry the nonce the answer's `DPoP-Nonce` gives.
    UseDpopNonce,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            InvalidRequest => "invalid_request",
            InvalidClient => "invalid_client",
            InvalidGrant => "invalid_grant",
            UnauthorizedClient => "unauthorized_client",
            UnsupportedGrantType => "unsupported_grant_type",
            UnsupportedResponseType => "unsupported_response_type",
            InvalidScope => "invalid_scope",
            InvalidTarget => "invalid_target",
            AccessDenied => "access_denied",
            ServerError => "server_error",
            LoginRequired => "login_required",
            ConsentRequired => "consent_required",
            InteractionRequired => "interaction_required",
            RequestNotSupported => "request_not_supported",
            RequestUriNotSupported => "request_uri_not_supported",
            InvalidToken => "invalid_token",
            UnsupportedTokenType => "unsupported_token_type",
            TemporarilyUnavailable => "temporarily_unavailable",
            AuthorizationPending => "authorization_pending",
            SlowDown => "slow_down",
            ExpiredToken => "expired_token",
            InvalidDpopProof => "invalid_dpop_proof",
            UseDpopNonce => "use_dpop_nonce",
        }
    }

    /// The HTTP status at the token, introspection and revocation endpoints (RFC 6749 §5.2).
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::ServerError => 500,
            _ => 400,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    /// Shown to the caller: fixed text, never a secret or internal detail.
    pub description: &'static str,
    /// For logs only.
    pub detail: String,
    /// The client tried HTTP Basic: a 401 must carry `WWW-Authenticate: Basic`.
    pub basic_challenge: bool,
    /// A protected resource asked without any access token: RFC 6750 §3.1, the challenge carries
    /// no error code or other error information.
    pub no_credentials: bool,
    /// RFC 9449 §8: a nonce the client must put in its next proof (`DPoP-Nonce`).
    pub dpop_nonce: Option<String>,
    /// The protected resource's challenge is `DPoP` (RFC 9449 §7.1), not `Bearer`.
    pub dpop_challenge: bool,
    /// A cross-origin request from an origin its client did not register ([`crate::cors`]): the
    /// answer carries no CORS header, so the page that sent it cannot read it.
    pub origin_refused: bool,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: &'static str) -> Self {
        Self {
            code,
            description,
            detail: String::new(),
            basic_challenge: false,
            no_credentials: false,
            dpop_nonce: None,
            dpop_challenge: false,
            origin_refused: false,
        }
    }
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
    pub fn server(detail: impl fmt::Display) -> Self {
        Self::new(ErrorCode::ServerError, "the server could not complete the request").detail(detail.to_string())
    }
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": self.code.as_str(), "error_description": self.description})
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for OAuthError {}

impl From<portico_store::StoreError> for OAuthError {
    fn from(e: portico_store::StoreError) -> Self {
        OAuthError::server(e)
    }
}

impl From<crate::keys::KeyError> for OAuthError {
    fn from(e: crate::keys::KeyError) -> Self {
        OAuthError::server(e)
    }
}

macro_rules! oauth {
    ($code:ident, $desc:expr) => {
        $crate::error::OAuthError::new($crate::error::ErrorCode::$code, $desc)
    };
}
pub(crate) use oauth;
