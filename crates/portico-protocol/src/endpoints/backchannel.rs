//! OpenID Connect Back-Channel Logout 1.0, the provider's side: what a queued notice becomes
//! (a freshly signed logout token for the client's URI, or nothing when the client no longer wants
//! one or the retry window has passed) and what an attempt's outcome does to it (done, or due
//! again after an exponential backoff capped at a minute). Every outcome is audited. The HTTP
//! request itself is the server's.

use crate::keys::KeyError;
use crate::provider::Provider;
use crate::random;
use crate::snapshot::Snapshot;
use portico_model::Client;
use portico_store::{AuditEvent, LogoutNotice, Store, StoreError};

/// The event a logout token carries (§2.4).
pub const EVENT: &str = portico_claims::BACKCHANNEL_LOGOUT_EVENT;
/// The JWT `typ` of a logout token (§2.4: explicit typing).
pub const TYP: &str = portico_claims::LOGOUT_TOKEN_TYP;
/// A logout token's lifetime: long enough for clock skew, short enough not to be worth replaying.
pub const TOKEN_TTL: i64 = 120;
/// The longest wait between two attempts.
pub const MAX_BACKOFF: i64 = 60;

pub use portico_claims::LogoutClaims;

/// Signs a logout token for `client` (with the client's ID token algorithm, so the key the
/// client already verifies ID tokens with verifies this).
pub fn logout_token(p: &Provider, client: &Client, sid: &str, sub: &str, now: i64) -> Result<String, KeyError> {
    let claims = LogoutClaims {
        iss: p.issuer.clone(),
        sub: Some(sub.to_owned()),
        aud: client.id.as_str().to_owned(),
        iat: now,
        exp: now + TOKEN_TTL,
        jti: random::id("lgt_"),
        sid: Some(sid.to_owned()),
        events: serde_json::json!({ EVENT: {} }),
        nonce: None,
    };
    p.keys().sign(client.signing_alg, TYP, &claims, now)
}

/// Seconds to wait after failed attempt number `attempts` (1, 2, 4, … capped at [`MAX_BACKOFF`]).
pub fn backoff(attempts: i64) -> i64 {
    (1i64 << (attempts.clamp(1, 7) - 1)).min(MAX_BACKOFF)
}

/// What to do with a claimed notice.
#[derive(Debug)]
pub enum Delivery {
    /// POST `logout_token` to `uri`.
    Send { uri: String, logout_token: String },
    /// Nothing to send now: the notice was retired or rescheduled (and why audited).
    Nothing,
}

fn event(config: &Snapshot, n: &LogoutNotice, kind: &str, now: i64) -> AuditEvent {
    let product = config.client(&n.client_id).map(|e| e.client.product.as_str().to_owned());
    let mut e = AuditEvent::new(now, kind, "system").data(serde_json::json!({
        "client_id": n.client_id, "sid": n.sid, "user": n.subject, "reason": n.reason, "attempt": n.attempts,
    }));
    e.product = product;
    e
}

/// Turns a claimed notice into a request, or retires it: its client is gone or no longer has a
/// back-channel logout URI, or the retry window (`Settings::logout_window`) has passed.
pub async fn prepare(p: &Provider, n: &LogoutNotice, now: i64) -> Result<Delivery, StoreError> {
    let config = p.config();
    let target = config
        .client(&n.client_id)
        .and_then(|e| e.client.backchannel_logout_uri.clone().map(|u| (e.client.clone(), u)));
    let retire = |why: &str| {
        let mut e = event(&p.config(), n, "logout.abandoned", now);
        e.data["why"] = why.into();
        e
    };
    let (client, uri) = match target {
        None => {
            finish(&p.store, n, retire("the client no longer has a back-channel logout URI")).await?;
            return Ok(Delivery::Nothing);
        }
        Some(t) => t,
    };
    if now > n.created_at + p.settings.logout_window {
        finish(&p.store, n, retire("the retry window passed")).await?;
        return Ok(Delivery::Nothing);
    }
    match logout_token(p, &client, &n.sid, &n.subject, now) {
        Ok(logout_token) => Ok(Delivery::Send { uri, logout_token }),
        Err(e) => {
            // No key to sign with right now (a rotation in progress): try again later.
            record(p, n, Err(format!("signing failed: {e}")), now).await?;
            Ok(Delivery::Nothing)
        }
    }
}

/// Records an attempt's outcome: `Ok(status)` for an HTTP answer, `Err` for no answer. A 2xx
/// delivers the notice (§2.8: 200, some frameworks answer 204); anything else is tried again after
/// [`backoff`], unless that would pass the retry window, which gives it up.
pub async fn record(p: &Provider, n: &LogoutNotice, outcome: Result<u16, String>, now: i64) -> Result<(), StoreError> {
    let failure = match outcome {
        Ok(status) if (200..300).contains(&status) => {
            let mut e = event(&p.config(), n, "logout.delivered", now);
            e.data["status"] = status.into();
            return finish(&p.store, n, e).await;
        }
        Ok(status) => format!("HTTP {status}"),
        Err(e) => e,
    };
    let next = now + backoff(n.attempts);
    if next > n.created_at + p.settings.logout_window {
        let mut e = event(&p.config(), n, "logout.abandoned", now);
        e.data["why"] = "the retry window passed".into();
        e.data["error"] = failure.into();
        return finish(&p.store, n, e).await;
    }
    let mut e = event(&p.config(), n, "logout.failed", now);
    e.data["error"] = failure.clone().into();
    e.data["next_attempt_at"] = next.into();
    let mut tx = p.store.write().await?;
    tx.retry_logout(&n.sid, next, &failure).await?;
    tx.audit(e);
    tx.commit().await?;
    Ok(())
}

/// The notice leaves the outbox; `outcome` (delivered, abandoned) enters the audit log with it.
async fn finish(store: &Store, n: &LogoutNotice, outcome: AuditEvent) -> Result<(), StoreError> {
    let mut tx = store.write().await?;
    tx.finish_logout(&n.sid).await?;
    tx.audit(outcome);
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_stops_at_a_minute() {
        let waits: Vec<i64> = (1..=9).map(backoff).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(0), 1);
        assert_eq!(backoff(1_000), 60);
    }
}
