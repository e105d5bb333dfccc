//! The back-channel logout receiver (OIDC Back-Channel Logout §2.6 and §2.8), through a real
//! router, and the refusal of the ended session's access tokens afterwards — in memory and, for
//! several replicas, in PostgreSQL.

use crate::support::Db;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use portico_guard::marks::PgMarks;
use portico_guard::testing::{TestIssuer, TestKey};
use portico_guard::{Guard, ManualClock, Reason, Refusal};
use serde_json::json;
use tower::ServiceExt;

const CRM: &str = "https://crm.example.test";

fn receiver(guard: &Guard) -> Router {
    Router::new().route("/backchannel-logout", guard.logout_route())
}

async fn post(app: &Router, body: String, content_type: &str) -> StatusCode {
    let req = Request::post("/backchannel-logout")
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    if res.status() != StatusCode::PAYLOAD_TOO_LARGE {
        assert_eq!(res.headers().get(header::CACHE_CONTROL).unwrap(), "no-store");
    }
    res.status()
}

async fn send(app: &Router, token: &str) -> StatusCode {
    post(app, format!("logout_token={token}"), "application/x-www-form-urlencoded").await
}

#[tokio::test]
async fn a_logout_ends_that_session_and_no_other() {
    let issuer = TestIssuer::new("https://id.example.test");
    let guard = issuer.builder(CRM).logout_client("crm-web").connect().await.unwrap();
    let app = receiver(&guard);
    let ended = issuer.claims("usr_ada", CRM);
    let other = issuer.claims("usr_ada", CRM);
    let (ended_token, other_token) = (issuer.sign(&ended), issuer.sign(&other));
    assert!(guard.verify(&ended_token).await.is_ok());
    let logout = issuer.sign_logout(&issuer.logout_claims("crm-web", ended.sid.as_deref(), Some("usr_ada")));
    assert_eq!(send(&app, &logout).await, StatusCode::OK);
    assert_eq!(guard.verify(&ended_token).await, Err(Refusal::Unauthorized(Reason::SessionEnded)));
    assert!(guard.verify(&other_token).await.is_ok(), "another session of the same user stays");
    assert_eq!(send(&app, &logout).await, StatusCode::BAD_REQUEST, "a replayed logout token");
}

#[tokio::test]
async fn a_logout_without_sid_ends_every_session_of_the_user_issued_before_it() {
    let issuer = TestIssuer::new("https://id.example.test");
    let clock = ManualClock::starting_now();
    let guard = issuer.builder(CRM).logout_client("crm-web").clock(clock.clone()).connect().await.unwrap();
    let app = receiver(&guard);
    let before = issuer.sign(&issuer.claims("usr_ada", CRM));
    let someone_else = issuer.sign(&issuer.claims("usr_bob", CRM));
    assert_eq!(
        send(&app, &issuer.sign_logout(&issuer.logout_claims("crm-web", None, Some("usr_ada")))).await,
        StatusCode::OK
    );
    assert_eq!(guard.verify(&before).await, Err(Refusal::Unauthorized(Reason::SessionEnded)));
    assert!(guard.verify(&someone_else).await.is_ok());
    clock.advance(5);
    let mut after = issuer.claims("usr_ada", CRM);
    after.iat = clock.now();
    assert!(guard.verify(&issuer.sign(&after)).await.is_ok(), "a later sign-in works");
    // Portico's clock a few seconds ahead of the product's: a token it issued just before the
    // logout carries an `iat` later than the product's "now", and is still refused.
    let mut ahead = issuer.claims("usr_bob", CRM);
    ahead.iat = clock.now() + 5;
    let mut logout = issuer.logout_claims("crm-web", None, Some("usr_bob"));
    logout.iat = clock.now() + 5;
    assert_eq!(send(&app, &issuer.sign_logout(&logout)).await, StatusCode::OK);
    assert_eq!(guard.verify(&issuer.sign(&ahead)).await, Err(Refusal::Unauthorized(Reason::SessionEnded)));
    // The mark holds for the rest of the old token's lifetime.
    clock.advance(500);
    assert_eq!(guard.verify(&before).await, Err(Refusal::Unauthorized(Reason::SessionEnded)));
}

#[tokio::test]
async fn every_rule_of_section_2_6_is_enforced() {
    let issuer = TestIssuer::new("https://id.example.test");
    let guard = issuer.builder(CRM).logout_client("crm-web").connect().await.unwrap();
    let app = receiver(&guard);
    let good = || issuer.logout_claims("crm-web", Some("sid-1"), Some("usr_ada"));
    let v = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = serde_json::to_value(good()).unwrap();
        f(&mut c);
        issuer.key.sign("logout+jwt", &c)
    };
    let now = guard.now();
    let cases: Vec<(&str, String)> = vec![
        ("an access token", issuer.sign(&issuer.claims("usr_ada", CRM))),
        ("typ JWT (an ID token)", issuer.key.sign("JWT", &good())),
        ("another client", v(&|c| c["aud"] = json!("pipelines-web"))),
        ("two audiences", v(&|c| c["aud"] = json!(["crm-web", "pipelines-web"]))),
        ("another issuer", v(&|c| c["iss"] = json!("https://evil.test"))),
        ("a nonce", v(&|c| c["nonce"] = json!("n"))),
        ("no events", v(&|c| drop(c.as_object_mut().unwrap().remove("events")))),
        ("another event", v(&|c| c["events"] = json!({"http://schemas.openid.net/event/other": {}}))),
        (
            "the event not an object",
            v(&|c| c["events"] = json!({"http://schemas.openid.net/event/backchannel-logout": "yes"})),
        ),
        (
            "neither sid nor sub",
            v(&|c| {
                c.as_object_mut().unwrap().remove("sid");
                c.as_object_mut().unwrap().remove("sub");
            }),
        ),
        ("no jti", v(&|c| drop(c.as_object_mut().unwrap().remove("jti")))),
        (
            "issued an hour ago",
            v(&|c| {
                c["iat"] = json!(now - 3600);
                c["exp"] = json!(now + 60);
            }),
        ),
        ("expired", v(&|c| c["exp"] = json!(now - 60))),
        ("issued in the future", v(&|c| c["iat"] = json!(now + 3600))),
        (
            "another key",
            TestKey::generate().sign_with_header(&json!({"alg": "EdDSA", "typ": "logout+jwt", "kid": issuer.key.kid}), &good()),
        ),
        (
            "alg none",
            issuer
                .key
                .sign_with_header(&json!({"alg": "none", "typ": "logout+jwt", "kid": issuer.key.kid}), &good()),
        ),
    ];
    for (what, token) in cases {
        assert_eq!(send(&app, &token).await, StatusCode::BAD_REQUEST, "{what}");
    }
    let token = issuer.sign_logout(&good());
    assert_eq!(
        post(&app, format!("logout_token={token}&logout_token={token}"), "application/x-www-form-urlencoded").await,
        StatusCode::BAD_REQUEST,
        "repeated"
    );
    assert_eq!(
        post(&app, format!("{{\"logout_token\":\"{token}\"}}"), "application/json").await,
        StatusCode::BAD_REQUEST,
        "not a form"
    );
    assert_eq!(
        post(&app, String::new(), "application/x-www-form-urlencoded").await,
        StatusCode::BAD_REQUEST,
        "missing"
    );
    assert_eq!(
        post(&app, format!("logout_token={}", "a".repeat(20_000)), "application/x-www-form-urlencoded").await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // None of the refused ones ended anything; the good one still works, once.
    let mut c = issuer.claims("usr_ada", CRM);
    c.sid = Some("sid-1".into());
    assert!(guard.verify(&issuer.sign(&c)).await.is_ok());
    assert_eq!(send(&app, &token).await, StatusCode::OK);
    assert_eq!(guard.verify(&issuer.sign(&c)).await, Err(Refusal::Unauthorized(Reason::SessionEnded)));
}

#[tokio::test]
async fn a_guard_without_a_logout_client_accepts_no_logout_token() {
    let issuer = TestIssuer::new("https://id.example.test");
    let guard = issuer.guard(CRM).await;
    let token = issuer.sign_logout(&issuer.logout_claims("crm-web", Some("s"), Some("u")));
    assert_eq!(send(&receiver(&guard), &token).await, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn marks_in_postgresql_reach_every_replica() {
    let Some(db) = Db::fresh().await else { return };
    let pool = db.pool().await;
    let marks = PgMarks::new(pool.clone());
    marks.install().await.unwrap();
    marks.install().await.unwrap(); // idempotent
    let issuer = TestIssuer::new("https://id.example.test");
    let one = issuer
        .builder(CRM)
        .logout_client("crm-web")
        .session_marks(marks.clone())
        .connect()
        .await
        .unwrap();
    let two = issuer
        .builder(CRM)
        .logout_client("crm-web")
        .session_marks(PgMarks::new(pool.clone()))
        .connect()
        .await
        .unwrap();
    let c = issuer.claims("usr_ada", CRM);
    let token = issuer.sign(&c);
    assert!(two.verify(&token).await.is_ok());
    let logout = issuer.sign_logout(&issuer.logout_claims("crm-web", c.sid.as_deref(), Some("usr_ada")));
    assert_eq!(send(&receiver(&one), &logout).await, StatusCode::OK);
    assert_eq!(
        two.verify(&token).await,
        Err(Refusal::Unauthorized(Reason::SessionEnded)),
        "the other replica refuses at once"
    );
    let mut later = issuer.claims("usr_ada", CRM);
    later.sid = Some("another".into());
    assert!(two.verify(&issuer.sign(&later)).await.is_ok());
    // A subject-wide mark, then a sweep far in the future forgets both.
    assert_eq!(
        send(&receiver(&two), &issuer.sign_logout(&issuer.logout_claims("crm-web", None, Some("usr_ada")))).await,
        StatusCode::OK
    );
    assert_eq!(one.verify(&issuer.sign(&later)).await, Err(Refusal::Unauthorized(Reason::SessionEnded)));
    assert_eq!(marks.sweep(i64::MAX).await.unwrap(), 2);
    // The store failing fails closed.
    pool.close().await;
    assert_eq!(two.verify(&token).await, Err(Refusal::Unauthorized(Reason::Unavailable)));
    db.drop_now().await;
}
