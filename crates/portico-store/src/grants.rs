//! Grants: (grantee, product, tenant scope) → roles. Revoking is a status change that also kills
//! the token families it let be issued.

use crate::tx::{Tx, on_tx};
use crate::{Result, Store, from_json, on_read, outbox::LogoutFilter};
use portico_model::{Grant, GrantScope, GrantStatus, Grantee, ProductSlug};

/// A `grants` row as stored ([`COLUMNS`]).
#[derive(sqlx::FromRow)]
pub(crate) struct Row {
    pub grantee: String,
    pub product: String,
    pub tenant: String,
    pub roles: String,
    pub status: String,
    pub granted_by: String,
    pub granted_at: i64,
    pub expires_at: Option<i64>,
}
pub(crate) const COLUMNS: &str = "grantee, product, tenant, roles, status, granted_by, granted_at, expires_at";

pub(crate) fn grant(r: Row) -> Result<Grant> {
    Ok(Grant {
        grantee: Grantee::from_key(&r.grantee),
        product: ProductSlug::new(r.product),
        scope: GrantScope::from_key(&r.tenant),
        roles: from_json(&r.roles, "grant roles")?,
        status: GrantStatus::parse(&r.status),
        granted_by: r.granted_by,
        granted_at: r.granted_at,
        expires_at: r.expires_at,
    })
}

impl Store {
    /// Every grant (any status) this grantee holds.
    pub async fn grants_of(&self, grantee: &Grantee) -> Result<Vec<Grant>> {
        let sql = format!("SELECT {COLUMNS} FROM grants WHERE grantee = $1 ORDER BY product, tenant");
        let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(&sql).bind(grantee.key()).fetch_all(pool).await)?;
        rows.into_iter().map(grant).collect()
    }

    /// This grantee's grants for one product.
    pub async fn grants_for(&self, grantee: &Grantee, product: &ProductSlug) -> Result<Vec<Grant>> {
        let sql = format!("SELECT {COLUMNS} FROM grants WHERE grantee = $1 AND product = $2");
        let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(&sql).bind(grantee.key()).bind(product.as_str()).fetch_all(pool).await)?;
        rows.into_iter().map(grant).collect()
    }

    pub async fn list_grants(&self) -> Result<Vec<Grant>> {
        let sql = format!("SELECT {COLUMNS} FROM grants ORDER BY grantee, product, tenant");
        let rows: Vec<Row> = on_read!(self, pool => sqlx::query_as(&sql).fetch_all(pool).await)?;
        rows.into_iter().map(grant).collect()
    }
}

impl Tx<'_> {
    /// Before a change to `grantee`'s grants: a client's are held in memory by a server on
    /// SQLite (`grant_cache`), so its change moves `config_version` (once per transaction), which
    /// other processes poll, and this process forgets them when it commits.
    async fn client_grant_changes(&mut self, grantee: &Grantee) -> Result<()> {
        if matches!(grantee, Grantee::Client(_)) && !self.client_grants_changed {
            self.bump_config_version().await?;
            self.client_grants_changed = true;
        }
        Ok(())
    }

    /// Creates or replaces a grant (making it active again).
    pub async fn put_grant(&mut self, g: &Grant) -> Result<()> {
        self.client_grant_changes(&g.grantee).await?;
        on_tx!(self, t => sqlx::query(
            "INSERT INTO grants (grantee, product, tenant, roles, status, granted_by, granted_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (grantee, product, tenant) DO UPDATE SET roles = excluded.roles, status = excluded.status,
               granted_by = excluded.granted_by, granted_at = excluded.granted_at, expires_at = excluded.expires_at,
               revoked_at = NULL, revoked_by = NULL")
            .bind(g.grantee.key()).bind(g.product.as_str()).bind(g.scope.key()).bind(crate::json(&g.roles)).bind(g.status.as_str())
            .bind(&g.granted_by).bind(g.granted_at).bind(g.expires_at)
            .execute(&mut **t).await.map(|_| ()))?;
        Ok(())
    }

    /// Revokes a grant and every token family issued under it (same grantee, product, tenant;
    /// for an all-tenants grant, every tenant's families); the product sessions that held them end,
    /// and those of clients `notify` accepts get a back-channel logout notice. Returns false when
    /// there was no active grant.
    pub async fn revoke_grant(
        &mut self,
        grantee: &Grantee,
        product: &ProductSlug,
        scope: &GrantScope,
        by: &str,
        now: i64,
        notify: LogoutFilter<'_>,
    ) -> Result<bool> {
        let who = grantee.key();
        let (who, product, scope) = (who.as_str(), product.as_str(), scope.key());
        self.client_grant_changes(grantee).await?;
        let revoked = on_tx!(self, t => sqlx::query("UPDATE grants SET status = 'revoked', revoked_at = $4, revoked_by = $5
                             WHERE grantee = $1 AND product = $2 AND tenant = $3 AND status = 'active'")
            .bind(who).bind(product).bind(scope).bind(now).bind(by).execute(&mut **t).await.map(|r| r.rows_affected()))?
            > 0;
        if !revoked {
            return Ok(false);
        }
        let ended: Vec<(String, String)> = on_tx!(self, t => {
            sqlx::query("UPDATE token_families SET revoked_at = $4, revoked_reason = 'grant_revoked'
                         WHERE subject = $1 AND product = $2 AND ($3 = '*' OR tenant = $3) AND revoked_at IS NULL")
                .bind(who).bind(product).bind(scope).bind(now).execute(&mut **t).await?;
            // The product sessions holding those families end, and with them every other family
            // issued in them: a product told to end a session must not find part of it alive.
            let ended = sqlx::query_as("UPDATE product_sessions SET ended_at = $4 WHERE ended_at IS NULL AND sid IN (
                           SELECT sid FROM token_families WHERE subject = $1 AND product = $2 AND ($3 = '*' OR tenant = $3)
                             AND revoked_at = $4 AND revoked_reason = 'grant_revoked' AND sid IS NOT NULL)
                           RETURNING sid, client_id")
                .bind(who).bind(product).bind(scope).bind(now).fetch_all(&mut **t).await?;
            sqlx::query("UPDATE token_families SET revoked_at = $3, revoked_reason = 'session_ended'
                         WHERE subject = $1 AND product = $2 AND revoked_at IS NULL
                           AND sid IN (SELECT sid FROM product_sessions WHERE ended_at IS NOT NULL)")
                .bind(who).bind(product).bind(now).execute(&mut **t).await?;
            ended
        });
        self.queue_logouts(&ended, who, "grant_revoked", now, notify).await?;
        Ok(true)
    }
}
