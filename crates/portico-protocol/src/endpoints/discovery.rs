//! OpenID Connect Discovery 1.0 §3 and RFC 8414 §2 metadata.

use crate::authorize::SCOPES;
use serde_json::{Value, json};

pub fn metadata(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth2/authorize"),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "userinfo_endpoint": format!("{issuer}/oauth2/userinfo"),
        "jwks_uri": format!("{issuer}/oauth2/jwks"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "handoff_endpoint": format!("{issuer}/oauth2/handoff"),
        "pushed_authorization_request_endpoint": format!("{issuer}/oauth2/par"),
        "device_authorization_endpoint": format!("{issuer}/oauth2/device_authorization"),
        // RFC 9126 §5: whether every client must push; per client, its own registration says.
        "require_pushed_authorization_requests": false,
        "end_session_endpoint": format!("{issuer}/oauth2/logout"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post", "web_message"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange", "urn:ietf:params:oauth:grant-type:device_code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["EdDSA", "ES256", "RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": portico_jose::jwks::SUPPORTED_NAMES,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": portico_jose::jwks::SUPPORTED_NAMES,
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": portico_jose::jwks::SUPPORTED_NAMES,
        "code_challenge_methods_supported": ["S256"],
        "dpop_signing_alg_values_supported": portico_jose::jwks::SUPPORTED_NAMES,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "azp", "name", "email", "email_verified"],
        "claims_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
        "resource_indicators_supported": true,
        "acr_values_supported": ["urn:portico:acr:pwd", "urn:portico:acr:mfa"],
        // Back-Channel Logout 1.0 §2.1: logout tokens carry `sid` as well as `sub`.
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    })
}
