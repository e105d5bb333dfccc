//! The OAuth 2.0 and OpenID Connect endpoints, one module each (the token endpoint one per grant),
//! and the steps they share: client authentication, request parameters, errors.

pub mod authorize;
pub mod backchannel;
pub mod client_assertion;
pub mod client_auth;
pub mod cors;
pub mod device;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod handoff;
pub mod introspect;
pub mod logout;
pub mod par;
pub mod params;
pub mod revoke;
pub mod token;
pub mod userinfo;
