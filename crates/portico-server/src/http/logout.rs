//! `GET|POST /oauth2/logout`: OpenID Connect RP-Initiated Logout 1.0. With an `id_token_hint` for
//! the signed-in user the SSO session ends at once; otherwise the user confirms on a page first
//! (a logout nobody can prove an application asked for). Either way the browser then goes to the
//! client's registered `post_logout_redirect_uri` (with `state`), or sees that it signed out.

use super::html;
use super::{client_ip, cookies, now};
use crate::app::AppState;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use portico_protocol::logout::{self, LogoutRequest, ValidLogout};
use serde::Deserialize;
use std::net::SocketAddr;

/// The request's parameters (§2), plus the confirmation form's own fields.
#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    csrf: Option<String>,
    confirm: Option<String>,
}

pub async fn logout_get(s: State<AppState>, addr: ConnectInfo<SocketAddr>, headers: HeaderMap, Query(q): Query<LogoutParams>) -> Response {
    handle(s, addr, headers, q, false).await
}

pub async fn logout_post(s: State<AppState>, addr: ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<LogoutParams>) -> Response {
    handle(s, addr, headers, f, true).await
}

fn refused(message: &str) -> Response {
    html::Message::new("Sign out", "This sign-out request cannot be completed")
        .alert(message)
        .page(StatusCode::BAD_REQUEST)
}

fn unavailable() -> Response {
    html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Signing out is unavailable right now. Try again.")
}

async fn handle(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, f: LogoutParams, post: bool) -> Response {
    let n = now();
    let p = &s.provider;
    let req = LogoutRequest {
        id_token_hint: f.id_token_hint,
        client_id: f.client_id,
        post_logout_redirect_uri: f.post_logout_redirect_uri,
        state: f.state,
    };
    let v = match logout::validate(p, &req, n) {
        Ok(v) => v,
        Err(message) => return refused(message),
    };
    let confirming = post && f.confirm.as_deref() == Some("yes");
    if confirming && !cookies::csrf_ok(&s, &headers, f.csrf.as_deref()) {
        return super::pages::bad_form();
    }
    let session = match cookies::get(&headers, cookies::session_name(&s)) {
        Some(c) => match portico_protocol::login::session_from_cookie(p, c, n).await {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                return unavailable();
            }
        },
        None => None,
    };
    let Some(session) = session else {
        // Nothing to end here (already signed out, or another browser): say so, or go back.
        return done(&s, &v);
    };
    if !confirming {
        match logout::needs_confirmation(p, &v, &session).await {
            Ok(false) => {}
            Ok(true) => return confirmation(&s, &headers, &v, &session).await,
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                return unavailable();
            }
        }
    }
    let via = if confirming { "confirmed_logout" } else { "rp_logout" };
    if let Err(e) = logout::end_session(p, &session.id, &session.user_id, session.user_id.as_str(), via, client_ip(Some(&addr)), n).await {
        tracing::error!(error = %e, "ending the session failed");
        return unavailable();
    }
    done(&s, &v)
}

/// After logout: the registered redirect (303, so a POST becomes a GET), or a page. The session
/// cookie is cleared either way.
fn done(s: &AppState, v: &ValidLogout) -> Response {
    match &v.redirect {
        Some(to) => clear_session(s, html::secure(Redirect::to(to).into_response(), None)),
        None => signed_out(s, v.client.as_ref().map(|c| c.name.as_str())),
    }
}

pub(crate) fn clear_session(s: &AppState, mut resp: Response) -> Response {
    let clear = cookies::set(s, cookies::session_name(s), "", Some(0));
    resp.headers_mut().append(header::SET_COOKIE, clear);
    resp
}

/// The page after signing out (here or from the account page), naming the application to go back
/// to when one asked; clears the session cookie.
pub fn signed_out(s: &AppState, app: Option<&str>) -> Response {
    let page = SignedOut {
        title: "Signed out",
        wide: false,
        app,
    };
    clear_session(s, html::view(StatusCode::OK, &page))
}

#[derive(askama::Template)]
#[template(path = "signed_out.html")]
struct SignedOut<'a> {
    title: &'a str,
    wide: bool,
    app: Option<&'a str>,
}

#[derive(askama::Template)]
#[template(path = "logout_confirm.html")]
struct Confirmation<'a> {
    title: &'a str,
    wide: bool,
    email: &'a str,
    client_name: Option<&'a str>,
    csrf: &'a str,
    client_id: Option<&'a str>,
    post_logout_redirect_uri: Option<&'a str>,
    state: Option<&'a str>,
}

/// The page that asks before signing out.
async fn confirmation(s: &AppState, headers: &HeaderMap, v: &ValidLogout, session: &portico_store::SsoSession) -> Response {
    let email = match portico_protocol::login::user_of(&s.provider, session).await {
        Ok(Some(u)) => u.email,
        Ok(None) => String::new(),
        Err(e) => {
            tracing::error!(error = %e, "user lookup failed");
            return unavailable();
        }
    };
    let (csrf, cookie) = cookies::csrf_token(s, headers);
    let page = Confirmation {
        title: "Sign out",
        wide: false,
        email: &email,
        client_name: v.client.as_ref().map(|c| c.name.as_str()),
        csrf: &csrf,
        client_id: v.client.as_ref().map(|c| c.id.as_str()),
        post_logout_redirect_uri: v.post_logout_redirect_uri.as_deref(),
        state: v.state.as_deref(),
    };
    let mut resp = html::forms_may_reach(html::view(StatusCode::OK, &page), v.post_logout_redirect_uri.as_deref());
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}
