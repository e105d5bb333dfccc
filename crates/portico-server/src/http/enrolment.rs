//! The mailed link that lets a session set up the first second factor when a product of the user
//! refuses trust on first use (`mfa_enrolment = "email_link"`; the rule is
//! [`portico_protocol::enrolment`]).

use super::flow::{Account, Checked, csrf_form};
use super::html::{self, Message, strong, t};
use super::pages::with_cookie;
use super::password::{mail_rate, no_mail};
use super::signup::{MailedLink, TokenForm, TokenQuery, link_page};
use super::{client_ip, cookies, now};
use crate::app::AppState;
use crate::mail::Job;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use portico_protocol::enrolment::{self, FactorChange, LinkOutcome};
use serde::Deserialize;
use std::net::SocketAddr;

fn unavailable() -> Response {
    html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Your account is unavailable right now. Try again.")
}

/// Where a link may send the browser back to: the account page, or the step-up page of a request.
fn local(next: Option<&str>) -> String {
    let step_up = next.and_then(|n| n.strip_prefix("/login/second-factor?req="));
    match step_up {
        Some(req) if (1..=128).contains(&req.len()) && req.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
            format!("/login/second-factor?req={req}")
        }
        _ => "/account".to_owned(),
    }
}

/// The offer of the link, on the page that would have set up a factor; back to `next` once opened.
pub fn offer(csrf: &str, email: &str, next: &str) -> html::Fragment {
    html::fragment(&FactorOffer { csrf, email, next })
}

/// A page that says why and offers the mailed link.
#[derive(askama::Template)]
#[template(path = "offer_page.html")]
pub struct OfferPage<'a> {
    pub title: &'a str,
    pub wide: bool,
    pub heading: &'a str,
    pub intro: Option<&'a str>,
    pub offer: html::Fragment,
}

/// The offer of the mailed link that lets this session set up the first factor.
#[derive(askama::Template)]
#[template(path = "factor_offer.html")]
struct FactorOffer<'a> {
    csrf: &'a str,
    email: &'a str,
    /// A local path: where the link leads back to.
    next: &'a str,
}

/// The page for a refused set-up: the offer.
pub fn offer_page(s: &AppState, headers: &HeaderMap, email: &str, next: &str) -> Response {
    let (csrf, cookie) = cookies::csrf_token(s, headers);
    let page = OfferPage {
        title: "Two-step verification",
        wide: false,
        heading: "Confirm it is you",
        intro: None,
        offer: offer(&csrf, email, next),
    };
    with_cookie(html::view(StatusCode::FORBIDDEN, &page), cookie)
}

#[derive(Deserialize)]
pub struct SendForm {
    csrf: Option<String>,
    next: Option<String>,
}

csrf_form!(SendForm);

/// `POST /account/factor-link/send`: mails the link to the signed-in user, when it is what they need.
pub async fn send(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Account { session, user }: Account,
    Checked(f): Checked<SendForm>,
) -> Response {
    let Some(mailer) = &s.mailer else { return no_mail() };
    let next = local(f.next.as_deref());
    match enrolment::may_change_factors(&s.provider, &session, now(&s)).await {
        Ok(FactorChange::EmailLinkNeeded) => {}
        Ok(_) => return html::secure(Redirect::to(&next).into_response(), None),
        Err(e) => {
            tracing::error!(error = %e, "second-factor lookup failed");
            return unavailable();
        }
    }
    let ip = client_ip(Some(&addr));
    if let Some(resp) = mail_rate(&s, ip.as_deref()) {
        return resp;
    }
    let email = user.email.clone();
    mailer.submit(Job::Enrolment { user, next, ip });
    let within = portico_protocol::mail::lifetime(enrolment::LINK_TTL);
    Message::new("Check your mail", "Check your mail")
        .text(vec![
            t("A link is on its way to "),
            strong(email),
            t(format!(". Open it in this browser within {within} to set up two-step verification.")),
        ])
        .page(StatusCode::OK)
}

/// `GET /account/factor-link?token=`: a button that spends the link (a mail scanner's GET spends nothing).
pub async fn form(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<TokenQuery>) -> Response {
    let Some(token) = q.token else { return dead() };
    link_page(
        &s,
        &headers,
        &MailedLink {
            action: "/account/factor-link",
            title: "Set up two-step verification",
            text: "Continue to set up two-step verification for your account, in this browser.",
            ask_password: false,
            button: "Continue",
        },
        &token,
    )
}

fn dead() -> Response {
    Message::new("Link not valid", "This link is not valid")
        .text(vec![t("It was used already, or it expired. Ask for a new one from your account page.")])
        .page(StatusCode::BAD_REQUEST)
}

/// `POST /account/factor-link`: this session may set up the first factor for a while.
pub async fn open(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, Checked(f): Checked<TokenForm>) -> Response {
    let session = match Account::of(&s, &headers).await {
        Ok(Some(account)) => account.session,
        Ok(None) => {
            return Message::new("Sign in first", "Sign in first")
                .text(vec![t("Open the link in the browser where you are signed in. It still works.")])
                .link("/login?next=/account", "Sign in")
                .page(StatusCode::FORBIDDEN);
        }
        Err(e) => {
            tracing::error!(error = %e, "session lookup failed");
            return unavailable();
        }
    };
    match enrolment::open_link(&s.provider, &f.token, &session, client_ip(Some(&addr)), now(&s)).await {
        Ok(LinkOutcome::Opened { next }) => html::secure(Redirect::to(&local(next.as_deref())).into_response(), None),
        Ok(LinkOutcome::OtherUser) => Message::new("Another account", "This link is for another account")
            .text(vec![t("Sign out, sign in as the account it was sent to, and open it again.")])
            .page(StatusCode::FORBIDDEN),
        Ok(LinkOutcome::Dead) => dead(),
        Err(e) => {
            tracing::error!(error = %e, "enrolment link failed");
            unavailable()
        }
    }
}
