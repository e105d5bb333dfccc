//! Counters of failed attempts for sign-in throttling, keyed by the caller's choice of string.

use crate::{Result, Store, on_pool};

impl Store {
    /// Reserves one attempt on every key at once, before the password is checked: in one
    /// transaction, each key's attempt is counted (failures before `forget_before` forgotten
    /// first) and its next `blocked_until` set to `block(failures)` — unless a key is blocked at
    /// `now`, and then nothing is counted and the latest `blocked_until` is returned as `Err`.
    /// Concurrent reservations of a key serialize on its row, so no more attempts pass than the
    /// limits let through one at a time. Returns each key's count and next time.
    pub async fn throttle_reserve(&self, keys: &[(&str, &(dyn Fn(i64) -> i64 + Sync))], now: i64, forget_before: i64) -> Result<Result<Vec<(i64, i64)>, i64>> {
        let out = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut counted = Vec::with_capacity(keys.len());
            let mut blocked = 0i64;
            for (key, block) in keys {
                // `blocked_until` is left as it was: RETURNING shows whether this key was blocked.
                let (failures, was_until): (i64, i64) = sqlx::query_as(
                    "INSERT INTO throttle (key, failures, last_failure) VALUES ($1, 1, $2)
                     ON CONFLICT (key) DO UPDATE SET
                       failures = CASE WHEN throttle.blocked_until > $2 THEN throttle.failures
                                       WHEN throttle.last_failure < $3 THEN 1 ELSE throttle.failures + 1 END,
                       last_failure = CASE WHEN throttle.blocked_until > $2 THEN throttle.last_failure ELSE excluded.last_failure END
                     RETURNING failures, blocked_until")
                    .bind(*key).bind(now).bind(forget_before).fetch_one(&mut *tx).await?;
                if was_until > now {
                    blocked = blocked.max(was_until);
                }
                counted.push((failures, block(failures)));
            }
            if blocked > 0 {
                tx.rollback().await?;
                Err(blocked)
            } else {
                for ((key, _), (_, until)) in keys.iter().zip(&counted) {
                    sqlx::query("UPDATE throttle SET blocked_until = $2 WHERE key = $1").bind(*key).bind(*until).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(counted)
            }
        });
        Ok(out)
    }

    /// Gives back one reserved attempt of `key` (it turned out to be a success): one failure
    /// fewer, and the next attempt no later than `block(failures)` says.
    pub async fn throttle_forgive(&self, key: &str, block: &(dyn Fn(i64) -> i64 + Sync)) -> Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let left: Option<(i64,)> = sqlx::query_as("UPDATE throttle SET failures = failures - 1 WHERE key = $1 AND failures > 0 RETURNING failures")
                .bind(key).fetch_optional(&mut *tx).await?;
            if let Some((failures,)) = left {
                sqlx::query("UPDATE throttle SET blocked_until = CASE WHEN blocked_until > $2 THEN $2 ELSE blocked_until END WHERE key = $1")
                    .bind(key).bind(block(failures)).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Forgets `key`'s failures (a successful sign-in).
    pub async fn throttle_clear(&self, key: &str) -> Result<()> {
        on_pool!(self, pool => sqlx::query("DELETE FROM throttle WHERE key = $1").bind(key).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}
