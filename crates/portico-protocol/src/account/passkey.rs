//! Passkeys (WebAuthn Level 3) through the `webauthn-rs` crate: several per user, registered from
//! the account page, used as the second factor after a password or on their own (discoverable
//! credentials, passwordless). User verification is always required, so a passkey sign-in is
//! itself two factors (something held, and a PIN or biometric): `amr` says `hwk`, `acr` is MFA.
//!
//! The relying party is the issuer's host and the only origin the issuer's origin. A ceremony's
//! state (its challenge) is kept server-side for five minutes under the hash of a random token the
//! page holds, and is taken out of the store once: a response is never accepted twice.

use crate::interaction::pending::{self, Kind};
use crate::provider::Provider;
use portico_model::{User, UserId};
use portico_store::{AuditEvent, PasskeyRow, Store, StoreError};
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    CredentialID, DiscoverableAuthentication, DiscoverableKey, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Uuid, Webauthn, WebauthnBuilder,
};

/// How long a ceremony may take.
pub use crate::interaction::pending::CEREMONY_TTL;
/// The longest name a passkey may have.
pub const MAX_NAME: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// WebAuthn needs a domain name: browsers refuse an IP address as the relying party.
    #[error("passkeys need an issuer with a domain name")]
    Unavailable,
    #[error("the passkey request expired or was used already")]
    Expired,
    #[error("the passkey was not accepted: {0}")]
    Refused(String),
    #[error("that passkey is registered already")]
    Duplicate,
    /// Too many ceremonies of this user: the seconds to wait.
    #[error("too many passkey requests")]
    TooMany(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A ceremony of a sign-in under way (its second factor, a step-up, a registration) is a stored
/// write its user can cause: each user may start so many a minute. (A passwordless one has no
/// user yet: the server bounds it per address.)
pub fn allowance(limit: &dyn crate::interaction::PendingLimit, user: &UserId) -> Result<(), PasskeyError> {
    match limit.wait(&format!("user:{}", user.as_str())) {
        None => Ok(()),
        Some(wait) => Err(PasskeyError::TooMany(wait)),
    }
}

/// The relying party for `issuer`; `None` when its host is an IP address (or it is no URL).
pub fn relying_party(issuer: &str) -> Option<Webauthn> {
    let url = url::Url::parse(issuer).ok()?;
    let Some(url::Host::Domain(host)) = url.host() else {
        return None;
    };
    let host = host.to_owned();
    WebauthnBuilder::new(&host, &url).ok()?.rp_name("Portico").build().ok()
}

fn rp(p: &Provider) -> Result<&Webauthn, PasskeyError> {
    p.webauthn.as_ref().ok_or(PasskeyError::Unavailable)
}

/// The WebAuthn user handle of a user: 16 bytes derived from the user id, no personal data.
pub fn user_handle(user: &UserId) -> Uuid {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("portico-webauthn:{}", user.as_str()).as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest.as_ref()[..16]);
    Uuid::from_bytes(b)
}

/// What a ceremony in progress remembers.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Ceremony {
    Register {
        user: String,
        state: PasskeyRegistration,
    },
    /// The second factor of a known user.
    Verify {
        user: String,
        state: PasskeyAuthentication,
    },
    /// Passwordless: whoever's passkey answers.
    Discover {
        state: DiscoverableAuthentication,
    },
}

/// A started ceremony: the token the page sends back, and the options for the browser
/// (`PublicKeyCredentialCreationOptionsJSON` / `…RequestOptionsJSON`).
#[derive(Debug, Serialize)]
pub struct Started {
    pub token: String,
    #[serde(rename = "publicKey")]
    pub public_key: serde_json::Value,
}

async fn remember(p: &Provider, c: &Ceremony, public_key: serde_json::Value, now: i64) -> Result<Started, PasskeyError> {
    let token = crate::random::token();
    pending::put(&p.store, &p.settings, Kind::Ceremony, &token, c, now).await?;
    Ok(Started { token, public_key })
}

async fn take(p: &Provider, token: &str, now: i64) -> Result<Ceremony, PasskeyError> {
    pending::take(&p.store, Kind::Ceremony, token, now).await?.ok_or(PasskeyError::Expired)
}

/// The credential a stored row holds.
fn stored(row: &PasskeyRow) -> Result<Passkey, StoreError> {
    serde_json::from_str(&row.credential).map_err(|e| StoreError::Corrupt(format!("passkey {}: {e}", row.id)))
}

fn passkeys(rows: &[PasskeyRow]) -> Result<Vec<Passkey>, StoreError> {
    rows.iter().map(stored).collect()
}

/// Starts registering a passkey for `user`. Its existing passkeys are excluded (an authenticator
/// registers once), and the credential must be discoverable, so it also signs in without a password.
pub async fn start_registration(p: &Provider, user: &User, now: i64) -> Result<Started, PasskeyError> {
    let existing = p.store.passkeys_of(&user.id).await?;
    let exclude: Vec<CredentialID> = passkeys(&existing)?.iter().map(|k| k.cred_id().clone()).collect();
    let display = if user.name.is_empty() { &user.email } else { &user.name };
    let (ccr, state) = rp(p)?
        .start_passkey_registration(user_handle(&user.id), &user.email, display, Some(exclude))
        .map_err(|e| PasskeyError::Refused(e.to_string()))?;
    let mut options = serde_json::to_value(&ccr.public_key).map_err(|e| PasskeyError::Refused(e.to_string()))?;
    // webauthn-rs asks for a non-resident credential; a passkey that signs in on its own must be
    // discoverable (WebAuthn §5.4.6: residentKey "required", and requireResidentKey for Level 1).
    if let Some(sel) = options.get_mut("authenticatorSelection").and_then(|s| s.as_object_mut()) {
        sel.insert("residentKey".into(), "required".into());
        sel.insert("requireResidentKey".into(), true.into());
    }
    let c = Ceremony::Register {
        user: user.id.as_str().to_owned(),
        state,
    };
    remember(p, &c, options, now).await
}

/// A passkey name as the user typed it: trimmed, control characters dropped, at most [`MAX_NAME`]
/// characters; empty becomes "Passkey".
pub fn clean_name(name: &str) -> String {
    let n: String = name.trim().chars().filter(|c| !c.is_control()).take(MAX_NAME).collect();
    if n.is_empty() { "Passkey".into() } else { n }
}

/// Finishes a registration: the browser's answer (`PublicKeyCredential.toJSON()`) is verified
/// against the challenge, and the passkey is stored under `name`. Audited.
pub async fn finish_registration(
    p: &Provider,
    user: &User,
    token: &str,
    name: &str,
    credential: &str,
    ip: Option<String>,
    now: i64,
) -> Result<PasskeyRow, PasskeyError> {
    let Ceremony::Register { user: owner, state } = take(p, token, now).await? else {
        return Err(PasskeyError::Expired);
    };
    if owner != user.id.as_str() {
        return Err(PasskeyError::Expired);
    }
    let reg: RegisterPublicKeyCredential = serde_json::from_str(credential).map_err(|e| PasskeyError::Refused(format!("malformed response: {e}")))?;
    let key = rp(p)?
        .finish_passkey_registration(&reg, &state)
        .map_err(|e| PasskeyError::Refused(e.to_string()))?;
    let row = PasskeyRow {
        id: crate::random::b64url(key.cred_id().as_ref()),
        user_id: user.id.clone(),
        name: clean_name(name),
        credential: serde_json::to_string(&key).map_err(|e| PasskeyError::Refused(e.to_string()))?,
        created_at: now,
        last_used_at: None,
    };
    let event = AuditEvent::new(now, "mfa.passkey_added", user.id.as_str())
        .ip(ip)
        .data(serde_json::json!({"passkey": row.id, "name": row.name}));
    let mut tx = p.store.write().await?;
    match tx.add_passkey(&row).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(PasskeyError::Duplicate),
        Err(e) => return Err(e.into()),
    }
    tx.audit(event);
    tx.commit().await?;
    Ok(row)
}

/// Starts the second factor for a user who has passkeys; `None` when they have none.
pub async fn start_verification(p: &Provider, user: &UserId, now: i64) -> Result<Option<Started>, PasskeyError> {
    let rows = p.store.passkeys_of(user).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let (rcr, state) = rp(p)?
        .start_passkey_authentication(&passkeys(&rows)?)
        .map_err(|e| PasskeyError::Refused(e.to_string()))?;
    let options = serde_json::to_value(&rcr.public_key).map_err(|e| PasskeyError::Refused(e.to_string()))?;
    let c = Ceremony::Verify {
        user: user.as_str().to_owned(),
        state,
    };
    remember(p, &c, options, now).await.map(Some)
}

/// Starts a passwordless sign-in: any discoverable passkey registered here may answer.
pub async fn start_discovery(p: &Provider, now: i64) -> Result<Started, PasskeyError> {
    let (rcr, state) = rp(p)?.start_discoverable_authentication().map_err(|e| PasskeyError::Refused(e.to_string()))?;
    let options = serde_json::to_value(&rcr.public_key).map_err(|e| PasskeyError::Refused(e.to_string()))?;
    remember(p, &Ceremony::Discover { state }, options, now).await
}

/// Finishes a sign-in ceremony: `expected` is the user of a second-factor ceremony (`None` for
/// passwordless). Returns the user whose passkey signed the challenge, once its counter and last
/// use are recorded. Every refusal is audited; a disabled user is refused.
pub async fn finish_sign_in(
    p: &Provider,
    token: &str,
    credential: &str,
    expected: Option<&UserId>,
    ip: Option<String>,
    now: i64,
) -> Result<User, PasskeyError> {
    let ceremony = take(p, token, now).await?;
    let refused = |actor: &str, why: String| {
        p.writer.record(
            AuditEvent::new(now, "mfa.passkey_refused", actor)
                .ip(ip.clone())
                .data(serde_json::json!({"why": why.chars().take(200).collect::<String>()})),
        );
        PasskeyError::Refused(why)
    };
    let cred: PublicKeyCredential = serde_json::from_str(credential).map_err(|e| refused("anonymous", format!("malformed response: {e}")))?;
    let cred_id = crate::random::b64url(cred.get_credential_id());
    let row = p.store.passkey(&cred_id).await?;
    let webauthn = rp(p)?;
    let (row, mut key, result) = match (ceremony, expected) {
        (Ceremony::Verify { user, state }, Some(expected)) if user == expected.as_str() => {
            let row = row
                .filter(|r| r.user_id == *expected)
                .ok_or_else(|| refused(&user, "not one of the user's passkeys".into()))?;
            let result = webauthn
                .finish_passkey_authentication(&cred, &state)
                .map_err(|e| refused(&user, e.to_string()))?;
            let key = stored(&row)?;
            (row, key, result)
        }
        (Ceremony::Discover { state }, None) => {
            let row = row.ok_or_else(|| refused("anonymous", "unknown passkey".into()))?;
            let (handle, _) = webauthn
                .identify_discoverable_authentication(&cred)
                .map_err(|e| refused(row.user_id.as_str(), e.to_string()))?;
            if handle != user_handle(&row.user_id) {
                return Err(refused(row.user_id.as_str(), "the user handle is not the passkey's owner".into()));
            }
            let key = stored(&row)?;
            let result = webauthn
                .finish_discoverable_authentication(&cred, state, &[DiscoverableKey::from(&key)])
                .map_err(|e| refused(row.user_id.as_str(), e.to_string()))?;
            (row, key, result)
        }
        _ => return Err(PasskeyError::Expired),
    };
    let user = p
        .store
        .user_by_id(&row.user_id)
        .await?
        .filter(User::is_active)
        .ok_or_else(|| refused(row.user_id.as_str(), "user disabled".into()))?;
    key.update_credential(&result);
    let kind = if expected.is_some() { "mfa.passkey_used" } else { "login.succeeded" };
    used(&p.store, &row, &key, AuditEvent::new(now, kind, user.id.as_str()).ip(ip), now).await?;
    Ok(user)
}

/// Records a passkey's use: its updated counter and last use, audited by `event`.
async fn used(store: &Store, row: &PasskeyRow, key: &Passkey, event: AuditEvent, now: i64) -> Result<(), PasskeyError> {
    let event = event.data(serde_json::json!({"method": "passkey", "passkey": row.id}));
    let stored = serde_json::to_string(key).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut tx = store.write().await?;
    tx.passkey_used(&row.id, &stored, now).await?;
    tx.audit(event);
    tx.commit().await?;
    Ok(())
}

/// Renames one of the user's passkeys; false when it is not theirs.
pub async fn rename(p: &Provider, user: &UserId, id: &str, name: &str, ip: Option<String>, now: i64) -> Result<bool, StoreError> {
    let name = clean_name(name);
    let event = AuditEvent::new(now, "mfa.passkey_renamed", user.as_str())
        .ip(ip)
        .data(serde_json::json!({"passkey": id, "name": name}));
    change(&p.store, user, id, Some(&name), event).await
}

/// Removes one of the user's passkeys; false when it is not theirs.
pub async fn remove(p: &Provider, user: &UserId, id: &str, ip: Option<String>, now: i64) -> Result<bool, StoreError> {
    let event = AuditEvent::new(now, "mfa.passkey_removed", user.as_str())
        .ip(ip)
        .data(serde_json::json!({"passkey": id}));
    change(&p.store, user, id, None, event).await
}

/// Renames or removes one of the user's passkeys, audited by `event` when it was theirs.
async fn change(store: &Store, user: &UserId, id: &str, rename: Option<&str>, event: AuditEvent) -> Result<bool, StoreError> {
    let mut tx = store.write().await?;
    let changed = tx.change_passkey(user, id, rename).await?;
    if changed {
        tx.audit(event);
    }
    tx.commit().await?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_is_the_issuers_domain() {
        assert!(relying_party("https://id.example.test").is_some());
        assert!(relying_party("http://localhost:8080").is_some());
        assert!(relying_party("http://127.0.0.1:8080").is_none(), "browsers refuse an IP address");
        assert!(relying_party("not a url").is_none());
    }

    #[test]
    fn user_handles_are_stable_and_distinct() {
        let (a, b) = (UserId::new("usr_a"), UserId::new("usr_b"));
        assert_eq!(user_handle(&a), user_handle(&a));
        assert_ne!(user_handle(&a), user_handle(&b));
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("  Work laptop  "), "Work laptop");
        assert_eq!(clean_name(""), "Passkey");
        assert_eq!(clean_name("a\u{0}b\nc"), "abc");
        assert_eq!(clean_name(&"x".repeat(100)).chars().count(), MAX_NAME);
    }
}
