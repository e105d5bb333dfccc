//! Who may change how a user signs in: add or remove an authenticator app or a passkey, make new
//! recovery codes. One rule ([`may_change_factors`]) for the account page and the step-up page.
//!
//! A session that passed a second factor may; a session that holds the password alone may not
//! while the user has a factor (a stolen cookie from before the factor existed can neither plant a
//! factor of its own nor take one away). While the user has none, any signed-in session may set
//! up the first (trust on first use, the default), unless one of the products the user holds a
//! grant of says `mfa_enrolment = "email_link"`: then the session must first open a link mailed to
//! the account's address ([`link_mail`], [`open_link`]), which lets that session alone set up a
//! factor for [`PERMIT_TTL`] seconds. A password thief who cannot read the user's mail cannot
//! enrol a factor of their own first.

use crate::interaction::pending::{self, Kind};
use crate::login::Factors;
use crate::mail::{LinkKind, Mail, lifetime, new_link, peek_link, site, take_link};
use crate::provider::Provider;
use portico_model::{Grantee, MfaEnrolment, User, UserId};
use portico_store::{AuditEvent, SsoSession, StoreError};
use serde_json::json;

/// How long the mailed link works, and how long a session that opened it may set up the first factor.
pub use crate::interaction::pending::{ENROLMENT_LINK_TTL as LINK_TTL, FACTOR_PERMIT_TTL as PERMIT_TTL};

/// Whether a session may change its user's factors, and if not, what it needs first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorChange {
    Allowed,
    /// The user has a factor and this session did not pass one: sign in again with it.
    SecondFactorNeeded,
    /// The user has none, and one of their products refuses trust on first use: the mailed link.
    EmailLinkNeeded,
}

pub async fn may_change_factors(p: &Provider, session: &SsoSession, now: i64) -> Result<FactorChange, StoreError> {
    if portico_model::gate::is_multi_factor(&session.amr) {
        return Ok(FactorChange::Allowed);
    }
    may_change_factors_given(p, session, crate::login::factors(p, &session.user_id).await?, now).await
}

/// As [`may_change_factors`], for a caller that has read the user's factors already.
pub async fn may_change_factors_given(p: &Provider, session: &SsoSession, factors: Factors, now: i64) -> Result<FactorChange, StoreError> {
    if portico_model::gate::is_multi_factor(&session.amr) {
        return Ok(FactorChange::Allowed);
    }
    if factors.any() {
        return Ok(FactorChange::SecondFactorNeeded);
    }
    if !needs_link(p, &session.user_id, now).await?
        || pending::get::<String>(&p.store, Kind::FactorPermit, &session.id, now).await?.as_deref() == Some(session.user_id.as_str())
    {
        return Ok(FactorChange::Allowed);
    }
    Ok(FactorChange::EmailLinkNeeded)
}

/// Whether the user's first factor needs the mailed link: a product they hold a live grant of
/// refuses trust on first use.
async fn needs_link(p: &Provider, user: &UserId, now: i64) -> Result<bool, StoreError> {
    let config = p.config();
    Ok(p.store
        .grants_of(&Grantee::User(user.clone()))
        .await?
        .iter()
        .any(|g| g.is_active_at(now) && config.product(&g.product).is_some_and(|x| x.mfa_enrolment == MfaEnrolment::EmailLink)))
}

/// The mail with the link; `next` is the local page to return to once it is opened.
pub async fn link_mail(p: &Provider, user: &User, next: Option<&str>, ip: Option<String>, now: i64) -> Result<Mail, StoreError> {
    let link = new_link(p, LinkKind::Enrolment, &json!({"user": user.id.as_str(), "next": next}), now).await?;
    p.writer.record(AuditEvent::new(now, "mfa.enrolment_link_sent", user.id.as_str()).ip(ip));
    Ok(Mail {
        to: user.email.clone(),
        subject: "Set up two-step verification".into(),
        text: format!(
            "Hello {name},\n\nto set up two-step verification for your account at {site}, open this link within {within}, \
             in the browser where you are signed in:\n\n{link}\n\n\
             If you did not ask for this, someone may know your password: change it.\n",
            name = if user.name.is_empty() { &user.email } else { &user.name },
            site = site(p),
            within = lifetime(LINK_TTL),
        ),
    })
}

/// What opening the link did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkOutcome {
    /// This session may now set up the first factor; back to `next`.
    Opened { next: Option<String> },
    /// Signed in as someone else: nothing spent.
    OtherUser,
    /// Used, expired or never made.
    Dead,
}

/// Opens the link for this session: spent once, and only by a session of the user it was sent to.
pub async fn open_link(p: &Provider, token: &str, session: &SsoSession, ip: Option<String>, now: i64) -> Result<LinkOutcome, StoreError> {
    let for_user = |payload: &serde_json::Value| payload["user"].as_str() == Some(session.user_id.as_str());
    match peek_link(p, LinkKind::Enrolment, token, now).await? {
        None => return Ok(LinkOutcome::Dead),
        Some(payload) if !for_user(&payload) => return Ok(LinkOutcome::OtherUser),
        Some(_) => {}
    }
    let Some(payload) = take_link(p, LinkKind::Enrolment, token, now).await?.filter(for_user) else {
        return Ok(LinkOutcome::Dead);
    };
    pending::put(&p.store, &p.settings, Kind::FactorPermit, &session.id, &session.user_id.as_str(), now).await?;
    p.writer
        .record(AuditEvent::new(now, "mfa.enrolment_link_opened", session.user_id.as_str()).ip(ip));
    Ok(LinkOutcome::Opened {
        next: payload["next"].as_str().map(str::to_owned),
    })
}
