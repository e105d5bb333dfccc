//! The developer demo of `portico dev`: a page at `/` to sign in to each demo product through the
//! real authorization code flow (PKCE, state), acting as that product's backend, and to see the
//! tokens it received, decoded.

use super::html::{self, esc};
use super::{cookies, now};
use crate::app::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
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
    let mails: String = sink
        .mails()
        .iter()
        .map(|m| {
            format!(
                "<article><h2>{}</h2><p class=\"muted\">to {} · {}</p><pre>{}</pre></article>",
                esc(&m.subject),
                esc(&m.to.join(", ")),
                super::account::when(m.at),
                linkify(&m.text, issuer)
            )
        })
        .collect();
    let body = if mails.is_empty() {
        "<h1>Mail</h1><p>No mail yet. Sign-up, password reset and email verification send mail here.</p>".to_owned()
    } else {
        format!("<h1>Mail</h1><p class=\"muted\">What Portico sent through SMTP to the development sink, newest first. Reload to see new mail.</p>{mails}")
    };
    html::secure((StatusCode::OK, Html(html::page("Mail", &body, true))).into_response(), None)
}

/// Escapes a mail's text and makes Portico's own links in it clickable.
fn linkify(text: &str, issuer: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let trimmed = word.trim_end();
            if trimmed.starts_with(&format!("{issuer}/")) {
                format!("<a href=\"{0}\">{0}</a>{1}", esc(trimmed), &word[trimmed.len()..])
            } else {
                esc(word)
            }
        })
        .collect()
}

pub fn callback_uri(issuer: &str, client: &str) -> String {
    format!("{issuer}/demo/callback/{client}")
}

pub async fn home(State(s): State<AppState>) -> Response {
    let Some(demo) = &s.demo else {
        let body = "<h1>Portico</h1><p>This identity provider is running.</p><p><a href=\"/.well-known/openid-configuration\">OpenID configuration</a></p>";
        return html::html(StatusCode::OK, "Portico", body);
    };
    let users: String = demo
        .users
        .iter()
        .map(|(e, p, g)| format!("<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>", esc(e), esc(p), esc(g)))
        .collect();
    let products: String = demo
        .clients
        .iter()
        .map(|c| {
            format!(
                "<a class=\"button\" href=\"/demo/login/{}\">Sign in to {}</a> ",
                esc(&c.client_id),
                esc(&c.product)
            )
        })
        .collect();
    let body = format!(
        "<h1>Portico — developer demo</h1><p>Sign in to a demo product. Each button runs the authorization code flow with PKCE as that product's backend would, then shows the tokens it received.</p>\
         <p>{products}</p><h2>Demo users</h2><table><tr><th>email</th><th>password</th><th>access</th></tr>{users}</table>\
         <p class=\"muted\">Signing in to a second product needs no second login: the SSO session carries over.</p>\
         <p class=\"muted\"><a href=\"/account\">Your account and sessions</a> · <a href=\"/dev/mail\">Mail sent</a> · <a href=\"/.well-known/openid-configuration\">OpenID configuration</a> · <a href=\"/oauth2/jwks\">JWKS</a> · <a href=\"/metrics\">metrics</a></p>"
    );
    html::secure((StatusCode::OK, Html(html::page("Demo", &body, true))).into_response(), None)
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
        let body = format!(
            "<h1>{} refused the sign-in</h1><p class=\"error\">{}: {}</p><p><a href=\"/\">Back</a></p>",
            esc(&c.product),
            esc(&e),
            esc(&q.error_description.unwrap_or_default())
        );
        return html::html(StatusCode::OK, "Refused", &body);
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
    let body = match token::exchange(&s.provider, &creds, req, now()).await.1 {
        Ok(t) => format!(
            "<h1>Signed in to {}</h1><p>The product's backend received these tokens.</p>{}<h2>Access token (for {})</h2><pre>{}</pre><h2>ID token</h2><pre>{}</pre>\
             <h2>Refresh token</h2><p class=\"muted\">{}</p><p><a href=\"/\">Back to the demo</a></p>",
            esc(&c.product),
            // A tenant-aware product: switching organization is a new authorization, which the
            // SSO session answers without a login form (the picker shows when there is a choice).
            if t.org_id.is_some() {
                format!("<p><a class=\"button\" href=\"/demo/login/{}\">Switch organization</a></p>", esc(&c.client_id))
            } else {
                String::new()
            },
            esc(&c.product),
            esc(&decode_jwt(&t.access_token)),
            esc(&t.id_token.as_deref().map(decode_jwt).unwrap_or_default()),
            if t.refresh_token.is_some() { "received (opaque, rotating)" } else { "none" }
        ),
        Err(e) => format!(
            "<h1>The token request failed</h1><p class=\"error\">{}: {}</p><p><a href=\"/\">Back</a></p>",
            e.code.as_str(),
            esc(e.description)
        ),
    };
    html::secure((StatusCode::OK, Html(html::page("Tokens", &body, true))).into_response(), None)
}
