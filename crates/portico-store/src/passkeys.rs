//! Passkeys (WebAuthn credentials): several per user, each named by its owner. The credential as
//! webauthn-rs keeps it (public key, signature counter) is stored as JSON; it holds no secret.

use crate::tx::{Tx, on_tx};
use crate::{Result, Store, StoreError, on_read};
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

#[derive(sqlx::FromRow)]
struct Row {
    credential_id: String,
    user_id: String,
    name: String,
    credential: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

fn row(r: Row) -> PasskeyRow {
    PasskeyRow {
        id: r.credential_id,
        user_id: UserId::new(&r.user_id),
        name: r.name,
        credential: r.credential,
        created_at: r.created_at,
        last_used_at: r.last_used_at,
    }
}

const COLUMNS: &str = "credential_id, user_id, name, credential, created_at, last_used_at";

impl Store {
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
}

impl Tx<'_> {
    /// Registers a passkey. A credential ID already registered (to anyone) is a conflict.
    pub async fn add_passkey(&mut self, p: &PasskeyRow) -> Result<()> {
        let r = on_tx!(self, tx => sqlx::query(
            "INSERT INTO passkeys (credential_id, user_id, name, credential, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (credential_id) DO NOTHING")
            .bind(&p.id).bind(p.user_id.as_str()).bind(&p.name).bind(&p.credential).bind(p.created_at)
            .execute(&mut **tx).await.map(|r| r.rows_affected()))?;
        if r == 0 {
            return Err(StoreError::Conflict("passkey".into()));
        }
        Ok(())
    }

    /// Records a use: the credential as updated (its counter) and when.
    pub async fn passkey_used(&mut self, credential_id: &str, credential: &str, now: i64) -> Result<()> {
        on_tx!(self, tx => sqlx::query("UPDATE passkeys SET credential = $2, last_used_at = $3 WHERE credential_id = $1")
            .bind(credential_id).bind(credential).bind(now).execute(&mut **tx).await.map(|_| ()))?;
        Ok(())
    }

    /// Renames (`Some(name)`) or removes (`None`) one of the user's passkeys. Returns whether it
    /// was theirs.
    pub async fn change_passkey(&mut self, user: &UserId, credential_id: &str, rename: Option<&str>) -> Result<bool> {
        let n = on_tx!(self, tx => match rename {
            Some(name) => sqlx::query("UPDATE passkeys SET name = $3 WHERE credential_id = $1 AND user_id = $2")
                .bind(credential_id).bind(user.as_str()).bind(name).execute(&mut **tx).await,
            None => sqlx::query("DELETE FROM passkeys WHERE credential_id = $1 AND user_id = $2")
                .bind(credential_id).bind(user.as_str()).execute(&mut **tx).await,
        }.map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }
}
