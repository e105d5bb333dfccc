//! `GET|POST /oauth2/logout`: OpenID Connect RP-Initiated Logout 1.0. With an `id_token_hint` for
//! the signed-in user the SSO session ends at once; otherwise the user confirms on a page first
//! (a logout nobody can prove an application asked for). Either way the browser then goes to the
//! client's registered `post_logout_redirect_uri` (with `state`), or sees that it signed out.

use super::flow::{Flow, bad_form};
use super::{cookies, html};
use crate::app::AppState;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use portico_protocol::interaction::{self, LogoutView};
use portico_protocol::logout::{LogoutRequest, ValidLogout};
use serde::Deserialize;

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

pub async fn logout_get(State(s): State<AppState>, flow: Flow, Query(q): Query<LogoutParams>) -> Response {
    handle(&s, &flow, q, false).await
}

pub async fn logout_post(State(s): State<AppState>, flow: Flow, Form(f): Form<LogoutParams>) -> Response {
    handle(&s, &flow, f, true).await
}

async fn handle(s: &AppState, flow: &Flow, f: LogoutParams, post: bool) -> Response {
    // An application's form post carries no CSRF token; the confirmation form does, and must.
    let confirmed = post && f.confirm.as_deref() == Some("yes");
    if confirmed && !cookies::csrf_ok(s, &flow.headers, f.csrf.as_deref()) {
        return bad_form();
    }
    let req = LogoutRequest {
        id_token_hint: f.id_token_hint,
        client_id: f.client_id,
        post_logout_redirect_uri: f.post_logout_redirect_uri,
        state: f.state,
    };
    let answer = interaction::confirm_logout(&flow.cx(s), &req, confirmed).await;
    flow.answer(s, answer, |view| match view {
        LogoutView::Confirm { email, logout } => confirmation(s, flow, &email, &logout),
        LogoutView::Done { logout } => done(&logout),
    })
}

/// After logout: the registered redirect (303, so a POST becomes a GET), or a page.
fn done(v: &ValidLogout) -> Response {
    match &v.redirect {
        Some(to) => html::secure(Redirect::to(to).into_response(), None),
        None => signed_out_page(v.client.as_ref().map(|c| c.name.as_str())),
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
    clear_session(s, signed_out_page(app))
}

fn signed_out_page(app: Option<&str>) -> Response {
    let page = SignedOut {
        title: "Signed out",
        wide: false,
        app,
    };
    html::view(StatusCode::OK, &page)
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
fn confirmation(s: &AppState, flow: &Flow, email: &str, v: &ValidLogout) -> Response {
    let (csrf, cookie) = flow.csrf(s);
    let page = Confirmation {
        title: "Sign out",
        wide: false,
        email,
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
