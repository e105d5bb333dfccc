//! Password sign-in and the SSO session it starts. The cookie carries a 256-bit random value; the
//! store keeps only its hash.

use crate::provider::Provider;
use crate::{password, random};
use portico_model::{Acr, Amr, User};
use portico_store::{AuditEvent, NewSsoSession, SsoSession, Store, StoreError};

/// Checks an email and password. Unknown email, wrong password and disabled user all answer
/// `None`, in the same time (a dummy hash is verified for unknown emails).
pub async fn check_password(p: &Provider, email: &str, password: &str, ip: Option<String>, now: i64) -> Result<Option<User>, StoreError> {
    let found = p.store.user_by_email(email).await?;
    let (user, stored) = match found {
        Some((u, h)) => (Some(u), h),
        None => (None, None),
    };
    let rehash = stored.as_deref().is_some_and(password::needs_rehash);
    let ok = password::verify(password.to_owned(), stored).await;
    let user = user.filter(|u| ok && u.is_active());
    // Hashed with older parameters: the password is at hand now, so hash it as Portico does today.
    if let Some(u) = user.as_ref().filter(|_| rehash) {
        let fresh = password::hash_async(password.to_owned()).await;
        p.store.set_password_hash(&u.id, &fresh, now).await?;
        p.writer.record(AuditEvent::new(now, "password.rehashed", u.id.as_str()));
    }
    let event = match &user {
        Some(u) => AuditEvent::new(now, "login.succeeded", u.id.as_str()).data(serde_json::json!({"method": "pwd"})),
        None => AuditEvent::new(now, "login.failed", "anonymous").data(serde_json::json!({"method": "pwd"})),
    };
    p.writer.record(event.ip(ip));
    Ok(user)
}

/// The `acr` a session with these `amr` values reached.
pub fn acr_for(amr: &[String]) -> &'static str {
    Acr::of(amr).as_str()
}

/// Which second factors a user has set up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Factors {
    pub totp: bool,
    pub passkeys: bool,
}

impl Factors {
    pub fn any(self) -> bool {
        self.totp || self.passkeys
    }
}

pub async fn factors(p: &Provider, user: &portico_model::UserId) -> Result<Factors, StoreError> {
    Ok(Factors {
        totp: crate::totp::enrolled(p, user).await?,
        passkeys: !p.store.passkeys_of(user).await?.is_empty(),
    })
}

/// The signed-in session passed another factor (`amr` value): from now on it counts as a
/// two-factor session.
pub async fn add_factor(store: &Store, session: &SsoSession, factor: Amr) -> Result<(), StoreError> {
    let mut amr = session.amr.clone();
    if !amr.iter().any(|a| a == factor.as_str()) {
        amr.push(factor.as_str().to_owned());
    }
    store.set_session_factors(&session.id, &amr, acr_for(&amr)).await
}

/// Starts an SSO session; returns the cookie value.
pub async fn start_session(p: &Provider, user: &User, methods: &[Amr], user_agent: &str, ip: &str, now: i64) -> Result<(String, SsoSession), StoreError> {
    let cookie = random::token();
    let amr = Amr::names(methods);
    let acr = acr_for(&amr).to_owned();
    let new = NewSsoSession {
        id: random::id("sso_"),
        token_hash: random::hash(&cookie),
        user_id: user.id.clone(),
        auth_time: now,
        amr: amr.clone(),
        acr: acr.clone(),
        idle_expires_at: now + p.settings.session_idle,
        expires_at: now + p.settings.session_absolute,
        user_agent: user_agent.chars().take(256).collect(),
        ip: ip.to_owned(),
    };
    let event = AuditEvent::new(now, "session.started", user.id.as_str())
        .ip(Some(ip.to_owned()))
        .data(serde_json::json!({"session": new.id}));
    let mut tx = p.store.write().await?;
    tx.create_sso_session(&new, now).await?;
    tx.audit(event);
    tx.commit().await?;
    let session = SsoSession {
        id: new.id,
        user_id: new.user_id,
        auth_time: now,
        amr,
        acr,
        last_seen: now,
        expires_at: new.expires_at,
    };
    Ok((cookie, session))
}

/// The live session behind a cookie value, its idle expiry extended.
pub async fn session_from_cookie(p: &Provider, cookie: &str, now: i64) -> Result<Option<SsoSession>, StoreError> {
    p.store.live_sso_session(&random::hash(cookie), now, now + p.settings.session_idle).await
}

/// The user of a signed-in session.
pub async fn user_of(p: &Provider, session: &SsoSession) -> Result<Option<User>, StoreError> {
    p.store.user_by_id(&session.user_id).await
}

/// The live SSO session the session cookie names, and its user: what a signed-in page or form
/// stands on.
pub async fn signed_in(p: &Provider, cookie: &str, now: i64) -> Result<Option<(SsoSession, User)>, StoreError> {
    let Some(session) = session_from_cookie(p, cookie, now).await? else {
        return Ok(None);
    };
    Ok(user_of(p, &session).await?.map(|user| (session, user)))
}
