//! Signing keys, stored with the private part encrypted (by the protocol crate) under the
//! key-encryption key. Rows are never deleted: a key's life is derived from `activate_at` and its
//! successor's.

use crate::tx::{Tx, on_tx};
use crate::{Result, Store, on_read};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    /// Encrypted private key (base64 of nonce ‖ ciphertext).
    pub private_enc: String,
    pub public_jwk: String,
    pub created_at: i64,
    /// When it starts signing; before that it is only published.
    pub activate_at: i64,
}

impl Store {
    /// All keys, oldest activation first.
    pub async fn list_keys(&self) -> Result<Vec<KeyRow>> {
        Ok(on_read!(self, pool => sqlx::query_as(
            "SELECT kid, alg, private_enc, public_jwk, created_at, activate_at FROM signing_keys ORDER BY activate_at, created_at, kid")
            .fetch_all(pool).await)?)
    }
}

impl Tx<'_> {
    pub async fn insert_key(&mut self, k: &KeyRow) -> Result<()> {
        on_tx!(self, tx => {
            sqlx::query("INSERT INTO signing_keys (kid, alg, private_enc, public_jwk, created_at, activate_at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(&k.kid).bind(&k.alg).bind(&k.private_enc).bind(&k.public_jwk).bind(k.created_at).bind(k.activate_at)
                .execute(&mut **tx).await?;
            // Key changes must reach every node's cache.
            sqlx::query(crate::config::BUMP_CONFIG_VERSION).execute(&mut **tx).await?;
            Ok(())
        })
    }
}
