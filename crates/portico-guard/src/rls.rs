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
    /// Views it may read that run with their owner's rights (no `security_invoker`), and
    /// materialized views (which have no row-level security).
    pub views_without_security_invoker: Vec<String>,
    /// Tables with row-level security but no RESTRICTIVE policy applying to the role (no wall:
    /// permissive policies alone, e.g. `USING (true)`, would let every tenant through).
    pub tables_without_wall: Vec<String>,
    /// Tables the role may TRUNCATE (which row-level security does not hold).
    pub truncatable: Vec<String>,
}

impl Report {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        !self.superuser
            && !self.bypass_rls
            && self.owned_without_force.is_empty()
            && self.tables_without_rls.is_empty()
            && self.views_without_security_invoker.is_empty()
            && self.tables_without_wall.is_empty()
            && self.truncatable.is_empty()
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
        problems.push("it is (or is a member of) a superuser".to_owned());
    }
    if r.bypass_rls {
        problems.push("it has (or is a member of a role with) BYPASSRLS".to_owned());
    }
    let list = |what: &str, items: &[String]| (!items.is_empty()).then(|| format!("{what}: {}", items.join(", ")));
    problems.extend(list("it owns tables without FORCE ROW LEVEL SECURITY", &r.owned_without_force));
    problems.extend(list("tables without row-level security", &r.tables_without_rls));
    problems.extend(list("views without security_invoker", &r.views_without_security_invoker));
    problems.extend(list("tables without a restrictive policy for this role", &r.tables_without_wall));
    problems.extend(list("tables it may TRUNCATE", &r.truncatable));
    problems.join("; ")
}

/// Checks the role `pool` connects as, before the application serves anything: refuses when it
/// (or a role it is a member of) is a superuser or has `BYPASSRLS`, owns a table without `FORCE
/// ROW LEVEL SECURITY`, may use a table without row-level security (foreign tables included), a
/// table without a restrictive policy applying to it, a view without `security_invoker` or a
/// materialized view, or may TRUNCATE a table — except the relations named in `unprotected`
/// (`schema.name`, e.g. reference data every tenant shares).
pub async fn self_check(pool: &PgPool, unprotected: &[&str]) -> Result<Report, SelfCheckError> {
    // The role and every role it is a member of (and could `SET ROLE` to).
    let (role, superuser, bypass_rls): (String, bool, bool) = sqlx::query_as(
        "SELECT current_user::text, COALESCE(bool_or(rolsuper), false), COALESCE(bool_or(rolbypassrls), false)
           FROM pg_roles WHERE pg_has_role(current_user, oid, 'MEMBER')",
    )
    .fetch_one(pool)
    .await?;
    let mut report = Report {
        role,
        superuser,
        bypass_rls,
        ..Report::default()
    };
    for (name, kind, rls, force, owned, invoker, truncate, wall) in relations(pool).await? {
        if unprotected.contains(&name.as_str()) {
            continue;
        }
        if truncate && kind != "v" {
            report.truncatable.push(name.clone());
        }
        let list = match kind.as_str() {
            "v" if !invoker => &mut report.views_without_security_invoker,
            "m" => &mut report.views_without_security_invoker,
            "f" => &mut report.tables_without_rls,
            "r" | "p" if !rls => &mut report.tables_without_rls,
            "r" | "p" if owned && !force => &mut report.owned_without_force,
            "r" | "p" if !wall => &mut report.tables_without_wall,
            _ => continue,
        };
        list.push(name);
    }
    if report.is_clean() { Ok(report) } else { Err(SelfCheckError::Unsafe(report)) }
}

/// Every relation the role owns or may touch (any table or column privilege, TRUNCATE too), with
/// what the check needs to know about it.
async fn relations(pool: &PgPool) -> sqlx::Result<Vec<(String, String, bool, bool, bool, bool, bool, bool)>> {
    sqlx::query_as(
        "SELECT n.nspname || '.' || c.relname, c.relkind::text, c.relrowsecurity, c.relforcerowsecurity,
                pg_has_role(current_user, c.relowner, 'USAGE'),
                COALESCE(c.reloptions::text[] && ARRAY['security_invoker=true', 'security_invoker=on', 'security_invoker=1'], false),
                has_table_privilege(current_user, c.oid, 'TRUNCATE'),
                EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND NOT p.polpermissive
                          AND (p.polroles = '{0}' OR EXISTS (SELECT 1 FROM unnest(p.polroles) r WHERE pg_has_role(current_user, r, 'MEMBER'))))
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
            AND (pg_has_role(current_user, c.relowner, 'USAGE')
                 OR has_table_privilege(current_user, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')
                 OR has_any_column_privilege(current_user, c.oid, 'SELECT, INSERT, UPDATE'))
          ORDER BY 1",
    )
    .fetch_all(pool)
    .await
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
/// row is untouched for `a`; then deletes that one row as `a`. `a` must be allowed to insert and
/// delete; give `b` every permission on the table too, so that what stops it is the tenant wall
/// and not a missing permission. Returns what failed, if anything.
pub async fn wrong_tenant(pool: &PgPool, table: &str, tenant_column: &str, row: &serde_json::Value, a: &Principal, b: &Principal) -> Result<(), String> {
    let tenant_a = a.tenant.as_deref().ok_or("principal a has no tenant")?;
    let mut row = row.as_object().ok_or("row must be a JSON object")?.clone();
    row.insert(tenant_column.to_owned(), serde_json::Value::String(tenant_a.to_owned()));
    let t = quote_ident(table);
    let columns = row.keys().map(|k| quote_ident(k)).collect::<Vec<_>>().join(", ");
    let insert = format!("INSERT INTO {t} ({columns}) SELECT {columns} FROM jsonb_populate_record(NULL::{t}, $1)");
    let row = serde_json::Value::Object(row);
    let fail = |what: &'static str| move |e: sqlx::Error| format!("{what}: {e}");

    let mut tx = begin(pool, a).await.map_err(fail("begin as a"))?;
    let (seeded,): (String,) = sqlx::query_as(&format!("{insert} RETURNING ctid::text"))
        .bind(&row)
        .fetch_one(&mut *tx)
        .await
        .map_err(fail("seeding the row as a"))?;
    tx.commit().await.map_err(fail("commit as a"))?;
    let mut problems = as_other_tenant(pool, &t, &quote_ident(tenant_column), &insert, &row, &seeded, b).await?;

    let mut tx = begin(pool, a).await.map_err(fail("begin as a"))?;
    let cleaned = sqlx::query(&format!("DELETE FROM {t} WHERE ctid = $1::tid"))
        .bind(&seeded)
        .execute(&mut *tx)
        .await
        .map_err(fail("cleanup as a"))?;
    tx.commit().await.map_err(fail("commit as a"))?;
    if cleaned.rows_affected() != 1 {
        problems.push(format!("a found its seeded row {} times afterwards", cleaned.rows_affected()));
    }
    if problems.is_empty() { Ok(()) } else { Err(problems.join("; ")) }
}

/// What `b` can do to the row at `seeded` (its `ctid`): each finding, in a transaction rolled back.
async fn as_other_tenant(pool: &PgPool, t: &str, col: &str, insert: &str, row: &serde_json::Value, seeded: &str, b: &Principal) -> Result<Vec<String>, String> {
    let fail = |what: &'static str| move |e: sqlx::Error| format!("{what}: {e}");
    let mut tx = begin(pool, b).await.map_err(fail("begin as b"))?;
    let (seen,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {t} WHERE ctid = $1::tid"))
        .bind(seeded)
        .fetch_one(&mut *tx)
        .await
        .map_err(fail("select as b"))?;
    let updated = sqlx::query(&format!("UPDATE {t} SET {col} = {col} WHERE ctid = $1::tid"))
        .bind(seeded)
        .execute(&mut *tx)
        .await
        .map_err(fail("update as b"))?;
    let deleted = sqlx::query(&format!("DELETE FROM {t} WHERE ctid = $1::tid"))
        .bind(seeded)
        .execute(&mut *tx)
        .await
        .map_err(fail("delete as b"))?;
    let inserted = sqlx::query(insert).bind(row).execute(&mut *tx).await;
    let mut problems = Vec::new();
    if seen != 0 {
        problems.push(format!("b's SELECT saw a's row ({seen})"));
    }
    if updated.rows_affected() != 0 {
        problems.push("b's UPDATE touched a's row".to_owned());
    }
    if deleted.rows_affected() != 0 {
        problems.push("b's DELETE removed a's row".to_owned());
    }
    match inserted {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {}
        Err(e) => problems.push(format!("b's INSERT naming a failed, but not with 42501: {e}")),
        Ok(_) => problems.push("b's INSERT naming a succeeded".to_owned()),
    }
    Ok(problems)
}
