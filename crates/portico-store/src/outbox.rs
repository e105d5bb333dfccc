//! The back-channel logout outbox. Whatever ends a product session (logout, a revoked grant, a
//! disabled user) writes its notice here in the same transaction, so no ended session goes
//! untold, whatever crashes after the commit; a delivery worker on any node claims due notices.

use crate::tx::{Tx, on_tx};
use crate::{Result, Store, on_pool, on_read};

/// Which clients get back-channel logout notices (those with a back-channel logout URI).
pub type LogoutFilter<'a> = &'a (dyn Fn(&str) -> bool + Sync);

/// A notice owed to a client: product session `sid` of `subject` ended.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct LogoutNotice {
    pub sid: String,
    pub client_id: String,
    pub subject: String,
    /// Why the session ended: `logout`, `grant_revoked`, `user_disabled`.
    pub reason: String,
    pub created_at: i64,
    /// Attempts so far, this one included once claimed.
    pub attempts: i64,
}

impl Tx<'_> {
    /// Queues a notice for every ended product session (`sid`, `client_id`) whose client `notify`
    /// accepts; [`Tx::commit`] reports them and wakes the delivery worker.
    pub(crate) async fn queue_logouts(&mut self, ended: &[(String, String)], subject: &str, reason: &str, now: i64, notify: LogoutFilter<'_>) -> Result<()> {
        for (sid, client_id) in ended.iter().filter(|(_, c)| notify(c)) {
            let r = on_tx!(self, t => sqlx::query(
                "INSERT INTO logout_outbox (sid, client_id, subject, reason, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $5)
                 ON CONFLICT (sid) DO NOTHING",
            )
            .bind(sid).bind(client_id).bind(subject).bind(reason).bind(now)
            .execute(&mut **t).await.map(|r| r.rows_affected()))?;
            self.logouts += r as usize;
        }
        Ok(())
    }

    /// A notice is done with (delivered, or given up): it leaves the outbox (the caller audits its
    /// outcome).
    pub async fn finish_logout(&mut self, sid: &str) -> Result<()> {
        on_tx!(self, t => sqlx::query("DELETE FROM logout_outbox WHERE sid = $1").bind(sid).execute(&mut **t).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// An attempt failed: the notice is due again at `next_attempt_at`.
    pub async fn retry_logout(&mut self, sid: &str, next_attempt_at: i64, error: &str) -> Result<()> {
        on_tx!(self, t => sqlx::query("UPDATE logout_outbox SET next_attempt_at = $2, last_error = $3 WHERE sid = $1")
            .bind(sid).bind(next_attempt_at).bind(error).execute(&mut **t).await.map(|r| r.rows_affected()))?;
        Ok(())
    }
}

impl Store {
    /// Claims up to `limit` notices due at `now`: each is leased until `lease_until` (so another
    /// node or a restart retries it only if this attempt never reports) and its attempt counted.
    pub async fn claim_logouts(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<LogoutNotice>> {
        let rows: Vec<LogoutNotice> = on_pool!(self, pool => sqlx::query_as(
            "UPDATE logout_outbox SET next_attempt_at = $2, attempts = attempts + 1
             WHERE next_attempt_at <= $1 AND sid IN (SELECT sid FROM logout_outbox WHERE next_attempt_at <= $1 ORDER BY next_attempt_at LIMIT $3)
             RETURNING sid, client_id, subject, reason, created_at, attempts")
            .bind(now).bind(lease_until).bind(limit).fetch_all(pool).await)?;
        Ok(rows)
    }

    /// Notices not yet delivered, oldest first.
    pub async fn pending_logouts(&self) -> Result<Vec<LogoutNotice>> {
        let rows: Vec<LogoutNotice> = on_read!(self, pool => sqlx::query_as(
            "SELECT sid, client_id, subject, reason, created_at, attempts FROM logout_outbox ORDER BY created_at, sid")
            .fetch_all(pool).await)?;
        Ok(rows)
    }
}
