//! Session lifetimes: the deployment's (configuration) and a product's own, tighter ones. A
//! product's idle limit is its refresh token's lifetime without use; its absolute limit asks for a
//! fresh sign-in at authorization and stops refresh.

use crate::flow::decode_payload;
use crate::tenancy::{CRM_SECRET, REPORTS_SECRET, TENANTS, tokens};
use crate::*;
use portico_protocol::client_auth::ClientCredentials;
use portico_protocol::token::{TokenRequest, exchange};
use std::sync::LazyLock;

/// CRM: idle 10 minutes, at most an hour after sign-in. Reports: a fresh sign-in after 2 seconds.
static LIMITS: LazyLock<String> = LazyLock::new(|| {
    TENANTS
        .replace("slug = \"crm\"\n", "slug = \"crm\"\nsession_idle = \"10m\"\nsession_absolute = \"1h\"\n")
        .replace("slug = \"reports\"\n", "slug = \"reports\"\nsession_absolute = \"2s\"\n")
});

/// Refreshes at a chosen time, through the protocol (so the clock can be set).
async fn refresh_at(s: &TestServer, rt: &str, at: i64) -> Result<String, portico_protocol::ErrorCode> {
    let creds = ClientCredentials {
        basic: Some(("crm-web".into(), portico_model::Secret::new(CRM_SECRET))),
        ..Default::default()
    };
    let req = TokenRequest {
        grant_type: Some("refresh_token".into()),
        refresh_token: Some(rt.to_owned()),
        ..Default::default()
    };
    match exchange(&s.running.provider, &creds, req, at).await.1 {
        Ok(t) => Ok(t.refresh_token.expect("rotated")),
        Err(e) => Err(e.code),
    }
}

async fn a_product_idle_limit_ends_an_unused_refresh_token(s: &TestServer) {
    let t = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let signed_in = decode_payload(t["id_token"].as_str().unwrap())["auth_time"].as_i64().unwrap();
    let rt = t["refresh_token"].as_str().unwrap();
    // Used within ten minutes it lives on; each use restarts the ten minutes.
    let rt = refresh_at(s, rt, signed_in + 599).await.expect("within the idle limit");
    let rt = refresh_at(s, &rt, signed_in + 599 + 599).await.expect("the idle limit restarted");
    // Ten minutes without use: gone.
    assert_eq!(
        refresh_at(s, &rt, signed_in + 599 + 599 + 600).await,
        Err(portico_protocol::ErrorCode::InvalidGrant)
    );
}
both_stores!(a_product_idle_limit_ends_an_unused_refresh_token, &LIMITS);

async fn a_product_absolute_limit_stops_refresh_an_hour_after_sign_in(s: &TestServer) {
    let t = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let signed_in = decode_payload(t["id_token"].as_str().unwrap())["auth_time"].as_i64().unwrap();
    let mut rt = t["refresh_token"].as_str().unwrap().to_owned();
    // Used every nine minutes, never idle: still the hour after sign-in ends it.
    let mut at = signed_in;
    while at + 540 < signed_in + 3600 {
        at += 540;
        rt = refresh_at(s, &rt, at)
            .await
            .unwrap_or_else(|e| panic!("refresh at +{}s refused: {e:?}", at - signed_in));
    }
    assert_eq!(refresh_at(s, &rt, signed_in + 3600).await, Err(portico_protocol::ErrorCode::InvalidGrant));
}
both_stores!(a_product_absolute_limit_stops_refresh_an_hour_after_sign_in, &LIMITS);

async fn a_product_absolute_limit_asks_for_a_fresh_sign_in(s: &TestServer) {
    let mut b = Browser::new();
    let reports = tokens(&mut b, s, "reports-web", REPORTS_SECRET, "ada@example.test", Some("acme")).await;
    s.running.provider.clock.advance(std::time::Duration::from_millis(2100));
    // Silent authorization cannot give Reports a token from a sign-in that old.
    let (step, _) = crate::tenancy::start(&mut b, s, "reports-web", &[("organization", "acme"), ("prompt", "none")], "-").await;
    let crate::tenancy::Step::AtClient(loc) = step else {
        panic!("prompt=none showed a page")
    };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
    // Nor can its refresh token outlive it.
    let (status, _) = crate::tenancy::refresh(s, "reports-web", REPORTS_SECRET, reports["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400);
    // CRM, without such a limit, still goes through silently on the same session.
    let (step, _) = crate::tenancy::start(&mut b, s, "crm-web", &[("organization", "acme"), ("prompt", "none")], "-").await;
    let crate::tenancy::Step::AtClient(loc) = step else {
        panic!("prompt=none showed a page")
    };
    assert!(query_param(&loc, "code").is_some(), "{loc}");
    // An interactive request shows the login form again; signing in gives Reports its token.
    let (step, _) = crate::tenancy::start(&mut b, s, "reports-web", &[("organization", "acme")], "ada@example.test").await;
    let crate::tenancy::Step::AtClient(loc) = step else {
        panic!("no code after signing in again")
    };
    assert!(query_param(&loc, "code").is_some(), "{loc}");
}
both_stores!(a_product_absolute_limit_asks_for_a_fresh_sign_in, &LIMITS);

#[test]
fn deployment_session_lifetimes_are_checked() {
    use portico_server::config::Config;
    let with = |idle: &str, absolute: &str| Config {
        session_idle: idle.into(),
        session_absolute: absolute.into(),
        ..Config::default()
    };
    assert!(with("8h", "7d").validate().is_ok());
    assert_eq!(with("30m", "12h").settings().unwrap().session_idle, 1800);
    assert_eq!(with("30m", "12h").settings().unwrap().session_absolute, 43_200);
    for (idle, absolute) in [("10s", "7d"), ("8h", "100d"), ("9h", "8h"), ("soon", "7d")] {
        let e = with(idle, absolute).validate().expect_err(idle).to_string();
        assert!(e.contains("session_"), "{e}");
    }
}
