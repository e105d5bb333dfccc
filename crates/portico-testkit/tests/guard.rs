//! portico-guard against a real Portico: its tokens verify for their own product only, a rotated
//! key is accepted without restarting the product, a sign-out reaches the guard through
//! back-channel logout, a hand-off is redeemed in one call, and introspection sees a revocation.

use crate::admin_api::{ADMIN, OPS_SECRET, admin_token, api};
use crate::backchannel::Port;
use crate::tenancy::{CRM_SECRET, REPORTS_SECRET, handoff, tokens};
use crate::*;
use portico_guard::{Guard, ManualClock, Reason, Refusal};
use std::time::Duration;

const CRM: &str = "https://crm.example.test";
const REPORTS: &str = "https://reports.example.test";

fn token(v: &serde_json::Value, name: &str) -> String {
    v[name].as_str().unwrap_or_else(|| panic!("{name} in {v}")).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_tokens_verify_for_their_own_product_and_a_rotated_key_without_a_restart() {
    let s = TestServer::start(Backend::Sqlite, &ADMIN).await.unwrap();
    let clock = ManualClock::starting_now();
    let crm = Guard::builder(&s.base, CRM).clock(clock.clone()).connect().await.unwrap();
    let reports = Guard::connect(&s.base, REPORTS).await.unwrap();
    let t = tokens(&mut Browser::new(), &s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let p = crm.verify(&token(&t, "access_token")).await.unwrap();
    assert!(p.sub.starts_with("usr_") && p.tenant.as_deref().is_some_and(|t| t.starts_with("ten_")), "{p:?}");
    assert_eq!(
        (p.roles.as_slice(), p.permissions.as_slice()),
        (&["editor".to_owned()][..], &["read:contacts".to_owned(), "write:contacts".to_owned()][..])
    );
    assert_eq!(p.tenant_name.as_deref(), Some("Acme Bank"));
    assert_eq!(
        reports.verify(&token(&t, "access_token")).await,
        Err(Refusal::Unauthorized(Reason::Audience)),
        "a CRM token at Reports"
    );
    assert_eq!(
        crm.verify(&token(&t, "id_token")).await,
        Err(Refusal::Unauthorized(Reason::Type)),
        "an ID token is not an access token"
    );

    // `portico keys rotate`: the next key is published, then signs.
    let provider = &s.running.provider;
    let now = provider.clock.now();
    portico_protocol::keys::publish(s.store(), &provider.kek, portico_model::SigningAlg::EdDSA, now + 1, "test", now)
        .await
        .unwrap();
    provider.reload_if_changed().await.unwrap();
    provider.clock.advance(Duration::from_secs(2));
    let fetches = crm.key_fetches();
    let t2 = tokens(&mut Browser::new(), &s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let (old_kid, new_kid) = (kid(&token(&t, "access_token")), kid(&token(&t2, "access_token")));
    assert_ne!(old_kid, new_kid, "the new key signs");
    clock.advance(31);
    assert!(crm.verify(&token(&t2, "access_token")).await.is_ok(), "accepted without restarting the product");
    assert_eq!(crm.key_fetches(), fetches + 1);
    assert!(crm.verify(&token(&t, "access_token")).await.is_ok(), "the old key still verifies its tokens");
    s.stop().await;
}

fn kid(jwt: &str) -> String {
    jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_reaches_the_guard_through_back_channel_logout() {
    let port = Port::reserve();
    let suite = crate::backchannel::suite(port.number());
    let s = TestServer::start(Backend::Sqlite, &suite).await.unwrap();
    let crm = Guard::builder(&s.base, CRM).logout_client("crm-web").connect().await.unwrap();
    let product = axum::Router::new().route("/bcl/crm", crm.logout_route());
    let listener = port.listen();
    tokio::spawn(async move { axum::serve(listener, product).await.unwrap() });

    let mut browser = Browser::new();
    let t = tokens(&mut browser, &s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let at = token(&t, "access_token");
    assert!(crm.verify(&at).await.is_ok());
    // Revoking the grant ends the product session: Portico tells the product, the guard refuses.
    let ops = admin_token(&s, "ops-bot", OPS_SECRET).await;
    let (status, _, body) = api(&s, "DELETE", "/api/v1/grants?user=ada@example.test&product=crm&tenant=acme", Some(&ops), None).await;
    assert_eq!(status, 204, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let started = tokio::time::Instant::now();
    while crm.verify(&at).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "the guard still accepts the revoked session's token");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(crm.verify(&at).await, Err(Refusal::Unauthorized(Reason::SessionEnded)));
    eprintln!("back-channel logout reached the guard in {:?}", started.elapsed());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_is_redeemed_in_one_call_and_only_once() {
    let s = TestServer::start(Backend::Sqlite, &ADMIN).await.unwrap();
    let reports = Guard::builder(&s.base, REPORTS)
        .client_credentials("reports-web", REPORTS_SECRET)
        .connect()
        .await
        .unwrap();
    let t = tokens(&mut Browser::new(), &s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let (status, h) = handoff(&s, &token(&t, "access_token"), &[("resource", REPORTS), ("context", "report=42")]).await;
    assert_eq!(status, 200, "{h}");
    let code = token(&h, "handoff_code");
    let landed = reports.redeem_handoff(&code).await.unwrap();
    assert_eq!(landed.context.as_deref(), Some("report=42"));
    assert_eq!(
        landed.principal.permissions,
        ["read:reports", "write:reports"],
        "Reports' own permissions, not CRM's"
    );
    assert!(landed.principal.tenant.is_some());
    assert!(format!("{reports:?}").contains("reports-web") && !format!("{reports:?}").contains(REPORTS_SECRET));
    match reports.redeem_handoff(&code).await {
        // RFC 8693 §2.2.2: an unacceptable subject token is `invalid_request`.
        Err(portico_guard::handoff::HandoffError::Refused(e)) => assert_eq!(e, "invalid_request"),
        other => panic!("a second redemption must fail, got {other:?}"),
    }
    // Redeemed by the wrong product's client: refused too.
    let crm = Guard::builder(&s.base, CRM).client_credentials("crm-web", CRM_SECRET).connect().await.unwrap();
    let (_, h) = handoff(&s, &token(&t, "access_token"), &[("resource", REPORTS)]).await;
    assert!(crm.redeem_handoff(&token(&h, "handoff_code")).await.is_err());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_sees_a_revoked_grant_and_fails_closed() {
    let s = TestServer::start(Backend::Sqlite, &ADMIN).await.unwrap();
    let clock = ManualClock::starting_now();
    let crm = Guard::builder(&s.base, CRM)
        .client_credentials("crm-web", CRM_SECRET)
        .clock(clock.clone())
        .connect()
        .await
        .unwrap();
    let t = tokens(&mut Browser::new(), &s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let at = token(&t, "access_token");
    assert!(crm.verify_introspected(&at).await.is_ok());
    let ops = admin_token(&s, "ops-bot", OPS_SECRET).await;
    let (status, _, _) = api(&s, "DELETE", "/api/v1/grants?user=ada@example.test&product=crm&tenant=acme", Some(&ops), None).await;
    assert_eq!(status, 204);
    assert!(crm.verify(&at).await.is_ok(), "the token itself still verifies until it expires");
    assert!(crm.verify_introspected(&at).await.is_ok(), "the answer is reused for up to 30 s");
    clock.advance(31);
    assert_eq!(crm.verify_introspected(&at).await, Err(Refusal::Unauthorized(Reason::Inactive)));
    // A guard without client credentials cannot introspect: refused, not let through.
    let bare = Guard::connect(&s.base, CRM).await.unwrap();
    let t = tokens(&mut Browser::new(), &s, "crm-web", CRM_SECRET, "ada@example.test", Some("globex")).await;
    assert_eq!(
        bare.verify_introspected(&token(&t, "access_token")).await,
        Err(Refusal::Unauthorized(Reason::Unavailable))
    );
    s.stop().await;
}
