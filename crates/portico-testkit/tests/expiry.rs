//! Expiry with pinned time: the protocol functions take `now`, so these tests call them on the
//! running server's provider at chosen instants instead of sleeping.

use crate::*;
use portico_model::Secret;
use portico_protocol::client_auth::ClientCredentials;
use portico_protocol::token::{self, TokenRequest};
use portico_protocol::{introspect, userinfo};

fn basic(client: &str, secret: &str) -> ClientCredentials {
    ClientCredentials {
        basic: Some((client.into(), Secret::new(secret))),
        ..Default::default()
    }
}

/// A fresh crm-web code for ada, with the time just after it was issued.
async fn fresh_code(s: &TestServer) -> (String, String, i64) {
    let (code, verifier) = crm_code(s).await;
    (code, verifier, portico_testkit::now())
}

fn code_request(code: &str, verifier: &str) -> TokenRequest {
    TokenRequest {
        grant_type: Some("authorization_code".into()),
        code: Some(code.into()),
        redirect_uri: Some(CALLBACK.into()),
        code_verifier: Some(verifier.into()),
        ..Default::default()
    }
}

async fn code_expires_after_sixty_seconds(s: &TestServer) {
    let p = &s.running.provider;
    // A code is good for 60 s: redeemed at 58 s it works...
    let (code, verifier, t) = fresh_code(s).await;
    let ok = token::exchange(p, &basic("crm-web", SECRET), code_request(&code, &verifier), t + 58).await.1;
    assert!(ok.is_ok(), "{:?}", ok.err());
    // ...and at 61 s it is refused as invalid_grant.
    let (code, verifier, t) = fresh_code(s).await;
    let late = token::exchange(p, &basic("crm-web", SECRET), code_request(&code, &verifier), t + 61).await.1;
    assert_eq!(late.expect_err("expired code").code.as_str(), "invalid_grant");
}
both_stores!(code_expires_after_sixty_seconds);

async fn access_tokens_expire_with_their_ttl(s: &TestServer) {
    let p = &s.running.provider;
    let tokens = code_flow_tokens(s).await;
    let at = tokens["access_token"].as_str().expect("access token");
    let t = portico_testkit::now();
    let crm = basic("crm-web", SECRET);
    // Within its ten minutes the token is active and opens userinfo...
    assert_eq!(introspect::introspect(p, &crm, Some(at), t + 590).await.expect("introspect")["active"], true);
    assert!(userinfo::userinfo(p, &userinfo::Presented::bearer(at), t + 590).await.is_ok());
    // ...after them it is inactive, and userinfo answers invalid_token.
    assert_eq!(introspect::introspect(p, &crm, Some(at), t + 601).await.expect("introspect")["active"], false);
    let err = userinfo::userinfo(p, &userinfo::Presented::bearer(at), t + 601)
        .await
        .expect_err("expired token");
    assert_eq!(err.code.as_str(), "invalid_token");
}
both_stores!(access_tokens_expire_with_their_ttl);

async fn refresh_tokens_expire(s: &TestServer) {
    let p = &s.running.provider;
    let tokens = code_flow_tokens(s).await;
    let rt = tokens["refresh_token"].as_str().expect("refresh token");
    let t = portico_testkit::now();
    let req = TokenRequest {
        grant_type: Some("refresh_token".into()),
        refresh_token: Some(rt.into()),
        ..Default::default()
    };
    let ttl = p.settings.refresh_ttl;
    let late = token::exchange(p, &basic("crm-web", SECRET), req.clone(), t + ttl + 1).await.1;
    assert_eq!(late.expect_err("expired refresh token").code.as_str(), "invalid_grant");
    // Refusing an expired token is not reuse: the token was not spent and still works in time.
    assert!(token::exchange(p, &basic("crm-web", SECRET), req, t + 10).await.1.is_ok());
}
both_stores!(refresh_tokens_expire);
