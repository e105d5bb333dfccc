//! The extractor and the gates through a real axum router: RFC 6750 answers, permission, scope,
//! acr and tenant gates, nothing of the token in a refusal.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use portico_guard::testing::TestIssuer;
use portico_guard::{Guard, Principal, Refusal};
use tower::ServiceExt;

const CRM: &str = "https://crm.example.test";

async fn whoami(p: Principal) -> String {
    p.sub
}

async fn write(p: Principal) -> Result<&'static str, Refusal> {
    p.require_permission("write:contacts")?;
    Ok("written")
}

fn app(guard: &Guard) -> Router {
    Router::new()
        .route("/me", get(whoami))
        .route("/write", get(write))
        .route("/layered", get(whoami).route_layer(guard.require_permission("read:contacts")))
        .route("/scoped", get(whoami).route_layer(guard.require_scope("contacts")))
        .route("/strong", get(whoami).route_layer(guard.require_acr(&["urn:portico:acr:mfa"])))
        .route("/tenants/{tenant}/contacts", get(whoami).route_layer(guard.require_tenant_param("tenant")))
        .route("/unwired", get(whoami).route_layer(guard.require_tenant_param("tenant")))
        .with_state(guard.clone())
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: String,
}

async fn call(app: &Router, path: &str, auth: &[&str]) -> Answer {
    let mut req = Request::get(path);
    for a in auth {
        req = req.header(header::AUTHORIZATION, *a);
    }
    let res = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status();
    let challenge = res.headers().get(header::WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned());
    let body = String::from_utf8(axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap().to_vec()).unwrap();
    Answer { status, challenge, body }
}

#[tokio::test]
async fn refusals_follow_rfc_6750_and_say_nothing_of_the_token() {
    let issuer = TestIssuer::new("https://id.example.test");
    let guard = issuer.guard(CRM).await;
    let app = app(&guard);
    let none = call(&app, "/me", &[]).await;
    assert_eq!(
        (none.status, none.challenge.as_deref()),
        (StatusCode::UNAUTHORIZED, Some("Bearer")),
        "no error code without credentials (§3.1)"
    );
    assert_eq!(none.body, "", "no error information either (§3.1)");
    let mut c = issuer.claims("usr_secret_subject", "https://reports.example.test");
    c.permissions = vec!["write:contacts".into()];
    let other = issuer.sign(&c);
    let bad = call(&app, "/me", &[&format!("Bearer {other}")]).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.challenge.unwrap().starts_with("Bearer error=\"invalid_token\""));
    assert!(!bad.body.contains("usr_secret_subject") && !bad.body.contains(&other[..20]), "{}", bad.body);
    let twice = call(&app, "/me", &[&format!("Bearer {other}"), &format!("Bearer {other}")]).await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    let basic = call(&app, "/me", &["Basic dXNlcjpwYXNz"]).await;
    assert_eq!((basic.status, basic.challenge.as_deref()), (StatusCode::UNAUTHORIZED, Some("Bearer")));
    let ok = call(&app, "/me", &[&format!("Bearer {}", issuer.sign(&issuer.claims("usr_ada", CRM)))]).await;
    assert_eq!((ok.status, ok.body.as_str()), (StatusCode::OK, "usr_ada"));
}

#[tokio::test]
async fn permission_scope_and_acr_gates_refuse_with_insufficient_scope() {
    let issuer = TestIssuer::new("https://id.example.test");
    let guard = issuer.guard(CRM).await;
    let app = app(&guard);
    let viewer = {
        let mut c = issuer.claims("usr_viewer", CRM);
        c.permissions = vec!["read:contacts".into()];
        format!("Bearer {}", issuer.sign(&c))
    };
    let editor = {
        let mut c = issuer.claims("usr_editor", CRM);
        c.permissions = vec!["read:contacts".into(), "write:contacts".into()];
        c.scope = "openid contacts".into();
        c.acr = Some("urn:portico:acr:mfa".into());
        format!("Bearer {}", issuer.sign(&c))
    };
    let refused = call(&app, "/write", &[&viewer]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.challenge.as_deref(), Some("Bearer error=\"insufficient_scope\""));
    assert_eq!(call(&app, "/write", &[&editor]).await.status, StatusCode::OK);
    assert_eq!(call(&app, "/layered", &[&viewer]).await.status, StatusCode::OK);
    assert_eq!(call(&app, "/layered", &[]).await.status, StatusCode::UNAUTHORIZED);
    let scoped = call(&app, "/scoped", &[&viewer]).await;
    assert_eq!(
        (scoped.status, scoped.challenge.as_deref()),
        (StatusCode::FORBIDDEN, Some("Bearer error=\"insufficient_scope\", scope=\"contacts\""))
    );
    assert_eq!(call(&app, "/scoped", &[&editor]).await.status, StatusCode::OK);
    assert_eq!(call(&app, "/strong", &[&viewer]).await.status, StatusCode::FORBIDDEN, "a password-only session");
    assert_eq!(call(&app, "/strong", &[&editor]).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_tenant_gate_admits_only_the_tokens_tenant() {
    let issuer = TestIssuer::new("https://id.example.test");
    let guard = issuer.guard(CRM).await;
    let app = app(&guard);
    let acme = {
        let mut c = issuer.claims("usr_ada", CRM);
        c.org_id = Some("ten_acme".into());
        format!("Bearer {}", issuer.sign(&c))
    };
    let untenanted = format!("Bearer {}", issuer.sign(&issuer.claims("usr_ada", CRM)));
    assert_eq!(call(&app, "/tenants/ten_acme/contacts", &[&acme]).await.status, StatusCode::OK);
    for path in ["/tenants/ten_globex/contacts", "/tenants/ten_acme%20/contacts", "/tenants/TEN_ACME/contacts"] {
        assert_eq!(call(&app, path, &[&acme]).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(call(&app, "/tenants/ten_acme/contacts", &[&untenanted]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        call(&app, "/unwired", &[&acme]).await.status,
        StatusCode::FORBIDDEN,
        "a tenant gate on a route without the parameter refuses"
    );
}
