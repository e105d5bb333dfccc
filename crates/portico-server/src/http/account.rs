//! `/account`: the signed-in user's own page. Lists the user's live sessions on every device (this
//! one marked) with the applications opened in each, and ends one or all of them ("sign out
//! everywhere"), which ends their product sessions and tells the products.

use super::html::{self, esc};
use super::pages::{bad_form, current_user};
use super::{client_ip, cookies, now};
use crate::app::AppState;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use portico_protocol::logout;
use portico_store::SessionInfo;
use serde::Deserialize;
use std::net::SocketAddr;

fn login_first() -> Response {
    html::secure(Redirect::to("/login?next=/account").into_response(), None)
}

fn unavailable() -> Response {
    html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Your account is unavailable right now. Try again.")
}

pub fn when(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC")).ok())
        .unwrap_or_default()
}

/// A short name for the browser and system in a user agent string.
fn device(ua: &str) -> String {
    let browser = ["Edg/", "Firefox/", "Chrome/", "Safari/"].iter().find(|b| ua.contains(*b)).map(|b| match *b {
        "Edg/" => "Edge",
        "Firefox/" => "Firefox",
        "Chrome/" if ua.contains("HeadlessChrome") => "Chrome (headless)",
        "Chrome/" => "Chrome",
        _ => "Safari",
    });
    let system = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .iter()
    .find(|(k, _)| ua.contains(k))
    .map(|(_, v)| *v);
    match (browser, system) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_owned(),
        (None, _) if ua.is_empty() => "Unknown device".to_owned(),
        (None, _) => ua.chars().take(60).collect(),
    }
}

fn row(s: &AppState, session: &SessionInfo, current: &str, csrf: &str) -> String {
    let config = s.provider.config();
    let apps: Vec<String> = session
        .products
        .iter()
        .map(|p| esc(&config.client(&p.client_id).map_or_else(|| p.client_id.clone(), |c| c.client.name.clone())))
        .collect();
    let here = session.id == current;
    format!(
        "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><form method=\"post\" action=\"/account/sessions/end\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"session\" value=\"{}\">\
         <button class=\"secondary small\" type=\"submit\">{}</button></form></td></tr>",
        esc(&device(&session.user_agent)),
        if here { " <strong class=\"badge\">This device</strong>" } else { "" },
        esc(&session.ip),
        when(session.auth_time),
        when(session.last_seen),
        if apps.is_empty() {
            "<span class=\"muted\">none</span>".to_owned()
        } else {
            apps.join(", ")
        },
        esc(csrf),
        esc(&session.id),
        if here { "Sign out here" } else { "Sign out" }
    )
}

#[derive(Deserialize)]
pub struct PageQuery {
    /// What was just done, for a notice (a fixed set: no text from the URL reaches the page).
    done: Option<String>,
}

fn notice(done: Option<&str>) -> &'static str {
    match done {
        Some("password") => "<p class=\"notice\" role=\"status\">Your password is changed. Every other session was signed out.</p>",
        Some("verification-sent") => "<p class=\"notice\" role=\"status\">A verification link is on its way to your email.</p>",
        _ => "",
    }
}

/// The email and password section: verification state, the link to change the password.
fn sign_in_section(s: &AppState, user: &portico_model::User, csrf: &str) -> String {
    let verify = match (user.email_verified, s.mailer.is_some()) {
        (true, _) => "<p class=\"muted\">Your email is verified.</p>".to_owned(),
        (false, true) => format!(
            "<form method=\"post\" action=\"/account/verify-email/send\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <p class=\"muted\">Your email is not verified yet. <button class=\"secondary small\" type=\"submit\">Send a verification link</button></p></form>",
            esc(csrf)
        ),
        (false, false) => "<p class=\"muted\">Your email is not verified.</p>".to_owned(),
    };
    format!("<h2>Email and password</h2>{verify}<p><a href=\"/account/password\">Change your password</a></p>")
}

pub async fn page(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let Some(current) = current_user(&s, &headers).await else {
        return login_first();
    };
    let o = match portico_protocol::account::overview(&s.provider, &current, now()).await {
        Ok(Some(o)) => o,
        _ => return unavailable(),
    };
    let (user, sessions) = (&o.user, &o.sessions);
    let (csrf, cookie) = cookies::csrf_token(&s, &headers);
    // The first factor of this user needs the mailed link first: offer it instead.
    let second_factor = match o.change {
        portico_protocol::enrolment::FactorChange::EmailLinkNeeded => super::enrolment::offer(&csrf, &user.email, "/account"),
        _ => super::mfa::account_section(&o, &csrf),
    };
    let passkeys = super::passkey::account_section(&s, &o.passkeys, &csrf);
    let rows: String = sessions.iter().map(|x| row(&s, x, &current.id, &csrf)).collect();
    let body = format!(
        "<h1>Your account</h1>{}<p>{} · <strong>{}</strong></p>{}\
         <h2>Where you are signed in</h2>\
         <table aria-label=\"Sessions\"><tr><th>Device</th><th>IP address</th><th>Signed in</th><th>Last active</th><th>Applications</th><th></th></tr>{rows}</table>\
         <form method=\"post\" action=\"/account/sessions/end-all\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\">Sign out everywhere</button></form>\
         <p class=\"muted\">Signing out everywhere ends every session above, on every device, and signs you out of every application.</p>{second_factor}{passkeys}",
        notice(q.done.as_deref()),
        esc(&user.name),
        esc(&user.email),
        sign_in_section(&s, user, &csrf),
        esc(&csrf)
    );
    let mut resp = html::scripted((StatusCode::OK, Html(html::page("Your account", &body, true))).into_response());
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

#[derive(Deserialize)]
pub struct EndForm {
    csrf: Option<String>,
    session: Option<String>,
}

/// Ends one of the user's sessions; ending this device's signs this browser out.
pub async fn end_one(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<EndForm>) -> Response {
    let Some(current) = current_user(&s, &headers).await else {
        return login_first();
    };
    if !cookies::csrf_ok(&s, &headers, f.csrf.as_deref()) {
        return bad_form();
    }
    let Some(target) = f.session else { return bad_form() };
    let who = current.user_id.as_str();
    match logout::end_session(&s.provider, &target, &current.user_id, who, "account", client_ip(Some(&addr)), now()).await {
        Ok(_) if target == current.id => super::logout::signed_out(&s, None),
        // Not one of this user's live sessions: nothing ended, the list shows what there is.
        Ok(_) => html::secure(Redirect::to("/account").into_response(), None),
        Err(e) => {
            tracing::error!(error = %e, "ending a session failed");
            unavailable()
        }
    }
}

/// Signs the user out everywhere.
pub async fn end_all(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, Form(f): Form<EndForm>) -> Response {
    let Some(current) = current_user(&s, &headers).await else {
        return login_first();
    };
    if !cookies::csrf_ok(&s, &headers, f.csrf.as_deref()) {
        return bad_form();
    }
    let who = current.user_id.as_str();
    match logout::end_all_sessions(&s.provider, &current.user_id, who, "account", client_ip(Some(&addr)), now()).await {
        Ok(_) => super::logout::signed_out(&s, None),
        Err(e) => {
            tracing::error!(error = %e, "signing out everywhere failed");
            unavailable()
        }
    }
}
