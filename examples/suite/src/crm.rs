//! CRM: contacts, per tenant. `viewer` reads, `editor` writes, `admin` also deletes.

use crate::{App, Error};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{delete, get};
use portico_guard::{Principal, rls};
use serde::{Deserialize, Serialize};

// auth: begin
/// The table and its policies: a tenant wall and one permission per command.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS contacts (id bigserial PRIMARY KEY, org_id text NOT NULL, name text NOT NULL);
SELECT portico.tenant_wall('contacts', 'org_id');
SELECT portico.permit('contacts', 'select', 'read:contacts');
SELECT portico.permit('contacts', 'insert', 'write:contacts');
SELECT portico.permit('contacts', 'update', 'write:contacts');
SELECT portico.permit('contacts', 'delete', 'delete:contacts');
";
// auth: end

#[derive(Serialize, sqlx::FromRow)]
pub struct Contact {
    pub id: i64,
    pub org_id: String,
    pub name: String,
}

#[derive(Deserialize)]
pub struct NewContact {
    pub name: String,
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/contacts", get(list).post(create))
        .route("/contacts/{id}", delete(remove))
        // auth: begin
        .route("/backchannel-logout", app.guard.logout_route())
        // auth: end
        .with_state(app)
}

async fn list(State(app): State<App>, p: Principal) -> Result<Json<Vec<Contact>>, Error> {
    // auth: begin
    app.checks.permission(&p, "read:contacts")?;
    let mut tx = rls::begin(&app.pool, &p).await?;
    // auth: end
    let rows = sqlx::query_as("SELECT id, org_id, name FROM contacts WHERE $1::text IS NULL OR org_id = $1 ORDER BY id")
        .bind(app.checks.tenant(&p))
        .fetch_all(&mut *tx)
        .await?;
    Ok(Json(rows))
}

async fn create(State(app): State<App>, p: Principal, Json(c): Json<NewContact>) -> Result<Json<Contact>, Error> {
    // auth: begin
    app.checks.permission(&p, "write:contacts")?;
    let mut tx = rls::begin(&app.pool, &p).await?;
    // auth: end
    // The tenant comes from the verified token, never from the request body.
    let row = sqlx::query_as("INSERT INTO contacts (org_id, name) VALUES ($1, $2) RETURNING id, org_id, name")
        .bind(p.tenant.as_deref().unwrap_or_default())
        .bind(&c.name)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Json(row))
}

async fn remove(State(app): State<App>, p: Principal, Path(id): Path<i64>) -> Result<Json<u64>, Error> {
    // auth: begin
    app.checks.permission(&p, "delete:contacts")?;
    let mut tx = rls::begin(&app.pool, &p).await?;
    // auth: end
    let gone = sqlx::query("DELETE FROM contacts WHERE id = $1 AND ($2::text IS NULL OR org_id = $2)")
        .bind(id)
        .bind(app.checks.tenant(&p))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(Json(gone))
}
