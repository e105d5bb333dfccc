//! Tenants, the tenant picker, rotating handles, hand-off and token exchange, against a real server
//! (invariants 2, 3, 5 and 6 of DESIGN.md).

use crate::flow::decode_payload;
use crate::*;

pub const CRM_SECRET: &str = "crm-secret-0123456789abcdef0123456789abcdef";
pub const REPORTS_SECRET: &str = "reports-secret-0123456789abcdef0123456789ab";
pub const BILLING_SECRET: &str = "billing-secret-0123456789abcdef0123456789a";
pub const PASSWORD: &str = "a long enough test password";

/// Three products (two tenant-aware), three tenants, users with different mixes of grants.
pub const TENANTS: &str = r#"
[[product]]
slug = "crm"
name = "CRM"
audience = "https://crm.example.test"
tenant_aware = true
handoff_to = ["reports"]
exchange_to = ["reports"]
[product.roles]
viewer = ["read:contacts"]
editor = ["read:contacts", "write:contacts"]

[[product]]
slug = "reports"
name = "Reports"
audience = "https://reports.example.test"
tenant_aware = true
[product.roles]
analyst = ["read:reports"]
author = ["read:reports", "write:reports"]

[[product]]
slug = "billing"
name = "Billing"
audience = "https://billing.example.test"
[product.roles]
clerk = ["read:invoices"]

[[client]]
id = "crm-web"
product = "crm"
kind = "confidential"
secret = "crm-secret-0123456789abcdef0123456789abcdef"
redirect_uris = ["http://127.0.0.1:9/callback"]
grant_types = ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"]
first_party = true

[[client]]
id = "reports-web"
product = "reports"
kind = "confidential"
secret = "reports-secret-0123456789abcdef0123456789ab"
redirect_uris = ["http://127.0.0.1:9/callback"]
grant_types = ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"]
first_party = true

[[client]]
id = "reports-spa"
product = "reports"
kind = "public"
redirect_uris = ["http://127.0.0.1:9/callback"]
first_party = true

[[client]]
id = "billing-web"
product = "billing"
kind = "confidential"
secret = "billing-secret-0123456789abcdef0123456789a"
redirect_uris = ["http://127.0.0.1:9/callback"]
grant_types = ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:token-exchange"]
first_party = true

[[tenant]]
slug = "acme"
name = "Acme Bank"

[[tenant]]
slug = "globex"
name = "Globex"

[[tenant]]
slug = "initech"
name = "Initech"

[[user]]
email = "ada@example.test"
password = "a long enough test password"

[[user]]
email = "olga@example.test"
password = "a long enough test password"

[[user]]
email = "bob@example.test"
password = "a long enough test password"

[[grant]]
user = "ada@example.test"
product = "crm"
tenant = "acme"
roles = ["editor"]

[[grant]]
user = "ada@example.test"
product = "crm"
tenant = "globex"
roles = ["viewer"]

[[grant]]
user = "ada@example.test"
product = "reports"
tenant = "acme"
roles = ["analyst", "author"]

[[grant]]
user = "ada@example.test"
product = "billing"
roles = ["clerk"]

[[grant]]
user = "olga@example.test"
product = "crm"
tenant = "*"
roles = ["viewer"]

[[grant]]
user = "bob@example.test"
product = "crm"
tenant = "acme"
roles = ["viewer"]
"#;

/// Where an authorization request ended: at the client, or on a hosted page of Portico.
pub enum Step {
    AtClient(String),
    Page(String),
}

/// Starts an authorization at Portico for `client`, signing in with `email` if the login form
/// shows; stops at the client or at the first other page.
pub async fn start(b: &mut Browser, s: &TestServer, client: &str, extra: &[(&str, &str)], email: &str) -> (Step, String) {
    let (verifier, challenge) = pkce();
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", CALLBACK),
        ("scope", "openid offline_access"),
        ("state", "st"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    query.extend_from_slice(extra);
    let url = format!(
        "{}/oauth2/authorize?{}",
        s.base,
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&query).finish()
    );
    let (mut status, mut loc, mut page) = b.follow(&s.base, url).await;
    if status == 200 && page.contains("name=\"password\"") {
        (status, loc, page) = b.login(&s.base, &page, email, PASSWORD).await;
    }
    let step = match loc {
        Some(l) if (300..400).contains(&status) => Step::AtClient(l),
        _ => Step::Page(page),
    };
    (step, verifier)
}

/// Redeems a code at the token endpoint for a confidential client.
pub async fn redeem(s: &TestServer, client: &str, secret: &str, location: &str, verifier: &str) -> serde_json::Value {
    let code = query_param(location, "code").unwrap_or_else(|| panic!("no code in {location}"));
    let (status, body) = post_basic(
        s,
        "/oauth2/token",
        client,
        secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Signs `email` in to `client` for `organization` and returns the token response.
pub async fn tokens(b: &mut Browser, s: &TestServer, client: &str, secret: &str, email: &str, organization: Option<&str>) -> serde_json::Value {
    let extra: Vec<(&str, &str)> = organization.map(|o| vec![("organization", o)]).unwrap_or_default();
    match start(b, s, client, &extra, email).await {
        (Step::AtClient(l), v) => redeem(s, client, secret, &l, &v).await,
        (Step::Page(p), _) => panic!("expected a code, got a page: {p}"),
    }
}

/// Presents a refresh token for `client`.
pub async fn refresh(s: &TestServer, client: &str, secret: &str, refresh_token: &str) -> (u16, serde_json::Value) {
    post_basic(
        s,
        "/oauth2/token",
        client,
        secret,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)],
    )
    .await
}

/// Submits the tenant picker in `page` choosing the button labelled `name`.
async fn pick(b: &mut Browser, s: &TestServer, page: &str, name: &str) -> String {
    let handle = page
        .split("<button ")
        .find(|btn| btn.contains(&format!(">{name}")))
        .and_then(|btn| hidden(&btn.replace("name=\"organization\" value=", "name=\"h\" value="), "h"))
        .unwrap_or_else(|| panic!("no button for {name} in {page}"));
    assert!(handle.starts_with("th_"), "the picker names tenants by handle: {handle}");
    let form = [
        ("csrf", hidden(page, "csrf").unwrap()),
        ("req", hidden(page, "req").unwrap()),
        ("organization", handle),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, loc, body) = b.post_form(&format!("{}/select-tenant", s.base), &form).await;
    let next = loc.unwrap_or_else(|| panic!("picker did not redirect ({status}): {body}"));
    if !next.starts_with('/') && !next.starts_with(&s.base) {
        return next;
    }
    let (_, loc, body) = b.follow(&s.base, if next.starts_with('/') { format!("{}{next}", s.base) } else { next }).await;
    loc.unwrap_or_else(|| panic!("no authorization response: {body}"))
}

async fn picker_then_switch_without_a_form(s: &TestServer) {
    let mut b = Browser::new();
    let (step, verifier) = start(&mut b, s, "crm-web", &[], "ada@example.test").await;
    let Step::Page(page) = step else {
        panic!("two tenants and none named: expected the picker")
    };
    assert!(page.contains("Choose an organization") && page.contains("Acme Bank") && page.contains("Globex"));
    assert!(!page.contains("Initech"), "only tenants the user may enter");
    assert!(!page.contains("ten_"), "no tenant id in the page");
    let loc = pick(&mut b, s, &page, "Globex").await;
    let t = redeem(s, "crm-web", CRM_SECRET, &loc, &verifier).await;
    let at = decode_payload(t["access_token"].as_str().unwrap());
    assert_eq!(at["org_name"], "Globex");
    assert_eq!(at["roles"], serde_json::json!(["viewer"]));
    assert!(at["org_id"].as_str().unwrap().starts_with("ten_"));
    assert_eq!(t["org_id"], at["org_id"]);
    assert!(t["org_handle"].as_str().unwrap().starts_with("th_"));
    assert!(at.get("all_tenants").is_none());
    let globex = at["org_id"].clone();

    // Switching tenant: a new authorization naming the other tenant, silently.
    let acme = tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let acme_at = decode_payload(acme["access_token"].as_str().unwrap());
    assert_eq!(acme_at["org_name"], "Acme Bank");
    assert_eq!(acme_at["roles"], serde_json::json!(["editor"]));
    let (step, _) = start(&mut b, s, "crm-web", &[("organization", "globex"), ("prompt", "none")], "-").await;
    let Step::AtClient(loc) = step else {
        panic!("prompt=none tenant switch must not show a page")
    };
    assert!(query_param(&loc, "code").is_some(), "{loc}");

    // The refresh answers the current id and handle; the handle from the token response works as
    // `organization`.
    let (status, r) = refresh(s, "crm-web", CRM_SECRET, acme["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["org_id"], acme_at["org_id"]);
    let handle = r["org_handle"].as_str().unwrap().to_owned();
    let back = tokens(&mut b, s, "crm-web", CRM_SECRET, "-", Some(&handle)).await;
    assert_eq!(decode_payload(back["access_token"].as_str().unwrap())["org_name"], "Acme Bank");

    // The picker remembers the last choice (acme, just used): first, focused, marked.
    let (step, _) = start(&mut b, s, "crm-web", &[], "-").await;
    let Step::Page(page) = step else { panic!("expected the picker again") };
    let first = page.find("Acme Bank").unwrap();
    assert!(first < page.find("Globex").unwrap(), "last used first");
    assert!(page[..first].rsplit("<button").next().unwrap().contains("autofocus"), "last used focused");
    assert!(page.contains("(last used)"));
    assert_ne!(globex, acme_at["org_id"]);
}
both_stores!(picker_then_switch_without_a_form, TENANTS);

async fn one_tenant_goes_straight_through(s: &TestServer) {
    let mut b = Browser::new();
    let t = tokens(&mut b, s, "crm-web", CRM_SECRET, "bob@example.test", None).await;
    let at = decode_payload(t["access_token"].as_str().unwrap());
    assert_eq!(at["org_name"], "Acme Bank");
    assert_eq!(at["roles"], serde_json::json!(["viewer"]));
}
both_stores!(one_tenant_goes_straight_through, TENANTS);

async fn unknown_and_forbidden_tenants_get_the_same_answer(s: &TestServer) {
    let mut b = Browser::new();
    tokens(&mut b, s, "crm-web", CRM_SECRET, "bob@example.test", None).await;
    let p = &s.running.provider;
    let config = p.config();
    let initech = config.tenant_by_ref("initech").unwrap().id.clone();
    let long_ago = portico_testkit::now() - 3 * 1800;
    let stale_acme = p.tenant_handles.handle(&p.kek, &config.tenant_by_ref("acme").unwrap().id, long_ago);
    let current_initech = p.tenant_handles.handle(&p.kek, &initech, portico_testkit::now());
    let mut answers = Vec::new();
    for org in [
        "initech",
        initech.as_str(),
        current_initech.as_str(),
        "no-such-tenant",
        "ten_AAAAAAAAAAAAAAAAAAAAAA",
        stale_acme.as_str(),
    ] {
        let (step, _) = start(&mut b, s, "crm-web", &[("organization", org)], "-").await;
        let Step::AtClient(loc) = step else {
            panic!("{org}: expected an answer at the redirect URI")
        };
        assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"), "{org}");
        answers.push((query_param(&loc, "error_description"), query_param(&loc, "state")));
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "identical answers: {answers:?}");
    // Before login the question is never asked: no session, no tenant lookup.
    let mut fresh = Browser::new();
    let (step, _) = start(&mut fresh, s, "crm-web", &[("organization", "initech"), ("prompt", "none")], "-").await;
    let Step::AtClient(loc) = step else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("login_required"));
}
both_stores!(unknown_and_forbidden_tenants_get_the_same_answer, TENANTS);

async fn operators_enter_one_tenant_at_a_time_and_the_token_says_so(s: &TestServer) {
    let mut b = Browser::new();
    let (step, _) = start(&mut b, s, "crm-web", &[], "olga@example.test").await;
    let Step::Page(page) = step else {
        panic!("an all-tenants grant still picks one tenant")
    };
    for name in ["Acme Bank", "Globex", "Initech"] {
        assert!(page.contains(name), "{name} offered to the operator");
    }
    let t = tokens(&mut b, s, "crm-web", CRM_SECRET, "-", Some("initech")).await;
    let at = decode_payload(t["access_token"].as_str().unwrap());
    assert_eq!(at["org_name"], "Initech");
    assert_eq!(at["all_tenants"], true);
    assert_eq!(at["roles"], serde_json::json!(["viewer"]));
    // Reports: no grant at all, in any tenant.
    let (step, _) = start(&mut b, s, "reports-web", &[("organization", "initech")], "-").await;
    let Step::AtClient(loc) = step else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"));
}
both_stores!(operators_enter_one_tenant_at_a_time_and_the_token_says_so, TENANTS);

/// Ada's CRM tokens in Acme.
async fn ada_crm(s: &TestServer) -> serde_json::Value {
    tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await
}

pub async fn handoff(s: &TestServer, subject: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut f = vec![("subject_token", subject)];
    f.extend_from_slice(form);
    post_basic(s, "/oauth2/handoff", "crm-web", CRM_SECRET, &f).await
}

pub async fn redeem_handoff(s: &TestServer, client: &str, secret: &str, code: &str) -> (u16, serde_json::Value) {
    post_basic(
        s,
        "/oauth2/token",
        client,
        secret,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("subject_token", code),
            ("subject_token_type", "urn:portico:token-type:handoff"),
        ],
    )
    .await
}

const REPORTS: &str = "https://reports.example.test";

async fn handoff_gives_b_its_own_tokens_and_the_context(s: &TestServer) {
    let crm = ada_crm(s).await;
    let at = crm["access_token"].as_str().unwrap();
    let (status, h) = handoff(s, at, &[("resource", REPORTS), ("context", "/reports/42?tab=q3")]).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["expires_in"], 120);
    let code = h["handoff_code"].as_str().unwrap();
    let (status, t) = redeem_handoff(s, "reports-web", REPORTS_SECRET, code).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["context"], "/reports/42?tab=q3");
    assert_eq!(t["issued_token_type"], "urn:ietf:params:oauth:token-type:access_token");
    assert!(t["refresh_token"].is_string() && t["id_token"].is_string());
    let b_at = decode_payload(t["access_token"].as_str().unwrap());
    let a_at = decode_payload(at);
    assert_eq!(b_at["aud"], REPORTS);
    assert_eq!(b_at["client_id"], "reports-web");
    assert_eq!(b_at["sub"], a_at["sub"]);
    assert_eq!(b_at["org_id"], a_at["org_id"]);
    assert_eq!(b_at["roles"], serde_json::json!(["analyst", "author"]));
    assert_ne!(b_at["sid"], a_at["sid"], "B has its own product session");
    // B's refresh token works for B.
    let (status, _) = refresh(s, "reports-web", REPORTS_SECRET, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    // A's tokens are never accepted by B: not as a hand-off code, not at introspection.
    let (status, e) = redeem_handoff(s, "reports-web", REPORTS_SECRET, at).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")));
    let (_, i) = post_basic(s, "/oauth2/introspect", "reports-web", REPORTS_SECRET, &[("token", at)]).await;
    assert_eq!(i["active"], false);
    let (status, e) = refresh(s, "reports-web", REPORTS_SECRET, crm["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
}
both_stores!(handoff_gives_b_its_own_tokens_and_the_context, TENANTS);

async fn handoff_code_is_single_use(s: &TestServer) {
    let crm = ada_crm(s).await;
    let (_, h) = handoff(s, crm["access_token"].as_str().unwrap(), &[("resource", REPORTS)]).await;
    let code = h["handoff_code"].as_str().unwrap();
    assert_eq!(redeem_handoff(s, "reports-web", REPORTS_SECRET, code).await.0, 200);
    let (status, e) = redeem_handoff(s, "reports-web", REPORTS_SECRET, code).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "{e}");
}
both_stores!(handoff_code_is_single_use, TENANTS);

async fn handoff_code_of_another_product_is_refused_and_spent(s: &TestServer) {
    let crm = ada_crm(s).await;
    let (_, h) = handoff(s, crm["access_token"].as_str().unwrap(), &[("resource", REPORTS)]).await;
    let code = h["handoff_code"].as_str().unwrap();
    let (status, e) = redeem_handoff(s, "billing-web", BILLING_SECRET, code).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "{e}");
    let (status, _) = redeem_handoff(s, "reports-web", REPORTS_SECRET, code).await;
    assert_eq!(status, 400, "a code shown to the wrong client is spent");
    // A public client of the right product may not redeem at all.
    let (_, h) = handoff(s, crm["access_token"].as_str().unwrap(), &[("resource", REPORTS)]).await;
    let http = openidconnect::reqwest::Client::new();
    let resp = http
        .post(format!("{}/oauth2/token", s.base))
        .form(&[
            ("client_id", "reports-spa"),
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("subject_token", h["handoff_code"].as_str().unwrap()),
            ("subject_token_type", "urn:portico:token-type:handoff"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let e: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(e["error"], "unauthorized_client");
}
both_stores!(handoff_code_of_another_product_is_refused_and_spent, TENANTS);

async fn handoff_code_expires_after_120_seconds(s: &TestServer) {
    use portico_protocol::client_auth::ClientCredentials;
    use portico_protocol::token::{TokenRequest, exchange};
    let crm = ada_crm(s).await;
    let p = &s.running.provider;
    let creds = ClientCredentials {
        basic: Some(("reports-web".into(), portico_model::Secret::new(REPORTS_SECRET))),
        ..Default::default()
    };
    let req = |code: &str| TokenRequest {
        grant_type: Some("urn:ietf:params:oauth:grant-type:token-exchange".into()),
        subject_token: Some(code.into()),
        subject_token_type: Some("urn:portico:token-type:handoff".into()),
        ..Default::default()
    };
    let (_, h) = handoff(s, crm["access_token"].as_str().unwrap(), &[("resource", REPORTS)]).await;
    let issued = portico_testkit::now();
    let late = exchange(p, &creds, req(h["handoff_code"].as_str().unwrap()), issued + 121).await.1;
    assert_eq!(late.unwrap_err().code, portico_protocol::ErrorCode::InvalidRequest);
    let (_, h) = handoff(s, crm["access_token"].as_str().unwrap(), &[("resource", REPORTS)]).await;
    let in_time = exchange(p, &creds, req(h["handoff_code"].as_str().unwrap()), issued + 119).await.1;
    assert!(in_time.is_ok(), "{in_time:?}");
}
both_stores!(handoff_code_expires_after_120_seconds, TENANTS);

async fn handoff_fails_once_the_grant_is_revoked_meanwhile(s: &TestServer) {
    let crm = ada_crm(s).await;
    let (_, h) = handoff(s, crm["access_token"].as_str().unwrap(), &[("resource", REPORTS)]).await;
    let store = s.store();
    let (ada, _) = store.user_by_email("ada@example.test").await.unwrap().unwrap();
    let acme = s.running.provider.config().tenant_by_ref("acme").unwrap().id.clone();
    let revoked = committed!(store, t => t.revoke_grant(
        &portico_model::Grantee::User(ada.id),
        &portico_model::ProductSlug::new("reports"),
        &portico_model::GrantScope::One(acme),
        "test",
        portico_testkit::now(),
        &|_| false
    ))
    .await
    .unwrap();
    assert!(revoked);
    let (status, e) = redeem_handoff(s, "reports-web", REPORTS_SECRET, h["handoff_code"].as_str().unwrap()).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "{e}");
}
both_stores!(handoff_fails_once_the_grant_is_revoked_meanwhile, TENANTS);

/// The source token's family revoked after the code was made (its refresh token revoked, RFC
/// 7009 §2.1: the tokens of the grant go with it), the SSO session still live: the code redeems
/// nothing, and is spent.
async fn handoff_fails_once_the_source_family_is_revoked(s: &TestServer) {
    let crm = ada_crm(s).await;
    let (_, h) = handoff(s, crm["access_token"].as_str().unwrap(), &[("resource", REPORTS)]).await;
    let code = h["handoff_code"].as_str().unwrap();
    let (status, _) = post_basic(s, "/oauth2/revoke", "crm-web", CRM_SECRET, &[("token", crm["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(status, 200);
    let (status, e) = redeem_handoff(s, "reports-web", REPORTS_SECRET, code).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "{e}");
    let (status, _) = redeem_handoff(s, "reports-web", REPORTS_SECRET, code).await;
    assert_eq!(status, 400, "spent by the refusal");
}
both_stores!(handoff_fails_once_the_source_family_is_revoked, TENANTS);

async fn handoff_refuses_targets_not_listed_large_context_and_missing_grants(s: &TestServer) {
    let crm = ada_crm(s).await;
    let at = crm["access_token"].as_str().unwrap();
    let (status, e) = handoff(s, at, &[("resource", "https://billing.example.test")]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_target")), "not in handoff_to");
    let big = "x".repeat(1025);
    let (status, e) = handoff(s, at, &[("resource", REPORTS), ("context", &big)]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "context over 1 KiB");
    let (status, _) = handoff(s, at, &[("resource", REPORTS), ("context", &big[..1024])]).await;
    assert_eq!(status, 200, "1 KiB is allowed");
    // Ada holds reports only in Acme.
    let (status, e) = handoff(s, at, &[("resource", REPORTS), ("organization", "globex")]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "{e}");
    // The subject must be this product's token for a user: B's own client cannot start from A's token.
    let (status, e) = post_basic(
        s,
        "/oauth2/handoff",
        "reports-web",
        REPORTS_SECRET,
        &[("subject_token", at), ("resource", REPORTS)],
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "{e}");
    // A tampered token is refused.
    let [changed, ..] = forgeries(at, |c| c["org_id"] = serde_json::json!("ten_other"));
    let (status, _) = handoff(s, &changed, &[("resource", REPORTS)]).await;
    assert_eq!(status, 400);
}
both_stores!(handoff_refuses_targets_not_listed_large_context_and_missing_grants, TENANTS);

pub async fn exchange_for(s: &TestServer, client: &str, secret: &str, subject: &str, extra: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut f = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
        ("subject_token", subject),
        ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
    ];
    f.extend_from_slice(extra);
    post_basic(s, "/oauth2/token", client, secret, &f).await
}

async fn service_exchange_is_narrowed_and_names_the_actor(s: &TestServer) {
    let crm = ada_crm(s).await;
    let at = crm["access_token"].as_str().unwrap();
    let (status, t) = exchange_for(s, "crm-web", CRM_SECRET, at, &[("resource", REPORTS)]).await;
    assert_eq!(status, 200, "{t}");
    assert!(t.get("refresh_token").is_none() && t.get("id_token").is_none());
    let x = decode_payload(t["access_token"].as_str().unwrap());
    assert_eq!(x["aud"], REPORTS);
    assert_eq!(x["act"], serde_json::json!({"sub": "crm-web"}));
    assert_eq!(x["org_id"], decode_payload(at)["org_id"], "the same tenant");
    assert_eq!(x["roles"], serde_json::json!(["analyst", "author"]));
    // Reports can introspect it; it is live.
    let (_, i) = post_basic(
        s,
        "/oauth2/introspect",
        "reports-web",
        REPORTS_SECRET,
        &[("token", t["access_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(i["active"], true);
    // Narrowed by scope to one held role; a role not held is refused.
    let (_, t) = exchange_for(s, "crm-web", CRM_SECRET, at, &[("audience", REPORTS), ("scope", "analyst")]).await;
    assert_eq!(decode_payload(t["access_token"].as_str().unwrap())["roles"], serde_json::json!(["analyst"]));
    let (status, e) = exchange_for(s, "crm-web", CRM_SECRET, at, &[("resource", REPORTS), ("scope", "admin")]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_scope")));
    // No policy, no exchange: CRM may not call Billing, and Reports may not call CRM.
    let (status, e) = exchange_for(s, "crm-web", CRM_SECRET, at, &[("resource", "https://billing.example.test")]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_target")));
    // A's token is not a subject for B's client.
    let (status, e) = exchange_for(s, "reports-web", REPORTS_SECRET, at, &[("resource", REPORTS)]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")));
}
both_stores!(service_exchange_is_narrowed_and_names_the_actor, TENANTS);

async fn service_exchange_needs_the_grant_in_the_same_tenant(s: &TestServer) {
    // Ada in Globex holds no Reports grant there.
    let crm = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("globex")).await;
    let (status, e) = exchange_for(s, "crm-web", CRM_SECRET, crm["access_token"].as_str().unwrap(), &[("resource", REPORTS)]).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "{e}");
    // Logging out of CRM's family (revoking the refresh token) ends the exchanged token too.
    let crm = ada_crm(s).await;
    let (_, t) = exchange_for(s, "crm-web", CRM_SECRET, crm["access_token"].as_str().unwrap(), &[("resource", REPORTS)]).await;
    let (status, _) = post_basic(s, "/oauth2/revoke", "crm-web", CRM_SECRET, &[("token", crm["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(status, 200);
    let (_, i) = post_basic(
        s,
        "/oauth2/introspect",
        "reports-web",
        REPORTS_SECRET,
        &[("token", t["access_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(i["active"], false);
}
both_stores!(service_exchange_needs_the_grant_in_the_same_tenant, TENANTS);

async fn forged_subject_tokens_are_refused_for_exchange_and_hand_off(s: &TestServer) {
    // Ada in Globex holds no Reports grant; moved to Acme, where she does, a forged subject would pass
    // every check but the signature.
    let crm = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("globex")).await;
    let acme = s.running.provider.config().tenant_by_ref("acme").unwrap().id.clone();
    for bad in forgeries(crm["access_token"].as_str().unwrap(), |c| c["org_id"] = serde_json::json!(acme.as_str())) {
        let (status, e) = exchange_for(s, "crm-web", CRM_SECRET, &bad, &[("resource", REPORTS)]).await;
        assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "exchange of a forged subject");
        let (status, e) = handoff(s, &bad, &[("resource", REPORTS)]).await;
        assert_eq!((status, e["error"].as_str()), (400, Some("invalid_request")), "hand-off of a forged subject");
    }
}
both_stores!(forged_subject_tokens_are_refused_for_exchange_and_hand_off, TENANTS);
