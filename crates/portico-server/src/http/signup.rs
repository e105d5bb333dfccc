//! Sign-up and email verification on the hosted pages. The sign-up form is offered from the login
//! page of a product that takes sign-ups; it answers "check your email" the same way whether or not
//! the address has an account (the mail says which). The links in the mails lead to a page with a
//! button: following a link (as mail scanners do) spends nothing.

use super::flow::CsrfForm;
use super::flow::Flow;
use super::flow::{Account, Checked, csrf_form};
use super::html::{self, Message, a, strong, t};
use super::pages::with_cookie;
use super::password::{mail_rate, new_password_field, no_mail, scripted_page};
use super::{client_ip, cookies, now};
use crate::app::AppState;
use crate::mail::Job;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use portico_protocol::authorize::AuthRequest;
use portico_protocol::signup::{self, ConfirmRefusal, SignupRequest};
use portico_protocol::{password, password_policy};
use serde::Deserialize;
use std::net::SocketAddr;

/// The product an authorization request would sign up for, when it takes sign-ups and mail goes out.
pub fn offered(s: &AppState, req: &AuthRequest) -> Option<portico_model::Product> {
    s.mailer.as_ref()?;
    signup::product_open_to_signup(&s.provider.config(), &req.audience)
}

fn not_offered() -> Response {
    Message::new("Sign-up not available", "Sign-up is not available here")
        .text(vec![t("This application does not take sign-ups. Ask its administrator for access.")])
        .page(StatusCode::NOT_FOUND)
}

fn unavailable() -> Response {
    html::error_page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-up is unavailable right now. Try again.")
}

/// The sign-up form's body (the page around it is the caller's: it runs the strength meter).
fn signup_page(s: &AppState, csrf: &str, req: &AuthRequest, product: &str, name: &str, email: &str, error: Option<&str>) -> html::Fragment {
    html::fragment(&SignupPage {
        product,
        error,
        csrf,
        req: &req.id,
        name,
        email,
        password_field: &new_password_field(s, "password", "Password", None),
    })
}

#[derive(askama::Template)]
#[template(path = "signup.html")]
struct SignupPage<'a> {
    product: &'a str,
    error: Option<&'a str>,
    csrf: &'a str,
    req: &'a str,
    name: &'a str,
    email: &'a str,
    /// The new-password field with its strength meter, escaped where it is made.
    password_field: &'a html::Fragment,
}

#[derive(Deserialize)]
pub struct ReqQuery {
    req: Option<String>,
}

pub async fn signup_form(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, Query(q): Query<ReqQuery>) -> Response {
    if s.mailer.is_none() {
        return no_mail();
    }
    let req = match Flow::new(&s, headers.clone(), Some(&addr)).page_request(&s, q.req.as_deref()).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_offered(),
        Err(resp) => return resp,
    };
    let Some(product) = offered(&s, &req) else { return not_offered() };
    let (csrf, cookie) = cookies::csrf_token(&s, &headers);
    let email = req.login_hint.clone().unwrap_or_default();
    with_cookie(
        scripted_page(
            StatusCode::OK,
            "Create your account",
            &signup_page(&s, &csrf, &req, &product.name, "", &email, None),
        ),
        cookie,
    )
}

#[derive(Deserialize)]
pub struct SignupForm {
    name: String,
    email: String,
    password: String,
    csrf: Option<String>,
    req: Option<String>,
}

csrf_form!(SignupForm);

/// Whether `email` is one address a mail can go to.
fn deliverable(email: &str) -> bool {
    email.len() <= 254 && email.parse::<lettre::Address>().is_ok()
}

/// Checks the form, hashes the password (for every address alike) and queues the mail; the answer
/// names the address typed and nothing else.
pub async fn signup_submit(State(s): State<AppState>, flow: Flow, Checked(f): Checked<SignupForm>) -> Response {
    let Some(mailer) = &s.mailer else { return no_mail() };
    let req = match flow.form_request(&s, f.req.as_deref()).await {
        Ok(Some(r)) => r,
        Ok(None) => return not_offered(),
        Err(resp) => return resp,
    };
    let Some(product) = offered(&s, &req) else { return not_offered() };
    // Counted before the form is checked: the check costs CPU (the strength estimate).
    let ip = flow.browser.from.ip.clone();
    if let Some(resp) = mail_rate(&s, ip.as_deref()) {
        return resp;
    }
    let (email, name) = (f.email.trim(), f.name.trim());
    let refusal = if !deliverable(email) {
        Some("Enter an email address mail can be sent to.".to_owned())
    } else if name.is_empty() || name.chars().count() > 200 {
        Some("Enter your name (up to 200 characters).".to_owned())
    } else {
        s.provider
            .settings
            .password
            .check_async(&f.password, &[email, name])
            .await
            .err()
            .map(|r: password_policy::Refusal| r.to_string())
    };
    if let Some(message) = refusal {
        let (csrf, _) = flow.csrf(&s);
        return scripted_page(
            StatusCode::BAD_REQUEST,
            "Create your account",
            &signup_page(&s, &csrf, &req, &product.name, name, email, Some(&message)),
        );
    }
    let request = SignupRequest {
        email: email.to_owned(),
        name: name.to_owned(),
        password_hash: password::hash_async(f.password).await,
        product: product.slug.as_str().to_owned(),
        auth_request: Some(req.id.clone()),
    };
    mailer.submit(Job::Signup { request, ip });
    let within = portico_protocol::mail::lifetime(s.provider.settings.verify_link_ttl);
    Message::new("Check your email", "Check your email")
        .text(vec![
            t("We sent a mail to "),
            strong(email),
            t(format!(". Follow the link in it within {within} to finish.")),
        ])
        .muted(vec![
            t("No mail? Check the spam folder, or "),
            a(format!("/signup?req={}", req.id), "try again"),
            t("."),
        ])
        .page(StatusCode::OK)
}

#[derive(Deserialize)]
pub struct TokenQuery {
    pub(crate) token: Option<String>,
}

/// The page behind a mailed link: a button that posts the token (a GET spends nothing), and for
/// a sign-up the password chosen then (`ask_password`).
pub(crate) fn link_page(s: &AppState, headers: &HeaderMap, link: &MailedLink<'_>, token: &str) -> Response {
    let (csrf, cookie) = cookies::csrf_token(s, headers);
    let page = LinkPage {
        title: link.title,
        wide: false,
        text: link.text,
        action: link.action,
        csrf: &csrf,
        token,
        ask_password: link.ask_password,
        button: link.button,
    };
    with_cookie(html::view(StatusCode::OK, &page), cookie)
}

/// What a mailed link's page says and where its button posts.
pub(crate) struct MailedLink<'a> {
    pub action: &'a str,
    pub title: &'a str,
    pub text: &'a str,
    pub ask_password: bool,
    pub button: &'a str,
}

#[derive(askama::Template)]
#[template(path = "link_page.html")]
struct LinkPage<'a> {
    title: &'a str,
    wide: bool,
    text: &'a str,
    action: &'a str,
    csrf: &'a str,
    token: &'a str,
    ask_password: bool,
    button: &'a str,
}

fn dead_link(what: &str) -> Response {
    Message::new("Link expired", "This link no longer works")
        .alert(&format!("It was used already or it expired. {what}"))
        .page(StatusCode::BAD_REQUEST)
}

pub async fn confirm_form(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<TokenQuery>) -> Response {
    let Some(token) = q.token else { return dead_link("Sign up again.") };
    confirm_page(
        &s,
        &headers,
        &token,
        "One step left: confirm this email to create your account with the password you chose when you signed up.",
    )
}

fn confirm_page(s: &AppState, headers: &HeaderMap, token: &str, text: &'static str) -> Response {
    link_page(
        s,
        headers,
        &MailedLink {
            action: "/signup/confirm",
            title: "Confirm your email",
            text,
            ask_password: true,
            button: "Create my account",
        },
        token,
    )
}

#[derive(Deserialize)]
pub struct TokenForm {
    pub(crate) token: String,
    pub(crate) csrf: Option<String>,
    /// The sign-up confirmation's password.
    password: Option<String>,
}

csrf_form!(TokenForm);

/// Makes the account; the user then signs in (the link alone opens no session).
pub async fn confirm_submit(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Checked(f): Checked<TokenForm>,
) -> Response {
    let password = f.password.as_deref().unwrap_or("");
    let (user, req) = match signup::confirm(&s.provider, &f.token, password, client_ip(Some(&addr)), now(&s)).await {
        Ok(Ok(x)) => x,
        Ok(Err(ConfirmRefusal::LinkDead)) => return dead_link("Sign up again."),
        Ok(Err(ConfirmRefusal::WrongPassword)) => {
            let mut resp = confirm_page(&s, &headers, &f.token, "That is not the password chosen when signing up. Try again.");
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            return resp;
        }
        Ok(Err(ConfirmRefusal::Taken)) => {
            return Message::new("Account exists", "You already have an account")
                .text(vec![
                    t("An account with this email exists already. "),
                    a("/login", "Sign in"),
                    t(" or "),
                    a("/password/forgot", "choose a new password"),
                    t("."),
                ])
                .page(StatusCode::CONFLICT);
        }
        Err(e) => {
            tracing::error!(error = %e, "sign-up confirmation failed");
            return unavailable();
        }
    };
    // Back into the application's request when it is still waiting, else to the account page.
    let live = match req {
        Some(id) if portico_protocol::interaction::still_waiting(&s.provider, &id, now(&s)).await => Some(id),
        _ => None,
    };
    let next = live.map_or_else(|| "/login?next=/account".to_owned(), |id| format!("/login?req={id}"));
    Message::new("Account created", "Your account is ready")
        .text(vec![
            t("Your email "),
            strong(&user.email),
            t(" is confirmed. Sign in with your new password to continue."),
        ])
        .button(&next, "Continue to sign in")
        .page(StatusCode::OK)
}

/// Sends the signed-in user a link to verify their email.
pub async fn verify_send(
    State(s): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Account { user, .. }: Account,
    Checked(_): Checked<CsrfForm>,
) -> Response {
    let Some(mailer) = &s.mailer else { return no_mail() };
    let ip = client_ip(Some(&addr));
    if let Some(resp) = mail_rate(&s, ip.as_deref()) {
        return resp;
    }
    mailer.submit(Job::Verify { user, ip });
    html::secure(Redirect::to("/account?done=verification-sent").into_response(), None)
}

pub async fn verify_form(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<TokenQuery>) -> Response {
    let Some(token) = q.token else {
        return dead_link("Send a new one from your account page.");
    };
    link_page(
        &s,
        &headers,
        &MailedLink {
            action: "/account/verify-email",
            title: "Verify your email",
            text: "Confirm that this email is yours.",
            ask_password: false,
            button: "Verify my email",
        },
        &token,
    )
}

pub async fn verify_submit(State(s): State<AppState>, ConnectInfo(addr): ConnectInfo<SocketAddr>, Checked(f): Checked<TokenForm>) -> Response {
    match signup::verify_email(&s.provider, &f.token, client_ip(Some(&addr)), now(&s)).await {
        Ok(true) => Message::new("Email verified", "Your email is verified")
            .text(vec![t("Applications you sign in to from now on see it as verified.")])
            .link("/account", "Your account")
            .page(StatusCode::OK),
        Ok(false) => dead_link("Send a new one from your account page."),
        Err(e) => {
            tracing::error!(error = %e, "email verification failed");
            unavailable()
        }
    }
}
