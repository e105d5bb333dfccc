//! The short-lived states of browser flows (`pending`): each row is named by a kind and a key (the
//! hash of a random handle, made by the protocol), holds that kind's JSON, and is dead once
//! `expires_at` has passed. The protocol's `interaction::pending` is the only caller.

use crate::{Result, Store, on_pool, on_read};

impl Store {
    /// Stores (or replaces) the state `kind`/`key` until `expires_at`.
    pub async fn put_pending(&self, kind: &str, key: &str, data: &str, expires_at: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query("INSERT INTO pending (kind, key, data, expires_at) VALUES ($1, $2, $3, $4)
                                            ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at")
            .bind(kind).bind(key).bind(data).bind(expires_at).execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Stores the state `kind`/`key` until `expires_at` unless a live one is there: `true` when
    /// this call stored it. Of two concurrent callers only one stores it (the row's uniqueness
    /// decides); a dead state in the way is replaced.
    pub async fn put_pending_once(&self, kind: &str, key: &str, data: &str, expires_at: i64, now: i64) -> Result<bool> {
        let n = on_pool!(self, pool => sqlx::query("INSERT INTO pending (kind, key, data, expires_at) VALUES ($1, $2, $3, $4)
                                            ON CONFLICT (kind, key) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at
                                            WHERE pending.expires_at <= $5")
            .bind(kind).bind(key).bind(data).bind(expires_at).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// The live state `kind`/`key`, left in place.
    pub async fn pending(&self, kind: &str, key: &str, now: i64) -> Result<Option<String>> {
        let row: Option<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT data FROM pending WHERE kind = $1 AND key = $2 AND expires_at > $3")
            .bind(kind).bind(key).bind(now).fetch_optional(pool).await)?;
        Ok(row.map(|r| r.0))
    }

    /// Takes the live state `kind`/`key` out, once: of two concurrent takers only one gets it.
    pub async fn take_pending(&self, kind: &str, key: &str, now: i64) -> Result<Option<String>> {
        let row: Option<(String,)> = on_pool!(self, pool => sqlx::query_as(
            "DELETE FROM pending WHERE kind = $1 AND key = $2 AND expires_at > $3 RETURNING data")
            .bind(kind).bind(key).bind(now).fetch_optional(pool).await)?;
        Ok(row.map(|r| r.0))
    }

    /// Takes the live state `kind`/`key` out only if it still holds `data`: a caller that decided
    /// on what it read cannot take a state that changed since (another step moved it on).
    pub async fn take_pending_if(&self, kind: &str, key: &str, data: &str, now: i64) -> Result<bool> {
        let n = on_pool!(self, pool => sqlx::query(
            "DELETE FROM pending WHERE kind = $1 AND key = $2 AND data = $3 AND expires_at > $4")
            .bind(kind).bind(key).bind(data).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Replaces the live state `kind`/`key` with `new` only if it still holds `old`: of two
    /// callers that read the same state, one moves it on.
    pub async fn replace_pending_if(&self, kind: &str, key: &str, old: &str, new: &str, now: i64) -> Result<bool> {
        let n = on_pool!(self, pool => sqlx::query(
            "UPDATE pending SET data = $4 WHERE kind = $1 AND key = $2 AND data = $3 AND expires_at > $5")
            .bind(kind).bind(key).bind(old).bind(new).bind(now).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Removes the state `kind`/`key`, live or not.
    pub async fn forget_pending(&self, kind: &str, key: &str) -> Result<()> {
        on_pool!(self, pool => sqlx::query("DELETE FROM pending WHERE kind = $1 AND key = $2")
            .bind(kind).bind(key).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}
