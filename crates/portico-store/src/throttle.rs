//! Counters of failed attempts for sign-in throttling, keyed by the caller's choice of string.

use crate::{Result, Store, on_pool, on_read};

impl Store {
    /// In one read: the later `blocked_until` of `account` and `ip` (0 when neither is blocked or
    /// known), and whether `account` has failures counted.
    pub async fn throttle_state(&self, account: &str, ip: Option<&str>) -> Result<(i64, bool)> {
        let rows: Vec<(String, i64)> = on_read!(self, pool => sqlx::query_as("SELECT key, blocked_until FROM throttle WHERE key = $1 OR key = $2")
            .bind(account).bind(ip.unwrap_or(account)).fetch_all(pool).await)?;
        let until = rows.iter().map(|r| r.1).max().unwrap_or(0);
        Ok((until, rows.iter().any(|r| r.0 == account)))
    }

    /// Counts a failure for `key` (failures before `forget_before` are forgotten first) and sets
    /// when the next attempt may come to `block(failures)`. Returns the count and that time.
    pub async fn throttle_failed(&self, key: &str, now: i64, forget_before: i64, block: &(dyn Fn(i64) -> i64 + Sync)) -> Result<(i64, i64)> {
        let out = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let (failures,): (i64,) = sqlx::query_as(
                "INSERT INTO throttle (key, failures, last_failure) VALUES ($1, 1, $2)
                 ON CONFLICT (key) DO UPDATE SET
                   failures = CASE WHEN throttle.last_failure < $3 THEN 1 ELSE throttle.failures + 1 END,
                   last_failure = excluded.last_failure
                 RETURNING failures")
                .bind(key).bind(now).bind(forget_before).fetch_one(&mut *tx).await?;
            let until = block(failures);
            sqlx::query("UPDATE throttle SET blocked_until = $2 WHERE key = $1").bind(key).bind(until).execute(&mut *tx).await?;
            tx.commit().await?;
            (failures, until)
        });
        Ok(out)
    }

    /// Forgets `key`'s failures (a successful sign-in).
    pub async fn throttle_clear(&self, key: &str) -> Result<()> {
        on_pool!(self, pool => sqlx::query("DELETE FROM throttle WHERE key = $1").bind(key).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}
