//! The SSO session cookie and the CSRF cookie. HttpOnly, SameSite=Lax; `Secure` and the `__Host-`
//! prefix when the issuer is https.

use crate::app::AppState;
use axum::http::{HeaderMap, HeaderValue, header};
use subtle::ConstantTimeEq;

pub fn session_name(state: &AppState) -> &'static str {
    if state.secure_cookies { "__Host-portico_session" } else { "portico_session" }
}

/// The cookie that carries a sign-in between the password and the second factor.
pub fn mfa_name(state: &AppState) -> &'static str {
    if state.secure_cookies { "__Host-portico_mfa" } else { "portico_mfa" }
}

/// The cookie that binds pending authorization requests to the browser that started them.
pub fn binding_name(state: &AppState) -> &'static str {
    if state.secure_cookies { "__Host-portico_authz" } else { "portico_authz" }
}

/// This browser's binding value, and the cookie to set when it has none yet. One value per
/// browser (a session cookie), so requests started in several tabs all stay bound.
pub fn binding(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match get(headers, binding_name(state)) {
        Some(v) if v.len() >= 32 && v.len() <= 64 => (v.to_owned(), None),
        _ => {
            let t = portico_protocol::random::token();
            // SameSite=None where cookies are Secure: a client that POSTs its authorization
            // request from its own site must not make the browser mint a new binding (and lose
            // the requests of its other tabs). It authenticates nothing; forms still carry the
            // CSRF token, whose cookie stays Lax.
            let cookie = if state.secure_cookies {
                let value = format!("{}={t}; Path=/; HttpOnly; SameSite=None; Secure", binding_name(state));
                HeaderValue::from_str(&value).expect("cookie is ascii")
            } else {
                set(state, binding_name(state), &t, None)
            };
            (t, Some(cookie))
        }
    }
}

/// The hash a request stores for this browser's binding, if it has one.
pub fn binding_hash(state: &AppState, headers: &HeaderMap) -> Option<String> {
    get(headers, binding_name(state)).map(portico_protocol::random::hash)
}

pub fn csrf_name(state: &AppState) -> &'static str {
    if state.secure_cookies { "__Host-portico_csrf" } else { "portico_csrf" }
}

/// A cookie's value from the request.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value; `max_age` of `None` makes a browser-session cookie.
pub fn set(state: &AppState, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if state.secure_cookies {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    HeaderValue::from_str(&c).expect("cookie is ascii")
}

/// The CSRF token for a form: the existing cookie's value, or a new one to set.
pub fn csrf_token(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match get(headers, csrf_name(state)) {
        Some(v) if v.len() >= 32 => (v.to_owned(), None),
        _ => {
            let t = portico_protocol::random::token();
            let cookie = set(state, csrf_name(state), &t, None);
            (t, Some(cookie))
        }
    }
}

/// Double-submit check: the form's `csrf` equals the cookie, compared in constant time.
pub fn csrf_ok(state: &AppState, headers: &HeaderMap, form_value: Option<&str>) -> bool {
    match (get(headers, csrf_name(state)), form_value) {
        (Some(c), Some(f)) if c.len() >= 32 => c.as_bytes().ct_eq(f.as_bytes()).into(),
        _ => false,
    }
}
