//! What a user does with their account, and its rules: signing in with a password ([`login`]) and
//! its [`throttle`], the authenticator app and recovery codes ([`totp`]), [`passkey`]s, who may
//! change factors ([`enrolment`]), passwords ([`password`], [`password_policy`], [`reset`]),
//! [`signup`], and the [`mail`] these send. Here too: the account page's facts about the
//! signed-in user ([`overview`]).

pub mod enrolment;
pub mod login;
pub mod mail;
pub mod passkey;
pub mod password;
pub mod password_policy;
pub mod reset;
pub mod signup;
pub mod throttle;
pub mod totp;

use crate::provider::Provider;
use enrolment::FactorChange;
use login::Factors;
use portico_model::User;
use portico_store::{PasskeyRow, SessionInfo, SsoSession, StoreError};

/// What the account page shows.
#[derive(Debug)]
pub struct Overview {
    pub user: User,
    /// The user's live sessions: this one first, then the others, most recently active first.
    pub sessions: Vec<SessionInfo>,
    pub passkeys: Vec<PasskeyRow>,
    pub factors: Factors,
    /// Whether this session may change the factors ([`enrolment::may_change_factors`]).
    pub change: FactorChange,
    /// Recovery codes left, and when one was last used.
    pub recovery_left: i64,
    pub recovery_last_used: Option<i64>,
}

/// The overview for `session` and its `user` (as the session's lookup read it).
pub async fn overview(p: &Provider, session: &SsoSession, user: User, now: i64) -> Result<Overview, StoreError> {
    let mut sessions = p.store.sessions_of(&user.id, now).await?;
    sessions.sort_by_key(|x| x.id != session.id);
    let passkeys = p.store.passkeys_of(&user.id).await?;
    let factors = Factors {
        totp: crate::totp::enrolled(p, &user.id).await?,
        passkeys: !passkeys.is_empty(),
    };
    let change = enrolment::may_change_factors_given(p, session, factors, now).await?;
    let (recovery_left, recovery_last_used) = crate::totp::recovery_codes_left(p, &user.id).await?;
    Ok(Overview {
        user,
        sessions,
        passkeys,
        factors,
        change,
        recovery_left,
        recovery_last_used,
    })
}
