//! Row-level security where the data lives (PostgreSQL, sqlx).
//!
//! [`begin`] opens a transaction that carries the verified caller: one
//! `SELECT set_config(…, true)` with bound parameters sets `request.jwt.claims` (the claims as
//! JSON), `portico.sub`, `portico.org_id` and `portico.product` for this transaction only. Never a
//! session-level `SET`: a pooled connection (or PgBouncer in transaction mode) never carries one
//! request's tenant into the next. [`MIGRATION`] gives policies the `portico.*` functions to read
//! them, and two templates (`portico.tenant_wall`, `portico.permit`). [`self_check`] refuses to
//! run with a role that would bypass the policies.
//!
//! **The trust boundary.** The settings are ordinary configuration parameters: any SQL the
//! application runs can set them. RLS here protects against the application's *mistakes* (a
//! missing `WHERE org_id = …`, a handler that forgot its permission check), not against an
//! attacker who can run arbitrary SQL as the application's role. A product that lets users run
//! SQL must verify in the database instead: pass the raw token and check its signature there
//! (e.g. with `pgjwt`), or give each tenant its own role.

use crate::Principal;
use sqlx::{PgPool, Postgres, Transaction};

/// The `portico` schema: `claims()`, `sub()`, `org_id()`, `product()`, `roles()`,
/// `has_permission(text)`, `ensure_app_role(text)` and the policy templates
/// `tenant_wall(regclass, text)` and `permit(regclass, command, permission)`. Idempotent.
pub const MIGRATION: &str = include_str!("../sql/rls.sql");

/// Applies [`MIGRATION`] (as the tables' owner, not as the application's role).
pub async fn install(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::raw_sql(MIGRATION).execute(pool).await.map(drop)
}

/// Begins a transaction whose statements see `principal` through the `portico.*` functions.
pub async fn begin(pool: &PgPool, principal: &Principal) -> sqlx::Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    let claims = serde_json::to_string(principal.claims()).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "SELECT set_config('request.jwt.claims', $1, true), set_config('portico.sub', $2, true),
                set_config('portico.org_id', $3, true), set_config('portico.product', $4, true)",
    )
    .bind(claims)
    .bind(&principal.sub)
    .bind(principal.tenant.as_deref().unwrap_or(""))
    .bind(&principal.claims().aud)
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

/// What [`self_check`] found about the role in use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The role the pool connects as.
    pub role: String,
    /// It is a superuser (superusers bypass every policy).
    pub superuser: bool,
    /// It has `BYPASSRLS`.
    pub bypass_rls: bool,
    /// Tables it owns without `FORCE ROW LEVEL SECURITY` (owners bypass non-forced policies).
    pub owned_without_force: Vec<String>,
    /// Tables it may read or write that have no row-level security.
    pub tables_without_rls: Vec<String>,
    /// Views it may read that run with their owner's rights (no `security_invoker`).
    pub views_without_security_invoker: Vec<String>,
}

impl Report {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        !self.superuser
            && !self.bypass_rls
            && self.owned_without_force.is_empty()
            && self.tables_without_rls.is_empty()
            && self.views_without_security_invoker.is_empty()
    }
}

/// Why the application must not start.
#[derive(Debug, thiserror::Error)]
pub enum SelfCheckError {
    /// The check itself failed.
    #[error("the row-level-security self-check could not run: {0}")]
    Database(#[from] sqlx::Error),
    /// The role would bypass, or the tables lack, row-level security.
    #[error("row-level security would not hold for role {:?}: {}", .0.role, describe(.0))]
    Unsafe(Report),
}

fn describe(r: &Report) -> String {
    let mut problems = Vec::new();
    if r.superuser {
        problems.push("it is a superuser".to_owned());
    }
    if r.bypass_rls {
        problems.push("it has BYPASSRLS".to_owned());
    }
    let list = |what: &str, items: &[String]| (!items.is_empty()).then(|| format!("{what}: {}", items.join(", ")));
    problems.extend(list("it owns tables without FORCE ROW LEVEL SECURITY", &r.owned_without_force));
    problems.extend(list("tables without row-level security", &r.tables_without_rls));
    problems.extend(list("views without security_invoker", &r.views_without_security_invoker));
    problems.join("; ")
}

/// Checks the role `pool` connects as, before the application serves anything: refuses when it
/// is a superuser, has `BYPASSRLS`, owns a table without `FORCE ROW LEVEL SECURITY`, or may use a
/// table without row-level security or a view without `security_invoker` — except the tables and
/// views named in `unprotected` (`schema.name`, e.g. reference data every tenant shares).
pub async fn self_check(pool: &PgPool, unprotected: &[&str]) -> Result<Report, SelfCheckError> {
    let (role, superuser, bypass_rls): (String, bool, bool) =
        sqlx::query_as("SELECT rolname::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(pool)
            .await?;
    let relations: Vec<(String, String, bool, bool, bool, bool)> = sqlx::query_as(
        "SELECT n.nspname || '.' || c.relname, c.relkind::text, c.relrowsecurity, c.relforcerowsecurity,
                pg_has_role(current_user, c.relowner, 'USAGE'),
                COALESCE(c.reloptions::text[] && ARRAY['security_invoker=true', 'security_invoker=on', 'security_invoker=1'], false)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'v', 'm')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
            AND (pg_has_role(current_user, c.relowner, 'USAGE')
                 OR has_table_privilege(current_user, c.oid, 'SELECT, INSERT, UPDATE, DELETE'))
          ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let mut report = Report {
        role,
        superuser,
        bypass_rls,
        ..Report::default()
    };
    for (name, kind, rls, force, owned, invoker) in relations {
        if unprotected.contains(&name.as_str()) {
            continue;
        }
        match kind.as_str() {
            "v" if !invoker => report.views_without_security_invoker.push(name),
            "m" => report.views_without_security_invoker.push(name),
            "r" | "p" if !rls => report.tables_without_rls.push(name),
            "r" | "p" if owned && !force => report.owned_without_force.push(name),
            _ => {}
        }
    }
    if report.is_clean() { Ok(report) } else { Err(SelfCheckError::Unsafe(report)) }
}

fn quote_ident(name: &str) -> String {
    name.split('.')
        .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// The wrong-tenant test kit: seeds `row` (a JSON object of column values) into `table` as
/// tenant `a`, then checks that tenant `b` cannot see it (`SELECT`), change it (`UPDATE`),
/// delete it (`DELETE`) or insert a row naming `a` (refused with SQLSTATE 42501), and that the
/// row is untouched for `a`; then deletes it as `a`. `a` must be allowed to insert and delete.
/// Returns what failed, if anything.
pub async fn wrong_tenant(pool: &PgPool, table: &str, tenant_column: &str, row: &serde_json::Value, a: &Principal, b: &Principal) -> Result<(), String> {
    let tenant_a = a.tenant.as_deref().ok_or("principal a has no tenant")?;
    let mut row = row.as_object().ok_or("row must be a JSON object")?.clone();
    row.insert(tenant_column.to_owned(), serde_json::Value::String(tenant_a.to_owned()));
    let (t, col) = (quote_ident(table), quote_ident(tenant_column));
    let columns: Vec<String> = row.keys().map(|k| quote_ident(k)).collect();
    let insert = format!(
        "INSERT INTO {t} ({cols}) SELECT {cols} FROM jsonb_populate_record(NULL::{t}, $1)",
        cols = columns.join(", ")
    );
    let row = serde_json::Value::Object(row);
    let fail = |what: &str, e: sqlx::Error| format!("{what}: {e}");

    let mut tx = begin(pool, a).await.map_err(|e| fail("begin as a", e))?;
    sqlx::query(&insert)
        .bind(&row)
        .execute(&mut *tx)
        .await
        .map_err(|e| fail("seeding the row as a", e))?;
    tx.commit().await.map_err(|e| fail("commit as a", e))?;

    let mut tx = begin(pool, b).await.map_err(|e| fail("begin as b", e))?;
    let (seen,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {t} WHERE {col}::text = $1"))
        .bind(tenant_a)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| fail("select as b", e))?;
    let updated = sqlx::query(&format!("UPDATE {t} SET {col} = {col} WHERE {col}::text = $1"))
        .bind(tenant_a)
        .execute(&mut *tx)
        .await
        .map_err(|e| fail("update as b", e))?;
    let deleted = sqlx::query(&format!("DELETE FROM {t} WHERE {col}::text = $1"))
        .bind(tenant_a)
        .execute(&mut *tx)
        .await
        .map_err(|e| fail("delete as b", e))?;
    let inserted = sqlx::query(&insert).bind(&row).execute(&mut *tx).await;
    drop(tx);
    let mut problems = Vec::new();
    if seen != 0 {
        problems.push(format!("b's SELECT saw {seen} of a's rows"));
    }
    if updated.rows_affected() != 0 {
        problems.push(format!("b's UPDATE touched {} of a's rows", updated.rows_affected()));
    }
    if deleted.rows_affected() != 0 {
        problems.push(format!("b's DELETE removed {} of a's rows", deleted.rows_affected()));
    }
    match inserted {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {}
        Err(e) => problems.push(format!("b's INSERT naming a failed, but not with 42501: {e}")),
        Ok(_) => problems.push("b's INSERT naming a succeeded".to_owned()),
    }

    let mut tx = begin(pool, a).await.map_err(|e| fail("begin as a", e))?;
    let (kept,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {t} WHERE {col}::text = $1"))
        .bind(tenant_a)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| fail("select as a", e))?;
    let cleaned = sqlx::query(&format!("DELETE FROM {t} WHERE {col}::text = $1"))
        .bind(tenant_a)
        .execute(&mut *tx)
        .await
        .map_err(|e| fail("cleanup as a", e))?;
    tx.commit().await.map_err(|e| fail("commit as a", e))?;
    if kept < 1 || cleaned.rows_affected() < 1 {
        problems.push(format!("a sees {kept} of its rows afterwards and deleted {}", cleaned.rows_affected()));
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}
