//! The JWKS cache against a real HTTP server: single-flight refetches, no refetch for a bad
//! signature, the last good set served while the issuer is down, rotation picked up, removal
//! honoured, and discovery misconfigurations refused at connect.

use crate::support::JwksServer;
use futures_util::future::join_all;
use portico_guard::testing::{TestIssuer, TestKey};
use portico_guard::{ConnectError, Guard, ManualClock, Reason, Refusal};
use serde_json::json;
use std::sync::atomic::Ordering;

const CRM: &str = "https://crm.example.test";

async fn served() -> (JwksServer, TestIssuer) {
    let key = TestKey::generate();
    let server = JwksServer::start(json!({ "keys": [key.jwk()] })).await;
    let mut issuer = TestIssuer::new(&server.issuer);
    issuer.key = key;
    (server, issuer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_unknown_kids_make_one_fetch() {
    let (server, issuer) = served().await;
    let clock = ManualClock::starting_now();
    let guard = Guard::builder(&server.issuer, CRM).clock(clock.clone()).connect().await.unwrap();
    assert_eq!(server.hits(), 1, "connect fetched once");
    clock.advance(31); // past the cooldown that follows every fetch
    let c = issuer.claims("usr_ada", CRM);
    let tokens: Vec<String> = (0..1000)
        .map(|i| TestKey::generate().sign_with_header(&json!({"alg": "EdDSA", "typ": "at+jwt", "kid": format!("random-{i}")}), &c))
        .collect();
    // A task each, on two worker threads: concurrent and parallel.
    let tasks = tokens.into_iter().map(|t| {
        let guard = guard.clone();
        tokio::spawn(async move { guard.verify(&t).await })
    });
    let outcomes = join_all(tasks).await;
    assert!(outcomes.into_iter().all(|o| o.unwrap() == Err(Refusal::Unauthorized(Reason::UnknownKey))));
    assert_eq!(server.hits(), 2, "one refetch for all of them");
    // And within the cooldown, another unknown kid fetches nothing more.
    let again = TestKey::generate().sign("at+jwt", &c);
    assert_eq!(guard.verify(&again).await, Err(Refusal::Unauthorized(Reason::UnknownKey)));
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_thousand_bad_signatures_with_a_known_kid_fetch_nothing() {
    let (server, issuer) = served().await;
    let guard = Guard::connect(&server.issuer, CRM).await.unwrap();
    let c = issuer.claims("usr_ada", CRM);
    let forger = TestKey::generate();
    let forged: Vec<String> = (0..1000)
        .map(|_| forger.sign_with_header(&json!({"alg": "EdDSA", "typ": "at+jwt", "kid": issuer.key.kid}), &c))
        .collect();
    let outcomes = join_all(forged.iter().map(|t| guard.verify(t))).await;
    assert!(outcomes.iter().all(|o| *o == Err(Refusal::Unauthorized(Reason::Signature))));
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn the_last_good_keys_serve_while_the_issuer_is_down_up_to_the_stale_limit() {
    let (server, issuer) = served().await;
    let clock = ManualClock::starting_now();
    let guard = Guard::builder(&server.issuer, CRM)
        .clock(clock.clone())
        .max_stale(3600)
        .connect()
        .await
        .unwrap();
    server.down.store(true, Ordering::SeqCst);
    assert!(guard.refresh_keys().await.is_err());
    clock.advance(600); // past max-age (300 s): stale, still served
    let token = issuer.sign(&{
        let mut c = issuer.claims("usr_ada", CRM);
        c.iat = clock.now();
        c.exp = c.iat + 600;
        c
    });
    assert!(guard.verify(&token).await.is_ok(), "a valid token passes while the JWKS endpoint is down");
    clock.advance(3500); // past the stale limit: fail closed until the issuer answers
    let late = issuer.sign(&{
        let mut c = issuer.claims("usr_ada", CRM);
        c.iat = clock.now();
        c.exp = c.iat + 600;
        c
    });
    let refused = guard.verify(&late).await.unwrap_err();
    assert_eq!(refused, Refusal::Unauthorized(Reason::StaleKeys));
    assert_eq!(axum::response::IntoResponse::into_response(refused).status(), 503);
    server.down.store(false, Ordering::SeqCst);
    guard.refresh_keys().await.unwrap();
    assert!(guard.verify(&late).await.is_ok());
}

#[tokio::test]
async fn a_rotated_key_is_accepted_and_a_removed_key_dropped_at_once() {
    let (server, issuer) = served().await;
    let clock = ManualClock::starting_now();
    let guard = Guard::builder(&server.issuer, CRM).clock(clock.clone()).connect().await.unwrap();
    let old_token = issuer.sign(&issuer.claims("usr_ada", CRM));
    // The issuer publishes a new key next to the old one and signs with it.
    let next = TestKey::generate();
    *server.jwks.write().unwrap() = json!({ "keys": [issuer.key.jwk(), next.jwk()] });
    let new_token = next.sign("at+jwt", &issuer.claims("usr_ada", CRM));
    assert_eq!(
        guard.verify(&new_token).await,
        Err(Refusal::Unauthorized(Reason::UnknownKey)),
        "within the cooldown of the last fetch"
    );
    clock.advance(31);
    assert!(guard.verify(&new_token).await.is_ok(), "the unknown kid refetched and found the new key");
    assert!(guard.verify(&old_token).await.is_ok());
    // Then retires the old key: the next successful answer drops it, without waiting.
    *server.jwks.write().unwrap() = json!({ "keys": [next.jwk()] });
    guard.refresh_keys().await.unwrap();
    assert_eq!(guard.verify(&old_token).await, Err(Refusal::Unauthorized(Reason::UnknownKey)));
    assert!(guard.verify(&new_token).await.is_ok());
    // After the cooldown, another unknown kid may refetch again.
    let hits = server.hits();
    clock.advance(31);
    let _ = guard.verify(&TestKey::generate().sign("at+jwt", &issuer.claims("usr_ada", CRM))).await;
    assert_eq!(server.hits(), hits + 1);
}

#[tokio::test(start_paused = true)]
async fn keys_refresh_in_the_background_before_max_age() {
    let issuer = TestIssuer::new("https://id.example.test");
    let _guard = issuer.guard(CRM).await;
    assert_eq!(issuer.keys.fetches(), 1);
    // max-age 300: refreshed at four fifths of it, without any request asking.
    tokio::time::sleep(std::time::Duration::from_secs(230)).await;
    assert_eq!(issuer.keys.fetches(), 1);
    tokio::time::sleep(std::time::Duration::from_secs(20)).await;
    assert_eq!(issuer.keys.fetches(), 2);
}

#[tokio::test]
async fn connect_fails_fast_on_misconfiguration() {
    let (server, _) = served().await;
    let err = |r: Result<Guard, ConnectError>| r.unwrap_err();
    assert!(matches!(
        err(Guard::connect(&format!("{}/other", server.issuer), CRM).await),
        ConnectError::Discovery(_)
    ));
    assert!(matches!(
        err(Guard::connect("http://id.example.test", CRM).await),
        ConnectError::InsecureIssuer(_)
    ));
    assert!(matches!(err(Guard::connect(&server.issuer, "*").await), ConnectError::InvalidAudience(_)));
    assert!(matches!(err(Guard::connect(&server.issuer, "").await), ConnectError::InvalidAudience(_)));
    // The issuer must name itself exactly as configured.
    let localhost = server.issuer.replace("127.0.0.1", "localhost");
    assert!(matches!(err(Guard::connect(&localhost, CRM).await), ConnectError::IssuerMismatch { .. }));
    // An issuer advertising only symmetric or no algorithms.
    *server.algs.write().unwrap() = json!(["HS256", "none"]);
    assert!(matches!(err(Guard::connect(&server.issuer, CRM).await), ConnectError::NoAlgorithms));
    // A key set with nothing usable.
    *server.algs.write().unwrap() = json!(["EdDSA"]);
    *server.jwks.write().unwrap() =
        json!({ "keys": [{ "kid": "e", "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "use": "enc" }] });
    assert!(matches!(err(Guard::connect(&server.issuer, CRM).await), ConnectError::Keys(_)));
    server.down.store(true, Ordering::SeqCst);
    assert!(matches!(err(Guard::connect(&server.issuer, CRM).await), ConnectError::Keys(_)));
    // Keys (and later the client secret) never travel in the clear.
    *server.jwks_uri.write().unwrap() = Some("http://keys.example.test/jwks".into());
    assert!(matches!(err(Guard::connect(&server.issuer, CRM).await), ConnectError::InsecureEndpoint(_)));
}

#[tokio::test]
async fn an_answer_without_usable_keys_does_not_wipe_the_last_good_set() {
    let (server, issuer) = served().await;
    let guard = Guard::connect(&server.issuer, CRM).await.unwrap();
    let token = issuer.sign(&issuer.claims("usr_ada", CRM));
    for answer in [
        json!({}),
        json!({"error": "oops"}),
        json!({"keys": "none"}),
        json!({"keys": [{"kid": "e", "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "use": "enc"}]}),
    ] {
        *server.jwks.write().unwrap() = answer.clone();
        assert!(guard.refresh_keys().await.is_err(), "{answer}");
        assert!(guard.verify(&token).await.is_ok(), "after {answer}");
    }
}
