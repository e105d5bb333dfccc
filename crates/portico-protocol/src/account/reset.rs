//! Password reset by mail and password change on `/account`.
//!
//! A reset asked for an email gets the same answer whether or not an account has it (no
//! enumeration): the caller learns nothing, the mail goes only to a known, active account. The link
//! is single-use, short-lived (`reset_link_lifetime`) and bound to the password it replaces: once
//! the password changes by any path, every older link is dead. Setting a new password, by reset or
//! by change, ends the user's other sessions in the same transaction (NIST SP 800-63B: a changed
//! secret must not leave an attacker's session alive) and tells their products.

use crate::mail::{LinkKind, Mail, lifetime, link_ttl, new_link, peek_link, site, take_link};
use crate::password_policy::Refusal;
use crate::provider::Provider;
use crate::{password, random};
use portico_model::{User, UserId};
use portico_store::{AuditEvent, SsoSession, StoreError};
use serde_json::json;

/// Binds a link to the password hash it was issued against.
fn stamp(hash: Option<&str>) -> String {
    random::hash(hash.unwrap_or("no password"))
}

/// A reset was asked for `email`: the mail to send, if the email is an active account's. Audited
/// either way (the requester's address; an unknown email is not stored).
pub async fn request(p: &Provider, email: &str, ip: Option<String>, now: i64) -> Result<Option<Mail>, StoreError> {
    let found = p.store.user_by_email(email).await?.filter(|(u, _)| u.is_active());
    let Some((user, hash)) = found else {
        p.writer.record(
            AuditEvent::new(now, "password.reset_requested", "anonymous")
                .ip(ip)
                .data(json!({"known": false})),
        );
        return Ok(None);
    };
    let ttl = link_ttl(p, LinkKind::Reset);
    let payload = json!({"user": user.id.as_str(), "stamp": stamp(hash.as_deref())});
    let link = new_link(p, LinkKind::Reset, &payload, now).await?;
    p.writer.record(
        AuditEvent::new(now, "password.reset_requested", user.id.as_str())
            .ip(ip)
            .data(json!({"known": true})),
    );
    Ok(Some(Mail {
        to: user.email.clone(),
        subject: "Reset your password".into(),
        text: format!(
            "Hello {name},\n\nsomeone (we hope you) asked to reset the password of your account at {site}.\n\
             Follow this link within {within} to choose a new one:\n\n{link}\n\n\
             The link works once. Choosing a new password signs you out everywhere.\n\
             If it was not you, ignore this mail: your password stays as it is.\n",
            name = if user.name.is_empty() { &user.email } else { &user.name },
            site = site(p),
            within = lifetime(ttl),
        ),
    }))
}

/// Why a reset or change did not happen.
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordRefusal {
    /// The link is unknown, used, expired, or older than the password.
    LinkDead,
    /// The current password given to a change is wrong.
    WrongCurrent,
    /// The new password fails the policy.
    Weak(Refusal),
}

/// The account a live reset link is for (the form is shown for it); `None` when the link is dead.
pub async fn link_user(p: &Provider, token: &str, now: i64) -> Result<Option<User>, StoreError> {
    let Some(payload) = peek_link(p, LinkKind::Reset, token, now).await? else {
        return Ok(None);
    };
    let Some(id) = payload["user"].as_str() else { return Ok(None) };
    let found = p.store.user_by_id(&UserId::new(id.to_owned())).await?;
    Ok(found.filter(User::is_active))
}

/// Sets a new password through a reset link: the link is spent, every session of the user ends.
pub async fn complete(p: &Provider, token: &str, new_password: &str, ip: Option<String>, now: i64) -> Result<Result<User, PasswordRefusal>, StoreError> {
    let Some(user) = link_user(p, token, now).await? else {
        return Ok(Err(PasswordRefusal::LinkDead));
    };
    // Checked before the link is spent: a refused password lets the user try another.
    if let Err(r) = p.settings.password.check_async(new_password, &[&user.email, &user.name]).await {
        return Ok(Err(PasswordRefusal::Weak(r)));
    }
    let Some(payload) = take_link(p, LinkKind::Reset, token, now).await? else {
        return Ok(Err(PasswordRefusal::LinkDead));
    };
    let current = p.store.user_by_email(&user.email).await?;
    let still = current.filter(|(u, h)| u.id == user.id && payload["stamp"].as_str() == Some(&stamp(h.as_deref())));
    if still.is_none() {
        return Ok(Err(PasswordRefusal::LinkDead));
    }
    let hash = password::hash_async(new_password.to_owned()).await;
    let event = AuditEvent::new(now, "password.reset", user.id.as_str()).ip(ip);
    replace(p, &user.id, &hash, None, event, now).await?;
    Ok(Ok(user))
}

/// Changes the signed-in user's password: the current one must be given; every other session of
/// theirs ends, this one stays.
pub async fn change(
    p: &Provider,
    session: &SsoSession,
    current: &str,
    new_password: &str,
    ip: Option<String>,
    now: i64,
) -> Result<Result<(), PasswordRefusal>, StoreError> {
    let Some(user) = p.store.user_by_id(&session.user_id).await? else {
        return Ok(Err(PasswordRefusal::WrongCurrent));
    };
    let stored = p.store.user_by_email(&user.email).await?.and_then(|(_, h)| h);
    if !password::verify(current.to_owned(), stored).await {
        p.writer.record(
            AuditEvent::new(now, "password.change_failed", user.id.as_str())
                .ip(ip)
                .data(json!({"reason": "wrong_current"})),
        );
        return Ok(Err(PasswordRefusal::WrongCurrent));
    }
    if let Err(r) = p.settings.password.check_async(new_password, &[&user.email, &user.name]).await {
        return Ok(Err(PasswordRefusal::Weak(r)));
    }
    let hash = password::hash_async(new_password.to_owned()).await;
    let event = AuditEvent::new(now, "password.changed", user.id.as_str())
        .ip(ip)
        .data(json!({"session": session.id}));
    replace(p, &user.id, &hash, Some(&session.id), event, now).await?;
    Ok(Ok(()))
}

async fn replace(p: &Provider, user: &UserId, hash: &str, keep: Option<&str>, event: AuditEvent, now: i64) -> Result<(), StoreError> {
    let config = p.config();
    let notify = |c: &str| config.notifies_logout(c);
    let mut tx = p.store.write().await?;
    tx.replace_password(user, hash, keep, now, &notify).await?;
    tx.audit(event);
    tx.commit().await?;
    Ok(())
}
