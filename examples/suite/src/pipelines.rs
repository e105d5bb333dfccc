//! Pipelines: build pipelines, per tenant. `viewer` reads, `operator` runs, `admin` creates.

use crate::{App, Error};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use portico_guard::{Principal, rls};
use serde::{Deserialize, Serialize};

// auth: begin
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pipelines (id bigserial PRIMARY KEY, org_id text NOT NULL, name text NOT NULL, runs integer NOT NULL DEFAULT 0);
SELECT portico.tenant_wall('pipelines', 'org_id');
SELECT portico.permit('pipelines', 'select', 'read:pipelines');
SELECT portico.permit('pipelines', 'insert', 'manage:pipelines');
SELECT portico.permit('pipelines', 'update', 'run:pipelines');
SELECT portico.permit('pipelines', 'delete', 'manage:pipelines');
";
// auth: end

#[derive(Serialize, sqlx::FromRow)]
pub struct Pipeline {
    pub id: i64,
    pub org_id: String,
    pub name: String,
    pub runs: i32,
}

#[derive(Deserialize)]
pub struct NewPipeline {
    pub name: String,
}

pub fn router(app: App) -> Router {
    Router::new()
        .route("/pipelines", get(list).post(create))
        .route("/pipelines/{id}/run", post(run))
        // auth: begin
        .route("/backchannel-logout", app.guard.logout_route())
        // auth: end
        .with_state(app)
}

async fn list(State(app): State<App>, p: Principal) -> Result<Json<Vec<Pipeline>>, Error> {
    // auth: begin
    app.checks.permission(&p, "read:pipelines")?;
    let mut tx = rls::begin(&app.pool, &p).await?;
    // auth: end
    let rows = sqlx::query_as("SELECT id, org_id, name, runs FROM pipelines WHERE $1::text IS NULL OR org_id = $1 ORDER BY id")
        .bind(app.checks.tenant(&p))
        .fetch_all(&mut *tx)
        .await?;
    Ok(Json(rows))
}

async fn create(State(app): State<App>, p: Principal, Json(n): Json<NewPipeline>) -> Result<Json<Pipeline>, Error> {
    // auth: begin
    app.checks.permission(&p, "manage:pipelines")?;
    let mut tx = rls::begin(&app.pool, &p).await?;
    // auth: end
    let row = sqlx::query_as("INSERT INTO pipelines (org_id, name) VALUES ($1, $2) RETURNING id, org_id, name, runs")
        .bind(p.tenant.as_deref().unwrap_or_default())
        .bind(&n.name)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Json(row))
}

async fn run(State(app): State<App>, p: Principal, Path(id): Path<i64>) -> Result<Json<u64>, Error> {
    // auth: begin
    app.checks.permission(&p, "run:pipelines")?;
    let mut tx = rls::begin(&app.pool, &p).await?;
    // auth: end
    let ran = sqlx::query("UPDATE pipelines SET runs = runs + 1 WHERE id = $1 AND ($2::text IS NULL OR org_id = $2)")
        .bind(id)
        .bind(app.checks.tenant(&p))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(Json(ran))
}
