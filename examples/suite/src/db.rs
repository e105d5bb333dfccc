//! Each product's own database on the local PostgreSQL: created with the product's schema and
//! policies by the owner (the server's admin role), then used through a login role that is a
//! member of a `NOLOGIN NOBYPASSRLS` group role, and checked with the guard's RLS self-check
//! before the product serves anything.

use portico_guard::marks::PgMarks;
use sqlx::{Connection, PgPool};

/// The product's database `name` (created when missing) with `schema` applied; returns a pool
/// connected as the product's login role `<name>_api`.
pub async fn prepare(admin_url: &str, name: &str, schema: &str) -> anyhow::Result<PgPool> {
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(name)
        .fetch_optional(&mut admin)
        .await?;
    if exists.is_none() {
        sqlx::query(&format!("CREATE DATABASE \"{name}\"")).execute(&mut admin).await?;
    }
    let owner = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url_for(admin_url, name, None)?)
        .await?;
    portico_guard::rls::install(&owner).await?;
    PgMarks::new(owner.clone()).install().await?;
    let (group, login) = (format!("{name}_app"), format!("{name}_api"));
    sqlx::query("SELECT portico.ensure_app_role($1)").bind(&group).execute(&owner).await?;
    sqlx::raw_sql(schema).execute(&owner).await?;
    sqlx::raw_sql(&format!(
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO \"{group}\";
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO \"{group}\";
         GRANT SELECT, INSERT, UPDATE, DELETE ON portico.session_marks TO \"{group}\";
         DO $$ BEGIN
             IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{login}') THEN
                 CREATE ROLE \"{login}\" LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE \"{group}\";
             END IF;
         END $$;
         REVOKE CONNECT ON DATABASE \"{name}\" FROM PUBLIC;
         REVOKE CREATE ON SCHEMA public FROM PUBLIC;
         GRANT CONNECT ON DATABASE \"{name}\" TO \"{login}\";"
    ))
    .execute(&owner)
    .await?;
    owner.close().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&url_for(admin_url, name, Some(&login))?)
        .await?;
    // The session marks are the guard's, not tenant data: the one table without RLS.
    portico_guard::rls::self_check(&pool, &["portico.session_marks"]).await?;
    Ok(pool)
}

/// Drops the product's database and its roles.
pub async fn remove(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    // One statement each: DROP DATABASE cannot run inside the transaction a multi-statement query is.
    for statement in [
        format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        format!("DROP ROLE IF EXISTS \"{name}_api\""),
        format!("DROP ROLE IF EXISTS \"{name}_app\""),
    ] {
        sqlx::query(&statement).execute(&mut admin).await?;
    }
    Ok(())
}

fn url_for(admin_url: &str, database: &str, user: Option<&str>) -> anyhow::Result<String> {
    let mut url = url::Url::parse(admin_url)?;
    url.set_path(&format!("/{database}"));
    if let Some(user) = user {
        url.set_username(user).map_err(|_| anyhow::anyhow!("cannot set the user of {admin_url}"))?;
        url.set_password(None)
            .map_err(|_| anyhow::anyhow!("cannot clear the password of {admin_url}"))?;
    }
    Ok(url.to_string())
}
