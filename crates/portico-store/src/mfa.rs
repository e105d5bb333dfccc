//! Second factors: TOTP authenticators (one per user, its secret sealed by the caller) and the
//! recovery codes that stand in for one.

use crate::tx::{Tx, on_tx};
use crate::{Result, Store, on_pool, on_read};
use portico_model::UserId;

/// A user's TOTP authenticator as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TotpCredential {
    /// The sealed secret.
    pub secret: String,
    /// `None` while the enrolment awaits its first code.
    pub confirmed_at: Option<i64>,
    pub last_step: i64,
    /// Codes are refused until then (after too many wrong ones in a row).
    pub locked_until: i64,
}

impl Store {
    /// Starts (or restarts) an enrolment: an unconfirmed authenticator. A confirmed one is kept
    /// until it is removed; returns false then.
    pub async fn start_totp(&self, user: &UserId, sealed_secret: &str, now: i64) -> Result<bool> {
        let r = on_pool!(self, pool => sqlx::query(
            "INSERT INTO totp_credentials (user_id, secret, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at, last_step = 0, failures = 0, locked_until = 0
               WHERE totp_credentials.confirmed_at IS NULL")
            .bind(user.as_str()).bind(sealed_secret).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(r > 0)
    }

    /// Replaces a user's sealed TOTP secret with the same secret sealed anew (`old` must still
    /// be what is stored: a concurrent change wins).
    pub async fn reseal_totp(&self, user: &UserId, old: &str, new: &str) -> Result<bool> {
        let r = on_pool!(self, pool => sqlx::query("UPDATE totp_credentials SET secret = $3 WHERE user_id = $1 AND secret = $2")
            .bind(user.as_str()).bind(old).bind(new).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(r > 0)
    }

    pub async fn totp_of(&self, user: &UserId) -> Result<Option<TotpCredential>> {
        let row: Option<(String, Option<i64>, i64, i64)> = on_read!(self, pool => sqlx::query_as(
            "SELECT secret, confirmed_at, last_step, locked_until FROM totp_credentials WHERE user_id = $1")
            .bind(user.as_str()).fetch_optional(pool).await)?;
        Ok(row.map(|(secret, confirmed_at, last_step, locked_until)| TotpCredential {
            secret,
            confirmed_at,
            last_step,
            locked_until,
        }))
    }

    /// How many recovery codes a user has left, and when one was last used.
    pub async fn recovery_codes_left(&self, user: &UserId) -> Result<(i64, Option<i64>)> {
        let row: (i64, Option<i64>) = on_read!(self, pool => sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE used_at IS NULL), MAX(used_at) FROM recovery_codes WHERE user_id = $1")
            .bind(user.as_str()).fetch_one(pool).await)?;
        Ok(row)
    }
}

impl Tx<'_> {
    /// Accepts a code's time step, once: true when `step` is later than every step accepted
    /// before (so a code is never good twice). `confirming` also confirms an enrolment in progress
    /// (and is the only way to); otherwise the authenticator must be confirmed already.
    pub async fn use_totp_step(&mut self, user: &UserId, step: i64, confirming: bool, now: i64) -> Result<bool> {
        let n = on_tx!(self, tx => if confirming {
            sqlx::query("UPDATE totp_credentials SET last_step = $2, confirmed_at = $3, failures = 0 WHERE user_id = $1 AND confirmed_at IS NULL AND last_step < $2")
                .bind(user.as_str()).bind(step).bind(now).execute(&mut **tx).await
        } else {
            sqlx::query("UPDATE totp_credentials SET last_step = $2, failures = 0 WHERE user_id = $1 AND confirmed_at IS NOT NULL AND last_step < $2 AND locked_until <= $3")
                .bind(user.as_str()).bind(step).bind(now).execute(&mut **tx).await
        }.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// Counts a wrong code; the `limit`-th in a row locks codes out until `lock_until` (and starts
    /// the count again). Returns whether this one locked it.
    pub async fn totp_failed(&mut self, user: &UserId, limit: i64, lock_until: i64) -> Result<bool> {
        on_tx!(self, tx => {
            let row: Option<(i64,)> = sqlx::query_as("UPDATE totp_credentials SET failures = failures + 1 WHERE user_id = $1 RETURNING failures")
                .bind(user.as_str()).fetch_optional(&mut **tx).await?;
            let locked = row.is_some_and(|(f,)| f >= limit);
            if locked {
                sqlx::query("UPDATE totp_credentials SET failures = 0, locked_until = $2 WHERE user_id = $1")
                    .bind(user.as_str()).bind(lock_until).execute(&mut **tx).await?;
            }
            Ok(locked)
        })
    }

    /// Removes a user's authenticator and recovery codes. Returns whether there was one.
    pub async fn remove_totp(&mut self, user: &UserId) -> Result<bool> {
        on_tx!(self, tx => {
            let r = sqlx::query("DELETE FROM totp_credentials WHERE user_id = $1").bind(user.as_str()).execute(&mut **tx).await?;
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user.as_str()).execute(&mut **tx).await?;
            Ok(r.rows_affected() > 0)
        })
    }

    /// Replaces a user's recovery codes with new ones (their keyed hashes).
    pub async fn replace_recovery_codes(&mut self, user: &UserId, hashes: &[String], now: i64) -> Result<()> {
        on_tx!(self, tx => {
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user.as_str()).execute(&mut **tx).await?;
            for h in hashes {
                sqlx::query("INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)")
                    .bind(user.as_str()).bind(h).bind(now).execute(&mut **tx).await?;
            }
            Ok(())
        })
    }

    /// Spends a recovery code, once: true when it was an unused code of this user.
    pub async fn use_recovery_code(&mut self, user: &UserId, hash: &str, now: i64) -> Result<bool> {
        let n = on_tx!(self, tx => sqlx::query("UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL")
            .bind(user.as_str()).bind(hash).bind(now).execute(&mut **tx).await.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }
}
