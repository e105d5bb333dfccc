//! Self-service sign-up for products that allow it (`signup = true`), and email verification.
//!
//! A sign-up makes no account until its email is confirmed: the name and password hash wait behind
//! a single-use link mailed to the address (`verify_link_lifetime`). An address that already has an
//! account gets a mail saying so instead, and the person signing up sees the same page either way
//! (no enumeration). Following the link makes the account, verified, with a grant to the product it
//! signed up for; nobody is signed in by the link itself, so a forwarded mail opens no session.
//!
//! Confirming asks for the password chosen at sign-up. Otherwise anyone could sign up with a
//! stranger's address and a password of their own, and the stranger, clicking the link in a mail
//! they did not expect, would make an account whose password the other person knows
//! (pre-account takeover).
//!
//! Only products without tenants take sign-ups: a tenant admits its own members.

use crate::mail::{LinkKind, Mail, lifetime, link_ttl, new_link, peek_link, site, take_link};
use crate::provider::Provider;
use crate::random;
use crate::snapshot::Snapshot;
use portico_model::{Grant, GrantScope, GrantStatus, Grantee, Product, User, UserId, UserStatus};
use portico_store::{AuditEvent, Store, StoreError};
use serde_json::json;

/// The product an authorization request is for, if it takes sign-ups.
pub fn product_open_to_signup(config: &Snapshot, audience: &str) -> Option<Product> {
    config.product_by_audience(audience).filter(|x| x.signup && !x.tenant_aware).cloned()
}

/// What the sign-up form gave, its password already hashed.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SignupRequest {
    pub email: String,
    pub name: String,
    pub password_hash: String,
    /// The product signed up for.
    pub product: String,
    /// The authorization request to continue once the account exists.
    pub auth_request: Option<String>,
}

/// A sign-up was asked: the mail to send (a confirmation link, or "you already have an account").
pub async fn request(p: &Provider, req: &SignupRequest, ip: Option<String>, now: i64) -> Result<Mail, StoreError> {
    let product = p
        .config()
        .products()
        .find(|x| x.slug.as_str() == req.product)
        .map_or_else(|| req.product.clone(), |x| x.name.clone());
    if let Some((user, _)) = p.store.user_by_email(&req.email).await? {
        p.writer.record(
            AuditEvent::new(now, "signup.existing_email", user.id.as_str())
                .ip(ip)
                .product(req.product.clone()),
        );
        return Ok(Mail {
            to: user.email,
            subject: "You already have an account".into(),
            text: format!(
                "Hello,\n\nsomeone (we hope you) tried to create an account for {product} at {site} with this email.\n\
                 You already have one, so nothing was created. Sign in with it, or choose a new password here:\n\n\
                 {issuer}/password/forgot\n\nIf it was not you, ignore this mail.\n",
                site = site(p),
                issuer = p.issuer,
            ),
        });
    }
    let ttl = link_ttl(p, LinkKind::Signup);
    let payload = serde_json::to_value(req).unwrap_or_default();
    let link = new_link(p, LinkKind::Signup, &payload, now).await?;
    p.writer
        .record(AuditEvent::new(now, "signup.requested", "anonymous").ip(ip).product(req.product.clone()));
    Ok(Mail {
        to: req.email.clone(),
        subject: "Confirm your email".into(),
        text: format!(
            "Hello {name},\n\nconfirm your email to finish creating your account for {product} at {site}.\n\
             Follow this link within {within}:\n\n{link}\n\n\
             If you did not sign up, ignore this mail: no account is made.\n",
            name = if req.name.is_empty() { &req.email } else { &req.name },
            site = site(p),
            within = lifetime(ttl),
        ),
    })
}

/// Why a confirmation made no account.
#[derive(Debug, PartialEq, Eq)]
pub enum ConfirmRefusal {
    /// Unknown, used or expired link.
    LinkDead,
    /// The email got an account in the meantime (another sign-up, an administrator).
    Taken,
    /// Not the password chosen at sign-up; the link stays usable.
    WrongPassword,
}

/// Follows a sign-up link: makes the account (email verified) and its grant to the product.
/// Returns the new user and the authorization request to continue, if any.
pub async fn confirm(
    p: &Provider,
    token: &str,
    password: &str,
    ip: Option<String>,
    now: i64,
) -> Result<Result<(User, Option<String>), ConfirmRefusal>, StoreError> {
    let pending = peek_link(p, LinkKind::Signup, token, now)
        .await?
        .and_then(|v| serde_json::from_value::<SignupRequest>(v).ok());
    let Some(req) = pending else {
        return Ok(Err(ConfirmRefusal::LinkDead));
    };
    if !crate::password::verify(password.to_owned(), Some(req.password_hash.clone())).await {
        p.writer
            .record(AuditEvent::new(now, "signup.confirm_failed", "anonymous").ip(ip).product(req.product.clone()));
        return Ok(Err(ConfirmRefusal::WrongPassword));
    }
    if take_link(p, LinkKind::Signup, token, now).await?.is_none() {
        return Ok(Err(ConfirmRefusal::LinkDead));
    }
    let Some(product) = p.config().products().find(|x| x.slug.as_str() == req.product).cloned() else {
        return Ok(Err(ConfirmRefusal::LinkDead));
    };
    match make_account(&p.store, &req, &product, ip, now).await? {
        Some(user) => Ok(Ok((user, req.auth_request))),
        None => Ok(Err(ConfirmRefusal::Taken)),
    }
}

/// The account a confirmed sign-up makes (email verified), with its grant to the product while the
/// product still takes sign-ups, audited with it; `None` when the email was taken meanwhile.
async fn make_account(store: &Store, req: &SignupRequest, product: &Product, ip: Option<String>, now: i64) -> Result<Option<User>, StoreError> {
    let user = User {
        id: UserId::new(random::id(portico_model::USER_ID_PREFIX)),
        email: req.email.clone(),
        email_verified: true,
        name: req.name.clone(),
        status: UserStatus::Active,
        created_at: now,
    };
    // The product may have stopped taking sign-ups since the mail went out: the account is still
    // made (the email is proven), without access to it.
    let grants: Vec<Grant> = (product.signup && !product.tenant_aware)
        .then(|| Grant {
            grantee: Grantee::User(user.id.clone()),
            product: product.slug.clone(),
            scope: GrantScope::NoTenant,
            roles: Vec::new(),
            status: GrantStatus::Active,
            granted_by: "signup".into(),
            granted_at: now,
            expires_at: None,
        })
        .into_iter()
        .collect();
    let events = [
        AuditEvent::new(now, "user.signed_up", user.id.as_str())
            .ip(ip.clone())
            .product(product.slug.as_str())
            .data(json!({"granted": !grants.is_empty()})),
        AuditEvent::new(now, "email.verified", user.id.as_str()).ip(ip),
    ];
    let mut tx = store.write().await?;
    match tx.insert_user(&user, Some(&req.password_hash), &grants).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Ok(None),
        Err(e) => return Err(e),
    }
    for e in events {
        tx.audit(e);
    }
    tx.commit().await?;
    Ok(Some(user))
}

/// The mail that verifies a signed-in user's email, if it is not verified yet.
pub async fn verification_mail(p: &Provider, user: &User, ip: Option<String>, now: i64) -> Result<Option<Mail>, StoreError> {
    if user.email_verified {
        return Ok(None);
    }
    let ttl = link_ttl(p, LinkKind::Verify);
    let link = new_link(p, LinkKind::Verify, &json!({"user": user.id.as_str(), "email": user.email}), now).await?;
    p.writer.record(AuditEvent::new(now, "email.verification_sent", user.id.as_str()).ip(ip));
    Ok(Some(Mail {
        to: user.email.clone(),
        subject: "Verify your email".into(),
        text: format!(
            "Hello {name},\n\nfollow this link within {within} to confirm that this is your email at {site}:\n\n{link}\n\n\
             If you did not ask for this, ignore this mail.\n",
            name = if user.name.is_empty() { &user.email } else { &user.name },
            site = site(p),
            within = lifetime(ttl),
        ),
    }))
}

/// Follows a verification link; whether an email was verified by it.
pub async fn verify_email(p: &Provider, token: &str, ip: Option<String>, now: i64) -> Result<bool, StoreError> {
    let Some(payload) = take_link(p, LinkKind::Verify, token, now).await? else {
        return Ok(false);
    };
    let (Some(id), Some(email)) = (payload["user"].as_str(), payload["email"].as_str()) else {
        return Ok(false);
    };
    let id = UserId::new(id.to_owned());
    let mut tx = p.store.write().await?;
    let verified = tx.verify_email(&id, email, now).await?;
    if verified {
        tx.audit(AuditEvent::new(now, "email.verified", id.as_str()).ip(ip));
    }
    tx.commit().await?;
    Ok(verified)
}
