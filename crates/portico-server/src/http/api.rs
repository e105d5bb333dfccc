//! The admin JSON API under `/api/v1/` (grants and deprovisioning). Callers present an access
//! token for Portico's built-in `portico-admin` product; errors are RFC 9457 problem documents
//! (`application/problem+json`).

use super::{client_ip, now};
use crate::app::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use portico_model::{UserStatus, admin as perm};
use portico_protocol::admin::{self, AdminError, Caller, GrantKey, NewGrant};
use serde::Deserialize;
use std::net::SocketAddr;

/// RFC 9457 problem details: one `IntoResponse` for every admin API error.
pub struct Problem {
    status: StatusCode,
    detail: String,
    field: Option<&'static str>,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            field: None,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        if let Some(f) = self.field {
            body["field"] = serde_json::json!(f);
        }
        let mut resp = (self.status, body.to_string()).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"portico-admin\""));
        } else if self.status == StatusCode::FORBIDDEN {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"portico-admin\", error=\"insufficient_scope\""),
            );
        }
        resp
    }
}

impl From<AdminError> for Problem {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Unauthenticated => Problem::new(StatusCode::UNAUTHORIZED, e.to_string()),
            AdminError::Forbidden(_) | AdminError::AdminOnly => Problem::new(StatusCode::FORBIDDEN, e.to_string()),
            AdminError::NotFound(m) => Problem::new(StatusCode::NOT_FOUND, m),
            AdminError::Invalid(field, m) => Problem {
                field: Some(field),
                ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, m)
            },
            AdminError::Store(e) => {
                tracing::error!(error = %e, "admin API store error");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "the request could not be completed")
            }
        }
    }
}

/// What a request brings to authenticate at the admin API: its method, path and headers (a
/// DPoP proof names the first two).
pub struct Request {
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Request {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Request {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
        })
    }
}

async fn caller(s: &AppState, addr: SocketAddr, request: &Request, permission: &'static str) -> Result<Caller, Problem> {
    // For backends and tools: a request a web page sent is refused before its token is looked at.
    if super::cors::origin(&request.headers).is_some() {
        return Err(Problem::new(StatusCode::FORBIDDEN, "the admin API does not accept requests from web pages"));
    }
    let at = super::oauth::dpop_at(s, &request.method, &request.headers, request.uri.path());
    let token = super::oauth::access_token(&request.headers).map(|(token, _)| token);
    Ok(admin::authenticate(&s.provider, token, &at, permission, client_ip(Some(&addr)), now(s)).await?)
}

fn json_body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, Problem> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send application/json"));
    }
    serde_json::from_slice(body).map_err(|e| Problem::new(StatusCode::BAD_REQUEST, format!("the body is not a valid request: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    user: Option<String>,
}

pub async fn list_grants(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    request: Request,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        caller(&s, addr, &request, perm::READ_GRANTS).await?;
        let Query(q) = q.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
        let grants = admin::list_grants(&s.provider.store, &s.provider.config(), q.user.as_deref()).await?;
        Ok::<_, Problem>(Json(serde_json::json!({ "grants": grants })).into_response())
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn add_grant(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, request: Request, body: Bytes) -> Response {
    let result = async {
        let by = caller(&s, addr, &request, perm::WRITE_GRANTS).await?;
        let new: NewGrant = json_body(&request.headers, &body)?;
        let view = admin::add_grant(&s.provider.store, &s.provider.config(), &new, &by, now(&s)).await?;
        Ok::<_, Problem>((StatusCode::CREATED, Json(view)).into_response())
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn revoke_grant(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    request: Request,
    q: Result<Query<GrantKey>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        let by = caller(&s, addr, &request, perm::WRITE_GRANTS).await?;
        let Query(key) = q.map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e.body_text()))?;
        admin::revoke_grant(&s.provider.store, &s.provider.config(), &key, &by, now(&s)).await?;
        Ok::<_, Problem>(StatusCode::NO_CONTENT.into_response())
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn set_status(s: AppState, addr: SocketAddr, request: Request, id: String, status: UserStatus) -> Response {
    let result = async {
        let by = caller(&s, addr, &request, perm::DISABLE_USERS).await?;
        let (user, _) = admin::set_user_status(&s.provider.store, &s.provider.config(), &id, status, &by, now(&s)).await?;
        Ok::<_, Problem>(Json(serde_json::json!({"id": user.id.as_str(), "email": user.email, "status": user.status.as_str()})).into_response())
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn disable_user(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, request: Request, Path(id): Path<String>) -> Response {
    set_status(s, addr, request, id, UserStatus::Disabled).await
}

pub async fn enable_user(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, request: Request, Path(id): Path<String>) -> Response {
    set_status(s, addr, request, id, UserStatus::Active).await
}

pub async fn list_sessions(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, request: Request, Path(id): Path<String>) -> Response {
    let result = async {
        caller(&s, addr, &request, perm::READ_USERS).await?;
        let sessions = admin::list_sessions(&s.provider.store, &id, now(&s)).await?;
        Ok::<_, Problem>(Json(serde_json::json!({ "sessions": sessions })).into_response())
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn end_all_sessions(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, request: Request, Path(id): Path<String>) -> Response {
    let result = async {
        let by = caller(&s, addr, &request, perm::DISABLE_USERS).await?;
        let ended = admin::end_sessions(&s.provider, &id, None, &by, now(&s)).await?;
        Ok::<_, Problem>(Json(serde_json::json!({ "ended": ended })).into_response())
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

pub async fn end_session(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    request: Request,
    Path((id, session)): Path<(String, String)>,
) -> Response {
    let result = async {
        let by = caller(&s, addr, &request, perm::DISABLE_USERS).await?;
        admin::end_sessions(&s.provider, &id, Some(&session), &by, now(&s)).await?;
        Ok::<_, Problem>(StatusCode::NO_CONTENT.into_response())
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}
