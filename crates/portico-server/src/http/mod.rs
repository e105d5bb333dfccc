//! HTTP: extract, call one protocol function, map the outcome to a response.

pub mod account;
pub mod api;
pub mod cookies;
pub mod cors;
pub mod demo;
pub mod device;
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
pub mod track;

use axum::http::HeaderMap;

/// Seconds since the Unix epoch by the provider's clock: the `now` every protocol function takes
/// (a test moves the clock instead of sleeping).
pub fn now(s: &crate::app::AppState) -> i64 {
    s.provider.clock.now()
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
