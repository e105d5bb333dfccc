//! Products, clients and tenants: the suite's configuration. Servers cache it in memory and reload
//! when `config_version` moves; every change bumps it in the same transaction.

use crate::tx::{Tx, on_tx};
use crate::{Result, Store, StoreError, from_json, json, on_read};
use portico_model::{Client, Product, Tenant};

/// Everything a server caches: the active products, clients (with their secret hashes) and tenants.
#[derive(Clone, Debug, Default)]
pub struct ConfigDocs {
    pub version: i64,
    pub products: Vec<Product>,
    pub clients: Vec<(Client, Option<String>)>,
    pub tenants: Vec<Tenant>,
}

/// One change to the suite's configuration. Removal is a state change (`status = 'removed'`).
#[derive(Clone, Debug)]
pub enum ConfigChange {
    UpsertProduct(Product),
    /// The client, and a new secret hash (`None` keeps the stored one).
    UpsertClient(Client, Option<String>),
    UpsertTenant(Tenant),
    RemoveProduct(String),
    RemoveClient(String),
    RemoveTenant(String),
    /// A new user and their password hash.
    CreateUser(portico_model::User, Option<String>),
    /// A user's new name and (when given) password hash.
    UpdateUser(portico_model::UserId, String, Option<String>),
    PutGrant(portico_model::Grant),
}

impl Store {
    pub async fn config_version(&self) -> Result<i64> {
        let v: (String,) = on_read!(self, pool =>
            sqlx::query_as("SELECT value FROM meta WHERE key = 'config_version'").fetch_one(pool).await)?;
        v.0.parse().map_err(|_| StoreError::Corrupt("config_version".into()))
    }

    /// The active configuration with its version, read in one transaction.
    pub async fn load_config(&self) -> Result<ConfigDocs> {
        let (version, products, clients, tenants): (Vec<(String,)>, Vec<(String,)>, Vec<(String, Option<String>)>, Vec<(String,)>) = on_read!(self, pool => {
            let mut tx = pool.begin().await?;
            let v = sqlx::query_as("SELECT value FROM meta WHERE key = 'config_version'").fetch_all(&mut *tx).await?;
            let p = sqlx::query_as("SELECT doc FROM products WHERE status = 'active' ORDER BY slug").fetch_all(&mut *tx).await?;
            let c = sqlx::query_as("SELECT doc, secret_hash FROM clients WHERE status = 'active' ORDER BY id").fetch_all(&mut *tx).await?;
            let t = sqlx::query_as("SELECT doc FROM tenants WHERE status = 'active' ORDER BY slug").fetch_all(&mut *tx).await?;
            tx.commit().await?;
            (v, p, c, t)
        });
        Ok(ConfigDocs {
            version: version.first().and_then(|v| v.0.parse().ok()).unwrap_or(0),
            products: products.iter().map(|(d,)| from_json(d, "product")).collect::<Result<_>>()?,
            clients: clients.iter().map(|(d, h)| Ok((from_json(d, "client")?, h.clone()))).collect::<Result<_>>()?,
            tenants: tenants.iter().map(|(d,)| from_json(d, "tenant")).collect::<Result<_>>()?,
        })
    }

    /// Tenants including removed ones' slugs, so `apply` keeps a tenant's opaque id stable.
    pub async fn tenant_ids_by_slug(&self) -> Result<Vec<(String, String)>> {
        Ok(on_read!(self, pool => sqlx::query_as("SELECT slug, id FROM tenants").fetch_all(pool).await)?)
    }
}

/// Moves `config_version`, which every process polls to reload what it holds in memory.
pub(crate) const BUMP_CONFIG_VERSION: &str = "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE key = 'config_version'";

impl Tx<'_> {
    /// Moves `config_version` in this transaction (see [`BUMP_CONFIG_VERSION`]).
    pub(crate) async fn bump_config_version(&mut self) -> Result<()> {
        on_tx!(self, t => sqlx::query(BUMP_CONFIG_VERSION).execute(&mut **t).await.map(|_| ()))?;
        Ok(())
    }

    /// Applies configuration changes and bumps `config_version`: with the caller's audit events,
    /// everything commits or nothing. Call it first in its transaction: it takes the write lock
    /// before anything else, so concurrent appliers serialize instead of deadlocking.
    pub async fn apply_config(&mut self, changes: &[ConfigChange], now: i64) -> Result<()> {
        self.bump_config_version().await?;
        // Configuration can end client grants (a removed tenant takes its grants along): the
        // ones held in memory are forgotten when this commits.
        self.client_grants_changed = true;
        for change in changes {
            apply_change(self, change, now).await?;
        }
        Ok(())
    }
}

/// One change of the configuration, in the open transaction.
async fn apply_change(tx: &mut Tx<'_>, change: &ConfigChange, now: i64) -> Result<()> {
    if let ConfigChange::PutGrant(g) = change {
        return tx.put_grant(g).await;
    }
    on_tx!(tx, tx => {
        match change {
            ConfigChange::UpsertProduct(p) => {
                sqlx::query("INSERT INTO products (slug, doc, status, updated_at) VALUES ($1, $2, 'active', $3)
                             ON CONFLICT (slug) DO UPDATE SET doc = excluded.doc, status = 'active', updated_at = excluded.updated_at")
                    .bind(p.slug.as_str()).bind(json(p)).bind(now).execute(&mut **tx).await?;
            }
            ConfigChange::UpsertClient(c, secret_hash) => {
                sqlx::query("INSERT INTO clients (id, product, doc, secret_hash, status, updated_at) VALUES ($1, $2, $3, $4, 'active', $5)
                             ON CONFLICT (id) DO UPDATE SET product = excluded.product, doc = excluded.doc,
                               secret_hash = COALESCE(excluded.secret_hash, clients.secret_hash), status = 'active', updated_at = excluded.updated_at")
                    .bind(c.id.as_str()).bind(c.product.as_str()).bind(json(c)).bind(secret_hash.as_deref()).bind(now)
                    .execute(&mut **tx).await?;
            }
            ConfigChange::UpsertTenant(t) => {
                sqlx::query("INSERT INTO tenants (id, slug, doc, status, updated_at) VALUES ($1, $2, $3, 'active', $4)
                             ON CONFLICT (id) DO UPDATE SET slug = excluded.slug, doc = excluded.doc, status = 'active', updated_at = excluded.updated_at")
                    .bind(t.id.as_str()).bind(&t.slug).bind(json(t)).bind(now).execute(&mut **tx).await
                    .map_err(|e| crate::conflict(e, "tenant slug"))?;
            }
            ConfigChange::CreateUser(u, hash) => {
                sqlx::query("INSERT INTO users (id, email, email_norm, email_verified, name, password_hash, status, created_at, updated_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)")
                    .bind(u.id.as_str()).bind(&u.email).bind(crate::users::normalize_email(&u.email)).bind(u.email_verified)
                    .bind(&u.name).bind(hash.as_deref()).bind(u.status.as_str()).bind(u.created_at)
                    .execute(&mut **tx).await.map_err(|e| crate::conflict(e, "email"))?;
            }
            ConfigChange::UpdateUser(id, name, hash) => {
                sqlx::query("UPDATE users SET name = $2, password_hash = COALESCE($3, password_hash), updated_at = $4 WHERE id = $1")
                    .bind(id.as_str()).bind(name).bind(hash.as_deref()).bind(now).execute(&mut **tx).await?;
            }
            ConfigChange::PutGrant(_) => {} // put above, through the one grant upsert
            ConfigChange::RemoveProduct(slug) => {
                sqlx::query("UPDATE products SET status = 'removed', updated_at = $2 WHERE slug = $1")
                    .bind(slug).bind(now).execute(&mut **tx).await?;
            }
            ConfigChange::RemoveClient(id) => {
                sqlx::query("UPDATE clients SET status = 'removed', updated_at = $2 WHERE id = $1")
                    .bind(id).bind(now).execute(&mut **tx).await?;
            }
            ConfigChange::RemoveTenant(id) => {
                sqlx::query("UPDATE tenants SET status = 'removed', updated_at = $2 WHERE id = $1")
                    .bind(id).bind(now).execute(&mut **tx).await?;
                // A removed tenant takes its grants and every token family issued in it
                // along, in the same transaction: nothing of it stays usable.
                sqlx::query("UPDATE grants SET status = 'revoked', revoked_at = $2, revoked_by = 'tenant_removed'
                             WHERE tenant = $1 AND status = 'active'")
                    .bind(id).bind(now).execute(&mut **tx).await?;
                sqlx::query("UPDATE token_families SET revoked_at = $2, revoked_reason = 'tenant_removed'
                             WHERE tenant = $1 AND revoked_at IS NULL")
                    .bind(id).bind(now).execute(&mut **tx).await?;
            }
        }
    });
    Ok(())
}
