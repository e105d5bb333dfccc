//! Hand-off codes (DESIGN.md `/oauth2/handoff`) and the tenant a user last chose per product
//! (written with each authorization code, see `issue_code`).

use crate::tx::{Tx, on_tx};
use crate::{Result, Store, on_read};
use portico_model::UserId;

/// A hand-off code as its redeemer consumed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoffRedemption {
    /// The product whose confidential clients may redeem it.
    pub target: String,
    pub data: String,
    pub expires_at: i64,
}

impl Store {
    /// The tenant a user last entered in a product.
    pub async fn last_tenant(&self, user: &UserId, product: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = on_read!(self, pool => sqlx::query_as("SELECT tenant FROM tenant_choices WHERE user_id = $1 AND product = $2")
            .bind(user.as_str()).bind(product).fetch_optional(pool).await)?;
        Ok(row.map(|r| r.0))
    }
}

impl Tx<'_> {
    /// Consumes a hand-off code, atomically: of any number of presentations exactly one gets it,
    /// whoever presents it (a code presented by the wrong client is spent all the same).
    pub async fn consume_handoff(&mut self, hash: &str, now: i64) -> Result<Option<HandoffRedemption>> {
        let row: Option<(String, String, i64)> = on_tx!(self, t => sqlx::query_as(
            "UPDATE handoff_codes SET consumed_at = $2 WHERE hash = $1 AND consumed_at IS NULL RETURNING target, data, expires_at")
            .bind(hash).bind(now).fetch_optional(&mut **t).await)?;
        Ok(row.map(|(target, data, expires_at)| HandoffRedemption { target, data, expires_at }))
    }

    pub async fn issue_handoff(&mut self, hash: &str, target: &str, data: &str, now: i64, expires_at: i64) -> Result<()> {
        on_tx!(self, tx => {
            sqlx::query("INSERT INTO handoff_codes (hash, target, data, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(hash).bind(target).bind(data).bind(now).bind(expires_at).execute(&mut **tx).await?;
            sqlx::query("DELETE FROM handoff_codes WHERE expires_at < $1").bind(now - 86_400).execute(&mut **tx).await?;
            Ok(())
        })
    }
}
