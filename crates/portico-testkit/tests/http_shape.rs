//! The shape of Portico's HTTP answers, in process (`Router::oneshot`, no socket): status codes,
//! the headers a client or browser acts on (`Cache-Control`, `WWW-Authenticate`, the content
//! type, the hosted pages' frame and content policies) and the error bodies, each as an inline snapshot
//! beside its request. The issuer's random port reads `{issuer}`.

use crate::*;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use base64::Engine;
use tower::ServiceExt;

/// The headers worth pinning, in this order.
const SHOWN: [&str; 8] = [
    "content-type",
    "cache-control",
    "pragma",
    "www-authenticate",
    "retry-after",
    "x-frame-options",
    "content-security-policy",
    "strict-transport-security",
];

/// Sends `req` through the server's router as the peer 127.0.0.1 and writes the answer down:
/// the status, the pinned headers, and a JSON body (pages: their length only).
async fn shape(s: &TestServer, mut req: Request<Body>) -> String {
    req.extensions_mut().insert(ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 40000))));
    let resp = s.running.router.clone().oneshot(req).await.expect("router answers");
    let mut out = format!("{}\n", resp.status().as_u16());
    for name in SHOWN {
        for v in resp.headers().get_all(name) {
            out.push_str(&format!("{name}: {}\n", v.to_str().unwrap_or("?")));
        }
    }
    let json = resp.headers().get("content-type").is_some_and(|v| v.to_str().unwrap_or("").contains("json"));
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.expect("body");
    let body = String::from_utf8_lossy(&bytes).replace(&s.base, "{issuer}");
    if json {
        out.push_str(&body);
    } else if !body.is_empty() {
        out.push_str("(page)");
    }
    out
}

fn form(path: &str, basic: Option<(&str, &str)>, body: &str) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        b = b.header("authorization", format!("Basic {v}"));
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

async fn oauth_errors_carry_their_status_challenge_and_no_store(s: &TestServer) {
    let wrong = shape(s, form("/oauth2/token", Some(("crm-web", "wrong")), "grant_type=client_credentials")).await;
    insta::assert_snapshot!(wrong, @r##"
        401
        content-type: application/json
        cache-control: no-store
        pragma: no-cache
        www-authenticate: Basic realm="portico"
        {"error":"invalid_client","error_description":"client authentication failed"}
        "##);
    let unsupported = shape(s, form("/oauth2/token", Some(("crm-web", SECRET)), "grant_type=password")).await;
    insta::assert_snapshot!(unsupported, @r##"
        400
        content-type: application/json
        cache-control: no-store
        pragma: no-cache
        {"error":"unsupported_grant_type","error_description":"unsupported grant_type"}
        "##);
    let repeated = shape(s, form("/oauth2/introspect", Some(("crm-web", SECRET)), "token=a&token=b")).await;
    insta::assert_snapshot!(repeated, @r##"
        400
        content-type: application/json
        cache-control: no-store
        pragma: no-cache
        {"error":"invalid_request","error_description":"a parameter is repeated"}
        "##);
    let no_token = shape(s, get("/oauth2/userinfo")).await;
    // RFC 6750 §3.1: no token at all, so no error code or other error information.
    insta::assert_snapshot!(no_token, @r##"
        401
        cache-control: no-store
        pragma: no-cache
        www-authenticate: Bearer realm="portico"
        "##);
    let bad_token = shape(
        s,
        Request::get("/oauth2/userinfo")
            .header("authorization", "Bearer nope")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    insta::assert_snapshot!(bad_token, @r##"
        401
        content-type: application/json
        cache-control: no-store
        pragma: no-cache
        www-authenticate: Bearer error="invalid_token", error_description="the access token is invalid or expired"
        {"error":"invalid_token","error_description":"the access token is invalid or expired"}
        "##);
}
both_stores!(oauth_errors_carry_their_status_challenge_and_no_store);

async fn the_admin_api_answers_problem_documents(s: &TestServer) {
    let anonymous = shape(s, get("/api/v1/grants")).await;
    insta::assert_snapshot!(anonymous, @r##"
        401
        content-type: application/problem+json
        cache-control: no-store
        www-authenticate: Bearer realm="portico-admin"
        {"detail":"an access token for the admin API is required","status":401,"title":"Unauthorized","type":"about:blank"}
        "##);
}
both_stores!(the_admin_api_answers_problem_documents);

async fn public_documents_are_cacheable_and_pages_are_not(s: &TestServer) {
    let discovery = shape(s, get("/.well-known/openid-configuration")).await;
    insta::assert_snapshot!(discovery.lines().take(3).collect::<Vec<_>>().join("\n"), @r##"
        200
        content-type: application/json
        cache-control: public, max-age=300
        "##);
    let login = shape(s, get("/login")).await;
    insta::assert_snapshot!(login, @r##"
        200
        content-type: text/html; charset=utf-8
        cache-control: no-store
        x-frame-options: DENY
        content-security-policy: default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'
        (page)
        "##);
    let expired = shape(s, get("/consent?req=nothing-waits-here")).await;
    insta::assert_snapshot!(expired, @r##"
        400
        content-type: text/html; charset=utf-8
        cache-control: no-store
        x-frame-options: DENY
        content-security-policy: default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'
        (page)
        "##);
    let unknown = shape(s, get("/no-such-page")).await;
    insta::assert_snapshot!(unknown, @r##"
        404
        "##);
}
both_stores!(public_documents_are_cacheable_and_pages_are_not);
