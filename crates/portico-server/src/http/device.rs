//! The device authorization grant's two faces (RFC 8628): `POST /oauth2/device_authorization`
//! for the device, and `/device`, where its user types the code it shows and goes on through the
//! usual sign-in and consent.

use super::flow::{Checked, Flow, csrf_form};
use super::oauth::{OAuthJsonError, client_credentials, no_store, oauth_form, pending_write_limit, too_many};
use super::pages::with_cookie;
use super::{client_ip, html, now};
use crate::app::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use portico_protocol::interaction::{self, Refusal, Then};
use std::net::SocketAddr;

/// `POST /oauth2/device_authorization` (RFC 8628 §3.1, §3.2).
pub async fn authorize_device(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, body: Bytes) -> Response {
    let mut allowed = None;
    let result = async {
        let form = oauth_form(&body)?;
        let creds = client_credentials(&headers, &form)?;
        // A web page only from an origin its client registered, as at the token endpoint.
        allowed = super::cors::of_client(&s, &headers, &creds)?;
        if let Some(wait) = pending_write_limit(&s, &creds, &addr) {
            return Ok(Err(wait));
        }
        portico_protocol::device::authorize_device(&s.provider, &creds, &form, now(&s)).await.map(Ok)
    }
    .await;
    let resp = match result {
        Ok(Ok(r)) => no_store(Json(r).into_response()),
        Ok(Err(wait)) => too_many(wait),
        Err(e) => OAuthJsonError(e).into_response(),
    };
    super::cors::allow(resp, allowed.as_deref())
}

#[derive(serde::Deserialize)]
pub struct CodeQuery {
    user_code: Option<String>,
}

/// `GET /device`: the form, filled in from `verification_uri_complete`.
pub async fn device_form(State(s): State<AppState>, flow: Flow, Query(q): Query<CodeQuery>) -> Response {
    let code = q.user_code.unwrap_or_default();
    form_page(&s, &flow, code.chars().take(16).collect::<String>().as_str(), None, StatusCode::OK)
}

#[derive(serde::Deserialize)]
pub struct CodeForm {
    csrf: Option<String>,
    user_code: String,
}
csrf_form!(CodeForm);

/// `POST /device`: the typed code; each try counts against the address's allowance (RFC 8628
/// §5.1: guessing a live code must take longer than the codes live).
pub async fn device_submit(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, flow: Flow, Checked(f): Checked<CodeForm>) -> Response {
    let typed: String = f.user_code.chars().take(16).collect();
    if let Some(wait) = client_ip(Some(&addr)).and_then(|ip| s.device_limits.check(&ip)) {
        let mut page = form_page(
            &s,
            &flow,
            &typed,
            Some("Too many codes tried from here. Wait a minute, then try again."),
            StatusCode::TOO_MANY_REQUESTS,
        );
        page.headers_mut().insert(axum::http::header::RETRY_AFTER, wait.max(1).into());
        return page;
    }
    let i = interaction::enter_device_code(&flow.cx(&s), &typed).await;
    if matches!(i.then, Then::Refuse(Refusal::BadDeviceCode)) {
        return form_page(
            &s,
            &flow,
            &typed,
            Some("That code is not right, or it has expired. Check the code on your device."),
            StatusCode::BAD_REQUEST,
        );
    }
    flow.answer(&s, i, |v| match v {})
}

#[derive(serde::Deserialize)]
pub struct DoneQuery {
    approved: Option<String>,
}

/// `GET /device/done`: what the user did, and what happens on the device now.
pub async fn device_done(Query(q): Query<DoneQuery>) -> Response {
    let message = if q.approved.as_deref() == Some("1") {
        html::Message::new("Device signed in", "Your device is signed in").muted(vec![html::t("You can close this window and go back to your device.")])
    } else {
        html::Message::new("Device not signed in", "Your device was not signed in").muted(vec![html::t(
            "You denied it, or your account has no access to this application. You can close this window.",
        )])
    };
    message.page(StatusCode::OK)
}

fn form_page(s: &AppState, flow: &Flow, code: &str, error: Option<&str>, status: StatusCode) -> Response {
    let (csrf, cookie) = flow.csrf(s);
    let page = DevicePage {
        title: "Sign in on a device",
        wide: false,
        code,
        error,
        csrf: &csrf,
    };
    with_cookie(html::view(status, &page), cookie)
}

#[derive(askama::Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    title: &'a str,
    wide: bool,
    code: &'a str,
    error: Option<&'a str>,
    csrf: &'a str,
}
