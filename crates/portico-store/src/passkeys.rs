//! Passkeys (WebAuthn credentials): several per user, each named by its owner. The credential as
//! webauthn-rs keeps it (public key, signature counter) is stored as JSON; it holds no secret.

use crate::{
    Result, Store, StoreError,
    audit::{AuditEvent, append_in},
    on_pool, on_read,
};
use portico_model::UserId;

/// A stored passkey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasskeyRow {
    /// The credential ID, base64url without padding.
    pub id: String,
    pub user_id: UserId,
    pub name: String,
    /// webauthn-rs's `Passkey`, serialized.
    pub credential: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

type Row = (String, String, String, String, i64, Option<i64>);

fn row((id, user_id, name, credential, created_at, last_used_at): Row) -> PasskeyRow {
    PasskeyRow {
        id,
        user_id: UserId::new(&user_id),
        name,
        credential,
        created_at,
        last_used_at,
    }
}

const COLUMNS: &str = "credential_id, user_id, name, credential, created_at, last_used_at";

impl Store {
    /// Registers a passkey. A credential ID already registered (to anyone) is a conflict.
    pub async fn add_passkey(&self, p: &PasskeyRow, audit: &[AuditEvent]) -> Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let r = sqlx::query(
                "INSERT INTO passkeys (credential_id, user_id, name, credential, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (credential_id) DO NOTHING")
                .bind(&p.id).bind(p.user_id.as_str()).bind(&p.name).bind(&p.credential).bind(p.created_at)
                .execute(&mut *tx).await?;
            if r.rows_affected() == 0 {
                return Err(StoreError::Conflict("passkey".into()));
            }
            append_in!(&mut tx, self, audit);
            tx.commit().await?;
        });
        Ok(())
    }

    /// A user's passkeys, oldest first (those added in the same second by name: the order must not
    /// depend on random credential ids).
    pub async fn passkeys_of(&self, user: &UserId) -> Result<Vec<PasskeyRow>> {
        let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, name, credential_id"))
            .bind(user.as_str()).fetch_all(pool).await)?;
        Ok(rows.into_iter().map(row).collect())
    }

    pub async fn passkey(&self, credential_id: &str) -> Result<Option<PasskeyRow>> {
        let r: Option<Row> = on_read!(self, pool => sqlx::query_as(&format!("SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1"))
            .bind(credential_id).fetch_optional(pool).await)?;
        Ok(r.map(row))
    }

    /// Records a use: the credential as updated (its counter) and when.
    pub async fn passkey_used(&self, credential_id: &str, credential: &str, now: i64, audit: &[AuditEvent]) -> Result<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE passkeys SET credential = $2, last_used_at = $3 WHERE credential_id = $1")
                .bind(credential_id).bind(credential).bind(now).execute(&mut *tx).await?;
            append_in!(&mut tx, self, audit);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Renames one of the user's passkeys. Returns whether it was theirs.
    pub async fn rename_passkey(&self, user: &UserId, credential_id: &str, name: &str, audit: &[AuditEvent]) -> Result<bool> {
        self.change_passkey(user, credential_id, Some(name), audit).await
    }

    /// Removes one of the user's passkeys. Returns whether it was theirs.
    pub async fn remove_passkey(&self, user: &UserId, credential_id: &str, audit: &[AuditEvent]) -> Result<bool> {
        self.change_passkey(user, credential_id, None, audit).await
    }

    async fn change_passkey(&self, user: &UserId, credential_id: &str, rename: Option<&str>, audit: &[AuditEvent]) -> Result<bool> {
        let changed = on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let r = match rename {
                Some(name) => sqlx::query("UPDATE passkeys SET name = $3 WHERE credential_id = $1 AND user_id = $2")
                    .bind(credential_id).bind(user.as_str()).bind(name).execute(&mut *tx).await?,
                None => sqlx::query("DELETE FROM passkeys WHERE credential_id = $1 AND user_id = $2")
                    .bind(credential_id).bind(user.as_str()).execute(&mut *tx).await?,
            };
            let changed = r.rows_affected() > 0;
            if changed {
                append_in!(&mut tx, self, audit);
            }
            tx.commit().await?;
            changed
        });
        Ok(changed)
    }
}
