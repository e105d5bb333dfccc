//! Key rotation against a running server, as `portico keys rotate` does it: the next key is in the
//! JWKS before it signs, and tokens signed by the old key keep verifying after the switch.

use crate::*;
use portico_model::SigningAlg;
use portico_store::AuditEvent;

async fn jwks_kids(s: &TestServer) -> Vec<String> {
    let text = openidconnect::reqwest::get(format!("{}/oauth2/jwks", s.base))
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    doc["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

pub(crate) fn kid_of(jwt: &str) -> String {
    use base64::Engine;
    let head = jwt.split('.').next().expect("header");
    let v: serde_json::Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(head).expect("b64")).expect("json");
    v["kid"].as_str().expect("kid").to_owned()
}

/// HTTP Basic credentials of `client`, as the protocol functions take them.
fn basic(client: &str, secret: &str) -> portico_protocol::client_auth::ClientCredentials {
    portico_protocol::client_auth::ClientCredentials {
        basic: Some((client.into(), portico_model::Secret::new(secret))),
        ..Default::default()
    }
}

async fn cc_token(s: &TestServer) -> String {
    let (status, body) = post_basic(s, "/oauth2/token", "reports-web", REPORTS_SECRET, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().expect("token").to_owned()
}

async fn rotation_is_seen_by_the_running_server(s: &TestServer) {
    let p = &s.running.provider;
    let before = cc_token(s).await;
    let old_kid = kid_of(&before);
    let now = portico_testkit::now();
    // A successor that activates in an hour: published now, not signing yet.
    let next = portico_protocol::keys::generate(SigningAlg::EdDSA, &p.kek, now, now + 3600);
    let mut tx = s.store().write().await.unwrap();
    tx.insert_key(&next).await.expect("insert");
    tx.audit(AuditEvent::new(now, "key.rotated", "test"));
    tx.commit().await.unwrap();
    p.reload_if_changed().await.expect("reload");
    let kids = jwks_kids(s).await;
    assert!(kids.contains(&next.kid) && kids.contains(&old_kid), "{kids:?}");
    assert_eq!(kid_of(&cc_token(s).await), old_kid, "the next key does not sign before it activates");

    // A successor that activates a second from now (keys made in the same second as the first
    // would tie on activation time): from then on it signs, while a token the old key signed stays
    // good. Time is pinned through the protocol functions.
    let soon = portico_protocol::keys::generate(SigningAlg::EdDSA, &p.kek, now, now + 1);
    let mut tx = s.store().write().await.unwrap();
    tx.insert_key(&soon).await.expect("insert");
    tx.commit().await.unwrap();
    p.reload_if_changed().await.expect("reload");
    let creds = basic("reports-web", REPORTS_SECRET);
    let req = portico_protocol::token::TokenRequest {
        grant_type: Some("client_credentials".into()),
        ..Default::default()
    };
    let after = portico_protocol::token::exchange(p, &creds, req, now + 2).await.1.expect("token");
    assert_eq!(kid_of(&after.access_token), soon.kid);
    let intro = portico_protocol::introspect::introspect(p, &creds, Some(&before), now + 2)
        .await
        .expect("introspect");
    assert_eq!(intro["active"], true, "a token signed by the superseded key is still good within its lifetime");
    assert!(jwks_kids(s).await.contains(&old_kid));
}
both_stores!(rotation_is_seen_by_the_running_server);

/// Introspection remembers a token whose signature it checked; a remembered token is still
/// matched by its exact text and checked again at the source. Tampering with any part of one
/// (header, claims, signature) is a different token and fails its signature; fifty presentations
/// at once all answer alike and are remembered once; a revoked grant ends it at once.
async fn a_remembered_token_is_matched_exactly_and_checked_at_the_source(s: &TestServer) {
    let p = &s.running.provider;
    let creds = basic("reports-web", REPORTS_SECRET);
    let token = cc_token(s).await;
    let now = portico_testkit::now();
    let active = |t: String| {
        let creds = creds.clone();
        async move { portico_protocol::introspect::introspect(p, &creds, Some(&t), now).await.expect("introspect")["active"] == true }
    };
    // Fifty introspections at once over HTTP, on the server's two worker threads.
    let http = openidconnect::reqwest::Client::new();
    let sent = (0..50).map(|_| {
        let req = http
            .post(format!("{}/oauth2/introspect", s.base))
            .basic_auth("reports-web", Some(REPORTS_SECRET))
            .form(&[("token", token.as_str())]);
        tokio::spawn(async move { serde_json::from_str::<serde_json::Value>(&req.send().await.unwrap().text().await.unwrap()).unwrap()["active"] == true })
    });
    let at_once: Vec<bool> = futures_util::future::join_all(sent).await.into_iter().map(Result::unwrap).collect();
    assert!(at_once.iter().all(|a| *a), "{at_once:?}");
    assert_eq!(p.verified.len(), 1, "remembered once");

    let parts: Vec<&str> = token.split('.').collect();
    // One character changed in each part: a base64url letter swapped for another.
    let swap = |part: &str, at: usize| {
        let mut b = part.as_bytes().to_vec();
        b[at] = if b[at] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).unwrap()
    };
    let tampered = [
        format!("{}.{}.{}", swap(parts[0], 5), parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], swap(parts[1], parts[1].len() / 2), parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], swap(parts[2], 3)),
        format!("{}.{}.", parts[0], parts[1]),
        format!("{token}A"),
    ];
    for t in tampered {
        assert!(!active(t.clone()).await, "a tampered token was taken: {t}");
    }
    assert_eq!(p.verified.len(), 1, "nothing tampered is remembered");
    assert!(active(token.clone()).await, "the real one still is");

    // The grant that let reports-web have its token, revoked: the remembered token is inactive.
    let grants = s
        .store()
        .grants_for(
            &portico_model::Grantee::Client(portico_model::ClientId::new("reports-web")),
            &portico_model::ProductSlug::new("reports"),
        )
        .await
        .unwrap();
    assert!(!grants.is_empty(), "reports-web holds a grant");
    for g in grants {
        let store = s.store();
        let revoked = committed!(store, t => t.revoke_grant(&g.grantee, &g.product, &g.scope, "test", now, &|_| false))
            .await
            .unwrap();
        assert!(revoked);
    }
    assert!(!active(token.clone()).await, "a remembered token outlived its grant");
}
both_stores!(a_remembered_token_is_matched_exactly_and_checked_at_the_source);

/// A user's access token remembered by introspection (its signature checked once) still ends at
/// once (invariant 4) on every path that takes access tokens: after its refresh token is revoked
/// (the family with it) introspection says inactive and userinfo refuses it; and for a second
/// token, after its user is disabled, the same.
async fn a_remembered_user_token_ends_with_its_family_and_its_user(s: &TestServer) {
    use portico_protocol::{introspect, revoke, userinfo};
    let p = &s.running.provider;
    let crm = basic("crm-web", SECRET);
    let now = portico_testkit::now();
    let active = |t: String| {
        let crm = crm.clone();
        async move { introspect::introspect(p, &crm, Some(&t), now).await.expect("introspect")["active"] == true }
    };

    let tokens = code_flow_tokens(s).await;
    let (at, rt) = (tokens["access_token"].as_str().unwrap().to_owned(), tokens["refresh_token"].as_str().unwrap());
    assert!(active(at.clone()).await);
    assert!(userinfo::userinfo(p, &userinfo::Presented::bearer(&at), now).await.is_ok());
    let remembered = p.verified.len();
    revoke::revoke(p, &crm, Some(rt), None, now).await.expect("revoke");
    assert!(!active(at.clone()).await, "a remembered token outlived its revoked family");
    assert!(userinfo::userinfo(p, &userinfo::Presented::bearer(&at), now).await.is_err(), "userinfo took it");
    assert_eq!(p.verified.len(), remembered, "its signature is still remembered: only liveness ended it");

    let tokens = code_flow_tokens(s).await;
    let at = tokens["access_token"].as_str().unwrap().to_owned();
    assert!(active(at.clone()).await);
    let config = p.config();
    let by = portico_protocol::admin::Caller::cli();
    portico_protocol::admin::set_user_status(s.store(), &config, "ada@example.test", portico_model::UserStatus::Disabled, &by, now)
        .await
        .unwrap();
    assert!(!active(at.clone()).await, "a remembered token outlived its user");
    assert!(userinfo::userinfo(p, &userinfo::Presented::bearer(&at), now).await.is_err(), "userinfo took it");
}
both_stores!(a_remembered_user_token_ends_with_its_family_and_its_user);
