//! Reports: a tenant's reporting dashboard. Tenant employees sign in directly; operators arrive
//! from Ops through a hand-off that Reports' backend redeems, landing on the report the context
//! names. A service client may read one tenant's reports (`client_credentials` + `organization`).

use crate::{App, Error};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use portico_guard::{Principal, rls};
use serde::{Deserialize, Serialize};

// auth: begin
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS reports (id bigserial PRIMARY KEY, org_id text NOT NULL, title text NOT NULL);
SELECT portico.tenant_wall('reports', 'org_id');
SELECT portico.permit('reports', 'select', 'read:reports');
SELECT portico.permit('reports', 'insert', 'write:reports');
";
// auth: end

#[derive(Serialize, sqlx::FromRow)]
pub struct Report {
    pub id: i64,
    pub org_id: String,
    pub title: String,
}

#[derive(Deserialize)]
pub struct Landing {
    pub handoff_code: String,
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/reports", get(list))
        .route("/reports/{id}", get(one))
        .route("/handoff", post(land))
        // auth: begin
        .route("/backchannel-logout", app.guard.logout_route())
        // auth: end
        .with_state(app)
}

async fn list(State(app): State<App>, p: Principal) -> Result<Json<Vec<Report>>, Error> {
    // auth: begin
    app.checks.permission(&p, "read:reports")?;
    let mut tx = rls::begin(&app.pool, &p).await?;
    // auth: end
    let rows = sqlx::query_as("SELECT id, org_id, title FROM reports WHERE $1::text IS NULL OR org_id = $1 ORDER BY id")
        .bind(app.checks.tenant(&p))
        .fetch_all(&mut *tx)
        .await?;
    Ok(Json(rows))
}

async fn one(State(app): State<App>, p: Principal, Path(id): Path<i64>) -> Result<Json<Report>, Error> {
    // auth: begin
    app.checks.permission(&p, "read:reports")?;
    let mut tx = rls::begin(&app.pool, &p).await?;
    // auth: end
    let row = sqlx::query_as("SELECT id, org_id, title FROM reports WHERE id = $1 AND ($2::text IS NULL OR org_id = $2)")
        .bind(id)
        .bind(app.checks.tenant(&p))
        .fetch_one(&mut *tx)
        .await?;
    Ok(Json(row))
}

/// The front end posts the code it received; the answer is Reports' own access token for the
/// operator, their tenant, and the context (which report to open).
async fn land(State(app): State<App>, Json(l): Json<Landing>) -> Result<Json<serde_json::Value>, StatusCode> {
    // auth: begin
    let landed = app.guard.redeem_handoff(&l.handoff_code).await.map_err(|e| {
        tracing::info!(error = %e, "hand-off refused");
        StatusCode::BAD_REQUEST
    })?;
    // auth: end
    Ok(Json(serde_json::json!({
        "access_token": landed.access_token,
        "expires_in": landed.expires_in,
        "tenant": landed.principal.tenant,
        "permissions": landed.principal.permissions,
        "context": landed.context,
    })))
}
