//! TOTP second factor (RFC 6238: HMAC-SHA1, 6 digits, 30 s steps), through the `totp-rs` crate.
//! A code is accepted for the current step or one step either side (clock skew), and only once:
//! its step must be later than the last one accepted, checked and recorded in one statement.
//! Secrets are sealed with the KEK; enrolment shows them once, as a QR code the server draws.

use crate::provider::Provider;
use portico_model::{User, UserId};
use portico_store::{AuditEvent, StoreError};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, TOTP};

/// Seconds per step.
pub const STEP: i64 = 30;
/// Steps either side of now that are still accepted.
pub const SKEW: i64 = 1;
/// Wrong codes in a row before codes are refused for [`LOCKOUT`] seconds: at most a handful of
/// guesses at a 6-digit code per five minutes, whoever asks and from wherever.
pub const MAX_FAILURES: i64 = 5;
pub const LOCKOUT: i64 = 300;

/// What the user sees while enrolling.
#[derive(Clone, Debug)]
pub struct Enrollment {
    /// The secret in base32, for typing into an app by hand.
    pub secret: String,
    pub otpauth_uri: String,
    /// The `otpauth://` URI as an SVG QR code.
    pub qr_svg: String,
}

fn label(p: &Provider) -> String {
    // The issuer label may not contain ':'; the host names the deployment.
    p.issuer_host().unwrap_or_else(|| "Portico".into())
}

fn totp(p: &Provider, secret: Vec<u8>, account: &str) -> TOTP {
    TOTP::new_unchecked(Algorithm::SHA1, 6, SKEW as u8, STEP as u64, secret, Some(label(p)), account.to_owned())
}

/// The step within `SKEW` of `now` whose code is `code`, compared in constant time.
fn matching_step(t: &TOTP, code: &str, now: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = now.div_euclid(STEP);
    (current - SKEW..=current + SKEW).find(|step| {
        let expected = t.generate((*step * STEP).max(0) as u64);
        bool::from(expected.as_bytes().ct_eq(code.as_bytes()))
    })
}

/// Starts an enrolment: a new secret (160 bits), kept unconfirmed until a code from it is
/// entered. `None` when the user already has a confirmed authenticator.
pub async fn start(p: &Provider, user: &User, now: i64) -> Result<Option<Enrollment>, StoreError> {
    let secret = crate::random::bytes::<20>().to_vec();
    let sealed = p.kek.seal_totp(user.id.as_str(), &secret);
    if !p.store.start_totp(&user.id, &sealed, now).await? {
        return Ok(None);
    }
    let t = totp(p, secret, &user.email);
    let otpauth_uri = t.get_url();
    let qr_svg = qrcode::QrCode::new(otpauth_uri.as_bytes())
        .map(|q| q.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build())
        .unwrap_or_default();
    Ok(Some(Enrollment {
        secret: t.get_secret_base32(),
        otpauth_uri,
        qr_svg,
    }))
}

/// Whether codes from the user's authenticator are refused right now (too many wrong ones).
pub async fn locked(p: &Provider, user: &UserId, now: i64) -> Result<bool, StoreError> {
    Ok(p.store.totp_of(user).await?.is_some_and(|c| c.locked_until > now))
}

/// Whether the user has a confirmed authenticator (and so must give a code at sign-in).
pub async fn enrolled(p: &Provider, user: &UserId) -> Result<bool, StoreError> {
    Ok(p.store.totp_of(user).await?.is_some_and(|c| c.confirmed_at.is_some()))
}

/// Checks a code: during enrolment (`confirming`) against the pending secret, which it confirms;
/// at sign-in against the confirmed one. Each code is good once. Audited either way.
pub async fn check(p: &Provider, user: &User, code: &str, confirming: bool, ip: Option<String>, now: i64) -> Result<bool, StoreError> {
    let Some(cred) = p.store.totp_of(&user.id).await? else {
        return Ok(false);
    };
    if cred.confirmed_at.is_some() == confirming {
        return Ok(false);
    }
    let Ok(secret) = p.kek.open_totp(user.id.as_str(), &cred.secret) else {
        return Err(StoreError::Corrupt("a TOTP secret does not open with this KEK".into()));
    };
    if !confirming && cred.locked_until > now {
        p.writer.record(
            AuditEvent::new(now, "mfa.totp_refused", user.id.as_str())
                .ip(ip)
                .data(serde_json::json!({"locked": true})),
        );
        return Ok(false);
    }
    let kind = if confirming { "mfa.totp_enrolled" } else { "mfa.totp_used" };
    // A secret sealed before per-purpose keys opens for any account: once its code is right,
    // it is sealed again, bound to this user.
    let reseal = crate::kek::Kek::is_v1(&cred.secret).then(|| p.kek.seal_totp(user.id.as_str(), &secret));
    let accepted = match matching_step(&totp(p, secret, &user.email), code, now) {
        Some(step) => {
            let event = AuditEvent::new(now, kind, user.id.as_str()).ip(ip.clone());
            let mut tx = p.store.write().await?;
            let used = tx.use_totp_step(&user.id, step, confirming, now).await?;
            if used {
                tx.audit(event);
            }
            tx.commit().await?;
            used
        }
        None => false,
    };
    if let Some(sealed) = reseal.filter(|_| accepted) {
        p.store.reseal_totp(&user.id, &cred.secret, &sealed).await?;
    }
    if !accepted {
        let event = AuditEvent::new(now, "mfa.totp_refused", user.id.as_str()).ip(ip.clone());
        p.writer.record(event.data(serde_json::json!({"enrolment": confirming})));
        let lock = AuditEvent::new(now, "mfa.totp_locked", user.id.as_str())
            .ip(ip)
            .data(serde_json::json!({"until": now + LOCKOUT}));
        let mut tx = p.store.write().await?;
        if tx.totp_failed(&user.id, MAX_FAILURES, now + LOCKOUT).await? {
            tx.audit(lock);
        }
        tx.commit().await?;
    }
    Ok(accepted)
}

/// The code step: a code from the app, or one of the recovery codes.
pub async fn second_factor(p: &Provider, user: &User, code: &str, ip: Option<String>, now: i64) -> Result<bool, StoreError> {
    if looks_like_recovery_code(code) {
        use_recovery_code(p, user, code, ip, now).await
    } else {
        check(p, user, code, false, ip, now).await
    }
}

/// Step-up: the signed-in session passes a TOTP code (or, `enrolling`, the first code of the
/// authenticator it just set up); from then on it counts as a two-factor session.
pub async fn step_up(
    p: &Provider,
    session: &portico_store::SsoSession,
    user: &User,
    code: &str,
    enrolling: bool,
    ip: Option<String>,
    now: i64,
) -> Result<bool, StoreError> {
    let passed = if enrolling {
        // Setting up a first factor here; a user who has one steps up with it instead.
        crate::enrolment::may_change_factors(p, session, now).await? == crate::enrolment::FactorChange::Allowed && check(p, user, code, true, ip, now).await?
    } else {
        second_factor(p, user, code, ip, now).await?
    };
    if !passed {
        return Ok(false);
    }
    crate::login::add_factor(&p.store, session, portico_model::Amr::Otp).await?;
    Ok(true)
}

/// Recovery codes made at a time.
pub const RECOVERY_CODES: usize = 10;

/// A recovery code as typed: case, spaces and dashes do not matter.
fn normalize_recovery(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).collect()
}

/// Whether what was typed at the code step is a recovery code rather than a TOTP code.
pub fn looks_like_recovery_code(code: &str) -> bool {
    normalize_recovery(code).len() == 10 && !code.trim().bytes().all(|b| b.is_ascii_digit())
}

/// Makes the user's recovery codes anew (the old ones stop working): ten codes of 50 random bits,
/// `xxxxx-xxxxx`, returned once and stored only as keyed hashes (HMAC under the KEK).
pub async fn new_recovery_codes(p: &Provider, user: &UserId, ip: Option<String>, now: i64) -> Result<Vec<String>, StoreError> {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let bytes = crate::random::bytes::<10>();
            let chars: String = bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect();
            format!("{}-{}", &chars[..5], &chars[5..])
        })
        .collect();
    let hashes: Vec<String> = codes.iter().map(|c| p.kek.hash_recovery_code(&normalize_recovery(c))).collect();
    let event = AuditEvent::new(now, "mfa.recovery_codes_created", user.as_str()).ip(ip);
    let mut tx = p.store.write().await?;
    tx.replace_recovery_codes(user, &hashes, now).await?;
    tx.audit(event);
    tx.commit().await?;
    Ok(codes)
}

/// Spends a recovery code in place of a TOTP code; audited with how many are left.
pub async fn use_recovery_code(p: &Provider, user: &User, code: &str, ip: Option<String>, now: i64) -> Result<bool, StoreError> {
    let normalized = normalize_recovery(code);
    let (left, _) = p.store.recovery_codes_left(&user.id).await?;
    let event = AuditEvent::new(now, "mfa.recovery_code_used", user.id.as_str())
        .ip(ip.clone())
        .data(serde_json::json!({"left": left - 1}));
    // Codes made before per-purpose keys are stored under the old key: found under either.
    let mut tx = p.store.write().await?;
    let mut used = tx.use_recovery_code(&user.id, &p.kek.hash_recovery_code(&normalized), now).await?;
    if !used {
        used = tx.use_recovery_code(&user.id, &p.kek.v1_recovery_code_hash(&normalized), now).await?;
    }
    if used {
        tx.audit(event);
    }
    tx.commit().await?;
    if !used {
        p.writer.record(AuditEvent::new(now, "mfa.recovery_code_refused", user.id.as_str()).ip(ip));
    }
    Ok(used)
}

/// Removes the user's authenticator.
pub async fn remove(p: &Provider, user: &UserId, ip: Option<String>, now: i64) -> Result<bool, StoreError> {
    let event = AuditEvent::new(now, "mfa.totp_removed", user.as_str()).ip(ip);
    let mut tx = p.store.write().await?;
    let removed = tx.remove_totp(user).await?;
    if removed {
        tx.audit(event);
    }
    tx.commit().await?;
    Ok(removed)
}

/// How many of the user's recovery codes are left, and when one was last used.
pub async fn recovery_codes_left(p: &Provider, user: &UserId) -> Result<(i64, Option<i64>), StoreError> {
    p.store.recovery_codes_left(user).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> TOTP {
        TOTP::new_unchecked(Algorithm::SHA1, 6, 1, 30, b"12345678901234567890".to_vec(), None, "x".into())
    }

    #[test]
    fn rfc_6238_test_vector() {
        // RFC 6238 Appendix B, SHA-1, T = 59 s: 94287082 (8 digits); its last six digits.
        assert_eq!(t().generate(59), "287082");
        assert_eq!(t().generate(1_111_111_109), "081804");
    }

    #[test]
    fn a_step_either_side_and_no_further() {
        let now = 1_111_111_109;
        let code = t().generate(now as u64);
        let step = now / STEP;
        assert_eq!(matching_step(&t(), &code, now), Some(step));
        assert_eq!(matching_step(&t(), &code, now + STEP), Some(step), "one step late");
        assert_eq!(matching_step(&t(), &code, now - STEP), Some(step), "one step early");
        assert_eq!(matching_step(&t(), &code, now + 2 * STEP), None);
        assert_eq!(matching_step(&t(), &code, now - 2 * STEP), None);
        for bad in ["", "12345", "1234567", "abcdef", "081 04"] {
            assert_eq!(matching_step(&t(), bad, now), None, "{bad:?}");
        }
    }
}
