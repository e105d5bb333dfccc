//! Consent records: the scope a user consented to for a client's tokens of a product.

use crate::tx::{Tx, on_tx};
use crate::{Result, Store, on_read};
use portico_model::UserId;

impl Store {
    /// The scope `user_id` consented to for `client_id`'s tokens of `product`, if any.
    pub async fn consent(&self, user_id: &UserId, client_id: &str, product: &str) -> Result<Option<String>> {
        let row: Option<(String,)> = on_read!(self, pool => sqlx::query_as(
            "SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2 AND product = $3")
            .bind(user_id.as_str()).bind(client_id).bind(product).fetch_optional(pool).await)?;
        Ok(row.map(|r| r.0))
    }
}

impl Tx<'_> {
    /// Records consent to `client_id` for `product`: the scope consented to before and `scope`
    /// together (a consent to more never takes back what was consented to already, nor the
    /// refresh tokens issued under it).
    pub async fn put_consent(&mut self, user_id: &UserId, client_id: &str, product: &str, scope: &str, now: i64) -> Result<()> {
        on_tx!(self, tx => {
            // The row exists first (an empty one for a first consent), so the UPDATE below locks
            // it: of two consents at once, even two first ones, the second waits and reads the
            // first's scope, and neither is lost.
            sqlx::query("INSERT INTO consents (user_id, client_id, product, scope, granted_at) VALUES ($1, $2, $3, '', $4)
                         ON CONFLICT (user_id, client_id, product) DO NOTHING")
                .bind(user_id.as_str()).bind(client_id).bind(product).bind(now).execute(&mut **tx).await?;
            let before: Option<(String,)> = sqlx::query_as(
                "UPDATE consents SET granted_at = $4 WHERE user_id = $1 AND client_id = $2 AND product = $3 RETURNING scope")
                .bind(user_id.as_str()).bind(client_id).bind(product).bind(now).fetch_optional(&mut **tx).await?;
            let all = union(before.as_ref().map_or("", |(s,)| s.as_str()), scope);
            sqlx::query("INSERT INTO consents (user_id, client_id, product, scope, granted_at) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (user_id, client_id, product) DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at")
                .bind(user_id.as_str()).bind(client_id).bind(product).bind(all).bind(now).execute(&mut **tx).await?;
        });
        Ok(())
    }
}

/// The scopes of `before` and then those of `added` not in it, space-separated.
fn union(before: &str, added: &str) -> String {
    portico_model::Scope::parse(before).union(&portico_model::Scope::parse(added)).to_string()
}
