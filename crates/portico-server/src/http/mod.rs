//! HTTP: extract, call one protocol function, map the outcome to a response.

pub mod account;
pub mod api;
pub mod cookies;
pub mod demo;
pub mod enrolment;
pub mod flow;
pub mod html;
pub mod limits;
pub mod logout;
pub mod mfa;
pub mod oauth;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod passkey;
pub mod password;
pub mod proxy;
pub mod second_factor;
pub mod signup;

use axum::http::HeaderMap;

/// Seconds since the Unix epoch: the `now` every protocol function takes.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// The caller's address: the socket's peer, or the client behind a trusted proxy
/// ([`proxy::resolve_client`] puts it in `ConnectInfo`).
pub fn client_ip(connect: Option<&std::net::SocketAddr>) -> Option<String> {
    connect.map(|a| a.ip().to_string())
}

pub fn user_agent(headers: &HeaderMap) -> String {
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}
