//! SSO sessions (the browser's session at Portico), product sessions (one client's login inside
//! one, its `sid`) and pending authorization requests, all durable so any node can serve them.

use crate::{
    Result, Store,
    audit::{AuditEvent, append_in},
    on_pool, on_read,
};
use portico_model::{Sid, UserId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewSsoSession {
    pub id: String,
    /// SHA-256 of the cookie value; the value itself is never stored.
    pub token_hash: String,
    pub user_id: UserId,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub idle_expires_at: i64,
    pub expires_at: i64,
    pub user_agent: String,
    pub ip: String,
}

/// A live SSO session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoSession {
    pub id: String,
    pub user_id: UserId,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub acr: String,
    pub last_seen: i64,
    pub expires_at: i64,
}

impl Store {
    pub async fn create_sso_session(&self, s: &NewSsoSession, now: i64, audit: &[AuditEvent]) -> Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO sso_sessions (id, token_hash, user_id, auth_time, amr, acr, created_at, last_seen, idle_expires_at, expires_at, user_agent, ip)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11)")
                .bind(&s.id).bind(&s.token_hash).bind(s.user_id.as_str()).bind(s.auth_time).bind(crate::json(&s.amr)).bind(&s.acr)
                .bind(now).bind(s.idle_expires_at).bind(s.expires_at).bind(&s.user_agent).bind(&s.ip)
                .execute(&mut *tx).await?;
            append_in!(&mut tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The live session behind a cookie: not ended, within its idle and absolute lifetimes, and
    /// its user active. Extends the idle expiry to `idle_until`.
    pub async fn live_sso_session(&self, token_hash: &str, now: i64, idle_until: i64) -> Result<Option<SsoSession>> {
        let row: Option<(String, String, i64, String, String, i64, i64)> = on_pool!(self, pool => sqlx::query_as(
            "UPDATE sso_sessions SET last_seen = $2, idle_expires_at = CASE WHEN $3 < expires_at THEN $3 ELSE expires_at END
             WHERE token_hash = $1 AND ended_at IS NULL AND idle_expires_at > $2 AND expires_at > $2
               AND user_id IN (SELECT id FROM users WHERE status = 'active')
             RETURNING id, user_id, auth_time, amr, acr, last_seen, expires_at")
            .bind(token_hash).bind(now).bind(idle_until).fetch_optional(pool).await)?;
        row.map(|(id, user_id, auth_time, amr, acr, last_seen, expires_at)| {
            Ok(SsoSession {
                id,
                user_id: UserId::new(user_id),
                auth_time,
                amr: crate::from_json(&amr, "amr")?,
                acr,
                last_seen,
                expires_at,
            })
        })
        .transpose()
    }

    /// Ends an SSO session, its product sessions and the token families issued in them.
    pub async fn end_sso_session(&self, id: &str, now: i64, audit: &[AuditEvent]) -> Result<bool> {
        let ended = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let r = sqlx::query("UPDATE sso_sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL").bind(id).bind(now).execute(&mut *tx).await?;
            sqlx::query("UPDATE product_sessions SET ended_at = $2 WHERE sso_id = $1 AND ended_at IS NULL").bind(id).bind(now).execute(&mut *tx).await?;
            sqlx::query("UPDATE token_families SET revoked_at = $2, revoked_reason = 'logout'
                         WHERE revoked_at IS NULL AND sid IN (SELECT sid FROM product_sessions WHERE sso_id = $1)")
                .bind(id).bind(now).execute(&mut *tx).await?;
            if r.rows_affected() > 0 {
                append_in!(&mut tx, audit);
            }
            tx.commit().await?;
            r.rows_affected() > 0
        });
        Ok(ended)
    }

    /// The live product session of `client_id` inside SSO session `sso_id`; a new one (new `sid`)
    /// when there is none or the last one ended.
    pub async fn product_session(&self, sso_id: &str, client_id: &str, product: &str, new_sid: &Sid, now: i64) -> Result<Sid> {
        let row: (String,) = on_pool!(self, pool => {
            sqlx::query("INSERT INTO product_sessions (sid, sso_id, client_id, product, created_at) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (sso_id, client_id) DO UPDATE SET sid = excluded.sid, created_at = excluded.created_at, ended_at = NULL
                           WHERE product_sessions.ended_at IS NOT NULL")
                .bind(new_sid.as_str()).bind(sso_id).bind(client_id).bind(product).bind(now).execute(pool).await?;
            sqlx::query_as("SELECT sid FROM product_sessions WHERE sso_id = $1 AND client_id = $2").bind(sso_id).bind(client_id).fetch_one(pool).await?
        });
        Ok(Sid::new(row.0))
    }

    /// Whether the product session `sid` is live (not ended, its SSO session not ended).
    pub async fn product_session_live(&self, sid: &str) -> Result<bool> {
        let row: Option<(i64,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT 1 FROM product_sessions p JOIN sso_sessions s ON s.id = p.sso_id
             WHERE p.sid = $1 AND p.ended_at IS NULL AND s.ended_at IS NULL")
            .bind(sid).fetch_optional(pool).await)?;
        Ok(row.is_some())
    }

    /// The SSO session of a live product session: the one a hand-off continues in.
    pub async fn sso_of_live_sid(&self, sid: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT s.id FROM product_sessions p JOIN sso_sessions s ON s.id = p.sso_id
             WHERE p.sid = $1 AND p.ended_at IS NULL AND s.ended_at IS NULL")
            .bind(sid).fetch_optional(pool).await)?;
        Ok(row.map(|r| r.0))
    }

    /// Stores a validated authorization request while the user logs in or consents.
    pub async fn put_auth_request(&self, id: &str, data: &str, expires_at: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query("INSERT INTO auth_requests (id, data, expires_at) VALUES ($1, $2, $3)
                                            ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at")
            .bind(id).bind(data).bind(expires_at).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn auth_request(&self, id: &str, now: i64) -> Result<Option<String>> {
        let row: Option<(String,)> = on_read!(self, pool => sqlx::query_as("SELECT data FROM auth_requests WHERE id = $1 AND expires_at > $2")
            .bind(id).bind(now).fetch_optional(pool).await)?;
        Ok(row.map(|r| r.0))
    }

    /// Removes a finished authorization request, and any that have expired.
    pub async fn finish_auth_request(&self, id: &str, now: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query("DELETE FROM auth_requests WHERE id = $1 OR expires_at <= $2").bind(id).bind(now).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn consent(&self, user_id: &UserId, client_id: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = on_read!(self, pool => sqlx::query_as("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2")
            .bind(user_id.as_str()).bind(client_id).fetch_optional(pool).await)?;
        Ok(row.map(|r| r.0))
    }

    pub async fn put_consent(&self, user_id: &UserId, client_id: &str, scope: &str, now: i64, audit: &[AuditEvent]) -> Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO consents (user_id, client_id, scope, granted_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at")
                .bind(user_id.as_str()).bind(client_id).bind(scope).bind(now).execute(&mut *tx).await?;
            append_in!(&mut tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }
}
