//! Users: the one identity. Disabling is a status change, never a delete.

use crate::tx::{Tx, on_tx};
use crate::{Result, Store, StoreError, conflict, on_pool, on_read, outbox::LogoutFilter};
use portico_model::{User, UserId, UserStatus};

/// A `users` row as read ([`COLUMNS`]).
#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    pub id: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub status: String,
    pub created_at: i64,
}
pub(crate) const COLUMNS: &str = "id, email, email_verified, name, status, created_at";

pub(crate) fn user(r: Row) -> User {
    User {
        id: UserId::new(r.id),
        email: r.email,
        email_verified: r.email_verified,
        name: r.name,
        status: UserStatus::parse(&r.status),
        created_at: r.created_at,
    }
}

/// Emails are unique case-insensitively.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

impl Store {
    /// The user with this email (any case) and their password hash.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<(User, Option<String>)>> {
        let sql = format!("SELECT {COLUMNS}, password_hash FROM users WHERE email_norm = $1");
        #[derive(sqlx::FromRow)]
        struct WithHash {
            #[sqlx(flatten)]
            user: Row,
            password_hash: Option<String>,
        }
        let row: Option<WithHash> = on_read!(self, pool => sqlx::query_as(&sql).bind(normalize_email(email)).fetch_optional(pool).await)?;
        Ok(row.map(|r| (user(r.user), r.password_hash)))
    }

    pub async fn user_by_id(&self, id: &UserId) -> Result<Option<User>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let row: Option<Row> = on_read!(self, pool => sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(pool).await)?;
        Ok(row.map(user))
    }

    pub async fn list_users(&self) -> Result<Vec<User>> {
        let sql = format!("SELECT {COLUMNS} FROM users ORDER BY email_norm");
        let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(user).collect())
    }

    pub async fn set_password_hash(&self, id: &UserId, hash: &str, now: i64) -> Result<()> {
        on_pool!(self, pool => sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(id.as_str()).bind(hash).bind(now).execute(pool).await.map(|_| ()))?;
        Ok(())
    }
}

impl Tx<'_> {
    /// Creates a user with `grants`; `Conflict` when the email is taken.
    pub async fn insert_user(&mut self, u: &User, password_hash: Option<&str>, grants: &[portico_model::Grant]) -> Result<()> {
        on_tx!(self, t => sqlx::query("INSERT INTO users (id, email, email_norm, email_verified, name, password_hash, status, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)")
            .bind(u.id.as_str()).bind(&u.email).bind(normalize_email(&u.email)).bind(u.email_verified)
            .bind(&u.name).bind(password_hash).bind(u.status.as_str()).bind(u.created_at)
            .execute(&mut **t).await.map(|_| ()).map_err(|e| conflict(e, "email")))?;
        for g in grants {
            self.put_grant(g).await?;
        }
        Ok(())
    }

    /// Marks a user's email as verified (they followed a link sent to it); whether it changed.
    pub async fn verify_email(&mut self, id: &UserId, email: &str, now: i64) -> Result<bool> {
        // Only the address the link was sent to: not one the user has since changed to.
        let changed = on_tx!(self, t => sqlx::query("UPDATE users SET email_verified = $3, updated_at = $4 WHERE id = $1 AND email_norm = $2 AND email_verified = $5")
            .bind(id.as_str()).bind(normalize_email(email)).bind(true).bind(now).bind(false).execute(&mut **t).await.map(|r| r.rows_affected()))?;
        Ok(changed > 0)
    }

    /// Sets a user's status. Disabling also ends their SSO and product sessions (queuing a logout
    /// notice for each one whose client `notify` accepts) and revokes every token family they hold,
    /// in the same transaction (invariant 4). Returns whether the status changed.
    pub async fn set_user_status(&mut self, id: &UserId, status: UserStatus, now: i64, notify: LogoutFilter<'_>) -> Result<bool> {
        let (changed, exists) = on_tx!(self, t => {
            let r = sqlx::query("UPDATE users SET status = $2, updated_at = $3 WHERE id = $1 AND status <> $2")
                .bind(id.as_str()).bind(status.as_str()).bind(now).execute(&mut **t).await?;
            let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE id = $1").bind(id.as_str()).fetch_optional(&mut **t).await?;
            (r.rows_affected() > 0, exists.is_some())
        });
        if !exists {
            return Err(StoreError::NotFound(format!("user {id}")));
        }
        if status == UserStatus::Disabled {
            let ended: Vec<(String, String)> = on_tx!(self, t => {
                sqlx::query("UPDATE sso_sessions SET ended_at = $2 WHERE user_id = $1 AND ended_at IS NULL")
                    .bind(id.as_str()).bind(now).execute(&mut **t).await?;
                sqlx::query("UPDATE token_families SET revoked_at = $2, revoked_reason = 'user_disabled' WHERE subject = $1 AND revoked_at IS NULL")
                    .bind(id.as_str()).bind(now).execute(&mut **t).await?;
                sqlx::query_as("UPDATE product_sessions SET ended_at = $2 WHERE ended_at IS NULL
                               AND sso_id IN (SELECT id FROM sso_sessions WHERE user_id = $1) RETURNING sid, client_id")
                    .bind(id.as_str()).bind(now).fetch_all(&mut **t).await?
            });
            self.queue_logouts(&ended, id.as_str(), "user_disabled", now, notify).await?;
        }
        Ok(changed)
    }
}
