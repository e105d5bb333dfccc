//! The typed pending-state store: every short-lived state of a browser flow in one table, named by
//! its [`Kind`] and the hash of a random handle (the key is never the handle itself), with a
//! lifetime per kind. A handle lives with its holder (a cookie, a form field, a mailed link's
//! query): only who holds it can name the state. An authorization request's handle is its id,
//! which the request's own data also carries (pages and forms name it in `?req=`); what binds it
//! to one browser is the binding hash it holds, checked by [`super::load`].

use crate::mail::LinkKind;
use crate::provider::Settings;
use crate::random;
use portico_store::{Store, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a pending state is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A validated authorization request waiting for login, consent or the tenant picker.
    Authorize,
    /// A sign-in past its password, waiting for its second factor.
    SecondFactor,
    /// A WebAuthn ceremony between its options and the authenticator's answer.
    Ceremony,
    /// A mailed single-use link.
    Link(LinkKind),
    /// An opened enrolment link: the session may set up its first factor.
    FactorPermit,
    /// A pushed authorization request (RFC 9126), waiting for its `request_uri`.
    Pushed,
    /// A client assertion's `jti`, seen (RFC 7523 §3): kept until the assertion expires.
    AssertionJti,
    /// A device authorization (RFC 8628), under its user code: what the device asked for, and
    /// whether its user approved.
    DeviceGrant,
    /// A device code, naming the user code of its authorization.
    DeviceCode,
    /// A DPoP proof's `jti`, seen (RFC 9449 §11.1), under its key's thumbprint.
    DpopJti,
}

/// How long the second factor may take after the password.
pub const SECOND_FACTOR_TTL: i64 = 300;
/// How long a passkey ceremony may take.
pub const CEREMONY_TTL: i64 = 300;
/// How long an enrolment link works, and the permit it gives once opened.
pub const ENROLMENT_LINK_TTL: i64 = 30 * 60;
pub const FACTOR_PERMIT_TTL: i64 = 15 * 60;
/// How long a pushed authorization request waits to be used (RFC 9126 §2.2: "a short lifetime",
/// its example 60 seconds): the client sends the browser on at once.
pub const PUSHED_REQUEST_TTL: i64 = 60;

impl Kind {
    /// The name it is stored under.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Authorize => "authorize",
            Kind::SecondFactor => "second_factor",
            Kind::Ceremony => "ceremony",
            Kind::Link(LinkKind::Reset) => "link_reset",
            Kind::Link(LinkKind::Signup) => "link_signup",
            Kind::Link(LinkKind::Verify) => "link_verify",
            Kind::Link(LinkKind::Enrolment) => "link_enrolment",
            Kind::FactorPermit => "factor_permit",
            Kind::Pushed => "pushed_authorization",
            Kind::AssertionJti => "assertion_jti",
            Kind::DeviceGrant => "device_grant",
            Kind::DeviceCode => "device_code",
            Kind::DpopJti => "dpop_jti",
        }
    }

    /// Seconds a state of this kind lives.
    pub fn ttl(self, s: &Settings) -> i64 {
        match self {
            Kind::Authorize => s.auth_request_ttl,
            Kind::SecondFactor => SECOND_FACTOR_TTL,
            Kind::Ceremony => CEREMONY_TTL,
            Kind::Link(LinkKind::Reset) => s.reset_link_ttl,
            Kind::Link(LinkKind::Signup | LinkKind::Verify) => s.verify_link_ttl,
            Kind::Link(LinkKind::Enrolment) => ENROLMENT_LINK_TTL,
            Kind::FactorPermit => FACTOR_PERMIT_TTL,
            Kind::Pushed => PUSHED_REQUEST_TTL,
            // Each is kept until its own assertion can no longer be accepted ([`put_once`]): its
            // `exp` is at most this far away, and it is accepted until `exp` + leeway.
            Kind::AssertionJti => crate::client_assertion::MAX_LIFETIME + 2 * crate::client_assertion::LEEWAY,
            // Kept a while past the code's own expiry, so a late poll learns `expired_token`.
            Kind::DeviceGrant | Kind::DeviceCode => crate::device::DEVICE_TTL + crate::device::EXPIRED_KEPT,
            // A proof is accepted from `iat` - skew to `iat` + max age: its jti is kept until then.
            Kind::DpopJti => portico_jose::dpop::MAX_AGE + 2 * portico_jose::dpop::SKEW,
        }
    }
}

fn key(handle: &str) -> String {
    random::hash(handle)
}

/// Stores `value` under `handle` until its kind's lifetime after `since`.
pub async fn put<T: Serialize>(store: &Store, settings: &Settings, kind: Kind, handle: &str, value: &T, since: i64) -> Result<(), StoreError> {
    let data = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("{}: {e}", kind.name())))?;
    store.put_pending(kind.name(), &key(handle), &data, since + kind.ttl(settings)).await
}

/// Stores `value` under `handle` until `expires_at` unless a live state is there already: `true`
/// the first time. Of two concurrent callers, one gets `true` (a replay cache). `expires_at` is
/// bounded by the kind's lifetime.
pub async fn put_once<T: Serialize>(
    store: &Store,
    kind: Kind,
    handle: &str,
    value: &T,
    expires_at: i64,
    now: i64,
    settings: &Settings,
) -> Result<bool, StoreError> {
    let data = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("{}: {e}", kind.name())))?;
    store
        .put_pending_once(kind.name(), &key(handle), &data, expires_at.min(now + kind.ttl(settings)), now)
        .await
}

/// The live state under `handle`, left in place; `None` when there is none (or it does not read
/// as this kind's).
pub async fn get<T: DeserializeOwned>(store: &Store, kind: Kind, handle: &str, now: i64) -> Result<Option<T>, StoreError> {
    let data = store.pending(kind.name(), &key(handle), now).await?;
    Ok(data.and_then(|d| serde_json::from_str(&d).ok()))
}

/// Takes the live state under `handle` out, once: of two concurrent takers only one gets it.
pub async fn take<T: DeserializeOwned>(store: &Store, kind: Kind, handle: &str, now: i64) -> Result<Option<T>, StoreError> {
    let data = store.take_pending(kind.name(), &key(handle), now).await?;
    Ok(data.and_then(|d| serde_json::from_str(&d).ok()))
}

/// The live state under `handle` and the record it was read from, exactly (for
/// [`take_if_unchanged`]).
pub async fn get_with_record<T: DeserializeOwned>(store: &Store, kind: Kind, handle: &str, now: i64) -> Result<Option<(T, String)>, StoreError> {
    let data = store.pending(kind.name(), &key(handle), now).await?;
    Ok(data.and_then(|d| serde_json::from_str(&d).ok().map(|v| (v, d))))
}

/// Takes the state under `handle` out only if the store still holds `record`, the exact record
/// it was read from: of two steps that read the same state and decided on it, only one takes
/// it, and none takes a state another step has moved on since.
pub async fn take_if_unchanged(store: &Store, kind: Kind, handle: &str, record: &str, now: i64) -> Result<bool, StoreError> {
    store.take_pending_if(kind.name(), &key(handle), record, now).await
}

/// Replaces the state under `handle` with `value` only if the store still holds `record`, the
/// exact record it was read from.
pub async fn replace_if_unchanged<T: Serialize>(store: &Store, kind: Kind, handle: &str, record: &str, value: &T, now: i64) -> Result<bool, StoreError> {
    let data = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("{}: {e}", kind.name())))?;
    store.replace_pending_if(kind.name(), &key(handle), record, &data, now).await
}

/// Removes the state under `handle`, live or not.
pub async fn forget(store: &Store, kind: Kind, handle: &str) -> Result<(), StoreError> {
    store.forget_pending(kind.name(), &key(handle)).await
}
