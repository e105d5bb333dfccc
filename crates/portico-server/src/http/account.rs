//! `/account`: the signed-in user's own page. Lists the user's live sessions on every device (this
//! one marked) with the applications opened in each, and ends one or all of them ("sign out
//! everywhere"), which ends their product sessions and tells the products.

use super::flow::{Account, Checked, csrf_form};
use super::html;
use super::pages::bad_form;
use super::{client_ip, cookies, now};
use crate::app::AppState;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use portico_protocol::logout;
use serde::Deserialize;
use std::net::SocketAddr;

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

#[derive(Deserialize)]
pub struct PageQuery {
    /// What was just done, for a notice (a fixed set: no text from the URL reaches the page).
    done: Option<String>,
}

/// What was just done, for the notice: a fixed set, so no text from the URL reaches the page.
enum Done {
    Password,
    VerificationSent,
}

#[derive(askama::Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    title: &'a str,
    wide: bool,
    done: Option<Done>,
    name: &'a str,
    email: &'a str,
    email_verified: bool,
    /// Whether mail goes out (a verification link can be sent).
    mail: bool,
    csrf: &'a str,
    sessions: Vec<SessionRow>,
    /// The launcher: the products the user may enter, per tenant, with links.
    launcher: Vec<portico_protocol::account::Launch>,
    /// The mailed-link offer, when the first factor needs it (rendered from its template).
    factor_offer: Option<html::Fragment>,
    totp: bool,
    recovery_left: i64,
    recovery_total: usize,
    recovery_used: Option<String>,
    passkeys_available: bool,
    passkeys: Vec<PasskeyRowView>,
    max_name: usize,
    passkey_add: &'a html::Fragment,
}

/// A session on the account page.
struct SessionRow {
    id: String,
    device: String,
    here: bool,
    ip: String,
    signed_in: String,
    last_active: String,
    /// The applications opened in it, by name.
    apps: Vec<String>,
}

struct PasskeyRowView {
    id: String,
    name: String,
    added: String,
    used: String,
}

impl PasskeyRowView {
    fn of(k: &portico_store::PasskeyRow) -> Self {
        Self {
            id: k.id.clone(),
            name: k.name.clone(),
            added: when(k.created_at),
            used: k.last_used_at.map(when).unwrap_or_else(|| "never".into()),
        }
    }
}

/// The user's sessions (this one first), each with the applications opened in it by name.
fn session_rows(s: &AppState, o: &portico_protocol::account::Overview, current: &str) -> Vec<SessionRow> {
    let config = s.provider.config();
    o.sessions
        .iter()
        .map(|x| SessionRow {
            id: x.id.clone(),
            device: device(&x.user_agent),
            here: x.id == current,
            ip: x.ip.clone(),
            signed_in: when(x.auth_time),
            last_active: when(x.last_seen),
            apps: x
                .products
                .iter()
                .map(|p| config.client(&p.client_id).map_or_else(|| p.client_id.clone(), |c| c.client.name.clone()))
                .collect(),
        })
        .collect()
}

pub async fn page(State(s): State<AppState>, Account { session: current, user }: Account, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let user_id = user.id.clone();
    let (launcher, o) = tokio::join!(
        portico_protocol::account::launcher(&s.provider, &user_id, now(&s)),
        portico_protocol::account::overview(&s.provider, &current, user, now(&s)),
    );
    let (Ok(launcher), Ok(o)) = (launcher, o) else {
        return unavailable();
    };
    let (csrf, cookie) = cookies::csrf_token(&s, &headers);
    let sessions = session_rows(&s, &o, &current.id);
    let passkeys = o.passkeys.iter().map(PasskeyRowView::of).collect();
    // The first factor of this user needs the mailed link first: offer it instead.
    let factor_offer =
        (o.change == portico_protocol::enrolment::FactorChange::EmailLinkNeeded).then(|| super::enrolment::offer(&csrf, &o.user.email, "/account"));
    let passkey_add = super::pages::PasskeyForm {
        id: "passkey-add",
        action: "/account/passkeys",
        options: "/account/passkeys/options",
        mode: "create",
        csrf: &csrf,
        req: None,
        next: None,
        name_field: true,
        label: "Add a passkey",
        class: "small",
    };
    let view = AccountPage {
        title: "Your account",
        wide: true,
        done: match q.done.as_deref() {
            Some("password") => Some(Done::Password),
            Some("verification-sent") => Some(Done::VerificationSent),
            _ => None,
        },
        name: &o.user.name,
        email: &o.user.email,
        email_verified: o.user.email_verified,
        mail: s.mailer.is_some(),
        csrf: &csrf,
        sessions,
        launcher,
        factor_offer,
        totp: o.factors.totp,
        recovery_left: o.recovery_left,
        recovery_total: portico_protocol::totp::RECOVERY_CODES,
        recovery_used: o.recovery_last_used.map(when),
        passkeys_available: super::passkey::available(&s),
        passkeys,
        max_name: portico_protocol::passkey::MAX_NAME,
        passkey_add: &passkey_add.render_if(&s),
    };
    super::pages::with_cookie(html::scripted(html::view(StatusCode::OK, &view)), cookie)
}

#[derive(Deserialize)]
pub struct EndForm {
    csrf: Option<String>,
    session: Option<String>,
}

csrf_form!(EndForm);

/// Ends one of the user's sessions; ending this device's signs this browser out.
pub async fn end_one(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Account { session: current, .. }: Account,
    Checked(f): Checked<EndForm>,
) -> Response {
    let Some(target) = f.session else { return bad_form() };
    let who = current.user_id.as_str();
    match logout::end_session(&s.provider, &target, &current.user_id, who, "account", client_ip(Some(&addr)), now(&s)).await {
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
pub async fn end_all(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Account { session: current, .. }: Account,
    Checked(_): Checked<EndForm>,
) -> Response {
    let who = current.user_id.as_str();
    match logout::end_all_sessions(&s.provider, &current.user_id, who, "account", client_ip(Some(&addr)), now(&s)).await {
        Ok(_) => super::logout::signed_out(&s, None),
        Err(e) => {
            tracing::error!(error = %e, "signing out everywhere failed");
            unavailable()
        }
    }
}
