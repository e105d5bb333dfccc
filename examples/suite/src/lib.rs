//! The example suite: three product backends with their own PostgreSQL databases and row-level
//! security (CRM, Pipelines, Reports) and an operations portal (Ops), each plugged into Portico
//! with `portico-guard`. Bearer tokens only, so one API serves a web page, a mobile app and a
//! server. Each product module holds its own auth code; this file holds what they share that is
//! not auth (the state, the error answer, the switch that turns the products' own checks off).

pub mod crm;
pub mod db;
pub mod launch;
pub mod ops;
pub mod pipelines;
pub mod reports;

use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use portico_guard::{Guard, Principal, Refusal};

/// Whether a product runs its own permission and tenant checks (the default) or leaves every
/// decision to row-level security. Turning them off is meant for one thing: the test that shows
/// RLS alone holds (`EXAMPLE_SUITE_APP_CHECKS=off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checks {
    pub enforce: bool,
}

impl Checks {
    /// The product's own permission check (skipped when checks are off).
    pub fn permission(self, p: &Principal, name: &str) -> Result<(), Refusal> {
        if self.enforce { p.require_permission(name).map(drop) } else { Ok(()) }
    }

    /// The tenant the product's own queries filter on (`None` when checks are off: no filter).
    pub fn tenant(self, p: &Principal) -> Option<String> {
        if self.enforce { p.tenant.clone() } else { None }
    }
}

/// What every product handler gets.
#[derive(Clone)]
pub struct App {
    pub guard: Guard,
    pub pool: sqlx::PgPool,
    pub checks: Checks,
}

impl FromRef<App> for Guard {
    fn from_ref(app: &App) -> Guard {
        app.guard.clone()
    }
}

/// A handler's failure: a refusal as RFC 6750 says, a write row-level security refused (403),
/// or anything else (500, logged).
#[derive(Debug)]
pub enum Error {
    Refused(Refusal),
    Db(sqlx::Error),
}

impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        Error::Refused(r)
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        Error::Db(e)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Refused(r) => r.into_response(),
            Error::Db(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => (
                StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"error": "forbidden", "error_description": "row-level security refused the write"})),
            )
                .into_response(),
            Error::Db(sqlx::Error::RowNotFound) => StatusCode::NOT_FOUND.into_response(),
            Error::Db(e) => {
                tracing::error!(error = %e, "database");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        }
    }
}
