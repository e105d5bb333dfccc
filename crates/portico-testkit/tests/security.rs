//! Attacks from the security review of fb09306: each test is named as the rule it enforces and
//! tries to break it from outside (HTTP against a running server; the protocol directly where the
//! clock must be set), on both stores.

use crate::admin_api::{ADMIN, OPS_SECRET, admin_token, api};
use crate::flow::decode_payload;
use crate::tenancy::{CRM_SECRET, PASSWORD, REPORTS_SECRET, Step, exchange_for, handoff, redeem, redeem_handoff, refresh, start, tokens};
use crate::*;
use portico_model::Secret;
use portico_protocol::client_auth::ClientCredentials;
use portico_protocol::token::TokenRequest;
use std::collections::HashSet;
use std::sync::LazyLock;

const REPORTS: &str = "https://reports.example.test";
const GRANTS_SECRET: &str = "grants-bot-secret-0123456789abcdef012345";
pub const PARTNER_SECRET: &str = "partner-secret-0123456789abcdef0123456789";

/// The admin suite, plus a `grant-manager` automation client and a third-party client of CRM
/// that may also ask for Reports tokens.
pub static SUITE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{}{}",
        *ADMIN,
        r#"
[[client]]
id = "grants-bot"
product = "portico-admin"
kind = "confidential"
secret = "grants-bot-secret-0123456789abcdef012345"
grant_types = ["client_credentials"]

[[grant]]
client = "grants-bot"
product = "portico-admin"
roles = ["grant-manager"]

[[client]]
id = "crm-bot"
product = "crm"
kind = "confidential"
secret = "crm-bot-secret-0123456789abcdef0123456789"
grant_types = ["client_credentials"]

[[client]]
id = "partner-web"
name = "Partner Analytics"
product = "crm"
kind = "confidential"
secret = "partner-secret-0123456789abcdef0123456789"
redirect_uris = ["http://127.0.0.1:9/callback"]
grant_types = ["authorization_code", "refresh_token"]
resources = ["reports"]
first_party = false
"#
    )
});

/// Reports requires a second factor.
static MFA_REPORTS: LazyLock<String> = LazyLock::new(|| SUITE.replace("slug = \"reports\"\n", "slug = \"reports\"\nmfa = \"required\"\n"));
/// Reports wants a fresh sign-in 30 seconds after the last.
static SHORT_REPORTS: LazyLock<String> = LazyLock::new(|| SUITE.replace("slug = \"reports\"\n", "slug = \"reports\"\nsession_absolute = \"30s\"\n"));

fn authorize_url(s: &TestServer, client: &str, extra: &[(&str, &str)]) -> String {
    let (_, challenge) = pkce();
    let mut query = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", CALLBACK),
        ("scope", "openid offline_access"),
        ("state", "st"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    // A parameter in `extra` replaces the default of the same name.
    query.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    query.extend_from_slice(extra);
    format!(
        "{}/oauth2/authorize?{}",
        s.base,
        url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&query).finish()
    )
}

async fn user_id(s: &TestServer, email: &str) -> portico_model::UserId {
    s.store().user_by_email(email).await.unwrap().unwrap().0.id
}

async fn audited(s: &TestServer, kind: &str, actor: &str) -> usize {
    s.running.provider.writer.flush().await;
    let records = s.store().audit_records(0, 100_000).await.unwrap();
    records.iter().filter(|r| r.event.kind == kind && r.event.actor == actor).count()
}

/// Makes the store match `suite` and the running server see it at once.
async fn reapply(s: &TestServer, suite: &str) {
    let kek = portico_server::load_kek(&s.config, portico_server::NewKey::Refused).unwrap();
    portico_server::suite::Suite::parse("changed suite", suite, &HashSet::new())
        .unwrap()
        .apply(s.store(), &kek, "test", portico_testkit::now())
        .await
        .unwrap();
    s.running.provider.reload().await.unwrap();
}

fn creds(client: &str, secret: &str) -> ClientCredentials {
    ClientCredentials {
        basic: Some((client.into(), Secret::new(secret))),
        ..Default::default()
    }
}

/// A token request through the protocol, at a chosen time: the error code, or the response.
async fn token_at(s: &TestServer, client: &str, secret: &str, req: TokenRequest, at: i64) -> Result<portico_protocol::token::TokenResponse, String> {
    portico_protocol::token::exchange(&s.running.provider, &creds(client, secret), req, at)
        .await
        .1
        .map_err(|e| e.code.as_str().to_owned())
}

fn code_request(location: &str, verifier: &str) -> TokenRequest {
    TokenRequest {
        grant_type: Some("authorization_code".into()),
        code: query_param(location, "code"),
        redirect_uri: Some(CALLBACK.into()),
        code_verifier: Some(verifier.into()),
        ..Default::default()
    }
}

fn refresh_request(rt: &str) -> TokenRequest {
    TokenRequest {
        grant_type: Some("refresh_token".into()),
        refresh_token: Some(rt.into()),
        ..Default::default()
    }
}

fn handoff_redemption(code: &str) -> TokenRequest {
    TokenRequest {
        grant_type: Some("urn:ietf:params:oauth:grant-type:token-exchange".into()),
        subject_token: Some(code.into()),
        subject_token_type: Some("urn:portico:token-type:handoff".into()),
        ..Default::default()
    }
}

fn on_behalf(subject: &str) -> TokenRequest {
    TokenRequest {
        grant_type: Some("urn:ietf:params:oauth:grant-type:token-exchange".into()),
        subject_token: Some(subject.into()),
        subject_token_type: Some("urn:ietf:params:oauth:token-type:access_token".into()),
        resource: vec![REPORTS.into()],
        ..Default::default()
    }
}

async fn handoff_at(s: &TestServer, subject: &str, at: i64) -> Result<String, String> {
    let req = portico_protocol::handoff::HandoffRequest {
        subject_token: Some(subject.into()),
        resource: vec![REPORTS.into()],
        ..Default::default()
    };
    portico_protocol::handoff::create(&s.running.provider, &creds("crm-web", CRM_SECRET), req, at)
        .await
        .map(|r| r.handoff_code)
        .map_err(|e| e.code.as_str().to_owned())
}

/// Redeems a code at the token endpoint and returns whatever it answers (refusals included).
async fn redeem_raw(s: &TestServer, client: &str, secret: &str, code: &str, verifier: &str) -> (u16, serde_json::Value) {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier),
    ];
    post_basic(s, "/oauth2/token", client, secret, &form).await
}

/// The fields that answer "Allow" on the consent page `page`.
fn allow_form(page: &str) -> [(&'static str, String); 3] {
    [
        ("csrf", hidden(page, "csrf").unwrap()),
        ("req", hidden(page, "req").unwrap()),
        ("decision", "allow".to_owned()),
    ]
}

/// Presses "Allow" on the consent page `page`: where the browser is sent.
async fn allow(b: &mut Browser, s: &TestServer, page: &str) -> Option<String> {
    let form = allow_form(page);
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    b.post_form(&format!("{}/consent", s.base), &form).await.1
}

/// An unredeemed Reports code for Ada in Acme: (location, verifier, auth_time).
async fn reports_code(b: &mut Browser, s: &TestServer) -> (String, String) {
    match start(b, s, "reports-web", &[("organization", "acme")], "ada@example.test").await {
        (Step::AtClient(loc), verifier) if query_param(&loc, "code").is_some() => (loc, verifier),
        (Step::AtClient(loc), _) => panic!("no code: {loc}"),
        (Step::Page(p), _) => panic!("expected a code, got a page: {p}"),
    }
}

// ---- 1. Admin escalation -------------------------------------------------------------------

async fn only_an_admin_grants_or_revokes_portico_admin(s: &TestServer) {
    let manager = admin_token(s, "grants-bot", GRANTS_SECRET).await;
    let before = s.store().list_grants().await.unwrap();
    for body in [
        serde_json::json!({"client": "grants-bot", "product": "portico-admin", "roles": ["admin"]}),
        serde_json::json!({"user": "bob@example.test", "product": "portico-admin", "roles": ["admin"]}),
        serde_json::json!({"user": "bob@example.test", "product": "portico-admin", "roles": ["viewer"]}),
        serde_json::json!({"user": "bob@example.test", "product": "portico-admin", "roles": []}),
    ] {
        let (status, ctype, p) = api(s, "POST", "/api/v1/grants", Some(&manager), Some(body.clone())).await;
        assert_eq!((status, ctype.as_str()), (403, "application/problem+json"), "{body} -> {p}");
    }
    let (status, _, _) = api(s, "DELETE", "/api/v1/grants?client=ops-bot&product=portico-admin", Some(&manager), None).await;
    assert_eq!(status, 403, "a grant-manager cannot take an admin's grant away");
    assert_eq!(s.store().list_grants().await.unwrap(), before, "nothing changed");
    // The grant-manager still manages the products' grants.
    let ok = serde_json::json!({"user": "bob@example.test", "product": "billing", "roles": ["clerk"]});
    assert_eq!(api(s, "POST", "/api/v1/grants", Some(&manager), Some(ok)).await.0, 201);
    // An admin may hand out portico-admin roles.
    let admin = admin_token(s, "ops-bot", OPS_SECRET).await;
    let viewer = serde_json::json!({"user": "bob@example.test", "product": "portico-admin", "roles": ["viewer"]});
    assert_eq!(api(s, "POST", "/api/v1/grants", Some(&admin), Some(viewer)).await.0, 201);
}
both_stores!(only_an_admin_grants_or_revokes_portico_admin, &SUITE);

// ---- 14. Role changes are immediate --------------------------------------------------------

async fn shrunk_roles_end_the_tokens_that_carry_them(s: &TestServer) {
    let admin = admin_token(s, "ops-bot", OPS_SECRET).await;
    // A grant-manager demoted to viewer: its token no longer writes.
    let manager = admin_token(s, "grants-bot", GRANTS_SECRET).await;
    let demote = serde_json::json!({"client": "grants-bot", "product": "portico-admin", "roles": ["viewer"]});
    assert_eq!(api(s, "POST", "/api/v1/grants", Some(&admin), Some(demote)).await.0, 201);
    let write = serde_json::json!({"user": "bob@example.test", "product": "billing", "roles": ["clerk"]});
    let (status, _, _) = api(s, "POST", "/api/v1/grants", Some(&manager), Some(write)).await;
    assert!(status == 401 || status == 403, "the demoted token still wrote: {status}");
    // A user's CRM editor token: introspection stops answering for it once the role is gone.
    let t = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let at = t["access_token"].as_str().unwrap();
    let (_, before) = post_basic(s, "/oauth2/introspect", "crm-web", CRM_SECRET, &[("token", at)]).await;
    assert_eq!(before["active"], true);
    let viewer = serde_json::json!({"user": "ada@example.test", "product": "crm", "tenant": "acme", "roles": ["viewer"]});
    assert_eq!(api(s, "POST", "/api/v1/grants", Some(&admin), Some(viewer)).await.0, 201);
    let (_, after) = post_basic(s, "/oauth2/introspect", "crm-web", CRM_SECRET, &[("token", at)]).await;
    assert_eq!(after["active"], false, "{after}");
}
both_stores!(shrunk_roles_end_the_tokens_that_carry_them, &SUITE);

// ---- 2. Consent and sign-in fixation -------------------------------------------------------

async fn consent_is_bound_to_the_browser_and_user_that_gave_it(s: &TestServer) {
    // Bob, signed in, starts a request of the third-party client that waits at the login form.
    let mut attacker = Browser::new();
    tokens(&mut attacker, s, "crm-web", CRM_SECRET, "bob@example.test", Some("acme")).await;
    let url = authorize_url(s, "partner-web", &[("prompt", "login"), ("organization", "acme")]);
    let (status, loc, _) = attacker.get(&url).await;
    let loc = loc.unwrap_or_else(|| panic!("no redirect ({status})"));
    assert!(loc.starts_with("/login?req="), "{loc}");
    let req = query_param(&format!("{}{loc}", s.base), "req").unwrap();
    let (_, _, page) = attacker.get(&format!("{}{loc}", s.base)).await;
    let csrf = hidden(&page, "csrf").unwrap();
    // He "consents" for a request that is not at its consent step.
    let (status, _, _) = attacker
        .post_form(&format!("{}/consent", s.base), &[("csrf", &csrf), ("req", &req), ("decision", "allow")])
        .await;
    assert!(status >= 400, "consent for a request at the login step was taken ({status})");
    let bob = user_id(s, "bob@example.test").await;
    assert_eq!(audited(s, "consent.granted", bob.as_str()).await, 0, "no consent of Bob's on record");
    // Ada follows his link, from her browser, and signs in: she sees the consent page herself.
    for entry in [format!("{}/login?req={req}", s.base), format!("{}/oauth2/authorize/resume?req={req}", s.base)] {
        let mut victim = Browser::new();
        let (status, _, page) = victim.follow(&s.base, entry.clone()).await;
        assert_eq!(status, 200, "{entry}");
        assert!(page.contains("name=\"password\""), "{entry}: {page}");
        let (status, loc, page) = victim.login(&s.base, &page, "ada@example.test", PASSWORD).await;
        assert!(
            loc.as_deref().and_then(|l| query_param(l, "code")).is_none(),
            "{entry}: a code for Ada at the attacker's client without her consent ({status})"
        );
        assert!(page.contains("Allow access?"), "{entry}: {page}");
    }
}
both_stores!(consent_is_bound_to_the_browser_and_user_that_gave_it, &SUITE);

async fn a_fresh_sign_in_is_bound_to_the_browser_that_made_it(s: &TestServer) {
    // Olga (every tenant) starts a prompt=login request and signs in: it waits at the picker.
    let mut attacker = Browser::new();
    let url = authorize_url(s, "crm-web", &[("prompt", "login")]);
    let (_, _, page) = attacker.follow(&s.base, url).await;
    let (_, _, picker) = attacker.login(&s.base, &page, "olga@example.test", PASSWORD).await;
    assert!(picker.contains("Choose an organization"), "{picker}");
    let req = hidden(&picker, "req").unwrap();
    // Ada's browser, signed in long ago, resumes it: the request wants a fresh sign-in from her.
    let mut victim = Browser::new();
    tokens(&mut victim, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let (status, loc, page) = victim.follow(&s.base, format!("{}/oauth2/authorize/resume?req={req}", s.base)).await;
    assert!(loc.is_none(), "resumed to the client without a fresh sign-in: {loc:?}");
    assert_eq!(status, 200);
    assert!(page.contains("name=\"password\""), "prompt=login honoured: {page}");
    // Nor does the picker of someone else's request take a choice from her.
    let (_, _, any) = victim.get(&format!("{}/login", s.base)).await;
    let form = [("csrf", hidden(&any, "csrf").unwrap()), ("req", req.clone()), ("organization", "acme".into())];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_, loc, _) = victim.post_form(&format!("{}/select-tenant", s.base), &form).await;
    let (_, loc, _) = match loc {
        Some(l) if l.starts_with('/') => victim.follow(&s.base, format!("{}{l}", s.base)).await,
        other => (0, other, String::new()),
    };
    assert!(loc.as_deref().and_then(|l| query_param(l, "code")).is_none(), "{loc:?}");
}
both_stores!(a_fresh_sign_in_is_bound_to_the_browser_that_made_it, &SUITE);

/// A waiting request is resumed once: a tab's request left at the login form while the user signed
/// in in another tab, resumed fifty times at once by that browser, makes one code (one family,
/// one product session); the others find the request answered.
async fn a_request_is_resumed_into_one_code(s: &TestServer) {
    let mut b = Browser::new();
    let (_, loc, _) = b.get(&authorize_url(s, "crm-web", &[("organization", "acme")])).await;
    let loc = loc.expect("to the login form");
    assert!(loc.starts_with("/login?req="), "{loc}");
    let req = query_param(&format!("{}{loc}", s.base), "req").unwrap();
    tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let ada = user_id(s, "ada@example.test").await;
    let before = audited(s, "authorize.code_issued", ada.as_str()).await;
    let url = format!("{}/oauth2/authorize/resume?req={req}", s.base);
    let tries = (0..50).map(|_| {
        let mut twin = Browser::new();
        twin.cookies = b.cookies.clone();
        let url = url.clone();
        async move { twin.get(&url).await }
    });
    let outcomes = futures_util::future::join_all(tries).await;
    let codes = outcomes
        .iter()
        .filter(|(_, loc, _)| loc.as_deref().and_then(|l| query_param(l, "code")).is_some())
        .count();
    assert_eq!(codes, 1, "{:?}", outcomes.iter().map(|o| (o.0, o.1.clone())).collect::<Vec<_>>());
    assert_eq!(audited(s, "authorize.code_issued", ada.as_str()).await, before + 1);
}
both_stores!(a_request_is_resumed_into_one_code, &SUITE);

/// A sign-in decided on a session that another tab ended a moment before (read live, then signed
/// out before the code's transaction) issues nothing: the login form, or `login_required` for
/// `prompt=none`; never an error page, never a code in an ended session.
async fn a_sign_in_answered_after_a_logout_starts_nothing(s: &TestServer) {
    use portico_protocol::authorize::{self, AuthorizeOutcome, Origin};
    let mut b = Browser::new();
    tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let p = &s.running.provider;
    let now = portico_testkit::now();
    let cookie = b.cookies.get("portico_session").expect("a session cookie").clone();
    let session = portico_protocol::login::session_from_cookie(p, &cookie, now).await.unwrap().expect("live");
    let ada = user_id(s, "ada@example.test").await;
    let before = audited(s, "authorize.code_issued", ada.as_str()).await;
    let store = s.store();
    committed!(store, t => t.end_user_sessions(&session.user_id, now, &|_| true)).await.unwrap();
    let (_, challenge) = pkce();
    for prompt in ["login_form", "none"] {
        let mut params: Vec<(String, String)> = [
            ("response_type", "code"),
            ("client_id", "crm-web"),
            ("redirect_uri", CALLBACK),
            ("scope", "openid"),
            ("state", "st"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("organization", "acme"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        if prompt == "none" {
            params.push(("prompt".into(), "none".into()));
        }
        let req = authorize::validate(p, &params, false, now).expect("valid");
        match (prompt, authorize::decide(p, req, Some(&session), &Origin::default(), now).await) {
            ("login_form", Ok(AuthorizeOutcome::ShowLogin(_))) => {}
            ("none", Ok(AuthorizeOutcome::Respond(r))) => {
                assert!(r.params.iter().any(|(k, v)| k == "error" && v == "login_required"), "{:?}", r.params);
            }
            (prompt, other) => panic!("{prompt}: {:?}", other.map(|_| "another outcome")),
        }
    }
    assert_eq!(audited(s, "authorize.code_issued", ada.as_str()).await, before, "no code issued");
}
both_stores!(a_sign_in_answered_after_a_logout_starts_nothing, &SUITE);

// ---- 8. Consent names the product --------------------------------------------------------

async fn consent_covers_one_product(s: &TestServer) {
    let mut b = Browser::new();
    let (step, _) = start(&mut b, s, "partner-web", &[("organization", "acme")], "ada@example.test").await;
    let Step::Page(page) = step else {
        panic!("a third-party client without consent")
    };
    assert!(page.contains("Allow access?") && page.contains("CRM") && page.contains("Acme Bank"), "{page}");
    let loc = allow(&mut b, s, &page).await;
    assert!(query_param(&loc.unwrap(), "code").is_some());
    // CRM again: no page; the client's tokens are CRM's, and refresh (through the gate, which
    // reads the consent) goes on.
    let (step, verifier) = start(&mut b, s, "partner-web", &[("organization", "acme")], "-").await;
    let Step::AtClient(loc) = step else { panic!("asked again for CRM") };
    let t = redeem(s, "partner-web", PARTNER_SECRET, &loc, &verifier).await;
    assert_eq!(decode_payload(t["access_token"].as_str().unwrap())["aud"], "https://crm.example.test");
    assert_eq!(refresh(s, "partner-web", PARTNER_SECRET, t["refresh_token"].as_str().unwrap()).await.0, 200);
    // Reports, which she never allowed the client: the consent page, naming Reports.
    let (step, _) = start(&mut b, s, "partner-web", &[("organization", "acme"), ("resource", REPORTS)], "-").await;
    let Step::Page(page) = step else {
        panic!("consent given for CRM covered Reports")
    };
    assert!(page.contains("Allow access?") && page.contains("Reports"), "{page}");
    let (step, _) = start(
        &mut b,
        s,
        "partner-web",
        &[("organization", "acme"), ("resource", REPORTS), ("prompt", "none")],
        "-",
    )
    .await;
    let Step::AtClient(loc) = step else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("consent_required"));
}
both_stores!(consent_covers_one_product, &SUITE);

// ---- 3. One policy gate on every path that mints ---------------------------------------------

async fn a_password_only_session_gets_no_token_for_an_mfa_product_on_any_path(s: &TestServer) {
    // While Reports takes passwords: a Reports code (unredeemed), a Reports refresh token, a
    // hand-off code from CRM; and a CRM token to hand off and exchange later.
    let mut b = Browser::new();
    let crm = tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let crm_at = crm["access_token"].as_str().unwrap();
    let (code_loc, verifier) = reports_code(&mut b, s).await;
    let reports = tokens(&mut b, s, "reports-web", REPORTS_SECRET, "-", Some("acme")).await;
    let (status, h) = handoff(s, crm_at, &[("resource", REPORTS)]).await;
    assert_eq!(status, 200, "{h}");
    // The operator makes Reports require a second factor.
    reapply(s, &MFA_REPORTS).await;
    let code = query_param(&code_loc, "code").unwrap();
    let redeemed = redeem_raw(s, "reports-web", REPORTS_SECRET, &code, &verifier).await;
    assert_eq!((redeemed.0, redeemed.1["error"].as_str()), (400, Some("invalid_grant")), "code: {}", redeemed.1);
    let refreshed = refresh(s, "reports-web", REPORTS_SECRET, reports["refresh_token"].as_str().unwrap()).await;
    assert_eq!(
        (refreshed.0, refreshed.1["error"].as_str()),
        (400, Some("invalid_grant")),
        "refresh: {}",
        refreshed.1
    );
    let r = redeem_handoff(s, "reports-web", REPORTS_SECRET, h["handoff_code"].as_str().unwrap()).await;
    assert_eq!((r.0, r.1["error"].as_str()), (400, Some("invalid_request")), "hand-off redemption: {}", r.1);
    let r = handoff(s, crm_at, &[("resource", REPORTS)]).await;
    assert_eq!((r.0, r.1["error"].as_str()), (400, Some("invalid_request")), "hand-off creation: {}", r.1);
    let r = exchange_for(s, "crm-web", CRM_SECRET, crm_at, &[("resource", REPORTS)]).await;
    assert_eq!((r.0, r.1["error"].as_str()), (400, Some("invalid_request")), "on-behalf exchange: {}", r.1);
    let (step, _) = start(&mut b, s, "reports-web", &[("organization", "acme"), ("prompt", "none")], "-").await;
    let Step::AtClient(loc) = step else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("interaction_required"), "authorize");
    // CRM, without the requirement, still works on every path.
    assert_eq!(refresh(s, "crm-web", CRM_SECRET, crm["refresh_token"].as_str().unwrap()).await.0, 200);
}
both_stores!(a_password_only_session_gets_no_token_for_an_mfa_product_on_any_path, &SUITE);

async fn an_expired_product_session_gets_no_token_on_any_path(s: &TestServer) {
    let mut b = Browser::new();
    let crm = tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let crm_at = crm["access_token"].as_str().unwrap().to_owned();
    let signed_in = decode_payload(&crm_at)["auth_time"].as_i64().unwrap();
    let (code_loc, verifier) = reports_code(&mut b, s).await;
    let h = handoff_at(s, &crm_at, signed_in).await.expect("a hand-off within the session");
    // Reports wants a fresh sign-in 30 s after the last; 31 s later, every path says no.
    let late = signed_in + 31;
    let code = token_at(s, "reports-web", REPORTS_SECRET, code_request(&code_loc, &verifier), late).await;
    assert_eq!(code.err().as_deref(), Some("invalid_grant"), "code redemption");
    let redeemed = token_at(s, "reports-web", REPORTS_SECRET, handoff_redemption(&h), late).await;
    assert_eq!(redeemed.err().as_deref(), Some("invalid_request"), "hand-off redemption");
    assert_eq!(
        handoff_at(s, &crm_at, late).await.err().as_deref(),
        Some("invalid_request"),
        "hand-off creation"
    );
    let exchanged = token_at(s, "crm-web", CRM_SECRET, on_behalf(&crm_at), late).await;
    assert_eq!(exchanged.err().as_deref(), Some("invalid_request"), "on-behalf exchange");
    // Within the 30 seconds the same requests go through.
    let (code_loc, verifier) = reports_code(&mut b, s).await;
    let early = signed_in + 5;
    let t = token_at(s, "reports-web", REPORTS_SECRET, code_request(&code_loc, &verifier), early).await;
    let rt = t.expect("within the session").refresh_token.unwrap();
    assert_eq!(
        token_at(s, "reports-web", REPORTS_SECRET, refresh_request(&rt), late).await.err().as_deref(),
        Some("invalid_grant"),
        "refresh"
    );
    assert!(token_at(s, "crm-web", CRM_SECRET, on_behalf(&crm_at), early).await.is_ok());
}
both_stores!(an_expired_product_session_gets_no_token_on_any_path, &SHORT_REPORTS);

async fn a_revoked_grant_gets_no_token_on_any_path(s: &TestServer) {
    let mut b = Browser::new();
    let crm = tokens(&mut b, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let crm_at = crm["access_token"].as_str().unwrap();
    let (code_loc, verifier) = reports_code(&mut b, s).await;
    let reports = tokens(&mut b, s, "reports-web", REPORTS_SECRET, "-", Some("acme")).await;
    let (_, h) = handoff(s, crm_at, &[("resource", REPORTS)]).await;
    let admin = admin_token(s, "ops-bot", OPS_SECRET).await;
    let (status, _, _) = api(
        s,
        "DELETE",
        "/api/v1/grants?user=ada@example.test&product=reports&tenant=acme",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let code = query_param(&code_loc, "code").unwrap();
    let r = redeem_raw(s, "reports-web", REPORTS_SECRET, &code, &verifier).await;
    assert_eq!(r.1["error"], "invalid_grant", "code redemption");
    assert_eq!(
        refresh(s, "reports-web", REPORTS_SECRET, reports["refresh_token"].as_str().unwrap()).await.1["error"],
        "invalid_grant"
    );
    assert_eq!(
        redeem_handoff(s, "reports-web", REPORTS_SECRET, h["handoff_code"].as_str().unwrap()).await.1["error"],
        "invalid_request"
    );
    assert_eq!(handoff(s, crm_at, &[("resource", REPORTS)]).await.1["error"], "invalid_request");
    assert_eq!(
        exchange_for(s, "crm-web", CRM_SECRET, crm_at, &[("resource", REPORTS)]).await.1["error"],
        "invalid_request"
    );
    let (step, _) = start(&mut b, s, "reports-web", &[("organization", "acme"), ("prompt", "none")], "-").await;
    let Step::AtClient(loc) = step else { panic!() };
    assert_eq!(query_param(&loc, "error").as_deref(), Some("access_denied"), "authorize");
}
both_stores!(a_revoked_grant_gets_no_token_on_any_path, &SUITE);

// ---- 4. Factor changes need a second factor --------------------------------------------------

async fn a_password_only_session_cannot_add_an_authenticator_beside_a_passkey(s: &TestServer) {
    let mut thief = Browser::new();
    tokens(&mut thief, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let ada = user_id(s, "ada@example.test").await;
    plant_passkey(s, "ada-key", &ada, "Ada's").await;
    let (_, _, account) = thief.get(&format!("{}/account", s.base)).await;
    let csrf = hidden(&account, "csrf").unwrap();
    let (status, _, page) = thief.post_form(&format!("{}/account/totp/start", s.base), &[("csrf", &csrf)]).await;
    assert!(!page.contains("data:image/svg"), "a password-only session set up an authenticator ({status})");
    assert_eq!(status, 403);
    let (status, _, _) = thief
        .post_form(&format!("{}/account/totp/confirm", s.base), &[("csrf", &csrf), ("code", "123456")])
        .await;
    assert_eq!(status, 403);
    assert!(!portico_protocol::totp::enrolled(&s.running.provider, &ada).await.unwrap());
    assert_eq!(s.store().passkeys_of(&ada).await.unwrap().len(), 1);
}
both_stores!(a_password_only_session_cannot_add_an_authenticator_beside_a_passkey, &SUITE);

// ---- 10. Codes do not outlive logout -------------------------------------------------------

async fn a_code_issued_before_sign_out_everywhere_is_refused(s: &TestServer) {
    let mut b = Browser::new();
    let (loc, verifier) = match start(&mut b, s, "crm-web", &[("organization", "acme")], "ada@example.test").await {
        (Step::AtClient(l), v) => (l, v),
        (Step::Page(p), _) => panic!("{p}"),
    };
    let ada = user_id(s, "ada@example.test").await;
    portico_protocol::logout::end_all_sessions(&s.running.provider, &ada, ada.as_str(), "account", None, portico_testkit::now())
        .await
        .unwrap();
    let code = query_param(&loc, "code").unwrap();
    let (status, body) = redeem_raw(s, "crm-web", CRM_SECRET, &code, &verifier).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
}
both_stores!(a_code_issued_before_sign_out_everywhere_is_refused, &SUITE);

// ---- 11. Public clients do not introspect -----------------------------------------------------

async fn a_public_client_cannot_introspect(s: &TestServer) {
    let t = tokens(&mut Browser::new(), s, "reports-web", REPORTS_SECRET, "ada@example.test", Some("acme")).await;
    let http = openidconnect::reqwest::Client::new();
    let resp = http
        .post(format!("{}/oauth2/introspect", s.base))
        .form(&[("client_id", "reports-spa"), ("token", t["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    assert!(body.get("active").is_none());
}
both_stores!(a_public_client_cannot_introspect, &SUITE);

// ---- 12. An old ID token does not sign out the current session ------------------------------

async fn an_id_token_of_another_session_asks_before_signing_out(s: &TestServer) {
    let old = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let mut current = Browser::new();
    tokens(&mut current, s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let url = format!(
        "{}/oauth2/logout?{}",
        s.base,
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([("id_token_hint", old["id_token"].as_str().unwrap())])
            .finish()
    );
    let (status, _, page) = current.get(&url).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Sign out?"), "signed out without asking: {page}");
    let (step, _) = start(&mut current, s, "crm-web", &[("organization", "acme"), ("prompt", "none")], "-").await;
    assert!(matches!(step, Step::AtClient(ref l) if query_param(l, "code").is_some()), "still signed in");
}
both_stores!(an_id_token_of_another_session_asks_before_signing_out, &SUITE);

// ---- 6. Metrics labels are bounded --------------------------------------------------------

async fn made_up_methods_do_not_become_metric_labels(s: &TestServer) {
    let http = openidconnect::reqwest::Client::new();
    let method = format!("X{}", "Q".repeat(4000));
    for path in ["/oauth2/token", "/nowhere/at/all"] {
        let m = openidconnect::http::Method::from_bytes(method.as_bytes()).unwrap();
        http.request(m, format!("{}{path}", s.base)).send().await.unwrap();
    }
    let metrics = http.get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("QQQQ"), "a made-up method became a label");
    assert!(!metrics.contains("nowhere"), "a raw path became a label");
    assert!(metrics.contains("method=\"OTHER\""), "{metrics}");
}
both_stores!(made_up_methods_do_not_become_metric_labels, &SUITE);

/// Each answer is counted once under its own route, method and status, whichever worker thread
/// served it (the layer keeps handles per thread), and timed under its route. The recorder is the
/// process's, shared by every server a test binary starts: the test reads differences between two
/// scrapes, on routes and methods no other test asks for.
async fn requests_are_counted_by_route_method_and_status(s: &TestServer) {
    // Its two variants (one per store) would count each other's requests in one process.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _alone = ONE_AT_A_TIME.lock().await;
    let http = openidconnect::reqwest::Client::new();
    let scrape = || async { http.get(format!("{}/metrics", s.base)).send().await.unwrap().text().await.unwrap() };
    let value = |metrics: &str, name: &str, labels: &[&str]| -> u64 {
        metrics
            .lines()
            .find(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])) && labels.iter().all(|x| l.contains(x)))
            .and_then(|l| l.rsplit(' ').next())
            .map_or(0, |v| v.parse().unwrap())
    };
    let css = ["route=\"/static/portico.css\"", "method=\"GET\"", "status=\"200\""];
    let refused = ["route=\"/static/portico.css\"", "method=\"DELETE\"", "status=\"405\""];
    let unmatched = ["route=\"unmatched\"", "method=\"PATCH\"", "status=\"404\""];
    let css_route = ["route=\"/static/portico.css\""];
    let before = scrape().await;
    // At once, on the server's two worker threads.
    let sent = (0..6).map(|_| tokio::spawn(http.get(format!("{}/static/portico.css", s.base)).send()));
    for r in futures_util::future::join_all(sent).await {
        assert_eq!(r.unwrap().unwrap().status(), 200);
    }
    assert_eq!(http.delete(format!("{}/static/portico.css", s.base)).send().await.unwrap().status(), 405);
    for _ in 0..2 {
        assert_eq!(http.patch(format!("{}/nowhere-counted", s.base)).send().await.unwrap().status(), 404);
    }
    let issued = http
        .post(format!("{}/oauth2/token", s.base))
        .basic_auth("grants-bot", Some("grants-bot-secret-0123456789abcdef012345"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(issued.status(), 200);
    // Its audit event goes through the group commit, which counts its batches.
    assert_eq!(audited(s, "token.issued", "client:grants-bot").await, 1);
    let after = scrape().await;
    let delta = |name: &str, labels: &[&str]| value(&after, name, labels) - value(&before, name, labels);
    assert_eq!(delta("portico_http_requests_total", &css), 6, "{after}");
    assert_eq!(delta("portico_http_requests_total", &refused), 1, "{after}");
    assert_eq!(delta("portico_http_requests_total", &unmatched), 2, "{after}");
    assert_eq!(delta("portico_http_request_duration_seconds_count", &css_route), 7, "{after}");
    assert!(
        delta("portico_group_commit_duration_seconds_count", &[]) >= 1,
        "no group commit counted: {after}"
    );
    assert!(delta("portico_group_commit_size_count", &[]) >= 1, "{after}");
    assert!(
        after.contains("portico_group_commit_size_bucket{le=\"512\"}"),
        "batch sizes in their own buckets: {after}"
    );
}
both_stores!(requests_are_counted_by_route_method_and_status, &SUITE);

// ---- 6b. Remembered signatures ---------------------------------------------------------------

/// A key stays published for the retention after its successor starts signing: today the longest
/// token lifetime as configured now (`Provider::key_retention`; DESIGN.md says until the last
/// token it signed has expired, which differs once a lifetime is shortened). So an operator who
/// shortens a product's token lifetime retires keys sooner, and a token signed by a retired key is
/// refused from then on though its own `exp` is later, even one introspection has remembered (on
/// the main suite, where reports-web may use client_credentials).
async fn a_remembered_token_is_refused_once_its_key_retires(s: &TestServer) {
    let audience = "audience = \"https://reports.example.test\"";
    let long = crate::SUITE.replacen(audience, &format!("{audience}\naccess_token_ttl = \"1h\""), 1);
    assert_ne!(long, crate::SUITE);
    reapply(s, &long).await;
    let p = &s.running.provider;
    let now = portico_testkit::now();
    let req = TokenRequest {
        grant_type: Some("client_credentials".into()),
        ..Default::default()
    };
    let token = token_at(s, "reports-web", REPORTS_SECRET, req, now).await.unwrap().access_token;
    let reports = creds("reports-web", REPORTS_SECRET);
    let active = |at: i64| {
        let (token, reports) = (token.clone(), reports.clone());
        async move { portico_protocol::introspect::introspect(p, &reports, Some(&token), at).await.unwrap()["active"] == true }
    };
    assert!(active(now).await);
    assert!(!p.verified.is_empty(), "remembered");
    let alg = p.keys().verifier(&crate::keys::kid_of(&token), now, p.key_retention()).expect("its key").0;
    // A successor from the next second on; then the lifetime back to its default (10 minutes).
    let next = portico_protocol::keys::generate(alg, &p.kek, now, now + 1);
    let mut tx = s.store().write().await.unwrap();
    tx.insert_key(&next).await.unwrap();
    tx.commit().await.unwrap();
    reapply(s, crate::SUITE).await;
    let retired_at = now + 1 + p.key_retention();
    assert!(retired_at < now + 3600, "the token outlives its key");
    assert!(active(retired_at - 5).await, "its key is still published");
    assert!(!active(retired_at + 5).await, "a token of a retired key was taken");
}
both_stores!(a_remembered_token_is_refused_once_its_key_retires, crate::SUITE);

// ---- 13. The data directory is private ------------------------------------------------------

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_store_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let s = TestServer::start(Backend::Sqlite, &SUITE).await.unwrap();
    let mode = |p: std::path::PathBuf| std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(s.config.data_dir.clone()), 0o700);
    assert_eq!(mode(s.config.data_dir.join("portico.db")), 0o600);
    assert_eq!(mode(s.config.data_dir.join("kek")), 0o600);
    s.stop().await;
}

// ---- 5. The throttle holds under concurrency ---------------------------------------------

async fn fifty_concurrent_guesses_verify_no_more_passwords_than_the_limit(s: &TestServer) {
    let limits = s.running.provider.settings.throttle;
    let guesses = (0..50).map(|i| async move {
        let mut b = Browser::new();
        let (_, _, page) = b.get(&format!("{}/login", s.base)).await;
        let csrf = hidden(&page, "csrf").unwrap();
        let guess = format!("guess number {i} of the password");
        b.post_form(
            &format!("{}/login", s.base),
            &[("email", "ada@example.test"), ("password", &guess), ("csrf", &csrf)],
        )
        .await
        .0
    });
    let statuses = futures_util::future::join_all(guesses).await;
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
    let verified = crate::backchannel::audited(s, "login.failed").await.len() as i64;
    assert!(
        verified <= limits.account_lock_after,
        "{verified} passwords checked at once against a limit of {}",
        limits.account_lock_after
    );
    assert!(statuses.iter().filter(|s| **s == 429).count() >= 50 - limits.account_lock_after as usize);
}
both_stores!(fifty_concurrent_guesses_verify_no_more_passwords_than_the_limit, &SUITE);

// ---- 7. Nothing from outside is stored without a bound ------------------------------------

async fn oversized_authorization_parameters_are_refused_and_not_kept(s: &TestServer) {
    // Whatever is kept with a lifetime, a sweep far in the future removes: it counts what was kept.
    let far = portico_testkit::now() + 100_000;
    let kept = || async { s.store().sweep_expired(far, far * 1000, 900_000).await.unwrap() };
    kept().await;
    for (name, size) in [
        ("state", 1025),
        ("nonce", 513),
        ("login_hint", 321),
        ("acr_values", 257),
        ("organization", 129),
        ("x-custom", 4097),
    ] {
        let value = "a".repeat(size);
        let mut b = Browser::new();
        let (status, loc, body) = b.get(&authorize_url(s, "crm-web", &[(name, &value)])).await;
        let loc = loc.unwrap_or_else(|| panic!("{name}: no redirect ({status}): {body}"));
        assert!(loc.starts_with(CALLBACK), "{name}: {loc}");
        assert_eq!(query_param(&loc, "error").as_deref(), Some("invalid_request"), "{name}");
        assert!(query_param(&loc, "state").is_none_or(|v| v.len() <= 1024), "{name}: an oversized state echoed");
    }
    assert_eq!(kept().await, 0, "an oversized request was kept");
    // At the limit, the request is kept and the login page shows.
    let mut b = Browser::new();
    let (status, loc, _) = b.get(&authorize_url(s, "crm-web", &[("state", &"s".repeat(1024))])).await;
    assert_eq!(status, 303);
    assert!(loc.unwrap().starts_with("/login?req="));
    assert_eq!(kept().await, 1, "the request at the limit was kept");
    // Too large to trust even the redirect URI: an error page, no redirect.
    let (status, loc, _) = b.get(&authorize_url(s, "crm-web", &[("padding", &"p".repeat(17_000))])).await;
    assert_eq!((status, loc), (400, None));
}
both_stores!(oversized_authorization_parameters_are_refused_and_not_kept, &SUITE);

fn five_pending_a_minute(c: &mut portico_server::config::Config) {
    c.pending_requests_per_minute = 5;
}

async fn one_address_cannot_fill_the_store_with_pending_requests(s: &TestServer) {
    let mut kept = 0;
    for _ in 0..8 {
        let (_, loc, _) = Browser::new().get(&authorize_url(s, "crm-web", &[])).await;
        let loc = loc.unwrap();
        if loc.starts_with("/login?req=") {
            kept += 1;
        } else {
            assert_eq!(query_param(&loc, "error").as_deref(), Some("temporarily_unavailable"), "{loc}");
        }
    }
    assert_eq!(kept, 5);
    // Passkey ceremonies have allowances of their own, as large:
    // passkeys::passkey_ceremonies_are_bounded_per_address_and_per_user.
}
both_stores_with!(one_address_cannot_fill_the_store_with_pending_requests, &SUITE, five_pending_a_minute);

async fn expired_rows_are_swept(s: &TestServer) {
    let store = s.store();
    let now = portico_testkit::now();
    store.put_pending("authorize", "gone", "{}", now - 1).await.unwrap();
    store.put_pending("authorize", "kept", "{}", now + 600).await.unwrap();
    committed!(store, t => t.revoke_jti("old-jti", now - 1)).await.unwrap();
    let deleted = store.sweep_expired(now, now * 1000, 900_000).await.unwrap();
    assert!(deleted >= 2, "{deleted}");
    assert!(
        store.take_pending("authorize", "gone", now - 100).await.unwrap().is_none(),
        "an expired request stays"
    );
    assert!(store.take_pending("authorize", "kept", now).await.unwrap().is_some());
}
both_stores!(expired_rows_are_swept, &SUITE);

// ---- 9. The client's address behind a proxy ------------------------------------------------

fn behind_a_proxy(c: &mut portico_server::config::Config) {
    c.trusted_proxies = vec!["127.0.0.1".into()];
    c.pending_requests_per_minute = 3;
}

/// Starts an authorization as a browser behind a proxy that says the client is `forwarded_for`:
/// whether it was kept (the login page) rather than refused for the address's rate.
async fn pending_from(s: &TestServer, forwarded_for: &str) -> bool {
    let http = openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .get(authorize_url(s, "crm-web", &[]))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap();
    let loc = resp.headers().get("location").unwrap().to_str().unwrap().to_owned();
    loc.starts_with("/login?req=")
}

/// Sends a token request with a wrong secret and `headers`; the address the refusal's audit event
/// names.
async fn refused_from(s: &TestServer, headers: &[(&str, &str)]) -> Option<String> {
    let mut req = openidconnect::reqwest::Client::new().post(format!("{}/oauth2/token", s.base));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.basic_auth("crm-web", Some("wrong secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    crate::backchannel::audited(s, "token.refused").await.last().and_then(|e| e.ip.clone())
}

async fn limits_count_the_client_behind_a_trusted_proxy_and_ipv6_per_64(s: &TestServer) {
    // A Forwarded header the client wrote, passed through by a proxy that writes X-Forwarded-For:
    // not believed.
    let ip = refused_from(s, &[("forwarded", "for=192.0.2.99"), ("x-forwarded-for", "203.0.113.77")]).await;
    assert_eq!(ip.as_deref(), Some("203.0.113.77"));
    // The client typed its own header; the proxy appended the address it saw.
    let spoofing = |n: u32| format!("10.9.9.{n}, 198.51.100.7");
    let kept = [
        pending_from(s, &spoofing(1)).await,
        pending_from(s, &spoofing(2)).await,
        pending_from(s, &spoofing(3)).await,
    ];
    assert_eq!(kept, [true; 3]);
    assert!(!pending_from(s, &spoofing(4)).await, "a made-up left-most hop escaped the limit");
    // Another client behind the same proxy has its own allowance.
    assert!(pending_from(s, "198.51.100.8").await);
    // IPv6: one /64 is one client, whichever of its addresses it uses.
    for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"] {
        assert!(pending_from(s, host).await, "{host}");
    }
    assert!(!pending_from(s, "2001:db8:1:2::4").await, "a new address in the same /64 escaped the limit");
    assert!(pending_from(s, "2001:db8:1:3::1").await, "the next /64 is another client");
    // Audit events name the client, not the proxy.
    let ip = refused_from(s, &[("x-forwarded-for", "203.0.113.5")]).await;
    assert_eq!(ip.as_deref(), Some("203.0.113.5"));
}
both_stores_with!(limits_count_the_client_behind_a_trusted_proxy_and_ipv6_per_64, &SUITE, behind_a_proxy);

async fn forwarding_headers_from_an_untrusted_peer_are_ignored(s: &TestServer) {
    let ip = refused_from(s, &[("x-forwarded-for", "203.0.113.5"), ("forwarded", "for=203.0.113.6")]).await;
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
}
both_stores!(forwarding_headers_from_an_untrusted_peer_are_ignored, &SUITE);

// ---- Hardening: the suite file, tenants, clients ------------------------------------------

async fn a_client_without_a_grant_gets_no_token(s: &TestServer) {
    // crm-bot may use client_credentials but holds no grant on CRM.
    let bot = "crm-bot-secret-0123456789abcdef0123456789";
    let (status, body) = post_basic(
        s,
        "/oauth2/token",
        "crm-bot",
        bot,
        &[("grant_type", "client_credentials"), ("organization", "acme")],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    // CRM is tenant-aware: a service token for it names its tenant.
    let (status, body) = post_basic(s, "/oauth2/token", "crm-bot", bot, &[("grant_type", "client_credentials")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    // One whose grant is revoked loses its live tokens, roles or none.
    let admin = admin_token(s, "ops-bot", OPS_SECRET).await;
    let (_, before) = post_basic(s, "/oauth2/introspect", "reports-web", REPORTS_SECRET, &[("token", &admin)]).await;
    assert_eq!(before["active"], false, "another product's token");
    let (status, _, _) = api(s, "GET", "/api/v1/grants", Some(&admin), None).await;
    assert_eq!(status, 200);
    committed!(s.store(), t => t.revoke_grant(
        &portico_model::Grantee::Client(portico_model::ClientId::new("ops-bot")),
        &portico_model::ProductSlug::new("portico-admin"),
        &portico_model::GrantScope::NoTenant,
        "test",
        portico_testkit::now(),
        &|_| false
    ))
    .await
    .unwrap();
    let (status, _, _) = api(s, "GET", "/api/v1/grants", Some(&admin), None).await;
    assert_eq!(status, 401);
}
both_stores!(a_client_without_a_grant_gets_no_token, &SUITE);

#[test]
fn the_suite_file_refuses_ids_and_audiences_that_are_portico_s_own() {
    let parse = |text: &str| portico_server::suite::Suite::parse("suite.toml", text, &HashSet::new());
    let product = "[[product]]\nslug = \"crm\"\nname = \"CRM\"\naudience = \"https://id.example.test/api\"\n";
    let suite = parse(product).expect("parses without the issuer");
    let e = suite.check_for_issuer("https://id.example.test").unwrap_err().to_string();
    assert!(e.starts_with("suite.toml:1:") && e.contains("admin API"), "{e}");
    assert!(suite.check_for_issuer("https://other.example.test").is_ok());
    for id in ["usr_evil", "ten_x", "th_x", "sso_x", "sid_x", "fam_x"] {
        let text = format!("{product}\n[[client]]\nid = \"{id}\"\nproduct = \"crm\"\nkind = \"public\"\nredirect_uris = [\"https://crm.example.test/cb\"]\n");
        let e = parse(&text).err().unwrap_or_else(|| panic!("{id} accepted")).to_string();
        assert!(e.starts_with("suite.toml:6:") && e.contains("field id"), "{id}: {e}");
    }
}

async fn removing_a_tenant_revokes_its_grants_and_tokens_at_once(s: &TestServer) {
    let t = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let acme = s.running.provider.config().tenant_by_ref("acme").unwrap().id.clone();
    committed!(s.store(), t => t.apply_config(
        &[portico_store::ConfigChange::RemoveTenant(acme.as_str().to_owned())],
        portico_testkit::now(),
    ))
    .await
    .unwrap();
    s.running.provider.reload().await.unwrap();
    let (status, body) = refresh(s, "crm-web", CRM_SECRET, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (_, i) = post_basic(
        s,
        "/oauth2/introspect",
        "crm-web",
        CRM_SECRET,
        &[("token", t["access_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(i["active"], false);
    let ada = user_id(s, "ada@example.test").await;
    let grants = s
        .store()
        .grants_for(&portico_model::Grantee::User(ada), &portico_model::ProductSlug::new("crm"))
        .await
        .unwrap();
    assert!(
        grants
            .iter()
            .filter(|g| g.scope == portico_model::GrantScope::One(acme.clone()))
            .all(|g| g.status != portico_model::GrantStatus::Active)
    );
}
both_stores!(removing_a_tenant_revokes_its_grants_and_tokens_at_once, &SUITE);

// ---- Hardening: slow clients and HSTS -----------------------------------------------------

fn impatient(c: &mut portico_server::config::Config) {
    c.read_timeout = "1s".into();
    c.max_connections = 2;
}

async fn a_client_that_never_finishes_its_headers_is_cut_off_and_holds_no_slot(s: &TestServer) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.running.addr;
    // Two connections that start a request and never finish its headers: every slot taken.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await.unwrap();
        slow.push(c);
    }
    // A third client waits while they hold the slots ...
    let http = openidconnect::reqwest::Client::new();
    let quick = http
        .get(format!("{}/healthz", s.base))
        .timeout(std::time::Duration::from_millis(400))
        .send()
        .await;
    assert!(quick.is_err(), "a third connection was served beside two held ones");
    // ... until the header timeout closes them: the server hangs up on each.
    for mut c in slow {
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), c.read(&mut buf)).await;
        let n = read.expect("the server never closed a connection that sent no complete headers").unwrap_or(0);
        let answer = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let served = http.get(format!("{}/healthz", s.base)).send().await.unwrap();
    assert_eq!(served.status(), 200);
}
both_stores_with!(a_client_that_never_finishes_its_headers_is_cut_off_and_holds_no_slot, &SUITE, impatient);

async fn an_idle_http2_connection_is_closed_like_an_idle_http1_one(s: &TestServer) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // HTTP/2 with prior knowledge: the preface and an empty SETTINGS frame, then nothing.
    let mut c = tokio::net::TcpStream::connect(s.running.addr).await.unwrap();
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.unwrap();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut buf = [0u8; 1024];
        loop {
            match c.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {} // SETTINGS, its ACK, a GOAWAY
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an HTTP/2 connection that starts no request held its slot");
}
both_stores_with!(an_idle_http2_connection_is_closed_like_an_idle_http1_one, &SUITE, impatient);

fn per_address(c: &mut portico_server::config::Config) {
    c.read_timeout = "2s".into();
    c.max_connections = 8;
    c.max_connections_per_address = 2;
}

async fn one_address_holds_at_most_its_share_of_the_connections(s: &TestServer) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.running.addr;
    let from = |ip: &str| {
        let ip: std::net::IpAddr = ip.parse().unwrap();
        async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(std::net::SocketAddr::new(ip, 0)).unwrap();
            socket.connect(addr).await.unwrap()
        }
    };
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = from("127.0.0.1").await;
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").await.unwrap();
        held.push(c);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // A third from the same address is hung up on at once, unserved.
    let mut third = from("127.0.0.1").await;
    let _ = third.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(std::time::Duration::from_millis(1500), third.read(&mut buf))
        .await
        .expect("the third connection was neither served nor closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "served beyond the address's share: {}", String::from_utf8_lossy(&buf[..n]));
    // Another address is served meanwhile.
    let mut other = from("127.0.0.2").await;
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    other.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(held);
}
both_stores_with!(one_address_holds_at_most_its_share_of_the_connections, &SUITE, per_address);

// ---- From the adversarial review ---------------------------------------------------------

async fn a_consent_to_more_keeps_what_was_consented_before(s: &TestServer) {
    let mut b = Browser::new();
    let (step, verifier) = start(&mut b, s, "partner-web", &[("organization", "acme")], "ada@example.test").await;
    let Step::Page(page) = step else { panic!() };
    let loc = allow(&mut b, s, &page).await;
    let first = redeem(s, "partner-web", PARTNER_SECRET, &loc.unwrap(), &verifier).await;
    // The client asks for more: the page, and Allow.
    let (_, loc, page) = b
        .follow(&s.base, authorize_url(s, "partner-web", &[("organization", "acme"), ("scope", "openid email")]))
        .await;
    assert!(loc.is_none(), "a wider scope without consent: {loc:?}");
    allow(&mut b, s, &page).await;
    // The first consent's refresh token lives on.
    let (status, body) = refresh(s, "partner-web", PARTNER_SECRET, first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
}
both_stores!(a_consent_to_more_keeps_what_was_consented_before, &SUITE);

async fn two_answers_to_one_consent_page_make_one_code(s: &TestServer) {
    let mut b = Browser::new();
    let (step, _) = start(&mut b, s, "partner-web", &[("organization", "acme")], "ada@example.test").await;
    let Step::Page(page) = step else { panic!() };
    let form = allow_form(&page);
    let cookie = b.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    let http = openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answers = (0..2).map(|_| {
        let req = http.post(format!("{}/consent", s.base)).header("cookie", &cookie).form(&form);
        async move {
            let resp = req.send().await.unwrap();
            resp.headers()
                .get("location")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| query_param(l, "code"))
        }
    });
    let codes: Vec<_> = futures_util::future::join_all(answers).await.into_iter().flatten().collect();
    assert_eq!(codes.len(), 1, "{codes:?}");
}
both_stores!(two_answers_to_one_consent_page_make_one_code, &SUITE);

async fn a_link_to_a_restarted_request_opened_later_elsewhere_starts_over(s: &TestServer) {
    let mut a = Browser::new();
    let (_, loc, _) = a.get(&authorize_url(s, "crm-web", &[])).await;
    let first = loc.unwrap();
    // Opened in a second browser: restarted there.
    let mut b = Browser::new();
    let (_, loc, _) = b.get(&format!("{}{first}", s.base)).await;
    let restarted = loc.unwrap();
    assert!(restarted.starts_with("/login?req=") && restarted != first, "{restarted}");
    // A third browser, with cookies, opening the restarted link: not taken for a cookie-less one.
    let mut c = Browser::new();
    c.get(&format!("{}/login", s.base)).await;
    let (status, _, page) = c.follow(&s.base, format!("{}{restarted}", s.base)).await;
    assert_eq!(status, 200);
    assert!(page.contains("name=\"password\""), "{page}");
    // A browser that keeps no cookies is told so instead of being sent round and round.
    let cookieless = openidconnect::reqwest::Client::builder()
        .redirect(openidconnect::reqwest::redirect::Policy::limited(5))
        .build()
        .unwrap();
    let resp = cookieless.get(authorize_url(s, "crm-web", &[])).send().await.unwrap();
    let text = resp.text().await.unwrap();
    assert!(text.contains("needs cookies"), "{text}");
}
both_stores!(a_link_to_a_restarted_request_opened_later_elsewhere_starts_over, &SUITE);

async fn an_oversized_body_is_refused_unread(s: &TestServer) {
    let http = openidconnect::reqwest::Client::new();
    let body = format!("grant_type=client_credentials&padding={}", "p".repeat(100 * 1024));
    let resp = http
        .post(format!("{}/oauth2/token", s.base))
        .basic_auth("reports-web", Some(REPORTS_SECRET))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}
both_stores!(an_oversized_body_is_refused_unread, &SUITE);

// ---- Hardening: TOTP secrets bound to their user -------------------------------------------

async fn an_authenticator_sealed_before_per_purpose_keys_is_bound_to_its_user_once_used(s: &TestServer) {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let p = &s.running.provider;
    let raw = b64.decode(std::fs::read_to_string(s.config.data_dir.join("kek")).unwrap().trim()).unwrap();
    // Sealed as the previous version did: under the KEK itself, the same associated data for all.
    let secret = [42u8; 20];
    let v1 = {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &raw).unwrap());
        let nonce = [7u8; 12];
        let mut buf = secret.to_vec();
        key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(b"totp"), &mut buf)
            .unwrap();
        b64.encode([nonce.to_vec(), buf].concat())
    };
    let (ada, _) = s.store().user_by_email("ada@example.test").await.unwrap().unwrap();
    let (bob, _) = s.store().user_by_email("bob@example.test").await.unwrap().unwrap();
    let now = portico_testkit::now();
    assert!(s.store().start_totp(&ada.id, &v1, now).await.unwrap());
    let app = totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, 6, 1, 30, secret.to_vec(), None, "ada".into());
    assert!(
        portico_protocol::totp::check(p, &ada, &app.generate(now as u64), true, None, now)
            .await
            .unwrap()
    );
    let stored = s.store().totp_of(&ada.id).await.unwrap().unwrap().secret;
    assert!(stored.starts_with("v2:"), "sealed again, for Ada: {stored}");
    // Copied onto Bob's account by someone who writes to the database: it opens for Bob no more.
    assert!(s.store().start_totp(&bob.id, &stored, now).await.unwrap());
    assert!(
        portico_protocol::totp::check(p, &bob, &app.generate(now as u64 + 30), true, None, now + 30)
            .await
            .is_err()
    );
    // Ada's still works.
    assert!(
        portico_protocol::totp::check(p, &ada, &app.generate(now as u64 + 30), false, None, now + 30)
            .await
            .unwrap()
    );
}
both_stores!(an_authenticator_sealed_before_per_purpose_keys_is_bound_to_its_user_once_used, &SUITE);

/// RFC 6749 §4.1.3: a code presented by a client it was not issued to is refused, spent, and what
/// it started revoked — and the attempt is in the audit log with the refusal.
async fn a_code_presented_by_another_client_is_spent_revoked_and_audited(s: &TestServer) {
    let (code, verifier) = crm_code(s).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier.as_str()),
    ];
    let (status, body) = post_basic(s, "/oauth2/token", "reports-web", REPORTS_SECRET, &form).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, body) = post_basic(s, "/oauth2/token", "crm-web", SECRET, &form).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "spent by the attempt: {body}");
    let stolen = crate::backchannel::audited(s, "token.code_stolen").await;
    assert_eq!(stolen.len(), 1);
    assert_eq!(stolen[0].actor, "client:reports-web");
    assert_eq!(stolen[0].data["issued_to"], "crm-web");
}
both_stores!(a_code_presented_by_another_client_is_spent_revoked_and_audited);
