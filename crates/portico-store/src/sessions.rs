//! SSO sessions (the browser's session at Portico), product sessions (one client's login inside
//! one, its `sid`) and pending authorization requests, all durable so any node can serve them.

use crate::tx::{Tx, on_tx};
use crate::{Result, Store, on_pool, on_read, outbox::LogoutFilter};
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

/// A live SSO session as its user (or an administrator) sees it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SessionInfo {
    pub id: String,
    pub created_at: i64,
    pub last_seen: i64,
    pub auth_time: i64,
    pub user_agent: String,
    pub ip: String,
    pub expires_at: i64,
    pub products: Vec<ProductSessionInfo>,
}

/// A live product session inside an SSO session.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProductSessionInfo {
    pub sid: String,
    pub client_id: String,
    pub product: String,
    pub created_at: i64,
    pub last_seen: i64,
    pub ip: String,
    pub user_agent: String,
}

/// A product session about to be used: see [`Tx::product_session`].
#[derive(Clone, Debug)]
pub struct ProductSessionStart<'a> {
    pub sso_id: &'a str,
    pub client_id: &'a str,
    pub product: &'a str,
    pub new_sid: &'a Sid,
    pub ip: &'a str,
    pub user_agent: &'a str,
    /// The product has `single_session = true`.
    pub single: bool,
    pub now: i64,
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

/// One row of [`Store::sessions_of`]: an SSO session and, when it has any, one live product session.
#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    created_at: i64,
    last_seen: i64,
    auth_time: i64,
    user_agent: String,
    ip: String,
    expires_at: i64,
    sid: Option<String>,
    client_id: Option<String>,
    product: Option<String>,
    p_created_at: Option<i64>,
    p_last_seen: Option<i64>,
    p_ip: Option<String>,
    p_user_agent: Option<String>,
}

/// The most rows of one table a sweep deletes at a time.
pub const SWEEP_BATCH: i64 = 1000;

impl Store {
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

    /// Records that a live SSO session passed further factors (step-up): its `amr` and `acr`.
    pub async fn set_session_factors(&self, id: &str, amr: &[String], acr: &str) -> Result<()> {
        on_pool!(self, pool => sqlx::query("UPDATE sso_sessions SET amr = $2, acr = $3 WHERE id = $1 AND ended_at IS NULL")
            .bind(id).bind(crate::json(&amr)).bind(acr).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// A user's live SSO sessions, most recently seen first, each with its live product sessions.
    pub async fn sessions_of(&self, user: &UserId, now: i64) -> Result<Vec<SessionInfo>> {
        let rows: Vec<SessionRow> = on_read!(self, pool => sqlx::query_as(
            "SELECT s.id, s.created_at, s.last_seen, s.auth_time, s.user_agent, s.ip, s.expires_at,
                    p.sid, p.client_id, p.product, p.created_at AS p_created_at, p.last_seen AS p_last_seen, p.ip AS p_ip, p.user_agent AS p_user_agent
             FROM sso_sessions s LEFT JOIN product_sessions p ON p.sso_id = s.id AND p.ended_at IS NULL
             WHERE s.user_id = $1 AND s.ended_at IS NULL AND s.idle_expires_at > $2 AND s.expires_at > $2
             ORDER BY s.last_seen DESC, s.id, p.created_at")
            .bind(user.as_str()).bind(now).fetch_all(pool).await)?;
        let mut out: Vec<SessionInfo> = Vec::new();
        for r in rows {
            if out.last().is_none_or(|s| s.id != r.id) {
                out.push(SessionInfo {
                    id: r.id,
                    created_at: r.created_at,
                    last_seen: r.last_seen,
                    auth_time: r.auth_time,
                    user_agent: r.user_agent,
                    ip: r.ip,
                    expires_at: r.expires_at,
                    products: Vec::new(),
                });
            }
            if let (Some(sid), Some(client_id), Some(product), Some(created_at)) = (r.sid, r.client_id, r.product, r.p_created_at) {
                out.last_mut().expect("pushed").products.push(ProductSessionInfo {
                    sid,
                    client_id,
                    product,
                    created_at,
                    last_seen: r.p_last_seen.unwrap_or(created_at),
                    ip: r.p_ip.unwrap_or_default(),
                    user_agent: r.p_user_agent.unwrap_or_default(),
                });
            }
        }
        Ok(out)
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
}

impl Tx<'_> {
    pub async fn create_sso_session(&mut self, s: &NewSsoSession, now: i64) -> Result<()> {
        on_tx!(self, t => sqlx::query("INSERT INTO sso_sessions (id, token_hash, user_id, auth_time, amr, acr, created_at, last_seen, idle_expires_at, expires_at, user_agent, ip)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11)")
            .bind(&s.id).bind(&s.token_hash).bind(s.user_id.as_str()).bind(s.auth_time).bind(crate::json(&s.amr)).bind(&s.acr)
            .bind(now).bind(s.idle_expires_at).bind(s.expires_at).bind(&s.user_agent).bind(&s.ip)
            .execute(&mut **t).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends `user`'s SSO session `id`, its product sessions (queuing a logout notice for each one
    /// whose client `notify` accepts) and the token families issued in them. False when there was
    /// no such live session of that user.
    pub async fn end_sso_session(&mut self, id: &str, user: &UserId, now: i64, notify: LogoutFilter<'_>) -> Result<bool> {
        let ended = on_tx!(self, t => sqlx::query("UPDATE sso_sessions SET ended_at = $2 WHERE id = $1 AND user_id = $3 AND ended_at IS NULL")
            .bind(id).bind(now).bind(user.as_str()).execute(&mut **t).await.map(|r| r.rows_affected()))?
            > 0;
        if !ended {
            return Ok(false);
        }
        let sessions: Vec<(String, String)> = on_tx!(self, t => {
            let sessions = sqlx::query_as("UPDATE product_sessions SET ended_at = $2 WHERE sso_id = $1 AND ended_at IS NULL RETURNING sid, client_id")
                .bind(id).bind(now).fetch_all(&mut **t).await?;
            sqlx::query("UPDATE token_families SET revoked_at = $2, revoked_reason = 'logout'
                         WHERE revoked_at IS NULL AND sid IN (SELECT sid FROM product_sessions WHERE sso_id = $1)")
                .bind(id).bind(now).execute(&mut **t).await?;
            sessions
        });
        self.queue_logouts(&sessions, user.as_str(), "logout", now, notify).await?;
        Ok(true)
    }

    /// Ends every live SSO session of a user ("sign out everywhere"), with their product sessions
    /// (queuing logout notices for clients `notify` accepts) and the token families issued in
    /// them. Returns how many SSO sessions ended.
    pub async fn end_user_sessions(&mut self, user: &UserId, now: i64, notify: LogoutFilter<'_>) -> Result<usize> {
        self.end_sessions(user, "", "logout", now, notify).await
    }

    /// Replaces a user's password hash and ends every SSO session of theirs but `keep` (the one
    /// that changed it, if any) with its product sessions: their token families are revoked and
    /// their products told. Returns how many sessions ended.
    pub async fn replace_password(&mut self, user: &UserId, hash: &str, keep: Option<&str>, now: i64, notify: LogoutFilter<'_>) -> Result<usize> {
        on_tx!(self, t => sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(user.as_str()).bind(hash).bind(now).execute(&mut **t).await.map(|r| r.rows_affected()))?;
        self.end_sessions(user, keep.unwrap_or(""), "password_changed", now, notify).await
    }

    /// Ends a user's live SSO sessions except `except` (a session id, or "" for none), their
    /// product sessions and those sessions' token families, and queues the logout notices; the
    /// number of SSO sessions ended.
    async fn end_sessions(&mut self, user: &UserId, except: &str, reason: &str, now: i64, notify: LogoutFilter<'_>) -> Result<usize> {
        let user = user.as_str();
        let (ended, sessions): (Vec<(String,)>, Vec<(String, String)>) = on_tx!(self, t => {
            let ended = sqlx::query_as("UPDATE sso_sessions SET ended_at = $2 WHERE user_id = $1 AND id <> $3 AND ended_at IS NULL RETURNING id")
                .bind(user).bind(now).bind(except).fetch_all(&mut **t).await?;
            let sessions = sqlx::query_as(
                "UPDATE product_sessions SET ended_at = $2 WHERE ended_at IS NULL
                   AND sso_id IN (SELECT id FROM sso_sessions WHERE user_id = $1 AND id <> $3) RETURNING sid, client_id")
                .bind(user).bind(now).bind(except).fetch_all(&mut **t).await?;
            sqlx::query(
                "UPDATE token_families SET revoked_at = $2, revoked_reason = $4
                 WHERE revoked_at IS NULL AND sid IN (
                   SELECT p.sid FROM product_sessions p JOIN sso_sessions s ON s.id = p.sso_id WHERE s.user_id = $1 AND s.id <> $3)")
                .bind(user).bind(now).bind(except).bind(reason).execute(&mut **t).await?;
            (ended, sessions)
        });
        self.queue_logouts(&sessions, user, reason, now, notify).await?;
        Ok(ended.len())
    }

    /// The product session `s.client_id` authorizes in, inside SSO session `s.sso_id`: the live one
    /// (its last use, address and user agent updated), or a new one (`s.new_sid`) when there is
    /// none or the last one ended. For a `single_session` product the live sessions of that
    /// product in this SSO session end first, their families revoked and their clients told (when
    /// `notify` accepts them): a browser holds one session of such a product at a time.
    ///
    /// `None` when the SSO session has ended. Its row is locked (written unchanged) first, so a logout that
    /// ends it either commits before (and this starts nothing) or waits for this transaction (and
    /// then ends what it started, families included): nothing issued in a session outlives it.
    pub async fn product_session(&mut self, s: &ProductSessionStart<'_>, notify: LogoutFilter<'_>) -> Result<Option<Sid>> {
        let live: Option<(String,)> = on_tx!(self, t => sqlx::query_as(
            "UPDATE sso_sessions SET last_seen = last_seen WHERE id = $1 AND ended_at IS NULL RETURNING user_id")
            .bind(s.sso_id).fetch_optional(&mut **t).await)?;
        let Some((user,)) = live else { return Ok(None) };
        if s.single {
            let ended: Vec<(String, String)> = on_tx!(self, t => sqlx::query_as(
                "UPDATE product_sessions SET ended_at = $3 WHERE sso_id = $1 AND product = $2 AND ended_at IS NULL RETURNING sid, client_id")
                .bind(s.sso_id).bind(s.product).bind(s.now).fetch_all(&mut **t).await)?;
            if !ended.is_empty() {
                on_tx!(self, t => {
                    for (sid, _) in &ended {
                        sqlx::query("UPDATE token_families SET revoked_at = $2, revoked_reason = 'session_replaced' WHERE sid = $1 AND revoked_at IS NULL")
                            .bind(sid).bind(s.now).execute(&mut **t).await?;
                    }
                    Ok::<_, sqlx::Error>(())
                })?;
                self.queue_logouts(&ended, &user, "session_replaced", s.now, notify).await?;
            }
        }
        let (sid,): (String,) = on_tx!(self, t => sqlx::query_as("INSERT INTO product_sessions (sid, sso_id, client_id, product, created_at, last_seen, ip, user_agent) VALUES ($1, $2, $3, $4, $5, $5, $6, $7)
                     ON CONFLICT (sso_id, client_id) DO UPDATE SET
                       sid = CASE WHEN product_sessions.ended_at IS NULL THEN product_sessions.sid ELSE excluded.sid END,
                       created_at = CASE WHEN product_sessions.ended_at IS NULL THEN product_sessions.created_at ELSE excluded.created_at END,
                       ended_at = NULL, last_seen = excluded.last_seen, ip = excluded.ip, user_agent = excluded.user_agent
                     RETURNING sid")
            .bind(s.new_sid.as_str()).bind(s.sso_id).bind(s.client_id).bind(s.product).bind(s.now).bind(s.ip).bind(s.user_agent)
            .fetch_one(&mut **t).await)?;
        Ok(Some(Sid::new(sid)))
    }
}
