//! OAuth 2.0 and OpenID Connect for Portico. Functions take typed requests, the [`Provider`] and
//! `now`, and return typed outcomes; nothing here knows HTTP. The folders are the architecture:
//!
//! - [`endpoints`]: the OAuth and OIDC endpoints (authorization, token and its grants,
//!   introspection, revocation, userinfo, logout and its back channel, discovery, hand-off) and the
//!   steps they share (client authentication, request parameters, errors);
//! - [`interaction`]: the browser sign-in as a state machine over typed pending states;
//! - [`account`]: what a user does with their account (password, second factors, passkeys,
//!   sign-up, reset, mail) and its rules (password policy, throttle, who may change factors);
//! - [`jose`]: signing keys, the key-encryption key, and verifying Portico's own tokens;
//! - [`runtime`]: the provider, its configuration snapshot, the group-commit writer, randomness;
//! - and at the top the policy gate every minting path passes ([`gate`]), tenants, and the
//!   operations of the admin API and command line ([`admin`]).
//!
//! Each module is also reachable at the crate's root (`portico_protocol::totp`, …).

pub mod account;
pub mod admin;
pub mod endpoints;
pub mod gate;
pub mod interaction;
pub mod jose;
pub mod runtime;
pub mod tenants;

pub use account::{enrolment, login, mail, passkey, password, password_policy, reset, signup, throttle, totp};
pub use endpoints::{
    authorize, backchannel, client_assertion, client_auth, cors, device, discovery, dpop, error, handoff, introspect, logout, par, params, revoke, token,
    userinfo,
};
pub use jose::{kek, keys, verify};
pub use runtime::{client_keys, clock, provider, random, snapshot, writer};

pub use error::{ErrorCode, OAuthError};
pub use provider::{Provider, Settings};
