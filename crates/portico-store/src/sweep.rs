//! The sweep of what has expired.

use crate::sessions::SWEEP_BATCH;
use crate::{Result, Store, on_pool};

impl Store {
    /// Deletes what has expired: the states of browser flows (`pending`), codes
    /// and hand-off codes a day after they expired (a replay within the day is still recognised),
    /// revoked-token records once the token would have expired anyway, refresh tokens a day past
    /// their expiry, and throttle counters that are neither blocking nor remembered (`now_ms`,
    /// `forget_ms`: milliseconds). At most [`SWEEP_BATCH`] rows of a table at a time, each table
    /// in its own short statement on an index, so a backlog never holds the writer for long.
    /// Returns how many rows went.
    pub async fn sweep_expired(&self, now: i64, now_ms: i64, forget_ms: i64) -> Result<u64> {
        let day_ago = now - 86_400;
        // (statement, the time it compares with): each deletes one batch of one table.
        let statements: [(&str, i64); 5] = [
            (
                "DELETE FROM pending WHERE (kind, key) IN (SELECT kind, key FROM pending WHERE expires_at <= $1 LIMIT $2)",
                now,
            ),
            (
                "DELETE FROM auth_codes WHERE hash IN (SELECT hash FROM auth_codes WHERE expires_at < $1 LIMIT $2)",
                day_ago,
            ),
            (
                "DELETE FROM handoff_codes WHERE hash IN (SELECT hash FROM handoff_codes WHERE expires_at < $1 LIMIT $2)",
                day_ago,
            ),
            (
                "DELETE FROM revoked_tokens WHERE jti IN (SELECT jti FROM revoked_tokens WHERE expires_at < $1 LIMIT $2)",
                now,
            ),
            (
                "DELETE FROM refresh_tokens WHERE hash IN (SELECT hash FROM refresh_tokens WHERE expires_at < $1 LIMIT $2)",
                day_ago,
            ),
        ];
        let mut deleted = 0;
        for (sql, at) in statements {
            deleted += on_pool!(self, pool => sqlx::query(sql).bind(at).bind(SWEEP_BATCH).execute(pool).await.map(|r| r.rows_affected()))?;
        }
        deleted += on_pool!(self, pool => sqlx::query(
            "DELETE FROM throttle WHERE key IN (SELECT key FROM throttle WHERE last_failure < $1 AND blocked_until <= $2 LIMIT $3)")
            .bind(now_ms - forget_ms).bind(now_ms).bind(SWEEP_BATCH).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(deleted)
    }
}
