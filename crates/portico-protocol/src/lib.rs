//! OAuth 2.0 and OpenID Connect for Portico: one module per endpoint and per grant, the shared
//! steps they call, keys and JOSE. Functions take typed requests, the [`Provider`] and `now`, and
//! return typed outcomes; nothing here knows HTTP.

pub mod account;
pub mod admin;
pub mod authorize;
pub mod backchannel;
pub mod client_auth;
pub mod discovery;
pub mod enrolment;
pub mod error;
pub mod gate;
pub mod handoff;
pub mod interaction;
pub mod introspect;
pub mod kek;
pub mod keys;
pub mod login;
pub mod logout;
pub mod mail;
pub mod params;
pub mod passkey;
pub mod password;
pub mod password_policy;
pub mod provider;
pub mod random;
pub mod reset;
pub mod revoke;
pub mod signup;
pub mod snapshot;
pub mod tenants;
pub mod throttle;
pub mod token;
pub mod totp;
pub mod userinfo;
pub mod verify;
pub mod writer;

pub use error::{ErrorCode, OAuthError};
pub use provider::{Provider, Settings};
