//! Ops: the operations portal. Operators hold all-tenants grants and work in one tenant at a time
//! (their Ops token names it); "Reporting" obtains a hand-off code for Reports carrying a deep
//! link (which report), for Reports' backend to redeem. No long-lived token leaves Ops.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use portico_guard::{Guard, Principal, Refusal};
use serde::Deserialize;

#[derive(Clone)]
pub struct Ops {
    pub guard: Guard,
    /// Reports' audience.
    pub reports: String,
}

impl axum::extract::FromRef<Ops> for Guard {
    fn from_ref(ops: &Ops) -> Guard {
        ops.guard.clone()
    }
}

#[derive(Deserialize)]
pub struct Reporting {
    pub report_id: i64,
}

pub fn router(ops: Ops) -> Router {
    Router::new()
        // auth: begin
        .route("/reporting", post(reporting).route_layer(ops.guard.require_permission("open:reports")))
        .route("/backchannel-logout", ops.guard.logout_route())
        // auth: end
        .with_state(ops)
}

async fn reporting(State(ops): State<Ops>, p: Principal, headers: HeaderMap, Json(r): Json<Reporting>) -> Result<Json<serde_json::Value>, Refusal> {
    // auth: begin
    let subject = portico_guard::bearer(&headers)?;
    let context = serde_json::json!({ "report": r.report_id }).to_string();
    let (code, expires_in) = ops
        .guard
        .create_handoff(subject, &ops.reports, p.tenant.as_deref(), Some(&context))
        .await
        .map_err(|e| {
            tracing::info!(error = %e, "hand-off refused");
            Refusal::Forbidden {
                missing: "hand-off".into(),
                scope: None,
            }
        })?;
    // auth: end
    Ok(Json(serde_json::json!({ "handoff_code": code, "expires_in": expires_in, "tenant": p.tenant })))
}
