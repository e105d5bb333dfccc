//! The developer demo of `portico dev`: a page at `/` to sign in to each demo product through the
//! real authorization code flow (PKCE, state), acting as that product's backend, and to see the
//! tokens it received, decoded.

use super::html;
use super::{cookies, now};
use crate::app::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portico_model::Secret;
use portico_protocol::client_auth::ClientCredentials;
use portico_protocol::random;
use portico_protocol::token::{self, TokenRequest};

pub struct DemoClient {
    pub client_id: String,
    pub secret: Secret,
    pub product: String,
}

/// What `portico dev` made: demo clients (with their secrets) and demo users (with passwords).
pub struct Demo {
    pub clients: Vec<DemoClient>,
    pub users: Vec<(String, String, String)>,
    /// The loopback SMTP sink Portico's mail goes to, shown at `/dev/mail`.
    pub mail: Option<crate::mailsink::MailSink>,
}

/// `/dev/mail`: the mails `portico dev` sent (to its own SMTP sink), newest first, links clickable.
pub async fn mail(State(s): State<AppState>) -> Response {
    let Some(sink) = s.demo.as_ref().and_then(|d| d.mail.as_ref()) else {
        return html::error_page(StatusCode::NOT_FOUND, "The mail page exists only in `portico dev`.");
    };
    let issuer = &s.provider.issuer;
    let mails = sink
        .mails()
        .iter()
        .map(|m| MailView {
            subject: m.subject.clone(),
            to: m.to.join(", "),
            at: super::account::when(m.at),
            words: words(&m.text, issuer),
        })
        .collect();
    html::view(
        StatusCode::OK,
        &MailPage {
            title: "Mail",
            wide: true,
            mails,
        },
    )
}

#[derive(askama::Template)]
#[template(path = "demo_mail.html")]
struct MailPage<'a> {
    title: &'a str,
    wide: bool,
    mails: Vec<MailView>,
}

struct MailView {
    subject: String,
    to: String,
    at: String,
    words: Vec<Word>,
}

/// A piece of a mail's text: Portico's own links are clickable.
enum Word {
    Link(String),
    Text(String),
}

/// A mail's text in pieces, each of Portico's own links (`issuer/…`) one.
fn words(text: &str, issuer: &str) -> Vec<Word> {
    let mut out = Vec::new();
    for word in text.split_inclusive(char::is_whitespace) {
        let trimmed = word.trim_end();
        if trimmed.starts_with(&format!("{issuer}/")) {
            out.push(Word::Link(trimmed.to_owned()));
            out.push(Word::Text(word[trimmed.len()..].to_owned()));
        } else {
            out.push(Word::Text(word.to_owned()));
        }
    }
    out
}

pub fn callback_uri(issuer: &str, client: &str) -> String {
    format!("{issuer}/demo/callback/{client}")
}

pub async fn home(State(s): State<AppState>) -> Response {
    let Some(demo) = &s.demo else {
        return html::Message::new("Portico", "Portico")
            .text(vec![html::t("This identity provider is running.")])
            .link("/.well-known/openid-configuration", "OpenID configuration")
            .page(StatusCode::OK);
    };
    let page = HomePage {
        title: "Demo",
        wide: true,
        clients: &demo.clients,
        users: &demo.users,
    };
    html::view(StatusCode::OK, &page)
}

#[derive(askama::Template)]
#[template(path = "demo_home.html")]
struct HomePage<'a> {
    title: &'a str,
    wide: bool,
    clients: &'a [DemoClient],
    /// (email, password, what they may reach)
    users: &'a [(String, String, String)],
}

#[derive(askama::Template)]
#[template(path = "demo_tokens.html")]
struct TokensPage<'a> {
    title: &'a str,
    wide: bool,
    product: &'a str,
    /// A tenant-aware product: switching organization is a new authorization, which the SSO
    /// session answers without a login form (the picker shows when there is a choice).
    switch: Option<&'a str>,
    access: String,
    id_token: String,
    refresh: bool,
}

fn demo_client<'a>(s: &'a AppState, id: &str) -> Option<&'a DemoClient> {
    s.demo.as_ref()?.clients.iter().find(|c| c.client_id == id)
}

pub async fn start(State(s): State<AppState>, Path(client): Path<String>) -> Response {
    let Some(c) = demo_client(&s, &client) else {
        return html::error_page(StatusCode::NOT_FOUND, "No such demo product.");
    };
    let state = random::token();
    let verifier = random::token();
    let challenge = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref());
    let query = serde_urlencoded::to_string([
        ("response_type", "code"),
        ("client_id", c.client_id.as_str()),
        ("redirect_uri", callback_uri(&s.provider.issuer, &c.client_id).as_str()),
        ("scope", "openid profile email offline_access"),
        ("state", state.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ])
    .expect("encodes");
    let mut resp = Redirect::to(&format!("/oauth2/authorize?{query}")).into_response();
    let cookie = cookies::set(&s, "portico_demo", &format!("{state}.{verifier}"), Some(600));
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    resp
}

#[derive(serde::Deserialize)]
pub struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn decode_jwt(jwt: &str) -> String {
    let part = |i: usize| {
        jwt.split('.')
            .nth(i)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|v| serde_json::to_string_pretty(&v).unwrap_or_default())
            .unwrap_or_default()
    };
    format!("{}\n{}", part(0), part(1))
}

pub async fn callback(State(s): State<AppState>, Path(client): Path<String>, headers: HeaderMap, Query(q): Query<CallbackQuery>) -> Response {
    let Some(c) = demo_client(&s, &client) else {
        return html::error_page(StatusCode::NOT_FOUND, "No such demo product.");
    };
    if let Some(e) = q.error {
        return html::Message::new("Refused", &format!("{} refused the sign-in", c.product))
            .alert(&format!("{e}: {}", q.error_description.unwrap_or_default()))
            .link("/", "Back")
            .page(StatusCode::OK);
    }
    let Some((state, verifier)) = cookies::get(&headers, "portico_demo").and_then(|v| v.split_once('.')) else {
        return html::error_page(StatusCode::BAD_REQUEST, "The demo's state cookie is missing.");
    };
    if q.state.as_deref() != Some(state) {
        return html::error_page(StatusCode::BAD_REQUEST, "The state does not match: this response was not for this browser.");
    }
    let creds = ClientCredentials {
        basic: Some((c.client_id.clone(), c.secret.clone())),
        ..Default::default()
    };
    let req = TokenRequest {
        grant_type: Some("authorization_code".into()),
        code: q.code,
        redirect_uri: Some(callback_uri(&s.provider.issuer, &c.client_id)),
        code_verifier: Some(verifier.to_owned()),
        ..Default::default()
    };
    match token::exchange(&s.provider, &creds, req, now(&s)).await.1 {
        Ok(t) => {
            let page = TokensPage {
                title: "Tokens",
                wide: true,
                product: &c.product,
                switch: t.org_id.is_some().then_some(c.client_id.as_str()),
                access: decode_jwt(&t.access_token),
                id_token: t.id_token.as_deref().map(decode_jwt).unwrap_or_default(),
                refresh: t.refresh_token.is_some(),
            };
            html::view(StatusCode::OK, &page)
        }
        Err(e) => html::Message::new("Tokens", "The token request failed")
            .alert(&format!("{}: {}", e.code.as_str(), e.description))
            .link("/", "Back")
            .page(StatusCode::OK),
    }
}
